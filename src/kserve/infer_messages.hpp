// KServe v2 inference messages as a client builds and reads them: a ModelInferRequest from named
// tensors (inline raw contents or a shared-memory slot) and the outputs of a ModelInferResponse as
// zero-copy views. Also used to read a request back (the client's local fallback, test servers).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "grpc_service.pb.h"
#include "quiver/core/infer.hpp"

namespace quiver::kserve {

// Where inputs go when they travel through a registered system shared-memory region.
struct ShmTarget {
  std::string region;  // registered name
  char* base = nullptr;  // mapping of the region
  uint64_t offset = 0;   // of this request's slot in the region
  bool inputs = true;    // inputs go to the slot (packed from `offset`, 64-byte aligned)
  // Outputs the server is asked to write into the region (offsets are region offsets); when
  // non-empty, these are the request's requested outputs (InferOptions.outputs is not used).
  struct Output {
    std::string name;
    uint64_t offset = 0, byte_size = 0;
  };
  std::vector<Output> outputs;
};
// Builds a ModelInferRequest with raw contents (one copy of each tensor's bytes; BYTES as
// 4-byte little-endian length + bytes). Sets "priority" and "timeout" (µs) parameters when given.
std::shared_ptr<inference::ModelInferRequest> encode_request(const std::string& model,
                                                             const std::vector<NamedTensor>& inputs,
                                                             const InferOptions& o, int64_t timeout_ns,
                                                             const ShmTarget* shm = nullptr);
// Where a response's shared-memory outputs may be: [lo, hi) of the mapped region `region`; the
// views hold `keep` (the slot) alive.
struct ShmOutputs {
  std::string region;
  const char* base = nullptr;
  uint64_t lo = 0, hi = 0;
  std::shared_ptr<const void> keep;
};
// Outputs of a response: zero-copy views into raw_output_contents (the response is kept alive by
// the tensors) or into shared memory (outputs the server wrote there: bounds, size and region are
// checked against `shm`), or copies from typed contents.
std::vector<NamedTensor> decode_outputs(const std::shared_ptr<inference::ModelInferResponse>& resp,
                                        const ShmOutputs* shm = nullptr);
// Inputs of a request (for the local fallback): views into the request message.
// Inputs in shared memory are viewed at shm_base + their offset (the slot must outlive the views).
std::vector<NamedTensor> decode_inputs(const std::shared_ptr<inference::ModelInferRequest>& req,
                                       const char* shm_base = nullptr);

}  // namespace quiver::kserve
