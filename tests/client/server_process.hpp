// Starts a server process (`quiver serve` or the client tests' fake server) for integration tests,
// waits for its "quiver serve ready grpc=HOST:PORT ..." line (bounded), and always stops it.
// The child's stdin is a pipe held by the test: if the test dies, the fake server sees EOF and exits.
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace quiver::testing {

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
  ServerProcess(std::string binary, std::vector<std::string> args, int timeout_ms = 20000)
      : binary_(std::move(binary)), args_(std::move(args)) {
    start(timeout_ms);
  }
  ~ServerProcess() { stop(SIGKILL); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& grpc() const { return grpc_; }
  // HOST:PORT of the HTTP endpoint from the ready line ("off" when it has none; empty for the
  // fake server).
  const std::string& http() const { return http_; }
  int port() const { return std::stoi(grpc_.substr(grpc_.rfind(':') + 1)); }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  const std::string& output() const { return out_; }

  void kill9() { stop(SIGKILL); }
  void terminate() { stop(SIGTERM); }
  // Starts again with the same arguments, replacing "--grpc-port 0" by the port it had, so the
  // client sees the same endpoint come back.
  void restart(int timeout_ms = 20000) {
    int p = port();
    stop(SIGKILL);
    for (size_t i = 0; i + 1 < args_.size(); ++i)
      if (args_[i] == "--grpc-port") args_[i + 1] = std::to_string(p);
    start(timeout_ms);
  }

 private:
  void start(int timeout_ms) {
    int out[2], in[2];
    if (pipe(out) != 0 || pipe(in) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test (killed by a timeout, crashed)
      dup2(out[1], 1);
      dup2(in[0], 0);
      close(out[0]);
      close(out[1]);
      close(in[0]);
      close(in[1]);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(binary_.c_str()));
      for (auto& a : args_) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(binary_.c_str(), argv.data());
      _exit(127);
    }
    close(out[1]);
    close(in[0]);
    out_fd_ = out[0];
    in_fd_ = in[1];
    fcntl(out_fd_, F_SETFD, FD_CLOEXEC);
    fcntl(in_fd_, F_SETFD, FD_CLOEXEC);
    out_.clear();
    grpc_.clear();
    http_.clear();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (grpc_.empty()) {
      int left = static_cast<int>(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
      if (left <= 0) {
        stop(SIGKILL);
        throw std::runtime_error("server " + binary_ + " not ready in time; output: " + out_);
      }
      pollfd pfd{out_fd_, POLLIN, 0};
      if (poll(&pfd, 1, left) <= 0) continue;
      char buf[4096];
      ssize_t n = read(out_fd_, buf, sizeof buf);
      if (n <= 0) {
        stop(SIGKILL);
        throw std::runtime_error("server " + binary_ + " exited before ready; output: " + out_);
      }
      out_.append(buf, static_cast<size_t>(n));
      size_t p = out_.find("quiver serve ready grpc=");
      if (p != std::string::npos && out_.find('\n', p) != std::string::npos) {  // the whole line
        size_t s = p + std::string("quiver serve ready grpc=").size();
        size_t e = out_.find_first_of(" \n", s);
        if (e != std::string::npos) grpc_ = out_.substr(s, e - s);
        size_t h = out_.find(" http=", p);
        size_t he = h == std::string::npos ? h : out_.find_first_of(" \n", h + 6);
        if (!grpc_.empty() && he != std::string::npos) http_ = out_.substr(h + 6, he - h - 6);
      }
    }
    // Keep draining stdout so a chatty server never blocks on a full pipe.
    int fd = out_fd_;
    drain_ = std::thread([fd] {
      char buf[4096];
      while (read(fd, buf, sizeof buf) > 0) {
      }
    });
  }

  void stop(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      int st;
      if (sig != SIGKILL) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (waitpid(pid_, &st, WNOHANG) == 0) {
          if (std::chrono::steady_clock::now() > deadline) {
            ::kill(pid_, SIGKILL);
            waitpid(pid_, &st, 0);
            break;
          }
          usleep(10000);
        }
      } else {
        waitpid(pid_, &st, 0);
      }
      pid_ = -1;
    }
    if (in_fd_ >= 0) close(in_fd_);
    in_fd_ = -1;
    if (drain_.joinable()) drain_.join();  // EOF once the child is gone
    if (out_fd_ >= 0) close(out_fd_);
    if (in_fd_ >= 0) close(in_fd_);
    out_fd_ = in_fd_ = -1;
  }

  std::string binary_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
  int out_fd_ = -1, in_fd_ = -1;
  std::string out_, grpc_, http_;
  std::thread drain_;
};

}  // namespace quiver::testing
