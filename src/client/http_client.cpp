// KServe v2 HTTP/REST client on cpp-httplib (HTTP) and nlohmann-json (JSON); metadata and config
// JSON go through protobuf's JSON parser into the same messages the gRPC path decodes.
#include "kserve/auth.hpp"
#include "quiver/client/http.hpp"

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "client/metadata.hpp"
#include "kserve/json_tensors.hpp"
#include "kserve/tensors.hpp"
#include "quiver/core/shape.hpp"
#include "quiver/core/util.hpp"

namespace quiver::client {

using nlohmann::json;

namespace {

ErrorCode code_of_http(int status) {
  switch (status) {
    case 400: return ErrorCode::InvalidArgument;
    case 404: return ErrorCode::NotFound;
    case 408:
    case 504: return ErrorCode::DeadlineExceeded;
    case 429: return ErrorCode::ResourceExhausted;
    case 499: return ErrorCode::Cancelled;
    case 501: return ErrorCode::Unsupported;
    case 502:
    case 503: return ErrorCode::Unavailable;
    default: return ErrorCode::Internal;
  }
}

// "HOST:PORT", "[V6]:PORT", "http://HOST:PORT[/]" -> host, port.
std::pair<std::string, int> split_address(const std::string& address) {
  std::string a = address;
  if (a.rfind("http://", 0) == 0) a = a.substr(7);
  else if (a.rfind("https://", 0) == 0)
    throw Error(ErrorCode::Unsupported, "HTTPS is not supported by the HTTP client ('" + address + "')");
  while (!a.empty() && a.back() == '/') a.pop_back();
  size_t colon = a.rfind(':');
  if (colon == std::string::npos || colon + 1 == a.size())
    throw Error(ErrorCode::InvalidArgument, "HTTP server address '" + address + "' must be HOST:PORT");
  std::string host = a.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    size_t pos = 0;
    port = std::stoi(a.substr(colon + 1), &pos);
    if (pos != a.size() - colon - 1 || port <= 0 || port > 65535) throw std::invalid_argument("port");
  } catch (const std::exception&) {
    throw Error(ErrorCode::InvalidArgument, "bad port in HTTP server address '" + address + "'");
  }
  return {host, port};
}

std::string path_of(const std::string& model, const std::string& version) {
  std::string p = "/v2/models/" + httplib::detail::encode_query_param(model);
  if (!version.empty()) p += "/versions/" + httplib::detail::encode_query_param(version);
  return p;
}

// The server's message from a JSON {"error": "..."} body, else the body itself (shortened).
std::string error_message(const httplib::Response& res) {
  try {
    json j = json::parse(res.body);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) return j["error"].get<std::string>();
  } catch (const json::exception&) {
  }
  std::string b = res.body.substr(0, 200);
  return b.empty() ? "HTTP " + std::to_string(res.status) : "HTTP " + std::to_string(res.status) + ": " + b;
}

uint64_t u64_at(const json& obj, const char* a, const char* b) {
  if (!obj.is_object() || !obj.contains(a)) return 0;
  const json& x = obj[a];
  if (!x.is_object() || !x.contains(b)) return 0;
  const json& y = x[b];
  if (y.is_number_unsigned() || y.is_number_integer()) return y.get<uint64_t>();
  if (y.is_string()) return std::stoull(y.get<std::string>());  // protobuf-JSON style 64-bit strings
  return 0;
}

// Where this request asked the server to write an output: region offset and bytes given.
struct ShmOutputPlace {
  uint64_t offset = 0, byte_size = 0;
};

