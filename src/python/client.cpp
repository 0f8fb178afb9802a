// quiver.Client: the C++ inference client (balancing, failover, local fallback, coalescing) for Python.
//
// Sync calls release the GIL while the request is in flight. Async calls return a
// concurrent.futures.Future; the C++ completion callback (on a client thread, which must not wait
// for the GIL) only queues the result, and one delivery thread per client takes the GIL to set
// the futures. Closing a client (close(), `with`, garbage collection or interpreter exit) cancels
// what is in flight and settles every future.
#include <pybind11/stl.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "python/common.hpp"
#include "quiver/client/client.hpp"

namespace quiver::python {

namespace {

using client::InferOptions;
using client::InferResult;

// ---- result types
struct Provenance {
  std::string server, model, version, sha256;
  bool fallback = false;
  int attempts = 0;
};

py::handle g_result_type;  // quiver.InferResult: a dict subclass with provenance, request_id, client_seconds

py::object make_result(InferResult&& r) {
  py::object res = g_result_type();
  for (auto& o : r.outputs) {
    // Views of a shared-memory slot hold the slot: a copy frees it for the next request.
    Tensor t = r.outputs_in_shared_memory ? o.tensor.clone() : std::move(o.tensor);
    res[py::str(o.name)] = to_numpy(std::move(t), /*strings_as_bytes=*/true, /*keep_views=*/true);
  }
  const auto& p = r.provenance;
  res.attr("provenance") = py::cast(Provenance{p.server, p.model, p.version, p.sha256, p.fallback, p.attempts});
  res.attr("request_id") = py::str(r.request_id);
  res.attr("client_seconds") = py::float_(static_cast<double>(r.client_ns) * 1e-9);
  return res;
}

// ---- delivery of async results to Python futures
struct Pending {
  py::object future;                // concurrent.futures.Future
  std::vector<py::object> owners;   // input arrays read in place by the request
  InferResult result;
};

class Delivery {
 public:
  ~Delivery() { stop(); }

