#include "serve/http_server.hpp"

#include <microhttpd.h>
#include <netdb.h>
#include <zlib.h>

#include <cstring>
#include <mutex>

#include "quiver/core/error.hpp"

namespace quiver::serve {
namespace {

struct Route {
  std::string method;
  std::regex re;
  HttpServer::Handler sync;
  HttpServer::AsyncHandler async;
};

// One request on one connection, from its headers to the completion notice.
struct Call {
  MHD_Connection* conn = nullptr;
  HttpRequest req;
  bool too_large = false, started = false;
  std::mutex mu;  // done / suspended / res: the completion may come from another thread
  bool done = false, suspended = false;
  HttpResponse res;
};

bool has_token(const std::string& header, const char* token) {
  std::string h = header;
  for (auto& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return h.find(token) != std::string::npos;
}

// Inflates a gzip or zlib ("deflate") body, falling back to raw deflate; at most `max` bytes out.
// Returns false with `why` set on malformed or oversized data.
bool inflate_body(const std::string& in, size_t max, std::string& out, std::string& why) {
  for (int wbits : {15 + 32, -15}) {
    z_stream zs{};
    if (inflateInit2(&zs, wbits) != Z_OK) {
      why = "zlib initialisation failed";
      return false;
    }
    out.clear();
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    zs.avail_in = static_cast<uInt>(in.size());
    int rc = Z_OK;
    char buf[1 << 16];
    while (rc == Z_OK) {
      zs.next_out = reinterpret_cast<Bytef*>(buf);
      zs.avail_out = sizeof buf;
      rc = inflate(&zs, Z_NO_FLUSH);
      out.append(buf, sizeof buf - zs.avail_out);
      if (out.size() > max) {
        inflateEnd(&zs);
        why = "the decompressed request body exceeds the " + std::to_string(max) + "-byte limit";
        return false;
      }
      if (rc == Z_BUF_ERROR && zs.avail_in == 0) break;  // truncated input
    }
    inflateEnd(&zs);
    if (rc == Z_STREAM_END) return true;
    if (wbits < 0 || rc != Z_DATA_ERROR) break;  // only a header mismatch retries as raw deflate
  }
  why = "the request body is not valid gzip / deflate data";
  return false;
}

// gzip (wbits 31) or zlib (15) of `in`; empty on failure (then sent uncompressed).
std::string compress_body(const std::string& in, int wbits) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out(deflateBound(&zs, static_cast<uLong>(in.size())), '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END ? out : std::string();
}

}  // namespace

struct HttpServer::Impl {
  explicit Impl(ErrorBody e) : error_body(std::move(e)) {}
  ErrorBody error_body;
  std::vector<Route> routes;
  Options opt;
  MHD_Daemon* daemon = nullptr;

  static MHD_Result access(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                           const char* data, size_t* size, void** state) {
    auto* self = static_cast<Impl*>(cls);
    auto* call = static_cast<Call*>(*state);
    if (!call) {  // headers are in; the body (if any) follows in later calls
      call = new Call;
      *state = call;
      call->conn = c;
      call->req.method = method;
      call->req.path = url;
      call->req.header = [c](const char* name) {
        const char* v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
        return v ? std::string(v) : std::string();
      };
      const char* cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
      if (cl && std::strtoull(cl, nullptr, 10) > self->opt.max_body) {  // refused before it is read
        call->too_large = true;
        return self->fail(call, 413, "request body of " + std::string(cl) + " bytes exceeds the " +
                                         std::to_string(self->opt.max_body) + "-byte limit");
      }
      return MHD_YES;
    }
    if (*size) {
      if (!call->too_large) {
        if (call->req.body.size() + *size > self->opt.max_body) {
          call->too_large = true;
          std::string().swap(call->req.body);
        } else {
          call->req.body.append(data, *size);
        }
      }
      *size = 0;
      return MHD_YES;
    }
    {
      std::lock_guard lk(call->mu);
      if (call->done) return self->send(call);  // resumed after an asynchronous completion
    }
    if (call->started) return MHD_YES;
    call->started = true;
    if (call->too_large)
      return self->fail(call, 413, "request body exceeds the " + std::to_string(self->opt.max_body) + "-byte limit");
    return self->dispatch(call);
  }

  static void completed(void*, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
    delete static_cast<Call*>(*state);
    *state = nullptr;
  }

  MHD_Result fail(Call* call, int status, const std::string& message) {
    error_body(status, message, call->res);
    call->res.status = status;
    return send(call);
  }

