// Internal: the code emitter as an ONNX compiler target (onnx/target.hpp). Its library asks each
// step's op for its emitter (EmitterRegistry, onnx/emit.hpp) once, at compile time: the emitted
// variant (default or reproducible numerics) follows from the target, chosen once per compile.
#pragma once
#include "onnx/target.hpp"

namespace quiver::aot {

// `reproducible`: the plan is compiled for the engine's reproducible numerics (#15) and every step
// must be emitted bitwise (Emit::bitwise); the others are refused by name.
const onnx::Target& emitter_target(bool reproducible = false);

}  // namespace quiver::aot
