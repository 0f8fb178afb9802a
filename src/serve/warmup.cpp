// model_warmup (Triton config): sample requests run on every execution state of a freshly loaded
// version before it is published, so the first real request does not pay for first-call work
// (arena growth, page faults on the weights). A sample that cannot run fails the load.
#include <filesystem>
#include <random>

#include "quiver/core/util.hpp"
#include "serve/codec.hpp"
#include "serve/repository.hpp"

namespace fs = std::filesystem;

namespace quiver::serve {

namespace {

void fill_random(Tensor& t, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto* b = static_cast<uint8_t*>(t.raw());
  switch (t.dtype()) {
    case DType::F32: for (auto& v : t.span<float>()) v = static_cast<float>(u(rng)); break;
    case DType::F64: for (auto& v : t.span<double>()) v = u(rng); break;
    case DType::Bool: for (auto& v : t.span<bool>()) v = u(rng) < 0.5; break;
    case DType::String:
      for (auto& v : t.span<std::string>()) v = std::to_string(rng() % 1000);
      break;
    case DType::F16:
    case DType::BF16: {
      // small positive values: exponent bits of 0.5 .. 1 in both formats' upper byte layout
      for (auto& v : t.span<uint16_t>()) v = t.dtype() == DType::F16 ? uint16_t(0x3800 + rng() % 0x400) : uint16_t(0x3f00 + rng() % 0x80);
      break;
    }
    default:  // integers: small non-negative values (valid indices for most models)
      for (size_t i = 0; i < t.nbytes(); ++i) b[i] = 0;
      for (int64_t i = 0; i < t.numel(); ++i) b[static_cast<size_t>(i) * dtype_size(t.dtype())] = static_cast<uint8_t>(rng() % 16);
  }
}

}  // namespace

void warm_up(const ModelVersion& mv, const std::string& model_dir) {
  const auto& samples = mv.config->model_warmup();
  if (samples.empty()) return;
  std::mt19937 rng(12345);
  for (int k = 0; k < samples.size(); ++k) {
    const auto& w = samples[k];
    std::string sample = w.name();  // (appended, not "#" + ...: GCC 12 warns falsely on that form)
    if (sample.empty()) sample.append("#").append(std::to_string(k));
    else sample = std::string("'").append(w.name()).append("'");
    auto fail = [&](const std::string& tensor, const std::string& msg) -> Error {
      return Error(ErrorCode::InvalidArgument, "model_warmup sample " + sample + ": " + msg, {mv.name, "", tensor});
    };
    const int64_t batch = mv.max_batch > 0 ? std::max<int64_t>(1, w.batch_size()) : 0;
    if (mv.max_batch > 0 && batch > mv.max_batch)
      throw fail("", "batch_size " + std::to_string(batch) + " exceeds max_batch_size " + std::to_string(mv.max_batch));
    for (const auto& [name, in] : w.inputs())
      if (!mv.input(name)) throw fail(name, "the model has no input '" + name + "'");
    std::vector<Tensor> inputs(mv.inputs.size());
    std::vector<std::string> files;  // file contents the inputs may view
    files.reserve(mv.inputs.size());
    for (size_t i = 0; i < mv.inputs.size(); ++i) {
      const IOSpec& spec = mv.inputs[i];
      auto it = w.inputs().find(spec.name);
      if (it == w.inputs().end()) throw fail(spec.name, "input '" + spec.name + "' is missing");
      const auto& in = it->second;
      auto dt = config_dtype(in.data_type());
      if (!dt || *dt != spec.dtype)
        throw fail(spec.name, "data_type of input '" + spec.name + "' is not the model's " +
                                  std::string(dtype_triton_config_name(spec.dtype)));
      std::vector<int64_t> one(in.dims().begin(), in.dims().end());  // one batch entry
      std::vector<int64_t> shape = one;
      if (batch > 0) shape.insert(shape.begin(), batch);
      if (in.input_data_type_case() == inference::ModelWarmup::Input::kInputDataFile) {
        // Triton: REPO/<model>/warmup/<file>, the wire bytes of one batch entry (BYTES: 4-byte
        // length + bytes per element), used for every entry of the batch.
        const std::string& f = in.input_data_file();
        if (f.empty() || f.find('/') != std::string::npos || f.find("..") != std::string::npos)
          throw fail(spec.name, "input_data_file '" + f + "' must be a plain file name in the model's warmup/ folder");
        const fs::path path = fs::path(model_dir) / "warmup" / f;
        std::error_code ec;
        if (!fs::is_regular_file(path, ec)) throw fail(spec.name, "input_data_file " + path.string() + " not found");
        std::string bytes = read_file(path.string());
        std::string all;
        for (int64_t b = 0; b < std::max<int64_t>(1, batch); ++b) all += bytes;
        files.push_back(std::move(all));
        try {
          inputs[i] = tensor_from_raw(mv, spec, shape, files.back().data(), files.back().size()).clone();
        } catch (const Error& e) {
          throw fail(spec.name, std::string("input_data_file ") + path.string() + ": " + e.what());
        }
      } else {
        for (int64_t d : shape)
          if (d < 0) throw fail(spec.name, "dims of input '" + spec.name + "' must be fixed");
        inputs[i] = Tensor::zeros(spec.dtype, shape);
        if (in.input_data_type_case() == inference::ModelWarmup::Input::kRandomData) fill_random(inputs[i], rng);
      }
    }
    try {
      mv.scheduler->warm_up(inputs, static_cast<int>(w.count()));
    } catch (const Error& e) {
      throw Error(e.code(), "model_warmup sample " + sample + " failed: " + e.what(), {mv.name});
    }
  }
}

}  // namespace quiver::serve
