// Element types of the ONNX / KServe world. Numeric values are ONNX TensorProto.DataType codes,
// so a DType converts to and from the wire without a table.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace quiver {

enum class DType : int32_t {
  Undefined = 0,
  F32 = 1,
  U8 = 2,
  I8 = 3,
  U16 = 4,
  I16 = 5,
  I32 = 6,
  I64 = 7,
  String = 8,
  Bool = 9,
  F16 = 10,
  F64 = 11,
  U32 = 12,
  U64 = 13,
  BF16 = 16,
};

// Bytes per element; String elements are std::string objects in memory (sizeof(std::string)).
size_t dtype_size(DType t);
bool dtype_is_float(DType t);    // F16, BF16, F32, F64
bool dtype_is_integer(DType t);  // signed or unsigned integers (not Bool)
bool dtype_is_signed(DType t);
// ONNX spelling ("float", "int64", "string", ...).
std::string_view dtype_name(DType t);
// KServe v2 / Triton spelling ("FP32", "INT64", "BYTES", "BOOL", ...).
std::string_view dtype_kserve_name(DType t);
std::optional<DType> dtype_from_kserve(std::string_view s);
// Triton model_config DataType enum ("TYPE_FP32" = 11, ...).
std::string_view dtype_triton_config_name(DType t);
std::optional<DType> dtype_from_triton_config_name(std::string_view s);
// From an ONNX TensorProto.DataType code; nullopt for codes Quiver does not support (FLOAT8, INT4, complex ...).
std::optional<DType> dtype_from_onnx(int32_t code);

// C++ type <-> DType.
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<int8_t> { static constexpr DType value = DType::I8; };
template <> struct dtype_of<int16_t> { static constexpr DType value = DType::I16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::U8; };
template <> struct dtype_of<uint16_t> { static constexpr DType value = DType::U16; };
template <> struct dtype_of<uint32_t> { static constexpr DType value = DType::U32; };
template <> struct dtype_of<uint64_t> { static constexpr DType value = DType::U64; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };
template <> struct dtype_of<std::string> { static constexpr DType value = DType::String; };
template <class T> inline constexpr DType dtype_v = dtype_of<T>::value;

}  // namespace quiver
