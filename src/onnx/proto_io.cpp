#include "onnx/proto_io.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "quiver/core/error.hpp"
#include "quiver/core/shape.hpp"
#include "quiver/core/util.hpp"
#include "quiver/onnx/tensor_proto.hpp"

namespace quiver::onnx {

namespace {

[[noreturn]] void bad(const std::string& what, const std::string& msg, ErrorCode code = ErrorCode::Parse) {
  throw_error(code, msg, {"", "", what});
}

template <class Dst, class Src>
void copy_field(Tensor& t, const Src& field, const std::string& what, const char* fname) {
  if (static_cast<int64_t>(field.size()) != t.numel())
    bad(what, std::string(fname) + " has " + std::to_string(field.size()) + " values, shape needs " +
                  std::to_string(t.numel()));
  Dst* d = t.data<Dst>();
  for (int i = 0; i < field.size(); ++i) d[i] = static_cast<Dst>(field.Get(i));
}

void load_external(const ::onnx::TensorProto& p, const std::string& base_dir, const std::string& what,
                   Tensor& t) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = std::stoll(kv.value());
    else if (kv.key() == "length") length = std::stoll(kv.value());
  }
  if (location.empty()) bad(what, "external data without a location");
  std::filesystem::path rel(location);
  if (rel.is_absolute() || location.find("..") != std::string::npos)
    bad(what, "external data location '" + location + "' escapes the model folder", ErrorCode::InvalidArgument);
  std::string path = (std::filesystem::path(base_dir) / rel).string();
  std::ifstream f(path, std::ios::binary);
  if (!f) throw_error(ErrorCode::NotFound, "external data file not found", {"", "", what, path});
  f.seekg(0, std::ios::end);
  const int64_t size = f.tellg();
  const int64_t need = static_cast<int64_t>(t.nbytes());
  if (length >= 0 && length != need)
    throw_error(ErrorCode::Parse, "external data length " + std::to_string(length) + " != " + std::to_string(need),
                {"", "", what, path, offset});
  if (offset < 0 || offset + need > size)
    throw_error(ErrorCode::Parse, "external data range exceeds file size " + std::to_string(size),
                {"", "", what, path, offset});
  f.seekg(offset);
  f.read(static_cast<char*>(t.raw()), need);
}

}  // namespace

