// Helpers of the quiver compile tests: the compiler command that builds generated code (with this
// build's sanitizers, so ASan/UBSan and TSan see inside the generated library too), the dependency
// check, and threads sharing one loaded library.
#pragma once
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "quiver/core/model.hpp"
#include "quiver/onnx/testing.hpp"

namespace aot_test {

// The comma-separated list in environment variable `var`, else `def` (the models a test runs).
inline std::vector<std::string> list_from_env(const char* var, const char* def) {
  const char* env = std::getenv(var);
  std::stringstream ss(env && *env ? env : def);
  std::vector<std::string> r;
  for (std::string m; std::getline(ss, m, ',');)
    if (!m.empty()) r.push_back(m);
  return r;
}

inline std::string run_command(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *rc = pclose(p);
  return out;
}

// g++, warnings as errors, plus -fsanitize=... when this build has sanitizers (QUIVER_AOT_TEST_SANITIZE).
inline std::string compiler() {
  std::string c = "g++ -Werror";
#ifdef QUIVER_AOT_TEST_SANITIZE
  c += " -fsanitize=" QUIVER_AOT_TEST_SANITIZE " -fno-omit-frame-pointer -g";
#endif
  return c;
}

// The library needs nothing but the C and C++ runtime (no Quiver, no oneDNN, no BLAS); in a
// sanitizer build also the sanitizer's runtime.
inline void expect_runtime_only(const std::string& lib) {
  int rc = 0;
  const std::string out = run_command("ldd " + lib, &rc);
  ASSERT_EQ(rc, 0) << out;
  std::set<std::string> allowed = {"linux-vdso.so.1", "libstdc++.so.6", "libm.so.6", "libgcc_s.so.1", "libc.so.6"};
#ifdef QUIVER_AOT_TEST_SANITIZE
  allowed.insert({"libasan.so.8", "libubsan.so.1", "libtsan.so.2"});
#endif
  std::stringstream ss(out);
  int n = 0;
  for (std::string line; std::getline(ss, line);) {
    std::stringstream ls(line);
    std::string name;
    ls >> name;
    if (name.empty() || name.find("ld-linux") != std::string::npos) continue;
    EXPECT_TRUE(allowed.count(name)) << "unexpected dependency: " << line;
    ++n;
  }
  EXPECT_GT(n, 0) << out;
}

// Three threads, one loaded library, each with its own state (the generated code's workspace): every
// result equals the single-thread one bit for bit.
inline void expect_threads_agree(const std::shared_ptr<const quiver::Model>& lib,
                                 const std::vector<std::vector<quiver::Tensor>>& sets, int iterations = 30) {
  ASSERT_FALSE(sets.empty());
  std::vector<std::vector<quiver::Tensor>> want;
  for (const auto& in : sets) want.push_back(lib->run_once(in));
  std::atomic<int> mismatches{0};
  auto worker = [&](size_t first) {
    quiver::Session s(lib);
    std::vector<quiver::Tensor> out;
    for (int it = 0; it < iterations; ++it) {
      const size_t k = (first + static_cast<size_t>(it)) % sets.size();
      s.run(sets[k], out);
      for (size_t i = 0; i < out.size(); ++i)
        if (!quiver::onnx::compare_tensors(out[i], want[k][i], {0, 0}).empty()) ++mismatches;
    }
  };
  std::thread a(worker, 0), b(worker, 1), c(worker, 2);
  a.join();
  b.join();
  c.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace aot_test
