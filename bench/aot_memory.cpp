// RSS gained by loading a model and running it once: VmRSS after the first run minus VmRSS before
// load_model, with the inputs (the model's test_data_set_0, tiled to the batch) read beforehand; and
// the wall time of that load + first run (for a compiled library: dlopen, its weights file if it has
// one, the first run), so each fresh process gives one sample of both.
// Usage: aot_memory MODEL (.onnx or a compiled libNAME.so) DATA_DIR BATCH  -> one JSON line.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "quiver/backends/backends.hpp"
#include "quiver/core/batching.hpp"
#include "quiver/core/model.hpp"
#include "quiver/onnx/tensor_proto.hpp"

namespace {
long vm_rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: aot_memory MODEL DATA_DIR BATCH\n");
    return 2;
  }
  try {
    std::vector<quiver::Tensor> in;
    for (const auto& f : quiver::onnx::numbered_files(argv[2], "input")) in.push_back(quiver::onnx::read_tensor_file(f).tensor);
    const int64_t batch = std::stoll(argv[3]);
    if (batch > 1) in = quiver::tile_rows(in, batch);
    const long before = vm_rss_kib();
    const auto t0 = std::chrono::steady_clock::now();
    auto model = quiver::load_model(argv[1]);
    quiver::Session s(model);
    std::vector<quiver::Tensor> out;
    s.run(in, out);
    const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    const long after = vm_rss_kib();
    std::printf("{\"model\":\"%s\",\"backend\":\"%s\",\"batch\":%lld,\"rss_gain_bytes\":%ld,\"load_first_run_us\":%.1f}\n",
                argv[1], model->info().backend.c_str(), static_cast<long long>(batch), (after - before) * 1024, us);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "aot_memory: %s\n", e.what());
    return 1;
  }
  return 0;
}
