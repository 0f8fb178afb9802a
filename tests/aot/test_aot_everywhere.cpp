// A compiled library runs wherever a model runs (issue 17: "the client's fallback and the flow framework
// all run compiled models unchanged"). The TICL supercluster MLP is compiled and built once; then
//  - the event framework runs it by file name in direct and batched mode, and through a real `quiver
//    serve` process that serves the same library (repository entry model.so) in service mode, with
//    fallback to direct inference after the server is killed;
//  - the client sends it to that server, and after kill -9 falls back to a local repository holding the
//    library, with the server's bits; an always-local client needs no server at all.
// Every answer is checked against ONNX Runtime's reference sets (not against the library's own first
// answer), row by row.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "aot_test_util.hpp"
#include "flow/flow_test_util.hpp"
#include "onnx/reference_sets.hpp"
#include "quiver/aot/aot.hpp"
#include "quiver/backends/backends.hpp"
#include "quiver/client/client.hpp"
#include "quiver/core/util.hpp"
#include "quiver/flow/application.hpp"
#include "quiver/flow/inference.hpp"
#include "support/server_process.hpp"

namespace fs = std::filesystem;
using namespace quiver;
using namespace quiver::flow;

namespace {

const std::string kModel = "ticl_supercls";

// Compiled and built once per test process (a few seconds), in a folder of the test's own: CTest runs
// each test in a process of its own, at the same time as the others.
const std::string& library() {
  static const std::string lib = [] {
    const fs::path out = fs::path(QUIVER_BINARY_DIR) / "tests" / "aot" / "out" /
                         (std::string("everywhere_") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(out);
    aot::CompileOptions o;
    o.name = "supercls_everywhere";
    const auto r = aot::compile_model(std::string(QUIVER_SHARED_DIR) + "/models/hep/" + kModel + "/model.onnx",
                                      (out / "src").string(), o);
    return aot::build_shared(r, aot_test::compiler());
  }();
  return lib;
}

// The library's SHA-256 (of the file, as a repository hashes its entries): provenance carries it
// whichever way the library ran.
const std::string& library_sha256() {
  static const std::string sha = [] {
    auto m = load_model(library());
    EXPECT_EQ(m->info().backend, "aot");
    EXPECT_EQ(m->info().sha256, sha256_file(library()));
    return m->info().sha256;
  }();
  return sha;
}

// A repository whose entry `name` is the compiled library (no config.pbtxt: auto-completed as "aot").
void add_library_entry(const fs::path& repo, const std::string& name) {
  fs::create_directories(repo / name / "1");
  fs::copy_file(library(), repo / name / "1" / "model.so", fs::copy_options::overwrite_existing);
}

// Row r of the rows of every reference set, in order: event n classifies row n % rows.
struct Rows {
  std::vector<std::vector<float>> in, want;
  std::string in_name, out_name;
};

Rows reference_rows() {
  Rows rows;
  for (const auto& set : test::reference_sets(kModel)) {
    const Tensor& x = set.inputs.at(0).tensor;
    const Tensor& y = set.outputs.at(0).tensor;
    rows.in_name = set.inputs.at(0).name;
    rows.out_name = set.outputs.at(0).name;
    const int64_t n = x.dim(0), wx = x.numel() / n, wy = y.numel() / n;
    for (int64_t r = 0; r < n; ++r) {
      rows.in.emplace_back(x.data<float>() + r * wx, x.data<float>() + (r + 1) * wx);
      rows.want.emplace_back(y.data<float>() + r * wy, y.data<float>() + (r + 1) * wy);
    }
  }
  return rows;
}

// ONNX Runtime's row, within the shared models' tolerance (the reference sets' own comparison).
::testing::AssertionResult close(const std::vector<float>& got, const std::vector<float>& want) {
  return test::matches_reference(Tensor::from_vector(got, {static_cast<int64_t>(got.size())}),
                                 Tensor::from_vector(want, {static_cast<int64_t>(want.size())}));
}

class CountSource : public Source {
 public:
  Output<int> out_{this, "n"};
  int n = 0;
  void init() override { n = 0; }
  bool emit(Event& e) override {
    out_(e) = n++;
    return true;
  }
};

struct Scored {
  std::vector<std::vector<float>> items;
  Provenance prov;
};

// Event n carries 1 + n % 3 clusters: rows n, n+1, ... of the reference rows.
class SuperclusterTagger : public InferenceFactory {
 public:
  Input<int> in_{this, "n"};
  Output<Scored> out_{this, "scored"};
  const Rows* rows = nullptr;

 protected:
  void fill_inputs(const Event& e, InferenceInputs& in) override {
    const int n = in_(e);
    in.resize(static_cast<size_t>(1 + n % 3));
    const size_t k = in.input_index(rows->in_name);
    for (size_t i = 0; i < in.size(); ++i) {
      const auto& x = rows->in[(static_cast<size_t>(n) + i) % rows->in.size()];
      ASSERT_EQ(static_cast<size_t>(in.item_numel(k)), x.size());
      std::copy(x.begin(), x.end(), in.f32(k, i));
    }
  }
  void read_outputs(Event& e, const InferenceOutputs& out) override {
    Scored& s = out_(e);
    s.prov = out.provenance();
    const size_t k = out.output_index(rows->out_name);
    for (size_t i = 0; i < out.size(); ++i) s.items.emplace_back(out.f32(k, i), out.f32(k, i) + out.item_numel(k));
  }
};

class Collector : public Processor {
 public:
  Collector() : Processor(Mode::Sequential) {}
  Input<int> n_{this, "n"};
  Input<Scored> in_{this, "scored"};
  std::map<int, Scored> rows;
  std::map<uint64_t, std::string> failures;
  void process(const Event& e) override { rows[n_(e)] = in_(e); }
  void failed(const Event& e, const Error& err) override { failures[e.number()] = err.what(); }
};

struct FlowRun {
  std::map<int, Scored> rows;
  uint64_t fallbacks = 0;
};

FlowRun run_flow(const Rows& rows, const std::map<std::string, std::string>& params) {
  Application app;
  app.set_parameter("nevents", "40");
  app.set_parameter("nthreads", "2");
  app.set_parameter("tagger.model", library());
  for (const auto& [k, v] : params) app.set_parameter(k, v);
  app.add<CountSource>("source");
  auto& tagger = app.add<SuperclusterTagger>("tagger");
  tagger.rows = &rows;
  auto& col = app.add<Collector>("out");
  const auto s = flowtest::run_with_timeout(app, 120);
  EXPECT_FALSE(s.fatal) << s.fatal->what();
  for (const auto& [n, why] : col.failures) ADD_FAILURE() << "event " << n << " failed: " << why;
  EXPECT_EQ(col.rows.size(), 40u);
  return {col.rows, tagger.fallbacks()};
}

// Every event's items are ONNX Runtime's rows, with provenance `mode`.
void expect_reference(const FlowRun& run, const Rows& rows, const std::string& mode) {
  for (const auto& [n, s] : run.rows) {
    EXPECT_EQ(s.prov.mode, mode) << "event " << n;
    EXPECT_EQ(s.prov.sha256, library_sha256()) << "event " << n;
    ASSERT_EQ(s.items.size(), static_cast<size_t>(1 + n % 3)) << "event " << n;
    for (size_t i = 0; i < s.items.size(); ++i)
      EXPECT_TRUE(close(s.items[i], rows.want[(static_cast<size_t>(n) + i) % rows.want.size()]))
          << mode << ": event " << n << " item " << i;
  }
}

}  // namespace

TEST(AotEverywhere, FlowRunsTheLibraryInEveryMode) {
  const Rows rows = reference_rows();
  if (rows.in.empty()) GTEST_SKIP() << "shared models missing";
  ASSERT_GT(rows.in.size(), 3u);

  expect_reference(run_flow(rows, {{"tagger.mode", "direct"}}), rows, "direct");
  expect_reference(run_flow(rows, {{"tagger.mode", "batched"}, {"tagger.max_batch", "16"}, {"tagger.max_wait_ms", "2"}}),
                   rows, "batched");

  quiver::testing::TempRepository repo("quiver_aot_everywhere_flow");
  add_library_entry(repo.dir, "supercls");
  auto server = std::make_unique<quiver::testing::QuiverServe>(repo.dir.string());
  const std::map<std::string, std::string> service{{"tagger.mode", "service"},
                                                   {"tagger.service", "grpc://" + server->grpc() + "/supercls"}};
  auto remote = service;
  remote["tagger.fallback"] = "fail";
  const FlowRun served = run_flow(rows, remote);
  EXPECT_EQ(served.fallbacks, 0u);
  expect_reference(served, rows, "service");

  server->kill9();  // every request now fails: direct inference with the same library takes over
  const FlowRun fell_back = run_flow(rows, service);
  EXPECT_EQ(fell_back.fallbacks, 40u);
  expect_reference(fell_back, rows, "service-fallback-direct");
}

TEST(AotEverywhere, ClientFallsBackToTheLibraryWithTheServersBits) {
  const Rows rows = reference_rows();
  if (rows.in.empty()) GTEST_SKIP() << "shared models missing";
  quiver::testing::TempRepository served("quiver_aot_everywhere_served");
  quiver::testing::TempRepository local("quiver_aot_everywhere_local");
  add_library_entry(served.dir, "supercls");
  add_library_entry(local.dir, "supercls");
  quiver::testing::QuiverServe server(served.dir.string());

  client::ClientOptions o;
  o.discovery.endpoints = {server.grpc()};
  o.health_interval_ns = 50'000'000;
  o.probe_timeout_ns = 300'000'000;
  o.breaker.failure_threshold = 2;
  o.breaker.open_ns = 100'000'000;
  o.retry.attempts_per_server = 1;
  o.retry.max_servers = 1;
  o.fallback = client::FallbackMode::OnFailure;
  o.fallback_repository = local.dir.string();
  client::Client c(o);
  ASSERT_TRUE(c.wait_for_serving(1, 10'000'000'000));
  // The served answers carry the model's checksum once its metadata was looked up (the client's
  // metadata cache): the repository's hash of model.so, which the local fallback reports too.
  EXPECT_EQ(c.model_metadata("supercls")->info.sha256, library_sha256());

  // Three rows per request: the batch dim is a run-time value of the compiled code.
  auto request = [&](size_t first) {
    const int64_t w = static_cast<int64_t>(rows.in[0].size());
    Tensor x = Tensor::empty(DType::F32, {3, w});
    for (size_t r = 0; r < 3; ++r)
      std::copy(rows.in[(first + r) % rows.in.size()].begin(), rows.in[(first + r) % rows.in.size()].end(),
                x.data<float>() + r * static_cast<size_t>(w));
    return c.infer("supercls", {{rows.in_name, std::move(x)}});
  };
  auto check = [&](const client::InferResult& r, size_t first) {
    const Tensor& y = r.output(rows.out_name);
    const int64_t w = y.numel() / 3;
    for (size_t i = 0; i < 3; ++i)
      EXPECT_TRUE(close(std::vector<float>(y.data<float>() + i * w, y.data<float>() + (i + 1) * w),
                        rows.want[(first + i) % rows.want.size()]))
          << "request " << first << " row " << i;
  };
  std::vector<Tensor> remote_out;
  for (size_t i = 0; i < 8; ++i) {
    auto r = request(i);
    ASSERT_TRUE(r.ok()) << r.error->what();
    EXPECT_FALSE(r.provenance.fallback);
    EXPECT_EQ(r.provenance.sha256, library_sha256());
    check(r, i);
    remote_out.push_back(r.output(rows.out_name).clone());
  }
  server.kill9();
  for (size_t i = 0; i < 8; ++i) {
    auto r = request(i);
    ASSERT_TRUE(r.ok()) << r.error->what();
    EXPECT_TRUE(r.provenance.fallback);
    EXPECT_EQ(r.provenance.server, "local:" + local.dir.string());
    EXPECT_EQ(r.provenance.sha256, library_sha256());
    check(r, i);
    const Tensor& y = r.output(rows.out_name);
    ASSERT_EQ(y.nbytes(), remote_out[i].nbytes());
    EXPECT_EQ(std::memcmp(y.raw(), remote_out[i].raw(), y.nbytes()), 0) << "the same library gave other bits, request " << i;
  }

  client::ClientOptions lo;
  lo.fallback = client::FallbackMode::AlwaysLocal;
  lo.fallback_repository = local.dir.string();
  client::Client only_local(lo);
  auto r = only_local.infer("supercls", {{rows.in_name, Tensor::from_vector(rows.in[1], {1, static_cast<int64_t>(rows.in[1].size())})}});
  ASSERT_TRUE(r.ok()) << r.error->what();
  EXPECT_TRUE(r.provenance.fallback);
  const Tensor& y = r.output(rows.out_name);
  EXPECT_TRUE(close(std::vector<float>(y.data<float>(), y.data<float>() + y.numel()), rows.want[1]));
}
