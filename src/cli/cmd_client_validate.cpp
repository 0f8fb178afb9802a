// quiver validate's remote paths (issue #15): the model served by a local `quiver serve` (a child
// process on free loopback ports) and called over gRPC and HTTP, and answered by the client's
// in-process fallback from the same repository; each in default and in reproducible numerics.
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>

#include "cli/server_process.hpp"
#include "cli/validate.hpp"
#include "quiver/client/client.hpp"
#include "quiver/client/http.hpp"
#include "quiver/core/error.hpp"

namespace fs = std::filesystem;
using namespace quiver;
using namespace quiver::cli::validate;

namespace {

// A temporary model repository holding the model twice, in default ("model") and in reproducible
// ("model_reproducible") numerics; each version folder links to the model file's folder, so
// external data next to the model is found. Removed with the object.
struct Repository {
  fs::path dir;
  explicit Repository(const Subject& s) {
    std::string tmpl = (fs::temp_directory_path() / "quiver-validate-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw Error(ErrorCode::Internal, "cannot create a temporary model repository");
    dir = tmpl;
    const fs::path model = fs::absolute(s.model_path);
    // Batch models take the data sets' batch as sent (no batcher); Triton's auto-complete would
    // otherwise cap max_batch_size at 4.
    int64_t max_batch = 0;
    bool batchable = !s.info.inputs.empty();
    for (const auto* v : {&s.info.inputs, &s.info.outputs})
      for (const auto& t : *v) batchable = batchable && !t.shape.empty() && !t.shape[0].is_fixed();
    if (batchable)
      for (const auto& ds : s.data) max_batch = std::max<int64_t>({max_batch, 1, ds.inputs.empty() ? 1 : ds.inputs[0].dim(0)});
    for (const char* name : {"model", "model_reproducible"}) {
      fs::create_directories(dir / name);
      fs::create_directory_symlink(model.parent_path(), dir / name / "1");
      std::ofstream cfg(dir / name / "config.pbtxt");
      cfg << "backend: \"quiver\"\ndefault_model_filename: \"" << model.filename().string() << "\"\nmax_batch_size: "
          << max_batch << "\n";
      if (std::string(name) == "model_reproducible")
        cfg << "parameters { key: \"numerics\" value: { string_value: \"reproducible\" } }\n";
      if (!cfg) throw Error(ErrorCode::Internal, "cannot write the temporary model repository", {.file = dir.string()});
    }
  }
  ~Repository() {
    std::error_code ec;
    fs::remove_all(dir, ec);  // removes the links, not what they point to
  }
  Repository(const Repository&) = delete;
  Repository& operator=(const Repository&) = delete;
};

std::vector<NamedTensor> named_inputs(const ModelInfo& info, const DataSet& ds) {
  std::vector<NamedTensor> in;
  for (size_t i = 0; i < ds.inputs.size() && i < info.inputs.size(); ++i) in.push_back({info.inputs[i].name, ds.inputs[i]});
  return in;
}

// The outputs in the model's order; an error when the call failed or answered from elsewhere than
// `from` expects (a remote path must be answered by the server, the fallback path in-process).
std::vector<Tensor> outputs_of(const ModelInfo& info, const InferResult& r, bool want_local) {
  r.throw_if_error();
  const bool local = r.provenance.server.starts_with("local:");
  if (local != want_local)
    throw Error(ErrorCode::Internal, "answered by '" + r.provenance.server + "', expected " +
                                         (want_local ? "the in-process fallback" : "the server"));
  std::vector<Tensor> out;
  for (const auto& o : info.outputs) out.push_back(r.output(o.name).clone());
  return out;
}

void add_remote_paths(const Subject& s, std::vector<Path>& paths, std::vector<std::string>& notes) {
  auto repo = std::make_shared<Repository>(s);
  std::shared_ptr<cli::ServerProcess> server;
  std::error_code ec;
  const std::string self = fs::read_symlink("/proc/self/exe", ec).string();
  try {
    if (ec) throw Error(ErrorCode::Internal, "cannot find this program (/proc/self/exe): " + ec.message());
    server = std::make_shared<cli::ServerProcess>(
        self, std::vector<std::string>{"serve", "--model-repository", repo->dir.string(), "--grpc-port", "0", "--http-port",
                                       "0", "--metrics-port", "-1", "--bind", "127.0.0.1"},
        120000);
  } catch (const std::exception& e) {
    notes.push_back(std::string("quiver serve (gRPC, HTTP): could not start a local server: ") + e.what());
  }
  const ModelInfo info = s.info;
  if (server) {
    client::ClientOptions co;
    co.discovery.endpoints = {server->grpc_addr()};
    auto grpc = std::make_shared<client::Client>(co);
    auto http = std::make_shared<client::HttpClient>("127.0.0.1:" + std::to_string(server->http_port));
    for (const char* model : {"model_reproducible", "model"}) {
      const bool repro = std::string(model) == "model_reproducible";
      const std::string mode = repro ? "reproducible" : "default";
      // The server and repository live as long as the paths that use them.
      paths.push_back({"serve gRPC " + mode, repro, [=](const DataSet& ds) {
                         (void)repo;
                         (void)server;
                         return outputs_of(info, grpc->infer(model, named_inputs(info, ds)), false);
                       }});
      paths.push_back({"serve HTTP " + mode, repro, [=](const DataSet& ds) {
                         (void)repo;
                         (void)server;
                         return outputs_of(info, http->infer(model, named_inputs(info, ds)), false);
                       }});
    }
  }
  client::ClientOptions fo;
  fo.fallback = FallbackMode::AlwaysLocal;
  fo.fallback_repository = repo->dir.string();
  fo.startup_wait_ns = 0;
  auto local = std::make_shared<client::Client>(fo);
  for (const char* model : {"model_reproducible", "model"}) {
    const bool repro = std::string(model) == "model_reproducible";
    paths.push_back({std::string("client fallback ") + (repro ? "reproducible" : "default"), repro,
                     [=](const DataSet& ds) {
                       (void)repo;
                       return outputs_of(info, local->infer(model, named_inputs(info, ds)), true);
                     }});
  }
}

PathRegistrar reg(20, add_remote_paths);

}  // namespace
