// Conversions between quiver tensors/metadata and the KServe v2 protobuf messages (client side).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "grpc_service.pb.h"
#include "quiver/client/client.hpp"

namespace quiver::client::wire {

// Builds a ModelInferRequest with raw contents (one copy of each tensor's bytes; BYTES as
// 4-byte little-endian length + bytes). Sets "priority" and "timeout" (µs) parameters when given.
std::shared_ptr<inference::ModelInferRequest> encode_request(const std::string& model,
                                                             const std::vector<NamedTensor>& inputs,
                                                             const InferOptions& o, int64_t timeout_ns);
// Outputs of a response: zero-copy views into raw_output_contents (the response is kept alive by
// the tensors), or copies from typed contents.
std::vector<NamedTensor> decode_outputs(const std::shared_ptr<inference::ModelInferResponse>& resp);
// Inputs of a request (for the local fallback): views into the request message.
std::vector<NamedTensor> decode_inputs(const std::shared_ptr<inference::ModelInferRequest>& req);
ModelMeta meta_from_server(const inference::ModelMetadataResponse& m, const inference::ModelConfig* config,
                           const std::string& version);

}  // namespace quiver::client::wire
