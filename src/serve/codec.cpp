#include "serve/codec.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kserve/json_tensors.hpp"
#include "kserve/tensors.hpp"
#include "quiver/core/half.hpp"

namespace quiver::serve {

using nlohmann::json;

namespace {
[[noreturn]] void bad(const ModelVersion& mv, std::string_view tensor, const std::string& msg) {
  throw Error(ErrorCode::InvalidArgument, msg, {mv.name, "", std::string(tensor)});
}
std::string dims_str(std::span<const int64_t> d) { return dims_to_string(d); }
}  // namespace

int64_t checked_numel(const ModelVersion& mv, std::string_view tensor, std::span<const int64_t> shape) {
  return kserve::checked_numel(shape, ErrorCode::InvalidArgument, {mv.name, "", std::string(tensor)});
}

size_t check_input_header(const ModelVersion& mv, std::string_view name, std::string_view datatype,
                          std::span<const int64_t> shape, int64_t& batch) {
  size_t idx = mv.inputs.size();
  for (size_t i = 0; i < mv.inputs.size(); ++i)
    if (mv.inputs[i].name == name) idx = i;
  if (idx == mv.inputs.size())
    bad(mv, name, "unexpected inference input '" + std::string(name) + "' for model '" + mv.name + "'");
  const IOSpec& s = mv.inputs[idx];
  std::string_view expected = dtype_kserve_name(s.dtype);
  if (datatype != expected)
    bad(mv, name, "inference input '" + std::string(name) + "' data-type is '" + std::string(datatype) +
                      "', but model '" + mv.name + "' expects '" + std::string(expected) + "'");
  const size_t skip = mv.max_batch > 0 ? 1 : 0;
  auto expect_str = [&] {
    std::vector<int64_t> e;
    if (skip) e.push_back(-1);
    e.insert(e.end(), s.dims.begin(), s.dims.end());
    return dims_str(e);
  };
  if (shape.size() != s.dims.size() + skip)
    bad(mv, name, "unexpected shape for input '" + std::string(name) + "' for model '" + mv.name + "'. Expected " +
                      expect_str() + ", got " + dims_str(shape));
  for (size_t d = 0; d < s.dims.size(); ++d) {
    int64_t got = shape[d + skip];
    if (got < 0 || (s.dims[d] >= 0 && s.dims[d] != got))
      bad(mv, name, "unexpected shape for input '" + std::string(name) + "' for model '" + mv.name + "'. Expected " +
                        expect_str() + ", got " + dims_str(shape));
  }
  if (skip) {
    int64_t b = shape[0];
    if (b < 1 || b > mv.max_batch)
      bad(mv, name, "inference request batch-size " + std::to_string(b) + " for input '" + std::string(name) +
                        "' must be in [1, max_batch_size " + std::to_string(mv.max_batch) + "] for model '" +
                        mv.name + "'");
    if (batch >= 0 && batch != b)
      bad(mv, name, "input '" + std::string(name) + "' has batch size " + std::to_string(b) +
                        " but an earlier input has batch size " + std::to_string(batch));
    batch = b;
  }
  return idx;
}

static void check_fixed_size(const ModelVersion& mv, const IOSpec& spec, std::span<const int64_t> shape, int64_t n,
                             size_t size) {
  const size_t expected = static_cast<size_t>(n) * dtype_size(spec.dtype);
  if (size != expected)
    bad(mv, spec.name, "unexpected total byte size " + std::to_string(size) + " for input '" + spec.name +
                           "', expecting " + std::to_string(expected) + " for shape " + dims_str(shape) + " " +
                           std::string(dtype_kserve_name(spec.dtype)));
}

Tensor tensor_from_raw(const ModelVersion& mv, const IOSpec& spec, std::span<const int64_t> shape, const void* data,
                       size_t size) {
  const int64_t n = checked_numel(mv, spec.name, shape);
  if (spec.dtype == DType::String)
    return kserve::decode_bytes(shape, data, size, ErrorCode::InvalidArgument, {mv.name, "", spec.name}, "input");
  const size_t esz = dtype_size(spec.dtype);
  check_fixed_size(mv, spec, shape, n, size);
  if (spec.dtype == DType::Bool) {
    // Only 0 and 1 are bool values; any other byte would be undefined behaviour in every reader.
    // Copied first and the copy checked, so that a client writing into its shared-memory region
    // while the request is in flight cannot slip other values past the check.
    Tensor t = Tensor::empty(DType::Bool, shape);
    if (size) std::memcpy(t.raw(), data, size);
    const uint8_t* b = static_cast<const uint8_t*>(t.raw());
    for (size_t i = 0; i < size; ++i)
      if (b[i] > 1)
        bad(mv, spec.name, "BOOL input '" + spec.name + "' element " + std::to_string(i) + " has byte value " +
                               std::to_string(b[i]) + " (must be 0 or 1)");
    return t;
  }
  if (reinterpret_cast<uintptr_t>(data) % esz == 0) return Tensor::view(spec.dtype, shape, data);
  Tensor t = Tensor::empty(spec.dtype, shape);
  if (size) std::memcpy(t.raw(), data, size);
  return t;
}

Tensor tensor_from_shm(const ModelVersion& mv, const IOSpec& spec, std::span<const int64_t> shape,
                       const std::shared_ptr<const ShmRegion>& region, uint64_t offset, uint64_t size) {
  if (const uint8_t* p = region->host(offset, size, spec.name)) {
    Tensor t = tensor_from_raw(mv, spec, shape, p, size);
    return t.is_view() ? Tensor::view(t.dtype(), t.dims(), t.raw(), region) : t;  // keeps the region mapped
  }
  // Device memory: copied out once, into the tensor itself where the bytes are the values.
  region->check(offset, size, spec.name);
  if (spec.dtype != DType::String && spec.dtype != DType::Bool) {
    check_fixed_size(mv, spec, shape, checked_numel(mv, spec.name, shape), size);
    Tensor t = Tensor::empty(spec.dtype, shape);
    region->read(offset, t.raw(), size, spec.name);
    return t;
  }
  std::vector<uint8_t> bytes(size);
  region->read(offset, bytes.data(), size, spec.name);
  return tensor_from_raw(mv, spec, shape, bytes.data(), size);  // BYTES and BOOL are always copied
}

void check_all_inputs(const ModelVersion& mv, const std::vector<Tensor>& inputs) {
  for (size_t i = 0; i < mv.inputs.size(); ++i)
    if (!inputs[i].defined())
      bad(mv, mv.inputs[i].name, "expected " + std::to_string(mv.inputs.size()) + " inputs for model '" + mv.name +
                                     "' but input '" + mv.inputs[i].name + "' is missing");
}

std::vector<int64_t> response_shape(const Tensor& t) { return t.dims(); }

// ---------------------------------------------------------------- classification extension
namespace {
uint32_t check_class_count(const ModelVersion& mv, const IOSpec& s, uint64_t n) {
  if (s.dtype == DType::String || s.dtype == DType::Bool)
    bad(mv, s.name, "classification is not available for output '" + s.name + "' of type " +
                        std::string(dtype_kserve_name(s.dtype)));
  return static_cast<uint32_t>(n);  // 0: the raw output, as when the parameter is absent
}

// Values as the model's type prints them (integers exactly, floats with six decimals).
template <class T>
void top_classes(const T* v, size_t n, uint32_t count, const std::vector<std::string>* labels, std::string* out,
                 std::vector<size_t>& order) {
  order.resize(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  const size_t k = std::min<size_t>(n, count);
  // Highest first, equal values by lower index, NaN after every number.
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), [v](size_t a, size_t b) {
    if constexpr (std::is_floating_point_v<T>) {
      const bool na = std::isnan(v[a]), nb = std::isnan(v[b]);
      if (na != nb) return nb;
      if (na) return a < b;
    }
    if (v[a] != v[b]) return v[a] > v[b];
    return a < b;
  });
  for (size_t j = 0; j < k; ++j) {
    const size_t i = order[j];
    if constexpr (std::is_floating_point_v<T>) out[j] = std::to_string(v[i]);
    else out[j] = std::to_string(static_cast<std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>(v[i]));
    out[j].append(":").append(std::to_string(i));
    if (labels && i < labels->size()) out[j].append(":").append((*labels)[i]);
  }
}
}  // namespace

