// gRPC front end: inference.GRPCInferenceService and grpc.health.v1.Health on the callback API.
// ModelInfer decodes the request in place (inputs view the request's raw bytes), queues it on the
// model's scheduler and finishes the RPC from the completion callback: no thread blocks per call.
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <deque>

#include "core.hpp"
#include "serve/acceptor.hpp"
#include "grpc_service.grpc.pb.h"
#include "health.grpc.pb.h"
#include "quiver/core/util.hpp"
#include "serve/codec.hpp"

namespace quiver::serve {

namespace {
grpc::Status to_grpc(const Status& s) {
  if (s.ok) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(grpc_status_code(s.code)), s.message);
}
grpc::Status to_grpc(const Error& e) { return to_grpc(Status::from(e)); }

template <class F>
grpc::ServerUnaryReactor* unary(grpc::CallbackServerContext* ctx, F&& f) {
  auto* r = ctx->DefaultReactor();
  try {
    f();
    r->Finish(grpc::Status::OK);
  } catch (const Error& e) {
    r->Finish(to_grpc(e));
  } catch (const std::exception& e) {
    r->Finish(grpc::Status(grpc::StatusCode::INTERNAL, e.what()));
  }
  return r;
}

// The one authentication check of the gRPC front end (ServerCore::auth, which the HTTP front end
// checks too). The answer names nothing secret.
bool authorized(const ServerCore& core, const grpc::CallbackServerContext* ctx) {
  if (!core.auth.enabled()) return true;
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  return it != md.end() && core.auth.allows(std::string_view(it->second.data(), it->second.size()));
}
const grpc::Status kUnauthenticated(grpc::StatusCode::UNAUTHENTICATED,
                                    "missing or invalid bearer token (send metadata 'authorization: Bearer TOKEN')");

// unary() for every method but the health checks: the token first.
template <class F>
grpc::ServerUnaryReactor* guarded(const ServerCore& core, grpc::CallbackServerContext* ctx, F&& f) {
  if (!authorized(core, ctx)) {
    auto* r = ctx->DefaultReactor();
    r->Finish(kUnauthenticated);
    return r;
  }
  return unary(ctx, std::forward<F>(f));
}

// A stream refused before its first message.
class RefusedStream final : public grpc::ServerBidiReactor<inference::ModelInferRequest, inference::ModelStreamInferResponse> {
 public:
  explicit RefusedStream(const grpc::Status& s) { Finish(s); }
  void OnDone() override { delete this; }
};

std::string read_pem(const std::string& path) { return path.empty() ? std::string() : read_file(path); }

using inference::ModelInferRequest;
using inference::ModelInferResponse;

// Decodes and queues one request; `done` receives the final status after `resp` is filled.
void submit(ServerCore& core, const ModelInferRequest* req, ModelInferResponse* resp,
            std::function<void(const grpc::Status&)> done) {
  const int64_t t0 = now_ns();
  if (core.stopping()) {
    done(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down"));
    return;
  }
  std::shared_ptr<ModelVersion> mv;
  try {
    mv = core.repo->get(req->model_name(), req->model_version());
  } catch (const Error& e) {
    done(to_grpc(e));
    return;
  }
  auto ir = std::make_unique<InferRequest>();
  ir->arrival_ns = t0;
  std::vector<OutputTarget> targets;
  try {
    decode_grpc_request(*req, *mv, core.shm, *ir, targets);
  } catch (const Error& e) {
    mv->scheduler->count_failure(FailReason::Other, now_ns() - t0);
    done(to_grpc(e));
    return;
  }
  ir->complete = [mv, resp, req, targets = std::move(targets), done = std::move(done)](
                     const Status& st, FailReason, std::span<const Tensor> outs) {
    if (!st.ok) {
      done(to_grpc(st));
      return;
    }
    try {
      encode_grpc_response(*mv, targets, outs, *resp);
      if (!req->id().empty()) resp->set_id(req->id());
      done(grpc::Status::OK);
    } catch (const Error& e) {
      done(to_grpc(e));
    }
  };
  Scheduler* sched = mv->scheduler.get();
  sched->enqueue(std::move(ir));
}

class StreamReactor final : public grpc::ServerBidiReactor<ModelInferRequest, inference::ModelStreamInferResponse> {
 public:
  explicit StreamReactor(ServerCore& core) : core_(core) { next_read(); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard lk(mu_);
      reading_ = false;
      maybe_finish();
      return;
    }
    auto req = std::move(reading_req_);
    auto resp = std::make_shared<inference::ModelStreamInferResponse>();
    {
      std::lock_guard lk(mu_);
      ++pending_;
    }
    const ModelInferRequest* rq = req.get();
    std::shared_ptr<ModelInferRequest> hold(std::move(req));
    submit(core_, rq, resp->mutable_infer_response(), [this, resp, hold](const grpc::Status& st) {
      if (!st.ok()) {
        resp->Clear();
        resp->set_error_message(st.error_message());
        resp->mutable_infer_response()->set_model_name(hold->model_name());
        resp->mutable_infer_response()->set_model_version(hold->model_version());
        resp->mutable_infer_response()->set_id(hold->id());
      }
      std::lock_guard lk(mu_);
      --pending_;
      writes_.push_back(resp);
      if (!writing_) start_write();
    });
    next_read();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lk(mu_);
    writes_.pop_front();
    writing_ = false;
    if (!ok) write_failed_ = true;
    if (!writes_.empty() && !write_failed_) start_write();
    else maybe_finish();
  }

  void OnDone() override { delete this; }

 private:
  void next_read() {
    reading_req_ = std::make_unique<ModelInferRequest>();
    StartRead(reading_req_.get());
  }
  void start_write() {  // mu_ held
    if (write_failed_) {
      writes_.clear();
      maybe_finish();
      return;
    }
    writing_ = true;
    StartWrite(writes_.front().get());
  }
  void maybe_finish() {  // mu_ held
    if (!reading_ && pending_ == 0 && !writing_ && (writes_.empty() || write_failed_) && !finished_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  ServerCore& core_;
  std::mutex mu_;
  std::unique_ptr<ModelInferRequest> reading_req_;
  std::deque<std::shared_ptr<inference::ModelStreamInferResponse>> writes_;
  bool reading_ = true, writing_ = false, write_failed_ = false, finished_ = false;
  int pending_ = 0;
};

class InferenceService final : public inference::GRPCInferenceService::CallbackService {
 public:
  explicit InferenceService(ServerCore& c) : core_(c) {}

  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* ctx, const inference::ServerLiveRequest*,
                                       inference::ServerLiveResponse* r) override {
    return unary(ctx, [&] { r->set_live(core_.is_live()); });
  }
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* ctx, const inference::ServerReadyRequest*,
                                        inference::ServerReadyResponse* r) override {
    return unary(ctx, [&] { r->set_ready(core_.is_ready()); });
  }
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* ctx, const inference::ModelReadyRequest* q,
                                       inference::ModelReadyResponse* r) override {
    return unary(ctx, [&] {
      bool ready = false;
      try {
        core_.repo->get(q->name(), q->version());
        ready = !core_.stopping();
      } catch (const Error&) {
      }
      r->set_ready(ready);
    });
  }
  grpc::ServerUnaryReactor* ServerMetadata(grpc::CallbackServerContext* ctx, const inference::ServerMetadataRequest*,
                                           inference::ServerMetadataResponse* r) override {
    return guarded(core_, ctx, [&] { core_.server_metadata(*r); });
  }
  grpc::ServerUnaryReactor* ModelMetadata(grpc::CallbackServerContext* ctx, const inference::ModelMetadataRequest* q,
                                          inference::ModelMetadataResponse* r) override {
    return guarded(core_, ctx, [&] { core_.model_metadata(q->name(), q->version(), *r); });
  }
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* ctx, const inference::ModelConfigRequest* q,
                                        inference::ModelConfigResponse* r) override {
    return guarded(core_, ctx, [&] { *r->mutable_config() = *core_.repo->get(q->name(), q->version())->config; });
  }
  grpc::ServerUnaryReactor* ModelStatistics(grpc::CallbackServerContext* ctx, const inference::ModelStatisticsRequest* q,
                                            inference::ModelStatisticsResponse* r) override {
    return guarded(core_, ctx, [&] { core_.model_statistics(q->name(), q->version(), *r); });
  }
  grpc::ServerUnaryReactor* RepositoryIndex(grpc::CallbackServerContext* ctx, const inference::RepositoryIndexRequest* q,
                                            inference::RepositoryIndexResponse* r) override {
    return guarded(core_, ctx, [&] { core_.repository_index(q->ready(), *r); });
  }
  grpc::ServerUnaryReactor* RepositoryModelLoad(grpc::CallbackServerContext* ctx,
                                                const inference::RepositoryModelLoadRequest* q,
                                                inference::RepositoryModelLoadResponse*) override {
    return guarded(core_, ctx, [&] {
      std::string config;
      std::vector<ModelFile> files;
      for (const auto& [k, v] : q->parameters()) {
        if (k == "config") {
          if (v.parameter_choice_case() != inference::ModelRepositoryParameter::kStringParam)
            throw Error(ErrorCode::InvalidArgument, "parameter 'config' must be a string", {q->model_name()});
          config = v.string_param();
        } else if (k.rfind("file:", 0) == 0) {  // the file's bytes, as Triton's gRPC client sends them
          if (v.parameter_choice_case() != inference::ModelRepositoryParameter::kBytesParam)
            throw Error(ErrorCode::InvalidArgument, "parameter '" + k + "' must be bytes_param (the file content)",
                        {q->model_name()});
          files.push_back({k.substr(5), v.bytes_param()});
        }
      }
      core_.load_model(q->model_name(), config, files);
    });
  }
  grpc::ServerUnaryReactor* RepositoryModelUnload(grpc::CallbackServerContext* ctx,
                                                  const inference::RepositoryModelUnloadRequest* q,
                                                  inference::RepositoryModelUnloadResponse*) override {
    return guarded(core_, ctx, [&] { core_.unload_model(q->model_name()); });
  }
  grpc::ServerUnaryReactor* SystemSharedMemoryStatus(grpc::CallbackServerContext* ctx,
                                                     const inference::SystemSharedMemoryStatusRequest* q,
                                                     inference::SystemSharedMemoryStatusResponse* r) override {
    return guarded(core_, ctx, [&] {
      for (const auto& i : core_.shm.status(q->name())) {
        auto& s = (*r->mutable_regions())[i.name];
        s.set_name(i.name);
        s.set_key(i.key);
        s.set_offset(i.offset);
        s.set_byte_size(i.byte_size);
      }
    });
  }
  grpc::ServerUnaryReactor* SystemSharedMemoryRegister(grpc::CallbackServerContext* ctx,
                                                       const inference::SystemSharedMemoryRegisterRequest* q,
                                                       inference::SystemSharedMemoryRegisterResponse*) override {
    return guarded(core_, ctx, [&] { core_.shm.register_region(q->name(), q->key(), q->offset(), q->byte_size()); });
  }
  grpc::ServerUnaryReactor* SystemSharedMemoryUnregister(grpc::CallbackServerContext* ctx,
                                                         const inference::SystemSharedMemoryUnregisterRequest* q,
                                                         inference::SystemSharedMemoryUnregisterResponse*) override {
    return guarded(core_, ctx, [&] { core_.shm.unregister(q->name()); });
  }
  grpc::ServerUnaryReactor* CudaSharedMemoryStatus(grpc::CallbackServerContext* ctx,
                                                   const inference::CudaSharedMemoryStatusRequest* q,
                                                   inference::CudaSharedMemoryStatusResponse* r) override {
    return guarded(core_, ctx, [&] {
      for (const auto& i : core_.shm.status(q->name(), ShmKind::Cuda)) {
        auto& s = (*r->mutable_regions())[i.name];
        s.set_name(i.name);
        s.set_device_id(static_cast<uint64_t>(i.device_id));
        s.set_byte_size(i.byte_size);
      }
    });
  }
  grpc::ServerUnaryReactor* CudaSharedMemoryRegister(grpc::CallbackServerContext* ctx,
                                                     const inference::CudaSharedMemoryRegisterRequest* q,
                                                     inference::CudaSharedMemoryRegisterResponse*) override {
    return guarded(core_, ctx, [&] { core_.shm.register_cuda(q->name(), q->raw_handle(), q->device_id(), q->byte_size()); });
  }
  grpc::ServerUnaryReactor* CudaSharedMemoryUnregister(grpc::CallbackServerContext* ctx,
                                                       const inference::CudaSharedMemoryUnregisterRequest* q,
                                                       inference::CudaSharedMemoryUnregisterResponse*) override {
    return guarded(core_, ctx, [&] { core_.shm.unregister(q->name(), ShmKind::Cuda); });
  }
  grpc::ServerUnaryReactor* TraceSetting(grpc::CallbackServerContext* ctx, const inference::TraceSettingRequest* q,
                                         inference::TraceSettingResponse* r) override {
    return guarded(core_, ctx, [&] {
      std::map<std::string, std::vector<std::string>> upd;
      for (const auto& [k, v] : q->settings()) upd[k] = {v.value().begin(), v.value().end()};
      for (const auto& [k, v] : core_.trace_settings(upd)) {
        auto& sv = (*r->mutable_settings())[k];
        for (const auto& x : v) sv.add_value(x);
      }
    });
  }
  grpc::ServerUnaryReactor* LogSettings(grpc::CallbackServerContext* ctx, const inference::LogSettingsRequest* q,
                                        inference::LogSettingsResponse* r) override {
    return guarded(core_, ctx, [&] {
      std::map<std::string, ServerCore::LogValue> upd;
      for (const auto& [k, v] : q->settings()) {
        ServerCore::LogValue x;
        switch (v.parameter_choice_case()) {
          case inference::LogSettingsRequest::SettingValue::kBoolParam: x.kind = 0; x.b = v.bool_param(); break;
          case inference::LogSettingsRequest::SettingValue::kUint32Param: x.kind = 1; x.u = v.uint32_param(); break;
          case inference::LogSettingsRequest::SettingValue::kStringParam: x.kind = 2; x.s = v.string_param(); break;
          default: throw Error(ErrorCode::InvalidArgument, "log setting '" + k + "' has no value");
        }
        upd[k] = x;
      }
      for (const auto& [k, v] : core_.log_settings(upd)) {
        auto& sv = (*r->mutable_settings())[k];
        if (v.kind == 0) sv.set_bool_param(v.b);
        else if (v.kind == 1) sv.set_uint32_param(v.u);
        else sv.set_string_param(v.s);
      }
    });
  }

  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* ctx, const ModelInferRequest* req,
                                       ModelInferResponse* resp) override {
    auto* r = ctx->DefaultReactor();
    if (!authorized(core_, ctx)) {
      r->Finish(kUnauthenticated);
      return r;
    }
    submit(core_, req, resp, [r](const grpc::Status& st) { r->Finish(st); });
    return r;
  }

  grpc::ServerBidiReactor<ModelInferRequest, inference::ModelStreamInferResponse>* ModelStreamInfer(
      grpc::CallbackServerContext* ctx) override {
    if (!authorized(core_, ctx)) return new RefusedStream(kUnauthenticated);
    return new StreamReactor(core_);
  }

 private:
  ServerCore& core_;
};

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  explicit HealthService(ServerCore& c) : core_(c) {}
  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* ctx, const grpc::health::v1::HealthCheckRequest* q,
                                  grpc::health::v1::HealthCheckResponse* r) override {
    auto* re = ctx->DefaultReactor();
    if (!q->service().empty() && q->service() != "inference.GRPCInferenceService") {
      re->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service '" + q->service() + "'"));
      return re;
    }
    r->set_status(core_.is_ready() ? grpc::health::v1::HealthCheckResponse::SERVING
                                   : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    re->Finish(grpc::Status::OK);
    return re;
  }
  // Watch answers the current status once and ends the stream.
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext*, const grpc::health::v1::HealthCheckRequest* q) override {
    class Once : public grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse> {
     public:
      Once(bool known, bool ready) {
        resp_.set_status(!known ? grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN
                         : ready ? grpc::health::v1::HealthCheckResponse::SERVING
                                 : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
        StartWriteAndFinish(&resp_, grpc::WriteOptions(), grpc::Status::OK);
      }
      void OnDone() override { delete this; }

     private:
      grpc::health::v1::HealthCheckResponse resp_;
    };
    bool known = q->service().empty() || q->service() == "inference.GRPCInferenceService";
    return new Once(known, core_.is_ready());
  }

 private:
  ServerCore& core_;
};
}  // namespace

