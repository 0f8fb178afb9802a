// ONNX TensorProto <-> quiver::Tensor (the test-data format: input_<i>.pb / output_<i>.pb).
#pragma once
#include <string>
#include <vector>

#include "quiver/core/tensor.hpp"

namespace quiver::onnx {

// Reads a serialized TensorProto file; returns its name (may be empty) and the tensor.
NamedTensor read_tensor_file(const std::string& path);
void write_tensor_file(const std::string& path, const NamedTensor& t);
// Serialized bytes of a TensorProto (raw_data little-endian; strings in string_data).
std::string serialize_tensor(const NamedTensor& t);
NamedTensor parse_tensor(const std::string& bytes, const std::string& what = "");

// Files `prefix_<i>.pb` in a folder, sorted by number (input_10 after input_9).
std::vector<std::string> numbered_files(const std::string& dir, const std::string& prefix);

}  // namespace quiver::onnx
