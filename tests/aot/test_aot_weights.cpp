// quiver compile --weights file: the weights in NAME.weights, mapped read-only by the generated code.
// The file-form library reproduces the reference data and equals the source-form library bit for bit
// (through the aot backend, through the bare C ABI before anything loaded the file, and built by the
// generated CMake project, which puts NAME.weights next to libNAME.so); it still depends on the C/C++
// runtime only. Every bad file (missing, empty, truncated, wrong magic or version, another compile,
// another model, corrupted data, trailing bytes) is refused with a message naming the file and what is
// wrong, and the library stays usable. One small model (TICL supercls) keeps this short.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../../src/aot/abi.h"
#include "aot_test_util.hpp"
#include "quiver/aot/aot.hpp"
#include "quiver/core/error.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"

namespace fs = std::filesystem;
using namespace quiver;

namespace {

const std::string kModel = std::string(QUIVER_SHARED_DIR) + "/models/hep/ticl_supercls";

fs::path out_dir(const std::string& test) { return fs::path(QUIVER_BINARY_DIR) / "tests" / "aot" / "out" / "weights" / test; }

aot::CompileResult compile(const std::string& model, const fs::path& dir, const std::string& name, const std::string& weights) {
  aot::CompileOptions o;
  o.name = name;
  o.weights = weights;
  fs::remove_all(dir);
  return aot::compile_model(model + "/model.onnx", dir.string(), o);
}

struct DataSet {
  std::vector<Tensor> inputs, outputs;
};

std::vector<DataSet> data_sets() {
  std::vector<DataSet> r;
  for (int k = 0; fs::is_directory(kModel + "/test_data_set_" + std::to_string(k)); ++k) {
    const std::string dir = kModel + "/test_data_set_" + std::to_string(k);
    DataSet d;
    for (const auto& f : onnx::numbered_files(dir, "input")) d.inputs.push_back(onnx::read_tensor_file(f).tensor);
    for (const auto& f : onnx::numbered_files(dir, "output")) d.outputs.push_back(onnx::read_tensor_file(f).tensor);
    r.push_back(std::move(d));
  }
  return r;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.dims() == b.dims() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

TEST(AotWeights, FileFormEqualsSourceFormBitwiseAndReproducesTheReference) {
  const fs::path root = out_dir("equal");
  const auto src = compile(kModel, root / "src", "ticl_src", "source");
  const auto file = compile(kModel, root / "file", "ticl_file", "file");
  EXPECT_EQ(file.weights_file, "ticl_file.weights");
  EXPECT_TRUE(fs::exists(root / "file" / "ticl_file.weights"));
  EXPECT_FALSE(fs::exists(root / "file" / "ticl_file_weights.cpp"));
  EXPECT_EQ(read_file(root / "file" / "ticl_file.weights").substr(0, 8), "QVRWGHT1");
  const std::string src_lib = aot::build_shared(src, aot_test::compiler());
  const std::string file_lib = aot::build_shared(file, aot_test::compiler());
  aot_test::expect_runtime_only(file_lib);

  const auto sets = data_sets();
  ASSERT_FALSE(sets.empty());
  // The bare C ABI first: run() maps ticl_file.weights next to the library on its first use.
  {
    void* h = dlopen(file_lib.c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_TRUE(h) << dlerror();
    auto entry = reinterpret_cast<const quiver_aot_api* (*)()>(dlsym(h, "quiver_aot_entry"));
    ASSERT_TRUE(entry);
    const quiver_aot_api* api = entry();
    ASSERT_EQ(api->abi_version, QUIVER_AOT_ABI_VERSION);
    const auto info = nlohmann::json::parse(api->info());
    EXPECT_EQ(info.at("weights"), "file");
    ASSERT_EQ(info.at("dims").size(), 1u);  // the batch
    const Tensor& x = sets[0].inputs.at(0);
    const int64_t dims[1] = {x.dim(0)};
    size_t ws_bytes = 0;
    char err[512] = {0};
    ASSERT_EQ(api->workspace_bytes(dims, &ws_bytes, err, sizeof err), 0) << err;
    std::vector<unsigned char> ws(ws_bytes);
    Tensor y = Tensor::empty(sets[0].outputs.at(0).dtype(), sets[0].outputs.at(0).dims());
    const void* in[1] = {x.raw()};
    void* out[1] = {y.raw()};
    ASSERT_EQ(api->run(dims, in, out, ws.data(), ws.size(), err, sizeof err), 0) << err;
    EXPECT_EQ(onnx::compare_tensors(y, sets[0].outputs[0], {1e-4, 1e-5}), "");
    dlclose(h);
  }
  auto a = aot::load_library(src_lib);
  auto b = aot::load_library(file_lib);
  for (size_t k = 0; k < sets.size(); ++k) {
    const auto& d = sets[k];
    const auto ya = a->run_once(d.inputs), yb = b->run_once(d.inputs);
    ASSERT_EQ(ya.size(), yb.size());
    ASSERT_EQ(yb.size(), d.outputs.size());
    for (size_t i = 0; i < yb.size(); ++i) {
      EXPECT_TRUE(same_bits(ya[i], yb[i])) << "data set " << k << ", output " << i;
      EXPECT_EQ(onnx::compare_tensors(yb[i], d.outputs[i], {1e-4, 1e-5}), "") << "data set " << k << ", output " << i;
    }
    // Batch 1 too (another workspace layout, the gemv path).
    std::vector<Tensor> one;
    for (const auto& t : d.inputs) {
      std::vector<int64_t> dims = t.dims();
      dims[0] = 1;
      one.push_back(Tensor::view(t.dtype(), dims, t.raw()));
    }
    const auto oa = a->run_once(one), ob = b->run_once(one);
    for (size_t i = 0; i < ob.size(); ++i) EXPECT_TRUE(same_bits(oa[i], ob[i])) << "data set " << k << " row 0, output " << i;
  }
  // Loaded once per library: asking for another file afterwards is refused, naming both.
  fs::copy_file(root / "file" / "ticl_file.weights", root / "file" / "other.weights", fs::copy_options::overwrite_existing);
  LoadOptions lo;
  lo.params["weights"] = (root / "file" / "other.weights").string();
  try {
    aot::load_library(file_lib, lo);
    ADD_FAILURE() << "a second weights file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("another weights file is loaded already"), std::string::npos) << e.what();
  }
  // A source-form library has no weights file to give.
  EXPECT_THROW(aot::load_library(src_lib, lo), Error);

  // The generated CMake project: libticl_file.so with ticl_file.weights copied next to it, used by a
  // program through the C++ API.
  const fs::path app = root / "cmake_app";
  fs::create_directories(app);
  std::ofstream(app / "CMakeLists.txt") << "cmake_minimum_required(VERSION 3.16)\nproject(app CXX)\n"
                                        << "add_subdirectory(" << file.dir << " model)\n"
                                        << "add_executable(app main.cpp)\ntarget_link_libraries(app PRIVATE ticl_file)\n";
  std::ofstream(app / "main.cpp")
      << "#include <cstdio>\n#include <memory>\n#include <vector>\n#include \"ticl_file.hpp\"\n"
      << "int main() {\n  ticl_file::Inputs in;\n  in.dims.batch_size = 2;\n  std::vector<float> x(2 * 17, 0.5f), y(2);\n"
      << "  in.input = x.data();\n  ticl_file::Outputs out;\n  out.output = y.data();\n"
      << "  const size_t n = ticl_file::workspace_bytes(in.dims);\n  std::unique_ptr<unsigned char[]> ws(new unsigned char[n]);\n"
      << "  ticl_file::run(in, out, ws.get(), n);\n  std::printf(\"values %a %a\\n\", y[0], y[1]);\n  return 0;\n}\n";
  int rc = 0;
  const std::string out = aot_test::run_command("cmake -S " + app.string() + " -B " + (app / "build").string() +
                                                    " -DCMAKE_BUILD_TYPE=Release > /dev/null && cmake --build " +
                                                    (app / "build").string() + " -j2 > /dev/null && " + (app / "build" / "app").string(),
                                                &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(fs::exists(app / "build" / "model" / "ticl_file.weights")) << out;
  // The same values from the source-form library through the aot backend.
  Tensor x = Tensor::empty(DType::F32, {2, 17});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = 0.5f;
  const auto y = a->run_once(std::vector<Tensor>{x});
  char want[128];
  std::snprintf(want, sizeof want, "values %a %a", static_cast<double>(y[0].data<float>()[0]), static_cast<double>(y[0].data<float>()[1]));
  EXPECT_NE(out.find(want), std::string::npos) << out << "\nwant " << want;
}

// Each bad file fails the load with an error naming the file and what is wrong (with the offset where
// there is one); nothing crashes, and the good file still loads afterwards.
TEST(AotWeights, BadWeightsFilesAreRefusedByNameAndOffset) {
  const fs::path root = out_dir("bad");
  const auto file = compile(kModel, root / "lib", "ticl_bad", "file");
  const std::string lib = aot::build_shared(file, aot_test::compiler());
  const fs::path good = root / "lib" / "ticl_bad.weights";
  const std::string bytes = read_file(good);
  ASSERT_GT(bytes.size(), 128u + 64u);
  // Another model's weights file (written by quiver compile; it need not be built).
  const auto other = compile(std::string(QUIVER_SHARED_DIR) + "/models/hep/hls4ml_three_layer", root / "other", "ticl_bad", "file");
  const fs::path foreign = root / "other" / "ticl_bad.weights";

  auto expect_refused = [&](const fs::path& p, const std::string& what) {
    LoadOptions lo;
    lo.params["weights"] = p.string();
    try {
      aot::load_library(lib, lo);
      ADD_FAILURE() << "accepted " << p << " (expected: " << what << ")";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(p.string()), std::string::npos) << "the message does not name the file: " << m;
      EXPECT_NE(m.find(what), std::string::npos) << m;
    }
  };
  auto variant = [&](const std::string& name, const std::string& b) {
    const fs::path p = root / (name + ".weights");
    write(p, b);
    return p;
  };
  std::string s;
  expect_refused(root / "missing.weights", "cannot open: No such file or directory");
  expect_refused(variant("empty", ""), "empty file");
  expect_refused(variant("short", bytes.substr(0, 5)), "truncated: 5 bytes, shorter than the 128-byte header");
  expect_refused(variant("header", bytes.substr(0, 100)), "truncated at offset 100, inside the 128-byte header");
  expect_refused(variant("cut", bytes.substr(0, bytes.size() - 64)),
                 "truncated at offset " + std::to_string(bytes.size() - 64) + ": the data ends at offset " + std::to_string(bytes.size()));
  expect_refused(variant("long", bytes + std::string(64, '\0')), "data after the end of the weights at offset " + std::to_string(bytes.size()));
  s = bytes;
  s[3] = 'X';
  expect_refused(variant("magic", s), "not a quiver compile weights file");
  s = bytes;
  s[8] = 7;
  expect_refused(variant("version", s), "weights file format 7 (offset 8)");
  s = bytes;
  s[24] ^= 1;  // the header's checksum: another compile of the same model
  expect_refused(variant("compile", s), "was written by another compile of this model (offset 16");
  expect_refused(foreign, "holds the weights of another model");
  s = bytes;
  s[128 + 70] ^= 0x10;  // one bit of the first constant
  expect_refused(variant("corrupt", s), "corrupted: the bytes at offsets 128-");
  // A missing default file (next to the library) is named too.
  fs::rename(good, root / "good.weights");
  try {
    aot::load_library(lib);
    ADD_FAILURE() << "loaded without its weights file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(good.string() + ": cannot open"), std::string::npos) << e.what();
  }
  fs::rename(root / "good.weights", good);
  // After all that, the library loads its own file and runs.
  auto m = aot::load_library(lib);
  const auto sets = data_sets();
  const auto y = m->run_once(sets.at(0).inputs);
  EXPECT_EQ(onnx::compare_tensors(y.at(0), sets[0].outputs.at(0), {1e-4, 1e-5}), "");
}

}  // namespace