  // From any thread, without the GIL.
  void push(Pending* p) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(p);
    cv_.notify_one();
  }
  void started() {
    std::lock_guard<std::mutex> lock(mu_);
    ++outstanding_;
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  }
  void abandoned() {
    std::lock_guard<std::mutex> lock(mu_);
    --outstanding_;
    cv_.notify_one();
  }
  // Waits (GIL released by the caller) until every started request is delivered.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return !queue_.empty() || (stopping_ && outstanding_ == 0); });
      if (queue_.empty()) return;
      std::deque<Pending*> batch;
      batch.swap(queue_);
      lock.unlock();
      {
        py::gil_scoped_acquire gil;
        for (Pending* p : batch) deliver(std::unique_ptr<Pending>(p));
      }
      lock.lock();
      outstanding_ -= static_cast<int64_t>(batch.size());
    }
  }

  static void deliver(std::unique_ptr<Pending> p) {
    try {
      if (!p->future.attr("set_running_or_notify_cancel")().cast<bool>()) return;  // cancelled by the caller
      if (p->result.error) p->future.attr("set_exception")(error_object(*p->result.error));
      else p->future.attr("set_result")(make_result(std::move(p->result)));
    } catch (py::error_already_set& e) {
      // Converting the result failed (e.g. out of memory): the future gets that error.
      try {
        p->future.attr("set_exception")(e.value());
      } catch (py::error_already_set&) {
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending*> queue_;
  int64_t outstanding_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

// ---- the client
std::string path_string(py::handle h) { return py::module_::import("os").attr("fspath")(h).cast<std::string>(); }

// "grpc://a:8001,b:8001", "triton+grpc://a:8001", "grpcs://a:8001" or "a:8001" -> endpoints.
void add_urls(py::handle urls, client::ClientOptions& o) {
  std::vector<std::string> list;
  if (py::isinstance<py::str>(urls)) list.push_back(urls.cast<std::string>());
  else
    for (py::handle u : urls) list.push_back(u.cast<std::string>());
  for (std::string u : list) {
    for (const char* scheme : {"triton+grpc://", "grpc://", "grpcs://", "triton+grpcs://"}) {
      if (u.rfind(scheme, 0) == 0) {
        if (std::string_view(scheme).find("grpcs") != std::string_view::npos) o.tls.enabled = true;
        u = u.substr(std::string_view(scheme).size());
        break;
      }
    }
    if (u.find("://") != std::string::npos)
      throw_error(ErrorCode::InvalidArgument, "unsupported URL '" + u + "': quiver.Client speaks gRPC (grpc://HOST:PORT)");
    if (u.find('/') != std::string::npos)
      throw_error(ErrorCode::InvalidArgument,
                  "URL '" + u + "' names a model: give servers here and the model to infer(model, ...)");
    size_t start = 0;
    while (start <= u.size()) {
      size_t comma = u.find(',', start);
      std::string ep = u.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!ep.empty()) {
        client::validate_endpoint(ep, "urls");
        o.discovery.endpoints.push_back(ep);
      }
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
}

void set_tls(py::handle tls, client::TlsOptions& t) {
  if (tls.is_none()) return;
  if (py::isinstance<py::bool_>(tls)) {
    t.enabled = tls.cast<bool>();
    return;
  }
  t.enabled = true;
  if (py::isinstance<py::dict>(tls)) {
    for (auto kv : py::reinterpret_borrow<py::dict>(tls)) {
      const std::string k = kv.first.cast<std::string>();
      const std::string v = path_string(kv.second);
      if (k == "root_certs" || k == "root_certs_file") t.root_certs_file = v;
      else if (k == "client_cert" || k == "client_cert_file") t.client_cert_file = v;
      else if (k == "client_key" || k == "client_key_file") t.client_key_file = v;
      else if (k == "server_name" || k == "server_name_override") t.server_name_override = v;
      else
        throw_error(ErrorCode::InvalidArgument,
                    "unknown tls option '" + k + "' (root_certs, client_cert, client_key, server_name)");
    }
    return;
  }
  t.root_certs_file = path_string(tls);  // a CA bundle
}

int64_t seconds_to_ns(py::handle s, const char* what) {
  const double v = s.cast<double>();
  if (!(v >= 0) || v > 1e9) throw_error(ErrorCode::InvalidArgument, std::string(what) + " must be a number of seconds >= 0");
  return static_cast<int64_t>(v * 1e9);
}

struct RemoteModelMetadata {
  std::string name, version, platform, source, sha256;
  int64_t max_batch_size = 0;
  std::vector<NodeArg> inputs, outputs;
};

class PyClient;
std::mutex g_live_mu;
std::set<PyClient*> g_live;  // closed at interpreter exit (the delivery thread needs a live interpreter)

class PyClient {
 public:
  PyClient(py::object urls, py::object servers_file, py::object dns_names, py::object fallback_repository,
           py::object fallback, py::object tls, py::object timeout, bool coalesce, double coalesce_max_delay,
           int64_t coalesce_max_batch, bool shared_memory, bool shared_memory_outputs, double startup_wait,
           py::object token_file) {
    client::ClientOptions o;
    if (!urls.is_none()) add_urls(urls, o);
    if (!servers_file.is_none()) o.discovery.servers_file = path_string(servers_file);
    if (!dns_names.is_none()) {
      if (py::isinstance<py::str>(dns_names)) o.discovery.dns_names.push_back(dns_names.cast<std::string>());
      else o.discovery.dns_names = dns_names.cast<std::vector<std::string>>();
    }
    if (!fallback_repository.is_none()) o.fallback_repository = path_string(fallback_repository);
    o.fallback = fallback.is_none() ? (o.fallback_repository.empty() ? client::FallbackMode::Off : client::FallbackMode::OnFailure)
                                    : client::fallback_mode_from_string(fallback.cast<std::string>());
    if (o.fallback != client::FallbackMode::Off && o.fallback_repository.empty())
      throw_error(ErrorCode::InvalidArgument, "fallback needs fallback_repository (the models to run locally)");
    if (o.discovery.endpoints.empty() && o.discovery.servers_file.empty() && o.discovery.dns_names.empty() &&
        o.fallback != client::FallbackMode::AlwaysLocal)
      throw_error(ErrorCode::InvalidArgument,
                  "no servers: give urls, servers_file or dns_names (or fallback='always-local' with a fallback_repository)");
    set_tls(tls, o.tls);
    if (!token_file.is_none()) o.auth_token_file = path_string(token_file);
    if (!(startup_wait >= 0)) throw_error(ErrorCode::InvalidArgument, "startup_wait must be >= 0 seconds");
    if (!timeout.is_none()) o.default_timeout_ns = seconds_to_ns(timeout, "timeout");
    o.shared_memory = shared_memory;
    o.shared_memory_outputs = shared_memory_outputs;
    o.startup_wait_ns = static_cast<int64_t>(startup_wait * 1e9);
    const bool wait_for_a_server = o.fallback != client::FallbackMode::AlwaysLocal && o.startup_wait_ns > 0;
    const int64_t wait_ns = o.startup_wait_ns;
    client::CoalesceOptions co;
    co.max_delay_ns = static_cast<int64_t>(coalesce_max_delay * 1e9);
    co.max_batch = coalesce_max_batch;
    {
      py::gil_scoped_release nogil;
      client_ = std::make_shared<client::Client>(std::move(o));
      // A server still starting when the analysis starts: its first requests should not all fall
      // back. Returns early once one server answers; with none after startup_wait, requests fall
      // back or fail (Unavailable) as they would anyway.
      if (wait_for_a_server) client_->wait_for_serving(1, wait_ns);
      if (coalesce) batching_ = std::make_shared<client::BatchingClient>(*client_, co);
    }
    std::lock_guard<std::mutex> lock(g_live_mu);
    g_live.insert(this);
  }
  ~PyClient() {
    close();
    std::lock_guard<std::mutex> lock(g_live_mu);
    g_live.erase(this);
  }

  py::object infer(const std::string& model, py::handle inputs, py::handle outputs, py::handle version,
                   py::handle timeout, uint32_t priority, py::handle request_id) {
    auto [cl, bc] = handles();
    std::vector<py::object> owners;
    std::vector<NamedTensor> in = convert(inputs, owners, false);
    InferOptions opt = options(outputs, version, timeout, priority, request_id);
    InferResult r;
    {
      py::gil_scoped_release nogil;
      r = bc ? bc->infer(model, std::move(in), opt) : cl->infer(model, std::move(in), opt);
    }
    if (r.error) throw *r.error;
    return make_result(std::move(r));
  }

  py::object infer_async(const std::string& model, py::handle inputs, py::handle outputs, py::handle version,
                         py::handle timeout, uint32_t priority, py::handle request_id) {
    auto [cl, bc] = handles();
    auto pending = std::make_unique<Pending>();
    // Coalesced requests wait for company holding their inputs: copies, so the caller may reuse
    // its arrays at once (a plain request copies them into its message before infer_async returns).
    std::vector<NamedTensor> in = convert(inputs, pending->owners, bc != nullptr);
    InferOptions opt = options(outputs, version, timeout, priority, request_id);
    static py::handle future_type = py::object(py::module_::import("concurrent.futures").attr("Future")).release();
    pending->future = future_type();
    py::object future = pending->future;
    std::shared_ptr<Delivery> delivery = delivery_;
    delivery->started();
    Pending* raw = pending.release();
    auto done = [delivery, raw](InferResult r) {
      raw->result = std::move(r);
      delivery->push(raw);
    };
    try {
      py::gil_scoped_release nogil;
      if (bc) bc->infer_async(model, std::move(in), opt, done);
      else cl->infer_async(model, std::move(in), opt, done);
    } catch (...) {  // refused before anything was queued: nothing will call `done`
      delete raw;
      delivery->abandoned();
      throw;
    }
    return future;
  }

  RemoteModelMetadata model_metadata(const std::string& model, py::handle version) {
    auto [cl, bc] = handles();
    std::shared_ptr<const client::ModelMeta> m;
    {
      py::gil_scoped_release nogil;
      m = cl->model_metadata(model, version.is_none() ? std::string() : py::str(version).cast<std::string>());
    }
    RemoteModelMetadata r;
    r.name = m->info.name;
    r.version = m->info.version;
    r.platform = m->platform;
    r.source = m->source;
    r.sha256 = m->info.sha256;
    r.max_batch_size = m->info.max_batch;
    for (const auto& t : m->info.inputs) r.inputs.push_back({t.name, t.shape, t.dtype});
    for (const auto& t : m->info.outputs) r.outputs.push_back({t.name, t.shape, t.dtype});
    return r;
  }

  py::dict report() {
    auto [cl, bc] = handles();
    client::ClientReport r = cl->report();
    py::dict d;
    d["requests"] = r.requests;
    d["completed"] = r.completed;
    d["failed"] = r.failed;
    d["retries"] = r.retries;
    d["fallbacks"] = r.fallbacks;
    py::list servers;
    for (const auto& s : r.servers) {
      py::dict sd;
      sd["address"] = s.address;
      sd["serving"] = s.serving;
      sd["removed"] = s.removed;
      sd["outstanding"] = s.outstanding;
      sd["requests"] = s.requests;
      sd["successes"] = s.successes;
      sd["failures"] = s.failures;
      sd["retries"] = s.retries;
      sd["breaker_trips"] = s.breaker_trips;
      servers.append(sd);
    }
    d["servers"] = servers;
    if (bc) {
      client::CoalesceStats c = bc->stats();
      py::dict cd;
      cd["requests"] = c.requests;
      cd["rpcs"] = c.rpcs;
      cd["rows"] = c.rows;
      cd["full_flushes"] = c.full_flushes;
      cd["timer_flushes"] = c.timer_flushes;
      cd["direct"] = c.direct;
      d["coalescing"] = cd;
    }
    return d;
  }

  bool wait_for_serving(int n, double timeout) {
    auto [cl, bc] = handles();
    py::gil_scoped_release nogil;
    return cl->wait_for_serving(n, static_cast<int64_t>(timeout * 1e9));
  }

  void refresh() {
    auto [cl, bc] = handles();
    py::gil_scoped_release nogil;
    cl->refresh_now();
  }

  // Cancels what is in flight (their futures get quiver.Cancelled) and waits until every future is
  // settled. Sync calls running in other threads finish first. Idempotent.
  void close() {
    std::shared_ptr<client::Client> cl;
    std::shared_ptr<client::BatchingClient> bc;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cl = std::move(client_);
      bc = std::move(batching_);
    }
    py::gil_scoped_release nogil;
    bc.reset();  // sends what it holds
    cl.reset();  // the last reference cancels in-flight requests: their callbacks run now
    if (delivery_) delivery_->stop();
  }

  bool closed() {
    std::lock_guard<std::mutex> lock(mu_);
    return client_ == nullptr;
  }

  static void close_all() {
    std::vector<PyClient*> live;
    {
      std::lock_guard<std::mutex> lock(g_live_mu);
      live.assign(g_live.begin(), g_live.end());
    }
    for (PyClient* c : live) c->close();
  }

 private:
  std::pair<std::shared_ptr<client::Client>, std::shared_ptr<client::BatchingClient>> handles() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!client_) throw_error(ErrorCode::Cancelled, "the client is closed");
    return {client_, batching_};
  }

  static std::vector<NamedTensor> convert(py::handle inputs, std::vector<py::object>& owners, bool copy) {
    if (!PyDict_Check(inputs.ptr()) && !PyObject_HasAttrString(inputs.ptr(), "keys"))
      throw_error(ErrorCode::InvalidArgument, "inputs must be a dict {input name: numpy array}");
    std::vector<NamedTensor> in;
    for (auto kv : py::dict(py::reinterpret_borrow<py::object>(inputs))) {
      std::string name = kv.first.cast<std::string>();
      InputArray a;
      to_tensor(kv.second, name, DType::Undefined, a);
      if (copy && a.tensor.is_view()) a.tensor = a.tensor.clone();
      else if (a.owner) owners.push_back(std::move(a.owner));
      in.push_back({std::move(name), std::move(a.tensor)});
    }
    return in;
  }

  static InferOptions options(py::handle outputs, py::handle version, py::handle timeout, uint32_t priority,
                              py::handle request_id) {
    InferOptions o;
    if (!outputs.is_none()) {
      if (py::isinstance<py::str>(outputs)) throw_error(ErrorCode::InvalidArgument, "outputs must be a list of names");
      o.outputs = outputs.cast<std::vector<std::string>>();
    }
    if (!version.is_none()) o.model_version = py::str(version).cast<std::string>();
    if (!timeout.is_none()) o.timeout_ns = std::max<int64_t>(1, seconds_to_ns(timeout, "timeout"));
    o.priority = priority;
    if (!request_id.is_none()) o.request_id = request_id.cast<std::string>();
    return o;
  }

  std::mutex mu_;
  std::shared_ptr<client::Client> client_;
  std::shared_ptr<client::BatchingClient> batching_;
  std::shared_ptr<Delivery> delivery_ = std::make_shared<Delivery>();
};

}  // namespace

