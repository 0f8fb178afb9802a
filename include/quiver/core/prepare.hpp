// Sizing a RunState ahead of production calls.
//
// A fresh RunState allocates its arena (activations, scratch) on its first call and faults its pages
// in then: for a large model at a large batch that first call costs many times a warm one. A caller
// that knows the batch (and any other dynamic dims) it will run with calls prepare_state once, off
// the hot path, so that no production call of that size pays for it.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "quiver/core/model.hpp"

namespace quiver {

// Zero-filled inputs of the shapes `model` would get: fixed dims as declared, dim 0 = `batch` when
// dynamic, every other dynamic dim from `dims` (by its symbol). Throws InvalidArgument naming the
// tensor and the dim when a dynamic dim has no value.
std::vector<Tensor> expected_inputs(const ModelInfo& info, int64_t batch, const std::map<std::string, int64_t>& dims = {});

// The values the dynamic dims (by symbol) take in `inputs`: what to pass as `dims` to size a state
// for inputs like these.
std::map<std::string, int64_t> dims_of(const ModelInfo& info, std::span<const Tensor> inputs);

// Runs `model` once on expected_inputs(...) with `state`, so the state's arena is allocated and its
// pages touched at that size. Later calls of that size (or smaller) reuse it without growing.
void prepare_state(const Model& model, RunState& state, int64_t batch, const std::map<std::string, int64_t>& dims = {});

// What to size states for ahead of production calls: dim 0 of batched inputs and the values of
// the other dynamic dims by symbol. batch 0: not prepared.
struct PrepareSpec {
  int64_t batch = 0;
  std::map<std::string, int64_t> dims;
  std::string str() const;  // "64,n_pf=100", "off"
};

// Parses a prepare spec as users write it (config.pbtxt parameter "prepare_state", the flow
// component's "prepare" parameter, the client's fallback_prepare): "BATCH" or
// "BATCH,SYMBOL=VALUE,..."; "off" or "0": not prepared. Throws InvalidArgument naming `where`
// (model, component) and saying what in `text` is wrong.
PrepareSpec parse_prepare_spec(const std::string& text, const ErrorWhere& where);

// Checks `spec` against the model: batch within `max_batch` (the caller's limit, e.g. a served
// model's max_batch_size; 0: info.max_batch), every symbol a dynamic dim of some input, every
// dynamic dim but a batch dim given a value. Throws InvalidArgument naming the model and the input.
void check_prepare_spec(const ModelInfo& info, const PrepareSpec& spec, int64_t max_batch = 0);

}  // namespace quiver
