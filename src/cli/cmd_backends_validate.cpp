// quiver validate: runs a model through every path this machine offers and compares each output with
// the reference (issue #15); --record / --against keep the farm check: the SHA-256 of the
// reproducible-mode bytes, recorded on one site and verified on every other. The paths of this file:
// the engine's numerics, ISAs, batches, threads and devices, and every other registered backend that
// loads the model; other parts add theirs (cli/validate.hpp).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "cli/command.hpp"
#include "cli/validate.hpp"
#include "core/repro/repro.hpp"
#include "quiver/backends/backends.hpp"
#include "quiver/core/batching.hpp"
#include "quiver/core/model.hpp"
#include "quiver/core/util.hpp"
#include "quiver/onnx/tensor_proto.hpp"

namespace fs = std::filesystem;
using namespace quiver;
using nlohmann::json;

namespace {

using cli::validate::DataSet;

struct ValidateArgs {
  std::string model;
  std::vector<std::string> test_data;
  std::string tolerance = "1e-4,1e-5";
  std::string record, against;
  bool json = false;
};

// Data sets: --test-data folders, else the model folder's test_data_set_*; forests (no data sets):
// 64 rows of features from a fixed seed, every 11th value missing (NaN).
std::vector<DataSet> read_data_sets(const ValidateArgs& a, const Model& m) {
  std::vector<std::string> dirs = a.test_data;
  if (dirs.empty()) {
    const fs::path dir = fs::path(a.model).parent_path();
    if (!dir.empty() && fs::is_directory(dir))
      for (const auto& e : fs::directory_iterator(dir))
        if (e.is_directory() && e.path().filename().string().starts_with("test_data_set_")) dirs.push_back(e.path().string());
    std::sort(dirs.begin(), dirs.end());
  }
  std::vector<DataSet> out;
  for (const auto& d : dirs) {
    DataSet ds;
    ds.name = fs::path(d).filename().string();
    for (const auto& f : onnx::numbered_files(d, "input")) ds.inputs.push_back(onnx::read_tensor_file(f).tensor);
    for (const auto& f : onnx::numbered_files(d, "output")) ds.expected.push_back(onnx::read_tensor_file(f).tensor);
    if (ds.inputs.size() != m.info().inputs.size())
      throw Error(ErrorCode::InvalidArgument,
                  "data set has " + std::to_string(ds.inputs.size()) + " inputs, the model " +
                      std::to_string(m.info().inputs.size()),
                  {m.info().name, "", "", d});
    out.push_back(std::move(ds));
  }
  if (out.empty() && m.info().inputs.size() == 1 && m.info().inputs[0].dtype == DType::F32 &&
      m.info().inputs[0].shape.size() == 2 && m.info().inputs[0].shape[1].value > 0) {
    const int64_t nf = m.info().inputs[0].shape[1].value;
    DataSet ds;
    ds.name = "synthetic-64";
    Tensor x = Tensor::empty(DType::F32, {64, nf});
    std::mt19937 rng(15);
    std::normal_distribution<float> g(0.0f, 3.0f);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = i % 11 == 3 ? NAN : g(rng);
    ds.inputs.push_back(std::move(x));
    out.push_back(std::move(ds));
  }
  if (out.empty())
    throw Error(ErrorCode::InvalidArgument, "no data set: give --test-data DIR (input_<i>.pb, output_<i>.pb)",
                {m.info().name, "", "", a.model});
  return out;
}

std::string tensor_sha(const Tensor& t) {
  return sha256_hex(std::string_view(static_cast<const char*>(t.raw()), t.nbytes()));
}

bool same_bytes(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].dims() != b[i].dims() || a[i].dtype() != b[i].dtype() || std::memcmp(a[i].raw(), b[i].raw(), a[i].nbytes()) != 0)
      return false;
  return true;
}

int64_t ulps(float a, float b) {
  auto key = [](float f) {
    int32_t i;
    std::memcpy(&i, &f, 4);
    return i < 0 ? int64_t{INT32_MIN} - i : int64_t{i};
  };
  return std::llabs(key(a) - key(b));
}

struct Diff {
  double max_abs = 0, max_rel = 0;
  int64_t max_ulp = 0;
  bool within = true;
  std::string problem;  // shape / dtype mismatch
};