// An output the server wrote into the request's shared-memory slot: checked, then viewed. Triton
// (and quiver serve) answer such an output with name, datatype and shape only, so it is found
// where the request placed it; older servers that name the region in `parameters` are checked
// against that too.
Tensor shm_output(DType dt, const std::vector<int64_t>& dims, const json* p, const ShmOutputPlace& place,
                  const HttpShmSlot* slot, const ErrorWhere& w) {
  if (!slot) throw Error(ErrorCode::Parse, "output was written to shared memory this request did not give", w);
  uint64_t off = place.offset;
  if (p && p->contains(kserve::kShmRegion)) {
    if (!(*p)[kserve::kShmRegion].is_string() || (*p)[kserve::kShmRegion].get<std::string>() != slot->region)
      throw Error(ErrorCode::Parse, "output was written to a shared-memory region this request did not give", w);
    if (p->contains(kserve::kShmOffset)) {
      const json& v = (*p)[kserve::kShmOffset];
      if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
        throw Error(ErrorCode::Parse, std::string(kserve::kShmOffset) + " of the output is not a non-negative integer", w);
      off = v.get<uint64_t>();
    }
  }
  if (dt == DType::String) throw Error(ErrorCode::Unsupported, "BYTES output in shared memory", w);
  const uint64_t size = static_cast<uint64_t>(numel(dims)) * dtype_size(dt);
  if (size > place.byte_size)
    throw Error(ErrorCode::Parse,
                "shared-memory output " + dims_to_string(dims) + " needs " + std::to_string(size) +
                    " bytes, the request gave it " + std::to_string(place.byte_size),
                w);
  if (off != place.offset)
    throw Error(ErrorCode::Parse,
                "shared-memory output at offset " + std::to_string(off) + ", the request placed it at " +
                    std::to_string(place.offset),
                w);
  if (off < slot->offset || off - slot->offset > slot->byte_size || size > slot->byte_size - (off - slot->offset))
    throw Error(ErrorCode::Parse, "shared-memory output at offset " + std::to_string(off) + " lies outside the slot", w);
  return Tensor::view(dt, dims, static_cast<const void*>(slot->base + off));
}

}  // namespace

struct HttpClient::Impl {
  std::string address;
  HttpOptions opt;
  httplib::Client cli;
  int64_t read_timeout_ns = -1;

  Impl(const std::string& addr, HttpOptions o, std::pair<std::string, int> hp)
      : address(addr), opt(o), cli(hp.first, hp.second) {
    cli.set_keep_alive(true);
    cli.set_tcp_nodelay(true);  // else Nagle + delayed ACK add ~40 ms per exchange
    cli.set_connection_timeout(std::chrono::nanoseconds(opt.connect_timeout_ns));
    cli.set_write_timeout(std::chrono::nanoseconds(opt.timeout_ns));
    set_timeout(opt.timeout_ns);
    cli.set_compress(opt.gzip);
    cli.set_decompress(true);
    if (!opt.auth_token_file.empty())
      cli.set_default_headers({{"Authorization", kserve::authorization_from_token_file(opt.auth_token_file)}});
  }

  void set_timeout(int64_t ns) {
    if (ns == read_timeout_ns) return;
    cli.set_read_timeout(std::chrono::nanoseconds(ns));
    read_timeout_ns = ns;
  }

  std::string transport_error(httplib::Error e) const {
    return "cannot reach HTTP server " + address + ": " + httplib::to_string(e);
  }

  // GET returning the 200 body; throws quiver::Error with the server's message otherwise.
  std::string get(const std::string& path, const ErrorWhere& where) {
    set_timeout(opt.timeout_ns);
    auto res = cli.Get(path);
    if (!res) throw Error(ErrorCode::Unavailable, transport_error(res.error()) + " (GET " + path + ")", where);
    if (res->status != 200)
      throw Error(code_of_http(res->status), address + " GET " + path + ": " + error_message(*res), where);
    return std::move(res->body);
  }

  InferResult infer(const std::string& model, const std::vector<NamedTensor>& inputs, const InferOptions& o,
                    const HttpShmSlot* slot);

  void post_ok(const std::string& path, const std::string& body, const ErrorWhere& where) {
    set_timeout(opt.timeout_ns);
    auto res = cli.Post(path, body, "application/json");
    if (!res) throw Error(ErrorCode::Unavailable, transport_error(res.error()) + " (POST " + path + ")", where);
    if (res->status != 200)
      throw Error(code_of_http(res->status), address + " POST " + path + ": " + error_message(*res), where);
  }
};

