// Starts the real `quiver serve` binary on free loopback ports for integration tests, parses the
// ready line, and always stops it (SIGTERM, then SIGKILL after a bound).
#pragma once
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace quiver::test {

inline std::string make_temp_dir(const std::string& tag) {
  std::string tmpl = (std::filesystem::temp_directory_path() / ("quiver-" + tag + "-XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  return buf.data();
}

inline void write_text(const std::filesystem::path& p, const std::string& s) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << s;
}

class ServerProcess {
 public:
  ServerProcess(const std::string& repo, std::vector<std::string> extra = {}, int timeout_ms = 20000) {
    std::vector<std::string> args = {QUIVER_BINARY_DIR "/src/cli/quiver", "serve", "--model-repository", repo,
                                     "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    int out[2], err[2];
    if (pipe(out) != 0 || pipe(err) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(err[1], 2);
      close(out[0]);
      close(err[0]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    fcntl(err_fd_, F_SETFL, O_NONBLOCK);
    // Read stdout until the ready line or exit / timeout.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::string line;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{out_fd_, POLLIN, 0};
      int r = ::poll(&p, 1, 100);
      drain_stderr();
      if (r <= 0) continue;
      char c;
      ssize_t n = ::read(out_fd_, &c, 1);
      if (n <= 0) break;  // exited
      if (c == '\n') {
        std::smatch m;
        static const std::regex re(R"(quiver serve ready grpc=(\S+):(-?\d+) http=(\S+):(-?\d+) metrics=(\S+):(-?\d+))");
        if (std::regex_search(line, m, re)) {
          ready_line = line;
          grpc_port = std::stoi(m[2]);
          http_port = std::stoi(m[4]);
          metrics_port = std::stoi(m[6]);
          return;
        }
        line.clear();
      } else {
        line += c;
      }
    }
    drain_stderr();
    stop();
    throw std::runtime_error("server did not become ready; stderr: " + stderr_text);
  }
  ~ServerProcess() { stop(); }

  std::string grpc_addr() const { return "127.0.0.1:" + std::to_string(grpc_port); }
  std::string http_host() const { return "127.0.0.1"; }

  // SIGTERM, wait up to `ms`; SIGKILL after that. Returns the exit status (or -1 when killed).
  int stop(int ms = 20000) {
    if (pid_ <= 0) return exit_status_;
    kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    int st = 0;
    for (;;) {
      pid_t r = waitpid(pid_, &st, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &st, 0);
        st = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    drain_stderr();
    if (out_fd_ >= 0) close(out_fd_);
    if (err_fd_ >= 0) close(err_fd_);
    out_fd_ = err_fd_ = -1;
    exit_status_ = st == -1 ? -1 : (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return exit_status_;
  }
  pid_t pid() const { return pid_; }

  std::string ready_line, stderr_text;
  int grpc_port = -1, http_port = -1, metrics_port = -1;

 private:
  void drain_stderr() {
    if (err_fd_ < 0) return;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(err_fd_, buf, sizeof buf);
      if (n <= 0) break;
      stderr_text.append(buf, static_cast<size_t>(n));
    }
  }
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  int exit_status_ = -1;
};

}  // namespace quiver::test
