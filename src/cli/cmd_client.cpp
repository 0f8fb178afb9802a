// quiver perf: a perf_analyzer-like load generator over the Quiver client (gRPC: many servers,
// failover, fallback) or KServe v2 HTTP/REST (-i http): closed-loop concurrency sweep, stable
// measurement windows, throughput, latency percentiles, client vs server time split (model
// statistics), CSV, and an SVG latency-throughput plot.
#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <optional>
#include <sstream>
#include <thread>

#include "cli/command.hpp"
#include "grpc_service.grpc.pb.h"
#include "quiver/client/client.hpp"
#include "quiver/client/http.hpp"
#include "quiver/client/shm.hpp"
#include "kserve/auth.hpp"
#include "quiver/core/half.hpp"
#include "quiver/core/util.hpp"
#ifdef QUIVER_CLIENT_HAVE_ONNX
#include "quiver/onnx/tensor_proto.hpp"
#endif

namespace fs = std::filesystem;
using namespace quiver;
using namespace quiver::client;

namespace {

struct PerfArgs {
  std::string model, version;
  std::vector<std::string> urls;
  std::string servers_file;
  std::vector<std::string> dns;
  std::string fallback_repository;
  std::string fallback = "";
  std::string protocol = "grpc";
  std::string concurrency = "1";
  int64_t batch = 1;
  std::string shared_memory = "none";
  std::string input_data = "random";
  std::vector<std::string> shapes;
  std::string csv, plot;
  int64_t window_ms = 1000;
  double stability = 10;
  int max_trials = 10;
  int64_t timeout_ms = 0;
  std::string compression = "none";
  bool coalesce = false;
  int64_t coalesce_delay_us = 500;
  int64_t coalesce_max_batch = 0;
  int completion_threads = 1;
  std::string tls_root, tls_cert, tls_key, tls_name;
  bool tls = false;
  std::string auth_token_file;
};

struct ServerTimes {  // summed over servers, per model
  uint64_t count = 0, queue = 0, cin = 0, cinfer = 0, cout = 0;
};

struct Level {
  int concurrency = 0;
  double req_per_s = 0, infer_per_s = 0;
  double p50 = 0, p90 = 0, p95 = 0, p99 = 0, avg = 0;  // microseconds
  double s_queue = 0, s_cin = 0, s_cinfer = 0, s_cout = 0;  // per request, microseconds
  bool have_server = false;
  int64_t errors = 0;
  bool stable = false;
};

std::vector<int> parse_range(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ':')) v.push_back(std::stoll(part));
  if (v.empty() || v.size() > 3 || v[0] < 1)
    throw Error(ErrorCode::InvalidArgument, "--concurrency-range must be A[:B[:STEP]] with A >= 1, got '" + s + "'");
  int64_t a = v[0], b = v.size() > 1 ? v[1] : a, step = v.size() > 2 ? v[2] : 1;
  if (b < a || step < 1) throw Error(ErrorCode::InvalidArgument, "bad --concurrency-range '" + s + "'");
  std::vector<int> out;
  for (int64_t c = a; c <= b; c += step) out.push_back(static_cast<int>(c));
  return out;
}

Tensor make_input(const TensorInfo& ti, int64_t batch, int64_t max_batch, const std::map<std::string, std::vector<int64_t>>& shapes,
                  const std::string& mode, std::mt19937& rng) {
  std::vector<int64_t> dims;
  if (auto it = shapes.find(ti.name); it != shapes.end()) {
    dims = it->second;
    if (max_batch > 0) dims.insert(dims.begin(), batch);
  } else {
    for (size_t i = 0; i < ti.shape.size(); ++i) {
      const Dim& d = ti.shape[i];
      if (i == 0 && max_batch > 0) dims.push_back(batch);
      else dims.push_back(d.is_fixed() ? d.value : 1);
    }
  }
  Tensor t = Tensor::zeros(ti.dtype, dims);
  if (mode == "zero") return t;
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::uniform_int_distribution<int> ui(0, 9);
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (ti.dtype) {
      case DType::F32: t.data<float>()[i] = u(rng); break;
      case DType::F64: t.data<double>()[i] = u(rng); break;
      case DType::F16: t.data<uint16_t>()[i] = Half(u(rng)).bits; break;
      case DType::BF16: t.data<uint16_t>()[i] = BFloat16(u(rng)).bits; break;
      case DType::I64: t.data<int64_t>()[i] = ui(rng); break;
      case DType::I32: t.data<int32_t>()[i] = ui(rng); break;
      case DType::I16: t.data<int16_t>()[i] = static_cast<int16_t>(ui(rng)); break;
      case DType::I8: t.data<int8_t>()[i] = static_cast<int8_t>(ui(rng)); break;
      case DType::U8: t.data<uint8_t>()[i] = static_cast<uint8_t>(ui(rng)); break;
      case DType::Bool: t.data<bool>()[i] = ui(rng) & 1; break;
      case DType::String: t.data<std::string>()[i] = std::to_string(ui(rng)); break;
      default: break;
    }
  }
  return t;
}