Diff diff(const Tensor& got, const Tensor& ref, double rtol, double atol) {
  Diff d;
  if (got.dims() != ref.dims() || got.dtype() != ref.dtype()) {
    d.within = false;
    d.problem = "shape/dtype " + dims_to_string(got.dims()) + " vs " + dims_to_string(ref.dims());
    return d;
  }
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g, r;
    if (got.dtype() == DType::F32) {
      const float gf = got.data<float>()[i], rf = ref.data<float>()[i];
      g = gf;
      r = rf;
      if (!std::isnan(gf) && !std::isnan(rf)) d.max_ulp = std::max(d.max_ulp, ulps(gf, rf));
    } else if (got.dtype() == DType::F64) {
      g = got.data<double>()[i];
      r = ref.data<double>()[i];
    } else if (got.dtype() == DType::I64) {
      g = static_cast<double>(got.data<int64_t>()[i]);
      r = static_cast<double>(ref.data<int64_t>()[i]);
    } else {
      if (std::memcmp(got.raw(), ref.raw(), got.nbytes()) != 0) {
        d.within = false;
        d.problem = "bytes differ";
      }
      return d;
    }
    if (std::isnan(g) || std::isnan(r)) {
      if (std::isnan(g) != std::isnan(r)) d.within = false;
      continue;
    }
    const double ad = std::fabs(g - r);
    d.max_abs = std::max(d.max_abs, ad);
    if (r != 0) d.max_rel = std::max(d.max_rel, ad / std::fabs(r));
    if (ad > atol + rtol * std::fabs(r)) d.within = false;
  }
  return d;
}

struct PathSpec {
  std::string name;
  bool reproducible = false;
  std::string isa, device;
  int threads = 1;
  enum { DataBatch, EachRow, Tiled64 } batch = DataBatch;
};

LoadOptions options_for(const PathSpec& p) {
  LoadOptions o;
  if (p.reproducible) {
    o.params["numerics"] = "reproducible";
    if (!p.isa.empty()) o.params["isa"] = p.isa;
  }
  if (!p.device.empty()) o.params["device"] = p.device;
  return o;
}

// Runs one path on a data set; the result is comparable with the data set's reference (Tiled64:
// the reference tiled the same way).
std::vector<Tensor> run_path(const Model& m, const PathSpec& p, const DataSet& ds) {
  const int64_t rows = ds.inputs.empty() || ds.inputs[0].rank() == 0 ? 1 : ds.inputs[0].dim(0);
  auto once = [&]() -> std::vector<Tensor> {
    switch (p.batch) {
      case PathSpec::EachRow: {
        std::vector<std::vector<Tensor>> parts;
        for (int64_t r = 0; r < rows; ++r) parts.push_back(m.run_once(take_rows(ds.inputs, r, 1)));
        return join_calls(parts);
      }
      case PathSpec::Tiled64: return m.run_once(tile_rows(ds.inputs, 64));
      default: return m.run_once(ds.inputs);
    }
  };
  if (p.threads == 1) return once();
  // Several threads share the model; all their results must agree, the first is reported.
  std::vector<std::vector<Tensor>> res(static_cast<size_t>(p.threads));
  std::vector<std::string> err(res.size());
  std::vector<std::thread> ts;
  for (size_t t = 0; t < res.size(); ++t)
    ts.emplace_back([&, t] {
      try {
        for (int k = 0; k < 3; ++k) res[t] = once();
      } catch (const std::exception& e) {
        err[t] = e.what();
      }
    });
  for (auto& t : ts) t.join();
  for (size_t t = 0; t < res.size(); ++t) {
    if (!err[t].empty()) throw Error(ErrorCode::Internal, "thread " + std::to_string(t) + ": " + err[t]);
    if (!same_bytes(res[t], res[0])) throw Error(ErrorCode::Internal, "threads disagree with each other");
  }
  return res[0];
}

std::pair<double, double> parse_tolerance(const std::string& s) {
  const auto c = s.find(',');
  try {
    if (c == std::string::npos) throw std::invalid_argument("");
    return {std::stod(s.substr(0, c)), std::stod(s.substr(c + 1))};
  } catch (const std::exception&) {
    throw Error(ErrorCode::InvalidArgument, "--tolerance expects RTOL,ATOL (e.g. 1e-4,1e-5), got '" + s + "'");
  }
}