Tensor classify(const ModelVersion& mv, const IOSpec& s, const Tensor& t, uint32_t count) {
  const int64_t rows = mv.max_batch > 0 && t.rank() > 0 ? t.dim(0) : 1;
  const size_t per = rows > 0 ? static_cast<size_t>(t.numel() / rows) : 0;
  const int64_t k = static_cast<int64_t>(std::min<size_t>(per, count));
  std::vector<int64_t> dims = mv.max_batch > 0 ? std::vector<int64_t>{rows, k} : std::vector<int64_t>{k};
  Tensor out = Tensor::empty(DType::String, dims);
  const std::vector<std::string>* labels = s.labels.get();
  std::vector<size_t> order;
  std::vector<float> widened;  // FP16 / BF16 rank as float
  for (int64_t r = 0; r < rows; ++r) {
    std::string* dst = out.data<std::string>() + r * k;
    const size_t off = static_cast<size_t>(r) * per;
    switch (t.dtype()) {
      case DType::I8: top_classes(t.data<int8_t>() + off, per, count, labels, dst, order); break;
      case DType::I16: top_classes(t.data<int16_t>() + off, per, count, labels, dst, order); break;
      case DType::I32: top_classes(t.data<int32_t>() + off, per, count, labels, dst, order); break;
      case DType::I64: top_classes(t.data<int64_t>() + off, per, count, labels, dst, order); break;
      case DType::U8: top_classes(t.data<uint8_t>() + off, per, count, labels, dst, order); break;
      case DType::U16: top_classes(t.data<uint16_t>() + off, per, count, labels, dst, order); break;
      case DType::U32: top_classes(t.data<uint32_t>() + off, per, count, labels, dst, order); break;
      case DType::U64: top_classes(t.data<uint64_t>() + off, per, count, labels, dst, order); break;
      case DType::F32: top_classes(t.data<float>() + off, per, count, labels, dst, order); break;
      case DType::F64: top_classes(t.data<double>() + off, per, count, labels, dst, order); break;
      case DType::F16:
      case DType::BF16:
        widened.resize(per);
        for (size_t i = 0; i < per; ++i) {
          const uint16_t h = t.data<uint16_t>()[off + i];
          widened[i] = t.dtype() == DType::F16 ? Half::to_float(h) : BFloat16::to_float(h);
        }
        top_classes(widened.data(), per, count, labels, dst, order);
        break;
      default:
        bad(mv, s.name, "classification is not available for output '" + s.name + "' of type " +
                            std::string(dtype_kserve_name(t.dtype())));
    }
  }
  return out;
}

