// Client benchmarks (results in docs/benchmarks.md, "Client"):
//  1. overhead: client CPU per async request, Quiver client vs a raw gRPC CompletionQueue loop
//     sending the same messages to the same `quiver serve` (process CPU time of this process).
//  2. coalescing: 64 caller threads, each a synchronous loop on the MLP (hls4ml three-layer with a
//     dynamic batch dim), with and without BatchingClient: RPCs, throughput, p50/p99.
//  3. scaling: closed-loop throughput with 1 vs 2 servers (CPU-bound MLP, and a latency-bound
//     identity model whose execution sleeps 10 ms, one instance per server).
// Usage: client_bench [seconds-per-measurement]   (default 3)
#include <grpcpp/grpcpp.h>
#include <onnx/onnx_pb.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "support/server_process.hpp"
#include "kserve/infer_messages.hpp"
#include "grpc_service.grpc.pb.h"
#include "quiver/client/client.hpp"
#include "quiver/core/util.hpp"

using namespace quiver;
using namespace quiver::client;
namespace fs = std::filesystem;
using quiver::testing::ServerProcess;

namespace {

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

fs::path make_repo() {
  fs::path dir = fs::temp_directory_path() / ("quiver_client_bench_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "identity" / "1");
  write_file((dir / "identity" / "config.pbtxt").string(),
             "name: \"identity\"\nbackend: \"identity\"\nmax_batch_size: 64\n"
             "input [ { name: \"INPUT0\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
             "output [ { name: \"OUTPUT0\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n");
  fs::create_directories(dir / "sleepy" / "1");
  write_file((dir / "sleepy" / "config.pbtxt").string(),
             "name: \"sleepy\"\nbackend: \"identity\"\nmax_batch_size: 64\n"
             "input [ { name: \"INPUT0\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
             "output [ { name: \"OUTPUT0\" data_type: TYPE_FP32 dims: [ 16 ] } ]\n"
             "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
             "parameters { key: \"execute_delay_ms\" value: { string_value: \"10\" } }\n");
  // The hls4ml MLP with its fixed batch of 1 turned into a dynamic "batch" dim.
  onnx::ModelProto m;
  if (!m.ParseFromString(read_file(QUIVER_SHARED_DIR "/models/hep/hls4ml_three_layer/model.onnx")))
    throw Error(ErrorCode::Parse, "cannot parse hls4ml model");
  std::set<std::string> inits;
  for (auto& t : m.graph().initializer()) inits.insert(t.name());
  auto batchify = [](onnx::ValueInfoProto* v) {
    auto* d = v->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0);
    d->clear_dim_value();
    d->set_dim_param("batch");
  };
  for (auto& in : *m.mutable_graph()->mutable_input())
    if (!inits.count(in.name())) batchify(&in);
  for (auto& out : *m.mutable_graph()->mutable_output()) batchify(&out);
  fs::create_directories(dir / "mlp" / "1");
  write_file((dir / "mlp" / "1" / "model.onnx").string(), m.SerializeAsString());
  write_file((dir / "mlp" / "config.pbtxt").string(), "name: \"mlp\"\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: 64\n");
  return dir;
}

std::unique_ptr<ServerProcess> serve(const fs::path& repo) {
  return std::make_unique<ServerProcess>(
      QUIVER_BINARY_DIR "/src/cli/quiver",
      std::vector<std::string>{"serve", "--model-repository", repo.string(), "--grpc-port", "0", "--http-port", "-1",
                               "--metrics-port", "-1"});
}

Tensor features(int64_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  Tensor t = Tensor::empty(DType::F32, {rows, 16});
  for (auto& v : t.span<float>()) v = nd(rng);
  return t;
}

ClientOptions opts(std::vector<std::string> eps) {
  ClientOptions o;
  o.discovery.endpoints = std::move(eps);
  o.default_timeout_ns = 10'000'000'000;
  return o;
}

// ---- 1. overhead ----
struct CpuResult {
  double cpu_us_per_req, wall_rps;
};

CpuResult raw_grpc(const std::string& addr, const std::string& in_name, const Tensor& x, int n, int window) {
  auto ch = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(ch);
  grpc::CompletionQueue cq;
  struct Call {
    grpc::ClientContext ctx;
    inference::ModelInferResponse resp;
    grpc::Status st;
    std::unique_ptr<grpc::ClientAsyncResponseReader<inference::ModelInferResponse>> rpc;
  };
  int sent = 0, done = 0;
  auto send = [&] {
    InferOptions io;
    io.request_id = std::to_string(sent);
    auto msg = kserve::encode_request("identity", {{in_name, x}}, io, 10'000'000'000);
    auto* c = new Call;
    c->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    c->rpc = stub->PrepareAsyncModelInfer(&c->ctx, *msg, &cq);
    c->rpc->StartCall();
    c->rpc->Finish(&c->resp, &c->st, c);
    ++sent;
  };
  const double c0 = cpu_seconds();
  const int64_t t0 = now_ns();
  for (int i = 0; i < window && sent < n; ++i) send();
  void* tag;
  bool ok;
  while (done < n && cq.Next(&tag, &ok)) {
    auto* c = static_cast<Call*>(tag);
    auto out = kserve::decode_outputs(std::make_shared<inference::ModelInferResponse>(std::move(c->resp)));
    if (!c->st.ok() || out.empty()) std::fprintf(stderr, "raw grpc call failed: %s\n", c->st.error_message().c_str());
    delete c;
    ++done;
    if (sent < n) send();
  }
  const double secs = (now_ns() - t0) / 1e9;
  const double cpu = cpu_seconds() - c0;
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return {cpu / n * 1e6, n / secs};
}

CpuResult quiver_client(Client& c, const std::string& in_name, const Tensor& x, int n, int window) {
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<int> sent{0};
  int done = 0, failed = 0;
  std::function<void()> send = [&] {
    sent++;
    c.infer_async("identity", {{in_name, x}}, {}, [&](InferResult r) {
      bool more = sent.load() < n;
      if (more) send();
      std::lock_guard lk(mu);
      failed += !r.ok();
      if (++done == n) cv.notify_all();
    });
  };
  const double c0 = cpu_seconds();
  const int64_t t0 = now_ns();
  for (int i = 0; i < window; ++i) send();
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return done >= n; });
  }
  const double secs = (now_ns() - t0) / 1e9;
  const double cpu = cpu_seconds() - c0;
  if (failed) std::fprintf(stderr, "%d client requests failed\n", failed);
  return {cpu / n * 1e6, n / secs};
}

