// `quiver serve`: KServe v2 / Triton-compatible inference server over a model repository.
#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <memory>
#include <pthread.h>

#include "cli/command.hpp"
#include "quiver/serve/server.hpp"

namespace {

struct ServeArgs {
  quiver::serve::ServerOptions opt;
  std::string mode = "none";
  bool allow_failures = false;
};

int run_serve(ServeArgs& a) {
  using namespace quiver::serve;
  if (a.mode == "none") a.opt.control = ModelControl::None;
  else if (a.mode == "poll") a.opt.control = ModelControl::Poll;
  else if (a.mode == "explicit") a.opt.control = ModelControl::Explicit;
  else throw quiver::Error(quiver::ErrorCode::InvalidArgument, "--model-control-mode must be none, poll or explicit");
  if (!a.opt.load_models.empty() && a.opt.control != ModelControl::Explicit)
    throw quiver::Error(quiver::ErrorCode::InvalidArgument, "--load-model needs --model-control-mode explicit");
  a.opt.strict_startup = !a.allow_failures;

  // SIGTERM / SIGINT are taken synchronously by this thread; every thread the server starts
  // inherits the blocked mask.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

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
  cmd->add_option("--malloc-arenas", o.malloc_arenas,
                  "glibc malloc arenas for the process: -1 = one per core (default), 0 = glibc's default");
  cmd->add_flag("--cuda-shm-emulation", o.cuda_shm_emulation,
                "Accept emulated CUDA IPC handles (device memory in POSIX shared memory): test clients without a GPU");
  cmd->add_flag("--allow-load-failures", args->allow_failures, "Start even when some models fail to load");
  cmd->add_option("--intra-op-threads", o.intra_op_threads, "Threads per model execution")->capture_default_str();
  cmd->add_option("--http-threads", o.http_threads,
                  "HTTP event threads (each serves any number of connections)")->capture_default_str();
  cmd->add_option("--max-message-size", o.max_message_bytes, "Largest accepted request / response in bytes")
      ->capture_default_str();
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