// ---------------------------------------------------------------- gRPC
namespace {
using kserve::param_u64;

template <class Map>
void read_shm_params(const ModelVersion& mv, std::string_view tensor, const Map& params, const ShmManager& shm,
                     std::shared_ptr<const ShmRegion>& region, uint64_t& offset, uint64_t& size, bool& present) {
  present = false;
  auto it = params.find(kserve::kShmRegion);
  if (it == params.end()) return;
  present = true;
  if (it->second.parameter_choice_case() != inference::InferParameter::kStringParam)
    bad(mv, tensor, "shared_memory_region of '" + std::string(tensor) + "' must be a string");
  auto bs = params.find(kserve::kShmByteSize);
  if (bs == params.end() || !param_u64(bs->second, size))
    bad(mv, tensor, "'" + std::string(tensor) + "' names a shared memory region but no valid shared_memory_byte_size");
  offset = 0;
  auto off = params.find(kserve::kShmOffset);
  if (off != params.end() && !param_u64(off->second, offset))
    bad(mv, tensor, "shared_memory_offset of '" + std::string(tensor) + "' must be a non-negative integer");
  try {
    region = shm.get(it->second.string_param());
    region->check(offset, size, std::string(tensor));
  } catch (const Error& e) {
    throw e.with_context({mv.name, "", std::string(tensor)});
  }
}

Tensor from_contents(const ModelVersion& mv, const IOSpec& s, std::span<const int64_t> shape,
                     const inference::InferTensorContents& c) {
  return kserve::tensor_from_contents(s.dtype, shape, c, ErrorCode::InvalidArgument, {mv.name, "", s.name}, "input");
}
}  // namespace

