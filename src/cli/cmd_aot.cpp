// quiver compile: a model ahead of time into dependency-free C++ (src/aot); --check builds the output
// and runs it against the engine and the model's reference data.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstring>
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
  std::string model, out, name, target = "native", weights = "source";
  std::vector<std::string> max_dims, params;
  bool check = false, reproducible = false;
  double rtol = 1e-4, atol = 1e-5;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Reproducible numerics: the compiled library's outputs equal the engine's reproducible mode bit for
// bit, at the data set's batch and for each row alone (batch 1, rows concatenated).
std::string bitwise_vs_engine(const Model& compiled, const Model& engine, const std::vector<Tensor>& inputs) {
  auto differ = [&](const std::vector<Tensor>& got, const std::vector<Tensor>& want, const std::string& how) {
    for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
      const auto m = onnx::compare_tensors(got[i], want[i], {0, 0});
      const bool same_bits = got[i].nbytes() == want[i].nbytes() &&
                             std::memcmp(got[i].raw(), want[i].raw(), got[i].nbytes()) == 0;
      if (!same_bits)
        return "output " + compiled.info().outputs[i].name + " differs in bits from the engine's reproducible mode (" +
               how + ")" + (m.empty() ? "" : ": " + m);
    }
    return std::string();
  };
  const std::vector<Tensor> want = engine.run_once(inputs);
  std::string why = differ(compiled.run_once(inputs), want, "the data set's batch");
  if (!why.empty() || inputs.empty() || inputs[0].rank() == 0) return why;
  const int64_t rows = inputs[0].dim(0);
  for (const auto& t : inputs)
    if (t.rank() == 0 || t.dim(0) != rows) return why;  // no common batch dim: the data set's batch only
  for (const auto& t : want)
    if (t.rank() == 0 || t.dim(0) != rows) return why;
  std::vector<std::vector<Tensor>> per_row;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<Tensor> in;
    for (const auto& t : inputs) {
      std::vector<int64_t> d = t.dims();
      d[0] = 1;
      const size_t row_bytes = t.nbytes() / static_cast<size_t>(rows);
      in.push_back(Tensor::view(t.dtype(), d, static_cast<const unsigned char*>(t.raw()) + static_cast<size_t>(r) * row_bytes));
    }
    per_row.push_back(compiled.run_once(in));
  }
  std::vector<Tensor> joined;
  for (size_t i = 0; i < want.size(); ++i) {
    Tensor j = Tensor::empty(want[i].dtype(), want[i].dims());
    size_t at = 0;
    for (const auto& pr : per_row) {
      if (i >= pr.size()) return "batch 1 gave fewer outputs";
      if (at + pr[i].nbytes() > j.nbytes()) return "output " + compiled.info().outputs[i].name + " at batch 1 has other dims";
      std::memcpy(static_cast<unsigned char*>(j.raw()) + at, pr[i].raw(), pr[i].nbytes());
      at += pr[i].nbytes();
    }
    joined.push_back(std::move(j));
  }
  return differ(joined, want, "batch 1, row by row");
}

void cmd_compile(const CompileArgs& a) {
  aot::CompileOptions o;
  o.name = a.name;
  o.target = a.target;
  o.weights = a.weights;
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
  if (a.reproducible) o.params["numerics"] = "reproducible";
  const bool repro = o.params.count("numerics") && o.params.at("numerics") == "reproducible";
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
      std::string why = compare(compiled->run_once(in), engine->run_once(in), nullptr);
      if (why.empty() && repro) why = bitwise_vs_engine(*compiled, *engine, in);
      std::cout << b << " generated rows: "
                << (why.empty() ? (repro ? "ok (bitwise equal to the engine's reproducible mode)" : "ok (engine)") : "FAILED: " + why)
                << "\n";
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
      std::string why = compare(compiled->run_once(inputs), engine->run_once(inputs), &expected);
      if (why.empty() && repro) why = bitwise_vs_engine(*compiled, *engine, inputs);
      std::cout << dir.filename().string() << ": "
                << (why.empty() ? (repro ? "ok (reference data; bitwise equal to the engine's reproducible mode at the data "
                                           "set's batch and batch 1)"
                                         : "ok (reference data and engine)")
                                : "FAILED: " + why)
                << "\n";
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
  c->add_option("-o,--output", a->out, "output folder (NAME.hpp, NAME.cpp, NAME_weights.cpp or NAME.weights, CMakeLists.txt)");
  c->add_option("--name", a->name, "C++ name of the library (default: from the file name)");
  c->add_option("--max-dim", a->max_dims, "NAME=V: largest value a symbolic dim may take at run time")->take_all();
  c->add_option("--param", a->params, "KEY=VALUE: a load parameter fixed at compile time (tree ensembles: round_begin, "
                                      "round_end, use_best_iteration)")->take_all();
  c->add_option("--target", a->target, "instruction set: native, x86-64-v3 or x86-64-v2")->default_val("native");
  c->add_option("--weights", a->weights, "source: the weights built into the library (NAME_weights.cpp); file: in "
                                         "NAME.weights, mapped read-only when the library is used (next to it, or a "
                                         "path given to NAME::load_weights / the aot backend's weights parameter)")
      ->default_val("source");
  c->add_flag("--reproducible", a->reproducible,
              "emit the engine's reproducible numerics (#15): outputs bitwise equal to `--reproducible` runs of the "
              "engine on every instruction set (ops without such code are refused by name)");
  c->add_flag("--check", a->check, "also build it with the C++ compiler and run it against the engine and the "
                                   "model's test_data_set_* (rtol/atol below)");
  c->add_option("--rtol", a->rtol, "relative tolerance of --check")->default_val(1e-4);
  c->add_option("--atol", a->atol, "absolute tolerance of --check")->default_val(1e-5);
  c->callback([a] { cmd_compile(*a); });
});

}  // namespace
