// The client against real `quiver serve` processes (identity and ONNX models) on loopback: kill -9
// one of three servers under load, fallback with the same engine, clear errors from the server's
// queue policy / deadlines / unknown models, and the `quiver perf` command end to end.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "support/server_process.hpp"
#include "onnx/reference_sets.hpp"
#include "grpc_service.grpc.pb.h"
#include "quiver/client/client.hpp"
#include "quiver/client/http.hpp"
#include "quiver/core/util.hpp"

using namespace quiver;
using namespace quiver::client;
using quiver::testing::ServerProcess;
namespace fs = std::filesystem;

namespace {

const std::string kQuiver = QUIVER_BINARY_DIR "/src/cli/quiver";
const std::string kMlp = QUIVER_SHARED_DIR "/models/hep/hls4ml_three_layer/model.onnx";

struct Repo : quiver::testing::TempRepository {
  Repo() : TempRepository("quiver_client_serve_repo") {
    using quiver::testing::identity_config;
    add("identity", identity_config("identity", 64));
    add("slow", identity_config("slow", 64, "parameters { key: \"execute_delay_ms\" value: { string_value: \"2000\" } }\n"));
    add("busy", identity_config("busy", 64,
                                "parameters { key: \"execute_delay_ms\" value: { string_value: \"100\" } }\n"
                                "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
                                "dynamic_batching { max_queue_delay_microseconds: 0 "
                                "default_queue_policy { max_queue_size: 1 } }\n"));
    // Declares 4 output values per row but (identity) returns as many as it gets: a client that
    // sizes shared-memory outputs from the metadata gets too little space for wider inputs.
    add("widen", "name: \"widen\"\nbackend: \"identity\"\nmax_batch_size: 64\n"
                 "input [ { name: \"INPUT0\" data_type: TYPE_FP32 dims: [ -1 ] } ]\n"
                 "output [ { name: \"OUTPUT0\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n");
    if (fs::exists(kMlp)) {
      add("mlp", "name: \"mlp\"\nplatform: \"onnxruntime_onnx\"\n");
      fs::copy_file(kMlp, dir / "mlp" / "1" / "model.onnx");
    }
  }
};

std::unique_ptr<ServerProcess> serve(const quiver::testing::TempRepository& repo) {
  return std::make_unique<ServerProcess>(
      kQuiver, std::vector<std::string>{"serve", "--model-repository", repo.dir.string(), "--grpc-port", "0",
                                        "--http-port", "-1", "--metrics-port", "-1"});
}

// Requests of `model` the server has completed successfully (ModelStatistics), asked over gRPC.
uint64_t successful_inferences(const std::string& endpoint, const std::string& model) {
  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  inference::ModelStatisticsRequest q;
  q.set_name(model);
  inference::ModelStatisticsResponse r;
  const auto st = stub->ModelStatistics(&ctx, q, &r);
  if (!st.ok() || r.model_stats_size() == 0) throw std::runtime_error("ModelStatistics failed: " + st.error_message());
  return r.model_stats(0).inference_stats().success().count();
}

Tensor row(float tag, int64_t rows = 1) {
  Tensor t = Tensor::empty(DType::F32, {rows, 4});
  for (int64_t i = 0; i < rows * 4; ++i) t.data<float>()[i] = tag + static_cast<float>(i);
  return t;
}

bool same(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.dims() == b.dims() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

ClientOptions fast_options(std::vector<std::string> endpoints) {
  ClientOptions o;
  o.discovery.endpoints = std::move(endpoints);
  o.health_interval_ns = 50'000'000;
  o.probe_timeout_ns = 300'000'000;
  o.breaker.failure_threshold = 2;
  o.breaker.open_ns = 100'000'000;
  o.breaker.max_open_ns = 400'000'000;
  o.default_timeout_ns = 20'000'000'000;
  return o;
}

}  // namespace

TEST(ClientServe, KillNineOneOfThreeServeProcesses) {
  Repo repo;
  auto s0 = serve(repo), s1 = serve(repo), s2 = serve(repo);
  Client client(fast_options({s0->grpc(), s1->grpc(), s2->grpc()}));
  ASSERT_TRUE(client.wait_for_serving(3, 10'000'000'000));
  const int N = 10000;
  std::vector<std::atomic<int>> calls(N);
  std::atomic<int> ok{0}, bad{0};
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  std::string first_error;
  for (int i = 0; i < N; ++i) {
    Tensor x = row(static_cast<float>(i) * 8);
    client.infer_async("identity", {{"INPUT0", x}}, {}, [&, i, x](InferResult r) {
      calls[i]++;
      if (r.ok() && same(r.output("OUTPUT0"), x)) ok++;
      else bad++;
      std::lock_guard lk(mu);
      if (!r.ok() && first_error.empty()) first_error = r.error->what();
      if (++done == N) cv.notify_all();
    });
    if (i == N / 4) s2->kill9();
  }
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(45), [&] { return done == N; })) << done << " of " << N;
  }
  EXPECT_EQ(ok, N) << first_error;
  for (int i = 0; i < N; ++i) ASSERT_EQ(calls[i].load(), 1) << "request " << i;
  auto rep = client.report();
  EXPECT_EQ(rep.completed, N);
  for (auto& s : rep.servers) {
    if (s.address == s2->grpc()) {
      EXPECT_FALSE(s.serving);
    }
  }
  // Restart on the same port: traffic returns.
  const std::string addr = s2->grpc();
  s2->restart();
  ASSERT_TRUE(client.wait_for_serving(3, 10'000'000'000));
  int back = 0;
  std::vector<std::future<InferResult>> fs;
  for (int i = 0; i < 600; ++i) fs.push_back(client.infer_future("identity", {{"INPUT0", row(1)}}));
  for (auto& f : fs) {
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.error->what();
    back += r.provenance.server == addr;
  }
  EXPECT_GT(back, 60) << "traffic did not return to the restarted server";
}

TEST(ClientServe, FallbackRunsTheSameEngineThenServersTakeOver) {
  Repo repo;
  if (!fs::exists(repo.dir / "mlp")) GTEST_SKIP() << "shared MLP model missing: " << kMlp;
  auto s0 = serve(repo), s1 = serve(repo);
  ClientOptions o = fast_options({s0->grpc(), s1->grpc()});
  o.fallback = FallbackMode::OnFailure;
  o.fallback_repository = repo.dir.string();
  Client client(o);
  ASSERT_TRUE(client.wait_for_serving(2, 10'000'000'000));
  auto meta = client.model_metadata("mlp");
  ASSERT_EQ(meta->info.inputs.size(), 1u);
  const std::string in_name = meta->info.inputs[0].name;
  const std::string out_name = meta->info.outputs.at(0).name;
  EXPECT_EQ(meta->info.sha256, sha256_file(kMlp));
  // The model's ONNX Runtime reference inputs first (their answers are checked against ONNX
  // Runtime's, served and from the fallback), then random rows.
  const auto refs = quiver::test::reference_sets("hls4ml_three_layer");
  ASSERT_EQ(refs.size(), 2u);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  std::vector<Tensor> xs, remote;
  for (int i = 0; i < 10; ++i) {
    Tensor x = Tensor::empty(DType::F32, {1, 16});
    if (i < 2) x = refs[i].inputs.at(0).tensor.clone();
    else
      for (auto& v : x.span<float>()) v = nd(rng);
    auto r = client.infer("mlp", {{in_name, x}});
    ASSERT_TRUE(r.ok()) << r.error->what();
    EXPECT_FALSE(r.provenance.fallback);
    EXPECT_EQ(r.provenance.sha256, sha256_file(kMlp));
    xs.push_back(x);
    remote.push_back(r.output(out_name).clone());
    if (i < 2) {
      EXPECT_TRUE(quiver::test::matches_reference(remote.back(), refs[i].outputs.at(0).tensor)) << "served, " << refs[i].name;
    }
  }
  s0->kill9();
  s1->kill9();
  for (int i = 0; i < 10; ++i) {
    auto r = client.infer("mlp", {{in_name, xs[i]}});
    ASSERT_TRUE(r.ok()) << r.error->what();
    EXPECT_TRUE(r.provenance.fallback);
    EXPECT_EQ(r.provenance.sha256, sha256_file(kMlp));
    EXPECT_TRUE(same(r.output(out_name), remote[i])) << "fallback differs from the servers at " << i;
    if (i < 2) {
      EXPECT_TRUE(quiver::test::matches_reference(r.output(out_name), refs[i].outputs.at(0).tensor)) << "fallback, " << refs[i].name;
    }
  }
  // Identity through fallback carries the same checksum as the server reports (hash of config).
  auto rid = client.infer("identity", {{"INPUT0", row(1)}});
  ASSERT_TRUE(rid.ok());
  EXPECT_TRUE(rid.provenance.fallback);
  s0->restart();
  s1->restart();
  ASSERT_TRUE(client.wait_for_serving(2, 10'000'000'000));
  for (int i = 0; i < 10; ++i) {
    auto r = client.infer("mlp", {{in_name, xs[i]}});
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r.provenance.fallback) << "traffic did not move back";
    EXPECT_TRUE(same(r.output(out_name), remote[i]));
  }
}

// wait_for_serving's promise: once it says N servers serve, a request can go to them. Here the
// server dies and comes back on its port before any background probe has seen it go (probes are
// seconds apart): the client's breaker is still closed after the failed requests and the channel
// sits in its reconnect backoff, yet the request after wait_for_serving must reach the server.
TEST(ClientServe, WaitForServingMeansARequestReachesTheServer) {
  Repo repo;
  auto s = serve(repo);
  ClientOptions o = fast_options({s->grpc()});
  o.health_interval_ns = 2'000'000'000;
  o.breaker = BreakerOptions{};
  o.fallback = FallbackMode::OnFailure;
  o.fallback_repository = repo.dir.string();
  Client client(o);
  ASSERT_TRUE(client.wait_for_serving(1, 10'000'000'000));
  for (int round = 0; round < 3; ++round) {
    auto before = client.infer("identity", {{"INPUT0", row(1)}});
    ASSERT_TRUE(before.ok()) << before.error->what();
    EXPECT_FALSE(before.provenance.fallback) << "round " << round;
    s->kill9();
    auto local = client.infer("identity", {{"INPUT0", row(2)}});
    ASSERT_TRUE(local.ok()) << local.error->what();
    EXPECT_TRUE(local.provenance.fallback) << "round " << round;
    s->restart();
    ASSERT_TRUE(client.wait_for_serving(1, 20'000'000'000)) << "round " << round;
    auto again = client.infer("identity", {{"INPUT0", row(3)}});
    ASSERT_TRUE(again.ok()) << again.error->what();
    EXPECT_FALSE(again.provenance.fallback) << "round " << round << ": answered locally after "
                                            << again.provenance.attempts << " attempt(s)";
    EXPECT_TRUE(same(again.output("OUTPUT0"), row(3)));
  }
}

// The local fallback reads a repository exactly as the server does: a Triton FIL model (input__0
// -> output__0, predict_proba), a config `reshape` and an ensemble answer with the server's tensor
// names, shapes and values when every server is gone.
TEST(ClientServe, FallbackSeesTheRepositoryAsTheServerDoes) {
  const std::string xgb = QUIVER_SHARED_DIR "/models/forest/xgboost/xgb17/BinaryLogisticAudit17.json";
  if (!fs::exists(kMlp) || !fs::exists(xgb)) GTEST_SKIP() << "shared models missing";
  quiver::testing::TempRepository repo("quiver_client_fallback_repo");
  repo.add("mlp_reshaped", "name: \"mlp_reshaped\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 0\n"
                           "input [ { name: \"input_1_0\" data_type: TYPE_FP32 dims: [ 16 ] reshape: { shape: [ 1, 16 ] } } ]\n"
                           "output [ { name: \"output_softmax_Softmax_01\" data_type: TYPE_FP32 dims: [ 5 ] reshape: { shape: [ 1, 5 ] } } ]\n");
  fs::copy_file(kMlp, repo.dir / "mlp_reshaped" / "1" / "model.onnx");
  repo.add("audit", "name: \"audit\"\nbackend: \"fil\"\nmax_batch_size: 1024\n"
                    "input [ { name: \"input__0\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n"
                    "output [ { name: \"output__0\" data_type: TYPE_FP32 dims: [ 1 ] } ]\n"
                    "parameters [ { key: \"model_type\" value: { string_value: \"xgboost_json\" } },\n"
                    "  { key: \"output_class\" value: { string_value: \"true\" } },\n"
                    "  { key: \"predict_proba\" value: { string_value: \"true\" } } ]\n");
  fs::copy_file(xgb, repo.dir / "audit" / "1" / "xgboost.json");
  repo.add("pipeline", "name: \"pipeline\"\nplatform: \"ensemble\"\nmax_batch_size: 0\n"
                       "input [ { name: \"RAW\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
                       "output [ { name: \"PROBS\" data_type: TYPE_FP32 dims: [ 5 ] } ]\n"
                       "ensemble_scheduling { step [ { model_name: \"mlp_reshaped\" input_map { key: \"input_1_0\" value: \"RAW\" }\n"
                       "  output_map { key: \"output_softmax_Softmax_01\" value: \"PROBS\" } } ] }\n");
  auto s0 = serve(repo);
  ClientOptions o = fast_options({s0->grpc()});
  o.fallback = FallbackMode::OnFailure;
  o.fallback_repository = repo.dir.string();
  Client client(o);
  ASSERT_TRUE(client.wait_for_serving(1, 10'000'000'000));
  Tensor x = Tensor::empty(DType::F32, {16});
  for (int i = 0; i < 16; ++i) x.data<float>()[i] = 0.1f * float(i - 8);
  Tensor rows = Tensor::from_vector(std::vector<float>{38, 81838, 0, 72, 45, 27743.82f, 0, 55, 60, 1e5f, 1, 40}, {3, 4});
  struct Call {
    std::string model, in, out;
    Tensor x;
  };
  const Call calls[] = {{"mlp_reshaped", "input_1_0", "output_softmax_Softmax_01", x},
                        {"audit", "input__0", "output__0", rows},
                        {"pipeline", "RAW", "PROBS", x}};
  std::vector<Tensor> remote;
  for (const auto& c : calls) {
    auto r = client.infer(c.model, {{c.in, c.x}});
    ASSERT_TRUE(r.ok()) << c.model << ": " << r.error->what();
    EXPECT_FALSE(r.provenance.fallback);
    remote.push_back(r.output(c.out).clone());
  }
  EXPECT_EQ(remote[0].dims(), (std::vector<int64_t>{5}));
  EXPECT_EQ(remote[1].dims(), (std::vector<int64_t>{3, 1}));
  s0->kill9();
  for (size_t i = 0; i < std::size(calls); ++i) {
    auto r = client.infer(calls[i].model, {{calls[i].in, calls[i].x}});
    ASSERT_TRUE(r.ok()) << calls[i].model << ": " << r.error->what();
    EXPECT_TRUE(r.provenance.fallback);
    EXPECT_EQ(r.output(calls[i].out).dims(), remote[i].dims()) << calls[i].model;
    EXPECT_TRUE(same(r.output(calls[i].out), remote[i])) << "fallback differs from the server for " << calls[i].model;
  }
}

TEST(ClientServe, ClearErrorsFromTheServer) {
  Repo repo;
  auto s = serve(repo);
  Client client(fast_options({s->grpc()}));
  ASSERT_TRUE(client.wait_for_serving(1, 10'000'000'000));
  // Deadline: "slow" takes 2 s per request; the client gives up at 50 ms, so when its
  // DeadlineExceeded arrives the server has not finished the request (events, not a wall-clock bound).
  auto r = client.infer("slow", {{"INPUT0", row(1)}}, {.timeout_ns = 50'000'000});
  const uint64_t finished = successful_inferences(s->grpc(), "slow");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->code(), ErrorCode::DeadlineExceeded) << r.error->what();
  EXPECT_EQ(finished, 0u) << "the server had finished the request before the client reported its deadline";
  // Wrong model name.
  auto nf = client.infer("no_such_model", {{"INPUT0", row(1)}});
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.error->code(), ErrorCode::NotFound) << nf.error->what();
  EXPECT_NE(std::string(nf.error->what()).find("no_such_model"), std::string::npos);
  // Wrong input name: the server's InvalidArgument, not retried.
  auto bad = client.infer("identity", {{"WRONG", row(1)}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error->code(), ErrorCode::InvalidArgument) << bad.error->what();
  EXPECT_EQ(bad.provenance.attempts, 1);
  // Overloaded: queue of 1, one instance, 100 ms per request; 6 at once -> rejections.
  std::vector<std::future<InferResult>> fs;
  for (int i = 0; i < 6; ++i) fs.push_back(client.infer_future("busy", {{"INPUT0", row(1)}}));
  int ok = 0, overloaded = 0;
  std::string msg;
  for (auto& f : fs) {
    auto x = f.get();
    ok += x.ok();
    if (!x.ok()) {
      EXPECT_EQ(x.error->code(), ErrorCode::ResourceExhausted) << x.error->what();
      overloaded += x.error->code() == ErrorCode::ResourceExhausted;
      msg = x.error->what();
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(overloaded, 1);
  EXPECT_NE(msg.find("overloaded"), std::string::npos) << msg;
}

// Servers with --auth-token-file: the client (gRPC), a remote model URL's auth_token_file and the
// HTTP client send the token from a file; without it requests fail with the server's reason.
TEST(ClientServe, BearerTokenFromAFile) {
  Repo repo;
  const fs::path tokens = repo.dir / "tokens";
  const fs::path mine = repo.dir / "client-token";
  { std::ofstream(tokens) << "site-token-1\nsite-token-2\n"; }
  { std::ofstream(mine) << "# this job's token\nsite-token-2\n"; }
  ServerProcess s(kQuiver, {"serve", "--model-repository", repo.dir.string(), "--grpc-port", "0", "--http-port", "0",
                            "--metrics-port", "-1", "--auth-token-file", tokens.string()});
  ClientOptions o = fast_options({s.grpc()});
  o.auth_token_file = mine.string();
  Client client(o);
  ASSERT_TRUE(client.wait_for_serving(1, 10'000'000'000));
  auto r = client.infer("identity", {{"INPUT0", row(3)}});
  ASSERT_TRUE(r.ok()) << r.error->what();
  EXPECT_TRUE(same(r.outputs[0].tensor, row(3)));
  EXPECT_EQ(client.model_metadata("identity")->info.inputs.size(), 1u);

  Client anonymous(fast_options({s.grpc()}));
  ASSERT_TRUE(anonymous.wait_for_serving(1, 10'000'000'000));  // readiness needs no token
  auto denied = anonymous.infer("identity", {{"INPUT0", row(3)}});
  ASSERT_FALSE(denied.ok());
  EXPECT_NE(std::string(denied.error->what()).find("UNAUTHENTICATED"), std::string::npos) << denied.error->what();
  EXPECT_EQ(denied.provenance.attempts, 1);  // not retried: another attempt cannot fix it

  auto model = make_remote_model("grpc://" + s.grpc() + "/identity?auth_token_file=" + mine.string());
  auto st = model->make_state();
  std::vector<Tensor> outs;
  Tensor in = row(5);
  model->run(std::span<const Tensor>(&in, 1), outs, *st);
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_TRUE(same(outs[0], row(5)));
  EXPECT_THROW(make_remote_model("grpc://" + s.grpc() + "/identity?token=x"), Error);

  HttpOptions ho;
  ho.auth_token_file = mine.string();
  HttpClient http(s.http(), ho);
  auto hr = http.infer("identity", {{"INPUT0", row(7)}}, {});
  ASSERT_TRUE(hr.ok()) << hr.error->what();
  HttpClient http_anon(s.http(), HttpOptions{});
  auto hd = http_anon.infer("identity", {{"INPUT0", row(7)}}, {});
  ASSERT_FALSE(hd.ok());
  EXPECT_NE(std::string(hd.error->what()).find("bearer token"), std::string::npos) << hd.error->what();

  // quiver perf with and without the token.
  auto run = [&](std::vector<std::string> extra) {
    std::string cmd = kQuiver + " perf -m identity -u " + s.grpc() + " -p 200 --max-trials 1 -s 0";
    for (auto& e : extra) cmd += " " + e;
    return std::system((cmd + " > /dev/null 2>&1").c_str());
  };
  EXPECT_EQ(run({"--auth-token-file", mine.string()}), 0);
  EXPECT_NE(run({}), 0);
}

TEST(ClientServe, SystemSharedMemoryInputs) {
  Repo repo;
  auto s = serve(repo);
  ClientOptions o = fast_options({s->grpc()});
  o.shared_memory = true;
  o.shm_slots = 4;
  o.shm_slot_bytes = 512;
  {
    Client client(o);
    ASSERT_TRUE(client.wait_for_serving(1, 10'000'000'000));
    // The server knows the client's region.
    auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(s->grpc(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    inference::SystemSharedMemoryStatusRequest q;
    inference::SystemSharedMemoryStatusResponse st;
    ASSERT_TRUE(stub->SystemSharedMemoryStatus(&ctx, q, &st).ok());
    ASSERT_EQ(st.regions_size(), 1);
    EXPECT_EQ(st.regions().begin()->second.byte_size(), 4u * 512u);
    // More requests in flight than slots: the rest travel in the message; all answers exact.
    std::vector<std::pair<Tensor, std::future<InferResult>>> fs;
    for (int i = 0; i < 64; ++i) {
      Tensor x = row(static_cast<float>(i) * 100, 1 + i % 8);
      fs.emplace_back(x, client.infer_future("identity", {{"INPUT0", x}}));
    }
    Tensor big = row(7, 64);  // 1024 bytes > one slot
    auto rb = client.infer("identity", {{"INPUT0", big}});
    ASSERT_TRUE(rb.ok()) << rb.error->what();
    EXPECT_TRUE(same(rb.output("OUTPUT0"), big));
    for (auto& [x, f] : fs) {
      auto r = f.get();
      ASSERT_TRUE(r.ok()) << r.error->what();
      EXPECT_TRUE(same(r.output("OUTPUT0"), x));
    }
  }
  // The client unregistered its region when it shut down.
  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(s->grpc(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  inference::SystemSharedMemoryStatusRequest q;
  inference::SystemSharedMemoryStatusResponse st;
  ASSERT_TRUE(stub->SystemSharedMemoryStatus(&ctx, q, &st).ok());
  EXPECT_EQ(st.regions_size(), 0);
}

// True when `p` lies in a mapping of one of the client's POSIX shared-memory regions.
bool in_client_shm(const void* p) {
  std::stringstream maps(read_file("/proc/self/maps"));
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(p);
  while (std::getline(maps, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) != 2) continue;
    if (a >= lo && a < hi) return line.find("/dev/shm/quiver_client_") != std::string::npos;
  }
  return false;
}

TEST(ClientServe, SystemSharedMemoryOutputs) {
  Repo repo;
  auto s = serve(repo);
  ClientOptions o = fast_options({s->grpc()});
  o.shared_memory = true;
  o.shared_memory_outputs = true;
  o.shm_slots = 4;
  o.shm_slot_bytes = 1024;
  Client client(o);
  Client plain(fast_options({s->grpc()}));
  ASSERT_TRUE(client.wait_for_serving(1, 10'000'000'000));
  ASSERT_TRUE(plain.wait_for_serving(1, 10'000'000'000));
  // Before the metadata is cached, outputs come in the message; the background fetch then lets
  // later requests use the slot.
  auto first = client.infer("identity", {{"INPUT0", row(1, 2)}});
  ASSERT_TRUE(first.ok()) << first.error->what();
  EXPECT_TRUE(same(first.output("OUTPUT0"), row(1, 2)));
  bool via_shm = false;
  for (int i = 0; i < 200 && !via_shm; ++i) {
    auto r = client.infer("identity", {{"INPUT0", row(2, 2)}});
    ASSERT_TRUE(r.ok()) << r.error->what();
    EXPECT_TRUE(same(r.output("OUTPUT0"), row(2, 2)));
    via_shm = r.outputs_in_shared_memory;
    if (!via_shm) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(via_shm) << "outputs never went through shared memory";

  // Outputs through shared memory equal outputs through raw contents; they view the region.
  for (int i = 0; i < 40; ++i) {
    Tensor x = row(static_cast<float>(i) * 10, 1 + i % 8);  // 1..8 rows: inputs + outputs <= 1024 bytes
    auto a = client.infer("identity", {{"INPUT0", x}});
    auto b = plain.infer("identity", {{"INPUT0", x}});
    ASSERT_TRUE(a.ok()) << a.error->what();
    ASSERT_TRUE(b.ok()) << b.error->what();
    EXPECT_TRUE(a.outputs_in_shared_memory);
    EXPECT_FALSE(b.outputs_in_shared_memory);
    EXPECT_TRUE(same(a.output("OUTPUT0"), b.output("OUTPUT0"))) << i;
    EXPECT_TRUE(same(a.output("OUTPUT0"), x)) << i;
    EXPECT_TRUE(in_client_shm(a.output("OUTPUT0").raw())) << "output is not a view of the shared memory";
    EXPECT_FALSE(in_client_shm(b.output("OUTPUT0").raw()));
  }
  // Held outputs keep their slots: with all 4 held, requests still work (in the message) and the
  // held tensors are not overwritten; released, the slots serve again.
  std::vector<InferResult> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(client.infer("identity", {{"INPUT0", row(100.f * i, 4)}}));
    ASSERT_TRUE(held.back().ok());
    ASSERT_TRUE(held.back().outputs_in_shared_memory);
  }
  for (int i = 0; i < 8; ++i) {
    auto r = client.infer("identity", {{"INPUT0", row(-7.f * i, 4)}});
    ASSERT_TRUE(r.ok()) << r.error->what();
    EXPECT_FALSE(r.outputs_in_shared_memory);
    EXPECT_TRUE(same(r.output("OUTPUT0"), row(-7.f * i, 4)));
  }
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(same(held[i].output("OUTPUT0"), row(100.f * i, 4))) << i;
  held.clear();
  auto again = client.infer("identity", {{"INPUT0", row(5, 3)}});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again.outputs_in_shared_memory);
  // Async requests in flight > slots: every answer exact.
  std::vector<std::pair<Tensor, std::future<InferResult>>> fs;
  for (int i = 0; i < 64; ++i) {
    Tensor x = row(static_cast<float>(i), 1 + i % 8);
    fs.emplace_back(x, client.infer_future("identity", {{"INPUT0", x}}));
  }
  int shm_answers = 0;
  for (auto& [x, f] : fs) {
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.error->what();
    EXPECT_TRUE(same(r.output("OUTPUT0"), x));
    shm_answers += r.outputs_in_shared_memory;
  }
  EXPECT_GT(shm_answers, 0);

  // Too small: the metadata promises 4 values per row, the model returns 8.
  client.model_metadata("widen");
  auto ok4 = client.infer("widen", {{"INPUT0", row(1, 2)}});
  ASSERT_TRUE(ok4.ok()) << ok4.error->what();
  EXPECT_TRUE(ok4.outputs_in_shared_memory);
  Tensor wide = Tensor::empty(DType::F32, {2, 8});
  for (int i = 0; i < 16; ++i) wide.data<float>()[i] = static_cast<float>(i);
  auto small = client.infer("widen", {{"INPUT0", wide}});
  ASSERT_FALSE(small.ok());
  EXPECT_EQ(small.error->code(), ErrorCode::InvalidArgument) << small.error->what();
  const std::string msg = small.error->what();
  EXPECT_NE(msg.find("OUTPUT0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("too small"), std::string::npos) << msg;
  auto wide_plain = plain.infer("widen", {{"INPUT0", wide}});
  ASSERT_TRUE(wide_plain.ok()) << wide_plain.error->what();
  EXPECT_TRUE(same(wide_plain.output("OUTPUT0"), wide));

  // The MLP (ONNX engine): shared-memory outputs equal raw ones.
  if (fs::exists(repo.dir / "mlp")) {
    auto meta = client.model_metadata("mlp");
    const std::string in_name = meta->info.inputs[0].name, out_name = meta->info.outputs.at(0).name;
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    for (int i = 0; i < 5; ++i) {
      Tensor x = Tensor::empty(DType::F32, {1, 16});
      for (auto& v : x.span<float>()) v = nd(rng);
      auto a = client.infer("mlp", {{in_name, x}});
      auto b = plain.infer("mlp", {{in_name, x}});
      ASSERT_TRUE(a.ok()) << a.error->what();
      ASSERT_TRUE(b.ok()) << b.error->what();
      EXPECT_TRUE(a.outputs_in_shared_memory);
      EXPECT_TRUE(same(a.output(out_name), b.output(out_name)));
    }
  }
}

// `quiver perf` issues each request from the previous one's callback. Once its only server dies
// (and its breaker opens) every request fails before infer_async returns; the callbacks must not
// nest (this overflowed the stack within a window: SIGSEGV). A small stack makes any recursion
// show at once.
TEST(ClientServe, PerfWithDeadServerFailsEveryRequestWithoutRecursing) {
  Repo repo;
  auto s = serve(repo);
  const std::string addr = s->grpc();
  const std::string cmd = "bash -c 'ulimit -s 512; exec timeout 120 " + kQuiver + " perf -m identity -u " + addr +
                          " --concurrency-range 4 -p 300 -s 0 --max-trials 10' 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char line[4096];
  bool killed = false;
  while (fgets(line, sizeof line, p)) {
    out += line;
    if (!killed && out.find("Pass [1]") != std::string::npos) {  // measuring: now the server dies
      s->kill9();
      killed = true;
    }
  }
  const int rc = pclose(p);
  ASSERT_TRUE(killed) << out;
  ASSERT_TRUE(WIFEXITED(rc)) << "status " << rc << "\n" << out;
  EXPECT_NE(WEXITSTATUS(rc), 124) << "timed out\n" << out;
  EXPECT_LT(WEXITSTATUS(rc), 128) << "killed by a signal\n" << out;
  // Windows of failures, then a clear error: nothing succeeded at that concurrency.
  EXPECT_NE(out.find("errors)"), std::string::npos) << out;
  EXPECT_NE(out.find("every request failed at concurrency 4"), std::string::npos) << out;
}

TEST(ClientServe, PerfCommandReportsPerServerCsvAndPlot) {
  Repo repo;
  auto s0 = serve(repo), s1 = serve(repo);
  fs::path csv = repo.dir / "perf.csv", svg = repo.dir / "perf.svg", log = repo.dir / "perf.log";
  std::string cmd = kQuiver + " perf -m identity -u " + s0->grpc() + " -u " + s1->grpc() +
                    " --concurrency-range 1:2:1 -b 2 -p 200 --max-trials 4 --shared-memory system --fallback-repository " +
                    repo.dir.string() + " -f " + csv.string() + " --plot " + svg.string() + " > " + log.string() +
                    " 2>&1";
  ASSERT_EQ(std::system(("timeout 60 " + cmd).c_str()), 0) << read_file(log.string());
  std::string out = read_file(log.string());
  EXPECT_NE(out.find("Concurrency: 2"), std::string::npos) << out;
  EXPECT_NE(out.find(s0->grpc()), std::string::npos) << out;
  EXPECT_NE(out.find(s1->grpc()), std::string::npos) << out;
  EXPECT_NE(out.find("retries"), std::string::npos) << out;
  std::string c = read_file(csv.string());
  EXPECT_EQ(c.rfind("Concurrency,Inferences/Second", 0), 0u) << c;
  EXPECT_EQ(std::count(c.begin(), c.end(), '\n'), 3) << c;
  std::string p = read_file(svg.string());
  EXPECT_NE(p.find("<svg"), std::string::npos);
  EXPECT_NE(p.find("polyline"), std::string::npos);
  // Bad usage: a clear error, non-zero exit.
  EXPECT_NE(std::system((kQuiver + " perf -m identity > /dev/null 2>&1").c_str()), 0);
}
