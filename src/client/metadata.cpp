#include "client/metadata.hpp"

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

}  // namespace quiver::client
