// The gRPC inference client: one CompletionQueue served by client-owned threads, per-server
// channels, circuit breakers, p2c balancing, retries, and the local fallback.
#include "quiver/client/client.hpp"

#include <fcntl.h>
#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>
#include <sys/mman.h>
#include <tbb/task_group.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <random>
#include <thread>

#include "client/metadata.hpp"
#include "grpc_service.grpc.pb.h"
#include "kserve/infer_messages.hpp"
#include "kserve/tensors.hpp"
#include "quiver/client/local_repository.hpp"
#include "quiver/core/util.hpp"

namespace quiver::client {

namespace pb = inference;

namespace {

struct Transport {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::GRPCInferenceService::Stub> stub;
};

Transport& transport_of(const ServerState& s) { return *static_cast<Transport*>(s.transport.get()); }

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

const char* status_name(grpc::StatusCode c) {
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

// Anything the completion queue hands back. Linked into the client's in-flight list so shutdown
// can cancel it.
struct Tag {
  virtual ~Tag() = default;
  virtual void proceed(bool ok) = 0;
  virtual void cancel() = 0;
  Tag* prev = nullptr;
  Tag* next = nullptr;
};

// One system shared-memory region of fixed-size slots; a request holds a slot until it completes
// (and, with shared-memory outputs, until the last output tensor viewing it is gone).
class ShmPool {
 public:
  ShmPool(int slots, int64_t slot_bytes, uint64_t client_id) : slot_bytes_((slot_bytes + 63) / 64 * 64) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "/quiver_client_%d_%016llx", static_cast<int>(::getpid()),
                  static_cast<unsigned long long>(client_id));
    key_ = buf;
    name_ = key_.substr(1);
    bytes_ = static_cast<size_t>(slot_bytes_) * static_cast<size_t>(slots);
    int fd = ::shm_open(key_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) throw Error(ErrorCode::Unavailable, "cannot create shared memory " + key_ + ": " + std::strerror(errno));
    if (::ftruncate(fd, static_cast<off_t>(bytes_)) != 0) {
      ::close(fd);
      ::shm_unlink(key_.c_str());
      throw Error(ErrorCode::ResourceExhausted, "cannot size shared memory " + key_ + ": " + std::strerror(errno));
    }
    void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) {
      ::shm_unlink(key_.c_str());
      throw Error(ErrorCode::ResourceExhausted, "cannot map shared memory " + key_ + ": " + std::strerror(errno));
    }
    base_ = static_cast<char*>(p);
    for (int i = slots - 1; i >= 0; --i) free_.push_back(i);
  }
  ~ShmPool() {
    ::munmap(base_, bytes_);
    ::shm_unlink(key_.c_str());
  }
  int acquire() {
    std::lock_guard lk(mu_);
    if (!quarantine_.empty()) {
      const int64_t now = now_ns();
      while (!quarantine_.empty() && quarantine_.front().first <= now) {
        free_.push_back(quarantine_.front().second);
        quarantine_.pop_front();
      }
    }
    if (free_.empty()) return -1;
    int s = free_.back();
    free_.pop_back();
    return s;
  }
  // `hold_ns` > 0: the slot is reused only after that long (a server may still write outputs of a
  // request the client gave up on).
  void release(int s, int64_t hold_ns = 0) {
    std::lock_guard lk(mu_);
    if (hold_ns > 0) quarantine_.emplace_back(now_ns() + hold_ns, s);
    else free_.push_back(s);
  }
  const std::string& name() const { return name_; }
  const std::string& key() const { return key_; }
  size_t bytes() const { return bytes_; }
  int64_t slot_bytes() const { return slot_bytes_; }
  char* base() const { return base_; }

 private:
  std::string name_, key_;
  int64_t slot_bytes_;
  size_t bytes_ = 0;
  char* base_ = nullptr;
  std::mutex mu_;
  std::vector<int> free_;
  std::deque<std::pair<int64_t, int>> quarantine_;  // (reusable at ns, slot), in time order
};

// A request's hold on its slot; output tensors in the slot share it.
struct SlotLease {
  SlotLease(std::shared_ptr<ShmPool> p, int s) : pool(std::move(p)), slot(s) {}
  ~SlotLease() { pool->release(slot, hold_ns.load()); }
  std::shared_ptr<ShmPool> pool;
  const int slot;
  std::atomic<int64_t> hold_ns{0};
};

constexpr int64_t kShmQuarantineNs = 5'000'000'000;

}  // namespace

struct Request {
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
};

