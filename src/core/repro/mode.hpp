// Internal: the numerics a model is loaded with, read once at load by the ONNX compiler's target
// (onnx::cpu_target) and the forest loader.
#pragma once
#include "core/repro/repro.hpp"
#include "quiver/core/model.hpp"

namespace quiver::repro {

struct Mode {
  bool reproducible = false;
  Isa isa = Isa::Baseline;  // reproducible: the ISA of its kernels
};

// LoadOptions::params["numerics"] = "default" | "reproducible"; in reproducible mode params["isa"],
// else the QUIVER_ISA environment variable, = "avx512" | "avx2" | "baseline" | "auto" (default: the
// best this CPU runs). quiver::Error (InvalidArgument, Unsupported) for an unknown value, an ISA this
// CPU does not run, or params["isa"] without reproducible mode. QUIVER_ISA is not read in default
// mode: the default kernels are dispatched by the CPU (target_clones) and oneDNN, which cannot be
// forced per model.
Mode mode_of(const LoadOptions& options);

}  // namespace quiver::repro
