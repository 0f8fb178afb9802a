// HTTP library choice for `quiver serve`'s REST front end (docs/benchmarks.md): the Debian HTTP
// server libraries, each serving the same echo endpoint (the body of a KServe v2 binary-extension
// request back, with its Inference-Header-Content-Length), driven by the same keep-alive load
// generator at concurrency 1 and 16 in one run, points alternating:
//   cpp-httplib 0.11 (what quiver serve uses: a pool of 128 threads, TCP_NODELAY; and with 8)
//   libevent 2.1 evhttp (the library family Triton's HTTP endpoint is built on): 1 and 4 event loops
//   libmicrohttpd 0.9.75: internal epoll thread pool of 8
// This isolates the HTTP layer's cost per request: no model, no JSON parsing.
// Usage: http_bench [SECONDS [REPS]]
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <unordered_set>

#include "load_util.hpp"

using quiver::bench::http_load;
using quiver::bench::Result;

namespace {

constexpr const char* kHeaderLen = "Inference-Header-Content-Length";

// ---------------------------------------------------------------- cpp-httplib
class HttplibEcho {
 public:
  explicit HttplibEcho(size_t threads) {
    srv_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    srv_.set_tcp_nodelay(true);
    srv_.set_keep_alive_max_count(1 << 30);  // as quiver serve: no forced reconnects
    srv_.set_read_timeout(30, 0);
    srv_.Post("/v2/models/ident/infer", [](const httplib::Request& req, httplib::Response& res) {
      res.set_header(kHeaderLen, req.get_header_value(kHeaderLen));
      res.set_content(req.body, "application/octet-stream");
    });
    port_ = srv_.bind_to_any_port("127.0.0.1");
    th_ = std::thread([this] { srv_.listen_after_bind(); });
    while (!srv_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~HttplibEcho() {
    srv_.stop();
    th_.join();
  }
  int port() const { return port_; }

 private:
  httplib::Server srv_;
  int port_ = 0;
  std::thread th_;
};

// ---------------------------------------------------------------- libevent evhttp
// `loops` event bases, each with its own evhttp accepting on one shared listening socket.
class EvhttpEcho {
 public:
  explicit EvhttpEcho(int loops) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listen_fd_, 128) != 0) std::abort();
    socklen_t len = sizeof a;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    evutil_make_socket_nonblocking(listen_fd_);
    for (int i = 0; i < loops; ++i) {
      auto l = std::make_unique<Loop>();
      l->base = event_base_new();
      l->http = evhttp_new(l->base);
      evhttp_set_gencb(l->http, &EvhttpEcho::handle, l.get());
      evhttp_accept_socket(l->http, listen_fd_);
      loops_.push_back(std::move(l));
    }
    for (auto& l : loops_) l->th = std::thread([b = l->base] { event_base_loop(b, EVLOOP_NO_EXIT_ON_EMPTY); });
  }
  ~EvhttpEcho() {
    for (auto& l : loops_) event_base_loopbreak(l->base);
    for (auto& l : loops_) {
      l->th.join();
      evhttp_free(l->http);
      event_base_free(l->base);
    }
    close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  struct Loop {
    event_base* base = nullptr;
    evhttp* http = nullptr;
    std::thread th;
    std::unordered_set<evhttp_connection*> nodelay;  // connections already switched to TCP_NODELAY
  };
  static void forget(evhttp_connection* c, void* arg) { static_cast<Loop*>(arg)->nodelay.erase(c); }
  static void handle(evhttp_request* req, void* arg) {
    auto* loop = static_cast<Loop*>(arg);
    // Without TCP_NODELAY every response waits for the client's delayed ACK (tens of ms).
    evhttp_connection* c = evhttp_request_get_connection(req);
    if (loop->nodelay.insert(c).second) {
      int one = 1;
      setsockopt(bufferevent_getfd(evhttp_connection_get_bufferevent(c)), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      evhttp_connection_set_closecb(c, &EvhttpEcho::forget, loop);
    }
    const char* hl = evhttp_find_header(evhttp_request_get_input_headers(req), kHeaderLen);
    evkeyvalq* out = evhttp_request_get_output_headers(req);
    if (hl) evhttp_add_header(out, kHeaderLen, hl);
    evhttp_add_header(out, "Content-Type", "application/octet-stream");
    evbuffer* reply = evbuffer_new();
    evbuffer_add_buffer(reply, evhttp_request_get_input_buffer(req));
    evhttp_send_reply(req, 200, "OK", reply);
    evbuffer_free(reply);
  }
  int listen_fd_ = -1;
  int port_ = 0;
  std::vector<std::unique_ptr<Loop>> loops_;
};

// ---------------------------------------------------------------- libmicrohttpd
class MhdEcho {
 public:
  MhdEcho() {
    d_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, nullptr, nullptr,
                          &MhdEcho::handle, nullptr, MHD_OPTION_THREAD_POOL_SIZE, 8u, MHD_OPTION_NOTIFY_COMPLETED,
                          &MhdEcho::completed, nullptr, MHD_OPTION_END);
    if (!d_) std::abort();
    port_ = MHD_get_daemon_info(d_, MHD_DAEMON_INFO_BIND_PORT)->port;
  }
  ~MhdEcho() { MHD_stop_daemon(d_); }
  int port() const { return port_; }

 private:
  static MHD_Result handle(void*, MHD_Connection* c, const char*, const char*, const char*, const char* data,
                           size_t* size, void** state) {
    if (!*state) {  // first call: headers only
      *state = new std::string;
      return MHD_YES;
    }
    auto* body = static_cast<std::string*>(*state);
    if (*size) {  // a chunk of the body
      body->append(data, *size);
      *size = 0;
      return MHD_YES;
    }
    MHD_Response* r = MHD_create_response_from_buffer(body->size(), body->data(), MHD_RESPMEM_MUST_COPY);
    if (const char* hl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, kHeaderLen))
      MHD_add_response_header(r, kHeaderLen, hl);
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    const MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ok;
  }
  static void completed(void*, MHD_Connection*, void** state, MHD_RequestTerminationCode) {
    delete static_cast<std::string*>(*state);
    *state = nullptr;
  }
  MHD_Daemon* d_ = nullptr;
  int port_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const double secs = argc > 1 ? std::atof(argv[1]) : 2.0;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
  evthread_use_pthreads();
  HttplibEcho httplib128(128), httplib8(8);
  EvhttpEcho ev1(1), ev4(4);
  MhdEcho mhd;
  struct Server {
    const char* name;
    int port;
  };
  const std::vector<Server> servers = {{"cpp-httplib 0.11, 128 threads (quiver)", httplib128.port()},
                                       {"cpp-httplib 0.11, 8 threads", httplib8.port()},
                                       {"libevent 2.1 evhttp, 1 event loop", ev1.port()},
                                       {"libevent 2.1 evhttp, 4 event loops", ev4.port()},
                                       {"libmicrohttpd 0.9.75 (epoll, 8 threads)", mhd.port()}};
  std::printf("HTTP echo of a KServe v2 binary request (%zu-byte body), keep-alive, %d alternating reps of %.1f s, "
              "medians; %u hardware threads\n",
              std::strlen(quiver::bench::kIdentHead) + quiver::bench::kIdentBinaryBytes,
              reps, secs, std::thread::hardware_concurrency());
  std::printf("| %-40s | conc | req/s | p50 us | p99 us | errors | starved conns | vs cpp-httplib |\n", "server");
  std::printf("|%s|------|-------|--------|--------|--------|---------------|----------------|\n", std::string(42, '-').c_str());
  for (int conc : {1, 16}) {
    std::vector<std::function<Result()>> loads;
    for (const auto& sv : servers) loads.push_back([&, port = sv.port] { return http_load(port, conc, secs); });
    const std::vector<Result> med = quiver::bench::alternate(reps, loads);
    for (size_t i = 0; i < servers.size(); ++i) {
      const Result& m = med[i];
      std::printf("| %-40s | %4d | %5.0f | %6.1f | %6.1f | %6llu | %13llu | %13.2fx |\n", servers[i].name, conc, m.rps,
                  m.p50, m.p99, static_cast<unsigned long long>(m.errors), static_cast<unsigned long long>(m.starved),
                  m.rps / med[0].rps);
      std::fflush(stdout);
    }
  }
  return 0;
}