void decode_grpc_request(const inference::ModelInferRequest& msg, const ModelVersion& mv, const ShmManager& shm,
                         InferRequest& req, std::vector<OutputTarget>& outputs) {
  req.inputs.assign(mv.inputs.size(), Tensor());
  const int nraw = msg.raw_input_contents_size();
  if (nraw > msg.inputs_size())
    bad(mv, "", "request has " + std::to_string(nraw) + " raw_input_contents entries but only " +
                    std::to_string(msg.inputs_size()) + " inputs");
  int64_t batch = -1;
  for (int i = 0; i < msg.inputs_size(); ++i) {
    const auto& in = msg.inputs(i);
    std::span<const int64_t> shape(in.shape().data(), static_cast<size_t>(in.shape_size()));
    size_t idx = check_input_header(mv, in.name(), in.datatype(), shape, batch);
    const IOSpec& spec = mv.inputs[idx];
    Tensor& dst = req.inputs[spec.model_index];
    if (dst.defined()) bad(mv, in.name(), "input '" + in.name() + "' is given more than once");
    std::shared_ptr<const ShmRegion> region;
    uint64_t off = 0, size = 0;
    bool use_shm = false;
    read_shm_params(mv, in.name(), in.parameters(), shm, region, off, size, use_shm);
    if (use_shm) {
      if (in.has_contents() || (i < nraw && !msg.raw_input_contents(i).empty()))
        bad(mv, in.name(), "input '" + in.name() + "' has both shared memory and inline data");
      dst = tensor_from_shm(mv, spec, shape, region, off, size);
    } else if (in.has_contents()) {
      if (nraw > 0)
        bad(mv, in.name(), "contents field must not be specified for input '" + in.name() +
                               "' when using raw_input_contents");
      dst = from_contents(mv, spec, shape, in.contents());
    } else if (i < nraw) {
      const std::string& raw = msg.raw_input_contents(i);
      dst = tensor_from_raw(mv, spec, shape, raw.data(), raw.size());
    } else {
      bad(mv, in.name(), "input '" + in.name() + "' has no data (no raw_input_contents, contents or shared memory)");
    }
  }
  check_all_inputs(mv, req.inputs);
  req.batch = mv.max_batch > 0 ? batch : 1;
  // Request parameters: priority (uint64), timeout (int64, microseconds).
  for (const auto& [k, v] : msg.parameters()) {
    if (k == "priority") {
      if (!param_u64(v, req.priority)) bad(mv, "", "parameter 'priority' must be a non-negative integer");
    } else if (k == "timeout") {
      if (!param_u64(v, req.timeout_us)) bad(mv, "", "parameter 'timeout' must be a non-negative integer");
    } else if (k == "sequence_id" || k == "sequence_start" || k == "sequence_end") {
      bool set = (v.parameter_choice_case() == inference::InferParameter::kBoolParam && v.bool_param()) ||
                 (v.parameter_choice_case() == inference::InferParameter::kInt64Param && v.int64_param() != 0) ||
                 (v.parameter_choice_case() == inference::InferParameter::kUint64Param && v.uint64_param() != 0) ||
                 (v.parameter_choice_case() == inference::InferParameter::kStringParam && !v.string_param().empty());
      if (set)
        throw Error(ErrorCode::Unsupported, "sequence batching is not supported (parameter '" + k + "')", {mv.name});
    }
  }
  outputs.clear();
  if (msg.outputs_size() == 0) {
    for (size_t o = 0; o < mv.outputs.size(); ++o) outputs.push_back({o});
  } else {
    for (const auto& out : msg.outputs()) {
      size_t idx = mv.outputs.size();
      for (size_t o = 0; o < mv.outputs.size(); ++o)
        if (mv.outputs[o].name == out.name()) idx = o;
      if (idx == mv.outputs.size())
        bad(mv, out.name(), "unexpected inference output '" + out.name() + "' for model '" + mv.name + "'");
      OutputTarget t;
      t.index = idx;
      if (auto c = out.parameters().find("classification"); c != out.parameters().end()) {
        uint64_t n = 0;
        if (!param_u64(c->second, n) || n > UINT32_MAX)
          bad(mv, out.name(), "parameter 'classification' of output '" + out.name() + "' must be a class count");
        t.class_count = check_class_count(mv, mv.outputs[idx], n);
      }
      bool use_shm = false;
      read_shm_params(mv, out.name(), out.parameters(), shm, t.shm, t.shm_offset, t.shm_size, use_shm);
      outputs.push_back(std::move(t));
    }
  }
}