std::vector<NamedTensor> load_inputs(const PerfArgs& a, const ModelInfo& info) {
  std::vector<NamedTensor> out;
  if (a.input_data == "random" || a.input_data == "zero") {
    std::map<std::string, std::vector<int64_t>> shapes;
    for (auto& s : a.shapes) {
      size_t c = s.rfind(':');
      if (c == std::string::npos) throw Error(ErrorCode::InvalidArgument, "--shape must be NAME:D1,D2,... ('" + s + "')");
      std::vector<int64_t> d;
      std::stringstream ss(s.substr(c + 1));
      std::string x;
      while (std::getline(ss, x, ',')) d.push_back(std::stoll(x));
      shapes[s.substr(0, c)] = d;
    }
    std::mt19937 rng(1);
    for (auto& ti : info.inputs) out.push_back({ti.name, make_input(ti, a.batch, info.max_batch, shapes, a.input_data, rng)});
    return out;
  }
#ifdef QUIVER_CLIENT_HAVE_ONNX
  if (!fs::is_directory(a.input_data))
    throw Error(ErrorCode::NotFound, "--input-data is neither random, zero nor a folder", {.file = a.input_data});
  auto files = onnx::numbered_files(a.input_data, "input");
  if (files.empty()) throw Error(ErrorCode::NotFound, "no input_<i>.pb files", {.file = a.input_data});
  for (size_t i = 0; i < files.size(); ++i) {
    NamedTensor t = onnx::read_tensor_file(files[i]);
    if (t.name.empty() && i < info.inputs.size()) t.name = info.inputs[i].name;
    out.push_back(std::move(t));
  }
  return out;
#else
  throw Error(ErrorCode::Unsupported, "--input-data DIR needs the ONNX engine (TensorProto files) in this build");
#endif
}

// ModelStatistics summed over the servers (a separate channel per server, not the client's).
class StatsPoller {
 public:
  // Same credentials as the client's channels (TLS / mTLS servers answer nothing else).
  StatsPoller(std::vector<std::string> servers, std::string model, const TlsOptions& tls, std::string auth_header)
      : model_(std::move(model)), auth_header_(std::move(auth_header)) {
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    grpc::ChannelArguments args;
    if (tls.enabled) {
      grpc::SslCredentialsOptions so;
      if (!tls.root_certs_file.empty()) so.pem_root_certs = read_file(tls.root_certs_file);
      if (!tls.client_cert_file.empty()) so.pem_cert_chain = read_file(tls.client_cert_file);
      if (!tls.client_key_file.empty()) so.pem_private_key = read_file(tls.client_key_file);
      creds = grpc::SslCredentials(so);
      if (!tls.server_name_override.empty()) args.SetSslTargetNameOverride(tls.server_name_override);
    }
    for (auto& s : servers)
      stubs_.push_back(inference::GRPCInferenceService::NewStub(grpc::CreateCustomChannel(s, creds, args)));
  }
  std::optional<ServerTimes> poll() {
    ServerTimes t;
    bool any = false;
    for (auto& stub : stubs_) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
      if (!auth_header_.empty()) ctx.AddMetadata("authorization", auth_header_);
      inference::ModelStatisticsRequest q;
      q.set_name(model_);
      inference::ModelStatisticsResponse r;
      if (!stub->ModelStatistics(&ctx, q, &r).ok()) continue;
      any = true;
      for (auto& m : r.model_stats()) {
        const auto& s = m.inference_stats();
        t.count += s.success().count();
        t.queue += s.queue().ns();
        t.cin += s.compute_input().ns();
        t.cinfer += s.compute_infer().ns();
        t.cout += s.compute_output().ns();
      }
    }
    if (!any) return std::nullopt;
    return t;
  }

 private:
  std::string model_;
  std::string auth_header_;
  std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>> stubs_;
};

double pct(std::vector<int64_t>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(std::ceil(p / 100.0 * v.size())) ;
  k = std::min(v.size() - 1, k == 0 ? 0 : k - 1);
  return v[k] / 1000.0;
}

