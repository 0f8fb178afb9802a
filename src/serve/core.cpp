#include "core.hpp"

#include <google/protobuf/util/json_util.h>
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "quiver/core/util.hpp"

namespace quiver::serve {

std::string platform_of(const ModelVersion& mv) {
  if (!mv.config->platform().empty()) return mv.config->platform();
  if (!mv.config->backend().empty()) return mv.config->backend();
  return mv.engine;
}

ServerCore::ServerCore(ServerOptions o)
    : opt(std::move(o)),
      auth(opt.auth_token_file.empty() ? kserve::TokenSet() : kserve::TokenSet::from_file(opt.auth_token_file)),
      shm(opt.cuda_shm_emulation) {
  trace_ = {{"trace_level", {"OFF"}}, {"trace_rate", {"1000"}}, {"trace_count", {"-1"}},
            {"log_frequency", {"0"}}, {"trace_file", {""}}, {"trace_mode", {"triton"}}};
  auto b = [](bool v) { LogValue x; x.kind = 0; x.b = v; return x; };
  LogValue lvl; lvl.kind = 1; lvl.u = 0;
  LogValue fmt; fmt.kind = 2; fmt.s = "default";
  LogValue file; file.kind = 2;
  log_ = {{"log_info", b(true)}, {"log_warning", b(true)}, {"log_error", b(true)},
          {"log_verbose_level", lvl}, {"log_format", fmt}, {"log_file", file}};
}

ServerCore::~ServerCore() { shutdown(); }

void ServerCore::start() {
  RepositoryOptions ro;
  ro.root = opt.repository;
  ro.control = opt.control;
  ro.startup_models = opt.load_models;
  ro.intra_op_threads = opt.intra_op_threads;
  ro.max_override_bytes = opt.max_message_bytes;
  repo = std::make_unique<ModelRepository>(ro);
  live_ = true;
  auto errors = repo->load_startup();
  for (const auto& e : errors) std::fprintf(stderr, "quiver serve: %s\n", e.c_str());
  if (!errors.empty() && opt.strict_startup)
    throw Error(ErrorCode::Unavailable, std::to_string(errors.size()) + " model(s) failed to load; first: " + errors[0]);
  if (opt.grpc_port >= 0) {
    grpc_ = std::make_unique<GrpcFrontend>(*this);
    grpc_port = grpc_->start();
  }
  if (opt.http_port >= 0 || opt.metrics_port >= 0) {
    http_ = std::make_unique<HttpFrontend>(*this);
    http_->start(opt.http_port, opt.metrics_port, http_port, metrics_port);
  }
  if (opt.control == ModelControl::Poll || opt.trim_seconds > 0) poll_thread_ = std::thread([this] { poll_loop(); });
  ready_ = true;
}

// Housekeeping: repository polling (poll mode) and returning freed heap pages (trim_seconds).
void ServerCore::poll_loop() {
  using clock = std::chrono::steady_clock;
  const bool polling = opt.control == ModelControl::Poll;
  const auto poll_every = std::chrono::seconds(std::max(1, opt.poll_seconds));
  const auto trim_every = std::chrono::seconds(std::max(1, opt.trim_seconds));
  auto next_poll = clock::now() + poll_every, next_trim = clock::now() + trim_every;
  std::unique_lock lk(poll_mu_);
  while (!shut_) {
    auto next = opt.trim_seconds > 0 ? next_trim : next_poll;
    if (polling && next_poll < next) next = next_poll;
    poll_cv_.wait_until(lk, next);
    if (shut_) break;
    const auto now = clock::now();
    lk.unlock();
    if (polling && now >= next_poll) {
      for (const auto& e : repo->poll()) std::fprintf(stderr, "quiver serve: poll: %s\n", e.c_str());
      next_poll = clock::now() + poll_every;
    }
    if (opt.trim_seconds > 0 && now >= next_trim) {
      malloc_trim(0);
      next_trim = clock::now() + trim_every;
    }
    lk.lock();
  }
}

void ServerCore::shutdown() {
  {
    std::lock_guard lk(poll_mu_);
    if (shut_) return;
    shut_ = true;
    poll_cv_.notify_all();
  }
  stopping_ = true;
  ready_ = false;
  if (poll_thread_.joinable()) poll_thread_.join();
  // New inference requests are refused from here on (UNAVAILABLE); everything queued or
  // executing finishes and is answered. Then the listeners close: calls still open after a short
  // grace (idle streams, connections of clients that are not polling) are cancelled.
  if (repo) repo->shutdown();
  if (grpc_) grpc_->shutdown();
  if (http_) http_->shutdown();
  live_ = false;
}

void ServerCore::server_metadata(inference::ServerMetadataResponse& r) const {
  r.set_name(opt.server_name);
  r.set_version("0.1.0");
  for (const char* e : {"model_repository", "model_configuration", "system_shared_memory", "binary_tensor_data",
                        "classification", "parameters", "statistics", "schedule_policy", "trace", "logging"})
    r.add_extensions(e);
  if (shm.cuda_unavailable_reason().empty()) r.add_extensions("cuda_shared_memory");
}

void ServerCore::model_metadata(const std::string& name, const std::string& version,
                                inference::ModelMetadataResponse& r) const {
  auto mv = repo->get(name, version);
  r.set_name(mv->name);
  for (const auto& v : repo->versions(name)) r.add_versions(v->version_str);
  r.set_platform(platform_of(*mv));
  auto fill = [&](const std::vector<IOSpec>& specs, auto* (inference::ModelMetadataResponse::*add)()) {
    for (const auto& s : specs) {
      auto* t = (r.*add)();
      t->set_name(s.name);
      t->set_datatype(std::string(dtype_kserve_name(s.dtype)));
      if (mv->max_batch > 0) t->add_shape(-1);
      for (int64_t d : s.dims) t->add_shape(d);
    }
  };
  fill(mv->inputs, &inference::ModelMetadataResponse::add_inputs);
  fill(mv->outputs, &inference::ModelMetadataResponse::add_outputs);
}

static void dur(inference::StatisticDuration* d, const Duration& s) {
  d->set_count(s.count);
  d->set_ns(s.ns);
}

void ServerCore::model_statistics(const std::string& name, const std::string& version,
                                  inference::ModelStatisticsResponse& r) const {
  std::vector<std::shared_ptr<ModelVersion>> vs;
  if (name.empty()) {
    vs = repo->all_versions();
  } else if (!version.empty()) {
    vs.push_back(repo->get(name, version));
  } else {
    vs = repo->versions(name);
    if (vs.empty()) repo->get(name);  // throws the right NotFound / Unavailable
  }
  for (const auto& mv : vs) {
    StatsSnapshot s = mv->scheduler->stats();
    auto* m = r.add_model_stats();
    m->set_name(mv->name);
    m->set_version(mv->version_str);
    m->set_last_inference(s.last_inference_ms);
    m->set_inference_count(s.inference_count);
    m->set_execution_count(s.execution_count);
    auto* is = m->mutable_inference_stats();
    dur(is->mutable_success(), s.success);
    dur(is->mutable_fail(), s.fail);
    dur(is->mutable_queue(), s.queue);
    dur(is->mutable_compute_input(), s.compute_input);
    dur(is->mutable_compute_infer(), s.compute_infer);
    dur(is->mutable_compute_output(), s.compute_output);
    is->mutable_cache_hit();
    is->mutable_cache_miss();
    for (const auto& [bs, d] : s.batch) {
      auto* b = m->add_batch_stats();
      b->set_batch_size(bs);
      dur(b->mutable_compute_input(), d[0]);
      dur(b->mutable_compute_infer(), d[1]);
      dur(b->mutable_compute_output(), d[2]);
    }
  }
}

void ServerCore::repository_index(bool ready_only, inference::RepositoryIndexResponse& r) const {
  for (const auto& st : repo->index()) {
    if (ready_only && st.state != "READY") continue;
    auto* m = r.add_models();
    m->set_name(st.name);
    m->set_version(st.version);
    m->set_state(st.state);
    m->set_reason(st.reason);
  }
}

void ServerCore::load_model(const std::string& name, const std::string& config, const std::vector<ModelFile>& files) {
  if (opt.control != ModelControl::Explicit)
    throw Error(ErrorCode::Unavailable, std::string("explicit model load / unload is not allowed in model control mode '") +
                                            (opt.control == ModelControl::Poll ? "poll" : "none") + "'", {name});
  ModelRepository::check_model_name(name);
  std::string text = config;
  if (!config.empty() && config.find_first_not_of(" \t\r\n") != std::string::npos &&
      config[config.find_first_not_of(" \t\r\n")] == '{') {
    // Triton sends the override as JSON.
    inference::ModelConfig c;
    google::protobuf::util::JsonParseOptions jo;
    auto st = google::protobuf::util::JsonStringToMessage(config, &c, jo);
    if (!st.ok()) throw Error(ErrorCode::InvalidArgument, "invalid JSON model config: " + st.ToString(), {name});
    text = model_config_to_text(c);
    if (text.empty()) text = " ";
  }
  repo->load(name, text, files);
}

void ServerCore::unload_model(const std::string& name) {
  if (opt.control != ModelControl::Explicit)
    throw Error(ErrorCode::Unavailable, std::string("explicit model load / unload is not allowed in model control mode '") +
                                            (opt.control == ModelControl::Poll ? "poll" : "none") + "'", {name});
  repo->unload(name);
}

std::map<std::string, std::vector<std::string>> ServerCore::trace_settings(
    const std::map<std::string, std::vector<std::string>>& update) {
  std::lock_guard lk(settings_mu_);
  for (const auto& [k, v] : update) {
    if (!trace_.count(k)) throw Error(ErrorCode::InvalidArgument, "unknown trace setting '" + k + "'");
    trace_[k] = v;
  }
  return trace_;
}

std::map<std::string, ServerCore::LogValue> ServerCore::log_settings(const std::map<std::string, LogValue>& update) {
  std::lock_guard lk(settings_mu_);
  for (const auto& [k, v] : update) {
    auto it = log_.find(k);
    if (it == log_.end()) throw Error(ErrorCode::InvalidArgument, "unknown log setting '" + k + "'");
    if (it->second.kind != v.kind) throw Error(ErrorCode::InvalidArgument, "wrong value type for log setting '" + k + "'");
    it->second = v;
  }
  return log_;
}

// ---------------------------------------------------------------- metrics
namespace {
std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') { o += "\\n"; continue; }
    o += c;
  }
  return o;
}
}  // namespace

