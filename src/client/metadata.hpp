// Model metadata as the client knows it: read from a server's ModelMetadata + ModelConfig answers
// (gRPC, or HTTP JSON parsed into the same messages), and cached per model[:version].
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "grpc_service.pb.h"
#include "quiver/client/client.hpp"

namespace quiver::client {

// The metadata a server gave (info.backend "remote", info.max_batch from the config, info.sha256
// from the config's checksum parameter). Throws Unsupported naming the tensor of an unknown dtype.
ModelMeta meta_from_server(const inference::ModelMetadataResponse& m, const inference::ModelConfig* config,
                           const std::string& version);

}  // namespace quiver::client
