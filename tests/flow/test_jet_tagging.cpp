// Jet-tagging example: generator + FastJet + ParticleNet-AK4 input building + writer, in all three
// inference modes; HepMC3 input (round trip through HepMC3's writer) and corrupt files.
//
// The in-process tests use a stand-in model with ParticleNet-AK4's exact interface (same input
// names and shapes, [N, 7] output), written in C++, so that they do not depend on the ONNX engine.
// The real ParticleNet-AK4 end-to-end run through `quiver run` is RealModel* below.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <HepMC3/GenEvent.h>
#include <HepMC3/GenParticle.h>
#include <HepMC3/GenVertex.h>
#include <HepMC3/WriterAscii.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "flow_test_util.hpp"
#include "quiver/core/util.hpp"
#include "jet_tagging.hpp"

namespace fs = std::filesystem;
using namespace quiver;
using namespace jet_tagging;
using flowtest::run_with_timeout;

namespace {

// ParticleNet-AK4's interface; output = softmax(W * [masked means of pf and sv features]) and a
// pt-like regression. Per jet independent, so batching must not change it.
class StandIn final : public Model {
 public:
  StandIn() {
    info_.name = "particlenet_standin";
    info_.backend = "test";
    info_.version = "1";
    info_.sha256 = "standin-sha";
    auto N = Dim::sym("N"), P = Dim::sym("n_pf"), S = Dim::sym("n_sv");
    info_.inputs = {{"pf_points", DType::F32, {N, 2, P}},   {"pf_features", DType::F32, {N, 23, P}},
                    {"pf_mask", DType::F32, {N, 1, P}},     {"sv_points", DType::F32, {N, 2, S}},
                    {"sv_features", DType::F32, {N, 11, S}}, {"sv_mask", DType::F32, {N, 1, S}}};
    info_.outputs = {{"output", DType::F32, {N, 7}}};
  }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<RunState>(); }
  void run(std::span<const Tensor> in, std::vector<Tensor>& out, RunState&) const override {
    validate_inputs(info_, in);
    int64_t n = in[0].dim(0), P = in[0].dim(2), S = in[3].dim(2);
    out.resize(1);
    out[0].ensure(DType::F32, std::vector<int64_t>{n, 7});
    for (int64_t r = 0; r < n; ++r) {
      float h[36] = {};
      const float* pf = in[1].data<float>() + r * 23 * P;
      const float* pm = in[2].data<float>() + r * P;
      const float* pp = in[0].data<float>() + r * 2 * P;
      const float* sf = in[4].data<float>() + r * 11 * S;
      const float* sm = in[5].data<float>() + r * S;
      float np = 0, ns = 0;
      for (int64_t i = 0; i < P; ++i) np += pm[i];
      for (int64_t i = 0; i < S; ++i) ns += sm[i];
      for (int f = 0; f < 23; ++f)
        for (int64_t i = 0; i < P; ++i) h[f] += pf[f * P + i] * pm[i] / std::max(np, 1.f);
      for (int f = 0; f < 11; ++f)
        for (int64_t i = 0; i < S; ++i) h[23 + f] += sf[f * S + i] * sm[i] / std::max(ns, 1.f);
      for (int64_t i = 0; i < P; ++i) h[34] += (pp[i] * pp[i] + pp[P + i] * pp[P + i]) * pm[i];
      h[35] = np / 50;
      float logits[6], mx = -1e30f;
      for (int c = 0; c < 6; ++c) {
        logits[c] = 0;
        for (int k = 0; k < 36; ++k) logits[c] += std::sin(0.7f * c + 0.3f * k) * h[k];
        mx = std::max(mx, logits[c]);
      }
      float z = 0;
      for (int c = 0; c < 6; ++c) z += std::exp(logits[c] - mx);
      float* o = out[0].data<float>() + r * 7;
      for (int c = 0; c < 6; ++c) o[c] = std::exp(logits[c] - mx) / z;
      o[6] = 1 + 0.1f * h[0] + 0.05f * h[1];
    }
  }

