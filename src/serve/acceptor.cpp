#include "serve/acceptor.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "quiver/core/error.hpp"

namespace quiver::serve {

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

unsigned auto_max_connections() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 16;
  const int64_t soft = rl.rlim_cur == RLIM_INFINITY ? int64_t(1) << 20 : static_cast<int64_t>(rl.rlim_cur);
  return static_cast<unsigned>(std::clamp<int64_t>((soft - 512) * 3 / 4, 16, 65536));
}

DescriptorReserve::DescriptorReserve() : fd_(::open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

DescriptorReserve::~DescriptorReserve() {
  if (fd_ >= 0) ::close(fd_);
}

DescriptorReserve::Accepted DescriptorReserve::accept(int listen_fd, sockaddr_storage& addr, socklen_t& len,
                                                     const std::function<void(int fd)>& refuse) {
  std::lock_guard<std::mutex> lock(mu_);
  Accepted a;
  if (fd_ < 0) fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // lost when it was last reopened
  len = sizeof addr;
  a.fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  a.error = a.fd < 0 ? errno : 0;
  if (a.fd >= 0) {
    // gRPC's own listener set this on its sockets; without it a request/response exchange on one
    // connection waits for delayed ACKs (gRPC at concurrency 1 lost half its throughput).
    const int on = 1;
    setsockopt(a.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  }
  if (a.fd >= 0 || (a.error != EMFILE && a.error != ENFILE) || fd_ < 0) return a;
  ::close(fd_);
  const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) {
    if (refuse) refuse(fd);
    ::close(fd);
    a.refused = true;
  }
  fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return a;
}

int Acceptor::listen(const std::string& bind, int port, const std::string& what) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* ai = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(bind.c_str(), service.c_str(), &hints, &ai) != 0 || !ai)
    throw Error(ErrorCode::Unavailable, "cannot resolve the " + what + " bind address '" + bind + "'");
  listen_fd_ = ::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int err = listen_fd_ < 0 ? errno : 0;
  if (!err) {
    const int on = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    // The kernel caps the backlog at net.core.somaxconn; the thread drains it.
    if (::bind(listen_fd_, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(listen_fd_, 65535) != 0) err = errno;
  }
  freeaddrinfo(ai);
  if (err) {
    stop();
    throw Error(ErrorCode::Unavailable,
                "cannot listen for " + what + " on " + bind + ":" + std::to_string(port) + ": " + std::strerror(err));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &len);
  return ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

void Acceptor::start(Handlers h, int64_t tick_ms, std::shared_ptr<DescriptorReserve> reserve) {
  h_ = std::move(h);
  tick_ms_ = std::max<int64_t>(1, tick_ms);
  reserve_ = reserve ? std::move(reserve) : std::make_shared<DescriptorReserve>();
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0 || listen_fd_ < 0)
    throw Error(ErrorCode::Unavailable, std::string("cannot start accepting connections: ") + std::strerror(errno));
  thread_ = std::thread([this] { run(); });
}

void Acceptor::stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  for (int* fd : {&listen_fd_, &wake_fd_})
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
}

void Acceptor::refuse(int fd) {
  if (h_.refuse) h_.refuse(fd);
  ::close(fd);
}

// Accepts what is queued (a bounded batch, so that ticks keep coming). Returns the time until
// which the queue is left alone after an error that retrying at once cannot fix (0: none).
int64_t Acceptor::accept_ready() {
  for (int i = 0; i < 512; ++i) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    const DescriptorReserve::Accepted a = reserve_->accept(listen_fd_, addr, len, h_.refuse);
    if (a.refused) {
      no_fd_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (a.fd < 0) {
      if (a.error == EINTR || a.error == ECONNABORTED) continue;
      if (a.error == EAGAIN || a.error == EWOULDBLOCK) return 0;
      return steady_ms() + 100;  // ENOBUFS / ENOMEM, or out of descriptors without the spare's room
    }
    if (!h_.take(a.fd, reinterpret_cast<sockaddr*>(&addr), len)) refuse(a.fd);
  }
  return 0;
}

void Acceptor::run() {
  int64_t paused_until = 0, next_tick = steady_ms() + tick_ms_;
  bool accepted = false;
  for (;;) {
    const int64_t now = steady_ms();
    const bool paused = now < paused_until;
    // Nothing to watch and nothing just handed on (its owner may not have counted it yet):
    // sleep until a connection comes.
    const bool idle = !accepted && !h_.watching();
    int64_t wait = idle ? -1 : std::max<int64_t>(0, next_tick - now);
    if (paused) wait = wait < 0 ? paused_until - now : std::min(wait, paused_until - now);
    pollfd p[2] = {{wake_fd_, POLLIN, 0}, {listen_fd_, static_cast<short>(paused ? 0 : POLLIN), 0}};
    const int n = ::poll(p, 2, static_cast<int>(wait));
    if (n > 0 && (p[0].revents & POLLIN)) {  // stop()
      h_.tick(steady_ms(), true);
      return;
    }
    accepted = n > 0 && (p[1].revents & POLLIN);
    if (accepted) paused_until = accept_ready();
    const int64_t t = steady_ms();
    if (idle) next_tick = t + tick_ms_;
    if (t >= next_tick) {
      h_.tick(t, false);
      next_tick = t + tick_ms_;
    }
  }
}

}  // namespace quiver::serve
