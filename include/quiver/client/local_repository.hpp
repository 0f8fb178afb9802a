// The client's fallback models: a local model repository in the server's layout
// (<dir>/<model>/config.pbtxt, <dir>/<model>/<version>/<file>), each model loaded once exactly as
// `quiver serve` loads it and run in-process. Thread-safe.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "quiver/core/infer.hpp"

namespace quiver::client {

class LocalRepository final : public LocalModels {
 public:
  explicit LocalRepository(std::string dir);
  const std::string& dir() const { return dir_; }
  // Loads `model` (version: given, else the highest one the config's version policy serves) once
  // and caches it. Throws quiver::Error(NotFound) naming the repository path when it is absent.
  std::shared_ptr<const Model> get(const std::string& model, const std::string& version = "") override;
  bool has(const std::string& model) const override;
  std::string source() const override { return "local:" + dir_; }

 private:
  std::string dir_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const Model>> loaded_;
};

}  // namespace quiver::client
