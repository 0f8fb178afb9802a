#include "client/request_engine.hpp"

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>

#include "client/metadata.hpp"
#include "client/server_set.hpp"
#include "client/shm_pool.hpp"
#include "grpc_service.grpc.pb.h"
#include "kserve/infer_messages.hpp"
#include "kserve/tensors.hpp"
#include "quiver/core/util.hpp"

namespace quiver::client {

namespace pb = inference;

namespace {

std::chrono::system_clock::time_point to_system_deadline(int64_t deadline_steady_ns) {
  return std::chrono::system_clock::now() + std::chrono::nanoseconds(deadline_steady_ns - now_ns());
}

AttemptError classify(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::UNAVAILABLE: return AttemptError::Transport;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return AttemptError::Overloaded;
    case grpc::StatusCode::NOT_FOUND: return AttemptError::ModelNotFound;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return AttemptError::DeadlineExceeded;
    case grpc::StatusCode::CANCELLED: return AttemptError::Cancelled;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return AttemptError::Caller;
    default: return AttemptError::Internal;
  }
}

// "Exceeds maximum queue size (N) of model ..." (Triton, quiver serve), "queue full", ...: the
// server is up but its queue policy rejected the request.
bool is_queue_rejection(const std::string& msg) {
  std::string m = msg;
  for (auto& ch : m) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return m.find("queue size") != std::string::npos || m.find("queue full") != std::string::npos ||
         m.find("queue is full") != std::string::npos;
}

}  // namespace

// Anything the completion queue hands back. Linked into the client's in-flight list so shutdown
// can cancel it.
struct RequestEngine::Tag {
  virtual ~Tag() = default;
  virtual void proceed(bool ok) = 0;
  virtual void cancel() = 0;
  Tag* prev = nullptr;
  Tag* next = nullptr;
};

struct RequestEngine::Request {
  std::string model;
  std::string model_key;  // model[:version], for "does this server serve it"
  InferOptions opt;
  InferCallback done;
  std::shared_ptr<pb::ModelInferRequest> msg;
  int64_t start_ns = 0;
  int64_t deadline_ns = 0;  // absolute steady ns, 0: none
  std::vector<const ServerState*> tried;
  std::shared_ptr<ServerState> server;  // current server
  int attempts = 0;
  int attempts_on_server = 0;
  AttemptError last_kind = AttemptError::Transport;
  std::string log;  // "server CODE: message; ..." of failed attempts
  int shm_slot = -1;  // inputs and/or outputs live in this shared-memory slot
  std::shared_ptr<SlotLease> shm_lease;  // released at completion (outputs may keep it longer)
  bool shm_inputs = false, shm_outputs = false;
  std::atomic<bool> finished{false};
  std::atomic<bool> in_call{true};  // infer_async has not returned yet
};

// A result decided while infer_async still runs, handed to a completion-queue thread by an
// alarm that is already due.
struct RequestEngine::Deferred final : Tag {
  RequestEngine* engine;
  RequestPtr req;
  InferResult result;
  grpc::Alarm alarm;
  void proceed(bool) override {
    engine->deliver_now(req, std::move(result));
    delete this;
  }
  void cancel() override {}
};

RequestEngine::RequestEngine(const ClientOptions& opt, uint64_t client_id, ServerSet& servers, MetadataCache& meta,
                             std::shared_ptr<ShmPool> shm, std::shared_ptr<const Fallback> fallback,
                             Fallback::Executor workers)
    : opt_(opt), client_id_(client_id), servers_(servers), meta_(meta), shm_(std::move(shm)),
      fallback_(std::move(fallback)), workers_(std::move(workers)) {}

RequestEngine::~RequestEngine() {
  drain();
  stop();
}

void RequestEngine::start() {
  cq_running_.store(true, std::memory_order_release);
  for (int i = 0; i < std::max(1, opt_.completion_threads); ++i)
    cq_threads_.emplace_back([this] {
      void* tag;
      bool ok;
      while (cq_.Next(&tag, &ok)) static_cast<Tag*>(tag)->proceed(ok);
    });
}

