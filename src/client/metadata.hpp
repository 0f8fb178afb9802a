// Model metadata as the client knows it: read from a server's ModelMetadata + ModelConfig answers
// (gRPC, or HTTP JSON parsed into the same messages), or from the local fallback models, and
// cached per model[:version].
#pragma once
#include <functional>
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

class ServerSet;

class MetadataCache {
 public:
  // `fallback` (may be null) answers for models no server knows; `background` runs prefetches.
  MetadataCache(const ClientOptions& opt, ServerSet& servers, std::shared_ptr<const Fallback> fallback,
                Fallback::Executor background);
  // Fetched once (synchronous RPCs, 5 s deadline per server) and cached; throws NotFound naming
  // the model when no server and no fallback knows it.
  std::shared_ptr<const ModelMeta> get(const std::string& model, const std::string& version);
  // The cached entry, or null; on a miss one background fetch starts (never blocks).
  std::shared_ptr<const ModelMeta> cached_or_prefetch(const std::string& model, const std::string& version);
  // The model file's sha256 from a cached entry of what a server answered (model and version as
  // answered; `requested_key` when that is not cached). Empty when unknown.
  std::string sha256_of(const std::string& model, const std::string& version, const std::string& requested_key) const;

 private:
  const ClientOptions& opt_;
  ServerSet& servers_;
  std::shared_ptr<const Fallback> fallback_;
  Fallback::Executor background_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const ModelMeta>> meta_;
  std::set<std::string> pending_;  // background fetches under way
};

}  // namespace quiver::client
