#include "client/server_set.hpp"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>

#include "kserve/auth.hpp"
#include "quiver/core/util.hpp"

namespace quiver::client {

namespace pb = inference;

namespace {
// A server's channel and stub (ServerState::transport, opaque to the balancer).
struct Transport {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::GRPCInferenceService::Stub> stub;
  std::string auth_header;  // "Bearer TOKEN" for servers started with --auth-token-file; empty: none
};
}  // namespace

const char* grpc_status_name(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "?";
  }
}

ServerSet::ServerSet(const ClientOptions& opt)
    : opt_(opt),
      auth_header_(kserve::authorization_from_token_file(opt.auth_token_file)),
      balancer_(opt.balancer, opt.breaker),
      discovery_(opt.discovery) {}

ServerSet::~ServerSet() { stop(); }

pb::GRPCInferenceService::Stub& ServerSet::stub(const ServerState& s) {
  return *static_cast<Transport*>(s.transport.get())->stub;
}

void ServerSet::authorize(const ServerState& s, grpc::ClientContext& c) {
  const auto& h = static_cast<Transport*>(s.transport.get())->auth_header;
  if (!h.empty()) c.AddMetadata("authorization", h);
}

void ServerSet::start(ArrivalCheck arrival) {
  arrival_ = std::move(arrival);
  run_discovery(now_ns());
  probe_round(now_ns(), /*force_all=*/true);
  maintenance_ = std::thread([this] { maintenance_loop(); });
}

void ServerSet::stop() {
  {
    std::lock_guard lk(maint_mu_);
    stop_ = true;
  }
  maint_cv_.notify_all();
  if (maintenance_.joinable()) maintenance_.join();
}

void ServerSet::refresh_now() {
  {
    std::lock_guard lk(maint_mu_);
    refresh_requested_ = true;
  }
  maint_cv_.notify_all();
}

// A closed breaker alone is no promise: it opens only after several failures, so a server that
// died and came back between two probes still looks serving while its channel is in reconnect
// backoff and fails every call at once. Fresh probe answers are the promise.
bool ServerSet::wait_for_serving(int n, int64_t timeout_ns) {
  if (n <= 0) return true;
  const int64_t since = now_ns();
  waiters_.fetch_add(1);
  refresh_now();
  std::unique_lock lk(serving_mu_);
  const bool ok =
      serving_cv_.wait_for(lk, std::chrono::nanoseconds(timeout_ns), [&] { return ready_since(since) >= n; });
  waiters_.fetch_sub(1);
  return ok;
}

int ServerSet::ready_since(int64_t since_ns) const {
  int n = 0;
  for (auto& s : balancer_.servers()) {
    if (s->removed.load() || !s->serving.load() || s->ready_probe_ns.load() < since_ns) continue;
    std::lock_guard lk(s->mu);
    n += s->breaker.serving() && s->breaker.consecutive_failures() == 0;
  }
  return n;
}

Error ServerSet::no_server_error(const std::string& model_key, bool fallback_off) const {
  int known = 0, serving = 0, lacking = 0;
  for (auto& s : balancer_.servers()) {
    if (s->removed.load()) continue;
    ++known;
    if (s->serving.load()) {
      ++serving;
      lacking += !s->serves(model_key);
    }
  }
  if (serving > 0 && lacking == serving)
    return Error(ErrorCode::NotFound,
                 "none of the " + std::to_string(serving) + " serving server(s) serves model '" + model_key + "'");
  return Error(ErrorCode::Unavailable, "no healthy server: " + std::to_string(known) + " known, " +
                                           std::to_string(serving) + " serving" +
                                           (fallback_off ? " (fallback is off)" : "") + down_servers());
}

// A TLS mismatch shows up as a closed socket (plaintext client, TLS server) or an SSL "wrong
// version number" (TLS client, plaintext server): say so.
std::string ServerSet::tls_hint(const std::string& msg) const {
  if (!opt_.tls.enabled && msg.find("Socket closed") != std::string::npos)
    return " (if the server uses TLS, enable TLS in the client: TlsOptions / --ssl)";
  if (opt_.tls.enabled && msg.find("wrong version number") != std::string::npos)
    return " (the server does not seem to use TLS)";
  return "";
}

