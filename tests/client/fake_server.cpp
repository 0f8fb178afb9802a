// A small KServe v2 gRPC server for the client's fault-injection tests (a separate process, so
// tests can kill -9 it): identity models (OUTPUTi = INPUTi), an optional per-request delay and an
// in-flight limit that rejects with RESOURCE_EXHAUSTED like a full queue, and injected INTERNAL
// failures (--fail-every N). Prints the same ready
// line as `quiver serve`: "quiver serve ready grpc=HOST:PORT".
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <thread>

#include "grpc_service.grpc.pb.h"

namespace pb = inference;

class FakeService final : public pb::GRPCInferenceService::Service {
 public:
  std::set<std::string> models;
  int64_t delay_us = 0;
  int max_inflight = 0;
  int fail_every = 0;  // every Nth inference fails with INTERNAL (a backend behind a balancer dying)
  std::atomic<uint64_t> infers{0};
  int64_t max_batch = 64;
  std::atomic<int> inflight{0};
  std::atomic<uint64_t> count{0}, queue_ns{0};
  // Requests that ended by cancellation (the client's deadline or cancel), and the deadline budget
  // (deadline - arrival) they came with, summed; reported as ModelStatistics' fail count / ns.
  std::atomic<uint64_t> cancelled{0}, cancelled_budget_ns{0};
  std::string name = "fake";

  grpc::Status ServerReady(grpc::ServerContext*, const pb::ServerReadyRequest*, pb::ServerReadyResponse* r) override {
    r->set_ready(true);
    return grpc::Status::OK;
  }
  grpc::Status ServerLive(grpc::ServerContext*, const pb::ServerLiveRequest*, pb::ServerLiveResponse* r) override {
    r->set_live(true);
    return grpc::Status::OK;
  }
  grpc::Status ModelMetadata(grpc::ServerContext*, const pb::ModelMetadataRequest* q,
                             pb::ModelMetadataResponse* r) override {
    if (!models.count(q->name())) return {grpc::StatusCode::NOT_FOUND, "unknown model '" + q->name() + "'"};
    r->set_name(q->name());
    r->add_versions("1");
    r->set_platform("identity");
    auto* i = r->add_inputs();
    i->set_name("INPUT0");
    i->set_datatype("FP32");
    i->add_shape(-1);
    i->add_shape(4);
    auto* o = r->add_outputs();
    o->set_name("OUTPUT0");
    o->set_datatype("FP32");
    o->add_shape(-1);
    o->add_shape(4);
    return grpc::Status::OK;
  }
  grpc::Status ModelConfig(grpc::ServerContext*, const pb::ModelConfigRequest* q, pb::ModelConfigResponse* r) override {
    if (!models.count(q->name())) return {grpc::StatusCode::NOT_FOUND, "unknown model '" + q->name() + "'"};
    auto* c = r->mutable_config();
    c->set_name(q->name());
    c->set_backend("identity");
    c->set_max_batch_size(static_cast<int32_t>(max_batch));
    return grpc::Status::OK;
  }
  grpc::Status ModelStatistics(grpc::ServerContext*, const pb::ModelStatisticsRequest*,
                               pb::ModelStatisticsResponse* r) override {
    auto* s = r->add_model_stats();
    s->set_name(models.empty() ? "" : *models.begin());
    s->mutable_inference_stats()->mutable_queue()->set_count(count.load());
    s->mutable_inference_stats()->mutable_queue()->set_ns(queue_ns.load());
    s->mutable_inference_stats()->mutable_fail()->set_count(cancelled.load());
    s->mutable_inference_stats()->mutable_fail()->set_ns(cancelled_budget_ns.load());
    return grpc::Status::OK;
  }
  grpc::Status ModelInfer(grpc::ServerContext* ctx, const pb::ModelInferRequest* q, pb::ModelInferResponse* r) override {
    if (!models.count(q->model_name()))
      return {grpc::StatusCode::NOT_FOUND, "unknown model '" + q->model_name() + "'"};
    int now = inflight.fetch_add(1) + 1;
    struct Dec {
      std::atomic<int>& v;
      ~Dec() { v.fetch_sub(1); }
    } dec{inflight};
    if (max_inflight > 0 && now > max_inflight)
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full: " + std::to_string(max_inflight) + " in flight"};
    if (fail_every > 0 && infers.fetch_add(1) % static_cast<uint64_t>(fail_every) == 0)
      return {grpc::StatusCode::INTERNAL, "injected failure (--fail-every)"};
    if (q->raw_input_contents_size() != q->inputs_size())
      return {grpc::StatusCode::INVALID_ARGUMENT, "fake server needs raw contents"};
    if (delay_us > 0) {
      // No deadline: the budget is reported as the largest value (it shows as "no deadline").
      const auto budget = ctx->deadline() - std::chrono::system_clock::now();
      const uint64_t budget_ns = ctx->deadline() == std::chrono::system_clock::time_point::max()
                                     ? UINT64_MAX / 2
                                     : static_cast<uint64_t>(std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(budget).count()));
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(delay_us);
      while (std::chrono::steady_clock::now() < until) {
        if (ctx->IsCancelled()) {
          cancelled.fetch_add(1);
          cancelled_budget_ns.fetch_add(budget_ns);
          return {grpc::StatusCode::CANCELLED, "cancelled"};
        }
        std::this_thread::sleep_for(std::chrono::microseconds(std::min<int64_t>(delay_us, 2000)));
      }
    }
    count.fetch_add(1);
    r->set_model_name(q->model_name());
    r->set_model_version("1");
    r->set_id(q->id());
    (*r->mutable_parameters())["sha256"].set_string_param("fake-" + name);
    for (int i = 0; i < q->inputs_size(); ++i) {
      auto* o = r->add_outputs();
      o->set_name("OUTPUT" + std::to_string(i));
      o->set_datatype(q->inputs(i).datatype());
      *o->mutable_shape() = q->inputs(i).shape();
      r->add_raw_output_contents(q->raw_input_contents(i));
    }
    return grpc::Status::OK;
  }
};

int main(int argc, char** argv) {
  FakeService svc;
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--grpc-port") port = std::atoi(next().c_str());
    else if (a == "--model") svc.models.insert(next());
    else if (a == "--delay-us") svc.delay_us = std::atoll(next().c_str());
    else if (a == "--max-inflight") svc.max_inflight = std::atoi(next().c_str());
    else if (a == "--fail-every") svc.fail_every = std::atoi(next().c_str());
    else if (a == "--max-batch") svc.max_batch = std::atoll(next().c_str());
    else if (a == "--name") svc.name = next();
    else {
      std::fprintf(stderr, "fake_server: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  if (svc.models.empty()) svc.models.insert("identity");
  grpc::ServerBuilder b;
  int bound = 0;
  b.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &bound);
  b.RegisterService(&svc);
  b.SetMaxReceiveMessageSize(-1);
  b.SetMaxSendMessageSize(-1);
  auto server = b.BuildAndStart();
  if (!server || bound == 0) {
    std::fprintf(stderr, "fake_server: cannot listen on port %d\n", port);
    return 1;
  }
  std::printf("quiver serve ready grpc=127.0.0.1:%d http=none metrics=none\n", bound);
  std::fflush(stdout);
  // Exits when stdin closes (the test died) or on a signal.
  char buf[64];
  while (std::fread(buf, 1, sizeof buf, stdin) > 0) {
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  return 0;
}