void write_svg(const std::string& path, const std::vector<Level>& levels, const std::string& title) {
  const double W = 720, H = 480, L = 80, R = 30, T = 50, B = 60;
  double xmax = 1, ymax = 1;
  for (auto& l : levels) {
    xmax = std::max(xmax, l.infer_per_s);
    ymax = std::max(ymax, l.p99 / 1000.0);
  }
  xmax *= 1.1;
  ymax *= 1.15;
  auto X = [&](double x) { return L + x / xmax * (W - L - R); };
  auto Y = [&](double y) { return H - B - y / ymax * (H - T - B); };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" << title << "</text>\n";
  o << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  o << "<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L << "\" y2=\"" << H - B << "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 5; ++i) {
    double xv = xmax * i / 5, yv = ymax * i / 5;
    char bx[32], by[32];
    std::snprintf(bx, sizeof bx, "%.0f", xv);
    std::snprintf(by, sizeof by, "%.2f", yv);
    o << "<text x=\"" << X(xv) << "\" y=\"" << H - B + 18 << "\" text-anchor=\"middle\">" << bx << "</text>\n";
    o << "<text x=\"" << L - 8 << "\" y=\"" << Y(yv) + 4 << "\" text-anchor=\"end\">" << by << "</text>\n";
    o << "<line x1=\"" << L << "\" y1=\"" << Y(yv) << "\" x2=\"" << W - R << "\" y2=\"" << Y(yv)
      << "\" stroke=\"#ddd\"/>\n";
  }
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 18 << "\" text-anchor=\"middle\">throughput (inferences/s)</text>\n";
  o << "<text transform=\"translate(20," << (T + H - B) / 2 << ") rotate(-90)\" text-anchor=\"middle\">latency (ms)</text>\n";
  struct Series { const char* name; const char* color; double Level::*f; };
  int k = 0;
  for (Series s : {Series{"p50", "#1f77b4", &Level::p50}, Series{"p99", "#d62728", &Level::p99}}) {
    o << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"2\" points=\"";
    for (auto& l : levels) o << X(l.infer_per_s) << "," << Y(l.*s.f / 1000.0) << " ";
    o << "\"/>\n";
    for (auto& l : levels) {
      o << "<circle cx=\"" << X(l.infer_per_s) << "\" cy=\"" << Y(l.*s.f / 1000.0) << "\" r=\"3\" fill=\"" << s.color << "\"/>\n";
      if (k == 1)
        o << "<text x=\"" << X(l.infer_per_s) + 5 << "\" y=\"" << Y(l.*s.f / 1000.0) - 5 << "\" font-size=\"10\">c="
          << l.concurrency << "</text>\n";
    }
    o << "<text x=\"" << L + 10 << "\" y=\"" << T + 15 + 16 * k << "\" fill=\"" << s.color << "\">" << s.name
      << " latency</text>\n";
    ++k;
  }
  o << "</svg>\n";
  write_file(path, o.str());
}

// What the measurement loop needs from a protocol: keep `c` requests in flight (closed loop) and
// report each completion to the Sink; stop() returns once nothing is in flight.
struct Sink {
  std::mutex mu;
  std::vector<int64_t> lat;  // ns of the requests completed in this window
  int64_t errors = 0;
  std::string first_error;
  void record(const InferResult& r, int64_t dt) {
    std::lock_guard lk(mu);
    if (r.ok()) lat.push_back(dt);
    else {
      ++errors;
      if (first_error.empty()) first_error = r.error->what();
    }
  }
};

class Load {
 public:
  virtual ~Load() = default;
  virtual void start(int concurrency) = 0;
  virtual void stop() = 0;
};

using StatsFn = std::function<std::optional<ServerTimes>()>;