std::string ServerCore::metrics_text() {
  std::ostringstream os;
  auto versions = repo ? repo->all_versions() : std::vector<std::shared_ptr<ModelVersion>>{};
  std::vector<std::pair<std::shared_ptr<ModelVersion>, StatsSnapshot>> snaps;
  for (auto& mv : versions) snaps.emplace_back(mv, mv->scheduler->stats());
  auto labels = [](const ModelVersion& mv) {
    return "model=\"" + esc(mv.name) + "\",version=\"" + esc(mv.version_str) + "\"";
  };
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    os << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    for (auto& [mv, s] : snaps) os << name << "{" << labels(*mv) << "} " << value(s) << "\n";
  };
  family("nv_inference_request_success", "counter", "Number of successful inference requests, all batch sizes",
         [](const StatsSnapshot& s) { return s.success.count; });
  os << "# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes\n"
        "# TYPE nv_inference_request_failure counter\n";
  for (auto& [mv, s] : snaps)
    for (FailReason r : {FailReason::Rejected, FailReason::Canceled, FailReason::Backend, FailReason::Other}) {
      auto it = s.failures.find(r);
      os << "nv_inference_request_failure{" << labels(*mv) << ",reason=\"" << fail_reason_name(r) << "\"} "
         << (it == s.failures.end() ? 0 : it->second) << "\n";
    }
  family("nv_inference_count", "counter", "Number of inferences performed (does not include cached requests)",
         [](const StatsSnapshot& s) { return s.inference_count; });
  family("nv_inference_exec_count", "counter", "Number of model executions performed (does not include cached requests)",
         [](const StatsSnapshot& s) { return s.execution_count; });
  family("nv_inference_pending_request_count", "gauge", "Instantaneous number of pending requests awaiting execution per-model.",
         [](const StatsSnapshot& s) { return s.pending; });
  family("nv_inference_request_duration_us", "counter", "Cumulative inference request duration in microseconds (includes cached requests)",
         [](const StatsSnapshot& s) { return (s.success.ns + s.fail.ns) / 1000; });
  family("nv_inference_queue_duration_us", "counter", "Cumulative inference queuing duration in microseconds (includes cached requests)",
         [](const StatsSnapshot& s) { return s.queue.ns / 1000; });
  family("nv_inference_compute_input_duration_us", "counter", "Cumulative compute input duration in microseconds (does not include cached requests)",
         [](const StatsSnapshot& s) { return s.compute_input.ns / 1000; });
  family("nv_inference_compute_infer_duration_us", "counter", "Cumulative compute inference duration in microseconds (does not include cached requests)",
         [](const StatsSnapshot& s) { return s.compute_infer.ns / 1000; });
  family("nv_inference_compute_output_duration_us", "counter", "Cumulative inference compute output duration in microseconds (does not include cached requests)",
         [](const StatsSnapshot& s) { return s.compute_output.ns / 1000; });
  os << "# HELP quiver_model_prepared_state_bytes Bytes the model's execution states hold once sized ahead at load "
        "(config parameter prepare_state, else the batch the batcher forms)\n"
        "# TYPE quiver_model_prepared_state_bytes gauge\n";
  for (auto& [mv, s] : snaps) os << "quiver_model_prepared_state_bytes{" << labels(*mv) << "} " << mv->prepared_bytes << "\n";

  // CPU utilisation (since the previous scrape) and memory, from /proc.
  double util = 0;
  {
    std::ifstream f("/proc/stat");
    std::string cpu;
    uint64_t v[10] = {};
    f >> cpu;
    for (auto& x : v) f >> x;
    uint64_t idle = v[3] + v[4], total = 0;
    for (auto x : v) total += x;
    std::lock_guard lk(cpu_mu_);
    if (cpu_total_ && total > cpu_total_) util = 1.0 - double(idle - cpu_idle_) / double(total - cpu_total_);
    cpu_total_ = total;
    cpu_idle_ = idle;
  }
  uint64_t mem_total = 0, mem_avail = 0;
  {
    std::ifstream f("/proc/meminfo");
    std::string key, unit;
    uint64_t val;
    while (f >> key >> val >> unit) {
      if (key == "MemTotal:") mem_total = val * 1024;
      if (key == "MemAvailable:") mem_avail = val * 1024;
    }
  }
  os << "# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]\n# TYPE nv_cpu_utilization gauge\n"
     << "nv_cpu_utilization " << util << "\n";
  os << "# HELP nv_cpu_memory_total_bytes CPU total memory (RAM), in bytes\n# TYPE nv_cpu_memory_total_bytes gauge\n"
     << "nv_cpu_memory_total_bytes " << mem_total << "\n";
  os << "# HELP nv_cpu_memory_used_bytes CPU used memory (RAM), in bytes\n# TYPE nv_cpu_memory_used_bytes gauge\n"
     << "nv_cpu_memory_used_bytes " << (mem_total - mem_avail) << "\n";
  os << "# HELP process_resident_memory_bytes Resident set size of the server process\n"
        "# TYPE process_resident_memory_bytes gauge\n"
     << "process_resident_memory_bytes " << current_rss_bytes() << "\n";
  return os.str();
}

// ---------------------------------------------------------------- Server
Server::Server(ServerOptions opt) : core_(std::make_unique<ServerCore>(std::move(opt))) {}
Server::~Server() { core_->shutdown(); }
void Server::start() { core_->start(); }
void Server::shutdown() { core_->shutdown(); }
int Server::grpc_port() const { return core_->grpc_port; }
int Server::http_port() const { return core_->http_port; }
int Server::metrics_port() const { return core_->metrics_port; }
ModelRepository& Server::repository() { return *core_->repo; }
std::string Server::metrics_text() { return core_->metrics_text(); }

std::string Server::ready_line() const {
  const std::string& h = core_->opt.bind;
  std::string host = h.find(':') != std::string::npos ? "[" + h + "]" : h;
  auto ep = [&](int p) { return p >= 0 ? host + ":" + std::to_string(p) : std::string("off"); };
  return "quiver serve ready grpc=" + ep(core_->grpc_port) + " http=" + ep(core_->http_port) +
         " metrics=" + ep(core_->metrics_port);
}

}  // namespace quiver::serve