 private:
  ModelInfo info_;
};

struct Row {
  uint64_t event;
  int jet;
  float pt;
  float v[7];
  std::string model, mode;
};

std::vector<Row> read_csv(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line,
            "event,jet,pt,eta,phi,mass,n_constituents,prob_taup,prob_taum,prob_b,prob_c,prob_uds,prob_g,target_pt,"
            "model,model_version,model_sha256,inference_mode");
  std::vector<Row> rows;
  while (std::getline(f, line)) {
    std::vector<std::string> c;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, ',')) c.push_back(x);
    EXPECT_EQ(c.size(), 18u) << line;
    if (c.size() != 18) continue;
    Row r;
    r.event = std::stoull(c[0]);
    r.jet = std::stoi(c[1]);
    r.pt = std::stof(c[2]);
    for (int k = 0; k < 7; ++k) r.v[k] = std::stof(c[7 + k]);
    r.model = c[14];
    r.mode = c[17];
    rows.push_back(r);
  }
  return rows;
}

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("quiver_jt_" + name + "_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

flow::RunSummary run_pipeline(const std::string& mode, const fs::path& dir, std::map<std::string, std::string> extra = {},
                              std::shared_ptr<const Model> model = std::make_shared<StandIn>()) {
  flow::Application app;
  app.set_parameter("nevents", "40");
  app.set_parameter("nthreads", "2");
  app.set_parameter("in_flight", "8");
  app.set_parameter("error_policy", "skip");
  app.set_parameter("inference.mode", mode);
  app.set_parameter("inference.service", "loopback:1");
  app.set_parameter("writer.csv", (dir / (mode + ".csv")).string());
  app.set_parameter("writer.hdf5", (dir / (mode + ".h5")).string());
  for (auto& [k, v] : extra) app.set_parameter(k, v);
  add_components(app);
  if (model) static_cast<ParticleNetTagger*>(app.find("inference"))->set_model(model);
  return run_with_timeout(app, 60);
}

void expect_rows_close(const std::vector<Row>& a, const std::vector<Row>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].event, b[i].event);
    EXPECT_EQ(a[i].jet, b[i].jet);
    for (int k = 0; k < 7; ++k) EXPECT_NEAR(a[i].v[k], b[i].v[k], tol) << "row " << i << " output " << k;
  }
}

}  // namespace

TEST(JetTagging, GeneratorIsDeterministicAndJetsAreClustered) {
  std::vector<Particle> a, b;
  std::vector<SecondaryVertex> sa, sb;
  GeneratorSource::generate(42, 7, 2, 6, 20, a, sa);
  GeneratorSource::generate(42, 7, 2, 6, 20, b, sb);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].pt, b[i].pt);
  GeneratorSource::generate(42, 8, 2, 6, 20, b, sb);
  EXPECT_NE(a.size() == b.size() && a[0].pt == b[0].pt, true);
  for (auto& p : a) {
    EXPECT_GT(p.pt, 0);
    EXPECT_GE(p.e, p.pt * std::cosh(p.eta) * 0.999f);
  }
}

