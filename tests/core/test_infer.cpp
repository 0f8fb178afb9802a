// The inference-call layer of core: batch assembly (rows of several requests joined and split
// back) and the one fallback to local inference.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "quiver/core/batching.hpp"
#include "quiver/core/infer.hpp"

using namespace quiver;

namespace {
// y = x + 1 (F32 [batch, 2]).
class PlusOne : public Model {
 public:
  PlusOne() {
    info_.name = "plus";
    info_.version = "3";
    info_.sha256 = "cafe";
    info_.inputs = {{"x", DType::F32, {Dim::sym("batch"), 2}}};
    info_.outputs = {{"y", DType::F32, {Dim::sym("batch"), 2}}};
    info_.max_batch = 16;
  }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<RunState>(); }
  void run(std::span<const Tensor> in, std::vector<Tensor>& out, RunState&) const override {
    validate_inputs(info_, in);
    out.resize(1);
    out[0].ensure(DType::F32, in[0].dims());
    for (int64_t i = 0; i < in[0].numel(); ++i) out[0].data<float>()[i] = in[0].data<float>()[i] + 1;
  }

 private:
  ModelInfo info_;
};

// A service that fails every request with `code`, answering on its own thread.
class Failing : public AsyncInferer {
 public:
  explicit Failing(ErrorCode code) : code_(code) {}
  ~Failing() override {
    for (auto& t : threads_) t.join();
  }
  void infer_async(const std::string& model, std::vector<NamedTensor>, const InferOptions&, InferCallback done) override {
    ++calls;
    threads_.emplace_back([this, model, done] {
      InferResult r;
      r.provenance.model = model;
      r.provenance.attempts = 2;
      r.error = Error(code_, "server says no");
      done(std::move(r));
    });
  }
  std::atomic<int> calls{0};

 private:
  ErrorCode code_;
  std::vector<std::thread> threads_;
};

InferResult call(AsyncInferer& s, std::vector<NamedTensor> in) {
  std::promise<InferResult> p;
  auto f = p.get_future();
  s.infer_async("plus", std::move(in), {}, [&p](InferResult r) { p.set_value(std::move(r)); });
  return f.get();
}

Fallback::Executor inline_executor() {
  return [](std::function<void()> t) { t(); };
}
}  // namespace

TEST(Batching, RowsAreViewsThatKeepTheStorage) {
  Tensor v;
  {
    Tensor t = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2});
    v = t.rows(1, 2);
  }
  ASSERT_EQ(v.dims(), (std::vector<int64_t>{2, 2}));
  EXPECT_TRUE(v.is_view());
  EXPECT_EQ(v.data<float>()[0], 3.0f);
  EXPECT_EQ(v.data<float>()[3], 6.0f);
  Tensor t = Tensor::zeros(DType::F32, {3, 2});
  EXPECT_THROW(t.rows(2, 2), Error);
  EXPECT_THROW(Tensor::scalar(1.0f).rows(0, 1), Error);
}

