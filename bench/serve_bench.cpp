// Server benchmarks (docs/benchmarks.md, "Inference server"):
//  1. echo limit: a raw gRPC unary echo server (same gRPC, same callback API, same KServe
//     messages and payload) vs `quiver serve` running the identity model; ratio of throughputs
//     and the server-side overhead (p50 latency difference at concurrency 1).
//  2. dynamic batching: a 16-64-32-32-5 MLP (the hls4ml jet-tagging architecture) served with
//     and without the dynamic batcher at concurrency 64.
//  3. the batcher against the engine (issue #20 item 5): at concurrency 64, `quiver serve` with
//     dynamic batching (one instance) against the in-process engine's own throughput, one thread,
//     at the batch size the batcher formed (ParticleNet-AK4, TICL energy-id, the wide MLP), and the
//     tiny MLP batched against the raw gRPC echo at the same concurrency.
// Everything runs in this process on loopback, clients and servers sharing the machine, in one
// run so that ratios compare like with like.
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <map>
#include <thread>
#include <vector>

#include "grpc_service.grpc.pb.h"
#if QUIVER_BENCH_HAVE_ONNX
#include <onnx/onnx_pb.h>
#endif
#include "quiver/backends/backends.hpp"
#include "quiver/core/batching.hpp"
#include "quiver/core/util.hpp"
#if QUIVER_BENCH_HAVE_ONNX
#include "quiver/onnx/tensor_proto.hpp"
#endif
#include "quiver/serve/server.hpp"
#include "serve/repository.hpp"
#include "load_util.hpp"

namespace fs = std::filesystem;
using namespace quiver;

namespace {

// ---------------- raw echo server ----------------
// The echo's answer to one request: its inputs back, or with parameter "reply_bytes" one FP32
// output of that size, so that the response is as large as a model's (the batcher-vs-engine rounds).
void echo_reply(const inference::ModelInferRequest& req, inference::ModelInferResponse& resp) {
  resp.set_model_name(req.model_name());
  resp.set_model_version("1");
  resp.set_id(req.id());
  if (auto it = req.parameters().find("reply_bytes"); it != req.parameters().end()) {
    const int64_t n = it->second.int64_param() / 4;
    auto* o = resp.add_outputs();
    o->set_name("OUTPUT0");
    o->set_datatype("FP32");
    o->add_shape(1);
    o->add_shape(n);
    resp.add_raw_output_contents(std::string(static_cast<size_t>(n) * 4, '\0'));
    return;
  }
  for (int i = 0; i < req.inputs_size(); ++i) {
    auto* o = resp.add_outputs();
    o->set_name("OUTPUT0");
    o->set_datatype(req.inputs(i).datatype());
    *o->mutable_shape() = req.inputs(i).shape();
    *resp.add_raw_output_contents() = req.raw_input_contents(i);
  }
}

// The echo over one bidirectional stream (Triton's ModelStreamInfer): each request read is answered
// at once; answers are written one at a time, in order, as gRPC requires.
class EchoStream final : public grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse> {
 public:
  EchoStream() { StartRead(&req_); }
  void OnReadDone(bool ok) override {
    std::lock_guard lk(mu_);
    if (!ok) {
      reading_ = false;
      if (!writing_) finish();
      return;
    }
    auto resp = std::make_unique<inference::ModelStreamInferResponse>();
    echo_reply(req_, *resp->mutable_infer_response());
    writes_.push_back(std::move(resp));
    if (!writing_) {
      writing_ = true;
      StartWrite(writes_.front().get());
    }
    StartRead(&req_);
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lk(mu_);
    writes_.pop_front();
    writing_ = ok && !writes_.empty();
    if (writing_) StartWrite(writes_.front().get());
    else if (!reading_ || !ok) finish();
  }
  void OnDone() override { delete this; }

 private:
  void finish() {  // mu_ held; once, whichever of the read and write sides ends last
    if (!finished_) Finish(grpc::Status::OK);
    finished_ = true;
  }
  bool finished_ = false;
  std::mutex mu_;
  inference::ModelInferRequest req_;
  std::deque<std::unique_ptr<inference::ModelStreamInferResponse>> writes_;
  bool reading_ = true, writing_ = false;
};

class EchoService final : public inference::GRPCInferenceService::CallbackService {
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx, const inference::ModelInferRequest* req,
                                       inference::ModelInferResponse* resp) override {
    echo_reply(*req, *resp);
    return done(ctx);
  }
  grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse>* ModelStreamInfer(
      grpc::CallbackServerContext*) override {
    return new EchoStream;
  }
  // Just enough for `quiver perf` to drive it (echo-server mode): ready, and an FP32[-1,16] model
  // of any name.
  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* ctx, const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* r) override {
    r->set_live(true);
    return done(ctx);
  }
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx, const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* r) override {
    r->set_ready(true);
    return done(ctx);
  }
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx, const inference::ModelReadyRequest*,
                                       inference::ModelReadyResponse* r) override {
    r->set_ready(true);
    return done(ctx);
  }
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* ctx, const inference::ModelMetadataRequest* q,
                                          inference::ModelMetadataResponse* r) override {
    r->set_name(q->name());
    r->add_versions("1");
    r->set_platform("echo");
    for (auto* t : {r->add_inputs(), r->add_outputs()}) {
      t->set_name(t == &r->inputs(0) ? "INPUT0" : "OUTPUT0");
      t->set_datatype("FP32");
      t->add_shape(-1);
      t->add_shape(16);
    }
    return done(ctx);
  }

 private:
  static grpc::ServerUnaryReactor* done(grpc::CallbackServerContext* ctx) {
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }
};

// Starts `echo` on a free loopback port.
std::unique_ptr<grpc::Server> start_echo(EchoService& echo, int& port) {
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&echo);
  return b.BuildAndStart();
}