// The concurrency sweep: per level, windows until the last 3 agree within the stability limit.
std::vector<Level> measure(const PerfArgs& a, Load& load, Sink& sink, const StatsFn& stats, int64_t rows) {
  std::vector<Level> levels;
  for (int c : parse_range(a.concurrency)) {
    {
      std::lock_guard lk(sink.mu);
      sink.lat.clear();
      sink.errors = 0;
    }
    load.start(c);
    std::vector<Level> trials;
    Level best;
    for (int trial = 0; trial < a.max_trials; ++trial) {
      auto s0 = stats();
      {
        std::lock_guard lk(sink.mu);
        sink.lat.clear();
        sink.errors = 0;
      }
      const int64_t t0 = now_ns();
      std::this_thread::sleep_for(std::chrono::milliseconds(a.window_ms));
      std::vector<int64_t> v;
      int64_t errs;
      {
        std::lock_guard lk(sink.mu);
        v.swap(sink.lat);
        errs = sink.errors;
      }
      const double secs = (now_ns() - t0) / 1e9;
      auto s1 = stats();
      std::sort(v.begin(), v.end());
      Level l;
      l.concurrency = c;
      l.errors = errs;
      l.req_per_s = v.size() / secs;
      l.infer_per_s = l.req_per_s * rows;
      l.p50 = pct(v, 50);
      l.p90 = pct(v, 90);
      l.p95 = pct(v, 95);
      l.p99 = pct(v, 99);
      double sum = 0;
      for (auto x : v) sum += x;
      l.avg = v.empty() ? 0 : sum / v.size() / 1000.0;
      if (s0 && s1 && s1->count > s0->count) {
        double n = static_cast<double>(s1->count - s0->count);
        l.have_server = true;
        l.s_queue = (s1->queue - s0->queue) / n / 1000.0;
        l.s_cin = (s1->cin - s0->cin) / n / 1000.0;
        l.s_cinfer = (s1->cinfer - s0->cinfer) / n / 1000.0;
        l.s_cout = (s1->cout - s0->cout) / n / 1000.0;
      }
      trials.push_back(l);
      std::printf("  Pass [%d]: throughput: %.1f infer/sec. p99 latency: %.0f usec%s\n", trial + 1, l.infer_per_s, l.p99,
                  errs ? (" (" + std::to_string(errs) + " errors)").c_str() : "");
      std::fflush(stdout);
      if (trials.size() >= 3) {
        auto last = std::vector<Level>(trials.end() - 3, trials.end());
        double mt = 0, ml = 0;
        for (auto& x : last) mt += x.infer_per_s / 3, ml += x.avg / 3;
        bool ok = mt > 0;
        for (auto& x : last)
          ok = ok && std::fabs(x.infer_per_s - mt) <= a.stability / 100 * mt && std::fabs(x.avg - ml) <= a.stability / 100 * ml;
        if (ok) {
          best = trials.back();
          best.stable = true;
          break;
        }
      }
      best = trials.back();
    }
    load.stop();
    std::string first_error;
    {
      std::lock_guard lk(sink.mu);
      first_error = sink.first_error;
    }
    if (best.req_per_s == 0 && best.errors > 0)
      throw Error(ErrorCode::Unavailable, "every request failed at concurrency " + std::to_string(c) + ": " + first_error);
    levels.push_back(best);
    std::printf("Concurrency: %d%s\n  Throughput: %.1f infer/sec (%.1f requests/sec)\n"
                "  Avg latency: %.0f usec; p50 %.0f, p90 %.0f, p95 %.0f, p99 %.0f usec\n",
                c, best.stable ? "" : " (not stable)", best.infer_per_s, best.req_per_s, best.avg, best.p50, best.p90,
                best.p95, best.p99);
    if (best.have_server) {
      double server = best.s_queue + best.s_cin + best.s_cinfer + best.s_cout;
      std::printf("  Server: queue %.0f usec, compute input %.0f, infer %.0f, output %.0f usec; "
                  "client + network: %.0f usec\n",
                  best.s_queue, best.s_cin, best.s_cinfer, best.s_cout, std::max(0.0, best.avg - server));
    }
    if (best.errors) std::printf("  Errors: %lld (first: %s)\n", static_cast<long long>(best.errors), first_error.c_str());
    std::printf("\n");
    std::fflush(stdout);
  }
  return levels;
}

void write_outputs(const PerfArgs& a, const std::vector<Level>& levels, int64_t rows) {
  if (!a.csv.empty()) {
    std::ostringstream f;
    f << "Concurrency,Inferences/Second,Requests/Second,Client+Network,Server Queue,Server Compute Input,"
         "Server Compute Infer,Server Compute Output,Avg latency,p50 latency,p90 latency,p95 latency,p99 latency,Errors\n";
    for (auto& l : levels) {
      double server = l.s_queue + l.s_cin + l.s_cinfer + l.s_cout;
      f << l.concurrency << "," << l.infer_per_s << "," << l.req_per_s << "," << std::max(0.0, l.avg - server) << ","
        << l.s_queue << "," << l.s_cin << "," << l.s_cinfer << "," << l.s_cout << "," << l.avg << "," << l.p50 << ","
        << l.p90 << "," << l.p95 << "," << l.p99 << "," << l.errors << "\n";
    }
    write_file(a.csv, f.str());
  }
  if (!a.plot.empty())
    write_svg(a.plot, levels, "quiver perf: " + a.model + " (batch " + std::to_string(rows) + ", " + a.protocol + ")");
}

void print_settings(const PerfArgs& a, const ModelMeta& meta, int64_t rows, size_t servers) {
  std::printf("*** Measurement Settings ***\n  Model: %s%s (via %s, %s)\n  Batch size: %lld\n  Servers: %zu\n  Window: %lld ms, stability %.0f%%%s\n\n",
              a.model.c_str(), a.version.empty() ? "" : (" v" + a.version).c_str(), meta.source.c_str(),
              a.protocol.c_str(), static_cast<long long>(rows), servers, static_cast<long long>(a.window_ms),
              a.stability, a.coalesce ? ", client-side coalescing on" : "");
  std::fflush(stdout);
}

int64_t rows_of(const std::vector<NamedTensor>& inputs, const ModelInfo& info) {
  return inputs.empty() || inputs[0].tensor.rank() == 0 || info.max_batch == 0 ? 1 : inputs[0].tensor.dim(0);
}