void RequestEngine::drain() {
  std::unique_lock lk(inflight_mu_);
  shutting_down_ = true;
  for (Tag* t = inflight_head_; t; t = t->next) t->cancel();
  drained_cv_.wait(lk, [&] { return open_requests_ == 0; });
}

void RequestEngine::stop() {
  if (stopped_) return;
  stopped_ = true;
  cq_running_.store(false, std::memory_order_release);
  cq_.Shutdown();
  if (cq_threads_.empty()) {  // never started: drain the queue here
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }
  for (auto& t : cq_threads_) t.join();
  cq_threads_.clear();
}

// ---------------- in-flight bookkeeping ----------------
// Returns false when shutting down (the tag is not linked then).
bool RequestEngine::link(Tag* t) {
  std::lock_guard lk(inflight_mu_);
  if (shutting_down_) return false;
  t->prev = nullptr;
  t->next = inflight_head_;
  if (inflight_head_) inflight_head_->prev = t;
  inflight_head_ = t;
  return true;
}

void RequestEngine::unlink(Tag* t) {
  std::lock_guard lk(inflight_mu_);
  if (t->prev) t->prev->next = t->next;
  else inflight_head_ = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = nullptr;
}

// ---------------- completion ----------------
void RequestEngine::deliver(const RequestPtr& req, InferResult r) {
  // Without running completion-queue threads (never started, or stopped) there is no client
  // thread to hand the result to: then it is delivered here.
  if (req->in_call.load(std::memory_order_acquire) && cq_running_.load(std::memory_order_acquire)) {
    auto* d = new Deferred;
    d->engine = this;
    d->req = req;
    d->result = std::move(r);
    d->alarm.Set(&cq_, std::chrono::system_clock::now(), d);
    return;
  }
  deliver_now(req, std::move(r));
}

void RequestEngine::deliver_now(const RequestPtr& req, InferResult r) {
  if (req->finished.exchange(true)) {
    std::fprintf(stderr, "quiver client: internal error: request %s completed twice (ignored)\n",
                 req->opt.request_id.c_str());
    return;
  }
  r.request_id = req->opt.request_id;
  r.client_ns = now_ns() - req->start_ns;
  if (req->shm_lease) {  // no attempt is in flight any more; local outputs are copies
    // A failed request's server may still write its outputs: keep the slot out of use a while.
    if (!r.ok() && req->shm_outputs && req->attempts > 0) req->shm_lease->hold_ns = kShmQuarantineNs;
    req->shm_lease.reset();
  }
  if (r.ok()) counters_.completed.fetch_add(1, std::memory_order_relaxed);
  else counters_.failed.fetch_add(1, std::memory_order_relaxed);
  InferCallback done = std::move(req->done);
  try {
    done(std::move(r));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quiver client: completion callback threw: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "quiver client: completion callback threw\n");
  }
  std::lock_guard lk(inflight_mu_);
  if (--open_requests_ == 0 && shutting_down_) drained_cv_.notify_all();
}

void RequestEngine::fail(const RequestPtr& req, ErrorCode code, std::string msg) {
  InferResult r;
  r.provenance.model = req->model;
  r.provenance.version = req->opt.model_version;
  r.provenance.attempts = req->attempts;
  r.error = Error(code, std::move(msg), {.model = req->model});
  deliver(req, std::move(r));
}

struct RequestEngine::Attempt final : Tag {
  RequestEngine* engine;
  RequestPtr req;
  std::shared_ptr<ServerState> server;
  grpc::ClientContext ctx;
  std::shared_ptr<pb::ModelInferResponse> resp = std::make_shared<pb::ModelInferResponse>();
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::ModelInferResponse>> rpc;
  void proceed(bool) override { engine->on_attempt_done(this); }
  void cancel() override { ctx.TryCancel(); }
};

