#include "kserve/json_tensors.hpp"

#include <limits>
#include <string>
#include <vector>

#include "kserve/tensors.hpp"
#include "quiver/core/half.hpp"
#include "quiver/core/shape.hpp"

namespace quiver::kserve {

using nlohmann::json;

namespace {
void flatten(const json& j, std::vector<const json*>& out) {
  if (j.is_array()) {
    for (const auto& e : j) flatten(e, out);
  } else {
    out.push_back(&j);
  }
}

struct Reader {
  ErrorCode code;
  const ErrorWhere& where;
  std::string_view what;
  [[noreturn]] void bad(size_t i, const char* why) const {
    throw Error(code, std::string(what) + " '" + where.tensor + "' element " + std::to_string(i) + " " + why, where);
  }
};

template <class T>
void fill_numbers(const Reader& r, const std::vector<const json*>& vals, T* dst) {
  for (size_t i = 0; i < vals.size(); ++i) {
    const json& v = *vals[i];
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) r.bad(i, "is not a boolean");
      dst[i] = v.get<bool>();
    } else {
      if (!v.is_number()) r.bad(i, "is not a number");
      if constexpr (std::is_integral_v<T>) {
        if (v.is_number_float()) r.bad(i, "is not an integer");
        if constexpr (std::is_signed_v<T>) {
          if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max()))
            r.bad(i, "is out of range");
          const int64_t x = v.get<int64_t>();
          if (x < std::numeric_limits<T>::min() || x > std::numeric_limits<T>::max()) r.bad(i, "is out of range");
          dst[i] = static_cast<T>(x);
        } else {
          if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() < 0) r.bad(i, "is negative");
          const uint64_t x = v.get<uint64_t>();
          if (x > std::numeric_limits<T>::max()) r.bad(i, "is out of range");
          dst[i] = static_cast<T>(x);
        }
      } else {
        dst[i] = static_cast<T>(v.get<double>());
      }
    }
  }
}

template <class T>
void append(const Tensor& t, json& arr) {
  for (const T& v : t.span<T>()) arr.push_back(v);
}
}  // namespace

Tensor tensor_from_json(DType dtype, std::span<const int64_t> shape, const json& data, ErrorCode code,
                        const ErrorWhere& where, std::string_view what) {
  std::vector<const json*> vals;
  flatten(data, vals);
  const int64_t n = checked_numel(shape, code, where);
  if (static_cast<int64_t>(vals.size()) != n)
    throw Error(code,
                std::string(what) + " '" + where.tensor + "' has " + std::to_string(vals.size()) +
                    " values in 'data', shape " + dims_to_string(shape) + " needs " + std::to_string(n),
                where);
  const Reader r{code, where, what};
  Tensor t = Tensor::empty(dtype, shape);
  switch (dtype) {
    case DType::Bool: fill_numbers(r, vals, t.data<bool>()); break;
    case DType::I8: fill_numbers(r, vals, t.data<int8_t>()); break;
    case DType::I16: fill_numbers(r, vals, t.data<int16_t>()); break;
    case DType::I32: fill_numbers(r, vals, t.data<int32_t>()); break;
    case DType::I64: fill_numbers(r, vals, t.data<int64_t>()); break;
    case DType::U8: fill_numbers(r, vals, t.data<uint8_t>()); break;
    case DType::U16: fill_numbers(r, vals, t.data<uint16_t>()); break;
    case DType::U32: fill_numbers(r, vals, t.data<uint32_t>()); break;
    case DType::U64: fill_numbers(r, vals, t.data<uint64_t>()); break;
    case DType::F32: fill_numbers(r, vals, t.data<float>()); break;
    case DType::F64: fill_numbers(r, vals, t.data<double>()); break;
    case DType::F16:
    case DType::BF16: {
      std::vector<float> f(vals.size());
      fill_numbers(r, vals, f.data());
      uint16_t* d = t.data<uint16_t>();
      for (size_t i = 0; i < f.size(); ++i) d[i] = dtype == DType::F16 ? Half(f[i]).bits : BFloat16(f[i]).bits;
      break;
    }
    case DType::String:
      for (size_t i = 0; i < vals.size(); ++i) {
        if (!vals[i]->is_string()) r.bad(i, "is not a string");
        t.data<std::string>()[i] = vals[i]->get<std::string>();
      }
      break;
    default:
      throw Error(code,
                  std::string(what) + " '" + where.tensor + "' of type " + std::string(dtype_kserve_name(dtype)) +
                      " cannot be given as JSON data",
                  where);
  }
  return t;
}

json tensor_to_json(const Tensor& t, const ErrorWhere& where) {
  json arr = json::array();
  switch (t.dtype()) {
    case DType::Bool: append<bool>(t, arr); break;
    case DType::I8: append<int8_t>(t, arr); break;
    case DType::I16: append<int16_t>(t, arr); break;
    case DType::I32: append<int32_t>(t, arr); break;
    case DType::I64: append<int64_t>(t, arr); break;
    case DType::U8: append<uint8_t>(t, arr); break;
    case DType::U16: append<uint16_t>(t, arr); break;
    case DType::U32: append<uint32_t>(t, arr); break;
    case DType::U64: append<uint64_t>(t, arr); break;
    case DType::F32: append<float>(t, arr); break;
    case DType::F64: append<double>(t, arr); break;
    case DType::String: append<std::string>(t, arr); break;
    case DType::F16:
      for (uint16_t h : t.span<uint16_t>()) arr.push_back(Half::to_float(h));
      break;
    case DType::BF16:
      for (uint16_t h : t.span<uint16_t>()) arr.push_back(BFloat16::to_float(h));
      break;
    default:
      throw Error(ErrorCode::Unsupported,
                  "datatype " + std::string(dtype_kserve_name(t.dtype())) + " cannot be written as JSON data", where);
  }
  return arr;
}

bool json_u64(const json& j, uint64_t& out) {
  if (j.is_number_unsigned()) {
    out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

}  // namespace quiver::kserve
