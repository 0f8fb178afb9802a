// A compiled library in a model repository (model.so, no config.pbtxt: auto-completed as backend
// "aot", or an explicit config with backend: "aot") is served like any other model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "aot_test_util.hpp"
#include "quiver/aot/aot.hpp"
#include "quiver/backends/backends.hpp"
#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"
#include "serve/repository.hpp"

namespace fs = std::filesystem;
using namespace quiver;

TEST(AotServe, RepositoryLoadsModelSoAsBackendAot) {
  const std::string hep = std::string(QUIVER_SHARED_DIR) + "/models/hep/ticl_supercls";
  const fs::path out = fs::path(QUIVER_BINARY_DIR) / "tests" / "aot" / "out" / "serve";
  fs::remove_all(out);
  auto r = aot::compile_model(hep + "/model.onnx", (out / "src").string());
  const std::string lib = aot::build_shared(r, aot_test::compiler());
  const fs::path repo = out / "repo";
  fs::create_directories(repo / "auto" / "1");
  fs::create_directories(repo / "explicit" / "3");
  fs::copy_file(lib, repo / "auto" / "1" / "model.so");
  fs::copy_file(lib, repo / "explicit" / "3" / "model.so");
  std::ofstream(repo / "explicit" / "config.pbtxt") << "name: \"explicit\"\nbackend: \"aot\"\nmax_batch_size: 8\n";

  serve::RepositoryOptions o;
  o.root = repo.string();
  serve::ModelRepository rep(o);
  const auto errors = rep.load_startup();
  ASSERT_TRUE(errors.empty()) << errors.front();
  auto engine = onnx::load_onnx(hep + "/model.onnx");
  std::vector<Tensor> in;
  for (const auto& f : onnx::numbered_files(hep + "/test_data_set_0", "input")) in.push_back(onnx::read_tensor_file(f).tensor);
  const auto want = engine->run_once(in);
  for (const char* name : {"auto", "explicit"}) {
    auto v = rep.get(name);
    EXPECT_EQ(v->engine, "aot") << name;
    EXPECT_EQ(v->model->info().backend, "aot");
    const auto got = v->model->run_once(in);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(onnx::compare_tensors(got[0], want[0], {1e-4, 1e-5}), "") << name;
  }
  EXPECT_EQ(rep.get("explicit")->max_batch, 8);
  rep.shutdown();
}
