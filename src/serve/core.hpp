// Shared server state used by the gRPC and HTTP front ends (private to quiver_serve).
#pragma once
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "grpc_service.pb.h"
#include "kserve/auth.hpp"
#include "quiver/serve/server.hpp"
#include "serve/acceptor.hpp"
#include "serve/repository.hpp"
#include "serve/shm.hpp"

namespace quiver::serve {

class GrpcFrontend;
class HttpFrontend;

std::string platform_of(const ModelVersion& mv);

class ServerCore {
 public:
  explicit ServerCore(ServerOptions o);
  ~ServerCore();

  void start();
  void shutdown();

  bool is_ready() const { return ready_.load() && !stopping_.load(); }
  bool is_live() const { return live_.load(); }
  bool stopping() const { return stopping_.load(); }

  // Protocol operations shared by both front ends; throw quiver::Error.
  void server_metadata(inference::ServerMetadataResponse& r) const;
  void model_metadata(const std::string& name, const std::string& version, inference::ModelMetadataResponse& r) const;
  void model_statistics(const std::string& name, const std::string& version,
                        inference::ModelStatisticsResponse& r) const;
  void repository_index(bool ready_only, inference::RepositoryIndexResponse& r) const;
  // RepositoryModelLoad: `config` (Triton's JSON, or text format) and model-file overrides.
  void load_model(const std::string& name, const std::string& config, const std::vector<ModelFile>& files = {});
  void unload_model(const std::string& name);
  std::map<std::string, std::vector<std::string>> trace_settings(
      const std::map<std::string, std::vector<std::string>>& update);
  // Log settings: values are bool / uint32 / string, kept as JSON-ish strings with a type tag.
  struct LogValue { int kind = 0; bool b = false; uint32_t u = 0; std::string s; };
  std::map<std::string, LogValue> log_settings(const std::map<std::string, LogValue>& update);
  std::string metrics_text();

  ServerOptions opt;
  // The tokens both front ends check (empty: authentication off).
  kserve::TokenSet auth;
  std::unique_ptr<ModelRepository> repo;
  ShmManager shm;
  int grpc_port = -1, http_port = -1, metrics_port = -1;
  // The spare file descriptor the listeners share (refusing connections when out of descriptors).
  std::shared_ptr<DescriptorReserve> descriptors = std::make_shared<DescriptorReserve>();

 private:
  void poll_loop();
  std::atomic<bool> live_{false}, ready_{false}, stopping_{false};
  std::unique_ptr<GrpcFrontend> grpc_;
  std::unique_ptr<HttpFrontend> http_;
  std::mutex settings_mu_;
  std::map<std::string, std::vector<std::string>> trace_;
  std::map<std::string, LogValue> log_;
  std::thread poll_thread_;
  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
  std::mutex cpu_mu_;
  uint64_t cpu_total_ = 0, cpu_idle_ = 0;
  bool shut_ = false;
};

// Front ends (grpc_frontend.cpp, http_frontend.cpp).
class GrpcFrontend {
 public:
  explicit GrpcFrontend(ServerCore& core);
  ~GrpcFrontend();
  int start();  // returns the bound port
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class HttpFrontend {
 public:
  explicit HttpFrontend(ServerCore& core);
  ~HttpFrontend();
  // Starts the REST server (port >= 0) and the metrics server (metrics_port >= 0).
  void start(int port, int metrics_port, int& bound_http, int& bound_metrics);
  void shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quiver::serve