// "; HOST:PORT: why its last probe failed; ..." for the servers out of service (TLS handshake
// failures, refused connections, ...), so "no healthy server" says why.
std::string ServerSet::down_servers() const {
  std::string out;
  int n = 0;
  for (auto& s : balancer_.servers()) {
    if (s->removed.load() || s->serving.load()) continue;
    std::string why;
    {
      std::lock_guard lk(s->mu);
      why = s->last_error;
    }
    if (++n > 4) {
      out += "; ...";
      break;
    }
    out += "; " + s->address + ": " + (why.empty() ? std::string("not probed yet") : why);
  }
  return out;
}

std::shared_ptr<void> ServerSet::make_transport(const std::string& address) const {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  if (opt_.compression == Compression::Gzip) args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
  else if (opt_.compression == Compression::Deflate) args.SetCompressionAlgorithm(GRPC_COMPRESS_DEFLATE);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (opt_.tls.enabled) {
    grpc::SslCredentialsOptions so;
    if (!opt_.tls.root_certs_file.empty()) so.pem_root_certs = read_file(opt_.tls.root_certs_file);
    if (!opt_.tls.client_cert_file.empty()) so.pem_cert_chain = read_file(opt_.tls.client_cert_file);
    if (!opt_.tls.client_key_file.empty()) so.pem_private_key = read_file(opt_.tls.client_key_file);
    creds = grpc::SslCredentials(so);
    if (!opt_.tls.server_name_override.empty()) args.SetSslTargetNameOverride(opt_.tls.server_name_override);
  } else {
    creds = grpc::InsecureChannelCredentials();
  }
  auto t = std::make_shared<Transport>();
  t->channel = grpc::CreateCustomChannel(address, creds, args);
  t->stub = pb::GRPCInferenceService::NewStub(t->channel);
  t->auth_header = auth_header_;
  return t;
}

void ServerSet::run_discovery(int64_t now) {
  next_discovery_ns_ = now + opt_.discovery_interval_ns;
  bool changed = discovery_.refresh();
  for (auto& e : discovery_.errors()) std::fprintf(stderr, "quiver client: discovery: %s\n", e.c_str());
  if (changed) balancer_.set_servers(discovery_.endpoints(), /*start_serving=*/false);
  for (auto& s : balancer_.servers()) {
    if (!s->transport) {
      std::lock_guard lk(s->mu);
      s->transport = make_transport(s->address);
    }
    s->clear_missing();  // models may have been loaded since
  }
}

namespace {
struct Probe {
  std::shared_ptr<ServerState> server;
  bool was_serving = false;
  grpc::ClientContext ctx;
  pb::ServerReadyResponse resp;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::ServerReadyResponse>> rpc;
  // statistics
  bool stats = false;
  grpc::ClientContext sctx;
  pb::ModelStatisticsResponse sresp;
  grpc::Status sstatus;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::ModelStatisticsResponse>> srpc;
};
}  // namespace

