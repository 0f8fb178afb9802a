// Building compiled output with the C++ compiler directly (quiver compile --check, tests): the same
// flags as the generated CMakeLists.txt, the two translation units compiled at once.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <filesystem>

#include "quiver/aot/aot.hpp"

namespace quiver::aot {
namespace {

std::string quote(const std::string& s) {
  std::string r = "'";
  for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}

}  // namespace

std::string build_shared(const CompileResult& c, const std::string& cxx_in) {
  std::string cxx = cxx_in;
  if (cxx.empty()) {
    const char* e = std::getenv("CXX");
    cxx = e && *e ? e : "g++";
  }
  // The target and the floating-point flags (reproducible numerics: -ffp-contract=off) are recorded
  // in the generated CMakeLists.txt; read them back from there.
  std::string march = "-march=native", fp;
  {
    std::FILE* f = std::fopen((std::filesystem::path(c.dir) / "CMakeLists.txt").c_str(), "r");
    if (f) {
      char line[512];
      while (std::fgets(line, sizeof line, f)) {
        std::string l(line);
        for (auto [key, value] : {std::pair<const char*, std::string*>{"_ARCH_FLAGS \"", &march}, {"_FP_FLAGS \"", &fp}}) {
          const auto p = l.find(key);
          if (p == std::string::npos || l.rfind("set(", 0) != 0) continue;
          const size_t at = p + std::strlen(key);
          *value = l.substr(at, l.find('"', at) - at);
        }
      }
      std::fclose(f);
    }
  }
  const std::string n = c.name;
  const std::string lib = (std::filesystem::path(c.dir) / ("lib" + n + ".so")).string();
  const std::string flags = "-std=c++17 -fPIC -Wall -Wextra " + march + (fp.empty() ? "" : " " + fp);
  // --weights file: no constant-data translation unit (NAME.weights is read at run time, next to the
  // library this writes).
  const bool file = !c.weights_file.empty();
  const std::string weights_tu = file ? std::string("true")
                                      : cxx + " " + flags + " -O0 -c " + quote(n + "_weights.cpp") + " -o " + quote(n + "_weights.o");
  const std::string cmd = "cd " + quote(c.dir) + " && { " + weights_tu + " & " + cxx + " " + flags +
                          " -O3 -fno-math-errno -fno-trapping-math -c " + quote(n + ".cpp") + " -o " + quote(n + ".o") +
                          " && " + cxx + " " + flags + " -c " + quote(n + "_entry.cpp") + " -o " + quote(n + "_entry.o") +
                          "; a=$?; wait $! ; b=$?; [ $a -eq 0 ] && [ $b -eq 0 ]; } && " + cxx + " -shared -o " +
                          quote("lib" + n + ".so") + " " + quote(n + ".o") + " " + quote(n + "_entry.o") +
                          (file ? std::string() : " " + quote(n + "_weights.o")) + " 2>&1";
  std::FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) throw_error(ErrorCode::Internal, "cannot start the C++ compiler");
  std::string out;
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, got);
  const int rc = pclose(p);
  if (rc != 0 || !std::filesystem::exists(lib))
    throw_error(ErrorCode::Internal, "building " + lib + " failed:\n" + out.substr(0, 8000), {n, "", "", c.dir});
  return lib;
}

}  // namespace quiver::aot
