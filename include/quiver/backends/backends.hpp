// The direct-inference backends of this build (ONNX engine, tree ensembles) and where a model runs.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "quiver/core/model.hpp"
#include "quiver/core/prepare.hpp"

namespace quiver {

// Loads a model file with the backend that recognises it (`backend`: that one by name). The
// backends of this build (onnx, forest) are always known; register_backend() adds others (the
// client's "remote", plugins), which are asked first. Throws NotFound for a missing file or an
// unknown backend name, Unsupported when no backend recognises the file, and what the loader throws.
std::shared_ptr<const Model> load_model(const std::string& path, const LoadOptions& options = {},
                                        const std::string& backend = "");
// Adds a backend (or replaces the one of the same name). Thread-safe.
void register_backend(Backend b);
// Names of the added backends, then of the built-in ones.
std::vector<std::string> registered_backends();

// ---- Sizing states ahead: the one helper the server's instances, the flow's inference factories
// and the client's local fallback use, so that no production call pays a fresh state's arena growth
// and page faults (see quiver/core/prepare.hpp).

// Bytes `state` holds for its runs where the backend counts them (the ONNX engine's arena), else 0.
size_t state_bytes(const RunState& state);

// Automatic sizing (no spec configured) keeps each state within this: the default batch is cut to
// what fits, estimated from a batch-1 run (the arena grows about linearly with the batch).
inline constexpr size_t kAutoPrepareMaxBytes = size_t(256) << 20;

struct PrepareReport {
  PrepareSpec spec;         // what the states were sized for (batch 0: not prepared)
  bool configured = false;  // from a spec the user gave, else the automatic default
  size_t states = 0;
  size_t bytes = 0;         // held by the states together afterwards (state_bytes)
  double ms = 0;
  std::string note;         // why not prepared, or why the default batch was cut
  std::string summary() const;  // one line for the log
};

// Sizes `states` of `model` ahead. `configured`: a spec as the user wrote it (parse_prepare_spec;
// "" when none); a bad spec, one that does not fit the model, or a run that fails throws
// InvalidArgument naming `where` and the input. Without one, models of the ONNX engine on the CPU
// (whose states hold an arena that grows with the batch) are sized at `automatic` (the batch the
// caller's batcher forms or a call gets, and the dims it knows), capped to the max batch and to
// kAutoPrepareMaxBytes per state; a model that cannot be sized that way (a dynamic dim without a
// value, a run on zeros that fails) stays unprepared, with the reason in the note. `max_batch`:
// the caller's limit on the batch (a served model's max_batch_size; 0: the model's own).
PrepareReport prepare_states(const Model& model, std::span<RunState* const> states, const std::string& configured,
                             const PrepareSpec& automatic, const ErrorWhere& where, int64_t max_batch = 0);

// `n` (at least 1) fresh states of `model`, sized by prepare_states, for a caller that hands them to
// its own pool (the flow's inference factories, the client's local fallback).
struct PreparedStates {
  std::vector<std::unique_ptr<RunState>> states;
  PrepareReport report;
};
PreparedStates make_prepared_states(const Model& model, int n, const std::string& configured,
                                    const PrepareSpec& automatic, const ErrorWhere& where, int64_t max_batch = 0);

}  // namespace quiver

namespace quiver::backends {

// The "onnx" backend of load_model. LoadOptions::params["device"] picks where the model runs: "cpu"
// (default: the ONNX engine, quiver::onnx::load_onnx), "cuda" or "cuda:N" (the GPU executor: the plan
// compiled for the device, each step's kernel chosen once at load, device kernels and cuBLAS; steps
// without a device kernel run their CPU kernel), "auto" (cuda:0 when a CUDA device is usable, else cpu)
// and "gpu-emulator" (the GPU executor on host memory, for tests on machines without a GPU).
// params["device_streams"] (default 4): how many runs of one loaded model may be on the device at
// once; each keeps its own stream and activation buffers, so this also bounds the GPU memory
// (callers beyond it wait). Throws InvalidArgument for an unknown device, Unavailable when it
// cannot be used, and whatever the ONNX loader throws.
std::shared_ptr<const Model> load_onnx(const std::string& path, const LoadOptions& options = {});
std::shared_ptr<const Model> load_onnx_bytes(const std::string& bytes, const std::string& base_dir,
                                             const LoadOptions& options = {});

}  // namespace quiver::backends
