// The servers a client talks to: discovery (endpoints, servers file, DNS names), one gRPC channel
// per server, readiness probes that drive each server's circuit breaker, ModelStatistics polling
// for the balancer's queue-time term, and picking a server for an attempt. One maintenance thread
// does the periodic work; picking is lock-free but for the balancer's shared lock.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "grpc_service.grpc.pb.h"
#include "quiver/client/balancer.hpp"
#include "quiver/client/client.hpp"
#include "quiver/client/endpoints.hpp"

namespace quiver::client {

// "OK", "UNAVAILABLE", ...: gRPC status names for messages.
const char* grpc_status_name(grpc::StatusCode c);

class ServerSet {
 public:
  // Called on the maintenance thread, with no lock held, for a server that answered its readiness
  // probe and is about to take traffic; returning false keeps it out until the next probe (the
  // shared-memory pool registers its region there).
  using ArrivalCheck = std::function<bool(ServerState&)>;

  explicit ServerSet(const ClientOptions& opt);
  ~ServerSet();
  ServerSet(const ServerSet&) = delete;
  ServerSet& operator=(const ServerSet&) = delete;

  // First discovery and a probe of every server (so that the constructor of the client returns
  // with the servers that are up), then the maintenance thread.
  void start(ArrivalCheck arrival);
  // Stops the maintenance thread (no probe runs afterwards). Idempotent.
  void stop();

  std::shared_ptr<ServerState> pick(const std::string& model_key,
                                    const std::vector<const ServerState*>& exclude = {}) const {
    return balancer_.pick(model_key, exclude);
  }
  std::vector<std::shared_ptr<ServerState>> servers() const { return balancer_.servers(); }
  // The KServe stub of a server (its channel exists from discovery on).
  static inference::GRPCInferenceService::Stub& stub(const ServerState& s);
  // Adds the client's bearer token (ClientOptions.auth_token_file, read once) to a call to `s`.
  static void authorize(const ServerState& s, grpc::ClientContext& c);

  // Runs discovery and probes now, on the maintenance thread.
  void refresh_now();
  // See Client::wait_for_serving.
  bool wait_for_serving(int n, int64_t timeout_ns);
  // "; HOST:PORT: why its last probe failed; ..." for servers out of service.
  std::string down_servers() const;
  // Why no server could take a request for `model_key`: NotFound when every serving server lacks
  // the model, else Unavailable with the counts and the down servers.
  Error no_server_error(const std::string& model_key, bool fallback_off) const;

 private:
  std::shared_ptr<void> make_transport(const std::string& address) const;
  void run_discovery(int64_t now);
  void probe_round(int64_t now, bool force_all);
  void maintenance_loop();
  std::string tls_hint(const std::string& msg) const;
  // Servers serving, with no transport failure since they answered a probe sent at or after `since_ns`.
  int ready_since(int64_t since_ns) const;

  const ClientOptions& opt_;
  const std::string auth_header_;
  Balancer balancer_;
  Discovery discovery_;
  ArrivalCheck arrival_;
  std::thread maintenance_;
  std::mutex maint_mu_;  // guards stop_ and refresh_requested_
  std::condition_variable maint_cv_;
  bool stop_ = false;
  bool refresh_requested_ = false;
  // Maintenance thread only.
  int64_t next_discovery_ns_ = 0;
  int64_t next_stats_ns_ = 0;
  std::map<const ServerState*, std::pair<uint64_t, uint64_t>> last_queue_;  // count, ns
  // wait_for_serving; while someone waits, every round probes the servers out of service too
  // (their breaker's backoff is for unattended clients).
  std::atomic<int> waiters_{0};
  std::mutex serving_mu_;
  std::condition_variable serving_cv_;
};

}  // namespace quiver::client