json output_record(const std::string& name, const Tensor& t) {
  json o{{"name", name}, {"dtype", std::string(dtype_name(t.dtype()))}, {"shape", t.dims()}, {"sha256", tensor_sha(t)}};
  if (t.dtype() == DType::F32 && t.numel() > 0) {
    const float* p = t.data<float>();
    double mn = INFINITY, mx = -INFINITY, sum = 0;
    int64_t nans = 0;
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (std::isnan(p[i])) { ++nans; continue; }
      mn = std::min<double>(mn, p[i]);
      mx = std::max<double>(mx, p[i]);
      sum += p[i];
    }
    o["min"] = mn;
    o["max"] = mx;
    o["mean"] = sum / static_cast<double>(std::max<int64_t>(1, t.numel() - nans));
    o["nans"] = nans;
    // The values themselves (small outputs): --against can then say by how much an output moved.
    if (t.numel() <= 4096) {
      std::vector<uint32_t> bits(static_cast<size_t>(t.numel()));
      std::memcpy(bits.data(), p, bits.size() * 4);
      o["float_bits"] = bits;
    }
  }
  return o;
}

int cmd_validate(const ValidateArgs& a) {
  const auto [rtol, atol] = parse_tolerance(a.tolerance);
  const repro::Isa best = repro::best_isa();
  PathSpec ref_path{"reproducible", true, repro::isa_name(best)};
  auto ref_model = load_model(a.model, options_for(ref_path));
  const auto& mi = ref_model->info();
  const auto data = read_data_sets(a, *ref_model);

  // Reproducible-mode outputs on this machine (the reference where a data set has no outputs).
  std::vector<std::vector<Tensor>> repro_out;
  for (const auto& ds : data) repro_out.push_back(ref_model->run_once(ds.inputs));

  if (!a.against.empty()) {
    json g;
    try {
      std::ifstream f(a.against);
      if (!f) throw Error(ErrorCode::NotFound, "cannot read the golden file", {.file = a.against});
      g = json::parse(f);
    } catch (const json::exception& e) {
      throw Error(ErrorCode::Parse, std::string("golden file is not JSON: ") + e.what(), {.file = a.against});
    }
    if (g.value("model_sha256", "") != mi.sha256)
      throw Error(ErrorCode::InvalidArgument,
                  "golden file is for another model file (sha256 " + g.value("model_sha256", "?") + ", this one " +
                      mi.sha256 + ")",
                  {mi.name, "", "", a.against});
    int moved = 0, compared = 0;
    for (const auto& gds : g.at("data_sets")) {
      const std::string dsn = gds.at("name");
      size_t k = 0;
      while (k < data.size() && data[k].name != dsn) ++k;
      if (k == data.size()) {
        std::printf("%s: not found here (give --test-data)\n", dsn.c_str());
        ++moved;
        continue;
      }
      const auto& outs = gds.at("outputs");
      for (size_t i = 0; i < outs.size() && i < repro_out[k].size(); ++i) {
        const Tensor& t = repro_out[k][i];
        const std::string name = outs[i].at("name");
        ++compared;
        if (outs[i].at("sha256") == tensor_sha(t)) continue;
        ++moved;
        std::string how;
        if (outs[i].contains("float_bits") && t.dtype() == DType::F32 &&
            outs[i]["float_bits"].size() == static_cast<size_t>(t.numel())) {
          const auto bits = outs[i]["float_bits"].get<std::vector<uint32_t>>();
          Tensor was = Tensor::empty(DType::F32, t.dims());
          std::memcpy(was.raw(), bits.data(), bits.size() * 4);
          const Diff d = diff(t, was, 0, 0);
          char buf[160];
          std::snprintf(buf, sizeof buf, "max abs diff %.3g, max rel diff %.3g, max %lld ulp", d.max_abs, d.max_rel,
                        static_cast<long long>(d.max_ulp));
          how = buf;
        } else {
          how = "sha256 differs (the golden file has no values to say by how much)";
        }
        std::printf("%s output '%s' moved: %s\n", dsn.c_str(), name.c_str(), how.c_str());
      }
    }
    if (moved == 0) {
      std::printf("bitwise identical: %d outputs of %s (reproducible mode, %s) match %s\n", compared, mi.name.c_str(),
                  repro::isa_name(best), a.against.c_str());
      return 0;
    }
    std::printf("%d of %d outputs moved against %s\n", moved, compared, a.against.c_str());
    return 1;
  }

  // Paths: reproducible on every ISA this CPU runs, batch 1 / 64, two threads; the default mode; a
  // GPU when one is present.
  std::vector<PathSpec> paths;
  std::vector<std::string> notes;
  for (repro::Isa isa : {repro::Isa::Avx512, repro::Isa::Avx2, repro::Isa::Baseline}) {
    if (!repro::cpu_has_isa(isa)) {
      notes.push_back(std::string("reproducible isa=") + repro::isa_name(isa) + ": this CPU does not run it");
      continue;
    }
    paths.push_back({std::string("reproducible isa=") + repro::isa_name(isa), true, repro::isa_name(isa)});
  }
  const bool fixed_batch = !mi.inputs.empty() && !mi.inputs[0].shape.empty() && mi.inputs[0].shape[0].value > 0;
  paths.push_back({"reproducible batch=1 (each row)", true, "", "", 1, PathSpec::EachRow});
  if (!fixed_batch) paths.push_back({"reproducible batch=64 (rows tiled)", true, "", "", 1, PathSpec::Tiled64});
  else notes.push_back("batch 64: the model's batch is fixed");
  paths.push_back({"reproducible threads=2", true, "", "", 2});
  paths.push_back({"default", false});
  paths.push_back({"default batch=1 (each row)", false, "", "", 1, PathSpec::EachRow});
  if (!fixed_batch) paths.push_back({"default batch=64 (rows tiled)", false, "", "", 1, PathSpec::Tiled64});
  paths.push_back({"default threads=2", false, "", "", 2});
  if (mi.backend == "onnx") {
    paths.push_back({"gpu (cuda)", false, "", "cuda"});
    paths.push_back({"gpu-emulator (device executor on the host)", false, "", "gpu-emulator"});
  }

  // Every path as a run function: this file's, every other registered backend that loads the model,
  // then what the other parts add (a served model, the client's fallback). The paths own what they
  // need (a server process) until `all` is gone, on every way out of this function.
  std::vector<cli::validate::Path> all;
  for (const auto& p : paths) {
    std::shared_ptr<const Model> m;
    try {
      m = p.reproducible && p.isa == repro::isa_name(best) ? ref_model : load_model(a.model, options_for(p));
    } catch (const Error& e) {
      if (p.device.empty()) throw;
      notes.push_back(p.name + ": not available here (" + e.what() + ")");
      continue;
    }
    all.push_back({p.name, p.reproducible, [m, p](const DataSet& ds) { return run_path(*m, p, ds); },
                   p.batch == PathSpec::Tiled64 ? 64 : 0});
  }
  for (const auto& b : registered_backends()) {
    if (b == mi.backend) continue;
    try {
      auto m = load_model(a.model, {}, b);
      all.push_back({"backend " + b, false, [m](const DataSet& ds) { return m->run_once(ds.inputs); }});
    } catch (const std::exception& e) {
      std::string why = e.what();
      why = why.substr(0, std::min(why.find('\n'), size_t{300}));
      notes.push_back("backend " + b + ": does not load this model (" + why + ")");
    }
  }
  auto adders = cli::validate::path_adders();
  std::stable_sort(adders.begin(), adders.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  const cli::validate::Subject subject{a.model, mi, data};
  for (const auto& [order, add] : adders) add(subject, all, notes);

  json rows = json::array();
  bool all_ok = true;
  if (!a.json)
    std::printf("%-44s %-18s %-24s %11s %11s %9s %8s  %s\n", "path", "data set", "output", "max abs", "max rel",
                "max ulp", "bitwise", "result");
  for (const auto& p : all) {
    for (size_t k = 0; k < data.size(); ++k) {
      const DataSet& ds = data[k];
      std::vector<Tensor> got;
      std::string failure;
      try {
        got = p.run(ds);
      } catch (const std::exception& e) {
        failure = e.what();
      }
      const std::vector<Tensor>& ref0 = ds.expected.empty() ? repro_out[k] : ds.expected;
      const std::vector<Tensor> ref = p.tiled_to > 0 ? tile_rows(ref0, p.tiled_to) : ref0;
      const std::vector<Tensor> rrep = p.tiled_to > 0 ? tile_rows(repro_out[k], p.tiled_to) : repro_out[k];
      for (size_t i = 0; i < mi.outputs.size(); ++i) {
        Diff d;
        bool bitwise = false;
        if (failure.empty() && i < got.size() && i < ref.size()) {
          d = diff(got[i], ref[i], rtol, atol);
          bitwise = got[i].nbytes() == rrep[i].nbytes() && std::memcmp(got[i].raw(), rrep[i].raw(), got[i].nbytes()) == 0;
        } else {
          d.within = false;
          d.problem = failure.empty() ? "missing output" : failure;
        }
        // Reproducible paths must also give the reproducible reference's exact bytes.
        const bool ok = d.within && (!p.reproducible || bitwise);
        all_ok = all_ok && ok;
        const std::string result = ok ? "pass" : (d.problem.empty() ? (d.within ? "FAIL (bits differ)" : "FAIL") : "FAIL: " + d.problem);
        if (a.json) {
          rows.push_back({{"path", p.name}, {"data_set", ds.name}, {"output", mi.outputs[i].name}, {"max_abs", d.max_abs},
                          {"max_rel", d.max_rel}, {"max_ulp", d.max_ulp}, {"bitwise", bitwise}, {"pass", ok},
                          {"problem", d.problem}});
        } else {
          std::printf("%-44s %-18s %-24s %11.3g %11.3g %9lld %8s  %s\n", p.name.c_str(), ds.name.c_str(),
                      mi.outputs[i].name.c_str(), d.max_abs, d.max_rel, static_cast<long long>(d.max_ulp),
                      bitwise ? "yes" : "no", result.c_str());
        }
      }
    }
  }
  const std::string reference = data[0].expected.empty() ? "the reproducible CPU result" : "the data sets' outputs";
  if (a.json) {
    std::printf("%s\n", json{{"model", mi.name}, {"reference", reference}, {"tolerance", {rtol, atol}}, {"rows", rows},
                             {"notes", notes}, {"pass", all_ok}}
                            .dump()
                            .c_str());
  } else {
    std::printf("reference: %s; tolerance rtol %g, atol %g; bitwise: equal to reproducible mode on %s\n",
                reference.c_str(), rtol, atol, repro::isa_name(best));
    for (const auto& n : notes) std::printf("note: %s\n", n.c_str());
    std::printf("%s\n", all_ok ? "all paths pass" : "some paths FAIL");
  }

  if (!a.record.empty()) {
    json g{{"model", mi.name}, {"model_sha256", mi.sha256}, {"numerics", "reproducible"},
           {"recorded_with", "quiver validate (reproducible mode is the same on every ISA)"}};
    json sets = json::array();
    for (size_t k = 0; k < data.size(); ++k) {
      std::string in_hash;
      for (const auto& t : data[k].inputs) in_hash += tensor_sha(t);
      json outs = json::array();
      for (size_t i = 0; i < repro_out[k].size(); ++i) outs.push_back(output_record(mi.outputs[i].name, repro_out[k][i]));
      sets.push_back({{"name", data[k].name}, {"inputs_sha256", sha256_hex(in_hash)}, {"outputs", outs}});
    }
    g["data_sets"] = sets;
    std::ofstream f(a.record);
    f << g.dump(1) << "\n";
    if (!f) throw Error(ErrorCode::Internal, "cannot write the golden file", {.file = a.record});
    if (!a.json) std::printf("recorded %s\n", a.record.c_str());
  }
  return all_ok ? 0 : 1;
}

}  // namespace

