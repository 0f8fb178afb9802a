// Internal: a listening TCP socket served by a thread of its own, for the HTTP and gRPC front
// ends. No connection is ever left waiting in the kernel's backlog: each one is accepted and then
// handed on or refused at once, also when the process has run out of file descriptors (a spare
// descriptor is kept to take the connection off the queue and refuse it; gRPC 1.51's own
// listener stops for good on EMFILE, libmicrohttpd's stops listening at its limit). The same
// thread runs a periodic tick for its owner (deadlines, connection accounting, logging).
#pragma once
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace quiver::serve {

int64_t steady_ms();

// The default connection limit of a front end: (open-file soft limit - 512) * 3/4, within
// [16, 65536]. HTTP and gRPC each get this much; together they may reach the limit, in which case
// new connections are refused (the spare descriptor below) and file opens elsewhere fail cleanly.
unsigned auto_max_connections();

// A spare file descriptor for the listeners of one server. When the process is out of
// descriptors, the spare is closed to make room, a connection is taken off the queue, refused and
// closed, and the spare opened again. The listeners accept through one reserve, under its lock:
// otherwise one listener's accept could take the room the spare left for a moment, and with the
// spare lost every listener's queue would wait until some descriptor is freed.
class DescriptorReserve {
 public:
  DescriptorReserve();
  ~DescriptorReserve();
  DescriptorReserve(const DescriptorReserve&) = delete;
  DescriptorReserve& operator=(const DescriptorReserve&) = delete;

  struct Accepted {
    int fd = -1;           // the new connection (non-blocking, close-on-exec), or -1
    int error = 0;         // errno when fd is -1
    bool refused = false;  // out of descriptors: one connection taken off the queue and refused
  };
  // One accept4 on `listen_fd`; `refuse` writes the refusal to a connection refused for want of
  // descriptors (the reserve closes it).
  Accepted accept(int listen_fd, sockaddr_storage& addr, socklen_t& len, const std::function<void(int fd)>& refuse);

 private:
  std::mutex mu_;
  int fd_ = -1;
};

class Acceptor {
 public:
  struct Handlers {
    // A new connection (non-blocking, close-on-exec): take it (true: ownership passes) or not
    // (false: it is refused).
    std::function<bool(int fd, const sockaddr* addr, socklen_t len)> take;
    // Writes the refusal (a canned answer; may be empty); the acceptor closes the socket.
    std::function<void(int fd)> refuse;
    // Every tick_ms while `watching()` (else the thread sleeps until a connection comes), and once
    // more at stop with last = true.
    std::function<void(int64_t now_ms, bool last)> tick;
    std::function<bool()> watching;
  };

  Acceptor() = default;
  ~Acceptor() { stop(); }
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Binds and listens ("what" names it in errors); returns the bound port. Throws
  // quiver::Error(Unavailable).
  int listen(const std::string& bind, int port, const std::string& what);
  // `reserve`: the spare descriptor shared with the server's other acceptors (null: one of its own).
  void start(Handlers h, int64_t tick_ms, std::shared_ptr<DescriptorReserve> reserve = nullptr);
  // Stops the thread (after a last tick) and closes the listening socket. Idempotent.
  void stop();

  int listen_fd() const { return listen_fd_; }
  // Connections refused because the process was out of file descriptors.
  uint64_t out_of_descriptors() const { return no_fd_.load(); }

 private:
  void run();
  int64_t accept_ready();
  void refuse(int fd);

  Handlers h_;
  int64_t tick_ms_ = 250;
  int listen_fd_ = -1, wake_fd_ = -1;
  std::shared_ptr<DescriptorReserve> reserve_;
  std::thread thread_;
  std::atomic<uint64_t> no_fd_{0};
};

}  // namespace quiver::serve
