#include "client/metadata.hpp"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>

#include "client/server_set.hpp"
#include "kserve/tensors.hpp"

namespace quiver::client {

ModelMeta meta_from_server(const inference::ModelMetadataResponse& m, const inference::ModelConfig* config,
                           const std::string& version) {
  ModelMeta meta;
  meta.platform = m.platform();
  ModelInfo& info = meta.info;
  info.name = m.name();
  info.backend = "remote";
  info.format = m.platform();
  info.version = !version.empty() ? version : (m.versions_size() ? m.versions(m.versions_size() - 1) : "");
  info.max_batch = config ? config->max_batch_size() : 0;
  if (config) info.sha256 = kserve::checksum_of(config->parameters());
  auto conv = [&](const inference::ModelMetadataResponse::TensorMetadata& t) {
    TensorInfo ti;
    ti.name = t.name();
    auto dt = dtype_from_kserve(t.datatype());
    if (!dt)
      throw Error(ErrorCode::Unsupported, "unknown datatype '" + t.datatype() + "' in metadata",
                  {.model = m.name(), .tensor = t.name()});
    ti.dtype = *dt;
    for (int i = 0; i < t.shape_size(); ++i) {
      int64_t d = t.shape(i);
      if (d >= 0) ti.shape.push_back(Dim(d));
      else ti.shape.push_back(i == 0 && info.max_batch > 0 ? Dim::sym("batch") : Dim());
    }
    return ti;
  };
  for (auto& t : m.inputs()) info.inputs.push_back(conv(t));
  for (auto& t : m.outputs()) info.outputs.push_back(conv(t));
  return meta;
}

namespace {
std::string key_of(const std::string& model, const std::string& version) {
  return version.empty() ? model : model + ":" + version;
}
}  // namespace

MetadataCache::MetadataCache(const ClientOptions& opt, ServerSet& servers, std::shared_ptr<const Fallback> fallback,
                             Fallback::Executor background)
    : opt_(opt), servers_(servers), fallback_(std::move(fallback)), background_(std::move(background)) {}

std::shared_ptr<const ModelMeta> MetadataCache::get(const std::string& model, const std::string& version) {
  const std::string key = key_of(model, version);
  {
    std::lock_guard lk(mu_);
    if (auto it = meta_.find(key); it != meta_.end()) return it->second;
  }
  std::string errors;
  std::shared_ptr<ModelMeta> m;
  if (opt_.fallback != FallbackMode::AlwaysLocal) {
    std::vector<const ServerState*> tried;
    for (int i = 0; i < std::max(1, opt_.retry.max_servers) && !m; ++i) {
      auto s = servers_.pick(key, tried);
      if (!s) break;
      tried.push_back(s.get());
      grpc::ClientContext c1, c2;
      const auto dl = std::chrono::system_clock::now() + std::chrono::seconds(5);
      c1.set_deadline(dl);
      c2.set_deadline(dl);
      ServerSet::authorize(*s, c1);
      ServerSet::authorize(*s, c2);
      inference::ModelMetadataRequest mreq;
      mreq.set_name(model);
      mreq.set_version(version);
      inference::ModelMetadataResponse mresp;
      auto& stub = ServerSet::stub(*s);
      grpc::Status st = stub.ModelMetadata(&c1, mreq, &mresp);
      if (!st.ok()) {
        errors += (errors.empty() ? "" : "; ") + s->address + " " + grpc_status_name(st.error_code()) + ": " +
                  st.error_message();
        if (st.error_code() == grpc::StatusCode::NOT_FOUND) s->mark_missing(key);
        continue;
      }
      inference::ModelConfigRequest creq;
      creq.set_name(model);
      creq.set_version(version);
      inference::ModelConfigResponse cresp;
      grpc::Status cst = stub.ModelConfig(&c2, creq, &cresp);
      try {
        m = std::make_shared<ModelMeta>(meta_from_server(mresp, cst.ok() ? &cresp.config() : nullptr, version));
        m->source = s->address;
      } catch (const Error& e) {
        errors += (errors.empty() ? "" : "; ") + s->address + ": " + e.message();
      }
    }
  }
  if (!m && fallback_ && fallback_->models().has(model)) {
    auto lm = fallback_->models().get(model, version);
    m = std::make_shared<ModelMeta>();
    m->info = lm->info();
    m->platform = lm->info().backend;
    m->source = fallback_->models().source();
  }
  if (!m)
    throw Error(ErrorCode::NotFound,
                "cannot get metadata of model '" + key + "'" +
                    (errors.empty() ? ": no serving server" + servers_.down_servers() : ": " + errors),
                {.model = model});
  std::lock_guard lk(mu_);
  auto [it, inserted] = meta_.emplace(key, m);
  return it->second;
}

std::shared_ptr<const ModelMeta> MetadataCache::cached_or_prefetch(const std::string& model,
                                                                   const std::string& version) {
  const std::string key = key_of(model, version);
  {
    std::lock_guard lk(mu_);
    if (auto it = meta_.find(key); it != meta_.end()) return it->second;
    if (!pending_.insert(key).second) return nullptr;  // a fetch is under way
  }
  background_([this, model, version, key] {
    try {
      get(model, version);
    } catch (const std::exception&) {  // the request path reports errors; here only a cache miss
    }
    std::lock_guard lk(mu_);
    pending_.erase(key);
  });
  return nullptr;
}

std::string MetadataCache::sha256_of(const std::string& model, const std::string& version,
                                     const std::string& requested_key) const {
  std::lock_guard lk(mu_);
  auto it = meta_.find(key_of(model, version));
  if (it == meta_.end()) it = meta_.find(requested_key);
  if (it != meta_.end() && (version.empty() || it->second->info.version == version)) return it->second->info.sha256;
  return {};
}

}  // namespace quiver::client
