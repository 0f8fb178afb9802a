// The KServe v2 wire format of tensors, shared by the server (quiver serve) and the client: raw
// contents (BYTES as 4-byte little-endian length + bytes per element), typed contents, the
// parameters both sides read and write (shared memory, model checksum). Errors name the tensor and
// carry the code the caller chooses (the server answers InvalidArgument, the client reports Parse).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "grpc_service.pb.h"
#include "model_config.pb.h"
#include "quiver/core/error.hpp"
#include "quiver/core/tensor.hpp"

namespace quiver::kserve {

// Triton's shared-memory extension: parameters of an input or output that lives in a registered
// region instead of the message.
inline constexpr const char* kShmRegion = "shared_memory_region";
inline constexpr const char* kShmOffset = "shared_memory_offset";
inline constexpr const char* kShmByteSize = "shared_memory_byte_size";

// The sha256 of the model file from response / config parameters ("quiver.sha256", which quiver
// serve sets, or the keys other servers use); empty when none is there.
inline constexpr const char* kChecksumParameter = "quiver.sha256";
std::string checksum_of(const google::protobuf::Map<std::string, inference::InferParameter>& params);
std::string checksum_of(const google::protobuf::Map<std::string, inference::ModelParameter>& params);

// A non-negative integer parameter (int64 or uint64); false when it is anything else.
bool param_u64(const inference::InferParameter& p, uint64_t& out);

// Element count of `shape`, refusing negative dims and sizes past 2^40 elements.
int64_t checked_numel(std::span<const int64_t> shape, ErrorCode code, const ErrorWhere& where);

// Bytes a tensor takes as raw contents, and its serialisation into `dst` (wire_size(t) bytes).
size_t wire_size(const Tensor& t);
void write_wire(const Tensor& t, uint8_t* dst);
// Raw contents of `t` in `out` (replacing what was there).
void assign_wire(const Tensor& t, std::string& out);

// BYTES elements of `shape` parsed from [data, data + size): exactly numel(shape) elements and no
// bytes after them. `what` names the side in messages ("input", "output").
Tensor decode_bytes(std::span<const int64_t> shape, const void* data, size_t size, ErrorCode code,
                    const ErrorWhere& where, std::string_view what);

// A tensor from typed contents (bool_contents, int_contents, ... by dtype): the count must match
// the shape; FP16 / BF16 exist only as raw contents.
Tensor tensor_from_contents(DType dtype, std::span<const int64_t> shape, const inference::InferTensorContents& c,
                            ErrorCode code, const ErrorWhere& where, std::string_view what);

}  // namespace quiver::kserve
