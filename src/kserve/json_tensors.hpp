// KServe v2 HTTP/REST tensor data: the JSON "data" array of an input or output, read and written
// the same way by the server and the HTTP client.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>

#include <nlohmann/json.hpp>

#include "quiver/core/error.hpp"
#include "quiver/core/tensor.hpp"

namespace quiver::kserve {

// A tensor of `dtype` and `shape` from a (possibly nested) JSON array: exactly numel(shape)
// values, each of the dtype's kind and range (booleans, integers without a fraction, numbers,
// strings; FP16 / BF16 from numbers). Errors carry `code` and name the element.
Tensor tensor_from_json(DType dtype, std::span<const int64_t> shape, const nlohmann::json& data, ErrorCode code,
                        const ErrorWhere& where, std::string_view what);
// The tensor's values as a flat JSON array (FP16 / BF16 as numbers). Throws Unsupported for a
// dtype JSON cannot carry.
nlohmann::json tensor_to_json(const Tensor& t, const ErrorWhere& where);
// A non-negative JSON integer.
bool json_u64(const nlohmann::json& j, uint64_t& out);

}  // namespace quiver::kserve