// The real ParticleNet-AK4 through the batch stage on the GPU executor (its emulated device here;
// the same code runs on CUDA): the same scores as direct per-jet calls on the CPU.
TEST(JetTagging, BatchedOnTheGpuExecutorMatchesDirect) {
  const std::string model = std::string(QUIVER_SHARED_DIR) + "/models/hep/particlenet_ak4_hlt/model.onnx";
  if (!fs::exists(model)) GTEST_SKIP() << "shared models not present";
  fs::path dir = temp_dir("gpu");
  auto sd = run_pipeline("direct", dir, {{"inference.model", model}, {"nevents", "16"}}, nullptr);
  ASSERT_FALSE(sd.fatal) << sd.fatal->what();
  auto sg = run_pipeline("batched", dir,
                         {{"inference.model", model}, {"nevents", "16"}, {"inference.device", "gpu-emulator"},
                          {"inference.max_batch", "64"}, {"inference.spread", "false"},
                          {"writer.csv", (dir / "gpu.csv").string()}, {"writer.hdf5", (dir / "gpu.h5").string()}},
                         nullptr);
  ASSERT_FALSE(sg.fatal) << sg.fatal->what();
  auto d = read_csv((dir / "direct.csv").string());
  auto g = read_csv((dir / "gpu.csv").string());
  ASSERT_GT(d.size(), 20u);
  expect_rows_close(d, g, 1e-5);
  EXPECT_EQ(d[0].mode, "direct");
  EXPECT_EQ(g[0].mode, "batched/gpu-emulator");
  fs::remove_all(dir);
}

// Inference.numerics = reproducible: per-jet direct calls and batches of up to 64 jets give the same
// scores exactly (the CSV's printed digits equal), where the default mode only agrees within 1e-5.
TEST(JetTagging, ReproducibleNumericsGivesTheSameScoresDirectAndBatched) {
  const std::string model = std::string(QUIVER_SHARED_DIR) + "/models/hep/particlenet_ak4_hlt/model.onnx";
  if (!fs::exists(model)) GTEST_SKIP() << "shared models not present";
  fs::path dir = temp_dir("repro");
  auto sd = run_pipeline("direct", dir, {{"inference.model", model}, {"nevents", "12"}, {"inference.numerics", "reproducible"}},
                         nullptr);
  ASSERT_FALSE(sd.fatal) << sd.fatal->what();
  auto sb = run_pipeline("batched", dir,
                         {{"inference.model", model}, {"nevents", "12"}, {"inference.numerics", "reproducible"},
                          {"inference.max_batch", "64"}, {"inference.spread", "false"}},
                         nullptr);
  ASSERT_FALSE(sb.fatal) << sb.fatal->what();
  auto d = read_csv((dir / "direct.csv").string());
  auto b = read_csv((dir / "batched.csv").string());
  ASSERT_GT(d.size(), 10u);
  expect_rows_close(d, b, 0.0);
  fs::remove_all(dir);
}

TEST(JetTagging, AllModesAgreeAndWriterHasProvenance) {
  fs::path dir = temp_dir("modes");
  auto sd = run_pipeline("direct", dir);
  ASSERT_FALSE(sd.fatal) << sd.fatal->what();
  EXPECT_EQ(sd.processed, 40u);
  auto sb = run_pipeline("batched", dir, {{"inference.max_batch", "32"}});
  ASSERT_FALSE(sb.fatal) << sb.fatal->what();
  auto ss = run_pipeline("service", dir);
  ASSERT_FALSE(ss.fatal) << ss.fatal->what();
  auto d = read_csv((dir / "direct.csv").string());
  auto b = read_csv((dir / "batched.csv").string());
  auto s = read_csv((dir / "service.csv").string());
  ASSERT_GT(d.size(), 80u);  // 2..6 jets per event above 20 GeV
  expect_rows_close(d, b, 1e-5);
  expect_rows_close(d, s, 1e-5);
  for (size_t i = 1; i < d.size(); ++i) EXPECT_LE(d[i - 1].event, d[i].event);  // ordered output
  EXPECT_EQ(d[0].model, "particlenet_standin");
  EXPECT_EQ(d[0].mode, "direct");
  EXPECT_EQ(b[0].mode, "batched");
  EXPECT_EQ(s[0].mode, "service");
  for (auto& r : d) {
    EXPECT_GE(r.pt, 20.f);
    float sum = 0;
    for (int k = 0; k < 6; ++k) sum += r.v[k];
    EXPECT_NEAR(sum, 1.f, 1e-4);
  }
  // HDF5: same number of jets, provenance strings present
  hid_t f = H5Fopen((dir / "batched.h5").string().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  hid_t ds = H5Dopen2(f, "/jets/prob_b", H5P_DEFAULT);
  ASSERT_GE(ds, 0);
  hid_t sp = H5Dget_space(ds);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(sp, &n, nullptr);
  EXPECT_EQ(n, b.size());
  std::vector<float> probs(n);
  H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, probs.data());
  for (size_t i = 0; i < n; ++i) EXPECT_NEAR(probs[i], b[i].v[2], 1e-6);
  H5Sclose(sp);
  H5Dclose(ds);
  EXPECT_GE(H5Dopen2(f, "/jets/inference_mode", H5P_DEFAULT), 0);
  H5Fclose(f);
  fs::remove_all(dir);
}

