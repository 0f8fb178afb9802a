// A server child process (`quiver serve`, or the client tests' fake server) on free loopback ports:
// started, waited for (bounded) until it prints its "quiver serve ready grpc=HOST:PORT http=...
// metrics=..." line, its output drained so that a chatty server never blocks, and always stopped
// (the destructor; the child also dies with this process, PR_SET_PDEATHSIG, and sees EOF on stdin).
// One implementation for `quiver validate`'s serve paths and the tests (tests/support).
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace quiver::cli {

class ServerProcess {
 public:
  // `binary` with `args`; throws (with the server's stderr) when it is not ready in `timeout_ms`.
  ServerProcess(std::string binary, std::vector<std::string> args, int timeout_ms = 20000)
      : binary_(std::move(binary)), args_(std::move(args)) {
    start(timeout_ms);
  }
  ~ServerProcess() { stop(5000); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // From the ready line: HOST:PORT of gRPC; of HTTP ("off" when it has none, "none" for the fake
  // server); the ports (-1 when absent).
  const std::string& grpc() const { return grpc_; }
  const std::string& http() const { return http_; }
  int port() const { return grpc_port; }
  std::string grpc_addr() const { return "127.0.0.1:" + std::to_string(grpc_port); }
  std::string http_host() const { return "127.0.0.1"; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  // What the server printed on stdout up to its ready line.
  const std::string& output() const { return out_; }

  void kill9() { signal_and_wait(SIGKILL, 0); }
  void terminate() { stop(5000); }
  // SIGTERM, then SIGKILL after `grace_ms`. Returns the exit status (128 + signal when killed by
  // one, -1 when it had to be killed). stderr_text is complete afterwards.
  int stop(int grace_ms = 20000) { return signal_and_wait(SIGTERM, grace_ms); }
  // Starts again with the same arguments, replacing "--grpc-port 0" by the port it had, so that
  // clients see the same endpoint come back.
  void restart(int timeout_ms = 20000) {
    const int p = port();
    kill9();
    for (size_t i = 0; i + 1 < args_.size(); ++i)
      if (args_[i] == "--grpc-port") args_[i + 1] = std::to_string(p);
    start(timeout_ms);
  }

  std::string ready_line;
  int grpc_port = -1, http_port = -1, metrics_port = -1;
  std::string stderr_text;  // read it once the server has stopped

 private:
  static int port_of(const std::string& endpoint) {
    const size_t c = endpoint.rfind(':');
    if (c == std::string::npos) return -1;
    try {
      return std::stoi(endpoint.substr(c + 1));
    } catch (const std::exception&) {
      return -1;
    }
  }
  // The value after " key=" in the ready line (empty when absent).
  std::string field(const std::string& key) const {
    const std::string k = key + "=";
    size_t p = ready_line.find(k);
    if (p == std::string::npos) return {};
    p += k.size();
    return ready_line.substr(p, ready_line.find(' ', p) - p);
  }

  void start(int timeout_ms) {
    int out[2], err[2], in[2];
    if (pipe(out) != 0 || pipe(err) != 0 || pipe(in) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test (killed by a timeout, crashed)
      dup2(out[1], 1);
      dup2(err[1], 2);
      dup2(in[0], 0);
      for (int fd : {out[0], out[1], err[0], err[1], in[0], in[1]}) close(fd);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(binary_.c_str()));
      for (auto& a : args_) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(binary_.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    close(in[0]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    in_fd_ = in[1];
    for (int fd : {out_fd_, err_fd_, in_fd_}) fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(err_fd_, F_SETFL, O_NONBLOCK);
    out_.clear();
    stderr_text.clear();
    drain_started_ = false;
    ready_line.clear();
    grpc_.clear();
    http_.clear();
    grpc_port = http_port = metrics_port = -1;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    bool ready = false;
    while (!ready) {
      const int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
      if (left <= 0) fail_start("not ready in time");
      pollfd pfd[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
      if (poll(pfd, 2, left) <= 0) continue;
      if (pfd[1].revents) read_stderr();
      if (!pfd[0].revents) continue;
      char buf[4096];
      const ssize_t n = read(out_fd_, buf, sizeof buf);
      if (n <= 0) fail_start("exited before it was ready");
      out_.append(buf, static_cast<size_t>(n));
      const size_t p = out_.find("quiver serve ready grpc=");
      const size_t e = p == std::string::npos ? p : out_.find('\n', p);
      if (e == std::string::npos) continue;  // not the whole line yet
      ready_line = out_.substr(p, e - p);
      grpc_ = field("grpc");
      http_ = field("http");
      grpc_port = port_of(grpc_);
      http_port = port_of(http_);
      metrics_port = port_of(field("metrics"));
      ready = true;
    }
    // Keep draining both pipes so that a chatty server never blocks; stderr is kept.
    drain_started_ = true;
    drain_ = std::thread([this] {
      char buf[4096];
      bool out_open = true, err_open = true;
      while (out_open || err_open) {
        pollfd pfd[2] = {{out_open ? out_fd_ : -1, POLLIN, 0}, {err_open ? err_fd_ : -1, POLLIN, 0}};
        if (poll(pfd, 2, -1) < 0) break;
        if (pfd[0].revents && read(out_fd_, buf, sizeof buf) <= 0) out_open = false;
        if (pfd[1].revents) {
          const ssize_t n = read(err_fd_, buf, sizeof buf);
          if (n > 0) {
            std::lock_guard lk(err_mu_);
            stderr_text.append(buf, static_cast<size_t>(n));
          } else if (n == 0 || errno != EAGAIN) {
            err_open = false;
          }
        }
      }
    });
  }

  void read_stderr() {
    char buf[4096];
    for (ssize_t n; (n = read(err_fd_, buf, sizeof buf)) > 0;) stderr_text.append(buf, static_cast<size_t>(n));
  }

  [[noreturn]] void fail_start(const std::string& why) {
    signal_and_wait(SIGKILL, 0);
    throw std::runtime_error("server " + binary_ + " " + why + "; stdout: " + out_ + "; stderr: " + stderr_text);
  }

  int signal_and_wait(int sig, int grace_ms) {
    int status = exit_status_;
    if (pid_ > 0) {
      ::kill(pid_, sig);
      int st = 0;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
      bool killed = false;
      while (waitpid(pid_, &st, sig == SIGKILL ? 0 : WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          ::kill(pid_, SIGKILL);
          waitpid(pid_, &st, 0);
          killed = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      pid_ = -1;
      status = killed ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      exit_status_ = status;
    }
    if (in_fd_ >= 0) close(in_fd_);
    in_fd_ = -1;
    if (drain_.joinable()) drain_.join();  // EOF on both pipes once the child is gone
    if (err_fd_ >= 0 && !drain_started_) read_stderr();
    for (int* fd : {&out_fd_, &err_fd_}) {
      if (*fd >= 0) close(*fd);
      *fd = -1;
    }
    return status;
  }

  std::string binary_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1, in_fd_ = -1;
  int exit_status_ = -1;
  bool drain_started_ = false;
  std::string out_, grpc_, http_;
  std::mutex err_mu_;
  std::thread drain_;
};

}  // namespace quiver::cli
