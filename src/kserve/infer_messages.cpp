#include "kserve/infer_messages.hpp"

#include <cstring>

#include "kserve/tensors.hpp"
#include "quiver/core/shape.hpp"

namespace quiver::kserve {

namespace pb = inference;

namespace {

Tensor decode_tensor(const std::string& datatype, const google::protobuf::RepeatedField<int64_t>& shape,
                     const std::string* raw, const pb::InferTensorContents& contents,
                     const std::shared_ptr<const void>& keep, const ErrorWhere& where, std::string_view what) {
  auto dt = dtype_from_kserve(datatype);
  if (!dt) throw Error(ErrorCode::Unsupported, "unknown datatype '" + datatype + "'", where);
  std::vector<int64_t> dims(shape.begin(), shape.end());
  const int64_t n = checked_numel(dims, ErrorCode::Parse, where);
  if (!raw) return tensor_from_contents(*dt, dims, contents, ErrorCode::Parse, where, what);
  if (*dt == DType::String) return decode_bytes(dims, raw->data(), raw->size(), ErrorCode::Parse, where, what);
  const size_t need = static_cast<size_t>(n) * dtype_size(*dt);
  if (raw->size() != need)
    throw Error(ErrorCode::Parse,
                "raw contents have " + std::to_string(raw->size()) + " bytes, " + std::string(datatype) +
                    dims_to_string(dims) + " needs " + std::to_string(need),
                where);
  return Tensor::view(*dt, dims, static_cast<const void*>(raw->data()), keep);
}

}  // namespace

std::shared_ptr<pb::ModelInferRequest> encode_request(const std::string& model, const std::vector<NamedTensor>& inputs,
                                                      const InferOptions& o, int64_t timeout_ns, const ShmTarget* shm) {
  uint64_t shm_cursor = shm ? shm->offset : 0;
  auto msg = std::make_shared<pb::ModelInferRequest>();
  msg->set_model_name(model);
  if (!o.model_version.empty()) msg->set_model_version(o.model_version);
  msg->set_id(o.request_id);
  if (o.priority) (*msg->mutable_parameters())["priority"].set_uint64_param(o.priority);
  if (timeout_ns > 0) (*msg->mutable_parameters())["timeout"].set_int64_param(std::max<int64_t>(1, timeout_ns / 1000));
  if (inputs.empty()) throw Error(ErrorCode::InvalidArgument, "request has no inputs", {.model = model});
  for (const auto& in : inputs) {
    const Tensor& t = in.tensor;
    if (!t.defined()) throw Error(ErrorCode::InvalidArgument, "input tensor is undefined", {.model = model, .tensor = in.name});
    if (in.name.empty()) throw Error(ErrorCode::InvalidArgument, "input has no name", {.model = model});
    auto* pi = msg->add_inputs();
    pi->set_name(in.name);
    pi->set_datatype(std::string(dtype_kserve_name(t.dtype())));
    for (auto d : t.dims()) pi->add_shape(d);
    if (shm && shm->inputs) {  // the caller checked: no BYTES inputs, everything fits the slot
      std::memcpy(shm->base + shm_cursor, t.raw(), t.nbytes());
      auto& params = *pi->mutable_parameters();
      params[kShmRegion].set_string_param(shm->region);
      params[kShmByteSize].set_int64_param(static_cast<int64_t>(t.nbytes()));
      params[kShmOffset].set_int64_param(static_cast<int64_t>(shm_cursor));
      shm_cursor += (t.nbytes() + 63) / 64 * 64;
      continue;
    }
    assign_wire(t, *msg->add_raw_input_contents());
  }
  if (shm && !shm->outputs.empty()) {
    for (const auto& so : shm->outputs) {
      auto* po = msg->add_outputs();
      po->set_name(so.name);
      auto& params = *po->mutable_parameters();
      params[kShmRegion].set_string_param(shm->region);
      params[kShmByteSize].set_int64_param(static_cast<int64_t>(so.byte_size));
      params[kShmOffset].set_int64_param(static_cast<int64_t>(so.offset));
    }
  } else {
    for (const auto& name : o.outputs) msg->add_outputs()->set_name(name);
  }
  return msg;
}

namespace {
// An output the server wrote into shared memory: a view into the client's slot, after checking
// that the region, offset and size are the ones this client can vouch for.
Tensor shm_output(const pb::ModelInferResponse::InferOutputTensor& o, const ShmOutputs* shm, const ErrorWhere& where) {
  const auto& p = o.parameters();
  const auto& region = p.at(kShmRegion);
  if (!shm || region.string_param() != shm->region)
    throw Error(ErrorCode::Parse,
                "output was written to shared memory region '" + region.string_param() + "', which this request did not give",
                where);
  auto num = [&](const char* k) -> uint64_t {
    auto it = p.find(k);
    if (it == p.end()) return 0;
    if (it->second.has_int64_param() && it->second.int64_param() >= 0) return static_cast<uint64_t>(it->second.int64_param());
    if (it->second.has_uint64_param()) return it->second.uint64_param();
    throw Error(ErrorCode::Parse, std::string(k) + " of the output is not a non-negative integer", where);
  };
  const uint64_t off = num(kShmOffset), size = num(kShmByteSize);
  auto dt = dtype_from_kserve(o.datatype());
  if (!dt || *dt == DType::String)
    throw Error(ErrorCode::Unsupported, "datatype '" + o.datatype() + "' cannot be read from shared memory", where);
  std::vector<int64_t> dims(o.shape().begin(), o.shape().end());
  for (auto d : dims)
    if (d < 0) throw Error(ErrorCode::Parse, "negative dimension in shape " + dims_to_string(dims), where);
  const uint64_t need = static_cast<uint64_t>(numel(dims)) * dtype_size(*dt);
  if (size != need)
    throw Error(ErrorCode::Parse,
                "shared-memory output has " + std::to_string(size) + " bytes, " + o.datatype() + dims_to_string(dims) +
                    " needs " + std::to_string(need),
                where);
  if (off < shm->lo || off > shm->hi || size > shm->hi - off)
    throw Error(ErrorCode::Parse,
                "shared-memory output at offset " + std::to_string(off) + " + " + std::to_string(size) +
                    " bytes lies outside this request's slot [" + std::to_string(shm->lo) + ", " + std::to_string(shm->hi) + ")",
                where);
  return Tensor::view(*dt, dims, static_cast<const void*>(shm->base + off), shm->keep);
}
}  // namespace

std::vector<NamedTensor> decode_outputs(const std::shared_ptr<pb::ModelInferResponse>& resp, const ShmOutputs* shm) {
  std::vector<NamedTensor> out;
  out.reserve(resp->outputs_size());
  const bool raw = resp->raw_output_contents_size() > 0;
  if (raw && resp->raw_output_contents_size() != resp->outputs_size())
    throw Error(ErrorCode::Parse, "response has " + std::to_string(resp->outputs_size()) + " outputs but " +
                                      std::to_string(resp->raw_output_contents_size()) + " raw contents",
                {.model = resp->model_name()});
  std::shared_ptr<const void> keep = resp;
  for (int i = 0; i < resp->outputs_size(); ++i) {
    const auto& o = resp->outputs(i);
    ErrorWhere where{.model = resp->model_name(), .tensor = o.name()};
    if (o.parameters().count(kShmRegion)) {
      out.push_back({o.name(), shm_output(o, shm, where)});
      continue;
    }
    out.push_back({o.name(), decode_tensor(o.datatype(), o.shape(), raw ? &resp->raw_output_contents(i) : nullptr,
                                           o.contents(), keep, where, "output")});
  }
  return out;
}

std::vector<NamedTensor> decode_inputs(const std::shared_ptr<pb::ModelInferRequest>& req, const char* shm_base) {
  std::vector<NamedTensor> out;
  std::shared_ptr<const void> keep = req;
  const bool raw = req->raw_input_contents_size() > 0;
  for (int i = 0; i < req->inputs_size(); ++i) {
    const auto& in = req->inputs(i);
    ErrorWhere where{.model = req->model_name(), .tensor = in.name()};
    if (auto it = in.parameters().find(kShmOffset); shm_base && it != in.parameters().end()) {
      auto dt = dtype_from_kserve(in.datatype());
      if (!dt) throw Error(ErrorCode::Unsupported, "unknown datatype '" + in.datatype() + "'", where);
      std::vector<int64_t> dims(in.shape().begin(), in.shape().end());
      out.push_back({in.name(), Tensor::view(*dt, dims, static_cast<const void*>(shm_base + it->second.int64_param()), keep)});
      continue;
    }
    out.push_back({in.name(), decode_tensor(in.datatype(), in.shape(), raw ? &req->raw_input_contents(i) : nullptr,
                                            in.contents(), keep, where, "input")});
  }
  return out;
}

}  // namespace quiver::kserve
