// A Triton-layout model directory read the way `quiver serve` reads it: config.pbtxt (protobuf
// TextFormat, own model_config.proto), engine and default file names, auto-completion from the
// model, version policy, and the model as its config presents it (`reshape` applied, FIL's
// interface for backend "fil"). The server and the client's local fallback both load through
// here, so a repository gives the same tensors and answers either way.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model_config.pb.h"
#include "quiver/core/model.hpp"

namespace quiver::repository {

// Parses config.pbtxt text; throws Parse naming `file` and the line.
inference::ModelConfig parse_model_config(const std::string& text, const std::string& file);
std::string model_config_to_text(const inference::ModelConfig& c);
std::optional<DType> config_dtype(int data_type);  // inference::DataType -> DType
int to_config_dtype(DType t);                       // DType -> inference::DataType
// Which Quiver engine serves a Triton config: "onnx", "forest", "identity"; throws Unsupported.
std::string engine_for_config(const inference::ModelConfig& c);
// Model file for a config inside a version directory ("" for identity); throws NotFound.
std::string find_model_file(const inference::ModelConfig& c, const std::string& version_dir);
// Guess the config of a model folder without config.pbtxt from the files in `version_dir`.
void guess_platform(inference::ModelConfig& c, const std::string& version_dir);
// Fill missing inputs / outputs / max_batch_size / batching from the loaded model and check the
// config against it; throws InvalidArgument naming the tensor.
void complete_config(inference::ModelConfig& c, const ModelInfo& info);
// The numeric version folders of a model directory (any order); throws NotFound naming the
// directory when there is none.
std::vector<int64_t> version_directories(const std::string& model_dir, const std::string& model);
// Versions the policy selects among those present (ascending); throws NotFound for a missing
// specific version.
std::vector<int64_t> select_versions(const inference::ModelConfig& c, std::vector<int64_t> present);
// The shape a config's dims describe: a symbolic batch dim first when `batched`, -1 symbolic.
Shape config_shape(const google::protobuf::RepeatedField<int64_t>& dims, bool batched);
// Built-in "identity" backend: output i is a copy of input i (as Triton's identity backend).
std::shared_ptr<const Model> make_identity_model(const inference::ModelConfig& c, const std::string& version);

// Dims of a tensor of `actual` dims (batch dim first when `batched`) viewed with the `to` pattern
// (non-batch dims; -1: a single one is inferred from the element count, several take the values
// of `from`'s variable dims in order). Throws InvalidArgument naming model and tensor when the
// elements do not fit.
std::vector<int64_t> reshape_dims(std::span<const int64_t> actual, bool batched, std::span<const int64_t> from,
                                  std::span<const int64_t> to, const ErrorWhere& where);

// Finds a loaded model of the repository for an ensemble step: `version` < 0 is the version its
// policy serves. Throws NotFound / Unavailable naming the model.
using ModelResolver = std::function<std::shared_ptr<const Model>(const std::string& name, int64_t version)>;
// platform "ensemble": runs its ensemble_scheduling steps through `resolver` (checked at load: every
// step's model, input_map / output_map names and dtypes, an order in which each tensor exists
// before it is used, every output produced).
std::shared_ptr<const Model> make_ensemble_model(const inference::ModelConfig& c, const std::string& version,
                                                 const ModelResolver& resolver);

// One version of a repository model, loaded.
struct LoadedModel {
  inference::ModelConfig config;  // completed from the model; parameters["quiver.sha256"] set
  std::shared_ptr<const Model> model;  // names and shapes as the config gives them
  std::string engine;  // "onnx", "forest", "identity", "auto"
  std::string sha256, path;
};
// `config`: the model's base config (its name set; empty for auto-complete). `config_text` and
// `config_path`: what an identity model's provenance hashes and names. Throws quiver::Error
// naming the model.
LoadedModel load_repository_version(inference::ModelConfig config, const std::string& version_dir,
                                    const std::string& version, const std::string& config_text,
                                    const std::string& config_path, int intra_op_threads = 1,
                                    const ModelResolver& resolver = {});

}  // namespace quiver::repository
