// The client's fallback: models from a local model repository (the server's layout:
// <dir>/<model>/config.pbtxt, <dir>/<model>/<version>/<file>), loaded once through the direct
// engines (quiver::load_model) and run in-process. Thread-safe.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "quiver/core/model.hpp"

namespace quiver::client {

class LocalRepository {
 public:
  explicit LocalRepository(std::string dir);
  const std::string& dir() const { return dir_; }
  // Loads `model` (version: given, else the highest numeric version directory) once and caches it.
  // Throws quiver::Error(NotFound) naming the repository path when the model/version is absent.
  std::shared_ptr<const Model> get(const std::string& model, const std::string& version = "");
  bool has(const std::string& model) const;
  // Runs a model with inputs given by name, reusing pooled RunStates.
  std::vector<NamedTensor> run(const std::string& model, const std::string& version,
                               const std::vector<NamedTensor>& inputs, std::vector<std::string> output_names = {});

 private:
  struct Entry {
    std::shared_ptr<const Model> model;
    std::mutex mu;
    std::vector<std::unique_ptr<RunState>> free_states;
  };
  std::shared_ptr<Entry> entry(const std::string& model, const std::string& version);
  std::string dir_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> loaded_;
};

}  // namespace quiver::client
