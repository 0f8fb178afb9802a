// Internal: the HTTP layer of `quiver serve` on libmicrohttpd (event-driven: a few epoll threads
// serve any number of keep-alive connections; bench/http_bench measured it 1.1x cpp-httplib at
// concurrency 1 and 1.6x at 16 on the same echo endpoint). Routes are regular expressions on the
// path; request bodies with Content-Encoding gzip / deflate are inflated (bounded), responses are
// compressed when the client accepts it. Async routes complete from any thread: the connection is
// suspended meanwhile and holds no thread.
#pragma once
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace quiver::serve {

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
  void set_content(std::string b, std::string type) {
    body = std::move(b);
    content_type = std::move(type);
  }
  void set_header(std::string k, std::string v) { headers.emplace_back(std::move(k), std::move(v)); }
};

class HttpServer {
 public:
  using Handler = std::function<void(const HttpRequest&, HttpResponse&)>;
  // Calls `respond` exactly once, from any thread, possibly before returning.
  using AsyncHandler = std::function<void(const HttpRequest&, std::function<void(HttpResponse)> respond)>;
  // Builds the body of a 404 / 413 / 400 answer the server gives itself.
  using ErrorBody = std::function<void(int status, const std::string& message, HttpResponse&)>;

  struct Options {
    std::string bind = "127.0.0.1";
    int port = 0;  // 0: a free one
    int threads = 8;
    size_t max_body = 64 << 20;  // after decompression too
    unsigned idle_timeout_s = 120;
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

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace quiver::serve
