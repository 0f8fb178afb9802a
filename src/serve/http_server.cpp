#include "serve/http_server.hpp"

#include <microhttpd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "quiver/core/error.hpp"
#include "quiver/core/util.hpp"
#include "serve/acceptor.hpp"

namespace quiver::serve {
namespace {

struct Route {
  std::string method;
  std::regex re;
  HttpServer::Handler sync;
  HttpServer::AsyncHandler async;
};

// Where a connection is in its request cycle: which deadline applies.
enum class Phase : uint8_t { Header, Body, Processing, Idle };

// One TCP connection, from libmicrohttpd's STARTED notice to its CLOSED notice (the socket
// context). The acceptor thread reads `deadline` / `phase` to close connections past their
// deadline; the connection's libmicrohttpd thread writes them.
struct Conn {
  int fd = -1;
  bool overflow = false;  // admitted past max_connections: one request, then closed
  std::atomic<int64_t> deadline{0};  // steady-clock ms; 0: none
  std::atomic<Phase> phase{Phase::Header};
  int64_t body_start = 0;  // the libmicrohttpd thread's own
  uint64_t body_bytes = 0;
  bool reaped = false;  // under the table lock
  Conn *prev = nullptr, *next = nullptr;
};

Conn* conn_of(MHD_Connection* c) {
  const MHD_ConnectionInfo* i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return i ? static_cast<Conn*>(i->socket_context) : nullptr;
}

// One request on one connection, from its headers to the completion notice.
struct Call {
  MHD_Connection* conn = nullptr;
  Conn* link = nullptr;
  HttpRequest req;
  bool too_large = false, started = false;
  std::mutex mu;  // done / suspended / res: the completion may come from another thread
  bool done = false, suspended = false;
  HttpResponse res;
};

std::string seconds_text(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%g s", s);
  return b;
}

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

std::string response_encoding(std::string_view accept) {
  std::string best;  // "identity" competes too: listed first with the same q, it wins
  double best_q = 0;
  size_t pos = 0;
  while (pos <= accept.size()) {
    size_t end = accept.find(',', pos);
    if (end == std::string_view::npos) end = accept.size();
    std::string_view item = accept.substr(pos, end - pos);
    pos = end + 1;
    const size_t semi = item.find(';');
    std::string_view name = item.substr(0, semi);
    name = trim(name);
    std::string n(name);
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    double q = 1;
    if (semi != std::string_view::npos) {  // parameters: only q matters; a malformed q refuses
      std::string_view params = item.substr(semi + 1);
      while (!params.empty()) {
        const size_t next = params.find(';');
        std::string_view p = trim(params.substr(0, next));
        params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
        if (p.size() < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=') continue;
        const std::string_view v = trim(p.substr(2));
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), q, std::chars_format::fixed);
        if (ec != std::errc() || end != v.data() + v.size() || !(q >= 0 && q <= 1)) q = 0;
      }
    }
    if ((n == "gzip" || n == "deflate" || n == "identity") && q > best_q) {
      best = n;
      best_q = q;
    }
  }
  return best == "identity" ? std::string() : best;
}

struct HttpServer::Impl {
  explicit Impl(ErrorBody e) : error_body(std::move(e)) {}
  ErrorBody error_body;
  std::vector<Route> routes;
  Options opt;
  unsigned max_conn = 0, overflow = 0;
  int64_t header_ms = 0, body_ms = 0, idle_ms = 0;
  MHD_Daemon* daemon = nullptr;
  std::string where;    // "HTTP on HOST:PORT" in log lines
  std::string refusal;  // the canned 503, written to connections past the overflow reserve

  // Accepts, refuses past the limits, and (its tick) closes connections past their deadlines and
  // logs at most once per interval.
  Acceptor acceptor;
  std::mutex table_mu;  // the list of open connections (Conn::prev / next / reaped)
  Conn* head = nullptr;
  std::atomic<uint64_t> open{0}, refused{0}, overflow_served{0}, header_timeouts{0}, body_timeouts{0};
  // Handed to libmicrohttpd / seen in its STARTED notice: the difference is on its way (queued for
  // a worker thread), counted against the limit before the notice comes.
  std::atomic<uint64_t> handed{0}, started{0};

