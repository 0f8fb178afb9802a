// The client as a quiver::Model ("remote" backend).
#include <mutex>
#include <ostream>

#include <nlohmann/json.hpp>

#include "quiver/backends/backends.hpp"
#include "quiver/client/client.hpp"
#include "quiver/core/util.hpp"

namespace quiver::client {

RemoteModel::RemoteModel(std::shared_ptr<Client> client, std::string model, std::string version)
    : client_(std::move(client)), model_(std::move(model)), version_(std::move(version)) {
  meta_ = client_->model_metadata(model_, version_);
}

std::unique_ptr<RunState> RemoteModel::make_state() const { return std::make_unique<RunState>(); }

void RemoteModel::run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState&) const {
  const ModelInfo& mi = info();
  if (inputs.size() != mi.inputs.size())
    throw Error(ErrorCode::InvalidArgument,
                "expected " + std::to_string(mi.inputs.size()) + " inputs, got " + std::to_string(inputs.size()),
                {.model = model_});
  std::vector<NamedTensor> named;
  named.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) named.push_back({mi.inputs[i].name, inputs[i]});
  InferOptions o;
  o.model_version = version_;
  InferResult r = client_->infer(model_, std::move(named), o);
  r.throw_if_error();
  outputs.resize(mi.outputs.size());
  for (size_t i = 0; i < mi.outputs.size(); ++i) outputs[i] = r.output(mi.outputs[i].name);
}

void RemoteModel::describe(std::ostream& os) const {
  os << "remote model '" << model_ << "'" << (version_.empty() ? "" : " version " + version_) << " via "
     << meta_->source << " (platform " << meta_->platform << ", max batch " << meta_->info.max_batch << ")\n";
}

ServiceUrl parse_service_url(const std::string& url) {
  const std::string prefix = "grpc://";
  if (url.rfind(prefix, 0) != 0)
    throw Error(ErrorCode::InvalidArgument, "service URL must start with grpc:// ('" + url + "')");
  ServiceUrl u;
  std::string rest = url.substr(prefix.size());
  if (const size_t q = rest.find('?'); q != std::string::npos) {
    const std::string query = rest.substr(q + 1);
    rest.resize(q);
    for (size_t pos = 0; pos < query.size();) {
      size_t amp = query.find('&', pos);
      if (amp == std::string::npos) amp = query.size();
      const std::string kv = query.substr(pos, amp - pos);
      const size_t eq = kv.find('=');
      if (eq == 0 || eq == std::string::npos)
        throw Error(ErrorCode::InvalidArgument, "service URL parameter '" + kv + "' is not KEY=VALUE ('" + url + "')");
      u.params[kv.substr(0, eq)] = kv.substr(eq + 1);
      pos = amp + 1;
    }
  }
  const size_t slash = rest.find('/');
  const std::string hosts = rest.substr(0, slash);
  for (size_t pos = 0; pos <= hosts.size();) {
    const size_t comma = hosts.find(',', pos);
    std::string h = hosts.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (!h.empty()) u.endpoints.push_back(std::move(h));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (slash != std::string::npos) {
    const std::string mv = rest.substr(slash + 1);
    const size_t s2 = mv.find('/');
    u.model = mv.substr(0, s2);
    if (s2 != std::string::npos) u.version = mv.substr(s2 + 1);
  }
  return u;
}

namespace {

std::shared_ptr<const Model> load_remote_file(const std::string& path, const LoadOptions& lo) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::Parse, std::string("bad remote model file: ") + e.what(), {.file = path});
  }
  auto str = [&](const char* k) {
    auto it = lo.params.find(k);  // LoadOptions.params override the file
    if (it != lo.params.end()) return it->second;
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
  };
  std::string url = str("url");
  if (url.empty()) throw Error(ErrorCode::Parse, "remote model file has no \"url\"", {.file = path});
  std::map<std::string, std::string> params = lo.params;
  for (const char* k : {"fallback", "fallback_repository", "servers_file", "timeout_ms", "auth_token_file"})
    if (!params.count(k) && j.contains(k))
      params[k] = j[k].is_string() ? j[k].get<std::string>() : j[k].dump();
  try {
    return make_remote_model(url, params, lo.name, lo.version);
  } catch (const Error& e) {
    throw e.with_context({.file = path});
  }
}

}  // namespace

std::shared_ptr<const Model> make_remote_model(const std::string& url, const std::map<std::string, std::string>& params,
                                               const std::string& name, const std::string& version_override) {
  ServiceUrl u = parse_service_url(url);
  if (u.model.empty())
    throw Error(ErrorCode::InvalidArgument, "remote model URL must be grpc://HOST:PORT[,...]/MODEL[/VERSION] ('" + url + "')");
  (void)name;
  if (!version_override.empty()) u.version = version_override;
  ClientOptions co;
  co.discovery.endpoints = u.endpoints;
  for (const auto& [k, v] : u.params)
    if (k != "fallback" && k != "fallback_repository" && k != "servers_file" && k != "timeout_ms" &&
        k != "auth_token_file")
      throw Error(ErrorCode::InvalidArgument, "remote model URL: unknown parameter '" + k + "' ('" + url + "')");
  auto get = [&](const char* k) {
    auto it = params.find(k);
    if (it != params.end()) return it->second;
    auto ut = u.params.find(k);
    return ut == u.params.end() ? std::string() : ut->second;
  };
  co.fallback = fallback_mode_from_string(get("fallback"));
  co.fallback_repository = get("fallback_repository");
  co.discovery.servers_file = get("servers_file");
  co.auth_token_file = get("auth_token_file");
  if (!get("timeout_ms").empty()) co.default_timeout_ns = std::stoll(get("timeout_ms")) * 1'000'000;
  auto client = std::make_shared<Client>(co);
  return std::make_shared<RemoteModel>(client, u.model, u.version);
}


void register_remote_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    Backend b;
    b.name = "remote";
    b.accepts = [](const std::string& path, std::string_view head) {
      return (path.size() > 12 && path.substr(path.size() - 12) == ".remote.json") ||
             head.find("\"quiver-remote\"") != std::string_view::npos;
    };
    b.load = load_remote_file;
    register_backend(std::move(b));
  });
}

}  // namespace quiver::client