HttpClient::HttpClient(const std::string& address, HttpOptions options)
    : impl_(std::make_unique<Impl>(address, options, split_address(address))) {}

HttpClient::~HttpClient() = default;

const std::string& HttpClient::address() const { return impl_->address; }

bool HttpClient::server_ready(std::string* why) {
  impl_->set_timeout(impl_->opt.timeout_ns);
  auto res = impl_->cli.Get("/v2/health/ready");
  if (!res) {
    if (why) *why = impl_->transport_error(res.error());
    return false;
  }
  if (res->status != 200) {
    if (why) *why = impl_->address + " is not ready (HTTP " + std::to_string(res->status) + ")";
    return false;
  }
  return true;
}

ModelMeta HttpClient::model_metadata(const std::string& model, const std::string& version) {
  const ErrorWhere where{.model = model};
  const std::string base = path_of(model, version);
  std::string mbody = impl_->get(base, where);
  std::string cbody = impl_->get(base + "/config", where);
  google::protobuf::util::JsonParseOptions po;
  po.ignore_unknown_fields = true;
  inference::ModelMetadataResponse m;
  if (auto st = google::protobuf::util::JsonStringToMessage(mbody, &m, po); !st.ok())
    throw Error(ErrorCode::Parse, "bad model metadata JSON from " + impl_->address + ": " + st.ToString(), where);
  inference::ModelConfig cfg;
  const bool have_cfg = google::protobuf::util::JsonStringToMessage(cbody, &cfg, po).ok();
  if (!have_cfg) {  // Triton wraps it in {"config": ...} for some versions
    json j = json::parse(cbody, nullptr, false);
    if (!j.is_object() || !j.contains("config") ||
        !google::protobuf::util::JsonStringToMessage(j["config"].dump(), &cfg, po).ok())
      throw Error(ErrorCode::Parse, "bad model configuration JSON from " + impl_->address, where);
  }
  ModelMeta meta = meta_from_server(m, &cfg, version);
  if (meta.info.sha256.empty()) {  // quiver serve: {"parameters": {"sha256": ...}} in the metadata
    json j = json::parse(mbody, nullptr, false);
    if (j.is_object() && j.contains("parameters") && j["parameters"].is_object() && j["parameters"].contains("sha256") &&
        j["parameters"]["sha256"].is_string())
      meta.info.sha256 = j["parameters"]["sha256"].get<std::string>();
  }
  meta.source = "http://" + impl_->address;
  return meta;
}

InferResult HttpClient::infer(const std::string& model, const std::vector<NamedTensor>& inputs,
                              const InferOptions& o) {
  return impl_->infer(model, inputs, o, nullptr);
}

InferResult HttpClient::infer(const std::string& model, const std::vector<NamedTensor>& inputs,
                              const InferOptions& o, const HttpShmSlot& slot) {
  return impl_->infer(model, inputs, o, &slot);
}