TEST(Batching, JoinAndCopyRowsCheckTheirShapes) {
  Tensor a = Tensor::from_vector<float>({1, 2}, {1, 2});
  Tensor b = Tensor::from_vector<float>({3, 4, 5, 6}, {2, 2});
  Tensor joined;
  const Tensor* parts[] = {&a, &b};
  join_rows(parts, joined, "x");
  ASSERT_EQ(joined.dims(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(joined.data<float>()[5], 6.0f);
  const void* storage = joined.raw();
  join_rows(parts, joined, "x");  // a second batch of the same size reuses the storage
  EXPECT_EQ(joined.raw(), storage);
  Tensor c = Tensor::zeros(DType::F32, {1, 3});
  const Tensor* bad[] = {&a, &c};
  try {
    join_rows(bad, joined, "x");
    FAIL() << "rows of different width joined";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_EQ(e.where().tensor, "x");
  }
  Tensor s = Tensor::empty(DType::String, {2});
  s.data<std::string>()[0] = "p";
  s.data<std::string>()[1] = "q";
  Tensor d = Tensor::empty(DType::String, {3});
  copy_rows(s, 0, d, 1, 2);
  EXPECT_EQ(d.data<std::string>()[2], "q");
  EXPECT_THROW(copy_rows(s, 1, d, 0, 2), Error);  // past the source's rows
}

TEST(Batching, WholeCallsTakeTileAndJoinRows) {
  const std::vector<Tensor> call = {Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {3, 2}),
                                    Tensor::from_vector<int64_t>({7, 8, 9}, {3}), Tensor::scalar(2.5f)};
  // take_rows: views of one row of each tensor; a scalar has no rows.
  const auto one = take_rows({call[0], call[1]}, 2, 1);
  ASSERT_EQ(one[0].dims(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(one[0].data<float>()[1], 6.0f);
  EXPECT_EQ(one[1].data<int64_t>()[0], 9);
  EXPECT_THROW(take_rows(call, 0, 1), Error);
  EXPECT_THROW(take_rows({call[0]}, 2, 2), Error);
  // tile_rows: rows repeated up to the batch, or cut to it; scalars kept.
  const auto big = tile_rows(call, 7);
  ASSERT_EQ(big[0].dims(), (std::vector<int64_t>{7, 2}));
  EXPECT_EQ(big[0].data<float>()[2 * 6 + 1], 2.0f);  // row 6 is row 0
  EXPECT_EQ(big[1].data<int64_t>()[4], 8);           // row 4 is row 1
  EXPECT_EQ(big[2].rank(), 0u);
  const auto small = tile_rows(call, 2);
  ASSERT_EQ(small[1].dims(), (std::vector<int64_t>{2}));
  EXPECT_EQ(small[1].data<int64_t>()[1], 8);
  // join_calls: the rows of each call in order, per tensor; calls that disagree are refused.
  const auto joined = join_calls({take_rows({call[0], call[1]}, 1, 2), one});
  ASSERT_EQ(joined[0].dims(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(joined[0].data<float>()[0], 3.0f);
  EXPECT_EQ(joined[1].data<int64_t>()[2], 9);
  EXPECT_THROW(join_calls({one, {call[0]}}), Error);
  EXPECT_THROW(join_calls({one, {call[1], call[0]}}), Error);
}

TEST(Fallback, ModesDecideWhichFailuresRunLocally) {
  auto local = single_local_model(std::make_shared<PlusOne>());
  Fallback off(FallbackMode::Off, local, inline_executor()), on(FallbackMode::OnFailure, local, inline_executor()),
      any(FallbackMode::OnAnyFailure, local, inline_executor());
  EXPECT_FALSE(off.covers("plus", ErrorCode::Unavailable));
  EXPECT_TRUE(on.covers("plus", ErrorCode::Unavailable));
  EXPECT_TRUE(on.covers("plus", ErrorCode::NotFound));
  EXPECT_FALSE(on.covers("plus", ErrorCode::DeadlineExceeded));
  EXPECT_TRUE(any.covers("plus", ErrorCode::DeadlineExceeded));
  EXPECT_FALSE(any.covers("plus", ErrorCode::Cancelled));
  EXPECT_FALSE(any.covers("other", ErrorCode::Unavailable)) << "the local model answers for its own name only";
  EXPECT_EQ(fallback_mode_from_string("on-any-failure"), FallbackMode::OnAnyFailure);
  EXPECT_THROW(fallback_mode_from_string("sometimes"), Error);
}

TEST(Fallback, WrappedServiceFailuresAreAnsweredLocallyWithProvenance) {
  auto local = single_local_model(std::make_shared<PlusOne>());
  auto failing = std::make_shared<Failing>(ErrorCode::Unavailable);
  auto svc = wrap_with_fallback(failing, std::make_shared<Fallback>(FallbackMode::OnFailure, local, inline_executor()));
  InferResult r = call(*svc, {{"x", Tensor::from_vector<float>({1, 2}, {1, 2})}});
  ASSERT_TRUE(r.ok()) << r.error->what();
  EXPECT_EQ(r.output("y").data<float>()[1], 3.0f);
  EXPECT_TRUE(r.provenance.fallback);
  EXPECT_EQ(r.provenance.mode, "service-fallback-direct");
  EXPECT_EQ(r.provenance.sha256, "cafe");
  EXPECT_EQ(r.provenance.version, "3");
  EXPECT_EQ(r.provenance.attempts, 2);
  EXPECT_EQ(failing->calls.load(), 1);

  // A failure the mode does not cover reaches the caller unchanged.
  auto rejecting = std::make_shared<Failing>(ErrorCode::InvalidArgument);
  auto svc2 = wrap_with_fallback(rejecting, std::make_shared<Fallback>(FallbackMode::OnFailure, local, inline_executor()));
  InferResult r2 = call(*svc2, {{"x", Tensor::from_vector<float>({1, 2}, {1, 2})}});
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error->code(), ErrorCode::InvalidArgument);
  EXPECT_FALSE(r2.provenance.fallback);

  // The local model failing too: the error says both.
  auto svc3 = wrap_with_fallback(failing, std::make_shared<Fallback>(FallbackMode::OnFailure, local, inline_executor()));
  InferResult r3 = call(*svc3, {{"x", Tensor::from_vector<float>({1, 2, 3}, {1, 3})}});
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(std::string(r3.error->what()).find("local fallback failed"), std::string::npos) << r3.error->what();
  EXPECT_NE(std::string(r3.error->what()).find("server says no"), std::string::npos) << r3.error->what();
}