namespace {
void write_hepmc(const fs::path& file, int nevents, std::vector<std::vector<Particle>>& truth) {
  HepMC3::WriterAscii w(file.string());
  for (int i = 0; i < nevents; ++i) {
    std::vector<Particle> parts;
    std::vector<SecondaryVertex> svs;
    GeneratorSource::generate(5, i, 2, 4, 10, parts, svs);
    HepMC3::GenEvent evt(HepMC3::Units::GEV, HepMC3::Units::MM);
    evt.set_event_number(100 + i);
    auto beam = std::make_shared<HepMC3::GenParticle>(HepMC3::FourVector(0, 0, 6500, 6500), 2212, 4);
    auto v = std::make_shared<HepMC3::GenVertex>();
    v->add_particle_in(beam);
    for (auto& p : parts) {
      double px = p.pt * std::cos(p.phi), py = p.pt * std::sin(p.phi), pz = p.pt * std::sinh(p.eta);
      v->add_particle_out(std::make_shared<HepMC3::GenParticle>(HepMC3::FourVector(px, py, pz, p.e), p.pdg, 1));
    }
    evt.add_vertex(v);
    w.write_event(evt);
    truth.push_back(parts);
  }
  w.close();
}

class ParticleRecorder : public flow::Processor {
 public:
  ParticleRecorder() : Processor(Mode::Sequential) {}
  flow::Input<std::vector<Particle>> in_{this, "particles"};
  std::vector<std::pair<uint64_t, std::vector<Particle>>> events;
  void process(const flow::Event& e) override { events.emplace_back(e.number(), in_(e)); }
};
}  // namespace

TEST(JetTagging, HepMC3InputRoundTrip) {
  fs::path dir = temp_dir("hepmc");
  std::vector<std::vector<Particle>> truth;
  write_hepmc(dir / "ev.hepmc3", 6, truth);
  flow::Application app;
  app.set_parameter("nthreads", "2");
  app.set_parameter("source.file", (dir / "ev.hepmc3").string());
  app.add<HepMC3Source>("source");
  auto& rec = app.add<ParticleRecorder>("rec");
  auto s = run_with_timeout(app);
  ASSERT_FALSE(s.fatal) << s.fatal->what();
  ASSERT_EQ(rec.events.size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(rec.events[i].first, 100 + i);
    auto& got = rec.events[i].second;
    ASSERT_EQ(got.size(), truth[i].size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_NEAR(got[k].pt, truth[i][k].pt, 1e-3 * truth[i][k].pt);
      EXPECT_NEAR(got[k].eta, truth[i][k].eta, 1e-3);
      EXPECT_EQ(got[k].charge, truth[i][k].charge) << "pdg " << got[k].pdg;
      EXPECT_EQ(got[k].type, truth[i][k].type);
    }
  }
  fs::remove_all(dir);
}

