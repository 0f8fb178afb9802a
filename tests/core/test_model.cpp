#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include "quiver/core/error.hpp"
#include "quiver/core/model.hpp"
#include "quiver/core/util.hpp"

using namespace quiver;

namespace {
// y = 2x, with per-state call counter to prove state separation.
class Doubler : public Model {
 public:
  Doubler() {
    info_.name = "doubler";
    info_.backend = "test";
    info_.inputs = {{"x", DType::F32, {Dim::sym("batch"), 4}}};
    info_.outputs = {{"y", DType::F32, {Dim::sym("batch"), 4}}};
    info_.max_batch = 8;
  }
  struct State : RunState { int calls = 0; };
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<State>(); }
  void run(std::span<const Tensor> in, std::vector<Tensor>& out, RunState& st) const override {
    validate_inputs(info_, in);
    static_cast<State&>(st).calls++;
    out.resize(1);
    out[0].ensure(DType::F32, in[0].dims());
    for (int64_t i = 0; i < in[0].numel(); ++i) out[0].data<float>()[i] = 2 * in[0].data<float>()[i];
  }
 private:
  ModelInfo info_;
};
}  // namespace

TEST(Model, ValidatesInputs) {
  Doubler m;
  auto ok = Tensor::zeros(DType::F32, {2, 4});
  EXPECT_NO_THROW(m.run_once(std::vector<Tensor>{ok}));
  try {
    m.run_once(std::vector<Tensor>{Tensor::zeros(DType::F64, {2, 4})});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_EQ(e.where().tensor, "x");
  }
  EXPECT_THROW(m.run_once(std::vector<Tensor>{Tensor::zeros(DType::F32, {2, 5})}), Error);
  EXPECT_THROW(m.run_once(std::vector<Tensor>{Tensor::zeros(DType::F32, {9, 4})}), Error);
  EXPECT_THROW(m.run_once(std::vector<Tensor>{}), Error);
  EXPECT_THROW(m.run_named({{"nope", ok}}), Error);
  EXPECT_EQ(m.run_named({{"x", ok}}).size(), 1u);
}

TEST(Model, ConstRunFromManyThreads) {
  auto m = std::make_shared<const Doubler>();
  std::vector<std::thread> th;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    th.emplace_back([&, t] {
      Session s(m);
      std::vector<Tensor> out;
      for (int i = 0; i < 1000; ++i) {
        auto x = Tensor::from_vector<float>({float(t), 1, 2, float(i)}, {1, 4});
        s.run(std::span<const Tensor>(&x, 1), out);
        if (out[0].data<float>()[3] != 2.0f * i || out[0].data<float>()[0] != 2.0f * t) bad++;
      }
    });
  for (auto& x : th) x.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(Util, TrimStripsWhiteSpaceAtBothEndsOnly) {
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim(" \t\r\n"), "");
  EXPECT_EQ(trim("  a b \t"), "a b");
  EXPECT_EQ(trim("x"), "x");
  EXPECT_EQ(trim("\tkey = value\r\n"), "key = value");
}

TEST(Util, Sha256) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_GT(peak_rss_bytes(), 0);
}

// sha256_file streams the file in blocks: the same digest as hashing the bytes at once, for sizes
// around the block (16 KiB), and a named error for a missing file.
TEST(Util, Sha256OfAFileEqualsTheDigestOfItsBytes) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string path = ::testing::TempDir() + "quiver_sha256_file.bin";
  for (size_t n : {size_t{0}, size_t{1}, size_t{16383}, size_t{16384}, size_t{16385}, size_t{100003}}) {
    std::string bytes(n, '\0');
    for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<char>((i * 131 + 7) & 0xff);
    write_file(path, bytes);
    EXPECT_EQ(sha256_file(path), sha256_hex(bytes)) << n << " bytes";
  }
  std::remove(path.c_str());
  try {
    sha256_file(path);
    FAIL() << "no error for a missing file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("quiver_sha256_file.bin"), std::string::npos) << e.what();
  }
}