struct Client::Impl {
  ClientOptions opt;
  Balancer balancer;
  Discovery discovery;
  std::shared_ptr<Fallback> fallback;  // null when off
  std::shared_ptr<ShmPool> shm;  // output tensors viewing a slot keep the mapping
  grpc::CompletionQueue cq;
  std::vector<std::thread> cq_threads;
  std::thread maintenance;
  tbb::task_group local_tasks;
  std::mutex local_tasks_mu;  // run() from the CQ thread and callers' threads
  uint64_t client_id = 0;
  std::atomic<uint64_t> next_id{1};

  // In-flight tags (attempts and retry timers), for cancellation at shutdown.
  std::mutex inflight_mu;
  Tag* inflight_head = nullptr;
  bool shutting_down = false;
  int64_t open_requests = 0;
  std::condition_variable drained_cv;

  // Maintenance.
  std::mutex maint_mu;
  std::condition_variable maint_cv;
  bool stop_maint = false;
  bool refresh_requested = false;
  int64_t next_discovery_ns = 0;
  int64_t next_stats_ns = 0;
  std::map<const ServerState*, std::pair<uint64_t, uint64_t>> last_queue;  // count, ns
  std::mutex serving_mu;
  std::condition_variable serving_cv;

  // Metadata cache.
  std::mutex meta_mu;
  std::map<std::string, std::shared_ptr<const ModelMeta>> meta;
  std::set<std::string> meta_pending;  // background fetches for shared-memory output planning

  // Counters.
  std::atomic<int64_t> n_requests{0}, n_completed{0}, n_failed{0}, n_retries{0}, n_fallbacks{0};

  explicit Impl(ClientOptions o)
      : opt(std::move(o)), balancer(opt.balancer, opt.breaker), discovery(opt.discovery) {
    std::random_device rd;
    client_id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    if (opt.fallback != FallbackMode::Off) {
      std::shared_ptr<LocalModels> models = opt.fallback_models;
      if (!models) {
        if (opt.fallback_repository.empty())
          throw Error(ErrorCode::InvalidArgument, "fallback is enabled but no fallback_repository was given");
        models = std::make_shared<LocalRepository>(opt.fallback_repository);
      }
      fallback = std::make_shared<Fallback>(opt.fallback, std::move(models), [this](std::function<void()> task) {
        std::lock_guard tlk(local_tasks_mu);
        local_tasks.run(std::move(task));
      });
    }
    if (opt.fallback != FallbackMode::AlwaysLocal && opt.discovery.endpoints.empty() &&
        opt.discovery.servers_file.empty() && opt.discovery.dns_names.empty())
      throw Error(ErrorCode::InvalidArgument, "no servers configured (endpoints, servers_file or dns_names)");
    if (opt.shared_memory && opt.fallback != FallbackMode::AlwaysLocal)
      shm = std::make_shared<ShmPool>(std::max(1, opt.shm_slots), std::max<int64_t>(64, opt.shm_slot_bytes), client_id);
    if (opt.retry.attempts_per_server < 1) opt.retry.attempts_per_server = 1;
    if (opt.retry.max_servers < 1) opt.retry.max_servers = 1;
  }

  void start() {
    if (opt.fallback != FallbackMode::AlwaysLocal) {
      run_discovery(now_ns());
      probe_round(now_ns(), /*force_all=*/true);
    }
    for (int i = 0; i < std::max(1, opt.completion_threads); ++i)
      cq_threads.emplace_back([this] {
        void* tag;
        bool ok;
        while (cq.Next(&tag, &ok)) static_cast<Tag*>(tag)->proceed(ok);
      });
    if (opt.fallback != FallbackMode::AlwaysLocal) maintenance = std::thread([this] { maintenance_loop(); });
  }

  void shutdown() {
    {
      std::lock_guard lk(maint_mu);
      stop_maint = true;
    }
    maint_cv.notify_all();
    if (maintenance.joinable()) maintenance.join();
    {
      std::unique_lock lk(inflight_mu);
      shutting_down = true;
      for (Tag* t = inflight_head; t; t = t->next) t->cancel();
      drained_cv.wait(lk, [&] { return open_requests == 0; });
    }
    local_tasks.wait();
    if (shm) {  // let servers unmap the region now rather than when they next see it
      for (auto& sv : balancer.servers()) {
        if (!sv->transport || !sv->serving.load()) continue;
        grpc::ClientContext c;
        c.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
        pb::SystemSharedMemoryUnregisterRequest q;
        q.set_name(shm->name());
        pb::SystemSharedMemoryUnregisterResponse r;
        transport_of(*sv).stub->SystemSharedMemoryUnregister(&c, q, &r);
      }
    }
    cq.Shutdown();
    for (auto& t : cq_threads) t.join();
  }