  // libmicrohttpd's connection notices (its threads).
  static void on_connection(void* cls, MHD_Connection* c, void** ctx, MHD_ConnectionNotificationCode code) {
    auto* self = static_cast<Impl*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      auto* k = new Conn;
      const MHD_ConnectionInfo* fi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
      k->fd = fi ? fi->connect_fd : -1;
      const uint64_t n = self->open.fetch_add(1) + 1;
      self->started.fetch_add(1);
      k->overflow = n > self->max_conn;
      if (n > static_cast<uint64_t>(self->max_conn) + self->overflow && k->fd >= 0) {
        // The acceptor counts connections on their way, so this should not happen; if the count
        // ever drifts, the limit still holds (libmicrohttpd then reads the end and closes it).
        self->write_refusal(k->fd);
        ::shutdown(k->fd, SHUT_RDWR);
        self->refused.fetch_add(1, std::memory_order_relaxed);
      } else {
        k->deadline = steady_ms() + self->header_ms;
      }
      *ctx = k;
      std::lock_guard lk(self->table_mu);
      k->next = self->head;
      if (self->head) self->head->prev = k;
      self->head = k;
      return;
    }
    auto* k = static_cast<Conn*>(*ctx);
    if (!k) return;
    {
      // libmicrohttpd closes the socket after this notice, so the acceptor never shuts down a
      // descriptor that has been reused.
      std::lock_guard lk(self->table_mu);
      if (k->prev) k->prev->next = k->next;
      else self->head = k->next;
      if (k->next) k->next->prev = k->prev;
    }
    self->open.fetch_sub(1);
    delete k;
    *ctx = nullptr;
  }

  // The request line is in: the headers must follow within the header deadline (on a kept-alive
  // connection this is where the next request starts).
  static void* on_request_line(void* cls, const char*, MHD_Connection* c) {
    auto* self = static_cast<Impl*>(cls);
    if (Conn* k = conn_of(c)) {
      k->phase = Phase::Header;
      const int64_t d = steady_ms() + self->header_ms, cur = k->deadline;
      if (cur == 0 || d < cur) k->deadline = d;
    }
    return nullptr;
  }

  bool overflow_path(const std::string& method, const std::string& path) const {
    if (method != "GET" && method != "HEAD") return false;
    for (const auto& p : opt.overflow_paths)
      if (path.compare(0, p.size(), p) == 0) return true;
    return false;
  }

