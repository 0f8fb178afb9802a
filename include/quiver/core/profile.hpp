// Time per operator, for `quiver bench --profile`: a sink the caller owns and hangs on a RunState
// (RunState::profile, Session::set_profile). A backend that can time its operators adds each run's
// times to it; others leave it empty. Not shared between threads: one per state, merged afterwards.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace quiver {

class OpProfile {
 public:
  struct Row {
    std::string op;  // operator type as the backend names it ("Conv+Relu", "MatMul (host)")
    int64_t ns = 0;
    int64_t calls = 0;
    double flops = 0;  // floating-point operations done, where the backend counts them (GEMM-type ops)
  };
  void add(const std::string& op, int64_t ns, double flops = 0);
  void merge(const OpProfile& other);
  std::vector<Row> rows() const;  // slowest first
  bool empty() const { return rows_.empty(); }

 private:
  std::unordered_map<std::string, Row> rows_;
};

}  // namespace quiver
