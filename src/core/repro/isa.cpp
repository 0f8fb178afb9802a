#include <cstring>

#include "core/repro/repro.hpp"

namespace quiver::repro {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    case Isa::Baseline: return "baseline";
  }
  return "?";
}

bool parse_isa(const char* s, Isa& out) {
  if (std::strcmp(s, "avx512") == 0) out = Isa::Avx512;
  else if (std::strcmp(s, "avx2") == 0) out = Isa::Avx2;
  else if (std::strcmp(s, "baseline") == 0) out = Isa::Baseline;
  else return false;
  return true;
}

bool cpu_has_isa(Isa isa) {
#if defined(__x86_64__)
  switch (isa) {
    // Features, not the level names: clang 14 (the fuzz build) knows no "x86-64-v3"/"-v4" here. These
    // set the levels apart; every CPU that has them has the rest of its level.
    case Isa::Avx512:
      return cpu_has_isa(Isa::Avx2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512cd");
    case Isa::Avx2:
      return __builtin_cpu_supports("avx") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    case Isa::Baseline: return true;
  }
  return false;
#else
  return isa == Isa::Baseline;
#endif
}

Isa best_isa() {
  if (cpu_has_isa(Isa::Avx512)) return Isa::Avx512;
  if (cpu_has_isa(Isa::Avx2)) return Isa::Avx2;
  return Isa::Baseline;
}

const Kernels& kernels(Isa isa) {
#if defined(__x86_64__)
  switch (isa) {
    case Isa::Avx512: return kernels_avx512();
    case Isa::Avx2: return kernels_avx2();
    case Isa::Baseline: break;
  }
#endif
  return kernels_baseline();
}

}  // namespace quiver::repro