// ---------------- synthetic MLP backend ----------------
class Mlp final : public Model {
 public:
  Mlp() {
    info_.name = "mlp";
    info_.backend = "benchmlp";
    info_.max_batch = 1024;
    info_.inputs = {{"input_1_0", DType::F32, {Dim::sym("N"), 16}}};
    info_.outputs = {{"output_softmax", DType::F32, {Dim::sym("N"), 5}}};
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.f, 0.3f);
    for (size_t l = 0; l < 4; ++l) {
      w_[l].resize(kDims[l] * kDims[l + 1]);
      b_[l].resize(kDims[l + 1]);
      for (auto& x : w_[l]) x = nd(rng);
      for (auto& x : b_[l]) x = nd(rng);
    }
  }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<RunState>(); }
  void run(std::span<const Tensor> in, std::vector<Tensor>& out, RunState&) const override {
    validate_inputs(info_, in);
    const int64_t n = in[0].dim(0);
    out.resize(1);
    std::vector<int64_t> od = {n, 5};
    out[0].ensure(DType::F32, od);
    float a[64], b[64];
    for (int64_t r = 0; r < n; ++r) {
      std::memcpy(a, in[0].data<float>() + r * 16, 16 * sizeof(float));
      for (size_t l = 0; l < 4; ++l) {
        const size_t ni = kDims[l], no = kDims[l + 1];
        for (size_t o = 0; o < no; ++o) {
          float s = b_[l][o];
          const float* w = &w_[l][o * ni];
          for (size_t i = 0; i < ni; ++i) s += w[i] * a[i];
          b[o] = l < 3 ? std::max(s, 0.f) : s;
        }
        std::memcpy(a, b, no * sizeof(float));
      }
      float m = *std::max_element(a, a + 5), z = 0;
      for (int k = 0; k < 5; ++k) z += (a[k] = std::exp(a[k] - m));
      for (int k = 0; k < 5; ++k) out[0].data<float>()[r * 5 + k] = a[k] / z;
    }
  }

 private:
  static constexpr size_t kDims[5] = {16, 64, 32, 32, 5};
  ModelInfo info_;
  std::vector<float> w_[4], b_[4];
};

// ---------------- closed-loop load generator ----------------
using bench::Result;
using bench::summarize;
using bench::http_load;
using bench::measure_window;

Result load_request(const std::string& addr, const inference::ModelInferRequest& req, int concurrency, double seconds,
                    std::shared_ptr<grpc::Channel> ch = nullptr);

Result load(const std::string& addr, const std::string& model, int concurrency, double seconds, int width = 16,
            std::shared_ptr<grpc::Channel> ch = nullptr) {
  inference::ModelInferRequest req;
  req.set_model_name(model);
  auto* in = req.add_inputs();
  in->set_name(model.rfind("ticl", 0) == 0 ? "input"
               : model.rfind("mlp", 0) == 0 || model == "hls4ml" ? "input_1_0"
                                                                  : "INPUT0");
  in->set_datatype("FP32");
  in->add_shape(1);
  in->add_shape(width);
  std::vector<float> payload(static_cast<size_t>(width));
  for (int i = 0; i < width; ++i) payload[i] = 0.1f * float(i);
  req.add_raw_input_contents(std::string(reinterpret_cast<char*>(payload.data()), payload.size() * 4));
  return load_request(addr, req, concurrency, seconds, std::move(ch));
}

// Closed loop: `concurrency` copies of `req` in flight, each reissued when its reply arrives.
Result load_request(const std::string& addr, const inference::ModelInferRequest& req, int concurrency, double seconds,
                    std::shared_ptr<grpc::Channel> ch) {
  if (!ch) ch = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(ch);
  struct Slot {
    std::unique_ptr<grpc::ClientContext> ctx;
    inference::ModelInferResponse resp;
    int64_t t0 = 0;
  };
  std::vector<Slot> slots(static_cast<size_t>(concurrency));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int64_t> lat;
  lat.reserve(1 << 20);
  std::atomic<bool> measuring{false}, stop{false};
  std::atomic<uint64_t> errors{0};
  int active = concurrency;
  std::function<void(size_t)> issue = [&](size_t i) {
    Slot& s = slots[i];
    s.ctx = std::make_unique<grpc::ClientContext>();
    s.resp.Clear();
    s.t0 = now_ns();
    stub->async()->ModelInfer(s.ctx.get(), &req, &s.resp, [&, i](grpc::Status st) {
      int64_t dt = now_ns() - slots[i].t0;
      if (!st.ok() && errors++ == 0) std::fprintf(stderr, "first error: %s\n", st.error_message().c_str());
      if (measuring.load()) {
        std::lock_guard lk(mu);
        lat.push_back(dt);
      }
      if (stop.load()) {
        std::lock_guard lk(mu);
        if (--active == 0) cv.notify_all();
        return;
      }
      issue(i);
    });
  };
  for (size_t i = 0; i < slots.size(); ++i) issue(i);
  const int64_t ns = measure_window(seconds, measuring, [&] {
    std::lock_guard lk(mu);
    lat.clear();
    errors = 0;
  });
  stop = true;
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return active == 0; });
  }
  return summarize(lat, ns, errors);
}

// Closed loop over one bidirectional stream (ModelStreamInfer, as Triton's perf_analyzer --streaming):
// `concurrency` copies of `req` in flight, each rewritten when its answer arrives. A stream costs
// no per-call set-up (no new HTTP/2 stream, headers or call object per request), so the transport's
// share per request is smaller than the unary loop's. Answers may come back in any order: the id
// says which copy each one answers.
class StreamLoop final : public grpc::ClientBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse> {
 public:
  StreamLoop(inference::GRPCInferenceService::Stub& stub, const inference::ModelInferRequest& req, int concurrency)
      : slots_(static_cast<size_t>(concurrency)) {
    for (size_t i = 0; i < slots_.size(); ++i) {
      slots_[i].req = req;
      slots_[i].req.set_id(std::to_string(i));
    }
    lat_.reserve(1 << 20);
    stub.async()->ModelStreamInfer(&ctx_, this);
    StartRead(&resp_);
    {
      std::lock_guard lk(mu_);
      for (size_t i = 0; i < slots_.size(); ++i) queue_write(i);
    }
    StartCall();
  }
  std::atomic<bool> measuring{false};
  void reset() {
    std::lock_guard lk(mu_);
    lat_.clear();
    errors_ = 0;
  }
  // Stops reissuing, waits for the answers in flight and the stream's end; the window's latencies.
  Result finish(int64_t ns) {
    std::unique_lock lk(mu_);
    stopping_ = true;
    if (in_flight_ == 0 && !writing_) close_writes();
    cv_.wait(lk, [&] { return done_; });
    return summarize(lat_, ns, errors_);
  }

  void OnReadDone(bool ok) override {
    std::lock_guard lk(mu_);
    if (!ok) return;  // the stream ended; OnDone follows
    const int64_t now = now_ns();
    const std::string& id = resp_.infer_response().id();
    char* end = nullptr;
    const size_t i = std::strtoul(id.c_str(), &end, 10);
    if (id.empty() || *end || i >= slots_.size()) {  // an answer to no request of ours: nothing can be timed
      std::fprintf(stderr, "serve_bench: a stream answer with id '%s', which no request had\n", id.c_str());
      std::abort();
    }
    if (!resp_.error_message().empty() && errors_++ == 0)
      std::fprintf(stderr, "first stream error: %s\n", resp_.error_message().c_str());
    if (measuring.load()) lat_.push_back(now - slots_[i].t0);
    --in_flight_;
    if (!stopping_) queue_write(i);
    else if (in_flight_ == 0 && !writing_) close_writes();
    StartRead(&resp_);
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lk(mu_);
    writing_ = false;
    if (!ok) return;
    if (!pending_.empty()) start_write();
    else if (stopping_ && in_flight_ == 0) close_writes();
  }
  void OnDone(const grpc::Status& st) override {
    std::lock_guard lk(mu_);
    if (!st.ok()) std::fprintf(stderr, "stream ended: %s\n", st.error_message().c_str());
    done_ = true;
    cv_.notify_all();
  }