TEST(JetTagging, CorruptHepMC3FileNamesFileAndEventAndKeepsEarlierEvents) {
  fs::path dir = temp_dir("corrupt");
  std::vector<std::vector<Particle>> truth;
  write_hepmc(dir / "ev.hepmc3", 6, truth);
  // Garble event 3 (its 'P' lines become nonsense).
  std::ifstream in(dir / "ev.hepmc3");
  std::ofstream out(dir / "bad.hepmc3");
  std::string line;
  int event = -1;
  while (std::getline(in, line)) {
    if (line.rfind("E ", 0) == 0) event++;
    if (event == 3 && line.rfind("P ", 0) == 0) line = "P garbage ### not a particle";
    out << line << "\n";
  }
  out.close();
  flow::Application app;
  app.set_parameter("nthreads", "2");
  app.set_parameter("source.file", (dir / "bad.hepmc3").string());
  app.add<HepMC3Source>("source");
  auto& rec = app.add<ParticleRecorder>("rec");
  auto s = run_with_timeout(app);
  ASSERT_TRUE(s.fatal);
  std::string w = s.fatal->what();
  EXPECT_NE(w.find("source 'source'"), std::string::npos) << w;
  EXPECT_NE(w.find("bad.hepmc3"), std::string::npos) << w;
  EXPECT_NE(w.find("event 3"), std::string::npos) << w;
  EXPECT_EQ(rec.events.size(), 3u);  // events before the corruption were processed and written
  EXPECT_EQ(s.emitted, 3u);

  // truncated in the middle of event 4
  {
    std::string all = quiver::read_file((dir / "ev.hepmc3").string());
    size_t e4 = all.find("\nE ", 0);
    for (int k = 0; k < 4; ++k) e4 = all.find("\nE ", e4 + 1);
    ASSERT_NE(e4, std::string::npos);
    std::ofstream(dir / "trunc.hepmc3") << all.substr(0, e4 + 200);
    flow::Application app3;
    app3.set_parameter("source.file", (dir / "trunc.hepmc3").string());
    app3.add<HepMC3Source>("source");
    auto& rec3 = app3.add<ParticleRecorder>("rec");
    auto s3 = run_with_timeout(app3);
    ASSERT_TRUE(s3.fatal) << "a truncated file must not look like a clean end";
    EXPECT_NE(std::string(s3.fatal->what()).find("trunc.hepmc3"), std::string::npos);
    EXPECT_EQ(rec3.events.size(), 4u);
  }
  // not HepMC at all
  std::ofstream(dir / "junk.hepmc3") << "hello\n";
  flow::Application app2;
  app2.set_parameter("source.file", (dir / "junk.hepmc3").string());
  app2.add<HepMC3Source>("source");
  app2.add<ParticleRecorder>("rec");
  try {
    app2.run();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.hepmc3"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(JetTagging, BadEventIsReportedNotLost) {
  // A model that fails for some batches: those events are listed in the failed CSV; the rest written.
  class Flaky final : public Model {
   public:
    const ModelInfo& info() const override { return inner.info(); }
    std::unique_ptr<RunState> make_state() const override { return inner.make_state(); }
    void run(std::span<const Tensor> in, std::vector<Tensor>& out, RunState& s) const override {
      if (++calls % 7 == 0) throw Error(ErrorCode::Internal, "simulated engine failure");
      inner.run(in, out, s);
    }
    StandIn inner;
    mutable std::atomic<int> calls{0};
  };
  fs::path dir = temp_dir("bad");
  auto s = run_pipeline("direct", dir, {{"inference.direct_granularity", "event"}}, std::make_shared<Flaky>());
  EXPECT_FALSE(s.fatal);
  EXPECT_GT(s.failed, 0u);
  EXPECT_EQ(s.processed + s.failed, 40u);
  std::ifstream f(dir / "direct.csv.failed.csv");
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "event,component,message");
  int n = 0;
  std::set<uint64_t> failed;
  while (std::getline(f, line)) {
    ++n;
    failed.insert(std::stoull(line.substr(0, line.find(','))));
    EXPECT_NE(line.find("inference"), std::string::npos) << line;
    EXPECT_NE(line.find("simulated engine failure"), std::string::npos) << line;
  }
  EXPECT_EQ(n, static_cast<int>(s.failed));
  std::set<uint64_t> written;
  for (auto& r : read_csv((dir / "direct.csv").string())) written.insert(r.event);
  for (auto ev : failed) EXPECT_EQ(written.count(ev), 0u) << "event " << ev << " both written and failed";
  EXPECT_EQ(failed.size(), s.failed);
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- the real model, through `quiver run`
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/server_process.hpp"
#include "quiver/backends/backends.hpp"

namespace {
const std::string kModel = std::string(QUIVER_SHARED_DIR) + "/models/hep/particlenet_ak4_hlt/model.onnx";
const std::string kConfig = std::string(QUIVER_SOURCE_DIR) + "/examples/jet_tagging/config.toml";
const std::string kQuiver = std::string(QUIVER_BINARY_DIR) + "/src/cli/quiver";

// The ONNX engine must run ParticleNet-AK4; when an operator is missing the real-model tests skip
// (the stand-in tests above cover the pipeline).
bool engine_runs_particlenet(std::string& why) {
  try {
    auto m = quiver::load_model(kModel);
    return m != nullptr;
  } catch (const Error& e) {
    if (e.code() != ErrorCode::Unsupported) throw;
    why = e.what();
    return false;
  }
}

// Starts `quiver ARGS...` with stdout/stderr to files (posix_spawn: safe in a threaded process).
pid_t spawn_quiver(const std::vector<std::string>& args, const fs::path& out, const fs::path& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(kQuiver.c_str()));
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, kQuiver.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_EQ(rc, 0) << "cannot start " << kQuiver;
  return pid;
}

// Waits for pid at most `seconds`; kills it and fails the test when it hangs. Returns the exit code.
int wait_quiver(pid_t pid, double seconds) {
  auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() - t0 > std::chrono::duration<double>(seconds)) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ADD_FAILURE() << "quiver run did not finish within " << seconds << " s";
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}
}  // namespace