static void write_to_shm(const ModelVersion& mv, const OutputTarget& tg, const IOSpec& s, const Tensor& t) {
  size_t n = kserve::wire_size(t);
  if (n > tg.shm_size)
    throw Error(ErrorCode::InvalidArgument,
                "shared memory size " + std::to_string(tg.shm_size) + " for output '" + s.name +
                    "' is too small for the " + std::to_string(n) + "-byte result",
                {mv.name, "", s.name});
  if (uint8_t* p = tg.shm->host(tg.shm_offset, n, s.name)) {
    kserve::write_wire(t, p);
    return;
  }
  if (t.dtype() != DType::String) {  // device memory: the values are the wire bytes
    tg.shm->write(tg.shm_offset, t.raw(), n, s.name);
    return;
  }
  std::vector<uint8_t> bytes(n);  // BYTES: serialised on the host, then one copy over
  kserve::write_wire(t, bytes.data());
  tg.shm->write(tg.shm_offset, bytes.data(), n, s.name);
}

void encode_grpc_response(const ModelVersion& mv, const std::vector<OutputTarget>& targets,
                          std::span<const Tensor> outputs, inference::ModelInferResponse& resp) {
  resp.set_model_name(mv.name);
  resp.set_model_version(mv.version_str);
  for (const auto& tg : targets) {
    const IOSpec& s = mv.outputs[tg.index];
    if (s.model_index >= outputs.size())
      throw Error(ErrorCode::Internal, "model produced no output", {mv.name, "", s.name});
    Tensor classes;
    if (tg.class_count) classes = classify(mv, s, outputs[s.model_index], tg.class_count);
    const Tensor& t = tg.class_count ? classes : outputs[s.model_index];
    auto* o = resp.add_outputs();
    o->set_name(s.name);
    o->set_datatype(std::string(dtype_kserve_name(t.dtype())));
    for (int64_t d : t.dims()) o->add_shape(d);
    // Exactly one raw_output_contents entry per output, even when the data went to shared memory.
    std::string* raw = resp.add_raw_output_contents();
    if (tg.shm) {
      write_to_shm(mv, tg, s, t);
      auto& params = *o->mutable_parameters();
      params[kserve::kShmRegion].set_string_param(tg.shm->name());
      params[kserve::kShmByteSize].set_int64_param(static_cast<int64_t>(kserve::wire_size(t)));
      if (tg.shm_offset) params[kserve::kShmOffset].set_int64_param(static_cast<int64_t>(tg.shm_offset));
      continue;
    }
    size_t n = kserve::wire_size(t);
    raw->resize(n);
    kserve::write_wire(t, reinterpret_cast<uint8_t*>(raw->data()));
  }
}

