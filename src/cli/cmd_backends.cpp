// quiver inspect / infer / bench / onnx-test: direct inference on any backend.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <cstring>
#include <latch>
#include <thread>

#include "cli/command.hpp"
#include "quiver/backends/backends.hpp"
#include "quiver/core/batching.hpp"
#include "quiver/core/model.hpp"
#include "quiver/core/prepare.hpp"
#include "quiver/core/profile.hpp"
#include "quiver/core/util.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"
#ifdef QUIVER_HAVE_FOREST
#include "quiver/forest/csv.hpp"
#endif

#ifdef QUIVER_HAVE_ONNX
// From src/onnx/blas.hpp (that header would bring in the ONNX protobuf's own namespace `onnx`).
namespace quiver::onnx {
double gemm_peak_gflops(double seconds);
}
#endif

namespace fs = std::filesystem;
using namespace quiver;

namespace {

bool is_onnx(const std::string& path) { return path.size() > 5 && path.substr(path.size() - 5) == ".onnx"; }

// --device, --reproducible and --isa of inspect / infer / bench / onnx-test (each command binds its
// own): where and how ONNX models run; the backend layer reads params["device"], the ONNX loader
// params["numerics"] and params["isa"].
struct Where {
  std::string device, isa;
  bool reproducible = false;
};

LoadOptions device_options(const Where& w) {
  LoadOptions o;
  if (!w.device.empty()) o.params["device"] = w.device;
  if (w.reproducible) o.params["numerics"] = "reproducible";
  if (!w.isa.empty()) {
    if (!w.reproducible) throw CLI::ValidationError("--isa", "applies with --reproducible");
    o.params["isa"] = w.isa;
  }
  return o;
}

std::shared_ptr<const Model> open_model(const std::string& path, const Where& where) {
  return load_model(path, device_options(where));
}

void add_where_options(CLI::App* c, Where& w) {
  c->add_option("--device", w.device, "ONNX models: cpu (default), cuda, cuda:N, auto or gpu-emulator");
  c->add_flag("--reproducible", w.reproducible,
              "ONNX models: reproducible numerics, outputs bitwise identical for any ISA, batch and threads");
  c->add_option("--isa", w.isa, "with --reproducible: the kernels' instruction set (avx512, avx2, baseline, auto; "
                                "default: QUIVER_ISA, else the best this CPU runs)");
}

// ---- inputs for bench: a reference data set tiled along the batch dim (tile_rows, core/batching), or synthesized ----

std::vector<Tensor> synth_inputs(const ModelInfo& mi, int64_t batch, const std::map<std::string, int64_t>& dims) {
  std::mt19937 rng(42);
  std::normal_distribution<float> nd;
  std::vector<Tensor> out = expected_inputs(mi, batch, dims);
  for (auto& t : out)
    if (t.dtype() == DType::F32)
      for (auto& v : t.span<float>()) v = nd(rng);
  return out;
}

struct BenchResult {
  int64_t calls = 0;
  double seconds = 0;
  std::vector<double> lat_us;
};

double pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = static_cast<size_t>(std::min<double>(v.size() - 1, std::floor(p / 100.0 * v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

void cmd_bench(const std::string& path, const Where& device, int64_t batch, int threads,
               const std::vector<std::string>& dim_args, double seconds, const std::string& test_data, bool json,
               bool profile) {
  auto model = open_model(path, device);
  const auto& mi = model->info();
  std::map<std::string, int64_t> dims;
  for (const auto& a : dim_args) {
    auto eq = a.find('=');
    if (eq == std::string::npos) throw Error(ErrorCode::InvalidArgument, "--dim expects NAME=V, got '" + a + "'");
    dims[a.substr(0, eq)] = std::stoll(a.substr(eq + 1));
  }
  std::vector<Tensor> inputs;
  std::string data_dir = test_data;
  if (data_dir.empty() && dims.empty()) {
    fs::path cand = fs::path(path).parent_path() / "test_data_set_0";
    if (fs::exists(cand)) data_dir = cand.string();
  }
  if (!data_dir.empty()) {
    std::vector<Tensor> src;
    for (const auto& f : onnx::numbered_files(data_dir, "input")) src.push_back(onnx::read_tensor_file(f).tensor);
    if (src.size() != mi.inputs.size())
      throw Error(ErrorCode::InvalidArgument, data_dir + " has " + std::to_string(src.size()) + " inputs, model needs " +
                                                  std::to_string(mi.inputs.size()));
    bool fixed_batch = !mi.inputs.empty() && !mi.inputs[0].shape.empty() && mi.inputs[0].shape[0].is_fixed();
    inputs = fixed_batch ? src : tile_rows(src, batch);
  } else {
    inputs = synth_inputs(mi, batch, dims);
  }
  const int64_t events = inputs.empty() || inputs[0].rank() == 0 ? 1 : inputs[0].dim(0);
  // First call of a fresh state, timed on its own: it allocates and faults in the state's arena,
  // which a production caller pays once per state. It also fails early with a clear error.
  double first_call_us = 0;
  {
    Session s(model);
    std::vector<Tensor> out;
    const int64_t t0 = now_ns();
    s.run(inputs, out);
    first_call_us = (now_ns() - t0) / 1e3;
  }
  // The same after prepare_state at these inputs' sizes: what a server or flow instance that sized
  // its state ahead pays on its first production call.
  double prepared_first_call_us = 0;
  {
    auto st = model->make_state();
    prepare_state(*model, *st, events, dims_of(mi, inputs));
    std::vector<Tensor> out;
    const int64_t t0 = now_ns();
    model->run(inputs, out, *st);
    prepared_first_call_us = (now_ns() - t0) / 1e3;
  }
  // Each measuring thread warms its own state (as ONNX Runtime's side of bench/ort_compare.js
  // warms the session it measures) before the window opens, so the window holds steady-state calls
  // only; a window lasts `seconds` and at least kMinCalls calls.
  constexpr int kWarmup = 20, kMinCalls = 20;
  std::vector<BenchResult> res(static_cast<size_t>(threads));
  std::vector<OpProfile> profiles(static_cast<size_t>(threads));  // one per thread's state, merged below
  // Blocking (not spinning) while the others warm up: a spinning main thread would hold the second
  // core of a small machine and slow the warm-up of the thread it waits for.
  std::latch warmed(threads), go(1);
  std::vector<std::thread> th;
  for (int t = 0; t < threads; ++t)
    th.emplace_back([&, t] {
      Session s(model);
      std::vector<Tensor> out;
      for (int i = 0; i < kWarmup; ++i) s.run(inputs, out);
      if (profile) s.set_profile(&profiles[static_cast<size_t>(t)]);
      auto& r = res[static_cast<size_t>(t)];
      r.lat_us.reserve(1 << 20);
      warmed.count_down();
      go.wait();
      const int64_t start = now_ns();
      const int64_t stop = start + static_cast<int64_t>(seconds * 1e9);
      int64_t t0 = start;
      while (true) {
        s.run(inputs, out);
        const int64_t t1 = now_ns();
        r.lat_us.push_back((t1 - t0) / 1e3);
        ++r.calls;
        t0 = t1;
        if (t1 >= stop && r.calls >= kMinCalls) break;
      }
      r.seconds = (t0 - start) / 1e9;
    });
  warmed.wait();
  go.count_down();
  for (auto& x : th) x.join();
  int64_t calls = 0;
  double secs = 0;
  std::vector<double> lat;
  for (auto& r : res) {
    calls += r.calls;
    secs = std::max(secs, r.seconds);
    lat.insert(lat.end(), r.lat_us.begin(), r.lat_us.end());
  }
  const double ips = calls / secs;
  const double p50 = pct(lat, 50), p90 = pct(lat, 90), p99 = pct(lat, 99);
  const int64_t rss = peak_rss_bytes();
  if (json) {
    nlohmann::json j = {{"model", mi.name},           {"path", path},
                        {"backend", mi.backend},      {"batch", events},
                        {"threads", threads},         {"seconds", secs},
                        {"calls", calls},             {"inferences_per_s", ips},
                        {"events_per_s", ips * events}, {"latency_us", {{"p50", p50}, {"p90", p90}, {"p99", p99}}},
                        {"first_call_us", first_call_us}, {"prepared_first_call_us", prepared_first_call_us}, {"warmup_calls", kWarmup},
                        {"peak_rss_bytes", rss}};
    std::cout << j.dump() << std::endl;
  } else {
    std::printf("model %s (%s), batch %lld, %d thread(s), %.2f s\n", mi.name.c_str(), mi.backend.c_str(),
                static_cast<long long>(events), threads, secs);
    std::printf("throughput: %.1f inferences/s, %.1f events/s\n", ips, ips * events);
    std::printf("latency us: p50 %.2f  p90 %.2f  p99 %.2f  (each state warmed by %d calls)\n", p50, p90, p99, kWarmup);
    std::printf("first call of a fresh state: %.2f us (after prepare_state: %.2f us)\n", first_call_us,
                prepared_first_call_us);
    std::printf("peak RSS: %.1f MiB\n", rss / 1048576.0);
  }
  if (profile) {
    OpProfile all;
    for (const auto& p : profiles) all.merge(p);
    const auto rows = all.rows();
    double total = 0;
    for (const auto& r : rows) total += r.ns / 1e6;
    std::printf("\nprofile (time in operators, all threads):\n%-28s %10s %7s %12s %12s %10s\n", "op", "ms", "%", "calls",
                "us/call", "GFLOP/s");
    double flops = 0, flop_ns = 0;
    for (const auto& r : rows) {
      const double ms = r.ns / 1e6;
      std::printf("%-28s %10.2f %6.1f%% %12lld %12.3f", r.op.c_str(), ms, 100 * ms / total,
                  static_cast<long long>(r.calls), 1e3 * ms / static_cast<double>(r.calls));
      if (r.flops > 0 && r.ns > 0) std::printf(" %10.1f", r.flops / static_cast<double>(r.ns));
      std::printf("\n");
      if (r.flops > 0) {
        flops += r.flops;
        flop_ns += static_cast<double>(r.ns);
      }
    }
    if (rows.empty()) std::printf("(this backend does not time its operators)\n");
    // Distance to the machine: the GEMM-type operators' (Gemm, MatMul, Conv, LSTM/GRU/RNN) floating-
    // point work per call, their rate, and the whole call's rate, against the single-thread GEMM peak.
    if (flops > 0) {
      const double per_call = flops / static_cast<double>(calls);
      const double in_ops = flops / flop_ns;
      const double whole = per_call * static_cast<double>(calls) / (secs * 1e9) / threads;
      std::printf("\nGEMM-type operators: %.4f GFLOP per call; %.1f GFLOP/s in those operators, %.1f GFLOP/s over the "
                  "whole call (per thread)\n", per_call / 1e9, in_ops, whole);
#ifdef QUIVER_HAVE_ONNX
      if (mi.backend == "onnx") {
        const double peak = onnx::gemm_peak_gflops(0.5);
        std::printf("single-thread GEMM peak (engine gemm(), 256x1600x64, best of 0.5 s): %.1f GFLOP/s; "
                    "operators at %.0f%% of it, the whole call at %.0f%%\n",
                    peak, 100 * in_ops / peak, 100 * whole / peak);
      }
#endif
    }
  }
}

void cmd_infer(const std::string& path, const Where& device, const std::string& test_data,
               const std::vector<std::string>& input_args, const std::string& out_dir, bool compare,
               const std::string& csv, const std::string& csv_out, bool margin) {
  auto model = open_model(path, device);
  const auto& mi = model->info();
  if (!csv.empty()) {
#ifdef QUIVER_HAVE_FOREST
    forest::infer_csv(*model, csv, csv_out, margin, std::cout);
    return;
#else
    throw Error(ErrorCode::Unsupported, "--csv needs the forest backend, which is not built");
#endif
  }
  std::vector<NamedTensor> given;
  if (!test_data.empty()) {
    auto files = onnx::numbered_files(test_data, "input");
    // A model without inputs (ONNX's test_constant) has a data set of outputs only.
    if (files.empty() && !mi.inputs.empty() && input_args.empty())
      throw Error(ErrorCode::NotFound,
                  "no input_<i>.pb files, and the model has " + std::to_string(mi.inputs.size()) + " input(s)",
                  {"", "", "", test_data});
    for (size_t i = 0; i < files.size(); ++i) {
      NamedTensor nt = onnx::read_tensor_file(files[i]);
      if (nt.name.empty() && i < mi.inputs.size()) nt.name = mi.inputs[i].name;
      given.push_back(std::move(nt));
    }
  }
  for (const auto& a : input_args) {
    auto eq = a.find('=');
    if (eq == std::string::npos) throw Error(ErrorCode::InvalidArgument, "--input expects NAME=FILE.pb, got '" + a + "'");
    NamedTensor nt = onnx::read_tensor_file(a.substr(eq + 1));
    nt.name = a.substr(0, eq);
    given.erase(std::remove_if(given.begin(), given.end(), [&](auto& g) { return g.name == nt.name; }), given.end());
    given.push_back(std::move(nt));
  }
  if (given.empty() && !mi.inputs.empty())
    throw Error(ErrorCode::InvalidArgument, "no inputs: give --test-data DIR or --input NAME=FILE.pb");
  const int64_t t0 = now_ns();
  auto outputs = model->run_named(given);
  const double ms = (now_ns() - t0) / 1e6;
  if (!out_dir.empty()) fs::create_directories(out_dir);
  int failures = 0;
  std::vector<std::string> expected_files;
  if (compare && !test_data.empty()) expected_files = onnx::numbered_files(test_data, "output");
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& name = mi.outputs[i].name;
    const Tensor& t = outputs[i];
    std::printf("output %zu '%s' %s %s", i, name.c_str(), std::string(dtype_name(t.dtype())).c_str(),
                dims_to_string(t.dims()).c_str());
    if (t.dtype() == DType::F32 && t.numel() > 0) {
      std::printf(" [");
      for (int64_t k = 0; k < std::min<int64_t>(t.numel(), 8); ++k) std::printf("%s%.6g", k ? ", " : "", t.data<float>()[k]);
      std::printf("%s]", t.numel() > 8 ? ", ..." : "");
    }
    if (i < expected_files.size()) {
      auto exp = onnx::read_tensor_file(expected_files[i]);
      std::string diff = onnx::compare_tensors(t, exp.tensor, {1e-4, 1e-5});
      std::printf("  %s", diff.empty() ? "matches reference (rtol 1e-4, atol 1e-5)" : ("MISMATCH: " + diff).c_str());
      if (!diff.empty()) ++failures;
    }
    std::printf("\n");
    if (!out_dir.empty()) onnx::write_tensor_file(out_dir + "/output_" + std::to_string(i) + ".pb", {name, t});
  }
  std::printf("inference took %.3f ms (first call, includes warm-up)\n", ms);
  if (failures) cli::set_exit_code(2);
}

void cmd_inspect(const std::string& path, const Where& device) {
  if (is_onnx(path)) {
    // Inspect must work even when the model cannot be compiled: report unsupported ops by name.
    auto s = onnx::summarize_onnx(path);
    try {
      auto m = load_model(path, device_options(device));
      m->describe(std::cout);
      return;
    } catch (const Error& e) {
      std::cout << "model: " << path << "\nir_version: " << s.ir_version << "\nopsets:";
      for (const auto& [d, v] : s.opsets) std::cout << " " << (d.empty() ? "ai.onnx" : d) << "=" << v;
      std::cout << "\nparameters: " << s.parameter_count << "\noperators:\n";
      for (const auto& [op, n] : s.op_counts) std::cout << "  " << op << " " << n << "\n";
      std::cout << "unsupported operators:" << (s.unsupported_ops.empty() ? " none" : "") << "\n";
      for (const auto& u : s.unsupported_ops) std::cout << "  " << u << "\n";
      std::cout << "load error: " << e.what() << "\n";
      cli::set_exit_code(1);
      return;
    }
  }
  open_model(path, device)->describe(std::cout);
}

// Names on the --cases list (one per line, '#' comments, surrounding blanks ignored).
std::vector<std::string> read_case_list(const std::string& list_file) {
  std::vector<std::string> names;
  std::istringstream ss(read_file(list_file));
  std::string line;
  while (std::getline(ss, line)) {
    const auto b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    names.push_back(line.substr(b, line.find_last_not_of(" \t\r") - b + 1));
  }
  if (names.empty()) throw Error(ErrorCode::InvalidArgument, "the --cases file names no test case", {.file = list_file});
  return names;
}

struct OnnxTestArgs {
  std::vector<std::string> dirs;
  std::string list, expect, record;
  Where where;
  bool verbose = false;
};

void cmd_onnx_test(const OnnxTestArgs& a) {
  const std::vector<std::string> only = a.list.empty() ? std::vector<std::string>{} : read_case_list(a.list);
  // Case folder name -> path; the name is what lists and expectations refer to, so it must be unique.
  std::map<std::string, std::string> found;
  auto add = [&](const fs::path& dir) {
    const std::string name = dir.filename().string();
    auto [it, fresh] = found.emplace(name, dir.string());
    if (!fresh && it->second != dir.string())
      throw Error(ErrorCode::InvalidArgument, "two test cases are named '" + name + "': " + it->second + " and " + dir.string());
  };
  for (const auto& d : a.dirs) {
    const fs::path p = fs::path(d).lexically_normal();
    if (fs::exists(p / "model.onnx")) { add(p.has_filename() ? p : p.parent_path()); continue; }
    if (!fs::is_directory(p)) throw Error(ErrorCode::NotFound, "not a test case or folder of test cases", {.file = d});
    for (const auto& e : fs::directory_iterator(p))
      if (fs::exists(e.path() / "model.onnx")) add(e.path());
  }
  std::vector<std::string> cases;
  if (!only.empty()) {
    std::vector<std::string> unknown;
    for (const auto& n : only) {
      auto it = found.find(n);
      if (it == found.end()) unknown.push_back(n);
      else cases.push_back(it->second);
    }
    if (!unknown.empty()) {
      std::string names;
      for (const auto& n : unknown) names += (names.empty() ? "" : ", ") + n;
      throw Error(ErrorCode::NotFound, std::to_string(unknown.size()) + " case(s) on the --cases list are not in the given folders: " + names,
                  {.file = a.list});
    }
    std::sort(cases.begin(), cases.end());
    cases.erase(std::unique(cases.begin(), cases.end()), cases.end());
  } else {
    for (const auto& [n, path] : found) cases.push_back(path);
  }
  if (cases.empty()) throw Error(ErrorCode::NotFound, "no test cases (folders with model.onnx) in the given folders");
  // Read before running: a malformed list should not cost a whole run.
  const onnx::Expectations expected = a.expect.empty() ? onnx::Expectations{} : onnx::read_expectations(a.expect);

  int passed = 0, failed = 0, skipped = 0;
  const LoadOptions options = device_options(a.where);
  const onnx::ModelLoader load = [&](const std::string& p) { return backends::load_onnx(p, options); };
  std::vector<onnx::CaseResult> results;
  for (const auto& c : cases) {
    auto r = onnx::run_test_case(c, {}, load);
    switch (r.status) {
      case onnx::CaseStatus::Passed: ++passed; if (a.verbose) std::printf("PASS %s\n", r.name.c_str()); break;
      case onnx::CaseStatus::Failed: ++failed; std::printf("FAIL %s: %s\n", r.name.c_str(), r.message.c_str()); break;
      case onnx::CaseStatus::Skipped: ++skipped; std::printf("SKIP %s: %s\n", r.name.c_str(), r.message.c_str()); break;
    }
    results.push_back(std::move(r));
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  if (!a.record.empty()) {
    // Reasons name the case's files relative to the suite, not to this machine.
    std::vector<onnx::CaseResult> rel = results;
    for (size_t i = 0; i < rel.size(); ++i) {
      const std::string abs = cases[i] + "/", short_name = rel[i].name + "/";
      for (size_t p; (p = rel[i].message.find(abs)) != std::string::npos;) rel[i].message.replace(p, abs.size(), short_name);
    }
    write_file(a.record, onnx::format_expectations(
                             rel, "Expected results of `quiver onnx-test" + (a.where.device.empty() ? "" : " --device " + a.where.device) +
                                 (a.where.reproducible ? " --reproducible" : "") +
                                          "` (written by --record; a ratchet: see tests/onnx/CMakeLists.txt)\n"
                                          "pass NAME | fail NAME REASON | skip NAME REASON (refused at load)"));
    std::printf("recorded %zu cases in %s\n", results.size(), a.record.c_str());
  }
  if (a.expect.empty()) {
    if (failed) cli::set_exit_code(1);
    return;
  }
  // The ratchet: what passed must keep passing; what got better is reported so the list follows.
  const auto rep = onnx::check_expectations(results, expected, only);
  for (const auto& m : rep.regressions) std::printf("REGRESSION %s\n", m.c_str());
  for (const auto& m : rep.unlisted) std::printf("UNLISTED %s\n", m.c_str());
  for (const auto& m : rep.missing) std::printf("MISSING %s\n", m.c_str());
  for (const auto& m : rep.improvements) std::printf("IMPROVED %s\n", m.c_str());
  std::printf("against %s: %zu regressions, %zu unlisted, %zu missing, %zu improved\n", a.expect.c_str(),
              rep.regressions.size(), rep.unlisted.size(), rep.missing.size(), rep.improvements.size());
  if (!rep.improvements.empty() || !rep.unlisted.empty() || !rep.missing.empty())
    std::printf("update the list: rerun with --record %s and commit it\n", a.expect.c_str());
  if (!rep.ok()) cli::set_exit_code(1);
}

cli::CommandRegistrar reg(10, [](CLI::App& app) {
  {
    auto* c = app.add_subcommand("inspect", "Show a model's inputs, outputs, operators and parameters");
    struct A { std::string path; Where device; };
    auto a = std::make_shared<A>();
    c->add_option("model", a->path, "model file")->required();
    add_where_options(c, a->device);
    c->callback([a] { cmd_inspect(a->path, a->device); });
  }
  {
    auto* c = app.add_subcommand("infer", "Run a model once on inputs from files");
    struct A { Where device; std::string path, test_data, out, csv, csv_out; std::vector<std::string> inputs; bool compare = false, margin = false; };
    auto a = std::make_shared<A>();
    c->add_option("model", a->path, "model file")->required();
    c->add_option("--test-data", a->test_data, "folder with input_<i>.pb (ONNX TensorProto)");
    c->add_option("--input", a->inputs, "NAME=FILE.pb (repeatable)");
    c->add_option("--output-dir", a->out, "write output_<i>.pb here");
    add_where_options(c, a->device);
    c->add_flag("--compare", a->compare, "compare with output_<i>.pb in --test-data (rtol 1e-4, atol 1e-5)");
    c->add_option("--csv", a->csv, "tree models: rows of features (header row optional)");
    c->add_option("--output", a->csv_out, "with --csv: write predictions to this CSV");
    c->add_flag("--margin", a->margin, "with --csv: raw margins instead of probabilities");
    c->callback([a] { cmd_infer(a->path, a->device, a->test_data, a->inputs, a->out, a->compare, a->csv, a->csv_out, a->margin); });
  }
  {
    auto* c = app.add_subcommand("bench", "Measure throughput, latency and memory of direct inference");
    struct A { Where device; std::string path, data; int64_t batch = 1; int threads = 1; std::vector<std::string> dims; double seconds = 3; bool json = false, profile = false; };
    auto a = std::make_shared<A>();
    c->add_option("model", a->path, "model file")->required();
    c->add_option("--batch,-b", a->batch, "events per call");
    c->add_option("--threads,-t", a->threads, "threads sharing the loaded model")->check(CLI::Range(1, 256));
    c->add_option("--dim", a->dims, "NAME=V for a dynamic dimension (repeatable)");
    c->add_option("--seconds,-s", a->seconds, "length of the timed window (at least 20 calls per thread)");
    add_where_options(c, a->device);
    c->add_option("--test-data", a->data, "use these inputs (tiled to --batch); default: the model's test_data_set_0");
    c->add_flag("--json", a->json, "print one JSON object");
    c->add_flag("--profile", a->profile, "ONNX models: time spent per operator type");
    c->callback([a] { cmd_bench(a->path, a->device, a->batch, a->threads, a->dims, a->seconds, a->data, a->json, a->profile); });
  }
  {
    auto* c = app.add_subcommand("onnx-test", "Run ONNX backend test cases; ends with 'N passed, M failed, K skipped'");
    auto a = std::make_shared<OnnxTestArgs>();
    c->add_option("dirs", a->dirs, "test case folders, or folders of them")->required();
    c->add_option("--cases", a->list, "file listing case names to run (one per line, # comments); every name must exist");
    c->add_option("--expect", a->expect,
                  "file of expected results (pass/fail/skip per case): exit 1 when a case does worse than listed, "
                  "is not listed or did not run; better results are reported");
    c->add_option("--record", a->record, "write this run's results in the --expect format");
    c->add_flag("--verbose,-v", a->verbose, "print passing cases too");
    add_where_options(c, a->where);
    c->callback([a] { cmd_onnx_test(*a); });
  }
});

}  // namespace
