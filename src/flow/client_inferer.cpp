// Service mode over Quiver's gRPC client: specs grpc://HOST:PORT[,HOST:PORT...][/MODEL[/VERSION]]
// [?auth_token_file=FILE] (a bearer token for servers started with --auth-token-file).
// The client's load balancing, retries and failover apply, and its fallback: the component's own
// model answers (in the client, on its workers) when the servers fail.
#include <quiver/client/client.hpp>

#include "quiver/flow/inference.hpp"

namespace quiver::flow {

ServiceTarget make_client_target(const std::string& spec, std::shared_ptr<const Model> model,
                                 const std::string& model_name, FallbackMode fallback) {
  client::ServiceUrl u = client::parse_service_url(spec);
  if (u.model.empty()) u.model = model_name;
  if (u.endpoints.empty() || u.model.empty())
    throw Error(ErrorCode::InvalidArgument, "service '" + spec + "': expected grpc://HOST:PORT[,...]/MODEL[/VERSION]");
  client::ClientOptions o;
  o.discovery.endpoints = u.endpoints;
  for (const auto& [k, v] : u.params) {
    if (k == "auth_token_file") o.auth_token_file = v;  // the servers' --auth-token-file tokens
    else throw Error(ErrorCode::InvalidArgument, "service '" + spec + "': unknown parameter '" + k + "'");
  }
  if (model && fallback != FallbackMode::Off) {
    o.fallback = fallback;
    o.fallback_models = single_local_model(std::move(model), u.model);  // answers for the service's model name
  }
  return {std::make_shared<client::Client>(o), u.model, u.version};
}

}  // namespace quiver::flow
