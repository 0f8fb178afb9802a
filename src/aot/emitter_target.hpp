// Internal: the code emitter as an ONNX compiler target (onnx/target.hpp). Its library asks each
// step's op for its emitter (EmitterRegistry, onnx/emit.hpp) once, at compile time.
#pragma once
#include "onnx/target.hpp"

namespace quiver::aot {

const onnx::Target& emitter_target();

}  // namespace quiver::aot
