// quiver compile: a model ahead of time into dependency-free C++ (src/aot); --check builds the output
// and runs it against the engine and the model's reference data.
#include <CLI/CLI.hpp>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "cli/command.hpp"
#include "forest/codegen.hpp"
#include "quiver/aot/aot.hpp"
#include "quiver/backends/backends.hpp"
#include "quiver/forest/forest.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"

namespace fs = std::filesystem;
using namespace quiver;

namespace {

struct CompileArgs {
  std::string model, out, name, target = "native";
  std::vector<std::string> max_dims, params;
  bool check = false;
  double rtol = 1e-4, atol = 1e-5;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void cmd_compile(const CompileArgs& a) {
  aot::CompileOptions o;
  o.name = a.name;
  o.target = a.target;
  for (const auto& m : a.max_dims) {
    const auto eq = m.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(ErrorCode::InvalidArgument, "--max-dim expects NAME=VALUE, got '" + m + "'");
    try {
      size_t used = 0;
      const int64_t v = std::stoll(m.substr(eq + 1), &used);
      if (used != m.size() - eq - 1 || v < 0) throw std::invalid_argument("");
      o.max_dims[m.substr(0, eq)] = v;
    } catch (const std::exception&) {
      throw Error(ErrorCode::InvalidArgument, "--max-dim " + m + ": the value is not a non-negative integer");
    }
  }
  for (const auto& p : a.params) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) throw Error(ErrorCode::InvalidArgument, "--param expects KEY=VALUE, got '" + p + "'");
    o.params[p.substr(0, eq)] = p.substr(eq + 1);
  }
  std::string out = a.out;
  if (out.empty()) {
    if (!a.check) throw Error(ErrorCode::InvalidArgument, "give the output folder with -o DIR");
    out = (fs::temp_directory_path() / ("quiver-compile-" + std::to_string(::getpid()))).string();
  }
  auto t0 = std::chrono::steady_clock::now();
  aot::CompileResult r = aot::compile_model(a.model, out, o);
  std::cout << "compiled " << a.model << " -> " << r.dir << " (" << r.name << ": " << r.steps << " steps, "
            << r.weight_bytes << " bytes of weights; dims:";
  for (const auto& d : r.dims) std::cout << " " << d;
  if (r.dims.empty()) std::cout << " none";
  std::cout << ") in " << seconds_since(t0) << " s\n";
  for (const auto& f : r.files) std::cout << "  " << f << "\n";
  if (!a.check) return;

  t0 = std::chrono::steady_clock::now();
  const std::string lib = aot::build_shared(r);
  std::cout << "built " << lib << " in " << seconds_since(t0) << " s\n";
  auto compiled = aot::load_library(lib);
  LoadOptions lo;
  lo.params = o.params;
  auto engine = load_model(a.model, lo);
  const onnx::Tolerance tol{a.rtol, a.atol};
  auto compare = [&](const std::vector<Tensor>& got, const std::vector<Tensor>& ref, const std::vector<Tensor>* expected) {
    std::string why;
    for (size_t i = 0; i < got.size() && why.empty(); ++i) {
      if (expected && i < expected->size()) {
        const auto m = onnx::compare_tensors(got[i], (*expected)[i], tol);
        if (!m.empty()) why = "output " + compiled->info().outputs[i].name + " vs reference data: " + m;
      }
      if (why.empty()) {
        const auto m = onnx::compare_tensors(got[i], ref[i], tol);
        if (!m.empty()) why = "output " + compiled->info().outputs[i].name + " vs the engine: " + m;
      }
    }
    return why;
  };
  int sets = 0, failed = 0;
  if (engine->info().backend == "forest") {
    // Tree ensembles have no test_data_set_*: rows made from the model's own thresholds (each value a
    // threshold, its neighbour float, a small category code or missing), so every kind of branch is taken.
    const auto* fm = dynamic_cast<const forest::ForestModel*>(engine.get());
    if (!fm) throw Error(ErrorCode::Internal, "the forest backend's model is not a ForestModel");
    const Tensor rows = forest::probe_rows(fm->forest(), 512, 17);
    for (int64_t b : {int64_t{512}, int64_t{1}}) {
      const std::vector<int64_t> dims{b, rows.dim(1)};
      std::vector<Tensor> in{Tensor::view(DType::F32, dims, rows.data<float>())};
      const std::string why = compare(compiled->run_once(in), engine->run_once(in), nullptr);
      std::cout << b << " generated rows: " << (why.empty() ? "ok (engine)" : "FAILED: " + why) << "\n";
      if (!why.empty()) ++failed;
    }
  } else {
    for (int k = 0;; ++k) {
      const fs::path dir = fs::path(a.model).parent_path() / ("test_data_set_" + std::to_string(k));
      if (!fs::is_directory(dir)) break;
      ++sets;
      std::vector<Tensor> inputs, expected;
      for (const auto& f : onnx::numbered_files(dir.string(), "input")) inputs.push_back(onnx::read_tensor_file(f).tensor);
      for (const auto& f : onnx::numbered_files(dir.string(), "output")) expected.push_back(onnx::read_tensor_file(f).tensor);
      const std::string why = compare(compiled->run_once(inputs), engine->run_once(inputs), &expected);
      std::cout << dir.filename().string() << ": " << (why.empty() ? "ok (reference data and engine)" : "FAILED: " + why) << "\n";
      if (!why.empty()) ++failed;
    }
    if (sets == 0) std::cout << "no test_data_set_* next to the model: built and loaded only\n";
  }
  if (failed) cli::set_exit_code(1);
}

quiver::cli::CommandRegistrar reg(45, [](CLI::App& app) {
  auto* c = app.add_subcommand("compile", "Compile a model ahead of time into dependency-free, reentrant C++");
  auto a = std::make_shared<CompileArgs>();
  c->add_option("model", a->model, "ONNX model, or a tree ensemble (XGBoost JSON/UBJ, LightGBM text, TMVA XML)")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("-o,--output", a->out, "output folder (NAME.hpp, NAME.cpp, NAME_weights.cpp, CMakeLists.txt)");
  c->add_option("--name", a->name, "C++ name of the library (default: from the file name)");
  c->add_option("--max-dim", a->max_dims, "NAME=V: largest value a symbolic dim may take at run time")->take_all();
  c->add_option("--param", a->params, "KEY=VALUE: a load parameter fixed at compile time (tree ensembles: round_begin, "
                                      "round_end, use_best_iteration)")->take_all();
  c->add_option("--target", a->target, "instruction set: native, x86-64-v3 or x86-64-v2")->default_val("native");
  c->add_flag("--check", a->check, "also build it with the C++ compiler and run it against the engine and the "
                                   "model's test_data_set_* (rtol/atol below)");
  c->add_option("--rtol", a->rtol, "relative tolerance of --check")->default_val(1e-4);
  c->add_option("--atol", a->atol, "absolute tolerance of --check")->default_val(1e-5);
  c->callback([a] { cmd_compile(*a); });
});

}  // namespace
