// Per-server health (circuit breaker), request accounting and the load balancer of the inference
// client: power-of-two-choices over the healthy servers, least outstanding requests first, with
// the server-side queue time (from ModelStatistics) as a secondary cost.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

namespace quiver::client {

struct BreakerOptions {
  int failure_threshold = 3;        // consecutive transport failures that open the breaker
  int64_t open_ns = 200'000'000;    // first wait before probing an opened server (200 ms)
  int64_t max_open_ns = 2'000'000'000;  // backoff cap (doubles per failed probe)
};

// Closed (serving) -> Open after `failure_threshold` consecutive failures; an Open server gets no
// traffic. Once its wait is over it becomes probe-able: the client's health thread sends it a
// readiness probe (probe_due/begin_probe); success closes the breaker, failure re-opens it with a
// doubled wait. Not thread-safe by itself: ServerState guards it with its mutex.
class CircuitBreaker {
 public:
  enum class State { Closed, Open, Probing };
  explicit CircuitBreaker(BreakerOptions o = {}) : opt_(o), wait_ns_(o.open_ns) {}
  State state() const { return state_; }
  bool serving() const { return state_ == State::Closed; }
  // Returns true when this failure opened the breaker.
  bool record_failure(int64_t now_ns);
  // Forces Open now (e.g. the server's readiness probe said not ready).
  void trip(int64_t now_ns);
  void record_success();
  bool probe_due(int64_t now_ns) const { return state_ == State::Open && now_ns >= reopen_at_ns_; }
  void begin_probe() { state_ = State::Probing; }
  void probe_result(bool ok, int64_t now_ns);
  int consecutive_failures() const { return failures_; }
  int64_t reopen_at_ns() const { return reopen_at_ns_; }

 private:
  BreakerOptions opt_;
  State state_ = State::Closed;
  int failures_ = 0;
  int64_t wait_ns_;
  int64_t reopen_at_ns_ = 0;
};

// One server as the client sees it. Counters are for reports (quiver perf) and tests.
struct ServerState {
  explicit ServerState(std::string addr, BreakerOptions b = {}) : address(std::move(addr)), breaker(b) {}
  const std::string address;
  std::atomic<int> outstanding{0};
  std::atomic<int64_t> queue_ns{0};       // recent average server queue time per request (statistics)
  std::atomic<bool> serving{true};        // mirror of breaker.serving() for lock-free picking
  std::atomic<bool> removed{false};       // dropped by discovery
  // Counters.
  std::atomic<int64_t> requests{0};       // attempts sent
  std::atomic<int64_t> successes{0};
  std::atomic<int64_t> failures{0};       // attempts that failed (any reason)
  std::atomic<int64_t> retries{0};        // attempts that were retries of an earlier attempt
  std::atomic<int64_t> breaker_trips{0};
  std::atomic<bool> any_missing{false};   // fast path of serves()
  // Start time of the latest probe round in which this server answered ready (0: none yet):
  // wait_for_serving counts only servers that answered a probe sent after it was called.
  std::atomic<int64_t> ready_probe_ns{0};

  mutable std::mutex mu;                  // guards breaker, missing_models and last_error
  CircuitBreaker breaker;
  std::set<std::string> missing_models;   // models this server said it does not serve
  std::string last_error;                 // why its last readiness probe failed ("" after a success)
  std::shared_ptr<void> transport;        // the client's channel + stub (opaque here); set before serving

  void on_success();
  // Returns true when the breaker opened.
  bool on_transport_failure(int64_t now_ns);
  bool serves(const std::string& model) const;
  void mark_missing(const std::string& model);
  void clear_missing();
};

struct BalancerOptions {
  // Queue-time scale: cost = (outstanding + 1) * (1 + q / (q + scale)), q = the server's recent
  // average queue time from ModelStatistics; a server queueing `scale` ns counts each request
  // 1.5 times. 0 disables the queue-time term.
  int64_t queue_ns_per_request = 1'000'000;
};

// Power-of-two-choices: pick two distinct random candidates among the servers that are serving,
// not removed, not excluded and not known to lack the model; send to the one with the lower cost
// (see BalancerOptions). Thread-safe; picking takes a shared lock only.
class Balancer {
 public:
  explicit Balancer(BalancerOptions o = {}, BreakerOptions b = {}) : opt_(o), breaker_opt_(b) {}
  // Replaces the server set; servers already known keep their state and counters (servers that
  // disappear are marked removed and kept for reporting until they come back).
  // New servers start serving when `start_serving`, else Open with a probe due at once (the client
  // lets servers in only after a readiness probe).
  void set_servers(const std::vector<std::string>& endpoints, bool start_serving = true);
  // Returns nullptr when no server qualifies.
  std::shared_ptr<ServerState> pick(const std::string& model,
                                    const std::vector<const ServerState*>& exclude = {}) const;
  // All servers ever known (removed ones included), in first-seen order.
  std::vector<std::shared_ptr<ServerState>> servers() const;
  std::shared_ptr<ServerState> find(const std::string& endpoint) const;
  // How many servers are serving (not removed, breaker closed).
  int serving_count() const;
  double cost(const ServerState& s) const;

 private:
  BalancerOptions opt_;
  BreakerOptions breaker_opt_;
  mutable std::shared_mutex mu_;
  std::vector<std::shared_ptr<ServerState>> servers_;
};

}  // namespace quiver::client
