#include "quiver/client/shm.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "quiver/core/error.hpp"

namespace quiver::client {

SystemSharedMemory::SystemSharedMemory(const std::string& prefix, size_t bytes) : bytes_((bytes + 63) / 64 * 64) {
  static std::atomic<unsigned> counter{0};
  if (bytes_ == 0) throw Error(ErrorCode::InvalidArgument, "shared memory region of 0 bytes");
  char buf[96];
  std::snprintf(buf, sizeof buf, "/%.40s_%d_%u", prefix.c_str(), static_cast<int>(::getpid()), counter.fetch_add(1));
  key_ = buf;
  name_ = key_.substr(1);
  int fd = ::shm_open(key_.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0) throw Error(ErrorCode::Unavailable, "cannot create shared memory " + key_ + ": " + std::strerror(errno));
  if (::ftruncate(fd, static_cast<off_t>(bytes_)) != 0) {
    const int e = errno;
    ::close(fd);
    ::shm_unlink(key_.c_str());
    throw Error(ErrorCode::ResourceExhausted, "cannot size shared memory " + key_ + ": " + std::strerror(e));
  }
  void* p = ::mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) {
    const int e = errno;
    ::shm_unlink(key_.c_str());
    throw Error(ErrorCode::ResourceExhausted, "cannot map shared memory " + key_ + ": " + std::strerror(e));
  }
  base_ = static_cast<char*>(p);
}

SystemSharedMemory::~SystemSharedMemory() {
  ::munmap(base_, bytes_);
  ::shm_unlink(key_.c_str());
}

}  // namespace quiver::client
