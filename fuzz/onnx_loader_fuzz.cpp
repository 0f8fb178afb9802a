// Fuzzes the ONNX loader + compiler + one run on whatever the bytes decode to. Invariants:
//   - loading ends in a model or a quiver::Error;
//   - a model that loads runs on zero-filled inputs of its declared shapes (symbolic dims = 2) and
//     returns as many outputs as it declares, or fails with a quiver::Error that is not Internal
//     (the engine's own bugs are Internal);
//   - parse_tensor ends in a tensor or a quiver::Error.
// Anything else (a crash, a sanitizer report, another exception, a broken invariant) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "quiver/core/error.hpp"
#include "quiver/core/tensor.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"

namespace {
// Inputs bigger than this are not run (a tiny model may declare a huge input; the point is the
// engine, not the allocator).
constexpr int64_t kMaxInputBytes = int64_t{16} << 20;

[[noreturn]] void broken(const std::string& what) {
  std::fprintf(stderr, "onnx loader fuzz invariant broken: %s\n", what.c_str());
  std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A tiny model may legitimately ask for gigabytes; here that must be a clean error.
  const quiver::TensorByteLimit limit(size_t{256} << 20);
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  std::shared_ptr<const quiver::Model> m;
  try {
    m = quiver::onnx::load_onnx_bytes(bytes, "");
  } catch (const quiver::Error&) {
  }
  if (m) {
    const auto& info = m->info();
    std::vector<quiver::Tensor> inputs;
    int64_t total = 0;
    bool run = true;
    for (const auto& ti : info.inputs) {
      std::vector<int64_t> d;
      int64_t n = 1;
      for (const auto& x : ti.shape) {
        const int64_t v = x.is_fixed() ? x.value : 2;
        if (v < 0 || (v > 0 && n > kMaxInputBytes / v)) run = false;
        d.push_back(v);
        n = run ? n * v : 0;
      }
      total += n * static_cast<int64_t>(quiver::dtype_size(ti.dtype));
      if (!run || total > kMaxInputBytes) {
        run = false;
        break;
      }
      inputs.push_back(quiver::Tensor::zeros(ti.dtype, d));
    }
    if (run) {
      try {
        const auto outs = m->run_once(inputs);
        if (outs.size() != info.outputs.size())
          broken("the model declares " + std::to_string(info.outputs.size()) + " outputs and returned " +
                 std::to_string(outs.size()));
      } catch (const quiver::Error& e) {
        if (e.code() == quiver::ErrorCode::Internal) broken(std::string("internal error running a loaded model: ") + e.what());
      }
    }
  }
  try {
    quiver::onnx::parse_tensor(bytes);
  } catch (const quiver::Error&) {
  }  // anything else (std::bad_alloc included) is a finding
  return 0;
}
