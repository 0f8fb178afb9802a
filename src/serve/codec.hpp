// Decoding and validation of inference requests (gRPC ModelInferRequest, HTTP JSON + binary
// extension) into scheduler requests, and encoding of the results. Every rejection names the
// model and tensor. This is the surface exposed to untrusted bytes (see fuzz/).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "grpc_service.pb.h"
#include "serve/repository.hpp"
#include "serve/scheduler.hpp"
#include "serve/shm.hpp"

namespace quiver::serve {

// Where one requested output goes.
struct OutputTarget {
  size_t index = 0;    // into ModelVersion::outputs
  bool binary = true;  // HTTP: binary tensor data extension (gRPC: always raw)
  std::shared_ptr<const ShmRegion> shm;
  uint64_t shm_offset = 0, shm_size = 0;
  uint32_t class_count = 0;  // classification extension: top-N "value:index[:label]" per batch row
};

// The classification extension: BYTES [batch, min(count, row size)] (no batch dim for a model
// without batching) of "value:index[:label]", highest values first, ties by lower index; labels
// from the output's label_filename. Throws InvalidArgument for BOOL / BYTES outputs.
Tensor classify(const ModelVersion& mv, const IOSpec& spec, const Tensor& t, uint32_t count);

// Checks one input's name / datatype / shape against the model; updates the common batch size.
// Returns the input's index in ModelVersion::inputs.
size_t check_input_header(const ModelVersion& mv, std::string_view name, std::string_view datatype,
                          std::span<const int64_t> shape, int64_t& batch);
// Element count with overflow and sanity limits.
int64_t checked_numel(const ModelVersion& mv, std::string_view tensor, std::span<const int64_t> shape);
// Tensor from raw wire bytes. Fixed-size types are viewed without copying when aligned (the
// caller keeps `data` alive); BYTES are parsed as 4-byte little-endian length + bytes.
Tensor tensor_from_raw(const ModelVersion& mv, const IOSpec& spec, std::span<const int64_t> shape,
                       const void* data, size_t size);
// Tensor from [offset, offset+size) of a shared-memory region: a view that keeps a system region
// mapped, or a copy out of device memory (CUDA regions).
Tensor tensor_from_shm(const ModelVersion& mv, const IOSpec& spec, std::span<const int64_t> shape,
                       const std::shared_ptr<const ShmRegion>& region, uint64_t offset, uint64_t size);
// All inputs given exactly once? Throws InvalidArgument naming the missing one.
void check_all_inputs(const ModelVersion& mv, const std::vector<Tensor>& inputs);
std::vector<int64_t> response_shape(const Tensor& t);

// gRPC
void decode_grpc_request(const inference::ModelInferRequest& msg, const ModelVersion& mv, const ShmManager& shm,
                         InferRequest& req, std::vector<OutputTarget>& outputs);
void encode_grpc_response(const ModelVersion& mv, const std::vector<OutputTarget>& targets,
                          std::span<const Tensor> outputs, inference::ModelInferResponse& resp);

// HTTP: `body` is the (decompressed) request body, `header_len` the Inference-Header-Content-Length
// (or -1 when absent: the whole body is JSON). `body` must outlive the request.
struct HttpInferRequest {
  std::string id;
  std::vector<OutputTarget> outputs;
};
void decode_http_request(std::string_view body, int64_t header_len, const ModelVersion& mv, const ShmManager& shm,
                         InferRequest& req, HttpInferRequest& info);
// Returns the body; sets `header_len` to the JSON length when binary data follows (else -1).
std::string encode_http_response(const ModelVersion& mv, const HttpInferRequest& info,
                                 std::span<const Tensor> outputs, int64_t& header_len);

}  // namespace quiver::serve
