// `quiver serve`: KServe v2 / Triton-compatible inference server. gRPC (inference.GRPCInferenceService
// + grpc.health.v1.Health), HTTP/REST v2 and Prometheus metrics on three ports, serving a Triton
// layout model repository with dynamic batching and parallel instances.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace quiver::serve {

// How the repository's models are loaded: all at start (None), re-read periodically (Poll), or
// on request through the repository API (Explicit).
enum class ModelControl { None, Poll, Explicit };

class ModelRepository;  // internal (src/serve/repository.hpp): the loaded models and their schedulers

struct ServerOptions {
  std::string repository;
  std::string bind = "127.0.0.1";  // loopback unless told otherwise
  int grpc_port = 8001;            // 0: pick a free port; -1: disabled
  int http_port = 8000;
  int metrics_port = 8002;
  ModelControl control = ModelControl::None;
  std::vector<std::string> load_models;  // explicit mode
  int poll_seconds = 15;                 // poll mode
  // Every N seconds hand freed heap pages back to the OS (glibc malloc_trim): the per-thread malloc
  // arenas of ~40 transport threads otherwise keep their high-water marks, and RSS creeps up over
  // hours although the memory in use is flat. 0 = never.
  int trim_seconds = 30;
  // Triton's --exit-on-error: a model that fails to load at startup stops the server. false:
  // the server starts with the others; the failed one is UNAVAILABLE in the repository index with
  // its load error as the reason, and requests for it get that error.
  bool strict_startup = true;
  // ServerMetadata's name (Triton answers "triton"; tooling that checks it can be given that).
  std::string server_name = "quiver";
  int intra_op_threads = 1;
  // HTTP event threads (libmicrohttpd, epoll): each serves any number of keep-alive connections.
  int http_threads = 8;
  // HTTP connections served at once; 0: sized from the open-file limit ((limit - 512) * 3/4,
  // within [16, 65536], as for gRPC). Past it a few more get one request each (health checks
  // answered, the rest 503), then new connections get a 503 and are closed at once: never left in
  // the backlog.
  int http_max_connections = 0;
  // Slow clients lose their slot: the request headers must be complete within
  // http_header_timeout_s of connecting (or of the request line, on a kept-alive connection); the
  // body within http_body_timeout_s plus one second per http_min_body_rate bytes received; a
  // kept-alive connection with no request is closed after http_idle_timeout_s (0: never).
  double http_header_timeout_s = 5;
  double http_body_timeout_s = 10;
  int64_t http_min_body_rate = 64 << 10;  // bytes per second
  int http_idle_timeout_s = 60;
  // gRPC limits (README "Connections, limits and slow clients"). Connections are accepted by the
  // server and handed to gRPC: past grpc_max_connections (0: sized like HTTP's) a new one is
  // closed at once. The rest are gRPC channel arguments.
  int grpc_max_connections = 0;
  int grpc_max_concurrent_streams = 1024;  // per connection; further calls wait in the client
  double grpc_handshake_timeout_s = 10;    // TCP connect to the HTTP/2 settings exchange
  int grpc_idle_timeout_s = 900;           // a connection without calls gets GOAWAY (0: never)
  int grpc_keepalive_time_ms = 60000;      // the server pings a silent connection this often
  int grpc_keepalive_timeout_ms = 20000;   // and closes it when the ping is not answered
  // Client pings more often than this (without data) count as strikes; past the strikes: GOAWAY.
  int grpc_min_recv_ping_interval_ms = 10000;
  int grpc_max_ping_strikes = 2;
  int64_t max_message_bytes = 64 << 20;
  // gRPC TLS: server certificate + key (PEM files); root CA to verify clients with mutual TLS.
  std::string grpc_server_cert, grpc_server_key, grpc_root_cert;
  bool grpc_mutual_tls = false;
  // Bearer tokens, one per line ('#' comments, blank lines skipped): when set, every request except
  // the health endpoints (HTTP /v2/health/*, model readiness; gRPC ServerLive/ServerReady/ModelReady and
  // grpc.health.v1) needs "authorization: Bearer TOKEN"; others get 401 / UNAUTHENTICATED.
  std::string auth_token_file;
  // CUDA shared memory backed by POSIX shared memory (emulated device handles; see
  // quiver/gpu/shared_memory.hpp): for testing clients on machines without a GPU.
  bool cuda_shm_emulation = false;
};

class ServerCore;

class Server {
 public:
  explicit Server(ServerOptions opt);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads the startup models and starts listening. Throws on failure.
  void start();
  // Stop accepting, finish in-flight requests, stop. Idempotent.
  void shutdown();

  int grpc_port() const;
  int http_port() const;
  int metrics_port() const;
  // "quiver serve ready grpc=HOST:PORT http=HOST:PORT metrics=HOST:PORT"
  std::string ready_line() const;
  // The loaded models (for the project's benchmarks and tests; the type is internal).
  ModelRepository& repository();
  // Prometheus text exposition (what the metrics port serves).
  std::string metrics_text();

 private:
  std::unique_ptr<ServerCore> core_;
};

}  // namespace quiver::serve