struct GrpcFrontend::Impl {
  explicit Impl(ServerCore& c) : core(c), infer(c), health(c) {}
  ServerCore& core;
  InferenceService infer;
  HealthService health;
  std::unique_ptr<grpc::Server> server;

  // Connections are accepted here and handed to gRPC through its external connection acceptor
  // (the same handshake, TLS and channel arguments as its own listener): gRPC 1.51 has no cap on
  // connections, and its listener stops for good when the process runs out of descriptors.
  Acceptor acceptor;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> to_grpc;
  std::string where;
  unsigned max_conn = 0;
  // The connections handed over, as (descriptor, inode): gRPC closes them itself, so one whose
  // descriptor is closed or now names another file is gone. The accepting thread's own.
  std::vector<std::pair<int, ino_t>> conns;
  int64_t scanned_at = 0;
  std::atomic<size_t> open{0};
  std::atomic<uint64_t> refused{0};
  uint64_t logged_refused = 0, logged_no_fd = 0;
  int64_t logged_at = INT64_MIN / 2;

  void scan(int64_t now) {
    scanned_at = now;
    for (size_t i = 0; i < conns.size();) {
      struct stat st {};
      if (fstat(conns[i].first, &st) != 0 || st.st_ino != conns[i].second) {
        conns[i] = conns.back();
        conns.pop_back();
      } else {
        ++i;
      }
    }
    open = conns.size();
  }

