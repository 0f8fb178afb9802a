#include "quiver/client/local_repository.hpp"

#include <algorithm>
#include <filesystem>

#include "quiver/backends/backends.hpp"
#include "quiver/core/util.hpp"
#include "repository/loader.hpp"

namespace fs = std::filesystem;

namespace quiver::client {

LocalRepository::LocalRepository(std::string dir) : dir_(std::move(dir)) {
  if (!fs::is_directory(dir_))
    throw Error(ErrorCode::NotFound, "fallback model repository is not a directory", {.file = dir_});
}

bool LocalRepository::has(const std::string& model) const {
  std::error_code ec;
  // A plain directory name inside the repository, as the server requires.
  if (model.empty() || model == "." || model == ".." || model.find_first_of("/\\") != std::string::npos) return false;
  return fs::is_directory(fs::path(dir_) / model, ec);
}

std::shared_ptr<const Model> LocalRepository::get(const std::string& model, const std::string& version) {
  const std::string key = model + "\x1f" + version;
  {
    std::lock_guard lk(mu_);
    if (auto it = loaded_.find(key); it != loaded_.end()) return it->second;
  }
  // Loaded without the lock: an ensemble's steps load their models through get() too; an
  // ensemble that reaches itself again is refused instead of recursing.
  thread_local std::vector<std::string> loading;
  if (std::find(loading.begin(), loading.end(), model) != loading.end())
    throw Error(ErrorCode::InvalidArgument, "ensemble steps lead back to model '" + model + "'", {.model = model});
  loading.push_back(model);
  struct Pop {
    ~Pop() { loading.pop_back(); }
  } pop;
  if (!has(model))
    throw Error(ErrorCode::NotFound, "model not in the fallback repository", {.model = model, .file = dir_});
  fs::path mdir = fs::path(dir_) / model;
  inference::ModelConfig cfg;
  std::string text;
  const fs::path cfg_path = mdir / "config.pbtxt";
  if (fs::exists(cfg_path)) {
    text = read_file(cfg_path.string());
    cfg = repository::parse_model_config(text, cfg_path.string());  // throws Parse naming file and line
  }
  cfg.set_name(model);
  std::string v = version;
  // No version asked for: the highest one the config's version policy serves, as on the server.
  if (v.empty()) {
    auto served = repository::select_versions(cfg, repository::version_directories(mdir.string(), model));
    if (served.empty())
      throw Error(ErrorCode::NotFound, "the version policy selects no version", {.model = model, .file = mdir.string()});
    v = std::to_string(served.back());
  }
  fs::path vdir = mdir / v;
  if (!fs::is_directory(vdir))
    throw Error(ErrorCode::NotFound, "model version not in the fallback repository", {.model = model, .file = vdir.string()});

  // Loaded exactly as `quiver serve` loads it (engine, default file names, FIL interface, reshape,
  // auto-complete, provenance hash): the fallback answers with the server's tensors.
  repository::ModelResolver resolver = [this](const std::string& n, int64_t ver) {
    return get(n, ver < 0 ? "" : std::to_string(ver));
  };
  auto m = repository::load_repository_version(cfg, vdir.string(), v, text, cfg_path.string(), 1, resolver).model;
  std::lock_guard lk(mu_);
  return loaded_.try_emplace(key, m).first->second;  // a concurrent load of the same model: keep the first
}

}  // namespace quiver::client
