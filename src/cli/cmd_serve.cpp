// `quiver serve`: KServe v2 / Triton-compatible inference server over a model repository.
#include <CLI/CLI.hpp>

#include <sys/resource.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <pthread.h>

#include "cli/command.hpp"
#include "quiver/core/error.hpp"
#include "quiver/core/util.hpp"
#include "quiver/serve/server.hpp"

namespace {

struct ServeArgs {
  quiver::serve::ServerOptions opt;
  std::string mode = "none";
  bool allow_failures = false;
  int malloc_arenas = -1;
  bool exit_on_error = true;
};

// Every connection is a descriptor: take the whole hard limit (the HTTP connection limit is
// sized from it) and say so.
void raise_open_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const auto soft = static_cast<unsigned long long>(rl.rlim_cur), hard = static_cast<unsigned long long>(rl.rlim_max);
  if (rl.rlim_cur == rl.rlim_max) {
    std::fprintf(stderr, "quiver serve: open-file limit %llu (already the hard limit)\n", soft);
    return;
  }
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
    std::fprintf(stderr, "quiver serve: open-file limit raised from %llu to the hard limit %llu\n", soft, hard);
  else
    std::fprintf(stderr, "quiver serve: open-file limit %llu; raising it to the hard limit %llu failed: %s\n", soft,
                 hard, std::strerror(errno));
}

int run_serve(ServeArgs& a) {
  using namespace quiver::serve;
  if (a.mode == "none") a.opt.control = ModelControl::None;
  else if (a.mode == "poll") a.opt.control = ModelControl::Poll;
  else if (a.mode == "explicit") a.opt.control = ModelControl::Explicit;
  else throw quiver::Error(quiver::ErrorCode::InvalidArgument, "--model-control-mode must be none, poll or explicit");
  if (!a.opt.load_models.empty() && a.opt.control != ModelControl::Explicit)
    throw quiver::Error(quiver::ErrorCode::InvalidArgument, "--load-model needs --model-control-mode explicit");
  a.opt.strict_startup = a.exit_on_error && !a.allow_failures;

  // SIGTERM / SIGINT are taken synchronously by this thread; every thread the server starts
  // inherits the blocked mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  raise_open_file_limit();
  // Process policy, set here before the server's threads exist (they are attached to arenas as
  // they first allocate).
  quiver::set_malloc_arenas(a.malloc_arenas);
  Server server(a.opt);
  server.start();
  std::printf("%s\n", server.ready_line().c_str());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&sigs, &sig);
  std::fprintf(stderr, "quiver serve: signal %d, finishing in-flight requests\n", sig);
  server.shutdown();
  std::fprintf(stderr, "quiver serve: stopped\n");
  return 0;
}