void register_client(py::module_& m) {
  client::register_remote_backend();  // InferenceSession("model.remote.json") goes to servers

  py::dict ns;
  ns["__module__"] = "quiver";
  ns["__doc__"] =
      "The outputs of one request: a dict {output name: numpy array} with the request's provenance\n"
      "(server, model, version, sha256, fallback, attempts), request_id and client_seconds.";
  ns["__slots__"] = py::make_tuple("provenance", "request_id", "client_seconds");
  py::object result_type = py::module_::import("builtins").attr("type")(
      "InferResult", py::make_tuple(py::handle(reinterpret_cast<PyObject*>(&PyDict_Type))), ns);
  g_result_type = result_type.inc_ref();
  m.add_object("InferResult", result_type);

  py::class_<Provenance>(m, "Provenance",
                         "Where a result came from: server ('host:port', or 'local:<repository>' for the\n"
                         "fallback), model and version as answered, sha256 of the model file (when the server\n"
                         "or the fallback reports it), fallback (answered in-process), attempts (RPCs made).")
      .def_readonly("server", &Provenance::server)
      .def_readonly("model", &Provenance::model)
      .def_readonly("version", &Provenance::version)
      .def_readonly("sha256", &Provenance::sha256)
      .def_readonly("fallback", &Provenance::fallback)
      .def_readonly("attempts", &Provenance::attempts)
      .def("__repr__", [](const Provenance& p) {
        return "Provenance(server='" + p.server + "', model='" + p.model + "', version='" + p.version + "', sha256='" +
               p.sha256 + "', fallback=" + (p.fallback ? "True" : "False") + ", attempts=" + std::to_string(p.attempts) +
               ")";
      });

  py::class_<RemoteModelMetadata>(m, "RemoteModelMetadata",
                                  "A served model's metadata and config as the client caches them.")
      .def_readonly("name", &RemoteModelMetadata::name)
      .def_readonly("version", &RemoteModelMetadata::version)
      .def_readonly("platform", &RemoteModelMetadata::platform)
      .def_readonly("source", &RemoteModelMetadata::source)
      .def_readonly("sha256", &RemoteModelMetadata::sha256)
      .def_readonly("max_batch_size", &RemoteModelMetadata::max_batch_size)
      .def_readonly("inputs", &RemoteModelMetadata::inputs)
      .def_readonly("outputs", &RemoteModelMetadata::outputs)
      .def("__repr__", [](const RemoteModelMetadata& r) {
        return "<quiver.RemoteModelMetadata " + r.name + " version=" + r.version + " from " + r.source + ">";
      });

  py::class_<PyClient>(
      m, "Client",
      "Quiver's inference client: KServe v2 gRPC to `quiver serve` or Triton servers, balanced over\n"
      "many servers, failing over, and falling back to in-process inference with the same engine.\n\n"
      "Client(urls=None, *, servers_file=None, dns_names=None, fallback_repository=None, fallback=None,\n"
      "       tls=None, timeout=None, coalesce=False, coalesce_max_delay=0.0005, coalesce_max_batch=0,\n"
      "       shared_memory=False, shared_memory_outputs=False, startup_wait=2.0, token_file=None)\n\n"
      "urls: 'host:port', 'grpc://h1:p1,h2:p2' ('grpcs://' turns TLS on) or a list of them.\n"
      "servers_file: one endpoint per line, re-read when it changes. fallback: 'off', 'on-failure'\n"
      "(default when fallback_repository is given) or 'always-local'. tls: True, a CA bundle path, or\n"
      "{'root_certs', 'client_cert', 'client_key', 'server_name'}. timeout: default deadline (s).\n"
      "token_file: a file whose first token (blank lines and '#' comments skipped) is sent as\n"
      "'authorization: Bearer TOKEN' to servers started with --auth-token-file.\n"
      "startup_wait: the constructor waits up to this long (s) until a server answers its readiness\n"
      "probe (0: no wait; not with fallback='always-local').\n"
      "coalesce: merge concurrent requests (e.g. from many Python threads) for the same model along\n"
      "the batch dimension into one RPC, waiting at most coalesce_max_delay seconds for company.\n"
      "Errors are the C++ client's, as quiver exceptions (Unavailable, DeadlineExceeded, NotFound, ...).")
      .def(py::init<py::object, py::object, py::object, py::object, py::object, py::object, py::object, bool, double,
                    int64_t, bool, bool, double, py::object>(),
           py::arg("urls") = py::none(), py::kw_only(), py::arg("servers_file") = py::none(),
           py::arg("dns_names") = py::none(), py::arg("fallback_repository") = py::none(),
           py::arg("fallback") = py::none(), py::arg("tls") = py::none(), py::arg("timeout") = py::none(),
           py::arg("coalesce") = false, py::arg("coalesce_max_delay") = 0.0005, py::arg("coalesce_max_batch") = 0,
           py::arg("shared_memory") = false, py::arg("shared_memory_outputs") = false, py::arg("startup_wait") = 2.0,
           py::arg("token_file") = py::none())
      .def("infer", &PyClient::infer, py::arg("model"), py::arg("inputs"), py::arg("outputs") = py::none(),
           py::arg("version") = py::none(), py::arg("timeout") = py::none(), py::arg("priority") = 0,
           py::arg("request_id") = py::none(),
           "Sends one request and waits (GIL released). inputs: {name: numpy array}; the array's dtype is\n"
           "the wire type. outputs: names to return (None: all). Returns an InferResult (a dict of numpy\n"
           "arrays with .provenance); raises the request's error.")
      .def("infer_async", &PyClient::infer_async, py::arg("model"), py::arg("inputs"), py::arg("outputs") = py::none(),
           py::arg("version") = py::none(), py::arg("timeout") = py::none(), py::arg("priority") = 0,
           py::arg("request_id") = py::none(),
           "Like infer() but returns at once with a concurrent.futures.Future of the InferResult.\n"
           "The input arrays may be reused as soon as it returns. Cancelling the future drops the result\n"
           "(the request itself still completes).")
      .def("model_metadata", &PyClient::model_metadata, py::arg("model"), py::arg("version") = py::none(),
           "The model's inputs, outputs, max batch and source (fetched once, then cached).")
      .def("report", &PyClient::report, "Counters: requests, completed, failed, retries, fallbacks, per server.")
      .def("wait_for_serving", &PyClient::wait_for_serving, py::arg("n") = 1, py::arg("timeout") = 5.0,
           "Waits until at least n servers are serving; False on timeout.")
      .def("refresh", &PyClient::refresh, "Re-reads discovery and probes servers now.")
      .def("close", &PyClient::close,
           "Cancels in-flight requests (their futures raise quiver.Cancelled) and stops the client's threads.")
      .def_property_readonly("closed", &PyClient::closed)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyClient& c, py::args) { c.close(); });

  // Delivery threads need a live interpreter: settle every client before it goes.
  py::module_::import("atexit").attr("register")(py::cpp_function([] { PyClient::close_all(); }));
}

}  // namespace quiver::python
