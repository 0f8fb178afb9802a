// Test helpers for every test that needs a server process (`quiver serve`, the client tests' fake
// server): ServerProcess (cli/server_process.hpp, shared with `quiver validate`) starts it on free
// loopback ports, waits for its ready line, drains its output and always stops it; QuiverServe is
// this build's `quiver serve`. Also: temporary model repositories.
#pragma once
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/server_process.hpp"

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

using ServerProcess = quiver::cli::ServerProcess;

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