  // ---------------- in-flight bookkeeping ----------------
  // Returns false when shutting down (the tag is not linked then).
  bool link(Tag* t) {
    std::lock_guard lk(inflight_mu);
    if (shutting_down) return false;
    t->prev = nullptr;
    t->next = inflight_head;
    if (inflight_head) inflight_head->prev = t;
    inflight_head = t;
    return true;
  }
  void unlink(Tag* t) {
    std::lock_guard lk(inflight_mu);
    if (t->prev) t->prev->next = t->next;
    else inflight_head = t->next;
    if (t->next) t->next->prev = t->prev;
    t->prev = t->next = nullptr;
  }

  // ---------------- completion ----------------
  void deliver(const std::shared_ptr<Request>& req, InferResult r) {
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
    if (r.ok()) n_completed.fetch_add(1, std::memory_order_relaxed);
    else n_failed.fetch_add(1, std::memory_order_relaxed);
    InferCallback done = std::move(req->done);
    try {
      done(std::move(r));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "quiver client: completion callback threw: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "quiver client: completion callback threw\n");
    }
    std::lock_guard lk(inflight_mu);
    if (--open_requests == 0 && shutting_down) drained_cv.notify_all();
  }

  void fail(const std::shared_ptr<Request>& req, ErrorCode code, std::string msg) {
    InferResult r;
    r.provenance.model = req->model;
    r.provenance.version = req->opt.model_version;
    r.provenance.attempts = req->attempts;
    r.error = Error(code, std::move(msg), {.model = req->model});
    deliver(req, std::move(r));
  }

  // ---------------- attempts ----------------
  struct Attempt final : Tag {
    Impl* impl;
    std::shared_ptr<Request> req;
    std::shared_ptr<ServerState> server;
    grpc::ClientContext ctx;
    std::shared_ptr<pb::ModelInferResponse> resp = std::make_shared<pb::ModelInferResponse>();
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<pb::ModelInferResponse>> rpc;
    void proceed(bool) override { impl->on_attempt_done(this); }
    void cancel() override { ctx.TryCancel(); }
  };

  struct RetryTimer final : Tag {
    Impl* impl;
    std::shared_ptr<Request> req;
    grpc::Alarm alarm;
    void proceed(bool ok) override {
      impl->unlink(this);
      auto r = std::move(req);
      Impl* i = impl;
      delete this;
      if (!ok) i->fail(r, ErrorCode::Cancelled, "client shut down while request '" + r->opt.request_id + "' waited to retry");
      else i->start_attempt(r);
    }
    void cancel() override { alarm.Cancel(); }
  };