InferResult HttpClient::Impl::infer(const std::string& model, const std::vector<NamedTensor>& inputs,
                                    const InferOptions& o, const HttpShmSlot* slot) {
  const int64_t t0 = now_ns();
  InferResult r;
  r.request_id = o.request_id;
  r.provenance.server = address;
  r.provenance.model = model;
  r.provenance.attempts = 1;
  auto fail = [&](Error e) {
    r.outputs.clear();
    r.error = std::move(e);
    r.client_ns = now_ns() - t0;
    return std::move(r);
  };
  const bool bin = opt.binary_data;
  // Header JSON, then the tensors' bytes.
  json head;
  if (!o.request_id.empty()) head["id"] = o.request_id;
  json params = json::object();
  if (o.priority) params["priority"] = o.priority;
  if (o.timeout_ns > 0) params["timeout"] = std::max<int64_t>(1, o.timeout_ns / 1000);
  if (bin) params["binary_data_output"] = true;
  head["parameters"] = params;
  json ins = json::array();
  size_t bin_bytes = 0;
  uint64_t cursor = slot ? slot->offset : 0;  // next free byte of the slot (region offset)
  const uint64_t slot_end = slot ? slot->offset + slot->byte_size : 0;
  std::vector<bool> in_shm(inputs.size(), false);
  std::map<std::string, ShmOutputPlace> shm_outs;  // outputs this request placed in the slot
  bool any_shm_out = false;
  try {
    if (slot && !slot->base) throw Error(ErrorCode::InvalidArgument, "shared-memory slot without a mapping", {.model = model});
    if (inputs.empty()) throw Error(ErrorCode::InvalidArgument, "request has no inputs", {.model = model});
    for (const auto& in : inputs) {
      const Tensor& t = in.tensor;
      if (!t.defined()) throw Error(ErrorCode::InvalidArgument, "input tensor is undefined", {.model = model, .tensor = in.name});
      if (in.name.empty()) throw Error(ErrorCode::InvalidArgument, "input has no name", {.model = model});
      json j = {{"name", in.name}, {"datatype", std::string(dtype_kserve_name(t.dtype()))}, {"shape", t.dims()}};
      if (slot && slot->inputs && t.dtype() != DType::String) {
        if (t.nbytes() > slot_end - cursor)
          throw Error(ErrorCode::InvalidArgument,
                      "input needs " + std::to_string(t.nbytes()) + " bytes at offset " + std::to_string(cursor) +
                          " of the shared-memory slot, which ends at " + std::to_string(slot_end),
                      {.model = model, .tensor = in.name});
        std::memcpy(slot->base + cursor, t.raw(), t.nbytes());
        j["parameters"] = {{kserve::kShmRegion, slot->region},
                           {kserve::kShmByteSize, t.nbytes()},
                           {kserve::kShmOffset, cursor}};
        cursor += (t.nbytes() + 63) / 64 * 64;
        in_shm[&in - inputs.data()] = true;
      } else if (bin) {
        const size_t n = kserve::wire_size(t);
        j["parameters"] = {{"binary_data_size", n}};
        bin_bytes += n;
      } else {
        j["data"] = kserve::tensor_to_json(t, {.model = model, .tensor = in.name});
      }
      ins.push_back(std::move(j));
    }
  } catch (const Error& e) {
    return fail(e);
  }
  head["inputs"] = std::move(ins);
  if (slot && !slot->outputs.empty()) {
    json outs = json::array();
    for (const auto& [name, bytes] : slot->outputs) {
      if (cursor > slot_end || bytes > slot_end - cursor)
        return fail(Error(ErrorCode::InvalidArgument,
                          "output needs " + std::to_string(bytes) + " bytes at offset " + std::to_string(cursor) +
                              " of the shared-memory slot, which ends at " + std::to_string(slot_end),
                          {.model = model, .tensor = name}));
      outs.push_back({{"name", name},
                      {"parameters",
                       {{kserve::kShmRegion, slot->region},
                        {kserve::kShmByteSize, bytes},
                        {kserve::kShmOffset, cursor}}}});
      shm_outs[name] = {cursor, bytes};
      cursor += (bytes + 63) / 64 * 64;
    }
    head["outputs"] = std::move(outs);
  } else if (!o.outputs.empty()) {
    json outs = json::array();
    for (const auto& n : o.outputs) outs.push_back({{"name", n}, {"parameters", {{"binary_data", bin}}}});
    head["outputs"] = std::move(outs);
  }
  std::string body = head.dump(-1, ' ', false, json::error_handler_t::replace);
  const size_t header_len = body.size();
  httplib::Headers headers;
  if (bin && bin_bytes > 0) {
    body.reserve(header_len + bin_bytes);
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (in_shm[i]) continue;
      const Tensor& t = inputs[i].tensor;
      const size_t at = body.size();
      body.resize(at + kserve::wire_size(t));
      kserve::write_wire(t, reinterpret_cast<uint8_t*>(body.data() + at));
    }
    headers.emplace("Inference-Header-Content-Length", std::to_string(header_len));
  }
  set_timeout(o.timeout_ns > 0 ? o.timeout_ns : opt.timeout_ns);
  const std::string path = path_of(model, o.model_version) + "/infer";
  auto res = cli.Post(path, headers, body, bin && bin_bytes > 0 ? "application/octet-stream" : "application/json");
  const ErrorWhere where{.model = model};
  if (!res) {
    const auto e = res.error();
    const ErrorCode c = e == httplib::Error::Read && o.timeout_ns > 0 ? ErrorCode::DeadlineExceeded : ErrorCode::Unavailable;
    return fail(Error(c, transport_error(e) + " (POST " + path + ")", where));
  }
  if (res->status != 200)
    return fail(Error(code_of_http(res->status), address + ": " + error_message(*res), where));
  // Response: JSON header (all of the body without the extension header), then binary outputs.
  auto rbody = std::make_shared<std::string>(std::move(res->body));
  size_t rhead = rbody->size();
  if (res->has_header("Inference-Header-Content-Length")) {
    const std::string v = res->get_header_value("Inference-Header-Content-Length");
    try {
      size_t pos = 0;
      const unsigned long long n = std::stoull(v, &pos);
      if (pos != v.size() || n > rbody->size()) throw std::out_of_range("length");
      rhead = static_cast<size_t>(n);
    } catch (const std::exception&) {
      return fail(Error(ErrorCode::Parse,
                        "bad Inference-Header-Content-Length '" + v + "' in the response from " + address +
                            " (body " + std::to_string(rbody->size()) + " bytes)",
                        where));
    }
  }
  try {
    json j = json::parse(std::string_view(*rbody).substr(0, rhead));
    if (!j.is_object() || !j.contains("outputs") || !j["outputs"].is_array())
      throw Error(ErrorCode::Parse, "response from " + address + " has no 'outputs' array", where);
    if (j.contains("model_name") && j["model_name"].is_string()) r.provenance.model = j["model_name"].get<std::string>();
    if (j.contains("model_version") && j["model_version"].is_string())
      r.provenance.version = j["model_version"].get<std::string>();
    if (j.contains("id") && j["id"].is_string()) r.request_id = j["id"].get<std::string>();
    size_t pos = rhead;
    std::shared_ptr<const void> keep = rbody;
    for (const json& out : j["outputs"]) {
      if (!out.is_object() || !out.contains("name") || !out["name"].is_string())
        throw Error(ErrorCode::Parse, "response output without a name", where);
      const std::string name = out["name"].get<std::string>();
      const ErrorWhere w{.model = model, .tensor = name};
      if (!out.contains("datatype") || !out["datatype"].is_string() || !out.contains("shape") || !out["shape"].is_array())
        throw Error(ErrorCode::Parse, "output '" + name + "' lacks datatype or shape", w);
      auto dt = dtype_from_kserve(out["datatype"].get<std::string>());
      if (!dt) throw Error(ErrorCode::Unsupported, "unknown datatype '" + out["datatype"].get<std::string>() + "'", w);
      std::vector<int64_t> dims;
      for (const json& d : out["shape"]) {
        if (!d.is_number_integer() || d.get<int64_t>() < 0) throw Error(ErrorCode::Parse, "bad shape of output '" + name + "'", w);
        dims.push_back(d.get<int64_t>());
      }
      const json* p = out.contains("parameters") && out["parameters"].is_object() ? &out["parameters"] : nullptr;
      if (p && p->contains("binary_data_size")) {
        const json& bs = (*p)["binary_data_size"];
        if (!bs.is_number_unsigned() && !bs.is_number_integer())
          throw Error(ErrorCode::Parse, "binary_data_size of output '" + name + "' is not a number", w);
        const uint64_t n = bs.get<uint64_t>();
        if (n > rbody->size() - pos)
          throw Error(ErrorCode::Parse,
                      "binary_data_size " + std::to_string(n) + " of output '" + name + "' runs past the response body",
                      w);
        if (*dt == DType::String) {
          r.outputs.push_back({name, kserve::decode_bytes(dims, rbody->data() + pos, n, ErrorCode::Parse, w, "output")});
        } else {
          const size_t need = static_cast<size_t>(numel(dims)) * dtype_size(*dt);
          if (n != need)
            throw Error(ErrorCode::Parse,
                        "output '" + name + "' has " + std::to_string(n) + " bytes, " + dims_to_string(dims) + " needs " +
                            std::to_string(need),
                        w);
          r.outputs.push_back({name, Tensor::view(*dt, dims, static_cast<const void*>(rbody->data() + pos), keep)});
        }
        pos += n;
      } else if (out.contains("data")) {
        r.outputs.push_back({name, kserve::tensor_from_json(*dt, dims, out["data"], ErrorCode::Parse, w, "output")});
      } else if (auto it = shm_outs.find(name); it != shm_outs.end()) {
        r.outputs.push_back({name, shm_output(*dt, dims, p, it->second, slot, w)});
        any_shm_out = true;
      } else if (p && p->contains(kserve::kShmRegion)) {
        throw Error(ErrorCode::Parse, "output was written to a shared-memory region this request did not give", w);
      } else {
        throw Error(ErrorCode::Parse, "output '" + name + "' has neither data nor binary_data_size", w);
      }
    }
    if (pos != rbody->size())
      throw Error(ErrorCode::Parse,
                  std::to_string(rbody->size() - pos) + " bytes of binary data in the response that no output claims", where);
  } catch (const json::exception& e) {
    return fail(Error(ErrorCode::Parse, "bad JSON in the response from " + address + ": " + e.what(), where));
  } catch (const Error& e) {
    return fail(e);
  }
  r.outputs_in_shared_memory = any_shm_out;
  r.client_ns = now_ns() - t0;
  return r;
}

