// libFuzzer target: untrusted request bytes through the server's decoding and validation, the
// way the gRPC and HTTP front ends feed them. Any input must either decode into tensors that
// match the model, or throw quiver::Error; nothing may crash, hang or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "quiver/serve/codec.hpp"

using namespace quiver;
using namespace quiver::serve;

namespace {
std::shared_ptr<ModelVersion> make_version(const char* cfg_text) {
  auto c = parse_model_config(cfg_text, "fuzz");
  c.set_name("m");
  auto mv = std::make_shared<ModelVersion>();
  mv->name = "m";
  mv->version_str = "1";
  mv->model = make_identity_model(c, "1");
  complete_config(c, mv->model->info());
  mv->max_batch = c.max_batch_size();
  size_t i = 0;
  for (const auto& in : c.input())
    mv->inputs.push_back({in.name(), *config_dtype(in.data_type()), {in.dims().begin(), in.dims().end()}, i++});
  i = 0;
  for (const auto& o : c.output())
    mv->outputs.push_back({o.name(), *config_dtype(o.data_type()), {o.dims().begin(), o.dims().end()}, i++});
  mv->config = std::make_shared<inference::ModelConfig>(c);
  return mv;
}

const ModelVersion& batched() {
  static auto mv = make_version(R"(backend: "identity" max_batch_size: 8
input [ { name: "F" data_type: TYPE_FP32 dims: [ -1, 3 ] }, { name: "S" data_type: TYPE_STRING dims: [ 2 ] },
        { name: "H" data_type: TYPE_FP16 dims: [ 1 ] } ]
output [ { name: "F_OUT" data_type: TYPE_FP32 dims: [ -1, 3 ] }, { name: "S_OUT" data_type: TYPE_STRING dims: [ 2 ] },
         { name: "H_OUT" data_type: TYPE_FP16 dims: [ 1 ] } ])");
  return *mv;
}

const ModelVersion& plain() {
  static auto mv = make_version(R"(backend: "identity" max_batch_size: 0
input [ { name: "I" data_type: TYPE_INT64 dims: [ 2 ] }, { name: "B" data_type: TYPE_BOOL dims: [ -1 ] } ]
output [ { name: "I_OUT" data_type: TYPE_INT64 dims: [ 2 ] }, { name: "B_OUT" data_type: TYPE_BOOL dims: [ -1 ] } ])");
  return *mv;
}

void exercise(const ModelVersion& mv, InferRequest& req, const std::vector<OutputTarget>& targets) {
  // Decoded inputs must satisfy the model; run the identity model and encode the results.
  std::vector<Tensor> outs = mv.model->run_once(req.inputs);
  inference::ModelInferResponse resp;
  std::vector<OutputTarget> t = targets;
  for (auto& x : t) x.shm.reset();
  encode_grpc_response(mv, t, outs, resp);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ShmManager shm;
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);  // invalid UTF-8 in string fields is logged otherwise
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  const ModelVersion& mv = (selector & 1) ? batched() : plain();
  try {
    if (selector & 2) {
      inference::ModelInferRequest msg;
      if (!msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return 0;
      InferRequest req;
      std::vector<OutputTarget> targets;
      decode_grpc_request(msg, mv, shm, req, targets);
      exercise(mv, req, targets);
    } else {
      // HTTP: optional binary section; the header length comes from the next two bytes.
      int64_t header_len = -1;
      if ((selector & 4) && bytes.size() >= 2) {
        header_len = (static_cast<uint8_t>(bytes[0]) | static_cast<uint8_t>(bytes[1]) << 8);
        bytes.remove_prefix(2);
      }
      InferRequest req;
      HttpInferRequest info;
      decode_http_request(bytes, header_len, mv, shm, req, info);
      std::vector<Tensor> outs = mv.model->run_once(req.inputs);
      for (auto& o : info.outputs) o.shm.reset();
      int64_t hl = 0;
      (void)encode_http_response(mv, info, outs, hl);
    }
  } catch (const Error&) {
  }
  return 0;
}