struct RequestEngine::RetryTimer final : Tag {
  RequestEngine* engine;
  RequestPtr req;
  grpc::Alarm alarm;
  void proceed(bool ok) override {
    engine->unlink(this);
    auto r = std::move(req);
    RequestEngine* i = engine;
    delete this;
    if (!ok) i->fail(r, ErrorCode::Cancelled, "client shut down while request '" + r->opt.request_id + "' waited to retry");
    else i->start_attempt(r);
  }
  void cancel() override { alarm.Cancel(); }
};

void RequestEngine::start_attempt(const RequestPtr& req) {
  const int64_t now = now_ns();
  if (req->deadline_ns && now >= req->deadline_ns) {
    fail_or_fall_back(req, ErrorCode::DeadlineExceeded,
                      "deadline exceeded before attempt " + std::to_string(req->attempts + 1) + describe_log(req));
    return;
  }
  if (!req->server) {
    req->server = servers_.pick(req->model_key, req->tried);
    req->attempts_on_server = 0;
    if (!req->server) {
      no_server(req);
      return;
    }
    req->tried.push_back(req->server.get());
  }
  auto* a = new Attempt;
  a->engine = this;
  a->req = req;
  a->server = req->server;
  if (req->deadline_ns) a->ctx.set_deadline(to_system_deadline(req->deadline_ns));
  ServerSet::authorize(*a->server, a->ctx);
  if (!link(a)) {
    delete a;
    fail(req, ErrorCode::Cancelled, "client shut down");
    return;
  }
  ServerState& s = *a->server;
  s.outstanding.fetch_add(1, std::memory_order_relaxed);
  s.requests.fetch_add(1, std::memory_order_relaxed);
  if (req->attempts > 0) {
    s.retries.fetch_add(1, std::memory_order_relaxed);
    counters_.retries.fetch_add(1, std::memory_order_relaxed);
  }
  req->attempts++;
  req->attempts_on_server++;
  a->rpc = ServerSet::stub(s).PrepareAsyncModelInfer(&a->ctx, *req->msg, &cq_);
  a->rpc->StartCall();
  a->rpc->Finish(a->resp.get(), &a->status, a);
}

std::string RequestEngine::describe_log(const RequestPtr& req) const {
  return req->log.empty() ? std::string() : "; attempts: " + req->log;
}

void RequestEngine::on_attempt_done(Attempt* a) {
  unlink(a);
  std::unique_ptr<Attempt> hold(a);
  ServerState& s = *a->server;
  s.outstanding.fetch_sub(1, std::memory_order_relaxed);
  auto req = a->req;
  if (a->status.ok()) {
    s.on_success();
    finish_ok(req, a->resp, s);
    return;
  }
  s.failures.fetch_add(1, std::memory_order_relaxed);
  const auto code = a->status.error_code();
  AttemptError kind = classify(code);
  if (kind == AttemptError::Transport && is_queue_rejection(a->status.error_message()))
    kind = AttemptError::Overloaded;  // Triton and quiver serve send queue-full as UNAVAILABLE
  const int64_t now = now_ns();
  if (kind == AttemptError::Transport) s.on_transport_failure(now);
  if (kind == AttemptError::ModelNotFound) s.mark_missing(req->model_key);
  if (code == grpc::StatusCode::CANCELLED) {
    std::lock_guard lk(inflight_mu_);
    if (!shutting_down_) kind = AttemptError::Internal;  // cancelled by the server side: try elsewhere
  }
  if (!req->log.empty()) req->log += "; ";
  req->log += s.address + " " + grpc_status_name(code) + ": " + a->status.error_message();
  req->last_kind = kind;
  RetryAction act = decide_retry(opt_.retry, kind, req->attempts_on_server, static_cast<int>(req->tried.size()),
                                 s.serving.load());
  if (act != RetryAction::Fail && req->deadline_ns && now >= req->deadline_ns) {
    fail_or_fall_back(req, ErrorCode::DeadlineExceeded, "deadline exceeded" + describe_log(req));
    return;
  }
  switch (act) {
    case RetryAction::SameServer: {
      auto* t = new RetryTimer;
      t->engine = this;
      t->req = req;
      if (!link(t)) {
        delete t;
        fail(req, ErrorCode::Cancelled, "client shut down");
        return;
      }
      int64_t when = now + backoff_for(opt_.retry, req->attempts_on_server);
      if (req->deadline_ns) when = std::min(when, req->deadline_ns);
      t->alarm.Set(&cq_, to_system_deadline(when), t);
      return;
    }
    case RetryAction::OtherServer:
      req->server.reset();
      start_attempt(req);
      return;
    case RetryAction::Fail:
      final_failure(req, kind);
      return;
  }
}