InferenceStats HttpClient::model_statistics(const std::string& model, const std::string& version) {
  const ErrorWhere where{.model = model};
  std::string body = impl_->get(path_of(model, version) + "/stats", where);
  InferenceStats s;
  try {
    json j = json::parse(body);
    if (!j.is_object() || !j.contains("model_stats") || !j["model_stats"].is_array())
      throw Error(ErrorCode::Parse, "statistics from " + impl_->address + " have no 'model_stats' array", where);
    for (const json& m : j["model_stats"]) {
      if (!m.is_object()) continue;
      auto num = [&](const char* k) -> uint64_t {
        if (!m.contains(k)) return 0;
        const json& x = m[k];
        return x.is_number() ? x.get<uint64_t>() : x.is_string() ? std::stoull(x.get<std::string>()) : 0;
      };
      s.inference_count += num("inference_count");
      s.execution_count += num("execution_count");
      const json is = m.contains("inference_stats") ? m["inference_stats"] : json::object();
      s.success_count += u64_at(is, "success", "count");
      s.success_ns += u64_at(is, "success", "ns");
      s.fail_count += u64_at(is, "fail", "count");
      s.queue_count += u64_at(is, "queue", "count");
      s.queue_ns += u64_at(is, "queue", "ns");
      s.compute_input_ns += u64_at(is, "compute_input", "ns");
      s.compute_infer_ns += u64_at(is, "compute_infer", "ns");
      s.compute_output_ns += u64_at(is, "compute_output", "ns");
    }
  } catch (const json::exception& e) {
    throw Error(ErrorCode::Parse, "bad statistics JSON from " + impl_->address + ": " + e.what(), where);
  } catch (const std::logic_error& e) {  // stoull
    throw Error(ErrorCode::Parse, "bad number in statistics from " + impl_->address + ": " + e.what(), where);
  }
  return s;
}

void HttpClient::register_system_shared_memory(const std::string& name, const std::string& key, uint64_t offset,
                                               uint64_t byte_size) {
  json b = {{"key", key}, {"offset", offset}, {"byte_size", byte_size}};
  impl_->post_ok("/v2/systemsharedmemory/region/" + httplib::detail::encode_query_param(name) + "/register", b.dump(), {});
}

void HttpClient::unregister_system_shared_memory(const std::string& name) {
  impl_->post_ok(name.empty() ? std::string("/v2/systemsharedmemory/unregister")
                              : "/v2/systemsharedmemory/region/" + httplib::detail::encode_query_param(name) + "/unregister",
                 "", {});
}

}  // namespace quiver::client