TEST(JetTagging, RealParticleNetAllModesAgreeThroughQuiverRun) {
  std::string why;
  if (!engine_runs_particlenet(why)) GTEST_SKIP() << "ONNX engine cannot run ParticleNet-AK4 yet: " << why;
  fs::path dir = temp_dir("real");
  std::map<std::string, std::vector<Row>> rows;
  for (std::string mode : {"direct", "batched", "service"}) {
    fs::path csv = dir / (mode + ".csv");
    pid_t pid = spawn_quiver({"run", kConfig, "-Pinference.mode=" + mode, "-Pnthreads=2", "-Pnevents=6",
                              "-Pwriter.csv=" + csv.string(), "-Pwriter.hdf5=" + (dir / (mode + ".h5")).string(),
                              "-Pinference.service=loopback:2", "-Pticker=0"},
                             dir / "out.txt", dir / (mode + ".err"));
    int rc = wait_quiver(pid, 120);
    ASSERT_EQ(rc, 0) << quiver::read_file((dir / (mode + ".err")).string());
    rows[mode] = read_csv(csv.string());
    ASSERT_GT(rows[mode].size(), 10u);
    EXPECT_EQ(rows[mode][0].model, "particlenet_ak4_hlt");
    EXPECT_EQ(rows[mode][0].mode, mode);
    for (auto& r : rows[mode]) {
      float sum = 0;
      for (int k = 0; k < 6; ++k) sum += r.v[k];
      EXPECT_NEAR(sum, 1.f, 1e-4);  // softmax columns
    }
  }
  expect_rows_close(rows["direct"], rows["batched"], 1e-5);
  expect_rows_close(rows["direct"], rows["service"], 1e-5);
  fs::remove_all(dir);
}

