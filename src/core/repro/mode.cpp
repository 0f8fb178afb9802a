#include "core/repro/mode.hpp"

#include <cstdlib>

#include "quiver/core/error.hpp"

namespace quiver::repro {

namespace {
std::string param(const LoadOptions& o, const std::string& key) {
  auto it = o.params.find(key);
  return it == o.params.end() ? std::string() : it->second;
}
}  // namespace

Mode mode_of(const LoadOptions& options) {
  Mode m;
  const std::string numerics = param(options, "numerics");
  if (numerics == "reproducible") {
    m.reproducible = true;
  } else if (!numerics.empty() && numerics != "default") {
    throw_error(ErrorCode::InvalidArgument, "numerics '" + numerics + "' is not one of: default, reproducible",
                {options.name});
  }
  std::string isa = param(options, "isa");
  std::string from = "isa";
  if (isa.empty() && m.reproducible) {
    const char* env = std::getenv("QUIVER_ISA");
    if (env && *env) {
      isa = env;
      from = "QUIVER_ISA";
    }
  }
  m.isa = best_isa();
  if (isa.empty() || isa == "auto") return m;
  if (!m.reproducible)
    throw_error(ErrorCode::InvalidArgument,
                "isa '" + isa + "' applies to numerics=reproducible (the default kernels are chosen by the CPU)",
                {options.name});
  Isa parsed;
  if (!parse_isa(isa.c_str(), parsed))
    throw_error(ErrorCode::InvalidArgument, from + "='" + isa + "' is not one of: avx512, avx2, baseline, auto",
                {options.name});
  if (!cpu_has_isa(parsed))
    throw_error(ErrorCode::Unsupported,
                from + "='" + isa + "': this CPU does not run " + isa + " code (it runs up to " +
                    isa_name(best_isa()) + ")",
                {options.name});
  m.isa = parsed;
  return m;
}

}  // namespace quiver::repro
