// Small shared helpers: files, hashing, timing.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace quiver {

// Whole file as bytes; throws Error(NotFound/Parse) naming the file.
std::string read_file(const std::string& path);
void write_file(const std::string& path, std::string_view bytes);
std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::string& path);
// Peak resident set size of this process in bytes (VmHWM).
int64_t peak_rss_bytes();
int64_t current_rss_bytes();
// glibc malloc arenas for the whole process (mallopt M_ARENA_MAX): -1 = one per core, 0 = glibc's
// default (8 per core), N > 0 = N. Each arena keeps its own fragmentation high-water mark, so with
// 8 per core and ~40 server threads RSS creeps up by steps while the heap in use stays flat.
// Process policy: a program's main() calls it before it starts threads (`quiver serve` does).
void set_malloc_arenas(int arenas);

// `s` without leading and trailing white space (space, tab, CR, LF, FF, VT): the one trim that
// option, header and list parsers share.
inline std::string_view trim(std::string_view s) {
  constexpr std::string_view ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace quiver
