// The one model interface every backend implements (ONNX engine, tree ensembles, remote server).
//
// A loaded Model is immutable and shared by all threads: run() is const. Everything a call needs to
// scribble on (activations, arena, scratch) lives in a RunState the caller owns, one per thread or
// per in-flight call, reused across calls so that the steady state allocates nothing.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "quiver/core/dtype.hpp"
#include "quiver/core/error.hpp"
#include "quiver/core/shape.hpp"
#include "quiver/core/tensor.hpp"

namespace quiver {

struct TensorInfo {
  std::string name;
  DType dtype = DType::Undefined;
  Shape shape;  // includes the batch dim when the model has one
};

struct ModelInfo {
  std::string name;       // logical model name
  std::string backend;    // "onnx", "forest", "remote", ...
  std::string format;     // "onnx", "xgboost-json", "lightgbm", "tmva-xml", ...
  std::string version;    // model version ("1" in a repository); empty when loaded from a file
  std::string sha256;     // of the model file bytes: provenance
  std::string path;       // file it was loaded from
  std::string device;     // where it runs when not on the CPU ("cuda:0", "gpu-emulator"); empty = CPU
  std::vector<TensorInfo> inputs;
  std::vector<TensorInfo> outputs;
  // > 0: dim 0 of every input and output is a batch dim of at most max_batch; 0: no batching.
  int64_t max_batch = 0;
};

class OpProfile;

// Per-call scratch. Backends derive from it; callers only create it with Model::make_state().
class RunState {
 public:
  virtual ~RunState() = default;
  // When set, runs with this state add their per-operator times to it (backends that can time their
  // operators: the ONNX engine and the GPU executor). Owned by the caller; costs two clock reads per
  // step while set, one pointer test per run while not.
  OpProfile* profile = nullptr;
};

struct LoadOptions {
  std::string name;     // override the model name (default: file stem / repository name)
  std::string version;  // recorded for provenance
  int intra_op_threads = 1;
  std::map<std::string, std::string> params;  // backend-specific knobs
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelInfo& info() const = 0;
  virtual std::unique_ptr<RunState> make_state() const = 0;

  // Run on `inputs` given in info().inputs order. `outputs` is resized to info().outputs.size();
  // tensors already there are reused as storage when possible (Tensor::ensure). Throws quiver::Error
  // on bad input (naming the tensor) or failure. Safe to call concurrently with distinct states.
  virtual void run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState& state) const = 0;

  // Human-readable summary for `quiver inspect` (backend specific details).
  virtual void describe(std::ostream& os) const;

  // Convenience: fresh state per call (slow path, for tools and tests).
  std::vector<Tensor> run_once(std::span<const Tensor> inputs) const;
  // Index of an input / output by name; throws NotFound.
  size_t input_index(const std::string& name) const;
  size_t output_index(const std::string& name) const;
  // Run with inputs given by name (any order); validates names.
  std::vector<Tensor> run_named(const std::vector<NamedTensor>& inputs) const;
};

// Checks inputs against metadata (count, dtype, rank, fixed dims, max_batch); throws InvalidArgument
// naming the tensor. Backends call it at the top of run().
void validate_inputs(const ModelInfo& info, std::span<const Tensor> inputs);

// A Model plus one RunState: the handle a single thread uses.
class Session {
 public:
  explicit Session(std::shared_ptr<const Model> model)
      : model_(std::move(model)), state_(model_->make_state()) {}
  const Model& model() const { return *model_; }
  const std::shared_ptr<const Model>& shared_model() const { return model_; }
  void run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs) { model_->run(inputs, outputs, *state_); }
  // Per-operator times of this session's runs go to `p` (nullptr: off). See RunState::profile.
  void set_profile(OpProfile* p) { state_->profile = p; }

 private:
  std::shared_ptr<const Model> model_;
  std::unique_ptr<RunState> state_;
};

// ---- what a backend part offers to the file loader (quiver::load_model, quiver/backends/backends.hpp) ----
struct Backend {
  std::string name;  // "onnx", "forest"
  // Cheap check on path / first bytes: can this backend load it?
  std::function<bool(const std::string& path, std::string_view head)> accepts;
  std::function<std::shared_ptr<const Model>(const std::string& path, const LoadOptions&)> load;
};

}  // namespace quiver