// ---------------------------------------------------------------- HTTP / JSON
namespace {
Tensor tensor_from_json(const ModelVersion& mv, const IOSpec& s, std::span<const int64_t> shape, const json& data) {
  if (s.dtype == DType::F16 || s.dtype == DType::BF16)
    bad(mv, s.name, "input '" + s.name + "' of type " + std::string(dtype_kserve_name(s.dtype)) +
                        " must use the binary tensor data extension");
  return kserve::tensor_from_json(s.dtype, shape, data, ErrorCode::InvalidArgument, {mv.name, "", s.name}, "input");
}

using kserve::json_u64;

void json_shm(const ModelVersion& mv, const std::string& tensor, const json& params, const ShmManager& shm,
              std::shared_ptr<const ShmRegion>& region, uint64_t& offset, uint64_t& size, bool& present) {
  present = false;
  if (!params.is_object() || !params.contains(kserve::kShmRegion)) return;
  present = true;
  const json& r = params[kserve::kShmRegion];
  if (!r.is_string()) bad(mv, tensor, "shared_memory_region of '" + tensor + "' must be a string");
  if (!params.contains(kserve::kShmByteSize) || !json_u64(params[kserve::kShmByteSize], size))
    bad(mv, tensor, "'" + tensor + "' names a shared memory region but no valid shared_memory_byte_size");
  offset = 0;
  if (params.contains(kserve::kShmOffset) && !json_u64(params[kserve::kShmOffset], offset))
    bad(mv, tensor, "shared_memory_offset of '" + tensor + "' must be a non-negative integer");
  try {
    region = shm.get(r.get<std::string>());
    region->check(offset, size, tensor);
  } catch (const Error& e) {
    throw e.with_context({mv.name, "", tensor});
  }
}
}  // namespace