  void start_attempt(const std::shared_ptr<Request>& req) {
    const int64_t now = now_ns();
    if (req->deadline_ns && now >= req->deadline_ns) {
      fail_or_fall_back(req, ErrorCode::DeadlineExceeded,
                        "deadline exceeded before attempt " + std::to_string(req->attempts + 1) + describe_log(req));
      return;
    }
    if (!req->server) {
      req->server = balancer.pick(req->model_key, req->tried);
      req->attempts_on_server = 0;
      if (!req->server) {
        no_server(req);
        return;
      }
      req->tried.push_back(req->server.get());
    }
    auto* a = new Attempt;
    a->impl = this;
    a->req = req;
    a->server = req->server;
    if (req->deadline_ns) a->ctx.set_deadline(to_system_deadline(req->deadline_ns));
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
      n_retries.fetch_add(1, std::memory_order_relaxed);
    }
    req->attempts++;
    req->attempts_on_server++;
    a->rpc = transport_of(s).stub->PrepareAsyncModelInfer(&a->ctx, *req->msg, &cq);
    a->rpc->StartCall();
    a->rpc->Finish(a->resp.get(), &a->status, a);
  }

  std::string describe_log(const std::shared_ptr<Request>& req) const {
    return req->log.empty() ? std::string() : "; attempts: " + req->log;
  }

  void on_attempt_done(Attempt* a) {
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
      std::lock_guard lk(inflight_mu);
      if (!shutting_down) kind = AttemptError::Internal;  // cancelled by the server side: try elsewhere
    }
    if (!req->log.empty()) req->log += "; ";
    req->log += s.address + " " + status_name(code) + ": " + a->status.error_message();
    req->last_kind = kind;
    RetryAction act = decide_retry(opt.retry, kind, req->attempts_on_server, static_cast<int>(req->tried.size()),
                                   s.serving.load());
    if (act != RetryAction::Fail && req->deadline_ns && now >= req->deadline_ns) {
      fail_or_fall_back(req, ErrorCode::DeadlineExceeded, "deadline exceeded" + describe_log(req));
      return;
    }
    switch (act) {
      case RetryAction::SameServer: {
        auto* t = new RetryTimer;
        t->impl = this;
        t->req = req;
        if (!link(t)) {
          delete t;
          fail(req, ErrorCode::Cancelled, "client shut down");
          return;
        }
        int64_t when = now + backoff_for(opt.retry, req->attempts_on_server);
        if (req->deadline_ns) when = std::min(when, req->deadline_ns);
        t->alarm.Set(&cq, to_system_deadline(when), t);
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

  void fail_or_fall_back(const std::shared_ptr<Request>& req, ErrorCode code, std::string msg) {
    if (can_fallback(req, code)) run_local(req);
    else fail(req, code, std::move(msg));
  }

  void final_failure(const std::shared_ptr<Request>& req, AttemptError kind) {
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

  void no_server(const std::shared_ptr<Request>& req) {
    if (!req->tried.empty()) {  // ran out of other servers after failures
      // Every server has been tried; one may take another attempt while the request's budget
      // (attempts_per_server per server tried) lasts. A load balancer in front of many servers is
      // one endpoint here, and its next attempt lands on another backend.
      const bool transient = req->last_kind == AttemptError::Transport || req->last_kind == AttemptError::Internal;
      const int budget = std::max(1, opt.retry.attempts_per_server) * static_cast<int>(req->tried.size());
      if (transient && req->attempts < budget) {
        if (auto again = balancer.pick(req->model_key, {})) {
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
    int known = 0, serving = 0, lacking = 0;
    for (auto& s : balancer.servers()) {
      if (s->removed.load()) continue;
      ++known;
      if (s->serving.load()) {
        ++serving;
        lacking += !s->serves(req->model_key);
      }
    }
    if (serving > 0 && lacking == serving)
      fail(req, ErrorCode::NotFound,
           "none of the " + std::to_string(serving) + " serving server(s) serves model '" + req->model_key + "'");
    else
      fail(req, ErrorCode::Unavailable,
           "no healthy server: " + std::to_string(known) + " known, " + std::to_string(serving) +
               " serving" + (opt.fallback == FallbackMode::Off ? " (fallback is off)" : "") + down_servers());
  }

  // A TLS mismatch shows up as a closed socket (plaintext client, TLS server) or an SSL "wrong
  // version number" (TLS client, plaintext server): say so.
  std::string tls_hint(const std::string& msg) const {
    if (!opt.tls.enabled && msg.find("Socket closed") != std::string::npos)
      return " (if the server uses TLS, enable TLS in the client: TlsOptions / --ssl)";
    if (opt.tls.enabled && msg.find("wrong version number") != std::string::npos)
      return " (the server does not seem to use TLS)";
    return "";
  }

  // "; HOST:PORT: why its last probe failed; ..." for the servers out of service (TLS handshake
  // failures, refused connections, ...), so "no healthy server" says why.
  std::string down_servers() const {
    std::string out;
    int n = 0;
    for (auto& s : balancer.servers()) {
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

  bool can_fallback(const std::shared_ptr<Request>& req, ErrorCode code) const {
    return fallback && fallback->covers(req->model, code);
  }

  // The fallback runs on a worker: the inputs are read back from the request message (or the
  // shared-memory slot, which the request holds until it completes).
  void run_local(const std::shared_ptr<Request>& req) {
    n_fallbacks.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard tlk(local_tasks_mu);
    local_tasks.run([this, req] {
      InferResult r;
      try {
        std::vector<NamedTensor> inputs = kserve::decode_inputs(req->msg, req->shm_inputs ? shm->base() : nullptr);
        r = fallback->run_now(req->model, req->opt, inputs, req->attempts, describe_log(req));
      } catch (const Error& e) {
        r.error = Error(e.code(), "local fallback failed: " + e.message() + describe_log(req), e.where())
                      .with_context({.model = req->model});
      }
      deliver(req, std::move(r));
    });
  }

  void finish_ok(const std::shared_ptr<Request>& req, const std::shared_ptr<pb::ModelInferResponse>& resp,
                 const ServerState& s) {
    InferResult r;
    r.provenance.server = s.address;
    r.provenance.model = resp->model_name();
    r.provenance.version = resp->model_version();
    r.provenance.mode = "service";
    r.provenance.attempts = req->attempts;
    r.provenance.sha256 = kserve::checksum_of(resp->parameters());
    if (r.provenance.sha256.empty()) {  // from the metadata cache, when this model was looked up
      std::lock_guard lk(meta_mu);
      auto it = meta.find(r.provenance.version.empty() ? r.provenance.model
                                                       : r.provenance.model + ":" + r.provenance.version);
      if (it == meta.end()) it = meta.find(req->model_key);
      if (it != meta.end() && (r.provenance.version.empty() || it->second->info.version == r.provenance.version))
        r.provenance.sha256 = it->second->info.sha256;
    }
    try {
      if (req->shm_outputs) {
        kserve::ShmOutputs so;
        so.region = shm->name();
        so.base = shm->base();
        so.lo = static_cast<uint64_t>(req->shm_slot) * static_cast<uint64_t>(shm->slot_bytes());
        so.hi = so.lo + static_cast<uint64_t>(shm->slot_bytes());
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

  // Outputs through shared memory need their sizes before the request is sent: from the cached
  // metadata (batch dimension = the first input's first dimension). Never blocks: when the
  // metadata is not cached yet it is fetched in the background and this request's outputs travel
  // in the message. False for BYTES outputs and dimensions other than the batch that are dynamic.
  bool plan_shm_outputs(const std::string& model, const std::string& key, const InferOptions& o, const std::vector<NamedTensor>& inputs,
                        std::vector<kserve::ShmTarget::Output>& outs, int64_t& bytes) {
    std::shared_ptr<const ModelMeta> m;
    {
      std::lock_guard lk(meta_mu);
      if (auto it = meta.find(key); it != meta.end()) m = it->second;
      else if (!meta_pending.insert(key).second) return false;  // a fetch is under way
    }
    if (!m) {
      const std::string version = o.model_version;
      std::lock_guard tlk(local_tasks_mu);
      local_tasks.run([this, model, version, key] {
        try {
          model_metadata(model, version);
        } catch (const std::exception&) {  // the request path reports errors; here only a cache miss
        }
        std::lock_guard lk(meta_mu);
        meta_pending.erase(key);
      });
      return false;
    }
    const ModelInfo& info = m->info;
    int64_t batch = 1;
    if (info.max_batch > 0) {
      if (inputs.empty() || !inputs[0].tensor.defined() || inputs[0].tensor.rank() == 0) return false;
      batch = inputs[0].tensor.dim(0);
    }
    bytes = 0;
    outs.clear();
    for (const auto& ti : info.outputs) {
      if (!o.outputs.empty() && std::find(o.outputs.begin(), o.outputs.end(), ti.name) == o.outputs.end()) continue;
      if (ti.dtype == DType::String || ti.dtype == DType::Undefined) return false;
      int64_t n = 1;
      for (size_t i = 0; i < ti.shape.size(); ++i) {
        if (i == 0 && info.max_batch > 0) n *= batch;
        else if (ti.shape[i].is_fixed()) n *= ti.shape[i].value;
        else return false;
      }
      const uint64_t b = static_cast<uint64_t>(n) * dtype_size(ti.dtype);
      outs.push_back({ti.name, 0, b});
      bytes += static_cast<int64_t>((b + 63) / 64 * 64);
    }
    if (!o.outputs.empty() && outs.size() != o.outputs.size()) return false;  // unknown names: the server says so
    return !outs.empty();
  }

  // ---------------- entry ----------------
  void infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& o,
                   InferCallback done) {
    auto req = std::make_shared<Request>();
    req->start_ns = now_ns();
    req->model = model;
    req->opt = o;
    req->done = std::move(done);
    if (req->opt.request_id.empty()) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "q%016llx-%llu", static_cast<unsigned long long>(client_id),
                    static_cast<unsigned long long>(next_id.fetch_add(1, std::memory_order_relaxed)));
      req->opt.request_id = buf;
    }
    req->model_key = o.model_version.empty() ? model : model + ":" + o.model_version;
    const int64_t timeout = o.timeout_ns > 0 ? o.timeout_ns : opt.default_timeout_ns;
    if (timeout > 0) req->deadline_ns = req->start_ns + timeout;
    n_requests.fetch_add(1, std::memory_order_relaxed);
    {
      std::lock_guard lk(inflight_mu);
      ++open_requests;  // balanced by deliver (which runs exactly once)
    }
    if (model.empty()) {
      fail(req, ErrorCode::InvalidArgument, "empty model name");
      return;
    }
    try {
      kserve::ShmTarget target;
      const kserve::ShmTarget* tp = nullptr;
      if (shm) {
        int64_t need = 0;
        bool ok = true;
        for (auto& in : inputs) {
          ok = ok && in.tensor.defined() && in.tensor.dtype() != DType::String;
          need += (static_cast<int64_t>(in.tensor.nbytes()) + 63) / 64 * 64;
        }
        const bool use_in = ok && need <= shm->slot_bytes();
        std::vector<kserve::ShmTarget::Output> outs;
        int64_t out_need = 0;
        const bool use_out = opt.shared_memory_outputs &&
                             plan_shm_outputs(model, req->model_key, req->opt, inputs, outs, out_need) &&
                             (use_in ? need : 0) + out_need <= shm->slot_bytes();
        if ((use_in || use_out) && (req->shm_slot = shm->acquire()) >= 0) {
          req->shm_lease = std::make_shared<SlotLease>(shm, req->shm_slot);
          req->shm_inputs = use_in;
          req->shm_outputs = use_out;
          target.region = shm->name();
          target.base = shm->base();
          target.offset = static_cast<uint64_t>(req->shm_slot) * static_cast<uint64_t>(shm->slot_bytes());
          target.inputs = use_in;
          if (use_out) {
            uint64_t at = target.offset + static_cast<uint64_t>(use_in ? need : 0);
            for (auto& so : outs) {
              so.offset = at;
              at += (so.byte_size + 63) / 64 * 64;
            }
            target.outputs = std::move(outs);
          }
          tp = &target;
        }
      }
      req->msg = kserve::encode_request(model, inputs, req->opt, timeout, tp);
    } catch (const Error& e) {
      InferResult r;
      r.provenance.model = model;
      r.error = e.with_context({.model = model});
      deliver(req, std::move(r));
      return;
    }
    if (opt.fallback == FallbackMode::AlwaysLocal) {
      if (!fallback->models().has(model)) {
        fail(req, ErrorCode::NotFound,
             "model not among the local models (" + fallback->models().source() + ", fallback always-local)");
        return;
      }
      run_local(req);
      return;
    }
    start_attempt(req);
  }

  // ---------------- maintenance: discovery, probes, statistics ----------------
  std::shared_ptr<Transport> make_transport(const std::string& address) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    if (opt.compression == Compression::Gzip) args.SetCompressionAlgorithm(GRPC_COMPRESS_GZIP);
    else if (opt.compression == Compression::Deflate) args.SetCompressionAlgorithm(GRPC_COMPRESS_DEFLATE);
    std::shared_ptr<grpc::ChannelCredentials> creds;
    if (opt.tls.enabled) {
      grpc::SslCredentialsOptions so;
      if (!opt.tls.root_certs_file.empty()) so.pem_root_certs = read_file(opt.tls.root_certs_file);
      if (!opt.tls.client_cert_file.empty()) so.pem_cert_chain = read_file(opt.tls.client_cert_file);
      if (!opt.tls.client_key_file.empty()) so.pem_private_key = read_file(opt.tls.client_key_file);
      creds = grpc::SslCredentials(so);
      if (!opt.tls.server_name_override.empty()) args.SetSslTargetNameOverride(opt.tls.server_name_override);
    } else {
      creds = grpc::InsecureChannelCredentials();
    }
    auto t = std::make_shared<Transport>();
    t->channel = grpc::CreateCustomChannel(address, creds, args);
    t->stub = pb::GRPCInferenceService::NewStub(t->channel);
    return t;
  }

  void run_discovery(int64_t now) {
    next_discovery_ns = now + opt.discovery_interval_ns;
    bool changed = discovery.refresh();
    for (auto& e : discovery.errors()) std::fprintf(stderr, "quiver client: discovery: %s\n", e.c_str());
    if (changed) balancer.set_servers(discovery.endpoints(), /*start_serving=*/false);
    for (auto& s : balancer.servers()) {
      if (!s->transport) {
        std::lock_guard lk(s->mu);
        s->transport = make_transport(s->address);
      }
      s->clear_missing();  // models may have been loaded since
    }
  }

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

  // One round of readiness probes (serving servers, and open ones whose wait is over), plus
  // statistics polls when due; waits for all answers (bounded by probe_timeout_ns).
  void probe_round(int64_t now, bool force_all) {
    grpc::CompletionQueue pcq;
    std::vector<std::unique_ptr<Probe>> probes;
    const bool stats_due = opt.statistics_interval_ns > 0 && now >= next_stats_ns;
    if (stats_due) next_stats_ns = now + opt.statistics_interval_ns;
    const auto deadline = std::chrono::system_clock::now() + std::chrono::nanoseconds(opt.probe_timeout_ns);
    int pending = 0;
    for (auto& s : balancer.servers()) {
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
      p->rpc = transport_of(*s).stub->AsyncServerReady(&p->ctx, pb::ServerReadyRequest(), &pcq);
      p->rpc->Finish(&p->resp, &p->status, reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p.get()) | 0));
      ++pending;
      if (serving && stats_due) {
        p->stats = true;
        p->sctx.set_deadline(deadline);
        p->srpc = transport_of(*s).stub->AsyncModelStatistics(&p->sctx, pb::ModelStatisticsRequest(), &pcq);
        p->srpc->Finish(&p->sresp, &p->sstatus, reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(p.get()) | 1));
        ++pending;
      }
      probes.push_back(std::move(p));
    }
    bool any_up = false;
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
        auto& last = last_queue[&s];
        if (count > last.first && ns >= last.second) s.queue_ns.store(static_cast<int64_t>((ns - last.second) / (count - last.first)));
        else s.queue_ns.store(0);
        last = {count, ns};
        continue;
      }
      const bool up = p->status.ok() && p->resp.ready();
      std::lock_guard lk(s.mu);
      if (up) s.last_error.clear();
      else if (!p->status.ok())
        s.last_error = std::string(status_name(p->status.error_code())) + ": " + p->status.error_message() +
                       tls_hint(p->status.error_message());
      else
        s.last_error = "server says it is not ready";
      if (p->was_serving) {
        // A serving server that says "not ready" (draining) is taken out at once; one that cannot
        // be reached counts like a failed request; a slow answer (deadline) only means busy, which
        // the balancer's load terms already handle.
        bool opened = false;
        if (p->status.ok() && !p->resp.ready() && s.breaker.serving()) {
          s.breaker.trip(t);
          opened = true;
        } else if (!p->status.ok() && p->status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
          opened = s.breaker.record_failure(t);
        }
        if (opened) {
          s.serving.store(false);
          s.breaker_trips.fetch_add(1, std::memory_order_relaxed);
        }
      } else if (up && shm) {
        came_up.push_back(p->server);  // registers the shared-memory region first (below, unlocked)
      } else {
        s.breaker.probe_result(up, t);
        if (up) {
          s.serving.store(true);
          any_up = true;
        }
      }
    }
    for (auto& sp : came_up) {
      const bool ok = register_shm(*sp);
      std::lock_guard lk(sp->mu);
      sp->breaker.probe_result(ok, now_ns());
      if (ok) {
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
      std::lock_guard lk(serving_mu);
      serving_cv.notify_all();
    }
  }

  // (Re-)registers the client's shared-memory region with a server coming in (a restarted server
  // has forgotten it; a returning one may still have it, hence unregister first).
  bool register_shm(ServerState& s) {
    auto& stub = *transport_of(s).stub;
    const auto dl = std::chrono::system_clock::now() + std::chrono::nanoseconds(opt.probe_timeout_ns);
    {
      grpc::ClientContext c;
      c.set_deadline(dl);
      pb::SystemSharedMemoryUnregisterRequest q;
      q.set_name(shm->name());
      pb::SystemSharedMemoryUnregisterResponse r;
      stub.SystemSharedMemoryUnregister(&c, q, &r);  // NOT_FOUND is fine
    }
    grpc::ClientContext c;
    c.set_deadline(dl);
    pb::SystemSharedMemoryRegisterRequest q;
    q.set_name(shm->name());
    q.set_key(shm->key());
    q.set_offset(0);
    q.set_byte_size(shm->bytes());
    pb::SystemSharedMemoryRegisterResponse r;
    grpc::Status st = stub.SystemSharedMemoryRegister(&c, q, &r);
    if (!st.ok())
      std::fprintf(stderr, "quiver client: %s cannot register shared memory %s (%s: %s); server kept out\n",
                   s.address.c_str(), shm->key().c_str(), status_name(st.error_code()), st.error_message().c_str());
    return st.ok();
  }

  void maintenance_loop() {
    std::unique_lock lk(maint_mu);
    while (!stop_maint) {
      maint_cv.wait_for(lk, std::chrono::nanoseconds(opt.health_interval_ns),
                        [&] { return stop_maint || refresh_requested; });
      if (stop_maint) break;
      const bool forced = refresh_requested;
      refresh_requested = false;
      lk.unlock();
      const int64_t now = now_ns();
      if (forced || now >= next_discovery_ns) run_discovery(now);
      probe_round(now, forced);
      lk.lock();
    }
  }

  // ---------------- metadata ----------------
  std::shared_ptr<const ModelMeta> model_metadata(const std::string& model, const std::string& version) {
    const std::string key = version.empty() ? model : model + ":" + version;
    {
      std::lock_guard lk(meta_mu);
      if (auto it = meta.find(key); it != meta.end()) return it->second;
    }
    std::string errors;
    std::shared_ptr<ModelMeta> m;
    if (opt.fallback != FallbackMode::AlwaysLocal) {
      std::vector<const ServerState*> tried;
      for (int i = 0; i < std::max(1, opt.retry.max_servers) && !m; ++i) {
        auto s = balancer.pick(key, tried);
        if (!s) break;
        tried.push_back(s.get());
        grpc::ClientContext c1, c2;
        const auto dl = std::chrono::system_clock::now() + std::chrono::seconds(5);
        c1.set_deadline(dl);
        c2.set_deadline(dl);
        pb::ModelMetadataRequest mreq;
        mreq.set_name(model);
        mreq.set_version(version);
        pb::ModelMetadataResponse mresp;
        grpc::Status st = transport_of(*s).stub->ModelMetadata(&c1, mreq, &mresp);
        if (!st.ok()) {
          errors += (errors.empty() ? "" : "; ") + s->address + " " + status_name(st.error_code()) + ": " + st.error_message();
          if (st.error_code() == grpc::StatusCode::NOT_FOUND) s->mark_missing(key);
          continue;
        }
        pb::ModelConfigRequest creq;
        creq.set_name(model);
        creq.set_version(version);
        pb::ModelConfigResponse cresp;
        grpc::Status cst = transport_of(*s).stub->ModelConfig(&c2, creq, &cresp);
        try {
          m = std::make_shared<ModelMeta>(meta_from_server(mresp, cst.ok() ? &cresp.config() : nullptr, version));
          m->source = s->address;
        } catch (const Error& e) {
          errors += (errors.empty() ? "" : "; ") + s->address + ": " + e.message();
        }
      }
    }
    if (!m && fallback && fallback->models().has(model)) {
      auto lm = fallback->models().get(model, version);
      m = std::make_shared<ModelMeta>();
      m->info = lm->info();
      m->platform = lm->info().backend;
      m->source = fallback->models().source();
    }
    if (!m)
      throw Error(ErrorCode::NotFound,
                  "cannot get metadata of model '" + key + "'" +
                      (errors.empty() ? ": no serving server" + down_servers() : ": " + errors),
                  {.model = model});
    std::lock_guard lk(meta_mu);
    auto [it, inserted] = meta.emplace(key, m);
    return it->second;
  }
};

// ---------------- Client ----------------
Client::Client(ClientOptions options) : impl_(std::make_shared<Impl>(std::move(options))) { impl_->start(); }

Client::~Client() { impl_->shutdown(); }

void Client::infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options,
                         InferCallback done) {
  impl_->infer_async(model, std::move(inputs), options, std::move(done));
}

std::future<InferResult> Client::infer_future(const std::string& model, std::vector<NamedTensor> inputs,
                                              const InferOptions& options) {
  auto p = std::make_shared<std::promise<InferResult>>();
  auto f = p->get_future();
  infer_async(model, std::move(inputs), options, [p](InferResult r) { p->set_value(std::move(r)); });
  return f;
}

InferResult Client::infer(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options) {
  return infer_future(model, std::move(inputs), options).get();
}

int64_t Client::max_batch(const std::string& model, const std::string& version) {
  try {
    return model_metadata(model, version)->info.max_batch;
  } catch (const Error&) {
    return 0;  // not known (yet): the caller sends what it has and the server says if it is too much
  }
}

std::shared_ptr<const ModelMeta> Client::model_metadata(const std::string& model, const std::string& version) {
  return impl_->model_metadata(model, version);
}

ClientReport Client::report() const {
  ClientReport r;
  r.requests = impl_->n_requests.load();
  r.completed = impl_->n_completed.load();
  r.failed = impl_->n_failed.load();
  r.retries = impl_->n_retries.load();
  r.fallbacks = impl_->n_fallbacks.load();
  for (auto& s : impl_->balancer.servers()) {
    ServerReport sr;
    sr.address = s->address;
    sr.serving = s->serving.load();
    sr.removed = s->removed.load();
    sr.outstanding = s->outstanding.load();
    sr.requests = s->requests.load();
    sr.successes = s->successes.load();
    sr.failures = s->failures.load();
    sr.retries = s->retries.load();
    sr.breaker_trips = s->breaker_trips.load();
    sr.queue_ns = s->queue_ns.load();
    r.servers.push_back(sr);
  }
  return r;
}

void Client::refresh_now() {
  {
    std::lock_guard lk(impl_->maint_mu);
    impl_->refresh_requested = true;
  }
  impl_->maint_cv.notify_all();
}

bool Client::wait_for_serving(int n, int64_t timeout_ns) {
  std::unique_lock lk(impl_->serving_mu);
  return impl_->serving_cv.wait_for(lk, std::chrono::nanoseconds(timeout_ns),
                                    [&] { return impl_->balancer.serving_count() >= n; });
}

const ClientOptions& Client::options() const { return impl_->opt; }

AsyncInferFn Client::async_fn() {
  return [this](const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& o, InferCallback done) {
    infer_async(model, std::move(inputs), o, std::move(done));
  };
}

// ---------------- BatchingClient ----------------
BatchingClient::BatchingClient(Client& client, CoalesceOptions options)
    : co_(client.async_fn(), [&client](const std::string& m) { return client.model_metadata(m)->info.max_batch; },
          options) {}

std::future<InferResult> BatchingClient::infer_future(const std::string& model, std::vector<NamedTensor> inputs,
                                                      const InferOptions& options) {
  auto p = std::make_shared<std::promise<InferResult>>();
  auto f = p->get_future();
  infer_async(model, std::move(inputs), options, [p](InferResult r) { p->set_value(std::move(r)); });
  return f;
}

InferResult BatchingClient::infer(const std::string& model, std::vector<NamedTensor> inputs,
                                  const InferOptions& options) {
  return infer_future(model, std::move(inputs), options).get();
}

}  // namespace quiver::client