  static MHD_Result access(void* cls, MHD_Connection* c, const char* url, const char* method, const char*,
                           const char* data, size_t* size, void** state) {
    auto* self = static_cast<Impl*>(cls);
    auto* call = static_cast<Call*>(*state);
    if (!call) {  // headers are in; the body (if any) follows in later calls
      call = new Call;
      *state = call;
      call->conn = c;
      call->link = conn_of(c);
      call->req.method = method;
      call->req.path = url;
      call->req.header = [c](const char* name) {
        const char* v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
        return v ? std::string(v) : std::string();
      };
      Conn* k = call->link;
      if (k && k->overflow) {
        self->overflow_served.fetch_add(1, std::memory_order_relaxed);
        if (!self->overflow_path(call->req.method, call->req.path))
          return self->fail(call, 503, "the server is at its limit of " + std::to_string(self->max_conn) +
                                           " HTTP connections; retry later");
      }
      const char* cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
      if (cl && std::strtoull(cl, nullptr, 10) > self->opt.max_body) {  // refused before it is read
        call->too_large = true;
        return self->fail(call, 413, "request body of " + std::string(cl) + " bytes exceeds the " +
                                         std::to_string(self->opt.max_body) + "-byte limit");
      }
      if (k) {
        const bool body = (cl && std::strtoull(cl, nullptr, 10) > 0) ||
                          MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        if (body) {
          k->body_start = steady_ms();
          k->body_bytes = 0;
          k->phase = Phase::Body;
          k->deadline = k->body_start + self->body_ms;
        } else {
          k->phase = Phase::Processing;
          k->deadline = 0;
        }
      }
      return MHD_YES;
    }
    if (*size) {
      if (Conn* k = call->link) {  // a client that keeps the minimum rate keeps its deadline ahead
        k->body_bytes += *size;
        const uint64_t rate = self->opt.min_body_rate;
        k->deadline = k->body_start + self->body_ms +
                      (rate ? static_cast<int64_t>(k->body_bytes * 1000 / rate) : 0);
      }
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
    if (Conn* k = call->link) {  // the server's turn: no deadline while the answer is computed
      k->phase = Phase::Processing;
      k->deadline = 0;
    }
    if (call->too_large)
      return self->fail(call, 413, "request body exceeds the " + std::to_string(self->opt.max_body) + "-byte limit");
    return self->dispatch(call);
  }

  static void completed(void* cls, MHD_Connection* c, void** state, MHD_RequestTerminationCode) {
    auto* self = static_cast<Impl*>(cls);
    delete static_cast<Call*>(*state);
    *state = nullptr;
    // Waiting for the next request: libmicrohttpd's inactivity timeout closes a silent connection
    // after idle_timeout; this deadline bounds one that trickles the next request line.
    if (Conn* k = conn_of(c)) {
      k->phase = Phase::Idle;
      k->deadline = self->idle_ms ? steady_ms() + self->idle_ms + self->header_ms : 0;
    }
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
    if (Conn* k = call->link) {  // answering (possibly before the body, as for 413): no deadline
      k->phase = Phase::Processing;
      k->deadline = 0;
    }
    auto* body = new std::string(std::move(res.body));
    std::string encoding;
    if (res.compress && body->size() >= 512) {
      encoding = response_encoding(call->req.header(MHD_HTTP_HEADER_ACCEPT_ENCODING));
      if (!encoding.empty()) {
        std::string z = compress_body(*body, encoding == "gzip" ? 31 : 15);
        if (!z.empty() && z.size() < body->size()) *body = std::move(z);
        else encoding.clear();
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
    if (call->link && call->link->overflow) {  // one request per overflow connection
      MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
      if (res.status == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    }
    const MHD_Result ok = MHD_queue_response(call->conn, static_cast<unsigned>(res.status), r);
    MHD_destroy_response(r);
    return ok;
  }

  // ---- the accepting thread ----

  // The canned 503 for connections past the overflow reserve (or when out of descriptors). What
  // the client already sent is read first, so that the close does not reset the connection under
  // the answer.
  void write_refusal(int fd) const {
    char sink[4096];
    (void)::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    (void)::send(fd, refusal.data(), refusal.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  }

  bool take(int fd, const sockaddr* addr, socklen_t len) {
    const uint64_t queued = handed.load() - started.load();
    if (open.load() + queued >= static_cast<uint64_t>(max_conn) + overflow) {
      refused.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (MHD_add_connection(daemon, fd, addr, len) == MHD_YES) handed.fetch_add(1);
    else refused.fetch_add(1, std::memory_order_relaxed);  // libmicrohttpd closed it (out of memory)
    return true;
  }

  // Shuts down connections past their deadline; libmicrohttpd then sees the end of the stream,
  // closes the connection and cancels its request.
  void reap(int64_t now) {
    std::lock_guard lk(table_mu);
    for (Conn* k = head; k; k = k->next) {
      const int64_t d = k->deadline.load(std::memory_order_relaxed);
      if (d == 0 || d > now || k->reaped) continue;
      k->reaped = true;
      (k->phase.load(std::memory_order_relaxed) == Phase::Body ? body_timeouts : header_timeouts)
          .fetch_add(1, std::memory_order_relaxed);
      ::shutdown(k->fd, SHUT_RDWR);
    }
  }

  // At most one line per kind of event per interval.
  struct LogState {
    int64_t at = INT64_MIN / 2;
    uint64_t refused = 0, fd_refused = 0, header = 0, body = 0;
  };
  static constexpr int64_t kLogIntervalMs = 10000;

  // Whether something is left to log later (`last`: at stop, log what is left regardless).
  bool report(int64_t now, LogState& l, bool last = false) {
    const uint64_t r = refused.load(), f = acceptor.out_of_descriptors(), h = header_timeouts.load(),
                   b = body_timeouts.load();
    if (r == l.refused && f == l.fd_refused && h == l.header && b == l.body) return false;
    if (now - l.at < kLogIntervalMs && !last) return true;
    const std::string span = l.at < 0 ? "" : " in the last " + std::to_string((now - l.at + 500) / 1000) + " s";
    if (r != l.refused)
      std::fprintf(stderr,
                   "quiver serve: %s: refused %llu new connection(s)%s with 503: at the limit of %u connections "
                   "+ %u overflow (%llu open)\n",
                   where.c_str(), static_cast<unsigned long long>(r - l.refused), span.c_str(), max_conn, overflow,
                   static_cast<unsigned long long>(open.load()));
    if (f != l.fd_refused) {
      rlimit rl{};
      getrlimit(RLIMIT_NOFILE, &rl);
      std::fprintf(stderr,
                   "quiver serve: %s: refused %llu new connection(s)%s with 503: the process is out of file "
                   "descriptors (open-file limit %llu)\n",
                   where.c_str(), static_cast<unsigned long long>(f - l.fd_refused), span.c_str(),
                   static_cast<unsigned long long>(rl.rlim_cur));
    }
    if (h != l.header)
      std::fprintf(stderr, "quiver serve: %s: closed %llu connection(s)%s past the header deadline (%s)\n",
                   where.c_str(), static_cast<unsigned long long>(h - l.header), span.c_str(),
                   seconds_text(opt.header_timeout_s).c_str());
    if (b != l.body)
      std::fprintf(stderr,
                   "quiver serve: %s: closed %llu connection(s)%s past the body deadline (%s + 1 s per %llu bytes)\n",
                   where.c_str(), static_cast<unsigned long long>(b - l.body), span.c_str(),
                   seconds_text(opt.body_timeout_s).c_str(), static_cast<unsigned long long>(opt.min_body_rate));
    l = {now, r, f, h, b};
    return false;
  }

  LogState log;
  bool log_pending = false;
  void tick(int64_t now, bool last) {
    reap(now);
    log_pending = report(now, log, last);
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
  Impl& m = *impl_;
  m.opt = o;
  m.max_conn = o.max_connections ? o.max_connections : auto_max_connections();
  m.overflow = o.overflow_connections ? o.overflow_connections : std::clamp(m.max_conn / 32, 16u, 1024u);
  m.header_ms = std::max<int64_t>(1, static_cast<int64_t>(o.header_timeout_s * 1000));
  m.body_ms = std::max<int64_t>(1, static_cast<int64_t>(o.body_timeout_s * 1000));
  m.idle_ms = static_cast<int64_t>(o.idle_timeout_s) * 1000;
  if (!(o.header_timeout_s > 0) || !(o.body_timeout_s > 0))
    throw Error(ErrorCode::InvalidArgument, o.name + ": the header and body timeouts must be positive");

  const int bound_port = m.acceptor.listen(o.bind, o.port, o.name);
  m.where = o.name + " on " + o.bind + ":" + std::to_string(bound_port);

  HttpResponse r;
  m.error_body(503, "the server is at its limit of " + std::to_string(m.max_conn) + " " + o.name + " connections (+" +
                        std::to_string(m.overflow) + " overflow); retry later",
               r);
  m.refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: " + r.content_type +
              "\r\nContent-Length: " + std::to_string(r.body.size()) +
              "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + r.body;

  // Our thread accepts (MHD_add_connection) and keeps the count. libmicrohttpd's own limit must
  // never be reached: 0.9.75 then leaves a worker's mutex locked (new_connection_process_ returns
  // without unlocking cleanup_connection_mutex), and every connection of that worker hangs. Each
  // worker's share of it is therefore more than all our connections together.
  const uint64_t mhd_limit = (static_cast<uint64_t>(m.max_conn) + m.overflow + 1024) * std::max(1, o.threads);
  const unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                         MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
  m.daemon = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Impl::access, &m, MHD_OPTION_THREAD_POOL_SIZE,
      static_cast<unsigned>(std::max(1, o.threads)), MHD_OPTION_CONNECTION_LIMIT,
      static_cast<unsigned>(std::min<uint64_t>(mhd_limit, UINT32_MAX / 2)),
      MHD_OPTION_CONNECTION_TIMEOUT, o.idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT, o.connection_memory,
      MHD_OPTION_NOTIFY_COMPLETED, &Impl::completed, &m, MHD_OPTION_NOTIFY_CONNECTION, &Impl::on_connection, &m,
      MHD_OPTION_URI_LOG_CALLBACK, &Impl::on_request_line, &m, MHD_OPTION_END);
  if (!m.daemon) {
    stop();
    throw Error(ErrorCode::Unavailable, "cannot start the " + m.where + " server (libmicrohttpd)");
  }
  Acceptor::Handlers h;
  h.take = [&m](int fd, const sockaddr* addr, socklen_t len) { return m.take(fd, addr, len); };
  h.refuse = [&m](int fd) { m.write_refusal(fd); };
  h.tick = [&m](int64_t now, bool last) { m.tick(now, last); };
  h.watching = [&m] { return m.open.load() > 0 || m.log_pending; };
  m.acceptor.start(std::move(h), 250, o.descriptors);

  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  std::string paths;
  for (const auto& p : o.overflow_paths) paths += (paths.empty() ? "" : ", ") + p + "*";
  if (paths.empty()) paths = "nothing";
  std::fprintf(stderr,
               "quiver serve: %s: up to %u connections%s + %u overflow (answering GET %s, 503 otherwise); "
               "deadlines: headers %s, body %s + 1 s per %llu bytes, idle %u s\n",
               m.where.c_str(), m.max_conn,
               o.max_connections ? "" : (" (from the open-file limit " + std::to_string(rl.rlim_cur) + ")").c_str(),
               m.overflow, paths.c_str(), seconds_text(o.header_timeout_s).c_str(), seconds_text(o.body_timeout_s).c_str(),
               static_cast<unsigned long long>(o.min_body_rate), o.idle_timeout_s);
  if (static_cast<uint64_t>(m.max_conn) + m.overflow + 512 > rl.rlim_cur)
    std::fprintf(stderr,
                 "quiver serve: %s: warning: %u connections leave less than 512 of the open-file limit %llu to "
                 "everything else (when the process runs out, new connections are refused)\n",
                 m.where.c_str(), m.max_conn + m.overflow, static_cast<unsigned long long>(rl.rlim_cur));
  return bound_port;
}

void HttpServer::stop() {
  Impl& m = *impl_;
  m.acceptor.stop();  // first: nothing is handed to libmicrohttpd after this
  if (m.daemon) {
    MHD_stop_daemon(m.daemon);
    m.daemon = nullptr;
  }
}

HttpServer::Stats HttpServer::stats() const {
  const Impl& m = *impl_;
  Stats s;
  s.open = m.open.load();
  s.refused = m.refused.load() + m.acceptor.out_of_descriptors();
  s.overflow_served = m.overflow_served.load();
  s.header_timeouts = m.header_timeouts.load();
  s.body_timeouts = m.body_timeouts.load();
  return s;
}
unsigned HttpServer::max_connections() const { return impl_->max_conn; }
unsigned HttpServer::overflow_connections() const { return impl_->overflow; }

}  // namespace quiver::serve
