#include "quiver/core/dtype.hpp"

#include <string>

namespace quiver {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
    case DType::I8: case DType::U8: case DType::Bool: return 1;
    case DType::String: return sizeof(std::string);
    case DType::Undefined: return 0;
  }
  return 0;
}

bool dtype_is_float(DType t) {
  return t == DType::F32 || t == DType::F64 || t == DType::F16 || t == DType::BF16;
}
bool dtype_is_integer(DType t) {
  switch (t) {
    case DType::I8: case DType::I16: case DType::I32: case DType::I64:
    case DType::U8: case DType::U16: case DType::U32: case DType::U64: return true;
    default: return false;
  }
}
bool dtype_is_signed(DType t) {
  switch (t) {
    case DType::I8: case DType::I16: case DType::I32: case DType::I64:
    case DType::F16: case DType::BF16: case DType::F32: case DType::F64: return true;
    default: return false;
  }
}

namespace {
struct Names { DType t; const char* onnx; const char* kserve; const char* triton; };
constexpr Names kNames[] = {
    {DType::F32, "float", "FP32", "TYPE_FP32"},     {DType::F64, "double", "FP64", "TYPE_FP64"},
    {DType::F16, "float16", "FP16", "TYPE_FP16"},   {DType::BF16, "bfloat16", "BF16", "TYPE_BF16"},
    {DType::I8, "int8", "INT8", "TYPE_INT8"},       {DType::I16, "int16", "INT16", "TYPE_INT16"},
    {DType::I32, "int32", "INT32", "TYPE_INT32"},   {DType::I64, "int64", "INT64", "TYPE_INT64"},
    {DType::U8, "uint8", "UINT8", "TYPE_UINT8"},    {DType::U16, "uint16", "UINT16", "TYPE_UINT16"},
    {DType::U32, "uint32", "UINT32", "TYPE_UINT32"}, {DType::U64, "uint64", "UINT64", "TYPE_UINT64"},
    {DType::Bool, "bool", "BOOL", "TYPE_BOOL"},     {DType::String, "string", "BYTES", "TYPE_STRING"},
};
}  // namespace

std::string_view dtype_name(DType t) {
  for (const auto& n : kNames) if (n.t == t) return n.onnx;
  return "undefined";
}
std::string_view dtype_kserve_name(DType t) {
  for (const auto& n : kNames) if (n.t == t) return n.kserve;
  return "INVALID";
}
std::optional<DType> dtype_from_kserve(std::string_view s) {
  for (const auto& n : kNames) if (s == n.kserve) return n.t;
  return std::nullopt;
}
std::string_view dtype_triton_config_name(DType t) {
  for (const auto& n : kNames) if (n.t == t) return n.triton;
  return "TYPE_INVALID";
}
std::optional<DType> dtype_from_triton_config_name(std::string_view s) {
  for (const auto& n : kNames) if (s == n.triton) return n.t;
  return std::nullopt;
}
std::optional<DType> dtype_from_onnx(int32_t code) {
  switch (code) {
    case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8: case 9: case 10: case 11:
    case 12: case 13: case 16:
      return static_cast<DType>(code);
    default:
      return std::nullopt;
  }
}

}  // namespace quiver
