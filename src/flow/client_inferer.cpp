// Service mode over Quiver's gRPC client: AsyncInferer for specs
//   grpc://HOST:PORT[,HOST:PORT...]/MODEL[/VERSION]
// The client's own load balancing, retries and failover apply; the InferenceFactory's `fallback`
// (direct inference with the local model) covers the case where every server fails.
#include <quiver/client/client.hpp>

#include "quiver/flow/inference.hpp"

namespace quiver::flow {
namespace {

class ClientInferer final : public AsyncInferer {
 public:
  ClientInferer(const std::string& spec, std::shared_ptr<const Model> local, const std::string& model_name) {
    std::string rest = spec.substr(std::string("grpc://").size());
    auto slash = rest.find('/');
    std::string hosts = rest.substr(0, slash);
    if (slash != std::string::npos) {
      std::string mv = rest.substr(slash + 1);
      auto s2 = mv.find('/');
      model_ = mv.substr(0, s2);
      if (s2 != std::string::npos) version_ = mv.substr(s2 + 1);
    }
    if (model_.empty()) model_ = model_name;
    if (hosts.empty() || model_.empty())
      throw Error(ErrorCode::InvalidArgument, "service '" + spec + "': expected grpc://HOST:PORT[,...]/MODEL[/VERSION]");
    client::ClientOptions o;
    size_t p = 0;
    while (p <= hosts.size()) {
      auto c = hosts.find(',', p);
      std::string h = hosts.substr(p, c == std::string::npos ? std::string::npos : c - p);
      if (!h.empty()) o.discovery.endpoints.push_back(h);
      if (c == std::string::npos) break;
      p = c + 1;
    }
    o.fallback = client::FallbackMode::Off;
    client_ = std::make_unique<client::Client>(o);
    prov_ = Provenance{model_, version_, local ? local->info().sha256 : std::string(), "service"};
    // The server's batch limit (requests above it are split); unknown when no server answers yet.
    try {
      auto meta = client_->model_metadata(model_, version_);
      max_batch_ = meta->info.max_batch;
      if (prov_.version.empty()) prov_.version = meta->info.version;
    } catch (const Error&) {
      max_batch_ = 0;
    }
  }
  void infer_async(std::vector<NamedTensor> inputs, Callback done) override {
    client::InferOptions opt;
    opt.model_version = version_;
    client_->infer_async(model_, std::move(inputs), opt, [done = std::move(done)](client::InferResult r) {
      if (r.error) {
        done({}, std::make_exception_ptr(*r.error));
        return;
      }
      // Outputs are views into the response: copy them so that they outlive the callback.
      std::vector<NamedTensor> outs;
      for (auto& o : r.outputs) outs.push_back({o.name, o.tensor.clone()});
      done(std::move(outs), nullptr);
    });
  }
  Provenance provenance() const override { return prov_; }
  int64_t max_batch() const override { return max_batch_; }

 private:
  int64_t max_batch_ = 0;
  std::string model_, version_;
  std::unique_ptr<client::Client> client_;
  Provenance prov_;
};

struct Register {
  Register() {
    register_inferer_scheme("grpc", [](const std::string& spec, std::shared_ptr<const Model> m, const std::string& name) {
      return std::make_shared<ClientInferer>(spec, std::move(m), name);
    });
  }
} register_grpc;

}  // namespace
}  // namespace quiver::flow