// ---- closed loop of T threads doing synchronous calls, for `secs` ----
struct LoopResult {
  double rps, p50_us, p99_us;
  int64_t requests, rpcs;
};

template <class Infer>
LoopResult closed_loop(int threads, double secs, Infer&& infer) {
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<int64_t> lat;
  std::atomic<int64_t> n{0}, errors{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      Tensor x = features(1, static_cast<uint32_t>(t));
      std::vector<int64_t> mine;
      while (!stop.load()) {
        int64_t t0 = now_ns();
        bool ok = infer(x);
        mine.push_back(now_ns() - t0);
        n++;
        errors += !ok;
      }
      std::lock_guard lk(mu);
      lat.insert(lat.end(), mine.begin(), mine.end());
    });
  const int64_t t0 = now_ns();
  std::this_thread::sleep_for(std::chrono::duration<double>(secs));
  stop = true;
  for (auto& t : ts) t.join();
  const double el = (now_ns() - t0) / 1e9;
  std::sort(lat.begin(), lat.end());
  if (errors) std::fprintf(stderr, "  (%lld errors)\n", static_cast<long long>(errors.load()));
  auto pct = [&](double p) { return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, size_t(p / 100 * lat.size()))] / 1e3; };
  return {n / el, pct(50), pct(99), n.load(), 0};
}

}  // namespace

