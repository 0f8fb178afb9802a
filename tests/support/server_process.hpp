// One test helper for every test that needs a server process (`quiver serve`, the client tests'
// fake server): starts it on free loopback ports, waits (bounded) for its
// "quiver serve ready grpc=HOST:PORT http=... metrics=..." line, keeps draining its output so that
// a chatty server never blocks, and always stops it. The child dies with the test (PR_SET_PDEATHSIG)
// and sees EOF on stdin when the test is gone. Also: temporary model repositories.
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace quiver::testing {

// A fresh directory under the temp dir (quiver-TAG-XXXXXX); the caller removes it.
inline std::string make_temp_dir(const std::string& tag) {
  std::string tmpl = (std::filesystem::temp_directory_path() / ("quiver-" + tag + "-XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  return buf.data();
}

// Writes `s` to `p`, creating the parent folders.
inline void write_text(const std::filesystem::path& p, const std::string& s) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << s;
}

// Adds a Triton-layout model entry: REPO/NAME/config.pbtxt and the version folder REPO/NAME/1.
inline void add_repo_model(const std::filesystem::path& repo, const std::string& name, const std::string& config) {
  std::filesystem::create_directories(repo / name / "1");
  std::ofstream(repo / name / "config.pbtxt") << config;
}

// config.pbtxt of the identity backend with INPUT0 / OUTPUT0 FP32[4] (`extra` appended).
inline std::string identity_config(const std::string& name, int max_batch, const std::string& extra = "") {
  return "name: \"" + name + "\"\nbackend: \"identity\"\nmax_batch_size: " + std::to_string(max_batch) +
         "\ninput [ { name: \"INPUT0\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n"
         "output [ { name: \"OUTPUT0\" data_type: TYPE_FP32 dims: [ 4 ] } ]\n" + extra;
}

// A model repository in a fresh folder under the temp dir (named after `tag` and the pid), removed
// with the object.
struct TempRepository {
  std::filesystem::path dir;
  explicit TempRepository(const std::string& tag)
      : dir(std::filesystem::temp_directory_path() / (tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~TempRepository() { std::filesystem::remove_all(dir); }
  TempRepository(const TempRepository&) = delete;
  TempRepository& operator=(const TempRepository&) = delete;
  void add(const std::string& name, const std::string& config) const { add_repo_model(dir, name, config); }
};

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

#ifdef QUIVER_BINARY_DIR
// `quiver serve` of this build on `repo`, with free loopback ports for gRPC, HTTP and metrics, and
// `extra` arguments.
class QuiverServe : public ServerProcess {
 public:
  explicit QuiverServe(const std::string& repo, std::vector<std::string> extra = {}, int timeout_ms = 20000)
      : ServerProcess(QUIVER_BINARY_DIR "/src/cli/quiver", args(repo, std::move(extra)), timeout_ms) {}

 private:
  static std::vector<std::string> args(const std::string& repo, std::vector<std::string> extra) {
    std::vector<std::string> a = {"serve", "--model-repository", repo, "--grpc-port", "0", "--http-port", "0",
                                  "--metrics-port", "0"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
};
#endif

}  // namespace quiver::testing