  bool take(int fd) {
    if (conns.size() >= max_conn) {
      const int64_t now = steady_ms();
      if (now - scanned_at >= 100) scan(now);  // at the limit: find those closed since
      if (conns.size() >= max_conn) {
        refused.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
    }
    struct stat st {};
    if (fstat(fd, &st) != 0) return false;
    conns.emplace_back(fd, st.st_ino);
    open = conns.size();
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters p;
    p.listener_fd = acceptor.listen_fd();
    p.fd = fd;
    to_grpc->HandleNewConnection(&p);
    return true;
  }

  // Every second: the count, and at most one line per 10 s about refused connections.
  void tick(int64_t now, bool last) {
    scan(now);
    const uint64_t r = refused.load(), f = acceptor.out_of_descriptors();
    if ((r == logged_refused && f == logged_no_fd) || (now - logged_at < 10000 && !last)) return;
    const std::string span =
        logged_at < 0 ? "" : " in the last " + std::to_string((now - logged_at + 500) / 1000) + " s";
    if (r != logged_refused)
      std::fprintf(stderr, "quiver serve: %s: refused %llu new connection(s)%s: at the limit of %u connections\n",
                   where.c_str(), static_cast<unsigned long long>(r - logged_refused), span.c_str(), max_conn);
    if (f != logged_no_fd)
      std::fprintf(stderr, "quiver serve: %s: refused %llu new connection(s)%s: the process is out of file descriptors\n",
                   where.c_str(), static_cast<unsigned long long>(f - logged_no_fd), span.c_str());
    logged_refused = r;
    logged_no_fd = f;
    logged_at = now;
  }
};

GrpcFrontend::GrpcFrontend(ServerCore& core) : impl_(std::make_unique<Impl>(core)) {}
GrpcFrontend::~GrpcFrontend() { shutdown(); }

int GrpcFrontend::start() {
  const ServerOptions& o = impl_->core.opt;
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!o.grpc_server_cert.empty() || !o.grpc_server_key.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({read_pem(o.grpc_server_key), read_pem(o.grpc_server_cert)});
    ssl.pem_root_certs = read_pem(o.grpc_root_cert);
    if (o.grpc_mutual_tls) {
      if (ssl.pem_root_certs.empty())
        throw Error(ErrorCode::InvalidArgument, "mutual TLS needs --grpc-root-cert to verify client certificates");
      ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    }
    creds = grpc::SslServerCredentials(ssl);
  } else {
    if (o.grpc_mutual_tls) throw Error(ErrorCode::InvalidArgument, "mutual TLS needs --grpc-server-cert and --grpc-server-key");
    creds = grpc::InsecureServerCredentials();
  }
  Impl& m = *impl_;
  const int port = m.acceptor.listen(o.bind, o.grpc_port, "gRPC");
  m.where = "gRPC on " + o.bind + ":" + std::to_string(port);
  m.max_conn = o.grpc_max_connections > 0 ? static_cast<unsigned>(o.grpc_max_connections) : auto_max_connections();
  grpc::ServerBuilder b;
  m.to_grpc = b.experimental().AddExternalConnectionAcceptor(
      grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD, creds);
  // Limits, set deliberately (gRPC's defaults: unlimited streams, a 120 s handshake, idle
  // connections kept forever, keepalive pings every 2 h). A connection that has not completed the
  // HTTP/2 (and TLS) handshake by the handshake timeout is closed, one without calls for the idle
  // timeout gets GOAWAY (clients reconnect).
  auto ms = [](double s) { return static_cast<int>(std::clamp(s * 1000, 1.0, double(INT32_MAX))); };
  b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, std::max(1, o.grpc_max_concurrent_streams));
  b.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, ms(o.grpc_handshake_timeout_s));
  if (o.grpc_idle_timeout_s > 0) b.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, ms(o.grpc_idle_timeout_s));
  // Keepalive both ways: the server pings silent connections (also those without calls) to find
  // dead peers; clients may ping too, but not more often than the minimum interval.
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, std::max(1, o.grpc_keepalive_time_ms));
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, std::max(1, o.grpc_keepalive_timeout_ms));
  b.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                       std::max(0, o.grpc_min_recv_ping_interval_ms));
  b.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, std::max(0, o.grpc_max_ping_strikes));
  b.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(o.max_message_bytes, INT32_MAX)));
  b.SetMaxSendMessageSize(static_cast<int>(std::min<int64_t>(o.max_message_bytes, INT32_MAX)));
  b.RegisterService(&impl_->infer);
  b.RegisterService(&impl_->health);
  m.server = b.BuildAndStart();
  if (!m.server) {
    m.acceptor.stop();
    throw Error(ErrorCode::Unavailable, "cannot start the " + m.where + " server");
  }
  Acceptor::Handlers h;
  h.take = [&m](int fd, const sockaddr*, socklen_t) { return m.take(fd); };
  h.tick = [&m](int64_t now, bool last) { m.tick(now, last); };
  h.watching = [&m] { return m.open.load() > 0 || m.refused.load() != m.logged_refused; };
  m.acceptor.start(std::move(h), 1000, m.core.descriptors);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  std::fprintf(stderr,
               "quiver serve: %s: up to %u connections%s, %d concurrent calls each; handshake %g s, idle %d s, "
               "keepalive ping every %d ms (timeout %d ms), client pings at least %d ms apart (%d strikes)\n",
               m.where.c_str(), m.max_conn,
               o.grpc_max_connections > 0 ? "" : (" (from the open-file limit " + std::to_string(rl.rlim_cur) + ")").c_str(),
               o.grpc_max_concurrent_streams, o.grpc_handshake_timeout_s, o.grpc_idle_timeout_s,
               o.grpc_keepalive_time_ms, o.grpc_keepalive_timeout_ms, o.grpc_min_recv_ping_interval_ms,
               o.grpc_max_ping_strikes);
  return port;
}

void GrpcFrontend::shutdown() {
  impl_->acceptor.stop();  // no new connections from here on
  if (!impl_->server) return;
  // Inference work has drained already (ServerCore::shutdown); give calls still open a short
  // grace, then cancel them.
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace quiver::serve