 private:
  struct Slot {
    inference::ModelInferRequest req;
    int64_t t0 = 0;
  };
  void queue_write(size_t i) {  // mu_ held; the latency runs from here (a closed loop's wait included)
    ++in_flight_;
    slots_[i].t0 = now_ns();
    pending_.push_back(i);
    if (!writing_) start_write();
  }
  void start_write() {  // mu_ held
    const size_t i = pending_.front();
    pending_.pop_front();
    writing_ = true;
    StartWrite(&slots_[i].req);
  }
  void close_writes() {  // mu_ held
    if (!closed_) StartWritesDone();
    closed_ = true;
  }
  grpc::ClientContext ctx_;
  inference::ModelStreamInferResponse resp_;
  std::vector<Slot> slots_;
  std::deque<size_t> pending_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int64_t> lat_;
  uint64_t errors_ = 0;
  int in_flight_ = 0;
  bool writing_ = false, stopping_ = false, closed_ = false, done_ = false;
};

Result load_stream(const std::string& addr, const inference::ModelInferRequest& req, int concurrency, double seconds) {
  auto ch = grpc::CreateChannel(addr, grpc::InsecureChannelCredentials());
  auto stub = inference::GRPCInferenceService::NewStub(ch);
  StreamLoop loop(*stub, req, concurrency);
  const int64_t ns = measure_window(seconds, loop.measuring, [&] { loop.reset(); });
  return loop.finish(ns);
}

void print(const char* what, int conc, const Result& r) {
  std::printf("| %-44s | %4d | %10.0f | %8.1f | %8.1f | %8.1f | %6llu |\n", what, conc, r.rps, r.p50, r.p99,
              r.p95, static_cast<unsigned long long>(r.errors));
  std::fflush(stdout);
}

#if QUIVER_BENCH_HAVE_ONNX
// A wide dense net as an ONNX file for the ONNX engine: 16 -> 1024 -> 1024 -> 1024 -> 5 (Gemm +
// Relu, Softmax), dynamic batch dimension "N". 2.1 M parameters = 8.3 MB of FP32 weights, far
// beyond L1/L2, so one execution costs far more than one gRPC request: the case where the
// dynamic batcher pays (each executed batch reads the weights once instead of once per row).
void write_wide_mlp(const fs::path& file) {
  constexpr int64_t kDims[5] = {16, 1024, 1024, 1024, 5};
  ::onnx::ModelProto m;
  m.set_ir_version(7);
  m.set_producer_name("quiver serve_bench");
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("wide_mlp");
  auto value_info = [](::onnx::ValueInfoProto* v, const char* name, int64_t width) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(::onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_param("N");
    tt->mutable_shape()->add_dim()->set_dim_value(width);
  };
  value_info(g->add_input(), "input_1_0", kDims[0]);
  value_info(g->add_output(), "output_softmax", kDims[4]);
  std::mt19937 rng(11);
  std::string prev = "input_1_0";
  for (int l = 0; l < 4; ++l) {
    const int64_t ni = kDims[l], no = kDims[l + 1];
    std::normal_distribution<float> nd(0.f, 1.0f / std::sqrt(float(ni)));
    auto* w = g->add_initializer();
    w->set_name("W" + std::to_string(l));
    w->set_data_type(::onnx::TensorProto::FLOAT);
    w->add_dims(no);
    w->add_dims(ni);
    std::vector<float> wv(static_cast<size_t>(no * ni));
    for (auto& x : wv) x = nd(rng);
    w->set_raw_data(std::string(reinterpret_cast<const char*>(wv.data()), wv.size() * 4));
    auto* b = g->add_initializer();
    b->set_name("B" + std::to_string(l));
    b->set_data_type(::onnx::TensorProto::FLOAT);
    b->add_dims(no);
    std::vector<float> bv(static_cast<size_t>(no));
    for (auto& x : bv) x = 0.1f * nd(rng);
    b->set_raw_data(std::string(reinterpret_cast<const char*>(bv.data()), bv.size() * 4));
    auto* n = g->add_node();
    n->set_op_type("Gemm");
    n->add_input(prev);
    n->add_input(w->name());
    n->add_input(b->name());
    const std::string y = "gemm" + std::to_string(l);
    n->add_output(y);
    auto* a = n->add_attribute();
    a->set_name("transB");
    a->set_type(::onnx::AttributeProto::INT);
    a->set_i(1);
    prev = y;
    auto* act = g->add_node();
    act->set_op_type(l < 3 ? "Relu" : "Softmax");
    act->add_input(y);
    prev = l < 3 ? "relu" + std::to_string(l) : "output_softmax";
    act->add_output(prev);
  }
  std::ofstream f(file, std::ios::binary);
  m.SerializeToOstream(&f);
}
#endif