quiver::cli::CommandRegistrar reg(40, [](CLI::App& app) {
  auto args = std::make_shared<ServeArgs>();
  auto* cmd = app.add_subcommand("serve", "KServe v2 / Triton-compatible inference server (gRPC, HTTP, metrics)");
  auto& o = args->opt;
  cmd->add_option("--model-repository", o.repository, "Triton-layout model repository")->required();
  cmd->add_option("--grpc-port", o.grpc_port, "gRPC port (0: pick a free one, -1: off)")->capture_default_str();
  cmd->add_option("--http-port", o.http_port, "HTTP/REST port (0: pick a free one, -1: off)")->capture_default_str();
  cmd->add_option("--metrics-port", o.metrics_port, "Prometheus metrics port (0: pick, -1: off)")->capture_default_str();
  cmd->add_option("--bind", o.bind, "Address to listen on (default loopback only)")->capture_default_str();
  cmd->add_option("--model-control-mode", args->mode, "none | poll | explicit")->capture_default_str();
  cmd->add_option("--load-model", o.load_models, "Model to load at startup in explicit mode ('*': all)");
  cmd->add_option("--repository-poll-secs", o.poll_seconds, "Poll interval in poll mode")->capture_default_str();
  cmd->add_option("--memory-trim-secs", o.trim_seconds,
                  "Return freed heap pages to the OS this often (0 = never)")->capture_default_str();
  cmd->add_option("--malloc-arenas", args->malloc_arenas,
                  "glibc malloc arenas for the process: -1 = one per core (default), 0 = glibc's default");
  cmd->add_flag("--cuda-shm-emulation", o.cuda_shm_emulation,
                "Accept emulated CUDA IPC handles (device memory in POSIX shared memory): test clients without a GPU");
  cmd->add_option("--exit-on-error", args->exit_on_error,
                  "Exit when a model fails to load at startup (Triton's flag; false: serve the others, the "
                  "failed one is UNAVAILABLE with its load error in the repository index)")
      ->capture_default_str();
  cmd->add_flag("--allow-load-failures", args->allow_failures, "Same as --exit-on-error=false");
  cmd->add_option("--server-name", o.server_name,
                  "Name in ServerMetadata (GET /v2): Triton answers 'triton', for tooling that checks it")
      ->capture_default_str();
  cmd->add_option("--intra-op-threads", o.intra_op_threads, "Threads per model execution")->capture_default_str();
  cmd->add_option("--http-threads", o.http_threads,
                  "HTTP event threads (each serves any number of connections)")->capture_default_str();
  cmd->add_option("--max-message-size", o.max_message_bytes, "Largest accepted request / response in bytes")
      ->capture_default_str();
  cmd->add_option("--http-max-connections", o.http_max_connections,
                  "HTTP connections at once (0: from the open-file limit); past it: health checks, then 503")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--http-header-timeout", o.http_header_timeout_s,
                  "Seconds from connect (or the request line) to the end of the request headers")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--http-body-timeout", o.http_body_timeout_s,
                  "Seconds for the request body, plus 1 s per --http-min-body-rate bytes received")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--http-min-body-rate", o.http_min_body_rate, "Bytes per second a request body must keep up")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--http-idle-timeout", o.http_idle_timeout_s,
                  "Seconds a kept-alive HTTP connection may wait for its next request (0: no limit)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--grpc-max-connections", o.grpc_max_connections,
                  "gRPC connections at once (0: from the open-file limit); past it new ones are closed at once")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--grpc-max-concurrent-streams", o.grpc_max_concurrent_streams,
                  "Concurrent calls per gRPC connection (HTTP/2 streams)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--grpc-handshake-timeout", o.grpc_handshake_timeout_s,
                  "Seconds from TCP connect to the end of the HTTP/2 (and TLS) handshake")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--grpc-idle-timeout", o.grpc_idle_timeout_s,
                  "Seconds without calls after which a gRPC connection is closed with GOAWAY (0: never)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--grpc-keepalive-time", o.grpc_keepalive_time_ms, "Milliseconds between server keepalive pings")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--grpc-keepalive-timeout", o.grpc_keepalive_timeout_ms,
                  "Milliseconds to wait for a keepalive ping's answer before closing")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--grpc-http2-min-recv-ping-interval-without-data", o.grpc_min_recv_ping_interval_ms,
                  "Milliseconds a client must leave between pings; more frequent pings are strikes")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--grpc-http2-max-ping-strikes", o.grpc_max_ping_strikes,
                  "Ping strikes before the connection is closed with GOAWAY (0: no limit)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--grpc-server-cert", o.grpc_server_cert, "PEM certificate chain: enables TLS on gRPC");
  cmd->add_option("--grpc-server-key", o.grpc_server_key, "PEM private key of the server certificate");
  cmd->add_option("--grpc-root-cert", o.grpc_root_cert, "PEM CA bundle used to verify client certificates");
  cmd->add_flag("--grpc-use-ssl-mutual", o.grpc_mutual_tls, "Require and verify client certificates (mTLS)");
  cmd->add_option("--auth-token-file", o.auth_token_file,
                  "Bearer tokens, one per line: requests other than health checks must send one "
                  "(gRPC metadata / HTTP header 'authorization: Bearer TOKEN')");
  cmd->callback([args] { quiver::cli::set_exit_code(run_serve(*args)); });
});

}  // namespace
