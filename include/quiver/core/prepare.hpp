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

}  // namespace quiver