Tensor tensor_from_proto(const ::onnx::TensorProto& p, const std::string& base_dir, const std::string& what_in) {
  const std::string what = what_in.empty() ? p.name() : what_in;
  auto dt = dtype_from_onnx(p.data_type());
  if (!dt) bad(what, "unsupported tensor data type " + std::to_string(p.data_type()), ErrorCode::Unsupported);
  std::vector<int64_t> dims(p.dims().begin(), p.dims().end());
  for (auto d : dims)
    if (d < 0) bad(what, "negative dimension in " + dims_to_string(dims));
  if (p.has_segment()) bad(what, "segmented tensors are not supported", ErrorCode::Unsupported);
  // Check the declared size against the data present before allocating anything: a corrupt file
  // must not be able to ask for terabytes.
  int64_t n = 1;
  for (auto d : dims) {
    if (d != 0 && n > (int64_t{1} << 40) / d) bad(what, "declared shape " + dims_to_string(dims) + " is too large");
    n *= d;
  }
  const size_t need = static_cast<size_t>(n) * dtype_size(*dt);
  if (p.data_location() != ::onnx::TensorProto::EXTERNAL) {
    size_t have = 0;
    if (*dt == DType::String) have = static_cast<size_t>(p.string_data_size());
    else if (p.has_raw_data()) have = p.raw_data().size() / std::max<size_t>(1, dtype_size(*dt));
    else have = static_cast<size_t>(std::max({p.float_data_size(), p.double_data_size(), p.int64_data_size(),
                                              p.uint64_data_size(), p.int32_data_size()}));
    if (have < static_cast<size_t>(n) && n > 0)
      bad(what, "declared shape " + dims_to_string(dims) + " needs " + std::to_string(n) + " values (" +
                    std::to_string(need) + " bytes), the tensor holds " + std::to_string(have));
  }
  Tensor t = Tensor::empty(*dt, dims);
  if (p.data_location() == ::onnx::TensorProto::EXTERNAL) {
    if (*dt == DType::String) bad(what, "external string data is not supported", ErrorCode::Unsupported);
    load_external(p, base_dir, what, t);
    return t;
  }
  if (*dt == DType::String) {
    if (p.string_data_size() != n)
      bad(what, "string_data has " + std::to_string(p.string_data_size()) + " values, shape needs " + std::to_string(n));
    for (int64_t i = 0; i < n; ++i) t.data<std::string>()[i] = p.string_data(static_cast<int>(i));
    return t;
  }
  if (p.has_raw_data()) {
    if (p.raw_data().size() != t.nbytes())
      bad(what, "raw_data has " + std::to_string(p.raw_data().size()) + " bytes, " + dtype_name(*dt).data() +
                    " " + dims_to_string(dims) + " needs " + std::to_string(t.nbytes()));
    if (n) std::memcpy(t.raw(), p.raw_data().data(), t.nbytes());
    return t;
  }
  switch (*dt) {
    case DType::F32: copy_field<float>(t, p.float_data(), what, "float_data"); break;
    case DType::F64: copy_field<double>(t, p.double_data(), what, "double_data"); break;
    case DType::I64: copy_field<int64_t>(t, p.int64_data(), what, "int64_data"); break;
    case DType::U32: copy_field<uint32_t>(t, p.uint64_data(), what, "uint64_data"); break;
    case DType::U64: copy_field<uint64_t>(t, p.uint64_data(), what, "uint64_data"); break;
    case DType::I32: copy_field<int32_t>(t, p.int32_data(), what, "int32_data"); break;
    case DType::I16: copy_field<int16_t>(t, p.int32_data(), what, "int32_data"); break;
    case DType::I8: copy_field<int8_t>(t, p.int32_data(), what, "int32_data"); break;
    case DType::U16: copy_field<uint16_t>(t, p.int32_data(), what, "int32_data"); break;
    case DType::U8: copy_field<uint8_t>(t, p.int32_data(), what, "int32_data"); break;
    case DType::Bool: copy_field<bool>(t, p.int32_data(), what, "int32_data"); break;
    case DType::F16: case DType::BF16: copy_field<uint16_t>(t, p.int32_data(), what, "int32_data"); break;
    default: bad(what, "unsupported data type", ErrorCode::Unsupported);
  }
  return t;
}

void tensor_to_proto(const Tensor& t, const std::string& name, ::onnx::TensorProto& p) {
  p.Clear();
  p.set_name(name);
  p.set_data_type(static_cast<int32_t>(t.dtype()));
  for (auto d : t.dims()) p.add_dims(d);
  if (t.dtype() == DType::String) {
    for (int64_t i = 0; i < t.numel(); ++i) p.add_string_data(t.data<std::string>()[i]);
  } else {
    p.set_raw_data(std::string(static_cast<const char*>(t.raw()), t.nbytes()));
  }
}

NamedTensor parse_tensor(const std::string& bytes, const std::string& what) {
  ::onnx::TensorProto p;
  if (!p.ParseFromString(bytes)) throw_error(ErrorCode::Parse, "not a valid ONNX TensorProto", {"", "", "", what});
  try {
    return {p.name(), tensor_from_proto(p, "", p.name())};
  } catch (const Error& e) {
    throw e.with_context({"", "", "", what});
  }
}

NamedTensor read_tensor_file(const std::string& path) { return parse_tensor(read_file(path), path); }

std::string serialize_tensor(const NamedTensor& t) {
  ::onnx::TensorProto p;
  tensor_to_proto(t.tensor, t.name, p);
  return p.SerializeAsString();
}

void write_tensor_file(const std::string& path, const NamedTensor& t) { write_file(path, serialize_tensor(t)); }

std::vector<std::string> numbered_files(const std::string& dir, const std::string& prefix) {
  std::vector<std::pair<long, std::string>> found;
  const std::regex re(prefix + "_([0-9]+)\\.pb");
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string fn = e.path().filename().string();
    if (std::regex_match(fn, m, re)) found.emplace_back(std::stol(m[1].str()), e.path().string());
  }
  if (ec) throw_error(ErrorCode::NotFound, "cannot list folder: " + ec.message(), {"", "", "", dir});
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

}  // namespace quiver::onnx
