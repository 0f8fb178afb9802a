// quiver::load_model: the backends of this build load without any set-up call; added backends are
// asked first; errors name the file.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "quiver/backends/backends.hpp"

using namespace quiver;

namespace {
std::string shared(const std::string& rel) { return std::string(QUIVER_SHARED_DIR) + "/" + rel; }

class Named : public Model {
 public:
  explicit Named(std::string name) { info_.name = std::move(name); }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<RunState>(); }
  void run(std::span<const Tensor>, std::vector<Tensor>&, RunState&) const override {}

 private:
  ModelInfo info_;
};
}  // namespace

TEST(Registry, UnknownFileIsClearError) {
  EXPECT_THROW(load_model("/nonexistent/model.onnx"), Error);
}

TEST(Registry, BuiltInBackendsNeedNoRegistration) {
  auto names = registered_backends();
  EXPECT_NE(std::find(names.begin(), names.end(), "onnx"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "forest"), names.end());
  auto onnx = load_model(shared("models/hep/hls4ml_three_layer/model.onnx"));
  EXPECT_EQ(onnx->info().backend, "onnx");
  auto forest = load_model(shared("models/forest/xgboost/xgb17/SoftmaxIrisNA17.json"));
  EXPECT_EQ(forest->info().backend, "forest");
  try {
    load_model(shared("models/forest/xgboost/xgb17/SoftmaxIrisNA17.json"), {}, "no-such-backend");
    FAIL() << "an unknown backend name loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::NotFound);
    EXPECT_NE(std::string(e.what()).find("no-such-backend"), std::string::npos) << e.what();
  }
}

TEST(Registry, AddedBackendsAreAskedFirstAndReplaceByName) {
  const auto file = std::filesystem::temp_directory_path() / ("quiver-registry-" + std::to_string(::getpid()) + ".onnx");
  std::ofstream(file) << "not an onnx model";
  register_backend({"test-claims-onnx", [](const std::string& p, std::string_view) { return p.ends_with(".onnx"); },
                    [](const std::string&, const LoadOptions&) { return std::make_shared<Named>("first"); }});
  EXPECT_EQ(load_model(file.string())->info().name, "first");
  register_backend({"test-claims-onnx", [](const std::string& p, std::string_view) { return p.ends_with(".onnx"); },
                    [](const std::string&, const LoadOptions&) { return std::make_shared<Named>("second"); }});
  EXPECT_EQ(load_model(file.string())->info().name, "second");
  auto names = registered_backends();
  EXPECT_EQ(std::count(names.begin(), names.end(), "test-claims-onnx"), 1);
  EXPECT_EQ(names.front(), "test-claims-onnx");
  std::filesystem::remove(file);
}
