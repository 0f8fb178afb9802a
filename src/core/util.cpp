#include "quiver/core/util.hpp"

#include <malloc.h>
#include <openssl/evp.h>

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

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string sha256_file(const std::string& path) { return sha256_hex(read_file(path)); }

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