int main(int argc, char** argv) {
  const double secs = argc > 1 ? std::atof(argv[1]) : 3.0;
  fs::path repo = make_repo();
  std::printf("client_bench on %u hardware threads, %.1f s per measurement\n\n", std::thread::hardware_concurrency(), secs);

  auto s0 = serve(repo);
  {
    // 1. Overhead vs raw gRPC (identity [1,16] fp32, 64 in flight; the server is another process).
    Client c(opts({s0->grpc()}));
    c.wait_for_serving(1, 5'000'000'000);
    Tensor x = features(1, 1);
    const int n = 20000;
    quiver_client(c, "INPUT0", x, 2000, 64);  // warm-up
    raw_grpc(s0->grpc(), "INPUT0", x, 2000, 64);
    CpuResult best_raw{1e9, 0}, best_q{1e9, 0};
    for (int rep = 0; rep < 3; ++rep) {
      auto r = raw_grpc(s0->grpc(), "INPUT0", x, n, 64);
      auto q = quiver_client(c, "INPUT0", x, n, 64);
      if (r.cpu_us_per_req < best_raw.cpu_us_per_req) best_raw = r;
      if (q.cpu_us_per_req < best_q.cpu_us_per_req) best_q = q;
    }
    std::printf("1. client CPU per async request (best of 3 x %d requests, 64 in flight, identity 1x16 fp32)\n", n);
    std::printf("   raw gRPC CQ loop : %6.2f us CPU/request, %8.0f requests/s\n", best_raw.cpu_us_per_req, best_raw.wall_rps);
    std::printf("   Quiver client    : %6.2f us CPU/request, %8.0f requests/s\n", best_q.cpu_us_per_req, best_q.wall_rps);
    std::printf("   client overhead  : %6.2f us CPU/request on top of gRPC\n", best_q.cpu_us_per_req - best_raw.cpu_us_per_req);
    // The client's own per-request steps in isolation (no RPC): balancer pick over 3 servers and
    // the request/response conversions that the raw loop also does.
    Balancer bal;
    bal.set_servers({"a:1", "b:2", "c:3"});
    const int m = 1'000'000;
    int64_t t0 = now_ns();
    size_t sink = 0;
    for (int i = 0; i < m; ++i) sink += bal.pick("identity")->address.size();
    const double pick_ns = double(now_ns() - t0) / m;
    auto resp = std::make_shared<inference::ModelInferResponse>();
    auto* o = resp->add_outputs();
    o->set_name("OUTPUT0");
    o->set_datatype("FP32");
    o->add_shape(1);
    o->add_shape(16);
    resp->add_raw_output_contents(std::string(64, '\0'));
    t0 = now_ns();
    for (int i = 0; i < m / 10; ++i) {
      auto msg = kserve::encode_request("identity", {{"INPUT0", x}}, {}, 0);
      sink += msg->raw_input_contents(0).size();
      sink += kserve::decode_outputs(resp).size();
    }
    const double conv_ns = double(now_ns() - t0) / (m / 10);
    std::printf("   in isolation     : balancer pick %.0f ns, encode+decode %.0f ns per request (%zu)\n\n", pick_ns,
                conv_ns, sink % 10);
  }
  {
    // 2. Coalescing: 64 callers on the MLP.
    Client c(opts({s0->grpc()}));
    c.wait_for_serving(1, 5'000'000'000);
    auto meta = c.model_metadata("mlp");
    const std::string in = meta->info.inputs[0].name;
    auto plain = closed_loop(64, secs, [&](const Tensor& x) { return c.infer("mlp", {{in, x}}).ok(); });
    plain.rpcs = plain.requests;
    const int64_t before = c.report().requests;
    BatchingClient bc(c, CoalesceOptions{.max_delay_ns = 500'000});
    auto co = closed_loop(64, secs, [&](const Tensor& x) { return bc.infer("mlp", {{in, x}}).ok(); });
    co.rpcs = c.report().requests - before;
    std::printf("2. coalescing, 64 caller threads, MLP (hls4ml 16-64-32-32-5, batch 1 per call), 1 server\n");
    std::printf("   %-12s %10s %10s %10s %10s %12s\n", "", "calls/s", "RPCs", "calls/RPC", "p50 us", "p99 us");
    std::printf("   %-12s %10.0f %10lld %10.1f %10.0f %12.0f\n", "uncoalesced", plain.rps, (long long)plain.rpcs,
                double(plain.requests) / plain.rpcs, plain.p50_us, plain.p99_us);
    std::printf("   %-12s %10.0f %10lld %10.1f %10.0f %12.0f\n", "coalesced", co.rps, (long long)co.rpcs,
                double(co.requests) / std::max<int64_t>(1, co.rpcs), co.p50_us, co.p99_us);
    std::printf("   -> %.1fx fewer RPCs per call, %.2fx throughput, p99 %+.0f us\n\n",
                (double(co.requests) / std::max<int64_t>(1, co.rpcs)) / (double(plain.requests) / plain.rpcs),
                co.rps / plain.rps, co.p99_us - plain.p99_us);
  }
  {
    // 3. Scaling with servers.
    auto s1 = serve(repo);
    std::printf("3. throughput vs servers (closed loop, 32 caller threads, batch 1)\n");
    for (const char* model : {"sleepy", "mlp"}) {
      double r1 = 0, r2 = 0;
      for (int ns = 1; ns <= 2; ++ns) {
        std::vector<std::string> eps{s0->grpc()};
        if (ns == 2) eps.push_back(s1->grpc());
        Client c(opts(eps));
        c.wait_for_serving(ns, 5'000'000'000);
        const std::string in = c.model_metadata(model)->info.inputs[0].name;
        auto r = closed_loop(32, secs, [&](const Tensor& x) { return c.infer(model, {{in, x}}).ok(); });
        (ns == 1 ? r1 : r2) = r.rps;
        auto rep = c.report();
        std::printf("   %-7s %d server(s): %9.0f calls/s  p99 %7.0f us  split:", model, ns, r.rps, r.p99_us);
        for (auto& s : rep.servers) std::printf(" %lld", (long long)s.requests);
        std::printf("\n");
      }
      std::printf("   %-7s 2 servers / 1 server = %.2fx\n", model, r2 / r1);
    }
  }
  fs::remove_all(repo);
  return 0;
}