namespace quiver::cli::validate {
PathRegistrar::PathRegistrar(int order, PathAdder adder) { path_adders().emplace_back(order, std::move(adder)); }
std::vector<std::pair<int, PathAdder>>& path_adders() {
  static std::vector<std::pair<int, PathAdder>> adders;
  return adders;
}
}  // namespace quiver::cli::validate

namespace {

cli::CommandRegistrar reg(12, [](CLI::App& app) {
  auto* c = app.add_subcommand("validate",
                               "Run a model through every path on this machine and compare with the reference; "
                               "--record/--against: golden files of its reproducible-mode outputs");
  auto a = std::make_shared<ValidateArgs>();
  c->add_option("model", a->model, "model file")->required();
  c->add_option("--test-data", a->test_data, "data set folder (input_<i>.pb, output_<i>.pb); repeatable; "
                                             "default: the model folder's test_data_set_*");
  c->add_option("--tolerance", a->tolerance, "RTOL,ATOL against the reference (default 1e-4,1e-5)");
  c->add_flag("--json", a->json, "print one JSON object");
  c->add_option("--record", a->record, "write the reproducible-mode outputs' SHA-256 (and values) to this golden file");
  c->add_option("--against", a->against, "compare the reproducible-mode outputs with this golden file");
  c->callback([a] { cli::set_exit_code(cmd_validate(*a)); });
});

}  // namespace