// ---------------------------------------------------------------- gRPC, over the Quiver client
class GrpcLoad final : public Load {
 public:
  GrpcLoad(Client& client, BatchingClient* batching, std::string model, std::vector<NamedTensor> inputs, InferOptions io,
           Sink& sink)
      : client_(client), batching_(batching), model_(std::move(model)), inputs_(std::move(inputs)), io_(std::move(io)),
        sink_(sink) {}
  void start(int c) override {
    stop_ = false;
    {
      std::lock_guard lk(mu_);
      active_ = c;
    }
    for (int i = 0; i < c; ++i) issue();
  }
  void stop() override {
    stop_ = true;
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, std::chrono::seconds(60), [&] { return active_ == 0; });
  }

 private:
  // Closed loop: each slot sends its next request from the previous one's callback.
  void issue() {
    const int64_t t0 = now_ns();
    auto done = [this, t0](InferResult r) {
      sink_.record(r, now_ns() - t0);
      if (!stop_.load()) {
        issue();
      } else {
        std::lock_guard lk(mu_);
        if (--active_ == 0) cv_.notify_all();
      }
    };
    if (batching_) batching_->infer_async(model_, inputs_, io_, done);
    else client_.infer_async(model_, inputs_, io_, done);
  }
  Client& client_;
  BatchingClient* batching_;
  std::string model_;
  std::vector<NamedTensor> inputs_;
  InferOptions io_;
  Sink& sink_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int active_ = 0;
};

void set_tls(const PerfArgs& a, ClientOptions& o) {
  o.tls.enabled = a.tls || !a.tls_root.empty() || !a.tls_cert.empty() || !a.tls_key.empty();
  o.tls.root_certs_file = a.tls_root;
  o.tls.client_cert_file = a.tls_cert;
  o.tls.client_key_file = a.tls_key;
  o.tls.server_name_override = a.tls_name;
}

