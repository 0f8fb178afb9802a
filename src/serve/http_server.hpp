// Internal: the HTTP layer of `quiver serve` on libmicrohttpd (event-driven: a few epoll threads
// serve any number of keep-alive connections; bench/http_bench measured it 1.1x cpp-httplib at
// concurrency 1 and 1.6x at 16 on the same echo endpoint). Routes are regular expressions on the
// path; request bodies with Content-Encoding gzip / deflate are inflated (bounded); responses a
// handler marks compressible (inference answers, as Triton) are compressed when the client
// accepts it. Async routes complete from any thread: the connection is
// suspended meanwhile and holds no thread.
//
// Connections are accepted by one thread of our own and handed to libmicrohttpd, so that nothing
// waits in the listen backlog: past `max_connections` a connection is served one request (health
// checks answered, everything else 503), past the overflow reserve it gets a canned 503 and is
// closed at once. The same thread enforces the header and body deadlines (libmicrohttpd only has
// an inactivity timeout, which a client sending a byte now and then never trips).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace quiver::serve {

class DescriptorReserve;

struct HttpRequest {
  std::string method, path, body;
  std::smatch matches;  // of the route's pattern against `path`
  // Header lookup (case-insensitive); empty when absent.
  std::function<std::string(const char*)> header;
  bool has_header(const char* name) const { return !header(name).empty(); }
  std::string get_header_value(const char* name) const { return header(name); }
};

struct HttpResponse {
  int status = 200;
  std::string body, content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  // Compressed per the request's Accept-Encoding. Triton compresses inference responses only, and
  // its clients inflate only those (tritonclient's aio client sends "Accept-Encoding: gzip,
  // deflate" on every call and reads metadata, config and statistics as plain JSON).
  bool compress = false;
  void set_content(std::string b, std::string type) {
    body = std::move(b);
    content_type = std::move(type);
  }
  void set_header(std::string k, std::string v) { headers.emplace_back(std::move(k), std::move(v)); }
};

// The response encoding for an Accept-Encoding header: "gzip", "deflate" or "" (identity), the
// one of gzip / deflate / identity with the highest q-value (q=0: refused), the first listed
// among equals, as Triton picks.
std::string response_encoding(std::string_view accept_encoding);

class HttpServer {
 public:
  using Handler = std::function<void(const HttpRequest&, HttpResponse&)>;
  // Calls `respond` exactly once, from any thread, possibly before returning.
  using AsyncHandler = std::function<void(const HttpRequest&, std::function<void(HttpResponse)> respond)>;
  // Builds the body of a 404 / 413 / 400 answer the server gives itself.
  using ErrorBody = std::function<void(int status, const std::string& message, HttpResponse&)>;

  struct Options {
    std::string name = "HTTP";  // in log lines
    std::string bind = "127.0.0.1";
    int port = 0;  // 0: a free one
    int threads = 8;
    size_t max_body = 64 << 20;  // after decompression too
    // Connections served at once; 0: sized from the open-file limit (auto_max_connections()).
    unsigned max_connections = 0;
    // Past max_connections, this many more are taken for one request each (GET of overflow_paths
    // answered, anything else 503 + close); past both, a canned 503 and close at once.
    // 0: max_connections / 32 within [16, 1024].
    unsigned overflow_connections = 0;
    std::vector<std::string> overflow_paths;  // path prefixes (health checks)
    // From connect (or, on a kept-alive connection, from the request line) to the end of the
    // headers; a connection past it is closed.
    double header_timeout_s = 5;
    // From the end of the headers to the end of the body, extended by one second per
    // min_body_rate bytes received (0: not extended).
    double body_timeout_s = 10;
    uint64_t min_body_rate = 64 << 10;  // bytes per second
    unsigned idle_timeout_s = 60;       // between requests on a kept-alive connection (0: none)
    // libmicrohttpd's per-connection memory pool (request line and headers, read buffer). It is
    // zeroed between requests, so a kept-alive connection costs all of it in resident memory:
    // 16 KiB (about 17 KB RSS per idle connection) takes request headers up to ~12 KB.
    size_t connection_memory = 16 << 10;
    // The spare descriptor shared with the server's other listeners (acceptor.hpp; null: its own).
    std::shared_ptr<DescriptorReserve> descriptors;
  };

  struct Stats {
    uint64_t open = 0;              // connections now
    uint64_t refused = 0;           // closed with the canned 503 (past the overflow reserve)
    uint64_t overflow_served = 0;   // requests answered in the overflow reserve (health or 503)
    uint64_t header_timeouts = 0, body_timeouts = 0;  // closed by a deadline
  };

  explicit HttpServer(ErrorBody error_body);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void Get(const std::string& pattern, Handler h);
  void Post(const std::string& pattern, Handler h);
  void PostAsync(const std::string& pattern, AsyncHandler h);
  // Starts listening; returns the bound port. Throws quiver::Error(Unavailable).
  int start(const Options& o);
  // Stops accepting and closes connections (asynchronous requests must have completed).
  void stop();
  Stats stats() const;
  // The limits in effect after start().
  unsigned max_connections() const;
  unsigned overflow_connections() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace quiver::serve
