#pragma once
// The C++ spelling of an element type in emitted code; one table for the op emitters and the AOT
// generator. Kept out of emit.hpp so that users of the table do not rebuild every op file.
#include <string>

#include "quiver/core/dtype.hpp"

namespace quiver::onnx {

// "" for a type the emitted code cannot hold (callers refuse it by name).
std::string c_type_name(DType t);

}  // namespace quiver::onnx
