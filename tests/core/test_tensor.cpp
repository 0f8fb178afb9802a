#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>

#include "quiver/core/dtype.hpp"
#include "quiver/core/error.hpp"
#include "quiver/core/half.hpp"
#include "quiver/core/tensor.hpp"

using namespace quiver;

TEST(DType, RoundTripsNames) {
  for (DType t : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I8, DType::I16, DType::I32, DType::I64,
                  DType::U8, DType::U16, DType::U32, DType::U64, DType::Bool, DType::String}) {
    auto k = dtype_from_kserve(dtype_kserve_name(t));
    ASSERT_TRUE(k.has_value());
    EXPECT_EQ(*k, t);
    auto c = dtype_from_triton_config_name(dtype_triton_config_name(t));
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(*c, t);
    EXPECT_EQ(dtype_from_onnx(static_cast<int32_t>(t)), t);
  }
  EXPECT_EQ(dtype_kserve_name(DType::String), "BYTES");
  EXPECT_FALSE(dtype_from_onnx(17).has_value());  // FLOAT8E4M3FN is not supported
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
}

TEST(Half, ConvertsExactly) {
  EXPECT_EQ(Half::from_float(1.0f), 0x3c00);
  EXPECT_EQ(Half::from_float(-2.0f), 0xc000);
  EXPECT_EQ(Half::from_float(65504.0f), 0x7bff);
  EXPECT_EQ(Half::from_float(1e6f), 0x7c00);
  EXPECT_EQ(Half::to_float(0x0001), 5.9604644775390625e-08f);  // smallest subnormal
  EXPECT_EQ(Half::from_float(5.9604644775390625e-08f), 0x0001);
  EXPECT_TRUE(std::isnan(Half::to_float(Half::from_float(std::numeric_limits<float>::quiet_NaN()))));
  for (uint32_t h = 0; h < 0x7c00; ++h) EXPECT_EQ(Half::from_float(Half::to_float(h)), h) << h;
  EXPECT_EQ(BFloat16::from_float(1.0f), 0x3f80);
  EXPECT_EQ(BFloat16::to_float(0x3f80), 1.0f);
}

TEST(Tensor, OwnsAlignedMemory) {
  Tensor t = Tensor::zeros(DType::F32, {3, 5});
  EXPECT_EQ(t.numel(), 15);
  EXPECT_EQ(t.nbytes(), 60u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % kTensorAlignment, 0u);
  EXPECT_FALSE(t.is_view());
  for (float v : t.span<float>()) EXPECT_EQ(v, 0.0f);
}

TEST(Tensor, ViewsCallerMemoryWithoutCopy) {
  std::vector<float> buf(12, 1.5f);
  std::vector<int64_t> dims{3, 4};
  Tensor v = Tensor::view(DType::F32, dims, buf.data());
  EXPECT_TRUE(v.is_view());
  EXPECT_EQ(v.data<float>(), buf.data());
  v.data<float>()[0] = 7.0f;
  EXPECT_EQ(buf[0], 7.0f);
  Tensor c = v.clone();
  EXPECT_NE(c.data<float>(), buf.data());
  EXPECT_EQ(c.data<float>()[0], 7.0f);
}

TEST(Tensor, EnsureReusesStorage) {
  Tensor t = Tensor::empty(DType::F32, {100});
  const void* p = t.raw();
  t.ensure(DType::F32, std::vector<int64_t>{10, 10});
  EXPECT_EQ(t.raw(), p);
  t.ensure(DType::I32, std::vector<int64_t>{50});
  EXPECT_EQ(t.raw(), p);
  Tensor shared = t;  // now shared: ensure must not scribble on `shared`
  t.ensure(DType::F32, std::vector<int64_t>{4});
  EXPECT_NE(t.raw(), shared.raw());
}

TEST(Tensor, StringsAndReshape) {
  Tensor s = Tensor::from_vector<std::string>({"a", "bc"}, {2});
  EXPECT_EQ(s.dtype(), DType::String);
  EXPECT_EQ(s.data<std::string>()[1], "bc");
  Tensor c = s.clone();
  EXPECT_EQ(c.data<std::string>()[0], "a");
  Tensor f = Tensor::zeros(DType::F32, {2, 6});
  EXPECT_EQ(f.reshaped(std::vector<int64_t>{3, 4}).dims(), (std::vector<int64_t>{3, 4}));
  EXPECT_THROW(f.reshaped(std::vector<int64_t>{5}), Error);
}

TEST(Tensor, RejectsNegativeDims) {
  EXPECT_THROW(Tensor::empty(DType::F32, {2, -1}), Error);
}

TEST(Error, NamesWhere) {
  Error e(ErrorCode::InvalidArgument, "bad shape", {"m", "conv1 (Conv)", "x"});
  std::string w = e.what();
  EXPECT_NE(w.find("model 'm'"), std::string::npos);
  EXPECT_NE(w.find("node 'conv1 (Conv)'"), std::string::npos);
  EXPECT_NE(w.find("tensor 'x'"), std::string::npos);
  EXPECT_NE(w.find("bad shape"), std::string::npos);
  Error f = Error(ErrorCode::Parse, "x", {"", "", "", "", 12}).with_context({"outer"});
  EXPECT_EQ(f.where().model, "outer");
  EXPECT_EQ(f.where().offset, 12);
}

TEST(Tensor, ByteLimitIsACleanError) {
  {
    const TensorByteLimit limit(1 << 20);
    try {
      Tensor::empty(DType::F32, {1 << 20});
      FAIL() << "expected ResourceExhausted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::ResourceExhausted);
    }
    EXPECT_NO_THROW(Tensor::empty(DType::F32, {1000}));
    {
      const TensorByteLimit none(0);
      EXPECT_EQ(tensor_byte_limit(), SIZE_MAX);
    }
    EXPECT_EQ(tensor_byte_limit(), size_t{1} << 20);
    // Another thread is not bound by this scope's limit.
    std::thread([] { EXPECT_EQ(tensor_byte_limit(), SIZE_MAX); }).join();
  }
  EXPECT_EQ(tensor_byte_limit(), SIZE_MAX);
}