  MHD_Result dispatch(Call* call) {
    HttpRequest& req = call->req;
    const std::string enc = req.header(MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (!enc.empty() && !has_token(enc, "identity")) {
      if (!has_token(enc, "gzip") && !has_token(enc, "deflate"))
        return fail(call, 415, "unsupported Content-Encoding '" + enc + "' (gzip, deflate or identity)");
      std::string plain, why;
      if (!inflate_body(req.body, opt.max_body, plain, why)) return fail(call, 400, why);
      req.body = std::move(plain);
    }
    const Route* route = nullptr;
    for (const auto& r : routes)
      if (r.method == req.method && std::regex_match(req.path, req.matches, r.re)) {
        route = &r;
        break;
      }
    if (!route) return fail(call, 404, "no such endpoint: " + req.method + " " + req.path);
    try {
      if (route->sync) {
        route->sync(req, call->res);
        return send(call);
      }
      route->async(req, [call](HttpResponse r) {
        std::lock_guard lk(call->mu);
        call->res = std::move(r);
        call->done = true;
        if (call->suspended) MHD_resume_connection(call->conn);
      });
    } catch (const std::exception& e) {
      return fail(call, 500, e.what());
    }
    std::lock_guard lk(call->mu);
    if (call->done) return send(call);  // answered inline
    MHD_suspend_connection(call->conn);   // holds no thread until the answer comes
    call->suspended = true;
    return MHD_YES;
  }

  MHD_Result send(Call* call) {
    HttpResponse& res = call->res;
    auto* body = new std::string(std::move(res.body));
    std::string encoding;
    const std::string accept = call->req.header(MHD_HTTP_HEADER_ACCEPT_ENCODING);
    if (body->size() >= 512 && !accept.empty()) {
      const int wbits = has_token(accept, "gzip") ? 31 : has_token(accept, "deflate") ? 15 : 0;
      if (wbits) {
        std::string z = compress_body(*body, wbits);
        if (!z.empty() && z.size() < body->size()) {
          *body = std::move(z);
          encoding = wbits == 31 ? "gzip" : "deflate";
        }
      }
    }
    MHD_Response* r = MHD_create_response_from_buffer_with_free_callback_cls(
        body->size(), body->data(), [](void* p) { delete static_cast<std::string*>(p); }, body);
    if (!r) {
      delete body;
      return MHD_NO;
    }
    if (!res.content_type.empty()) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, res.content_type.c_str());
    if (!encoding.empty()) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, encoding.c_str());
    for (const auto& [k, v] : res.headers) MHD_add_response_header(r, k.c_str(), v.c_str());
    const MHD_Result ok = MHD_queue_response(call->conn, static_cast<unsigned>(res.status), r);
    MHD_destroy_response(r);
    return ok;
  }
};

HttpServer::HttpServer(ErrorBody error_body) : impl_(std::make_unique<Impl>(std::move(error_body))) {}
HttpServer::~HttpServer() { stop(); }

void HttpServer::Get(const std::string& pattern, Handler h) {
  impl_->routes.push_back({"GET", std::regex(pattern), std::move(h), nullptr});
}
void HttpServer::Post(const std::string& pattern, Handler h) {
  impl_->routes.push_back({"POST", std::regex(pattern), std::move(h), nullptr});
}
void HttpServer::PostAsync(const std::string& pattern, AsyncHandler h) {
  impl_->routes.push_back({"POST", std::regex(pattern), nullptr, std::move(h)});
}

int HttpServer::start(const Options& o) {
  impl_->opt = o;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* ai = nullptr;
  const std::string port = std::to_string(o.port);
  if (getaddrinfo(o.bind.c_str(), port.c_str(), &hints, &ai) != 0 || !ai)
    throw Error(ErrorCode::Unavailable, "cannot resolve the HTTP bind address '" + o.bind + "'");
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
  if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
  impl_->daemon = MHD_start_daemon(
      flags, static_cast<uint16_t>(o.port), nullptr, nullptr, &Impl::access, impl_.get(), MHD_OPTION_SOCK_ADDR,
      ai->ai_addr, MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(std::max(1, o.threads)),
      MHD_OPTION_CONNECTION_TIMEOUT, o.idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, size_t(64) << 10,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_NOTIFY_COMPLETED, &Impl::completed, nullptr, MHD_OPTION_END);
  freeaddrinfo(ai);
  if (!impl_->daemon)
    throw Error(ErrorCode::Unavailable, "cannot listen for HTTP on " + o.bind + ":" + std::to_string(o.port));
  const MHD_DaemonInfo* info = MHD_get_daemon_info(impl_->daemon, MHD_DAEMON_INFO_BIND_PORT);
  return info ? info->port : o.port;
}

void HttpServer::stop() {
  if (impl_->daemon) {
    MHD_stop_daemon(impl_->daemon);
    impl_->daemon = nullptr;
  }
}

}  // namespace quiver::serve
