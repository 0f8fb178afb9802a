#include "kserve/tensors.hpp"

#include <cstring>

#include "quiver/core/shape.hpp"

namespace quiver::kserve {

namespace {
constexpr int64_t kMaxElements = int64_t(1) << 40;

std::string named(std::string_view what, const ErrorWhere& where) {
  return std::string(what) + " '" + where.tensor + "'";
}

template <class Map, class Get>
std::string find_checksum(const Map& params, Get get) {
  for (const char* k : {kChecksumParameter, "sha256", "model_sha256", "checksum"}) {
    auto it = params.find(k);
    if (it != params.end()) {
      std::string v = get(it->second);
      if (!v.empty()) return v;
    }
  }
  return {};
}

template <class T, class Src>
Tensor typed(DType dt, std::span<const int64_t> shape, const Src& src, ErrorCode code, const ErrorWhere& where,
             std::string_view what) {
  const int64_t n = checked_numel(shape, code, where);
  if (static_cast<int64_t>(src.size()) != n)
    throw Error(code,
                named(what, where) + " has " + std::to_string(src.size()) + " values in contents, shape " +
                    dims_to_string(shape) + " needs " + std::to_string(n),
                where);
  Tensor t = Tensor::empty(dt, shape);
  T* p = t.data<T>();
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(src[static_cast<int>(i)]);
  return t;
}
}  // namespace

std::string checksum_of(const google::protobuf::Map<std::string, inference::InferParameter>& params) {
  return find_checksum(params, [](const inference::InferParameter& p) {
    return p.has_string_param() ? p.string_param() : std::string();
  });
}

std::string checksum_of(const google::protobuf::Map<std::string, inference::ModelParameter>& params) {
  return find_checksum(params, [](const inference::ModelParameter& p) { return p.string_value(); });
}

bool param_u64(const inference::InferParameter& p, uint64_t& out) {
  switch (p.parameter_choice_case()) {
    case inference::InferParameter::kInt64Param:
      if (p.int64_param() < 0) return false;
      out = static_cast<uint64_t>(p.int64_param());
      return true;
    case inference::InferParameter::kUint64Param: out = p.uint64_param(); return true;
    default: return false;
  }
}

int64_t checked_numel(std::span<const int64_t> shape, ErrorCode code, const ErrorWhere& where) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error(code, "negative dimension in shape " + dims_to_string(shape), where);
    if (d != 0 && n > kMaxElements / d) throw Error(code, "shape " + dims_to_string(shape) + " is too large", where);
    n *= d;
  }
  return n;
}

size_t wire_size(const Tensor& t) {
  if (t.dtype() != DType::String) return t.nbytes();
  size_t n = 0;
  for (const auto& s : t.span<std::string>()) n += 4 + s.size();
  return n;
}

void write_wire(const Tensor& t, uint8_t* dst) {
  if (t.dtype() != DType::String) {
    if (t.nbytes()) std::memcpy(dst, t.raw(), t.nbytes());
    return;
  }
  for (const auto& s : t.span<std::string>()) {
    const uint32_t len = static_cast<uint32_t>(s.size());
    dst[0] = uint8_t(len);
    dst[1] = uint8_t(len >> 8);
    dst[2] = uint8_t(len >> 16);
    dst[3] = uint8_t(len >> 24);
    if (len) std::memcpy(dst + 4, s.data(), len);
    dst += 4 + len;
  }
}

void assign_wire(const Tensor& t, std::string& out) {
  if (t.dtype() != DType::String) {
    out.assign(static_cast<const char*>(t.raw()), t.nbytes());
    return;
  }
  out.resize(wire_size(t));
  write_wire(t, reinterpret_cast<uint8_t*>(out.data()));
}

Tensor decode_bytes(std::span<const int64_t> shape, const void* data, size_t size, ErrorCode code,
                    const ErrorWhere& where, std::string_view what) {
  const int64_t n = checked_numel(shape, code, where);
  // Every element needs at least its 4-byte length: checked before allocating n strings, so that a
  // tiny message cannot make the reader allocate (and construct) billions of them.
  if (static_cast<uint64_t>(n) > size / 4)
    throw Error(code,
                "BYTES " + named(what, where) + " has " + std::to_string(size) + " bytes, too few for the " +
                    std::to_string(n) + " elements of shape " + dims_to_string(shape) +
                    " (each needs at least a 4-byte length)",
                where);
  Tensor t = Tensor::empty(DType::String, shape);
  std::string* out = t.data<std::string>();
  const uint8_t* p = static_cast<const uint8_t*>(data);
  size_t pos = 0;
  for (int64_t e = 0; e < n; ++e) {
    if (size - pos < 4)
      throw Error(code,
                  "BYTES " + named(what, where) + " holds fewer than the " + std::to_string(n) +
                      " elements its shape needs (element " + std::to_string(e) + " is missing)",
                  where);
    const uint32_t len =
        uint32_t(p[pos]) | uint32_t(p[pos + 1]) << 8 | uint32_t(p[pos + 2]) << 16 | uint32_t(p[pos + 3]) << 24;
    pos += 4;
    if (size - pos < len)
      throw Error(code,
                  "BYTES " + named(what, where) + " element " + std::to_string(e) + " length " + std::to_string(len) +
                      " runs past the end of the data",
                  where);
    out[e].assign(reinterpret_cast<const char*>(p + pos), len);
    pos += len;
  }
  if (pos != size)
    throw Error(code,
                "BYTES " + named(what, where) + " has " + std::to_string(size - pos) + " bytes after its " +
                    std::to_string(n) + " elements",
                where);
  return t;
}

Tensor tensor_from_contents(DType dt, std::span<const int64_t> shape, const inference::InferTensorContents& c,
                            ErrorCode code, const ErrorWhere& where, std::string_view what) {
  switch (dt) {
    case DType::Bool: return typed<bool>(dt, shape, c.bool_contents(), code, where, what);
    case DType::I8: return typed<int8_t>(dt, shape, c.int_contents(), code, where, what);
    case DType::I16: return typed<int16_t>(dt, shape, c.int_contents(), code, where, what);
    case DType::I32: return typed<int32_t>(dt, shape, c.int_contents(), code, where, what);
    case DType::I64: return typed<int64_t>(dt, shape, c.int64_contents(), code, where, what);
    case DType::U8: return typed<uint8_t>(dt, shape, c.uint_contents(), code, where, what);
    case DType::U16: return typed<uint16_t>(dt, shape, c.uint_contents(), code, where, what);
    case DType::U32: return typed<uint32_t>(dt, shape, c.uint_contents(), code, where, what);
    case DType::U64: return typed<uint64_t>(dt, shape, c.uint64_contents(), code, where, what);
    case DType::F32: return typed<float>(dt, shape, c.fp32_contents(), code, where, what);
    case DType::F64: return typed<double>(dt, shape, c.fp64_contents(), code, where, what);
    case DType::String: {
      const int64_t n = checked_numel(shape, code, where);
      if (c.bytes_contents_size() != n)
        throw Error(code,
                    named(what, where) + " has " + std::to_string(c.bytes_contents_size()) +
                        " values in bytes_contents, shape " + dims_to_string(shape) + " needs " + std::to_string(n),
                    where);
      Tensor t = Tensor::empty(DType::String, shape);
      for (int64_t i = 0; i < n; ++i) t.data<std::string>()[i] = c.bytes_contents(static_cast<int>(i));
      return t;
    }
    default:
      throw Error(code,
                  named(what, where) + " of type " + std::string(dtype_kserve_name(dt)) +
                      " must be sent in raw contents",
                  where);
  }
}

}  // namespace quiver::kserve