void run_perf_grpc(const PerfArgs& a) {
  ClientOptions o;
  o.discovery.endpoints = a.urls;
  o.discovery.servers_file = a.servers_file;
  o.discovery.dns_names = a.dns;
  if (!a.fallback_repository.empty()) {
    o.fallback_repository = a.fallback_repository;
    o.fallback = a.fallback.empty() ? FallbackMode::OnFailure : fallback_mode_from_string(a.fallback);
  } else if (!a.fallback.empty() && a.fallback != "off") {
    throw Error(ErrorCode::InvalidArgument, "--fallback needs --fallback-repository");
  }
  o.default_timeout_ns = a.timeout_ms * 1'000'000;
  o.completion_threads = a.completion_threads;
  o.shared_memory = a.shared_memory == "system";
  o.shared_memory_outputs = o.shared_memory;  // like perf_analyzer: inputs and outputs
  if (a.compression == "gzip") o.compression = Compression::Gzip;
  else if (a.compression == "deflate") o.compression = Compression::Deflate;
  else if (a.compression != "none") throw Error(ErrorCode::InvalidArgument, "--compression must be none, gzip or deflate");
  set_tls(a, o);
  o.auth_token_file = a.auth_token_file;
  Client client(o);
  if (o.fallback != FallbackMode::AlwaysLocal) client.wait_for_serving(1, 5'000'000'000);
  auto meta = client.model_metadata(a.model, a.version);
  const ModelInfo& info = meta->info;
  std::vector<NamedTensor> inputs = load_inputs(a, info);
  const int64_t rows = rows_of(inputs, info);
  std::unique_ptr<BatchingClient> batching;
  if (a.coalesce)
    batching = std::make_unique<BatchingClient>(
        client, CoalesceOptions{.max_batch = a.coalesce_max_batch, .max_delay_ns = a.coalesce_delay_us * 1000});
  InferOptions io;
  io.model_version = a.version;

  std::vector<std::string> servers;
  for (auto& s : client.report().servers) servers.push_back(s.address);
  StatsPoller stats(servers, a.model, o.tls, kserve::authorization_from_token_file(a.auth_token_file));
  print_settings(a, *meta, rows, servers.size());

  Sink sink;
  GrpcLoad load(client, batching.get(), a.model, inputs, io, sink);
  auto levels = measure(a, load, sink, [&] { return stats.poll(); }, rows);
  write_outputs(a, levels, rows);

  auto rep = client.report();
  std::printf("*** Client report ***\n  Requests: %lld, completed: %lld, failed: %lld, retries: %lld, fallbacks: %lld\n",
              static_cast<long long>(rep.requests), static_cast<long long>(rep.completed),
              static_cast<long long>(rep.failed), static_cast<long long>(rep.retries),
              static_cast<long long>(rep.fallbacks));
  if (batching) {
    auto st = batching->stats();
    std::printf("  Coalescing: %lld caller requests -> %lld RPCs (%.1fx fewer)\n", static_cast<long long>(st.requests),
                static_cast<long long>(st.rpcs), st.rpcs ? static_cast<double>(st.requests) / st.rpcs : 0.0);
  }
  std::printf("  %-28s %10s %10s %9s %9s %7s %s\n", "server", "requests", "successes", "failures", "retries", "trips", "state");
  for (auto& s : rep.servers)
    std::printf("  %-28s %10lld %10lld %9lld %9lld %7lld %s\n", s.address.c_str(), static_cast<long long>(s.requests),
                static_cast<long long>(s.successes), static_cast<long long>(s.failures),
                static_cast<long long>(s.retries), static_cast<long long>(s.breaker_trips),
                s.removed ? "removed" : s.serving ? "serving" : "out");
  if (rep.fallbacks)
    std::printf("  %-28s %10lld\n", ("local:" + a.fallback_repository).c_str(), static_cast<long long>(rep.fallbacks));
}

// ---------------------------------------------------------------- HTTP/REST
struct HttpServerCounters {
  std::string address;
  std::atomic<int64_t> requests{0}, successes{0}, failures{0};
};

// One thread and one keep-alive connection per concurrent request; worker i talks to server
// i mod N. Connections are kept across concurrency levels.
class HttpLoad final : public Load {
 public:
  // `slots` (optional): worker i sends its tensors through (*slots)[i].
  HttpLoad(const PerfArgs& a, std::vector<NamedTensor> inputs, HttpOptions ho, Sink& sink,
           std::vector<std::unique_ptr<HttpServerCounters>>& servers, const std::vector<HttpShmSlot>* slots)
      : a_(a), inputs_(std::move(inputs)), ho_(ho), sink_(sink), servers_(servers), slots_(slots) {
    io_.model_version = a.version;
    io_.timeout_ns = a.timeout_ms * 1'000'000;
  }
  ~HttpLoad() override { stop(); }
  void start(int c) override {
    stop_ = false;
    while (static_cast<int>(clients_.size()) < c)
      clients_.push_back(std::make_unique<HttpClient>(servers_[clients_.size() % servers_.size()]->address, ho_));
    for (int i = 0; i < c; ++i)
      threads_.emplace_back([this, i] {
        HttpClient& cli = *clients_[static_cast<size_t>(i)];
        HttpServerCounters& sc = *servers_[static_cast<size_t>(i) % servers_.size()];
        while (!stop_.load(std::memory_order_relaxed)) {
          sc.requests.fetch_add(1, std::memory_order_relaxed);
          const int64_t t0 = now_ns();
          InferResult r = slots_ ? cli.infer(a_.model, inputs_, io_, (*slots_)[static_cast<size_t>(i)])
                                 : cli.infer(a_.model, inputs_, io_);
          sink_.record(r, now_ns() - t0);
          (r.ok() ? sc.successes : sc.failures).fetch_add(1, std::memory_order_relaxed);
        }
      });
  }
  void stop() override {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  const PerfArgs& a_;
  std::vector<NamedTensor> inputs_;
  HttpOptions ho_;
  InferOptions io_;
  Sink& sink_;
  std::vector<std::unique_ptr<HttpServerCounters>>& servers_;
  const std::vector<HttpShmSlot>* slots_;
  std::vector<std::unique_ptr<HttpClient>> clients_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
};

void run_perf_http(const PerfArgs& a) {
  auto refuse = [](bool bad, const std::string& what) {
    if (bad) throw Error(ErrorCode::Unsupported, "quiver perf -i http: " + what + " is only supported with -i grpc");
  };
  refuse(!a.servers_file.empty() || !a.dns.empty(), "--servers-file / --dns discovery");
  refuse(!a.fallback_repository.empty() || (!a.fallback.empty() && a.fallback != "off"), "local fallback");
  refuse(a.coalesce, "--coalesce");
  refuse(a.tls || !a.tls_root.empty() || !a.tls_cert.empty() || !a.tls_key.empty(), "TLS (--ssl*)");
  refuse(a.compression == "deflate", "--compression deflate (gzip is)");
  if (a.compression != "none" && a.compression != "gzip" && a.compression != "deflate")
    throw Error(ErrorCode::InvalidArgument, "--compression must be none, gzip or deflate");
  if (a.urls.empty()) throw Error(ErrorCode::InvalidArgument, "quiver perf -i http: give at least one -u HOST:PORT");
  HttpOptions ho;
  ho.gzip = a.compression == "gzip";
  ho.auth_token_file = a.auth_token_file;
  if (a.timeout_ms > 0) ho.timeout_ns = a.timeout_ms * 1'000'000;

  // Every server must answer readiness (5 s), then metadata comes from the first one.
  std::vector<std::unique_ptr<HttpClient>> pollers;
  std::vector<std::unique_ptr<HttpServerCounters>> servers;
  for (const auto& u : a.urls) {
    pollers.push_back(std::make_unique<HttpClient>(u, ho));
    servers.push_back(std::make_unique<HttpServerCounters>());
    servers.back()->address = u;
  }
  const int64_t until = now_ns() + 5'000'000'000;
  for (auto& p : pollers) {
    std::string why;
    while (!p->server_ready(&why)) {
      if (now_ns() > until) throw Error(ErrorCode::Unavailable, "quiver perf: HTTP server not ready after 5 s: " + why);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  ModelMeta meta = pollers[0]->model_metadata(a.model, a.version);
  std::vector<NamedTensor> inputs = load_inputs(a, meta.info);
  const int64_t rows = rows_of(inputs, meta.info);
  print_settings(a, meta, rows, servers.size());

  // --shared-memory system: one region, one slot per concurrent worker (inputs, then the outputs
  // sized from the metadata), registered with every server; unregistered when done.
  std::unique_ptr<SystemSharedMemory> region;
  std::vector<HttpShmSlot> slots;
  struct Unregister {
    std::vector<std::unique_ptr<HttpClient>>& pollers;
    const SystemSharedMemory* region = nullptr;
    ~Unregister() {
      if (!region) return;
      for (auto& p : pollers) {
        try {
          p->unregister_system_shared_memory(region->name());
        } catch (const Error& e) {
          std::fprintf(stderr, "quiver perf: %s\n", e.what());
        }
      }
    }
  } unregister{pollers};
  if (a.shared_memory == "system") {
    uint64_t in_bytes = 0;
    for (auto& in : inputs)
      if (in.tensor.dtype() != DType::String) in_bytes += (in.tensor.nbytes() + 63) / 64 * 64;
    std::vector<std::pair<std::string, uint64_t>> outs;
    uint64_t out_bytes = 0;
    for (const auto& ti : meta.info.outputs) {
      int64_t n = 1;
      bool known = ti.dtype != DType::String;
      for (size_t i = 0; i < ti.shape.size() && known; ++i) {
        if (i == 0 && meta.info.max_batch > 0) n *= rows;
        else if (ti.shape[i].is_fixed()) n *= ti.shape[i].value;
        else known = false;
      }
      if (!known) {  // sizes not known in advance: every output travels in the response
        outs.clear();
        out_bytes = 0;
        std::printf("  (output '%s' has no fixed size: outputs travel in the HTTP response)\n", ti.name.c_str());
        break;
      }
      const uint64_t b = static_cast<uint64_t>(n) * dtype_size(ti.dtype);
      outs.emplace_back(ti.name, b);
      out_bytes += (b + 63) / 64 * 64;
    }
    const uint64_t slot_bytes = std::max<uint64_t>(64, in_bytes + out_bytes);
    int max_c = 1;
    for (int c : parse_range(a.concurrency)) max_c = std::max(max_c, c);
    region = std::make_unique<SystemSharedMemory>("quiver_perf", slot_bytes * static_cast<uint64_t>(max_c));
    for (auto& p : pollers) p->register_system_shared_memory(region->name(), region->key(), 0, region->bytes());
    unregister.region = region.get();
    for (int i = 0; i < max_c; ++i)
      slots.push_back({region->name(), region->base(), slot_bytes * static_cast<uint64_t>(i), slot_bytes, true, outs});
  }

  // A first request outside the measurement: a model that cannot run fails here, clearly.
  {
    InferOptions io;
    io.model_version = a.version;
    InferResult r = slots.empty() ? pollers[0]->infer(a.model, inputs, io) : pollers[0]->infer(a.model, inputs, io, slots[0]);
    if (!r.ok()) throw r.error->with_context({.model = a.model});
  }
  StatsFn stats = [&]() -> std::optional<ServerTimes> {
    ServerTimes t;
    bool any = false;
    for (auto& p : pollers) {
      try {
        InferenceStats s = p->model_statistics(a.model, a.version);
        t.count += s.success_count;
        t.queue += s.queue_ns;
        t.cin += s.compute_input_ns;
        t.cinfer += s.compute_infer_ns;
        t.cout += s.compute_output_ns;
        any = true;
      } catch (const Error&) {
      }
    }
    if (!any) return std::nullopt;
    return t;
  };
  Sink sink;
  std::vector<Level> levels;
  {
    HttpLoad load(a, inputs, ho, sink, servers, slots.empty() ? nullptr : &slots);
    levels = measure(a, load, sink, stats, rows);
  }
  write_outputs(a, levels, rows);
  int64_t req = 0, ok = 0, bad = 0;
  for (auto& s : servers) req += s->requests, ok += s->successes, bad += s->failures;
  std::printf("*** Client report ***\n  Requests: %lld, completed: %lld, failed: %lld, retries: 0, fallbacks: 0\n",
              static_cast<long long>(req), static_cast<long long>(ok), static_cast<long long>(bad));
  std::printf("  %-28s %10s %10s %9s\n", "server (http)", "requests", "successes", "failures");
  for (auto& s : servers)
    std::printf("  %-28s %10lld %10lld %9lld\n", s->address.c_str(), static_cast<long long>(s->requests.load()),
                static_cast<long long>(s->successes.load()), static_cast<long long>(s->failures.load()));
}

void run_perf(const PerfArgs& a) {
  if (a.shared_memory != "none" && a.shared_memory != "system")
    throw Error(ErrorCode::InvalidArgument, "--shared-memory must be none or system (cuda is not supported)");
  if (a.batch < 1) throw Error(ErrorCode::InvalidArgument, "-b must be >= 1");
  if (a.protocol == "grpc") run_perf_grpc(a);
  else if (a.protocol == "http") run_perf_http(a);
  else throw Error(ErrorCode::InvalidArgument, "quiver perf: -i must be grpc or http, got '" + a.protocol + "'");
}

quiver::cli::CommandRegistrar reg(45, [](CLI::App& app) {
  auto a = std::make_shared<PerfArgs>();
  auto* c = app.add_subcommand("perf", "Load generator for inference servers (like perf_analyzer), over the Quiver client");
  c->add_option("-m,--model", a->model, "model name")->required();
  c->add_option("-x,--model-version", a->version, "model version (default: server policy)");
  c->add_option("-u,--url", a->urls, "server HOST:PORT (repeatable)");
  c->add_option("--servers-file", a->servers_file, "file of HOST:PORT lines, re-read when it changes");
  c->add_option("--dns", a->dns, "NAME:PORT resolving to several servers (repeatable)");
  c->add_option("--fallback-repository", a->fallback_repository, "local model repository for fallback inference");
  c->add_option("--fallback", a->fallback, "off | on-failure | always-local (default on-failure with a repository)");
  c->add_option("-i,--protocol", a->protocol, "grpc (Quiver client: many servers, fallback, shm, TLS) | http (KServe v2 REST, binary tensor data, one keep-alive connection per concurrent request)");
  c->add_option("--concurrency-range", a->concurrency, "A:B:STEP closed-loop concurrency sweep");
  c->add_option("-b,--batch-size", a->batch, "batch size of each request");
  c->add_option("--shared-memory", a->shared_memory, "none | system (inputs and outputs through shared memory; servers on this host)");
  c->add_option("--input-data", a->input_data, "random | zero | DIR with input_<i>.pb");
  c->add_option("--shape", a->shapes, "NAME:D1,D2 for dynamic non-batch dims (repeatable)");
  c->add_option("-f,--latency-report-file", a->csv, "CSV output");
  c->add_option("--plot", a->plot, "SVG latency-throughput plot");
  c->add_option("-p,--measurement-interval", a->window_ms, "window length in ms");
  c->add_option("-s,--stability-percentage", a->stability, "allowed spread of the last 3 windows (%)");
  c->add_option("--max-trials", a->max_trials, "windows per concurrency before giving up on stability");
  c->add_option("--timeout-ms", a->timeout_ms, "per-request deadline");
  c->add_option("--compression", a->compression, "none | gzip | deflate");
  c->add_flag("--coalesce", a->coalesce, "merge concurrent requests into batched RPCs (BatchingClient)");
  c->add_option("--coalesce-delay-us", a->coalesce_delay_us, "max delay a request waits for company");
  c->add_option("--coalesce-max-batch", a->coalesce_max_batch, "rows per merged RPC (default: model max batch)");
  c->add_option("--completion-threads", a->completion_threads, "client completion-queue threads");
  c->add_flag("--ssl", a->tls, "use TLS");
  c->add_option("--ssl-root-certs", a->tls_root, "PEM root certificates");
  c->add_option("--ssl-cert", a->tls_cert, "PEM client certificate (mTLS)");
  c->add_option("--ssl-key", a->tls_key, "PEM client key (mTLS)");
  c->add_option("--ssl-target-name", a->tls_name, "server name to verify");
  c->add_option("--auth-token-file", a->auth_token_file,
                "file whose first token is sent as 'authorization: Bearer TOKEN' (quiver serve --auth-token-file)");
  c->callback([a] {
    if (a->urls.empty() && a->servers_file.empty() && a->dns.empty() && a->fallback != "always-local")
      throw Error(ErrorCode::InvalidArgument, "quiver perf: give at least one -u HOST:PORT, --servers-file or --dns");
    run_perf(*a);
  });
});

}  // namespace
