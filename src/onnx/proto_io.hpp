// Internal: TensorProto conversion used by the loader (initializers, attributes) and test-data I/O.
#pragma once
#include <string>

#include "quiver/core/tensor.hpp"

namespace onnx { class TensorProto; }

namespace quiver::onnx {

// `base_dir`: folder of the model file, for external data. `what`: context for errors.
Tensor tensor_from_proto(const ::onnx::TensorProto& p, const std::string& base_dir, const std::string& what);
void tensor_to_proto(const Tensor& t, const std::string& name, ::onnx::TensorProto& p);

}  // namespace quiver::onnx
