#include "quiver/core/util.hpp"

#include <malloc.h>
#include <nettle/sha2.h>

#include <cstdio>
#include <cstring>
#include <thread>
#include <fstream>
#include <sstream>

#include "quiver/core/error.hpp"

namespace quiver {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw_error(ErrorCode::NotFound, "cannot open file", {"", "", "", path});
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw_error(ErrorCode::Parse, "read error", {"", "", "", path});
  return std::move(ss).str();
}

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw_error(ErrorCode::NotFound, "cannot create file", {"", "", "", path});
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw_error(ErrorCode::Internal, "write error", {"", "", "", path});
}

namespace {
std::string hex_digest(sha256_ctx& ctx) {
  uint8_t md[SHA256_DIGEST_SIZE];
  sha256_digest(&ctx, SHA256_DIGEST_SIZE, md);
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA256_DIGEST_SIZE);
  for (uint8_t b : md) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}
}  // namespace

std::string sha256_hex(std::string_view bytes) {
  sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, bytes.size(), reinterpret_cast<const uint8_t*>(bytes.data()));
  return hex_digest(ctx);
}

// Streamed in blocks: no file-sized buffer in the heap of the process that loads a model.
std::string sha256_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw_error(ErrorCode::NotFound, "cannot open file", {"", "", "", path});
  sha256_ctx ctx;
  sha256_init(&ctx);
  char buf[1 << 14];
  while (f.read(buf, sizeof buf) || f.gcount() > 0)
    sha256_update(&ctx, static_cast<size_t>(f.gcount()), reinterpret_cast<const uint8_t*>(buf));
  if (f.bad()) throw_error(ErrorCode::Parse, "read error", {"", "", "", path});
  return hex_digest(ctx);
}

static int64_t status_kb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  int64_t kb = -1;
  size_t klen = std::strlen(key);
  while (std::fgets(line, sizeof line, f)) {
    if (std::strncmp(line, key, klen) == 0) {
      kb = std::strtoll(line + klen, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kb;
}

int64_t peak_rss_bytes() { return status_kb("VmHWM:") * 1024; }
int64_t current_rss_bytes() { return status_kb("VmRSS:") * 1024; }

void set_malloc_arenas(int arenas) {
  if (arenas == 0) return;
  mallopt(M_ARENA_MAX, arenas > 0 ? arenas : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

}  // namespace quiver