std::string write_repo() {
  std::string root = (fs::temp_directory_path() / ("quiver-serve-bench-" + std::to_string(getpid()))).string();
  auto put = [&](const std::string& rel, const std::string& text) {
    fs::create_directories((fs::path(root) / rel).parent_path());
    std::ofstream(fs::path(root) / rel) << text;
  };
  put("ident/config.pbtxt", R"(backend: "identity"
max_batch_size: 0
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 1, 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 1, 16 ] } ]
instance_group [ { count: 8 kind: KIND_CPU } ]
)");
  fs::create_directories(fs::path(root) / "ident/1");
  put("mlp_nobatch/config.pbtxt", R"(backend: "quiver"
default_model_filename: "model.benchmlp"
max_batch_size: 64
instance_group [ { count: 1 kind: KIND_CPU } ]
)");
  put("mlp_nobatch/1/model.benchmlp", "synthetic");
  put("mlp/config.pbtxt", R"(backend: "quiver"
default_model_filename: "model.benchmlp"
max_batch_size: 64
dynamic_batching { max_queue_delay_microseconds: 100 }
instance_group [ { count: 1 kind: KIND_CPU } ]
)");
  put("mlp/1/model.benchmlp", "synthetic");
  // The real hls4ml MLP on the ONNX engine (fixed batch 1: no batching possible), when present.
  fs::path hls = fs::path(QUIVER_SHARED_DIR) / "models/hep/hls4ml_three_layer/model.onnx";
  auto backends = quiver::registered_backends();
  if (fs::exists(hls) && std::find(backends.begin(), backends.end(), "onnx") != backends.end()) {
    fs::create_directories(fs::path(root) / "hls4ml/1");
    fs::copy_file(hls, fs::path(root) / "hls4ml/1/model.onnx");
    put("hls4ml/config.pbtxt", "platform: \"onnxruntime_onnx\"\ninstance_group [ { count: 8 kind: KIND_CPU } ]\n");
  }
  // Realistic per-execution cost for the batching comparison (see write_wide_mlp), and a real HEP
  // MLP with a dynamic batch dimension (TICL superclustering DNN, 17-input 4-layer MLP, ONNX).
  if (std::find(backends.begin(), backends.end(), "onnx") != backends.end()) {
#if QUIVER_BENCH_HAVE_ONNX
    for (const char* name : {"mlpwide", "mlpwide_nobatch"}) {
      fs::create_directories(fs::path(root) / name / "1");
      write_wide_mlp(fs::path(root) / name / "1/model.onnx");
    }
    put("mlpwide_nobatch/config.pbtxt", "platform: \"onnxruntime_onnx\"\nmax_batch_size: 64\n"
                                         "instance_group [ { count: 1 kind: KIND_CPU } ]\n");
    put("mlpwide/config.pbtxt", "platform: \"onnxruntime_onnx\"\nmax_batch_size: 64\n"
                                 "dynamic_batching { max_queue_delay_microseconds: 100 }\n"
                                 "instance_group [ { count: 1 kind: KIND_CPU } ]\n");
#endif
    // Real CMS models behind the batcher, for the comparison with the engine's own throughput.
    for (const auto& [name, dir] : {std::pair<const char*, const char*>{"pnak4", "particlenet_ak4_hlt"}, {"energyid", "ticl_energy_id"}}) {
      const fs::path src = fs::path(QUIVER_SHARED_DIR) / "models/hep" / dir / "model.onnx";
      if (!fs::exists(src)) continue;
      fs::create_directories(fs::path(root) / name / "1");
      fs::copy_file(src, fs::path(root) / name / "1/model.onnx");
      put(std::string(name) + "/config.pbtxt", "platform: \"onnxruntime_onnx\"\nmax_batch_size: 64\n"
                                                "dynamic_batching { max_queue_delay_microseconds: 100 }\n"
                                                "instance_group [ { count: 1 kind: KIND_CPU } ]\n");
    }
    fs::path ticl = fs::path(QUIVER_SHARED_DIR) / "models/hep/ticl_supercls/model.onnx";
    if (fs::exists(ticl)) {
      for (const char* name : {"ticl", "ticl_nobatch"}) {
        fs::create_directories(fs::path(root) / name / "1");
        fs::copy_file(ticl, fs::path(root) / name / "1/model.onnx");
      }
      put("ticl_nobatch/config.pbtxt", "platform: \"onnxruntime_onnx\"\nmax_batch_size: 64\n"
                                        "instance_group [ { count: 1 kind: KIND_CPU } ]\n");
      put("ticl/config.pbtxt", "platform: \"onnxruntime_onnx\"\nmax_batch_size: 64\n"
                                "dynamic_batching { max_queue_delay_microseconds: 100 }\n"
                                "instance_group [ { count: 1 kind: KIND_CPU } ]\n");
    }
  }
  return root;
}

#if QUIVER_BENCH_HAVE_ONNX
// Row 0 of every input of a model's test_data_set_0 (model input order): one event, as a client
// sends it.
std::vector<NamedTensor> first_event(const fs::path& model_dir) {
  std::vector<NamedTensor> out;
  for (const auto& f : quiver::onnx::numbered_files((model_dir / "test_data_set_0").string(), "input")) {
    NamedTensor t = quiver::onnx::read_tensor_file(f);
    t.tensor = t.tensor.rows(0, 1).clone();
    out.push_back(std::move(t));
  }
  return out;
}

inference::ModelInferRequest request_of(const std::string& model, const std::vector<NamedTensor>& event) {
  inference::ModelInferRequest req;
  req.set_model_name(model);
  for (const auto& t : event) {
    auto* in = req.add_inputs();
    in->set_name(t.name);
    in->set_datatype("FP32");  // the inputs of these models
    for (int64_t d : t.tensor.dims()) in->add_shape(d);
    req.add_raw_input_contents(std::string(static_cast<const char*>(t.tensor.raw()), t.tensor.nbytes()));
  }
  return req;
}

// The engine's own throughput in rows/s on this thread at `batch` rows per call: a warmed state,
// then a window of `seconds` and at least 20 calls (as quiver bench).
double engine_rows_per_s(const Model& model, const std::vector<NamedTensor>& event, int64_t batch, double seconds) {
  std::vector<Tensor> one;
  for (const auto& t : event) one.push_back(t.tensor);
  const std::vector<Tensor> in = tile_rows(one, batch);
  auto st = model.make_state();
  std::vector<Tensor> out;
  for (int i = 0; i < 20; ++i) model.run(in, out, *st);
  const int64_t t0 = now_ns(), stop = t0 + static_cast<int64_t>(seconds * 1e9);
  int64_t calls = 0, t = t0;
  while (t < stop || calls < 20) {
    model.run(in, out, *st);
    ++calls;
    t = now_ns();
  }
  return static_cast<double>(calls * batch) / (static_cast<double>(t - t0) * 1e-9);
}

// The engine over the same mix of batches the batcher formed (size -> executions): its rows per
// second. Per-row cost falls steeply with the batch (a batch of 1 streams all weights for one
// row), so the engine at the mean batch alone overstates what any server could reach with the
// batches it actually formed.
double engine_rows_per_s_mix(const Model& model, const std::vector<NamedTensor>& event,
                             const std::map<int64_t, uint64_t>& mix) {
  if (mix.empty()) return std::nan("");  // no execution in the round (its errors are printed)
  std::vector<Tensor> one;
  for (const auto& t : event) one.push_back(t.tensor);
  std::map<int64_t, std::vector<Tensor>> inputs;
  auto st = model.make_state();
  std::vector<Tensor> out;
  for (auto it = mix.rbegin(); it != mix.rend(); ++it) {  // largest first: the state is sized once
    inputs[it->first] = tile_rows(one, it->first);
    for (int i = 0; i < 3; ++i) model.run(inputs[it->first], out, *st);
  }
  // Round-robin over the sizes, as the batcher interleaves them, until each ran its count.
  std::map<int64_t, uint64_t> left = mix;
  int64_t rows = 0;
  const int64_t t0 = now_ns();
  for (bool any = true; any;) {
    any = false;
    for (auto& [size, n] : left) {
      if (n == 0) continue;
      model.run(inputs[size], out, *st);
      rows += size;
      --n;
      any = true;
    }
  }
  return static_cast<double>(rows) / (static_cast<double>(now_ns() - t0) * 1e-9);
}
#endif

