// HTTP/REST front end (KServe v2 + Triton extensions) and the Prometheus metrics endpoint, on the
// libmicrohttpd layer of http_server.hpp (gzip / deflate request bodies; inference responses
// compressed when accepted, nothing else, as Triton). Inference requests are
// answered when the scheduler completes them: the connection waits suspended, holding no thread.
#include <nlohmann/json.hpp>
#include <absl/strings/escaping.h>
#include <google/protobuf/util/json_util.h>

#include <future>
#include <set>
#include <regex>

#include "core.hpp"
#include "serve/http_server.hpp"
#include "quiver/core/util.hpp"
#include "serve/codec.hpp"

namespace quiver::serve {

using nlohmann::json;

namespace {
void send_error(HttpResponse& res, const Status& st) {
  res.status = http_status(st.code);
  res.set_content(json{{"error", st.message}}.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}
void send_error(HttpResponse& res, const Error& e) { send_error(res, Status::from(e)); }
void send_json(HttpResponse& res, const json& j) {
  res.status = 200;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

json stats_json(const inference::ModelStatisticsResponse& r) {
  auto d = [](const inference::StatisticDuration& x) { return json{{"count", x.count()}, {"ns", x.ns()}}; };
  json arr = json::array();
  for (const auto& m : r.model_stats()) {
    const auto& s = m.inference_stats();
    json batches = json::array();
    for (const auto& b : m.batch_stats())
      batches.push_back({{"batch_size", b.batch_size()},
                         {"compute_input", d(b.compute_input())},
                         {"compute_infer", d(b.compute_infer())},
                         {"compute_output", d(b.compute_output())}});
    arr.push_back({{"name", m.name()},
                   {"version", m.version()},
                   {"last_inference", m.last_inference()},
                   {"inference_count", m.inference_count()},
                   {"execution_count", m.execution_count()},
                   {"inference_stats",
                    {{"success", d(s.success())},
                     {"fail", d(s.fail())},
                     {"queue", d(s.queue())},
                     {"compute_input", d(s.compute_input())},
                     {"compute_infer", d(s.compute_infer())},
                     {"compute_output", d(s.compute_output())},
                     {"cache_hit", d(s.cache_hit())},
                     {"cache_miss", d(s.cache_miss())}}},
                   {"batch_stats", batches}});
  }
  return json{{"model_stats", arr}};
}

// Protobuf's JSON prints 64-bit integers as strings; Triton's HTTP model configuration has them as
// numbers (clients read dims etc. as integers), so convert the 64-bit fields of ModelConfig back.
void int64_fields_to_numbers(json& j) {
  static const std::set<std::string> k64 = {
      "dims", "shape", "versions", "max_queue_delay_microseconds", "default_timeout_microseconds",
      "priority_levels", "default_priority_level", "max_sequence_idle_microseconds", "device_id",
      "model_version", "dim"};
  auto to_num = [](json& v) {
    if (!v.is_string()) return;
    const std::string& t = v.get_ref<const std::string&>();
    if (t.empty() || t.size() > 20 || t.find_first_not_of("-0123456789") != std::string::npos) return;
    try {
      v = t[0] == '-' ? json(std::stoll(t)) : json(std::stoull(t));
    } catch (const std::exception&) {
    }
  };
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (k64.count(it.key())) {
        if (it.value().is_array()) for (auto& e : it.value()) to_num(e);
        else to_num(it.value());
      }
      int64_fields_to_numbers(it.value());
    }
  } else if (j.is_array()) {
    for (auto& e : j) int64_fields_to_numbers(e);
  }
}

json body_json(const HttpRequest& req) {
  if (req.body.empty()) return json::object();
  try {
    json j = json::parse(req.body);
    if (!j.is_object()) throw Error(ErrorCode::InvalidArgument, "request body must be a JSON object");
    return j;
  } catch (const json::exception& e) {
    throw Error(ErrorCode::InvalidArgument, std::string("malformed JSON: ") + e.what());
  }
}

template <class F>
HttpServer::Handler guarded(F f) {
  return [f](const HttpRequest& req, HttpResponse& res) {
    try {
      f(req, res);
    } catch (const Error& e) {
      send_error(res, e);
    } catch (const std::exception& e) {
      send_error(res, Error(ErrorCode::Internal, e.what()));
    }
  };
}

// (model, version) from a /v2/models/<m>[/versions/<v>]/... match.
std::pair<std::string, std::string> mv_of(const HttpRequest& req) {
  return {req.matches[1].str(), req.matches.size() > 2 ? req.matches[2].str() : std::string()};
}
}  // namespace

struct HttpFrontend::Impl {
  explicit Impl(ServerCore& c) : core(c), http(error_body), metrics(error_body) {}
  // The answers the HTTP layer gives itself (404, 413, 415, malformed gzip) in the KServe error shape.
  static void error_body(int status, const std::string& message, HttpResponse& res) {
    res.status = status;
    res.set_content(json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }
  ServerCore& core;
  HttpServer http, metrics;

  // Decodes and queues; `respond` gets the answer when the scheduler completes the request. The
  // request body (which decoded inputs may view) lives until the answer is sent.
  void infer(const HttpRequest& req, const std::function<void(HttpResponse)>& respond, const std::string& model,
             const std::string& version) {
    const int64_t t0 = now_ns();
    if (core.stopping()) throw Error(ErrorCode::Unavailable, "the server is shutting down", {model});
    auto mv = core.repo->get(model, version);
    int64_t header_len = -1;
    if (req.has_header("Inference-Header-Content-Length")) {
      const std::string v = req.get_header_value("Inference-Header-Content-Length");
      try {
        size_t pos = 0;
        header_len = std::stoll(v, &pos);
        if (pos != v.size() || header_len < 0) throw std::invalid_argument("bad");
      } catch (const std::exception&) {
        throw Error(ErrorCode::InvalidArgument, "Inference-Header-Content-Length '" + v + "' is not a byte count", {model});
      }
    }
    auto ir = std::make_unique<InferRequest>();
    ir->arrival_ns = t0;
    auto info = std::make_shared<HttpInferRequest>();
    try {
      decode_http_request(req.body, header_len, *mv, core.shm, *ir, *info);
    } catch (const Error& e) {
      mv->scheduler->count_failure(FailReason::Other, now_ns() - t0);
      throw;
    }
    ir->complete = [mv, info, respond](const Status& st, FailReason, std::span<const Tensor> outs) {
      HttpResponse res;
      if (!st.ok) {
        send_error(res, st);
        return respond(std::move(res));
      }
      try {
        int64_t out_header_len = -1;
        std::string body = encode_http_response(*mv, *info, outs, out_header_len);
        res.compress = true;  // inference answers only, as Triton (errors and other routes: never)
        if (out_header_len >= 0) {
          res.set_header("Inference-Header-Content-Length", std::to_string(out_header_len));
          res.set_content(std::move(body), "application/octet-stream");
        } else {
          res.set_content(std::move(body), "application/json");
        }
      } catch (const Error& e) {
        send_error(res, e);
      }
      respond(std::move(res));
    };
    mv->scheduler->enqueue(std::move(ir));
  }

  // Route registration with the token check (ServerCore::auth, the same the gRPC front end
  // checks) in front of every handler; open() registers the health routes without it.
  struct Routes {
    HttpServer& http;
    const kserve::TokenSet& auth;
    static void unauthorized(HttpResponse& res) {
      error_body(401, "missing or invalid bearer token (send header 'Authorization: Bearer TOKEN')", res);
      res.set_header("WWW-Authenticate", "Bearer realm=\"quiver\"");
    }
    HttpServer::Handler checked(HttpServer::Handler h) const {
      if (!auth.enabled()) return h;
      return [this, h = std::move(h)](const HttpRequest& req, HttpResponse& res) {
        if (!auth.allows(req.header("Authorization"))) return unauthorized(res);
        h(req, res);
      };
    }
    void Get(const std::string& p, HttpServer::Handler h) { http.Get(p, checked(std::move(h))); }
    void Post(const std::string& p, HttpServer::Handler h) { http.Post(p, checked(std::move(h))); }
    void PostAsync(const std::string& p, HttpServer::AsyncHandler h) {
      if (!auth.enabled()) return http.PostAsync(p, std::move(h));
      http.PostAsync(p, [this, h = std::move(h)](const HttpRequest& req, std::function<void(HttpResponse)> respond) {
        if (auth.allows(req.header("Authorization"))) return h(req, std::move(respond));
        HttpResponse res;
        unauthorized(res);
        respond(std::move(res));
      });
    }
    HttpServer& open() { return http; }
  };
  std::unique_ptr<Routes> routes_;

  void routes() {
    routes_ = std::make_unique<Routes>(Routes{http, core.auth});
    auto& s = *routes_;
    s.open().Get("/v2/health/live", [this](const HttpRequest&, HttpResponse& res) {
      res.status = core.is_live() ? 200 : 400;
    });
    s.open().Get("/v2/health/ready", [this](const HttpRequest&, HttpResponse& res) {
      res.status = core.is_ready() ? 200 : 400;
    });
    s.Get("/v2", guarded([this](const HttpRequest&, HttpResponse& res) {
      inference::ServerMetadataResponse m;
      core.server_metadata(m);
      send_json(res, {{"name", m.name()}, {"version", m.version()},
                      {"extensions", std::vector<std::string>(m.extensions().begin(), m.extensions().end())}});
    }));
    // Before the per-model routes: "stats" would otherwise match as a model name.
    s.Get("/v2/models/stats", guarded([this](const HttpRequest&, HttpResponse& res) {
      inference::ModelStatisticsResponse r;
      core.model_statistics("", "", r);
      send_json(res, stats_json(r));
    }));
    const std::string M = R"(/v2/models/([^/]+)(?:/versions/([0-9]+))?)";
    s.open().Get(M + "/ready", [this](const HttpRequest& req, HttpResponse& res) {
      auto [m, v] = mv_of(req);
      bool ok = false;
      try {
        core.repo->get(m, v);
        ok = core.is_ready();
      } catch (const Error&) {
      }
      res.status = ok ? 200 : 400;
    });
    s.Get(M, guarded([this](const HttpRequest& req, HttpResponse& res) {
      auto [m, v] = mv_of(req);
      inference::ModelMetadataResponse r;
      core.model_metadata(m, v, r);
      auto mv = core.repo->get(m, v);
      auto tensors = [](const auto& list) {
        json a = json::array();
        for (const auto& t : list)
          a.push_back({{"name", t.name()}, {"datatype", t.datatype()},
                       {"shape", std::vector<int64_t>(t.shape().begin(), t.shape().end())}});
        return a;
      };
      send_json(res, {{"name", r.name()},
                      {"versions", std::vector<std::string>(r.versions().begin(), r.versions().end())},
                      {"platform", r.platform()},
                      {"inputs", tensors(r.inputs())},
                      {"outputs", tensors(r.outputs())},
                      {"parameters", {{"sha256", mv->sha256}, {"version", mv->version_str}}}});
    }));
    s.Get(M + "/config", guarded([this](const HttpRequest& req, HttpResponse& res) {
      auto [m, v] = mv_of(req);
      auto mv = core.repo->get(m, v);
      std::string out;
      google::protobuf::util::JsonPrintOptions po;
      po.preserve_proto_field_names = true;
      (void)google::protobuf::util::MessageToJsonString(*mv->config, &out, po);
      json j = json::parse(out);
      int64_fields_to_numbers(j);
      send_json(res, j);
    }));
    s.Get(M + "/stats", guarded([this](const HttpRequest& req, HttpResponse& res) {
      auto [m, v] = mv_of(req);
      inference::ModelStatisticsResponse r;
      core.model_statistics(m, v, r);
      send_json(res, stats_json(r));
    }));
    s.PostAsync(M + "/infer", [this](const HttpRequest& req, std::function<void(HttpResponse)> respond) {
      auto [m, v] = mv_of(req);
      try {
        infer(req, respond, m, v);
      } catch (const Error& e) {
        HttpResponse res;
        send_error(res, e);
        respond(std::move(res));
      }
    });
    // Repository extension.
    s.Post("/v2/repository/index", guarded([this](const HttpRequest& req, HttpResponse& res) {
      json b = body_json(req);
      bool ready = b.contains("ready") && b["ready"].is_boolean() && b["ready"].get<bool>();
      inference::RepositoryIndexResponse r;
      core.repository_index(ready, r);
      json a = json::array();
      for (const auto& m : r.models()) {
        json e = {{"name", m.name()}};
        if (!m.version().empty()) e["version"] = m.version();
        if (!m.state().empty()) e["state"] = m.state();
        if (!m.reason().empty()) e["reason"] = m.reason();
        a.push_back(e);
      }
      send_json(res, a);
    }));
    s.Post(R"(/v2/repository/models/([^/]+)/load)", guarded([this](const HttpRequest& req, HttpResponse& res) {
      json b = body_json(req);
      const std::string model = req.matches[1].str();
      std::string config;
      std::vector<ModelFile> files;
      if (b.contains("parameters") && b["parameters"].is_object()) {
        for (auto it = b["parameters"].begin(); it != b["parameters"].end(); ++it) {
          if (it.key() == "config") {
            if (!it.value().is_string())
              throw Error(ErrorCode::InvalidArgument, "parameter 'config' must be a string", {model});
            config = it.value().get<std::string>();
          } else if (it.key().rfind("file:", 0) == 0) {  // base64 of the file, as Triton's HTTP client sends it
            std::string content;
            if (!it.value().is_string() || !absl::Base64Unescape(it.value().get<std::string>(), &content))
              throw Error(ErrorCode::InvalidArgument, "parameter '" + it.key() + "' must be a base64 string", {model});
            files.push_back({it.key().substr(5), std::move(content)});
          }
        }
      }
      core.load_model(model, config, files);
      res.status = 200;
    }));
    s.Post(R"(/v2/repository/models/([^/]+)/unload)", guarded([this](const HttpRequest& req, HttpResponse& res) {
      core.unload_model(req.matches[1].str());
      res.status = 200;
    }));
    // The system and CUDA shared-memory extensions: the same five routes under their own prefix;
    // they differ in a status row's fields and in what registering takes.
    auto shm_routes = [&](const std::string& ext, ShmKind kind, std::function<json(const ShmManager::Info&)> row,
                          HttpServer::Handler reg) {
      auto status = [this, kind, row](const HttpRequest& req, HttpResponse& res) {
        std::string name = req.matches.size() > 1 ? req.matches[1].str() : "";
        json a = json::array();
        for (const auto& i : core.shm.status(name, kind)) a.push_back(row(i));
        send_json(res, a);
      };
      const std::string region = "/v2/" + ext + "/region/([^/]+)";
      s.Get("/v2/" + ext + "/status", guarded(status));
      s.Get(region + "/status", guarded(status));
      s.Post(region + "/register", guarded(reg));
      s.Post(region + "/unregister", guarded([this, kind](const HttpRequest& req, HttpResponse& res) {
               core.shm.unregister(req.matches[1].str(), kind);
               res.status = 200;
             }));
      s.Post("/v2/" + ext + "/unregister", guarded([this, kind](const HttpRequest&, HttpResponse& res) {
               core.shm.unregister("", kind);
               res.status = 200;
             }));
    };
    shm_routes(
        "systemsharedmemory", ShmKind::System,
        [](const ShmManager::Info& i) {
          return json{{"name", i.name}, {"key", i.key}, {"offset", i.offset}, {"byte_size", i.byte_size}};
        },
        [this](const HttpRequest& req, HttpResponse& res) {
          json b = body_json(req);
          if (!b.contains("key") || !b["key"].is_string() || !b.contains("byte_size") ||
              !b["byte_size"].is_number_unsigned())
            throw Error(ErrorCode::InvalidArgument, "register needs a string 'key' and an unsigned 'byte_size'");
          uint64_t off = 0;
          if (b.contains("offset")) {
            if (!b["offset"].is_number_unsigned()) throw Error(ErrorCode::InvalidArgument, "'offset' must be unsigned");
            off = b["offset"].get<uint64_t>();
          }
          core.shm.register_region(req.matches[1].str(), b["key"].get<std::string>(), off,
                                   b["byte_size"].get<uint64_t>());
          res.status = 200;
        });
    // CUDA: the IPC handle travels base64-encoded as {"b64": ...}.
    shm_routes(
        "cudasharedmemory", ShmKind::Cuda,
        [](const ShmManager::Info& i) {
          return json{{"name", i.name}, {"device_id", i.device_id}, {"byte_size", i.byte_size}};
        },
        [this](const HttpRequest& req, HttpResponse& res) {
          json b = body_json(req);
          if (!b.contains("raw_handle") || !b["raw_handle"].is_object() || !b["raw_handle"].contains("b64") ||
              !b["raw_handle"]["b64"].is_string())
            throw Error(ErrorCode::InvalidArgument, "register needs 'raw_handle': {\"b64\": <base64 string>}");
          if (!b.contains("byte_size") || !b["byte_size"].is_number_unsigned())
            throw Error(ErrorCode::InvalidArgument, "register needs an unsigned 'byte_size'");
          int64_t device = 0;
          if (b.contains("device_id")) {
            if (!b["device_id"].is_number_integer()) throw Error(ErrorCode::InvalidArgument, "'device_id' must be an integer");
            device = b["device_id"].get<int64_t>();
          }
          std::string handle;
          if (!absl::Base64Unescape(b["raw_handle"]["b64"].get<std::string>(), &handle))
            throw Error(ErrorCode::InvalidArgument, "'raw_handle.b64' is not base64");
          core.shm.register_cuda(req.matches[1].str(), handle, device, b["byte_size"].get<uint64_t>());
          res.status = 200;
        });
    // Trace / logging settings (minimal: stored and reported).
    auto trace = [this](const HttpRequest& req, HttpResponse& res) {
      std::map<std::string, std::vector<std::string>> upd;
      if (req.method == "POST") {
        json b = body_json(req);
        for (auto it = b.begin(); it != b.end(); ++it) {
          std::vector<std::string> v;
          if (it.value().is_array()) {
            for (const auto& x : it.value()) v.push_back(x.is_string() ? x.get<std::string>() : x.dump());
          } else {
            v.push_back(it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
          }
          upd[it.key()] = v;
        }
      }
      json out = json::object();
      for (const auto& [k, v] : core.trace_settings(upd)) out[k] = v;
      send_json(res, out);
    };
    s.Get("/v2/trace/setting", guarded(trace));
    s.Post("/v2/trace/setting", guarded(trace));
    auto logging = [this](const HttpRequest& req, HttpResponse& res) {
      std::map<std::string, ServerCore::LogValue> upd;
      if (req.method == "POST") {
        json b = body_json(req);
        for (auto it = b.begin(); it != b.end(); ++it) {
          ServerCore::LogValue x;
          if (it.value().is_boolean()) { x.kind = 0; x.b = it.value().get<bool>(); }
          else if (it.value().is_number_unsigned()) { x.kind = 1; x.u = it.value().get<uint32_t>(); }
          else if (it.value().is_string()) { x.kind = 2; x.s = it.value().get<std::string>(); }
          else throw Error(ErrorCode::InvalidArgument, "log setting '" + it.key() + "' has an unsupported value");
          upd[it.key()] = x;
        }
      }
      json out = json::object();
      for (const auto& [k, v] : core.log_settings(upd)) {
        if (v.kind == 0) out[k] = v.b;
        else if (v.kind == 1) out[k] = v.u;
        else out[k] = v.s;
      }
      send_json(res, out);
    };
    s.Get("/v2/logging", guarded(logging));
    s.Post("/v2/logging", guarded(logging));
  }
};

HttpFrontend::HttpFrontend(ServerCore& core) : impl_(std::make_unique<Impl>(core)) {}
HttpFrontend::~HttpFrontend() { shutdown(); }

void HttpFrontend::start(int port, int metrics_port, int& bound_http, int& bound_metrics) {
  const ServerOptions& o = impl_->core.opt;
  HttpServer::Options ho;
  ho.bind = o.bind;
  ho.descriptors = impl_->core.descriptors;
  if (port >= 0) {
    ho.port = port;
    ho.threads = o.http_threads;
    ho.max_body = static_cast<size_t>(o.max_message_bytes);
    ho.max_connections = static_cast<unsigned>(std::max(0, o.http_max_connections));
    ho.overflow_paths = {"/v2/health/"};
    ho.header_timeout_s = o.http_header_timeout_s;
    ho.body_timeout_s = o.http_body_timeout_s;
    ho.min_body_rate = static_cast<uint64_t>(std::max<int64_t>(0, o.http_min_body_rate));
    ho.idle_timeout_s = static_cast<unsigned>(std::max(0, o.http_idle_timeout_s));
    impl_->routes();
    bound_http = impl_->http.start(ho);
  }
  if (metrics_port >= 0) {
    impl_->metrics.Get("/metrics", [this](const HttpRequest&, HttpResponse& res) {
      res.set_content(impl_->core.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
    ho.name = "metrics";
    ho.port = metrics_port;
    ho.threads = 1;
    ho.max_body = 1 << 16;
    ho.max_connections = 256;  // scrapers; the overflow reserve still answers /metrics
    ho.overflow_paths = {"/metrics"};
    bound_metrics = impl_->metrics.start(ho);
  }
}

void HttpFrontend::shutdown() {
  impl_->http.stop();  // inference requests have completed (ServerCore::shutdown drains them first)
  impl_->metrics.stop();
}

}  // namespace quiver::serve
