// Triton-layout model repository: REPO/<model>/config.pbtxt + numeric version folders holding the
// model file under its default name (model.onnx, xgboost.json, model.txt, ...). Parses
// config.pbtxt with protobuf TextFormat, auto-completes missing configuration from the model,
// applies the version policy, loads every version through quiver::load_model (or the built-in
// identity backend) and owns one Scheduler per loaded version. Load / unload / reload swap
// models atomically; requests already holding a version finish on it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "model_config.pb.h"
#include "quiver/core/model.hpp"
#include "quiver/serve/server.hpp"
#include "repository/loader.hpp"
#include "serve/scheduler.hpp"

namespace quiver::serve {

// The repository loader (src/repository) as the server uses it.
using repository::config_dtype;
using repository::load_repository_version;
using repository::LoadedModel;
using repository::model_config_to_text;
using repository::ModelResolver;
using repository::parse_model_config;
using repository::select_versions;
using repository::version_directories;

// One input or output as the server validates it.
struct IOSpec {
  std::string name;
  DType dtype = DType::Undefined;
  std::vector<int64_t> dims;  // from the config, without the batch dim; -1 = any
  size_t model_index = 0;     // position in Model::info() inputs / outputs
  // Outputs: class labels from the config's label_filename (line i names class i), else null.
  std::shared_ptr<const std::vector<std::string>> labels;
};

struct ModelVersion {
  std::string name;
  int64_t version = 0;
  std::string version_str;
  std::string engine;  // "onnx", "forest", "identity"
  std::shared_ptr<const inference::ModelConfig> config;  // completed config
  std::shared_ptr<const Model> model;
  std::string sha256, path;
  int64_t max_batch = 0;
  std::vector<IOSpec> inputs;   // model input order
  std::vector<IOSpec> outputs;  // model output order
  std::unique_ptr<Scheduler> scheduler;
  size_t prepared_bytes = 0;  // held by the execution states once sized ahead (prepare_state)

  const IOSpec* input(std::string_view n) const;
  const IOSpec* output(std::string_view n) const;
  ~ModelVersion();
};

struct RepositoryOptions {
  std::string root;
  ModelControl control = ModelControl::None;
  std::vector<std::string> startup_models;  // explicit mode: models to load at start ("*": all)
  int intra_op_threads = 1;
  // Model-file overrides of one load request (RepositoryModelLoad "file:" parameters): at most
  // this many bytes together.
  int64_t max_override_bytes = int64_t(64) << 20;
};

// A model file sent with a load request (Triton's "file:<version>/<path>" parameter): `path` is
// "<version>/<relative path>" inside an override model directory that replaces the model's
// directory for that load.
struct ModelFile {
  std::string path;
  std::string content;
};

struct ModelState {
  std::string name, version, state, reason;
};

class ModelRepository {
 public:
  explicit ModelRepository(RepositoryOptions opt);
  ~ModelRepository();

  // Startup loading according to the control mode. Failures are recorded (state UNAVAILABLE with
  // the reason) and returned as messages; other models still load.
  std::vector<std::string> load_startup();
  // (Re)load one model: all versions the policy selects. Throws (NotFound, Parse, ...). With
  // `files` (which need a config override, as in Triton) the model loads from a fresh directory
  // holding just those files, kept until the model is unloaded or loaded again; their paths are
  // checked (a version number, then plain names: nothing escapes that directory) and their sizes
  // bounded (RepositoryOptions::max_override_bytes) before anything is written.
  void load(const std::string& name, const std::string& config_override = "", const std::vector<ModelFile>& files = {});
  // Unload; in-flight requests on it complete first. Throws NotFound.
  void unload(const std::string& name);
  // Poll mode: load new / changed models, unload removed ones. Returns messages of failures.
  std::vector<std::string> poll();
  // Stop every scheduler and wait for in-flight requests (server shutdown).
  void shutdown();

  // The version to serve: empty `version` picks the highest loaded version. Throws NotFound /
  // Unavailable naming the model.
  std::shared_ptr<ModelVersion> get(const std::string& name, const std::string& version = "") const;
  // All loaded versions of a model (ascending); empty when not loaded.
  std::vector<std::shared_ptr<ModelVersion>> versions(const std::string& name) const;
  std::vector<std::shared_ptr<ModelVersion>> all_versions() const;
  // Models in the repository directory plus their states (RepositoryIndex).
  std::vector<ModelState> index() const;
  bool all_ready() const;
  const RepositoryOptions& options() const { return opt_; }
  // A model name must be a plain directory name inside the repository.
  static void check_model_name(const std::string& name);

 private:
  struct Entry {
    std::map<int64_t, std::shared_ptr<ModelVersion>> versions;
    std::string fingerprint;
    std::string state = "UNAVAILABLE";
    std::string reason;
    std::shared_ptr<const std::string> override_dir;  // removed with its last reference
  };
  std::map<int64_t, std::shared_ptr<ModelVersion>> load_versions(const std::string& name,
                                                                 const std::string& config_override,
                                                                 const std::string& model_dir);
  std::string fingerprint(const std::string& name) const;
  void load_in_order(const std::vector<std::string>& names, std::vector<std::string>& errors);
  void retire(std::map<int64_t, std::shared_ptr<ModelVersion>>& old);

  RepositoryOptions opt_;
  mutable std::shared_mutex mu_;
  std::map<std::string, Entry> models_;
  std::mutex load_mu_;  // one load / unload at a time
};

// Scheduler settings of a completed config (instances, dynamic batching, queue policies).
SchedulerOptions scheduler_options(const inference::ModelConfig& c);
// Set mv's max_batch, inputs and outputs (in the model's order) from its completed config.
void bind_io(ModelVersion& mv, const inference::ModelConfig& c);
// model_warmup: runs the config's samples on every execution state of `mv` (zero_data,
// random_data, or input_data_file from `model_dir`/warmup/); throws InvalidArgument naming the
// sample and input when one cannot be built or run.
void warm_up(const ModelVersion& mv, const std::string& model_dir);
// A loaded version "1" of the identity backend named `name` from config text (tests, fuzzers, benches).
std::shared_ptr<ModelVersion> identity_model_version(const std::string& config_text, const std::string& name = "m");

}  // namespace quiver::serve