double cpu_seconds() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string med_spread(const std::vector<double>& v, int digits) {
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.*f [%.*f-%.*f]", digits, median_of(v), digits, *lo, digits, *hi);
  return buf;
}

void register_bench_backends() {
  register_backend({"benchmlp", [](const std::string& p, std::string_view) { return p.ends_with(".benchmlp"); },
                    [](const std::string&, const LoadOptions&) -> std::shared_ptr<const Model> {
                      return std::make_shared<Mlp>();
                    }});
}

// A numeric field of /proc/PID/status ("VmRSS:" in kB, "Threads:").
int64_t proc_status(pid_t pid, const char* field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(f, line))
    if (line.compare(0, n, field) == 0) return std::atoll(line.c_str() + n);
  return -1;
}
int64_t rss_of(pid_t pid) { return proc_status(pid, "VmRSS:") * 1024; }

// serve_bench soak SECONDS. The server runs in a child process (forked before gRPC is touched)
// so that its RSS is measured alone, without the load generator's. Each 10 s window runs three
// closed loops at once, so every request path is exercised for the whole soak: gRPC identity
// (inline execution path, concurrency 16), gRPC MLP through the dynamic batcher (concurrency 16)
// and HTTP identity with the binary extension (concurrency 4). The server's RSS is printed before
// any load, after every window and at the end. Warm-up = the first 6 windows (60 s); growth is
// reported from the end of the warm-up to the last window, and also from the first window.
// Per window also the server's heap (glibc mallinfo2: bytes in use / held by the allocator) and
// its thread count, to tell a leak from allocator or thread-pool growth.
// QUIVER_SOAK_PARTS=ident,mlp,http,echo (default ident,mlp,http) restricts the mix, to bisect
// growth; "echo" loads a raw gRPC echo server in the server process instead of quiver.
int soak(double secs) {
  int up[2], down[2];
  if (pipe(up) != 0 || pipe(down) != 0) return 1;
  const pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) {
    close(up[0]);
    close(down[1]);
    register_bench_backends();
    std::string repo = write_repo();
    serve::ServerOptions so;
    so.repository = repo;
    so.grpc_port = 0;
    so.http_port = 0;
    so.metrics_port = -1;
    int rc = 0;
    {
      serve::Server server(so);
      server.start();
      // The raw gRPC echo server in the same process ("echo" part): tells gRPC's own per-connection
      // memory from quiver's.
      EchoService echo;
      int echo_port = 0;
      auto echo_server = start_echo(echo, echo_port);
      std::string ports = std::to_string(server.grpc_port()) + " " + std::to_string(server.http_port()) + " " +
                          std::to_string(echo_port) + "\n";
      if (write(up[1], ports.data(), ports.size()) != static_cast<ssize_t>(ports.size())) rc = 1;
      // Each byte from the parent asks for the heap statistics (glibc mallinfo2 over all arenas):
      // bytes in use vs bytes the allocator holds, to tell a leak from fragmentation.
      char c;
      while (read(down[0], &c, 1) > 0) {  // until the parent closes the pipe (or dies)
        const struct mallinfo2 mi = mallinfo2();
        const std::string line = std::to_string(mi.uordblks + mi.hblkhd) + " " + std::to_string(mi.arena + mi.hblkhd) + "\n";
        if (write(up[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) break;
      }
      auto st = server.repository().get("mlp")->scheduler->stats();
      std::printf("server: mlp executions %llu, mean batch %.1f\n", static_cast<unsigned long long>(st.execution_count),
                  st.execution_count ? double(st.inference_count) / double(st.execution_count) : 0.0);
      std::fflush(stdout);
      echo_server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      server.shutdown();
    }
    fs::remove_all(repo);
    _exit(rc);
  }
  close(up[1]);
  close(down[0]);
  std::string ports;
  char c;
  while (read(up[0], &c, 1) == 1 && c != '\n') ports += c;
  int gport = 0, hport = 0, eport = 0;
  if (std::sscanf(ports.c_str(), "%d %d %d", &gport, &hport, &eport) != 3) {
    std::fprintf(stderr, "soak: the server process did not start\n");
    return 1;
  }
  const std::string qaddr = "127.0.0.1:" + std::to_string(gport);
  const char* parts_env = std::getenv("QUIVER_SOAK_PARTS");
  const std::string parts = parts_env ? parts_env : "ident,mlp,http";
  const bool do_i = parts.find("ident") != std::string::npos, do_m = parts.find("mlp") != std::string::npos,
             do_h = parts.find("http") != std::string::npos, do_e = parts.find("echo") != std::string::npos;
  const int windows = std::max(2, static_cast<int>(secs / 10));
  const int warm = std::min(6, windows - 1);
  const int64_t rss0 = rss_of(child);
  const int64_t t_start = now_ns();
  std::printf("soak: server pid %d, %d windows of 10 s, parts %s; server RSS at start (no load yet) %.2f MiB\n",
              static_cast<int>(child), windows, parts.c_str(), double(rss0) / 1048576.0);
  std::fflush(stdout);
  int64_t first = 0, after_warm = 0, last = 0, peak = 0;
  uint64_t total = 0, errors = 0;
  // QUIVER_SOAK_REUSE_CHANNEL=1: one gRPC channel per load for the whole soak instead of a new
  // connection per window.
  std::shared_ptr<grpc::Channel> ch_i, ch_m;
  if (std::getenv("QUIVER_SOAK_REUSE_CHANNEL")) {
    ch_i = grpc::CreateChannel(qaddr, grpc::InsecureChannelCredentials());
    ch_m = grpc::CreateChannel(qaddr, grpc::InsecureChannelCredentials());
  }
  for (int w = 0; w < windows; ++w) {
    Result ri, rm, rh;
    std::thread tm([&] { if (do_m) rm = load(qaddr, "mlp", 16, 10.0, 16, ch_m); });
    std::thread th([&] { if (do_h) rh = http_load(hport, 4, 10.0); });
    if (do_i) ri = load(qaddr, "ident", 16, 10.0, 16, ch_i);
    if (do_e) ri = load("127.0.0.1:" + std::to_string(eport), "ident", 16, 10.0, 16, ch_i);
    tm.join();
    th.join();
    const uint64_t n = ri.requests + rm.requests + rh.requests;
    const uint64_t e = ri.errors + rm.errors + rh.errors;
    total += n;
    errors += e;
    last = rss_of(child);
    peak = std::max(peak, last);
    double heap_used = 0, heap_held = 0;
    if (write(down[1], "m", 1) == 1) {
      std::string l;
      while (read(up[0], &c, 1) == 1 && c != '\n') l += c;
      std::sscanf(l.c_str(), "%lf %lf", &heap_used, &heap_held);
    }
    if (w == 0) first = last;
    if (w == warm - 1) after_warm = last;
    std::printf("window %d t=%.0fs: %llu requests (grpc ident %.0f/s, grpc mlp batched %.0f/s, http %.0f/s), "
                "errors %llu, server RSS %.2f MiB, heap in use %.2f / held %.2f MiB, %lld threads "
                "(load generator RSS %.2f MiB)\n",
                w, double(now_ns() - t_start) * 1e-9, static_cast<unsigned long long>(n), ri.rps, rm.rps, rh.rps,
                static_cast<unsigned long long>(e), double(last) / 1048576.0, heap_used / 1048576.0,
                heap_held / 1048576.0, static_cast<long long>(proc_status(child, "Threads:")),
                double(current_rss_bytes()) / 1048576.0);
    std::fflush(stdout);
  }
  std::printf("soak: %.0f s, %llu requests, %llu errors\n", double(now_ns() - t_start) * 1e-9,
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(errors));
  std::printf("soak: server RSS start %.2f MiB, first window %.2f, after warm-up (window %d) %.2f, last %.2f, peak %.2f\n",
              double(rss0) / 1048576.0, double(first) / 1048576.0, warm - 1, double(after_warm) / 1048576.0,
              double(last) / 1048576.0, double(peak) / 1048576.0);
  std::printf("soak: server RSS growth after warm-up: %+.2f%%; after the first window: %+.2f%%\n",
              100.0 * double(last - after_warm) / double(after_warm), 100.0 * double(last - first) / double(first));
  std::fflush(stdout);
  close(down[1]);
  int status = 0;
  waitpid(child, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 && errors == 0 ? 0 : 1;
}


// serve_bench echo-server [SECONDS]: only the raw echo server, printing its port, for external
// clients (quiver perf -u 127.0.0.1:PORT -m ANY) and per-request profiles of the bare transport.
int echo_server_only(double secs) {
  EchoService echo;
  int port = 0;
  auto server = start_echo(echo, port);
  std::printf("echo server ready grpc=127.0.0.1:%d\n", port);
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::duration<double>(secs));
  server->Shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // The process's malloc arenas, as `quiver serve` sets them (one per core);
  // QUIVER_BENCH_MALLOC_ARENAS=N for A/B runs (0 = glibc's default).
  const char* arenas = std::getenv("QUIVER_BENCH_MALLOC_ARENAS");
  quiver::set_malloc_arenas(arenas ? std::atoi(arenas) : -1);
  if (argc > 2 && std::string(argv[1]) == "soak") return soak(std::atof(argv[2]));
  if (argc > 1 && std::string(argv[1]) == "echo-server") return echo_server_only(argc > 2 ? std::atof(argv[2]) : 60);
  // serve_bench batching [SECS [REPS]]: only the dynamic-batching comparisons.
  const bool only_batching = argc > 1 && std::string(argv[1]) == "batching";
  // QUIVER_BENCH_ONLY=name[,name]: only these models' batching rounds (pnak4, energyid, mlpwide,
  // mlp), e.g. to profile one of them.
  const char* only_env = std::getenv("QUIVER_BENCH_ONLY");
  auto wanted = [only = std::string(only_env ? only_env : "")](const std::string& name) {
    if (only.empty()) return true;
    return ("," + only + ",").find("," + name + ",") != std::string::npos;
  };
  if (only_batching) {
    --argc;
    ++argv;
  }
  double secs = argc > 1 ? std::atof(argv[1]) : 3.0;
  register_bench_backends();
  std::string repo = write_repo();

  // Echo limit.
  EchoService echo;
  int echo_port = 0;
  auto echo_server = start_echo(echo, echo_port);

  serve::ServerOptions so;
  so.repository = repo;
  so.grpc_port = 0;
  so.http_port = 0;
  so.metrics_port = -1;
  serve::Server server(so);
  server.start();
  const std::string qaddr = "127.0.0.1:" + std::to_string(server.grpc_port());
  const std::string eaddr = "127.0.0.1:" + std::to_string(echo_port);

  std::printf("cores: %u, window %.1f s per point, median of %d alternating runs, payload FP32[1,16]\n\n",
              std::thread::hardware_concurrency(), secs, argc > 2 ? std::atoi(argv[2]) : 3);
  std::printf("| %-44s | %4s | %10s | %8s | %8s | %8s | %6s |\n", "server", "conc", "req/s", "p50 us", "p99 us",
              "p95 us", "errors");
  std::printf("|%s|------|------------|----------|----------|----------|--------|\n", std::string(46, '-').c_str());
  // Echo and quiver points alternate, `reps` times each; medians are reported, so that load
  // from other processes on the machine hits both sides alike.
  const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
  auto alternate = [reps](const std::vector<std::function<Result()>>& loads) { return bench::alternate(reps, loads); };
  Result e1, q1, e16, q16;
  if (!only_batching) {
    auto m = alternate({[&] { return load(eaddr, "ident", 1, secs); }, [&] { return load(qaddr, "ident", 1, secs); },
                        [&] { return load(eaddr, "ident", 16, secs); }, [&] { return load(qaddr, "ident", 16, secs); }});
    e1 = m[0], q1 = m[1], e16 = m[2], q16 = m[3];
    print("raw gRPC echo (callback API)", 1, e1);
    print("quiver serve gRPC, identity", 1, q1);
    print("raw gRPC echo (callback API)", 16, e16);
    print("quiver serve gRPC, identity", 16, q16);
    if (fs::exists(fs::path(repo) / "hls4ml")) {
      auto h = alternate({[&] { return load(qaddr, "hls4ml", 1, secs); }, [&] { return load(qaddr, "hls4ml", 16, secs); }});
      Result x1 = h[0], x16 = h[1];
      print("quiver serve gRPC, hls4ml MLP (ONNX engine)", 1, x1);
      print("quiver serve gRPC, hls4ml MLP (ONNX engine)", 16, x16);
      std::printf("hls4ml / echo throughput: %.2f (concurrency 1), %.2f (concurrency 16); p50 overhead %.1f us\n",
                  x1.rps / e1.rps, x16.rps / e16.rps, x1.p50 - e1.p50);
    }
    Result h1 = http_load(server.http_port(), 1, secs);
    print("quiver serve HTTP (binary ext.), identity", 1, h1);
    Result h16 = http_load(server.http_port(), 16, secs);
    print("quiver serve HTTP (binary ext.), identity", 16, h16);
  }
  Result n64, d64;
  if (!only_env) {
    auto nd = alternate({[&] { return load(qaddr, "mlp_nobatch", 64, secs); }, [&] { return load(qaddr, "mlp", 64, secs); }});
    n64 = nd[0], d64 = nd[1];
    print("quiver serve, MLP 16-64-32-32-5, no batching", 64, n64);
    print("quiver serve, MLP, dynamic batching", 64, d64);
  }

  // The same comparison where one execution costs more than the transport: the wide MLP, and the
  // real TICL MLP. Reported whether or not they reach the 5x target.
  std::vector<std::pair<std::string, double>> gains;
  auto batching_pair = [&](const std::string& base, const char* label, int width) {
    if (!fs::exists(fs::path(repo) / base) || only_env) return;
    auto r = alternate({[&] { return load(qaddr, base + "_nobatch", 64, secs, width); },
                        [&] { return load(qaddr, base, 64, secs, width); }});
    Result n = r[0], d = r[1];
    print((std::string(label) + ", no batching").c_str(), 64, n);
    print((std::string(label) + ", dynamic batching").c_str(), 64, d);
    auto s = server.repository().get(base)->scheduler->stats();
    std::printf("  %s: dynamic batching gain %.2fx (mean executed batch %.1f)\n", base.c_str(), d.rps / n.rps,
                s.execution_count ? double(s.inference_count) / double(s.execution_count) : 0.0);
    std::fflush(stdout);
  };
  batching_pair("mlpwide", "wide MLP 16-1024x3-5, ONNX", 16);
  batching_pair("ticl", "TICL supercls MLP, ONNX", 17);

#if QUIVER_BENCH_HAVE_ONNX
  // The batcher against the engine itself: each round serves at concurrency 64, reads the mean
  // batch the batcher formed in that round from the scheduler's statistics, then runs the same
  // model file in-process on one thread at that batch (rounded). Target >= 0.8x.
  std::printf("\nbatcher vs engine, concurrency 64, dynamic batching (1 instance, max 64, 100 us delay) vs the in-process "
              "engine (1 thread) at the mean batch the batcher formed; median [min-max] of %d rounds\n\n", reps);
  // The last two columns bound what any server could reach here: the raw echo carries the same
  // request at concurrency 64 with no model (transport and load generator only), so its CPU per
  // request is the transport's floor; with the engine's CPU per row added, the machine's cores
  // serve at most cores / (echo CPU per request + 1 / engine rows/s) requests per second.
  std::printf("| %-26s | %22s | %16s | %26s | %18s | %18s | %18s | %22s | %18s |\n", "model", "served req/s", "mean batch",
              "engine rows/s at that batch", "served / engine", "process CPU cores", "instance busy cores",
              "echo req/s (CPU us/req)", "machine bound / engine");
  std::printf("|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(28, '-').c_str(), std::string(24, '-').c_str(),
              std::string(18, '-').c_str(), std::string(28, '-').c_str(), std::string(20, '-').c_str(),
              std::string(20, '-').c_str(), std::string(20, '-').c_str(), std::string(24, '-').c_str(),
              std::string(20, '-').c_str());
  auto vs_engine = [&](const std::string& name, const char* label, const std::vector<NamedTensor>& event) {
    if (!fs::exists(fs::path(repo) / name) || !wanted(name)) return;
    const auto req = request_of(name, event);
    auto model = load_model((fs::path(repo) / name / "1/model.onnx").string());  // the same file, no server
    // The echo carries the same request and answers with as many bytes as the model's outputs.
    auto echo_req = req;
    {
      std::vector<Tensor> in, out;
      for (const auto& t : event) in.push_back(t.tensor);
      auto st = model->make_state();
      model->run(in, out, *st);
      int64_t bytes = 0;
      for (const auto& t : out) bytes += static_cast<int64_t>(t.nbytes());
      (*echo_req.mutable_parameters())["reply_bytes"].set_int64_param(bytes);
    }
    std::vector<double> served, engine, ratio, batches, cpu, exec, echo_rps, echo_us, bound, phase_us[3];
    // The same over one bidirectional stream (served, mean batch, engine at it, ratio, echo, bound).
    std::vector<double> st_served, st_batch, st_engine, st_ratio, st_echo, st_echo_us, st_bound;
    // Served against the engine over the same mix of batch sizes (unary; stream).
    std::vector<double> mix_engine, mix_ratio, st_mix_engine, st_mix_ratio;
    auto mix_of = [](const serve::StatsSnapshot& a, const serve::StatsSnapshot& b) {
      std::map<int64_t, uint64_t> mix;
      for (const auto& [size, d] : b.batch) {
        auto it = a.batch.find(size);
        const uint64_t n = d[1].count - (it == a.batch.end() ? 0 : it->second[1].count);
        if (n > 0) mix[static_cast<int64_t>(size)] = n;
      }
      return mix;
    };
    auto mean_batch = [](const serve::StatsSnapshot& a, const serve::StatsSnapshot& b) {
      return b.execution_count > a.execution_count
                 ? double(b.inference_count - a.inference_count) / double(b.execution_count - a.execution_count)
                 : 1.0;
    };
    for (int r = 0; r < reps; ++r) {
      // Where the CPU goes while serving: the process's CPU time (load generator, gRPC on both
      // sides, the instance) and the instance's execution time, both in cores over the round.
      const auto s0 = server.repository().get(name)->scheduler->stats();
      const double c0 = cpu_seconds();
      const int64_t w0 = now_ns();
      const Result s = load_request(qaddr, req, 64, secs);
      const double wall = static_cast<double>(now_ns() - w0) * 1e-9;
      const double c1 = cpu_seconds();
      const auto s1 = server.repository().get(name)->scheduler->stats();
      cpu.push_back((c1 - c0) / wall);
      // Phase k of every execution: 0 the batch's input gather, 1 the model run, 2 the output
      // (slicing, encoding, handing each response over); from the per-batch-size statistics,
      // since the request-level compute_* sums count each batch once per request in it.
      auto phase_ns = [](const serve::StatsSnapshot& st, int k) {
        uint64_t n = 0;
        for (const auto& [size, d] : st.batch) n += d[k].ns;
        return static_cast<double>(n);
      };
      double busy = 0;
      for (int k = 0; k < 3; ++k) {
        const double ns = phase_ns(s1, k) - phase_ns(s0, k);
        busy += ns;
        phase_us[k].push_back(ns * 1e-3 / static_cast<double>(s1.inference_count - s0.inference_count));
      }
      exec.push_back(busy * 1e-9 / wall);
      const double mb = mean_batch(s0, s1);
      const double ec0 = cpu_seconds();
      const int64_t ew0 = now_ns();
      const Result echoed = load_request(eaddr, echo_req, 64, secs);
      const double ewall = static_cast<double>(now_ns() - ew0) * 1e-9;
      const double echo_cpu_per_req = (cpu_seconds() - ec0) / (echoed.rps * ewall);
      const double e = engine_rows_per_s(*model, event, std::max<int64_t>(1, std::llround(mb)), secs);
      echo_rps.push_back(echoed.rps);
      echo_us.push_back(echo_cpu_per_req * 1e6);
      bound.push_back(std::thread::hardware_concurrency() / (echo_cpu_per_req + 1.0 / e) / e);
      if (s.errors) std::printf("  %s: %llu errors\n", name.c_str(), static_cast<unsigned long long>(s.errors));
      served.push_back(s.rps);
      engine.push_back(e);
      ratio.push_back(s.rps / e);
      batches.push_back(mb);
      const double em = engine_rows_per_s_mix(*model, event, mix_of(s0, s1));
      mix_engine.push_back(em);
      mix_ratio.push_back(s.rps / em);

      const auto t0 = server.repository().get(name)->scheduler->stats();
      const Result ss = load_stream(qaddr, req, 64, secs);
      const auto t1 = server.repository().get(name)->scheduler->stats();
      const double smb = mean_batch(t0, t1);
      const double sem = engine_rows_per_s_mix(*model, event, mix_of(t0, t1));
      st_mix_engine.push_back(sem);
      st_mix_ratio.push_back(ss.rps / sem);
      const double sc0 = cpu_seconds();
      const int64_t sw0 = now_ns();
      const Result se = load_stream(eaddr, echo_req, 64, secs);
      const double se_cpu = (cpu_seconds() - sc0) / (se.rps * static_cast<double>(now_ns() - sw0) * 1e-9);
      const double e2 = std::llround(smb) == std::llround(mb)
                            ? e
                            : engine_rows_per_s(*model, event, std::max<int64_t>(1, std::llround(smb)), secs);
      if (ss.errors || se.errors)
        std::printf("  %s: stream errors: %llu served, %llu echo\n", name.c_str(),
                    static_cast<unsigned long long>(ss.errors), static_cast<unsigned long long>(se.errors));
      st_served.push_back(ss.rps);
      st_batch.push_back(smb);
      st_engine.push_back(e2);
      st_ratio.push_back(ss.rps / e2);
      st_echo.push_back(se.rps);
      st_echo_us.push_back(se_cpu * 1e6);
      st_bound.push_back(std::thread::hardware_concurrency() / (se_cpu + 1.0 / e2) / e2);
    }
    char echo_col[64];
    std::snprintf(echo_col, sizeof echo_col, "%s (%.1f)", med_spread(echo_rps, 0).c_str(), median_of(echo_us));
    std::printf("| %-26s | %22s | %16s | %26s | %18s | %18s | %18s | %22s | %18s |\n", label, med_spread(served, 0).c_str(),
                med_spread(batches, 1).c_str(), med_spread(engine, 0).c_str(), med_spread(ratio, 2).c_str(),
                med_spread(cpu, 2).c_str(), med_spread(exec, 2).c_str(), echo_col, med_spread(bound, 2).c_str());
    std::printf("  %s: instance us per row: gather %.2f, run %.2f, output %.2f (engine alone: run %.2f)\n", name.c_str(),
                median_of(phase_us[0]), median_of(phase_us[1]), median_of(phase_us[2]), 1e6 / median_of(engine));
    std::printf("  %s against the engine over the same mix of batch sizes the batcher formed: unary: engine %s rows/s, "
                "served / engine %s; stream: engine %s rows/s, served / engine %s\n",
                name.c_str(), med_spread(mix_engine, 0).c_str(), med_spread(mix_ratio, 2).c_str(),
                med_spread(st_mix_engine, 0).c_str(), med_spread(st_mix_ratio, 2).c_str());
    std::printf("  %s over one gRPC stream (ModelStreamInfer, 64 in flight): served %s req/s, mean batch %s, engine %s "
                "rows/s: served / engine %s; echo over a stream %s req/s (CPU %.1f us/req), machine bound / engine %s\n",
                name.c_str(), med_spread(st_served, 0).c_str(), med_spread(st_batch, 1).c_str(),
                med_spread(st_engine, 0).c_str(), med_spread(st_ratio, 2).c_str(), med_spread(st_echo, 0).c_str(),
                median_of(st_echo_us), med_spread(st_bound, 2).c_str());
    std::fflush(stdout);
  };
  vs_engine("pnak4", "ParticleNet-AK4 (HLT)", first_event(fs::path(QUIVER_SHARED_DIR) / "models/hep/particlenet_ak4_hlt"));
  vs_engine("energyid", "TICL energy-id", first_event(fs::path(QUIVER_SHARED_DIR) / "models/hep/ticl_energy_id"));
  {
    Tensor x = Tensor::empty(DType::F32, {1, 16});
    for (int i = 0; i < 16; ++i) x.data<float>()[i] = 0.1f * float(i);
    vs_engine("mlpwide", "wide MLP 16-1024x3-5", {{"input_1_0", x}});
  }
#endif
  if (wanted("mlp")) {
    // The tiny MLP behind the batcher against the raw echo at the same concurrency (same payload).
    std::vector<double> echo, served, ratio;
    for (int r = 0; r < reps; ++r) {
      const bool echo_first = r % 2 == 0;
      Result e, q;
      if (echo_first) e = load(eaddr, "mlp", 64, secs);
      q = load(qaddr, "mlp", 64, secs);
      if (!echo_first) e = load(eaddr, "mlp", 64, secs);
      echo.push_back(e.rps);
      served.push_back(q.rps);
      ratio.push_back(q.rps / e.rps);
    }
    std::printf("\ntiny MLP 16-64-32-32-5 with dynamic batching vs the raw gRPC echo, concurrency 64: %s vs %s req/s, "
                "ratio %s\n", med_spread(served, 0).c_str(), med_spread(echo, 0).c_str(), med_spread(ratio, 2).c_str());
  }

  auto stats = [&](const std::string& m) {
    auto mv = server.repository().get(m);
    auto s = mv->scheduler->stats();
    return std::pair<double, double>(s.execution_count ? double(s.inference_count) / double(s.execution_count) : 0,
                                     s.success.count ? double(s.success.ns) / double(s.success.count) / 1000.0 : 0);
  };
  auto [avg_batch, _] = stats("mlp");
  if (!only_batching) {
    std::printf("\nidentity / echo throughput: %.2f (concurrency 1), %.2f (concurrency 16)\n", q1.rps / e1.rps,
                q16.rps / e16.rps);
    std::printf("server-side overhead (p50 identity - p50 echo, concurrency 1): %.1f us\n", q1.p50 - e1.p50);
  }
  if (!only_env)
    std::printf("dynamic batching gain at concurrency 64, MLP 16-64-32-32-5: %.2fx (mean executed batch %.1f)\n",
                d64.rps / n64.rps, avg_batch);
  server.shutdown();
  echo_server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  fs::remove_all(repo);
  return 0;
}