void decode_http_request(std::string_view body, int64_t header_len, const ModelVersion& mv, const ShmManager& shm,
                         InferRequest& req, HttpInferRequest& info) {
  if (header_len > static_cast<int64_t>(body.size()) || header_len == 0)
    bad(mv, "", "Inference-Header-Content-Length " + std::to_string(header_len) + " is not within the body size " +
                    std::to_string(body.size()));
  std::string_view head = header_len < 0 ? body : body.substr(0, static_cast<size_t>(header_len));
  std::string_view binary = header_len < 0 ? std::string_view() : body.substr(static_cast<size_t>(header_len));
  json j;
  try {
    j = json::parse(head);
  } catch (const json::exception& e) {
    bad(mv, "", std::string("malformed JSON inference request: ") + e.what());
  }
  if (!j.is_object()) bad(mv, "", "inference request must be a JSON object");
  if (j.contains("id")) {
    if (!j["id"].is_string()) bad(mv, "", "'id' must be a string");
    info.id = j["id"].get<std::string>();
  }
  bool binary_out_default = false;
  if (j.contains("parameters")) {
    const json& p = j["parameters"];
    if (!p.is_object()) bad(mv, "", "'parameters' must be an object");
    for (auto it = p.begin(); it != p.end(); ++it) {
      if (it.key() == "priority") {
        if (!json_u64(it.value(), req.priority)) bad(mv, "", "parameter 'priority' must be a non-negative integer");
      } else if (it.key() == "timeout") {
        if (!json_u64(it.value(), req.timeout_us)) bad(mv, "", "parameter 'timeout' must be a non-negative integer");
      } else if (it.key() == "binary_data_output") {
        if (!it.value().is_boolean()) bad(mv, "", "parameter 'binary_data_output' must be a boolean");
        binary_out_default = it.value().get<bool>();
      } else if ((it.key() == "sequence_id" || it.key() == "sequence_start") && !it.value().is_null() &&
                 it.value() != 0 && it.value() != false && it.value() != "") {
        throw Error(ErrorCode::Unsupported, "sequence batching is not supported", {mv.name});
      }
    }
  }
  if (!j.contains("inputs") || !j["inputs"].is_array()) bad(mv, "", "inference request has no 'inputs' array");
  req.inputs.assign(mv.inputs.size(), Tensor());
  int64_t batch = -1;
  size_t bin_pos = 0;
  for (const json& in : j["inputs"]) {
    if (!in.is_object() || !in.contains("name") || !in["name"].is_string())
      bad(mv, "", "every input needs a string 'name'");
    std::string name = in["name"].get<std::string>();
    if (!in.contains("datatype") || !in["datatype"].is_string())
      bad(mv, name, "input '" + name + "' needs a string 'datatype'");
    if (!in.contains("shape") || !in["shape"].is_array()) bad(mv, name, "input '" + name + "' needs a 'shape' array");
    std::vector<int64_t> shape;
    for (const json& d : in["shape"]) {
      if (!d.is_number_integer()) bad(mv, name, "shape of input '" + name + "' must hold integers");
      shape.push_back(d.get<int64_t>());
    }
    size_t idx = check_input_header(mv, name, in["datatype"].get<std::string>(), shape, batch);
    const IOSpec& spec = mv.inputs[idx];
    Tensor& dst = req.inputs[spec.model_index];
    if (dst.defined()) bad(mv, name, "input '" + name + "' is given more than once");
    const json params = in.contains("parameters") ? in["parameters"] : json::object();
    std::shared_ptr<const ShmRegion> region;
    uint64_t off = 0, size = 0;
    bool use_shm = false;
    json_shm(mv, name, params, shm, region, off, size, use_shm);
    uint64_t bsize = 0;
    bool has_bin = params.is_object() && params.contains("binary_data_size");
    if (has_bin && !json_u64(params["binary_data_size"], bsize))
      bad(mv, name, "binary_data_size of input '" + name + "' must be a non-negative integer");
    if ((use_shm ? 1 : 0) + (has_bin ? 1 : 0) + (in.contains("data") ? 1 : 0) != 1)
      bad(mv, name, "input '" + name + "' must have exactly one of 'data', binary_data_size or shared memory");
    if (use_shm) {
      dst = tensor_from_shm(mv, spec, shape, region, off, size);
    } else if (has_bin) {
      if (bsize > binary.size() - bin_pos)
        bad(mv, name, "binary_data_size " + std::to_string(bsize) + " of input '" + name +
                          "' runs past the end of the request body");
      dst = tensor_from_raw(mv, spec, shape, binary.data() + bin_pos, bsize);
      bin_pos += bsize;
    } else {
      dst = tensor_from_json(mv, spec, shape, in["data"]);
    }
  }
  if (bin_pos != binary.size())
    bad(mv, "", "request body has " + std::to_string(binary.size() - bin_pos) + " bytes of binary data that no input claims");
  check_all_inputs(mv, req.inputs);
  req.batch = mv.max_batch > 0 ? batch : 1;
  info.outputs.clear();
  if (j.contains("outputs")) {
    if (!j["outputs"].is_array()) bad(mv, "", "'outputs' must be an array");
    for (const json& out : j["outputs"]) {
      if (!out.is_object() || !out.contains("name") || !out["name"].is_string())
        bad(mv, "", "every requested output needs a string 'name'");
      std::string name = out["name"].get<std::string>();
      size_t idx = mv.outputs.size();
      for (size_t o = 0; o < mv.outputs.size(); ++o)
        if (mv.outputs[o].name == name) idx = o;
      if (idx == mv.outputs.size())
        bad(mv, name, "unexpected inference output '" + name + "' for model '" + mv.name + "'");
      OutputTarget t;
      t.index = idx;
      t.binary = binary_out_default;
      const json params = out.contains("parameters") ? out["parameters"] : json::object();
      if (params.is_object() && params.contains("binary_data")) {
        if (!params["binary_data"].is_boolean()) bad(mv, name, "binary_data of output '" + name + "' must be a boolean");
        t.binary = params["binary_data"].get<bool>();
      }
      if (params.is_object() && params.contains("classification")) {
        const json& c = params["classification"];
        if (!c.is_number_integer() || (c.is_number_integer() && !c.is_number_unsigned() && c.get<int64_t>() < 0) ||
            c.get<uint64_t>() > UINT32_MAX)
          bad(mv, name, "parameter 'classification' of output '" + name + "' must be a class count");
        t.class_count = check_class_count(mv, mv.outputs[idx], c.get<uint64_t>());
      }
      bool use_shm = false;
      json_shm(mv, name, params, shm, t.shm, t.shm_offset, t.shm_size, use_shm);
      info.outputs.push_back(std::move(t));
    }
  }
  if (info.outputs.empty()) {
    for (size_t o = 0; o < mv.outputs.size(); ++o) {
      OutputTarget t;
      t.index = o;
      t.binary = binary_out_default;
      info.outputs.push_back(t);
    }
  }
}