// One round of readiness probes (serving servers, and open ones whose wait is over), plus
// statistics polls when due; waits for all answers (bounded by probe_timeout_ns).
void ServerSet::probe_round(int64_t now, bool force_all) {
  grpc::CompletionQueue pcq;
  std::vector<std::unique_ptr<Probe>> probes;
  const bool stats_due = opt_.statistics_interval_ns > 0 && now >= next_stats_ns_;
  if (stats_due) next_stats_ns_ = now + opt_.statistics_interval_ns;
  const auto deadline = std::chrono::system_clock::now() + std::chrono::nanoseconds(opt_.probe_timeout_ns);
  int pending = 0;
  for (auto& s : balancer_.servers()) {
    if (s->removed.load() || !s->transport) continue;
    bool serving;
    {
      std::lock_guard lk(s->mu);
      serving = s->breaker.serving();
      if (!serving) {
        if (!force_all && !s->breaker.probe_due(now)) continue;
        if (s->breaker.state() == CircuitBreaker::State::Probing) continue;
        s->breaker.begin_probe();
      }
    }
    auto p = std::make_unique<Probe>();
    p->server = s;
    p->was_serving = serving;
    p->ctx.set_deadline(deadline);
    authorize(*p->server, p->ctx);
    p->rpc = stub(*s).AsyncServerReady(&p->ctx, pb::ServerReadyRequest(), &pcq);
    p->rpc->Finish(&p->resp, &p->status, reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p.get()) | 0));
    ++pending;
    if (serving && stats_due) {
      p->stats = true;
      p->sctx.set_deadline(deadline);
      authorize(*p->server, p->sctx);
      p->srpc = stub(*s).AsyncModelStatistics(&p->sctx, pb::ModelStatisticsRequest(), &pcq);
      p->srpc->Finish(&p->sresp, &p->sstatus, reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p.get()) | 1));
      ++pending;
    }
    probes.push_back(std::move(p));
  }
  bool any_up = false;  // a server answered ready (wait_for_serving looks again)
  std::vector<std::shared_ptr<ServerState>> came_up;
  while (pending > 0) {
    void* tag;
    bool ok;
    if (!pcq.Next(&tag, &ok)) break;
    --pending;
    auto* p = reinterpret_cast<Probe*>(reinterpret_cast<uintptr_t>(tag) & ~uintptr_t{1});
    const bool is_stats = reinterpret_cast<uintptr_t>(tag) & 1;
    ServerState& s = *p->server;
    const int64_t t = now_ns();
    if (is_stats) {
      if (!p->sstatus.ok()) continue;
      uint64_t count = 0, ns = 0;
      for (auto& m : p->sresp.model_stats()) {
        count += m.inference_stats().queue().count();
        ns += m.inference_stats().queue().ns();
      }
      auto& last = last_queue_[&s];
      if (count > last.first && ns >= last.second) s.queue_ns.store(static_cast<int64_t>((ns - last.second) / (count - last.first)));
      else s.queue_ns.store(0);
      last = {count, ns};
      continue;
    }
    const bool up = p->status.ok() && p->resp.ready();
    std::lock_guard lk(s.mu);
    if (up) s.last_error.clear();
    else if (!p->status.ok())
      s.last_error = std::string(grpc_status_name(p->status.error_code())) + ": " + p->status.error_message() +
                     tls_hint(p->status.error_message());
    else
      s.last_error = "server says it is not ready";
    if (p->was_serving) {
      // A serving server that says "not ready" (draining) is taken out at once; one that cannot
      // be reached counts like a failed request; a slow answer (deadline) only means busy, which
      // the balancer's load terms already handle. A ready answer ends a run of failures.
      bool opened = false;
      if (up && s.breaker.serving()) {
        s.breaker.record_success();
        s.ready_probe_ns.store(now);
        any_up = true;
      } else if (p->status.ok() && !p->resp.ready() && s.breaker.serving()) {
        s.breaker.trip(t);
        opened = true;
      } else if (!p->status.ok() && p->status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
        opened = s.breaker.record_failure(t);
      }
      if (opened) {
        s.serving.store(false);
        s.breaker_trips.fetch_add(1, std::memory_order_relaxed);
      }
    } else if (up && arrival_) {
      came_up.push_back(p->server);  // the arrival check runs first (below, unlocked)
    } else {
      s.breaker.probe_result(up, t);
      if (up) {
        s.ready_probe_ns.store(now);
        s.serving.store(true);
        any_up = true;
      }
    }
  }
  for (auto& sp : came_up) {
    const bool ok = arrival_(*sp);
    std::lock_guard lk(sp->mu);
    sp->breaker.probe_result(ok, now_ns());
    if (ok) {
      sp->ready_probe_ns.store(now);
      sp->serving.store(true);
      any_up = true;
    }
  }
  pcq.Shutdown();
  void* tag;
  bool ok;
  while (pcq.Next(&tag, &ok)) {
  }
  if (any_up) {
    std::lock_guard lk(serving_mu_);
    serving_cv_.notify_all();
  }
}

void ServerSet::maintenance_loop() {
  std::unique_lock lk(maint_mu_);
  while (!stop_) {
    maint_cv_.wait_for(lk, std::chrono::nanoseconds(opt_.health_interval_ns),
                      [&] { return stop_ || refresh_requested_; });
    if (stop_) break;
    const bool forced = refresh_requested_;
    refresh_requested_ = false;
    lk.unlock();
    const int64_t now = now_ns();
    if (forced || now >= next_discovery_ns_) run_discovery(now);
    probe_round(now, forced || waiters_.load() > 0);
    lk.lock();
  }
}

}  // namespace quiver::client