void RequestEngine::fail_or_fall_back(const RequestPtr& req, ErrorCode code, std::string msg) {
  if (can_fallback(req, code)) run_local(req);
  else fail(req, code, std::move(msg));
}

void RequestEngine::final_failure(const RequestPtr& req, AttemptError kind) {
  if (can_fallback(req, attempt_error_code(kind))) {
    run_local(req);
    return;
  }
  std::string what;
  switch (kind) {
    case AttemptError::Transport: what = "no server could be reached"; break;
    case AttemptError::Overloaded: what = "every server tried rejected the request (overloaded: queue full)"; break;
    case AttemptError::ModelNotFound: what = "no server serves this model/version"; break;
    case AttemptError::DeadlineExceeded: what = "deadline exceeded"; break;
    case AttemptError::Caller: what = "the server rejected the request"; break;
    case AttemptError::Cancelled: what = "cancelled"; break;
    case AttemptError::Internal: what = "server error"; break;
  }
  fail(req, attempt_error_code(kind),
       what + " (request " + req->opt.request_id + ", " + std::to_string(req->attempts) + " attempt(s) on " +
           std::to_string(req->tried.size()) + " server(s))" + describe_log(req));
}

void RequestEngine::no_server(const RequestPtr& req) {
  if (!req->tried.empty()) {  // ran out of other servers after failures
    // Every server has been tried; one may take another attempt while the request's budget
    // (attempts_per_server per server tried) lasts. A load balancer in front of many servers is
    // one endpoint here, and its next attempt lands on another backend.
    const bool transient = req->last_kind == AttemptError::Transport || req->last_kind == AttemptError::Internal;
    const int budget = std::max(1, opt_.retry.attempts_per_server) * static_cast<int>(req->tried.size());
    if (transient && req->attempts < budget) {
      if (auto again = servers_.pick(req->model_key, {})) {
        req->server = std::move(again);
        req->attempts_on_server = 0;
        start_attempt(req);
        return;
      }
    }
    final_failure(req, req->last_kind);
    return;
  }
  if (can_fallback(req, ErrorCode::Unavailable)) {
    run_local(req);
    return;
  }
  Error e = servers_.no_server_error(req->model_key, opt_.fallback == FallbackMode::Off);
  fail(req, e.code(), e.message());
}

bool RequestEngine::can_fallback(const RequestPtr& req, ErrorCode code) const {
  return fallback_ && fallback_->covers(req->model, code);
}

// The fallback runs on a worker: the inputs are read back from the request message (or the
// shared-memory slot, which the request holds until it completes).
void RequestEngine::run_local(const RequestPtr& req) {
  counters_.fallbacks.fetch_add(1, std::memory_order_relaxed);
  workers_([this, req] {
    InferResult r;
    try {
      std::vector<NamedTensor> inputs = kserve::decode_inputs(req->msg, req->shm_inputs ? shm_->base() : nullptr);
      r = fallback_->run_now(req->model, req->opt, inputs, req->attempts, describe_log(req));
    } catch (const Error& e) {
      r.error = Error(e.code(), "local fallback failed: " + e.message() + describe_log(req), e.where())
                    .with_context({.model = req->model});
    }
    deliver(req, std::move(r));
  });
}

