// The serve repository and numerics: config.pbtxt parameters { key: "numerics" value: { string_value:
// "reproducible" } } loads the model in reproducible numerics (issue #15).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <sstream>

#include "quiver/backends/backends.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "quiver/onnx/testing.hpp"
#include "serve/repository.hpp"
#include "support/server_process.hpp"

using namespace quiver;
using namespace quiver::serve;

namespace {

std::vector<Tensor> run(const Model& m, const std::vector<Tensor>& x) {
  auto st = m.make_state();
  std::vector<Tensor> out;
  m.run(x, out, *st);
  return out;
}

// The served model gives the bytes of a direct reproducible load.
TEST(ServeRepository, NumericsParameterLoadsReproducibleMode) {
  namespace fs = std::filesystem;
  quiver::testing::TempRepository t("quiver-numerics");
  const std::string hep = std::string(QUIVER_SHARED_DIR) + "/models/hep/ticl_energy_id";
  t.add("ticl", "backend: \"onnx\" parameters { key: \"numerics\" value: { string_value: \"reproducible\" } }");
  fs::copy_file(hep + "/model.onnx", t.dir / "ticl/1/model.onnx");
  RepositoryOptions o;
  o.root = t.dir.string();
  o.control = ModelControl::Explicit;
  o.startup_models = {"*"};
  ModelRepository repo(o);
  repo.load("ticl");
  auto mv = repo.get("ticl", "");
  ASSERT_TRUE(mv);
  std::ostringstream os;
  mv->model->describe(os);
  EXPECT_NE(os.str().find("reproducible"), std::string::npos) << os.str();
  LoadOptions lo;
  lo.params["numerics"] = "reproducible";
  auto direct = load_model(hep + "/model.onnx", lo);
  std::vector<Tensor> in;
  for (const auto& f : onnx::numbered_files(hep + "/test_data_set_0", "input")) in.push_back(onnx::read_tensor_file(f).tensor);
  const auto a = run(*mv->model, in), b = run(*direct, in);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].nbytes(), b[i].nbytes());
    EXPECT_EQ(std::memcmp(a[i].raw(), b[i].raw(), a[i].nbytes()), 0) << "output " << i;
  }
  repo.shutdown();
}

}  // namespace