TEST(JetTagging, CtrlCStopsAndFlushesWhatIsDone) {
  std::string why;
  if (!engine_runs_particlenet(why)) GTEST_SKIP() << "ONNX engine cannot run ParticleNet-AK4 yet: " << why;
  fs::path dir = temp_dir("sigint");
  fs::path csv = dir / "tags.csv";
  pid_t pid = spawn_quiver({"run", kConfig, "-Pnevents=0", "-Pnthreads=2", "-Pticker=0", "-Pwriter.csv=" + csv.string(),
                            "-Pwriter.hdf5=" + (dir / "tags.h5").string()},
                           dir / "out.txt", dir / "err.txt");
  // wait until some jets are written, then Ctrl-C
  auto t0 = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    if (fs::exists(csv) && fs::file_size(csv) > 2000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGINT);
  int rc = wait_quiver(pid, 60);
  EXPECT_EQ(rc, 130);
  std::string err = quiver::read_file((dir / "err.txt").string());
  EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
  auto rows = read_csv(csv.string());  // complete rows only (the header and each line checked)
  ASSERT_GT(rows.size(), 0u);
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_LE(rows[i - 1].event, rows[i].event);
  // the HDF5 file was flushed at the stop
  hid_t f = H5Fopen((dir / "tags.h5").string().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  hid_t ds = H5Dopen2(f, "/jets/prob_b", H5P_DEFAULT);
  hid_t sp = H5Dget_space(ds);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(sp, &n, nullptr);
  EXPECT_EQ(n, rows.size());
  H5Sclose(sp);
  H5Dclose(ds);
  H5Fclose(f);
  fs::remove_all(dir);
}

TEST(JetTagging, CliErrorsAreClear) {
  fs::path dir = temp_dir("cli");
  // unknown plugin
  pid_t pid = spawn_quiver({"run", "--plugin", "no_such_plugin", "-Pnevents=1"}, dir / "o", dir / "e1");
  EXPECT_EQ(wait_quiver(pid, 30), 1);
  EXPECT_NE(quiver::read_file((dir / "e1").string()).find("plugin 'no_such_plugin' not found"), std::string::npos);
  // missing required parameter (hepmc source without a file)
  pid = spawn_quiver({"run", kConfig, "-Psource.type=hepmc", "-Pnevents=1"}, dir / "o", dir / "e2");
  EXPECT_EQ(wait_quiver(pid, 30), 1);
  std::string e2 = quiver::read_file((dir / "e2").string());
  EXPECT_NE(e2.find("source.file"), std::string::npos) << e2;
  // bad parameter value
  pid = spawn_quiver({"run", kConfig, "-Pinference.mode=fast", "-Pnevents=1"}, dir / "o", dir / "e3");
  EXPECT_EQ(wait_quiver(pid, 30), 1);
  EXPECT_NE(quiver::read_file((dir / "e3").string()).find("inference.mode"), std::string::npos);
  fs::remove_all(dir);
}

TEST(JetTagging, ShowTopologyPrintsThePlanWithoutRunning) {
  fs::path dir = temp_dir("topology");
  fs::path csv = dir / "tags.csv";
  pid_t pid = spawn_quiver({"run", kConfig, "--show-topology", "-Pnthreads=3", "-Pinference.mode=batched",
                            "-Pwriter.csv=" + csv.string(), "-Pwriter.hdf5=" + (dir / "tags.h5").string()},
                           dir / "out.txt", dir / "err.txt");
  EXPECT_EQ(wait_quiver(pid, 30), 0) << quiver::read_file((dir / "err.txt").string());
  std::string out = quiver::read_file((dir / "out.txt").string());
  EXPECT_NE(out.find("nthreads=3 in_flight=16"), std::string::npos) << out;
  EXPECT_NE(out.find("1. source         source [jet_tagging::GeneratorSource]"), std::string::npos) << out;
  EXPECT_NE(out.find("2. async factory  inference [jet_tagging::ParticleNetTagger]"), std::string::npos) << out;
  EXPECT_NE(out.find("3. processor      writer [jet_tagging::JetTagWriter], sequential, in event order"),
            std::string::npos) << out;
  EXPECT_NE(out.find("std::vector<jet_tagging::Jet> 'jets': made by 'jets', read by 'inference' 'writer'"),
            std::string::npos) << out;
  EXPECT_FALSE(fs::exists(csv)) << "--show-topology must not run the pipeline";
  // A configuration error is reported as by a run.
  pid = spawn_quiver({"run", kConfig, "--show-topology", "-Perror_policy=retry"}, dir / "o", dir / "e2");
  EXPECT_EQ(wait_quiver(pid, 30), 1);
  EXPECT_NE(quiver::read_file((dir / "e2").string()).find("'error_policy'"), std::string::npos);
  fs::remove_all(dir);
}

TEST(JetTagging, ServiceModeThroughQuiverServeWithFallback) {
  // quiver serve on a free port with max_batch_size 4: events with more jets are sent as several
  // requests; a model the server does not have falls back to direct inference. Every score equals
  // direct inference. The server wants a bearer token, which the service URL names a file for.
#ifndef JT_HAVE_SERVE_AND_CLIENT
  GTEST_SKIP() << "built without quiver_serve / quiver_client (QUIVER_WITH_GRPC=OFF)";
#endif
  std::string why;
  if (!engine_runs_particlenet(why)) GTEST_SKIP() << "ONNX engine cannot run ParticleNet-AK4 yet: " << why;
  fs::path dir = temp_dir("serve");
  fs::create_directories(dir / "repo/particlenet_ak4_hlt/1");
  fs::copy_file(kModel, dir / "repo/particlenet_ak4_hlt/1/model.onnx");
  std::ofstream(dir / "repo/particlenet_ak4_hlt/config.pbtxt") << "name: \"particlenet_ak4_hlt\"\nmax_batch_size: 4\n";
  std::ofstream(dir / "tokens") << "flow-test-token\n";
  // Throws (failing the test, with the server's stderr) when it is not ready within 30 s.
  quiver::testing::QuiverServe server((dir / "repo").string(), {"--auth-token-file", (dir / "tokens").string()},
                                      30000);
  const std::string port = std::to_string(server.grpc_port);
  std::map<std::string, std::vector<Row>> rows;
  for (std::string run : {"direct", "service", "missing"}) {
    fs::path csv = dir / (run + ".csv");
    std::string mode = run == "direct" ? "direct" : "service";
    std::string model = run == "missing" ? "no_such_model" : "particlenet_ak4_hlt";
    pid_t pid = spawn_quiver({"run", kConfig, "-Pinference.mode=" + mode, "-Pnthreads=2", "-Pnevents=10",
                              "-Pwriter.csv=" + csv.string(), "-Pwriter.hdf5=", "-Pticker=0",
                              "-Pinference.service=grpc://127.0.0.1:" + port + "/" + model +
                                  "?auth_token_file=" + (dir / "tokens").string(),
                              "-Pinference.log_level=error"},
                             dir / "out.txt", dir / (run + ".err"));
    int rc = wait_quiver(pid, 120);
    EXPECT_EQ(rc, 0) << quiver::read_file((dir / (run + ".err")).string());
    rows[run] = read_csv(csv.string());
  }
  server.stop(10000);
  expect_rows_close(rows["direct"], rows["service"], 1e-5);
  expect_rows_close(rows["direct"], rows["missing"], 1e-5);
  bool big_event = false;
  std::map<uint64_t, int> jets_per_event;
  for (auto& r : rows["service"]) {
    EXPECT_EQ(r.mode, "service");  // served, split into requests of <= 4 jets where needed
    big_event |= ++jets_per_event[r.event] > 4;
  }
  EXPECT_TRUE(big_event) << "no event had more jets than the server's max batch";
  for (auto& r : rows["missing"]) EXPECT_EQ(r.mode, "service-fallback-direct");
  int served = static_cast<int>(rows["service"].size()), fell_back = static_cast<int>(rows["missing"].size());
  EXPECT_GT(served, 0);
  EXPECT_GT(fell_back, 0);
  fs::remove_all(dir);
}