void RequestEngine::finish_ok(const RequestPtr& req, const std::shared_ptr<pb::ModelInferResponse>& resp,
                              const ServerState& s) {
  InferResult r;
  r.provenance.server = s.address;
  r.provenance.model = resp->model_name();
  r.provenance.version = resp->model_version();
  r.provenance.mode = "service";
  r.provenance.attempts = req->attempts;
  r.provenance.sha256 = kserve::checksum_of(resp->parameters());
  if (r.provenance.sha256.empty())  // from the metadata cache, when this model was looked up
    r.provenance.sha256 = meta_.sha256_of(r.provenance.model, r.provenance.version, req->model_key);
  try {
    if (req->shm_outputs) {
      kserve::ShmOutputs so;
      so.region = shm_->name();
      so.base = shm_->base();
      so.lo = static_cast<uint64_t>(req->shm_slot) * static_cast<uint64_t>(shm_->slot_bytes());
      so.hi = so.lo + static_cast<uint64_t>(shm_->slot_bytes());
      so.keep = req->shm_lease;
      r.outputs = kserve::decode_outputs(resp, &so);
      r.outputs_in_shared_memory = true;
    } else {
      r.outputs = kserve::decode_outputs(resp);
    }
  } catch (const Error& e) {
    r.outputs.clear();
    r.error = Error(e.code(), "bad response from " + s.address + ": " + e.message(), e.where())
                  .with_context({.model = req->model});
  }
  deliver(req, std::move(r));
}

void RequestEngine::infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& o,
                                InferCallback done) {
  auto req = std::make_shared<Request>();
  // Results decided before this returns (no server, encoding errors, shutdown) go through the
  // completion queue: `done` runs later, on a client thread, as client.hpp promises.
  struct Returned {
    Request& r;
    ~Returned() { r.in_call.store(false, std::memory_order_release); }
  } returned{*req};
  req->start_ns = now_ns();
  req->model = model;
  req->opt = o;
  req->done = std::move(done);
  if (req->opt.request_id.empty()) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "q%016llx-%llu", static_cast<unsigned long long>(client_id_),
                  static_cast<unsigned long long>(next_id_.fetch_add(1, std::memory_order_relaxed)));
    req->opt.request_id = buf;
  }
  req->model_key = o.model_version.empty() ? model : model + ":" + o.model_version;
  const int64_t timeout = o.timeout_ns > 0 ? o.timeout_ns : opt_.default_timeout_ns;
  if (timeout > 0) req->deadline_ns = req->start_ns + timeout;
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lk(inflight_mu_);
    ++open_requests_;  // balanced by deliver (which runs exactly once)
  }
  if (model.empty()) {
    fail(req, ErrorCode::InvalidArgument, "empty model name");
    return;
  }
  try {
    ShmPlacement place;
    if (shm_) {
      std::vector<kserve::ShmTarget::Output> outs;
      int64_t out_bytes = 0;
      if (opt_.shared_memory_outputs) {
        // Never blocks: until the model's metadata is cached, outputs travel in the message.
        auto m = meta_.cached_or_prefetch(model, o.model_version);
        if (!m || !plan_shm_outputs(*m, req->opt, inputs, outs, out_bytes)) outs.clear();
      }
      place = place_in_pool(shm_, inputs, std::move(outs), out_bytes);
      if (place.lease) {
        req->shm_slot = place.lease->slot;
        req->shm_lease = place.lease;
        req->shm_inputs = place.inputs;
        req->shm_outputs = place.outputs;
      }
    }
    req->msg = kserve::encode_request(model, inputs, req->opt, timeout, place.lease ? &place.target : nullptr);
  } catch (const Error& e) {
    InferResult r;
    r.provenance.model = model;
    r.error = e.with_context({.model = model});
    deliver(req, std::move(r));
    return;
  }
  if (opt_.fallback == FallbackMode::AlwaysLocal) {
    if (!fallback_->models().has(model)) {
      fail(req, ErrorCode::NotFound,
           "model not among the local models (" + fallback_->models().source() + ", fallback always-local)");
      return;
    }
    run_local(req);
    return;
  }
  start_attempt(req);
}

}  // namespace quiver::client