std::string encode_http_response(const ModelVersion& mv, const HttpInferRequest& info, std::span<const Tensor> outputs,
                                 int64_t& header_len) {
  json j;
  j["model_name"] = mv.name;
  j["model_version"] = mv.version_str;
  if (!info.id.empty()) j["id"] = info.id;
  json outs = json::array();
  std::vector<const Tensor*> binaries;
  // Classification results, alive until the binary section is written; reserved on first use so
  // that `binaries` may point into it and plain responses allocate nothing for it.
  std::vector<Tensor> classes;
  for (const auto& tg : info.outputs) {
    const IOSpec& s = mv.outputs[tg.index];
    if (s.model_index >= outputs.size())
      throw Error(ErrorCode::Internal, "model produced no output", {mv.name, "", s.name});
    if (tg.class_count) {
      if (classes.empty()) classes.reserve(info.outputs.size());
      classes.push_back(classify(mv, s, outputs[s.model_index], tg.class_count));
    }
    const Tensor& t = tg.class_count ? classes.back() : outputs[s.model_index];
    json o;
    o["name"] = s.name;
    o["datatype"] = std::string(dtype_kserve_name(t.dtype()));
    o["shape"] = t.dims();
    if (tg.shm) {
      // Name, datatype and shape only, as Triton answers: its C++ HTTP client takes any output
      // `parameters` for the binary-data extension and looks for binary_data_size there.
      write_to_shm(mv, tg, s, t);
    } else if (tg.binary) {
      o["parameters"] = {{"binary_data_size", kserve::wire_size(t)}};
      binaries.push_back(&t);
    } else {
      o["data"] = kserve::tensor_to_json(t, {mv.name, "", s.name});
    }
    outs.push_back(std::move(o));
  }
  j["outputs"] = std::move(outs);
  std::string body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (binaries.empty()) {
    header_len = -1;
    return body;
  }
  header_len = static_cast<int64_t>(body.size());
  size_t total = body.size();
  for (const Tensor* t : binaries) total += kserve::wire_size(*t);
  size_t pos = body.size();
  body.resize(total);
  for (const Tensor* t : binaries) {
    kserve::write_wire(*t, reinterpret_cast<uint8_t*>(body.data()) + pos);
    pos += kserve::wire_size(*t);
  }
  return body;
}

}  // namespace quiver::serve
