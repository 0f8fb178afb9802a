// Fuzzes the ONNX loader + compiler + one run on whatever the bytes decode to: any input must end
// in a model or a quiver::Error, never a crash, hang or sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string>

#include "quiver/core/error.hpp"
#include "quiver/core/tensor.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A tiny model may legitimately ask for gigabytes; here that must be a clean error.
  const quiver::TensorByteLimit limit(size_t{256} << 20);
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    auto m = quiver::onnx::load_onnx_bytes(bytes, "");
    // Run once on zero inputs of small sizes when every input has a known rank.
    std::vector<quiver::Tensor> inputs;
    for (const auto& ti : m->info().inputs) {
      std::vector<int64_t> d;
      for (const auto& x : ti.shape) d.push_back(x.is_fixed() ? std::min<int64_t>(x.value, 64) : 2);
      inputs.push_back(quiver::Tensor::zeros(ti.dtype, d));
    }
    m->run_once(inputs);
  } catch (const quiver::Error&) {
  }
  try {
    quiver::onnx::parse_tensor(bytes);
  } catch (const quiver::Error&) {
  }  // anything else (std::bad_alloc included) is a finding
  return 0;
}
