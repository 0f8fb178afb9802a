// NN operators (Conv, LSTM, GRU) on small graphs built in code, checked against naive scalar
// reference computations written here; shape errors must name the node.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

#include "quiver/onnx/onnx_model.hpp"
#include "quiver/onnx/tensor_proto.hpp"
#include "onnx/graph_builder.hpp"

using namespace quiver;

namespace {

// Shapeless inputs and outputs; nodes named "<op>_under_test" (errors must name them).
struct Graph : quiver::test::G {
  explicit Graph(int opset = 17) : G(opset) {}
  void input(const std::string& n, DType t = DType::F32) { io_any(g->add_input(), n, t); }
  void output(const std::string& n, DType t = DType::F32) { io_any(g->add_output(), n, t); }
  ::onnx::NodeProto* node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out) {
    return G::node(op, std::move(in), std::move(out), op + "_under_test");
  }
};

constexpr auto* ints = &quiver::test::attr_ints;
constexpr auto* one_int = &quiver::test::attr_int;
constexpr auto* str = &quiver::test::attr_str;

Tensor rnd(const std::vector<int64_t>& dims, std::mt19937& rng, float s = 1.f) {
  Tensor t = Tensor::empty(DType::F32, dims);
  std::uniform_real_distribution<float> u(-s, s);
  for (auto& v : t.span<float>()) v = u(rng);
  return t;
}

void expect_close(const Tensor& got, const std::vector<double>& want, const std::string& what, double tol = 2e-4) {
  ASSERT_EQ(static_cast<size_t>(got.numel()), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got.data<float>()[i], want[i], tol * (1 + std::abs(want[i]))) << what << " element " << i;
}

// Naive N-d convolution (nd <= 3), explicit pads [begins..., ends...].
struct ConvCase {
  std::vector<int64_t> xdims, kernel, strides, dil, pads;
  int64_t cout, group;
  bool bias;
  const char* act = nullptr;  // a following Relu or Sigmoid (fused into the Conv by the compiler)
};

std::vector<double> naive_conv(const ConvCase& c, const Tensor& x, const Tensor& w, const Tensor* b, std::vector<int64_t>& ydims) {
  const size_t nd = c.kernel.size();
  const int64_t N = c.xdims[0], C = c.xdims[1], M = c.cout, Cg = C / c.group, Mg = M / c.group;
  std::vector<int64_t> in(3, 1), k(3, 1), s(3, 1), d(3, 1), pb(3, 0), out(3, 1);
  for (size_t i = 0; i < nd; ++i) {
    const size_t j = 3 - nd + i;
    in[j] = c.xdims[2 + i];
    k[j] = c.kernel[i];
    s[j] = c.strides[i];
    d[j] = c.dil[i];
    pb[j] = c.pads[i];
    out[j] = (in[j] + c.pads[i] + c.pads[nd + i] - ((k[j] - 1) * d[j] + 1)) / s[j] + 1;
  }
  ydims = {N, M};
  for (size_t i = 0; i < nd; ++i) ydims.push_back(out[3 - nd + i]);
  std::vector<double> y;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t o0 = 0; o0 < out[0]; ++o0)
        for (int64_t o1 = 0; o1 < out[1]; ++o1)
          for (int64_t o2 = 0; o2 < out[2]; ++o2) {
            double acc = b ? b->data<float>()[m] : 0.0;
            const int64_t g = m / Mg;
            for (int64_t cc = 0; cc < Cg; ++cc)
              for (int64_t k0 = 0; k0 < k[0]; ++k0)
                for (int64_t k1 = 0; k1 < k[1]; ++k1)
                  for (int64_t k2 = 0; k2 < k[2]; ++k2) {
                    const int64_t i0 = o0 * s[0] - pb[0] + k0 * d[0], i1 = o1 * s[1] - pb[1] + k1 * d[1],
                                  i2 = o2 * s[2] - pb[2] + k2 * d[2];
                    if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 || i2 >= in[2]) continue;
                    const int64_t c = g * Cg + cc;
                    const double xv = x.data<float>()[(((n * C + c) * in[0] + i0) * in[1] + i1) * in[2] + i2];
                    const double wv = w.data<float>()[(((m * Cg + cc) * k[0] + k0) * k[1] + k1) * k[2] + k2];
                    acc += xv * wv;
                  }
            y.push_back(acc);
          }
  return y;
}

}  // namespace

// 1-D, [N,C,L,1] with (3,1) kernels, pointwise, depthwise with stride/dilation/asymmetric pads,
// grouped 3-D, few output channels (with a fused activation): the pointwise GEMM path, the im2col
// path, the direct path and the trivial-dim squeeze all agree with the naive loop. Weights both as
// initializers and as runtime inputs.
TEST(NnOps, ConvMatchesNaive) {
  std::mt19937 rng(11);
  const std::vector<ConvCase> cases = {
      {{2, 3, 9}, {3}, {1}, {1}, {1, 1}, 4, 1, true},
      {{1, 6, 10, 1}, {3, 1}, {1, 1}, {1, 1}, {1, 0, 1, 0}, 5, 1, true},
      {{1, 8, 12, 1}, {1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 16, 1, true},
      {{2, 4, 7, 6}, {3, 3}, {2, 1}, {2, 1}, {2, 1, 1, 0}, 4, 4, false},
      {{1, 4, 3, 4, 5}, {2, 2, 3}, {1, 2, 1}, {1, 1, 2}, {0, 1, 1, 1, 0, 1}, 6, 2, true},
      // Few output channels with constant weights (default numerics: the direct path): TICL
      // energy-id's layers, dilations and asymmetric pads, 1, 5 and 8 channels, a wide input, 1-D.
      {{3, 3, 50, 10}, {5, 1}, {1, 1}, {1, 1}, {2, 0, 2, 0}, 3, 1, true, "Relu"},
      {{2, 3, 50, 10}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 3, 1, true, "Relu"},
      {{2, 5, 9, 13}, {3, 2}, {1, 1}, {2, 3}, {0, 2, 3, 1}, 8, 1, true, "Sigmoid"},
      {{1, 2, 6, 7}, {2, 3}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 1, 1, false},
      {{2, 20, 11, 4}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 5, 1, true, "Relu"},
      {{2, 7, 40}, {5}, {1}, {1}, {0, 3}, 6, 1, true},
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const auto& c = cases[ci];
    for (int const_w = 0; const_w < 2; ++const_w) {
      std::vector<int64_t> wd = {c.cout, c.xdims[1] / c.group};
      wd.insert(wd.end(), c.kernel.begin(), c.kernel.end());
      Tensor x = rnd(c.xdims, rng), w = rnd(wd, rng), b = rnd({c.cout}, rng);
      Graph g;
      g.input("x");
      std::vector<Tensor> feeds = {x};
      if (const_w) {
        g.init("w", w);
        if (c.bias) g.init("b", b);
      } else {
        g.input("w");
        feeds.push_back(w);
        if (c.bias) {
          g.input("b");
          feeds.push_back(b);
        }
      }
      g.output("y");
      std::vector<std::string> in = {"x", "w"};
      if (c.bias) in.push_back("b");
      auto* n = g.node("Conv", in, {c.act ? "conv_y" : "y"});
      if (c.act) g.node(c.act, {"conv_y"}, {"y"});
      if (const_w) ints(n, "kernel_shape", c.kernel);  // runtime W without shapes: rank found at run time
      ints(n, "strides", c.strides);
      ints(n, "dilations", c.dil);
      ints(n, "pads", c.pads);
      one_int(n, "group", c.group);
      auto out = g.load()->run_once(feeds);
      std::vector<int64_t> yd;
      auto want = naive_conv(c, x, w, c.bias ? &b : nullptr, yd);
      if (c.act)
        for (double& v : want) v = std::string(c.act) == "Relu" ? std::max(v, 0.0) : 1 / (1 + std::exp(-v));
      ASSERT_EQ(out[0].dims(), yd) << "case " << ci;
      expect_close(out[0], want, "conv case " + std::to_string(ci) + (const_w ? " const" : " runtime"));
    }
  }
}

TEST(NnOps, ConvChannelMismatchNamesNode) {
  Graph g;
  g.input("x");
  g.input("w");
  g.output("y");
  g.node("Conv", {"x", "w"}, {"y"});  // no kernel_shape, no shapes: spatial rank found at run time
  auto m = g.load();
  std::mt19937 rng(1);
  try {
    m->run_once(std::vector<Tensor>{rnd({1, 3, 5}, rng), rnd({2, 4, 1}, rng)});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Conv_under_test"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("channels"), std::string::npos) << e.what();
  }
}

namespace {

double sig(double v) { return 1.0 / (1.0 + std::exp(-v)); }

// Naive LSTM / GRU for layout 0 with all optional inputs; returns Y [T, D, B, H] and Y_h [D, B, H].
struct RnnRef {
  std::vector<double> y, yh, yc;
};

RnnRef naive_rnn(bool lstm, bool lbr, int64_t T, int64_t D, int64_t B, int64_t I, int64_t H, const Tensor& x, const Tensor& w,
                 const Tensor& r, const Tensor& bias, const std::vector<int64_t>& lens, const Tensor& h0, const Tensor* c0,
                 const Tensor* p, bool hard = false) {
  const int64_t G = lstm ? 4 : 3;
  auto gate = [hard](double v) { return hard ? std::max(0.0, std::min(1.0, 0.2 * v + 0.5)) : sig(v); };
  RnnRef out;
  out.y.assign(static_cast<size_t>(T * D * B * H), 0.0);
  out.yh.assign(static_cast<size_t>(D * B * H), 0.0);
  out.yc.assign(static_cast<size_t>(D * B * H), 0.0);
  auto W = [&](int64_t d, int64_t row, int64_t col) { return double(w.data<float>()[(d * G * H + row) * I + col]); };
  auto R = [&](int64_t d, int64_t row, int64_t col) { return double(r.data<float>()[(d * G * H + row) * H + col]); };
  auto Bv = [&](int64_t d, int64_t j) { return double(bias.data<float>()[d * 2 * G * H + j]); };
  for (int64_t d = 0; d < D; ++d)
    for (int64_t b = 0; b < B; ++b) {
      std::vector<double> h(H), c(H);
      for (int64_t k = 0; k < H; ++k) {
        h[k] = h0.data<float>()[(d * B + b) * H + k];
        c[k] = c0 ? c0->data<float>()[(d * B + b) * H + k] : 0.0;
      }
      for (int64_t s = 0; s < lens[b]; ++s) {
        const int64_t t = d == 1 ? lens[b] - 1 - s : s;
        const float* xt = x.data<float>() + (t * B + b) * I;
        auto xw = [&](int64_t row) {
          double a = Bv(d, row);
          for (int64_t i = 0; i < I; ++i) a += W(d, row, i) * xt[i];
          return a;
        };
        auto hr = [&](int64_t row, const std::vector<double>& hv) {
          double a = 0;
          for (int64_t j = 0; j < H; ++j) a += R(d, row, j) * hv[j];
          return a;
        };
        std::vector<double> nh(H), nc(H);
        if (lstm) {
          for (int64_t k = 0; k < H; ++k) {
            const double pi = p ? p->data<float>()[d * 3 * H + k] : 0, po = p ? p->data<float>()[d * 3 * H + H + k] : 0,
                         pf = p ? p->data<float>()[d * 3 * H + 2 * H + k] : 0;
            const double gi = sig(xw(k) + hr(k, h) + Bv(d, G * H + k) + pi * c[k]);
            const double gf = sig(xw(2 * H + k) + hr(2 * H + k, h) + Bv(d, G * H + 2 * H + k) + pf * c[k]);
            const double gc = std::tanh(xw(3 * H + k) + hr(3 * H + k, h) + Bv(d, G * H + 3 * H + k));
            nc[k] = gf * c[k] + gi * gc;
            const double go = sig(xw(H + k) + hr(H + k, h) + Bv(d, G * H + H + k) + po * nc[k]);
            nh[k] = go * std::tanh(nc[k]);
          }
        } else {
          std::vector<double> z(H), rr(H), rh(H);
          for (int64_t k = 0; k < H; ++k) {
            z[k] = gate(xw(k) + hr(k, h) + Bv(d, G * H + k));
            rr[k] = gate(xw(H + k) + hr(H + k, h) + Bv(d, G * H + H + k));
          }
          for (int64_t k = 0; k < H; ++k) rh[k] = rr[k] * h[k];
          for (int64_t k = 0; k < H; ++k) {
            const double hh = lbr ? std::tanh(xw(2 * H + k) + rr[k] * (hr(2 * H + k, h) + Bv(d, G * H + 2 * H + k)))
                                  : std::tanh(xw(2 * H + k) + hr(2 * H + k, rh) + Bv(d, G * H + 2 * H + k));
            nh[k] = (1 - z[k]) * hh + z[k] * h[k];
          }
          nc = c;
        }
        h = nh;
        c = nc;
        for (int64_t k = 0; k < H; ++k) out.y[((t * D + d) * B + b) * H + k] = h[k];
      }
      for (int64_t k = 0; k < H; ++k) {
        out.yh[(d * B + b) * H + k] = h[k];
        out.yc[(d * B + b) * H + k] = c[k];
      }
    }
  return out;
}

}  // namespace

// Bidirectional LSTM with peepholes, sequence_lens (one row shorter than T), initial h/c; GRU with
// linear_before_reset 0 and 1: Y, Y_h (and Y_c) against the naive recurrence. Variant 3: LSTM
// without peepholes, 37 hidden units (not a multiple of any vector width). Variants 4 and 5: the
// batched LSTM (20 rows, every sequence T long, no peepholes), with a random and a zero initial h.
// Variants 6 and 7: the batched GRU (linear_before_reset 0, 20 rows), with a random initial h and
// sigmoid gates, and with a zero initial h and Keras's hard sigmoid gates. Variants 8 and 9: one row
// (the recurrent GEMV), GRU and LSTM, 37 units: 74, 37 and 148 columns, none a multiple of 16.
TEST(NnOps, RecurrentMatchesNaive) {
  std::mt19937 rng(5);
  const int64_t T = 4, I = 3, D = 2;
  for (int variant = 0; variant < 10; ++variant) {
    const bool lstm = variant == 0 || variant == 3 || variant == 4 || variant == 5 || variant == 9, lbr = variant == 2,
               peep = variant == 0;
    const bool batched = variant >= 4 && variant < 8, hard = variant == 7, one_row = variant >= 8;
    const int64_t H = variant >= 3 ? 37 : 5, B = batched ? 20 : one_row ? 1 : 2;
    const int64_t G = lstm ? 4 : 3;
    std::vector<int64_t> lens(static_cast<size_t>(B), T);
    if (B == 2) lens[1] = 2;
    Tensor x = rnd({T, B, I}, rng), w = rnd({D, G * H, I}, rng, 0.5f), r = rnd({D, G * H, H}, rng, 0.5f),
           bias = rnd({D, 2 * G * H}, rng, 0.5f), h0 = rnd({D, B, H}, rng), c0 = rnd({D, B, H}, rng),
           p = rnd({D, 3 * H}, rng, 0.5f);
    if (variant == 5 || variant == 7) std::fill_n(h0.data<float>(), h0.numel(), 0.0f);
    std::vector<int32_t> lens32(lens.begin(), lens.end());
    Tensor sl = Tensor::from_vector(lens32, {B});
    Graph g;
    g.input("x");
    g.input("sl", DType::I32);
    g.input("h0");
    g.init("w", w);
    g.init("r", r);
    g.init("b", bias);
    std::vector<std::string> in = {"x", "w", "r", "b", "sl", "h0"};
    std::vector<Tensor> feeds = {x, sl, h0};
    if (lstm) {
      g.input("c0");
      in.push_back("c0");
      feeds.push_back(c0);
      if (peep) {
        g.init("p", p);
        in.push_back("p");
      }
    }
    std::vector<std::string> outs = {"y", "yh"};
    if (lstm) outs.push_back("yc");
    for (auto& o : outs) g.output(o);
    auto* n = g.node(lstm ? "LSTM" : "GRU", in, outs);
    one_int(n, "hidden_size", H);
    str(n, "direction", "bidirectional");
    if (!lstm) one_int(n, "linear_before_reset", lbr ? 1 : 0);
    if (hard) {
      auto* a = n->add_attribute();
      a->set_name("activations");
      a->set_type(::onnx::AttributeProto::STRINGS);
      for (const char* f : {"HardSigmoid", "Tanh", "HardSigmoid", "Tanh"}) a->add_strings(f);
    }
    auto res = g.load()->run_once(feeds);
    auto want = naive_rnn(lstm, lbr, T, D, B, I, H, x, w, r, bias, lens, h0, lstm ? &c0 : nullptr, peep ? &p : nullptr, hard);
    const std::string what = batched || one_row ? (lstm ? "LSTM" : "GRU") + std::string(batched ? " batched " : " one row ") + std::to_string(variant)
                             : variant == 3 ? "LSTM (no peepholes)" : lstm ? "LSTM" : lbr ? "GRU lbr" : "GRU";
    EXPECT_EQ(res[0].dims(), (std::vector<int64_t>{T, D, B, H}));
    expect_close(res[0], want.y, what + " Y");
    expect_close(res[1], want.yh, what + " Y_h");
    if (lstm) expect_close(res[2], want.yc, what + " Y_c");
  }
}

// Batch 1 with constant weights reads R^T from a panel-major copy made at load (Config::rp); with R
// fed at run time it reads R^T in place. 61 units: the LSTM's 244 columns take the 128-, 64-, 32- and
// 16-column panels and a last one ending at N, the GRU's [z, r] (122) and h (61) products the
// narrower ones. Both must match the naive recurrence, and each other bit for bit (the same panels
// sum in the same order); a panel packed from the wrong columns or rows fails both.
TEST(NnOps, RecurrentPackedGemvMatchesInPlace) {
  std::mt19937 rng(11);
  const int64_t T = 3, I = 5, D = 2, B = 1, H = 61;
  for (bool lstm : {true, false}) {
    const int64_t G = lstm ? 4 : 3;
    const std::vector<int64_t> lens(1, T);
    Tensor x = rnd({T, B, I}, rng), w = rnd({D, G * H, I}, rng, 0.3f), r = rnd({D, G * H, H}, rng, 0.3f),
           bias = rnd({D, 2 * G * H}, rng, 0.3f), h0 = rnd({D, B, H}, rng), c0 = rnd({D, B, H}, rng);
    std::vector<std::vector<Tensor>> res;
    for (bool const_r : {true, false}) {
      Graph g;
      g.input("x");
      g.input("h0");
      g.init("w", w);
      g.init("b", bias);
      std::vector<Tensor> feeds = {x, h0};
      if (const_r) {
        g.init("r", r);
      } else {
        g.input("r");
        feeds.push_back(r);
      }
      std::vector<std::string> in = {"x", "w", "r", "b", "", "h0"};
      if (lstm) {
        g.input("c0");
        in.push_back("c0");
        feeds.push_back(c0);
      }
      g.output("y");
      g.output("yh");
      auto* n = g.node(lstm ? "LSTM" : "GRU", in, {"y", "yh"});
      one_int(n, "hidden_size", H);
      str(n, "direction", "bidirectional");
      res.push_back(g.load()->run_once(feeds));
    }
    const auto want = naive_rnn(lstm, false, T, D, B, I, H, x, w, r, bias, lens, h0, lstm ? &c0 : nullptr, nullptr);
    const std::string what = lstm ? "LSTM" : "GRU";
    for (size_t k = 0; k < 2; ++k) {
      expect_close(res[k][0], want.y, what + (k == 0 ? " packed" : " in place") + " Y");
      expect_close(res[k][1], want.yh, what + (k == 0 ? " packed" : " in place") + " Y_h");
    }
    for (int64_t i = 0; i < res[0][0].numel(); ++i)
      ASSERT_EQ(res[0][0].data<float>()[i], res[1][0].data<float>()[i]) << what << " Y element " << i;
  }
}

// Default numerics: the recurrent kernels treat subnormals as zero while they run and give the
// caller's MXCSR back (numerics.hpp, SubnormalsAsZero); reproducible mode keeps them. One hidden
// unit, one step, zero weights: o = sigmoid(-80) ~ 1.8e-35, i ~ 1, c = tanh(1e-4) ~ 1e-4, so
// Y_h = o * tanh(c) ~ 1.8e-39, subnormal. Batch 1 (row by row) and 16 (the batched LSTM).
TEST(NnOps, LstmSubnormalsFlushedInDefaultNumericsOnly) {
#if defined(__SSE__)
  for (int64_t B : {1, 16}) {
    Tensor bias = Tensor::empty(DType::F32, {1, 8});
    const float b[8] = {20.f, -80.f, -20.f, 1e-4f, 0, 0, 0, 0};  // W bias i, o, f, c; R bias zero
    std::copy_n(b, 8, bias.data<float>());
    Graph g;
    g.input("x");
    g.init("w", Tensor::zeros(DType::F32, {1, 4, 1}));
    g.init("r", Tensor::zeros(DType::F32, {1, 4, 1}));
    g.init("b", bias);
    g.output("yh");
    auto* n = g.node("LSTM", {"x", "w", "r", "b"}, {"", "yh"});
    one_int(n, "hidden_size", 1);
    const std::vector<Tensor> feeds = {Tensor::zeros(DType::F32, {1, B, 1})};
    const unsigned csr = _mm_getcsr() & ~0x8040u;  // the caller's mode: subnormals kept
    const unsigned saved = _mm_getcsr();
    _mm_setcsr(csr);
    auto flushed = g.load()->run_once(feeds);
    const unsigned after = _mm_getcsr();
    LoadOptions lo;
    lo.params["numerics"] = "reproducible";
    auto kept = g.load({}, lo)->run_once(feeds);
    _mm_setcsr(saved);
    EXPECT_EQ(after, csr) << "B = " << B;
    for (int64_t i = 0; i < B; ++i) {
      EXPECT_EQ(flushed[0].data<float>()[i], 0.0f) << "B = " << B << ", row " << i;
      const float v = kept[0].data<float>()[i];
      EXPECT_TRUE(v > 0 && v < 1.17549435e-38f) << "B = " << B << ", row " << i << ": " << v;
    }
  }
#else
  GTEST_SKIP() << "no MXCSR on this CPU";
#endif
}

// layout = 1 (batch-major X [B, T, I], Y [B, T, D, H], states [B, D, H]) against the naive
// recurrence in layout 0: bidirectional LSTM without peepholes, 2 rows (row by row) and 20 (batched).
TEST(NnOps, LstmLayout1MatchesNaive) {
  std::mt19937 rng(9);
  const int64_t T = 5, I = 4, D = 2, H = 19, G = 4;
  for (int64_t B : {2, 20}) {
    const std::vector<int64_t> lens(static_cast<size_t>(B), T);
    Tensor x = rnd({T, B, I}, rng), w = rnd({D, G * H, I}, rng, 0.5f), r = rnd({D, G * H, H}, rng, 0.5f),
           bias = rnd({D, 2 * G * H}, rng, 0.5f), h0 = rnd({D, B, H}, rng), c0 = rnd({D, B, H}, rng);
    // The same data batch-major.
    Tensor xb = Tensor::empty(DType::F32, {B, T, I}), h0b = Tensor::empty(DType::F32, {B, D, H}), c0b = Tensor::empty(DType::F32, {B, D, H});
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < I; ++i) xb.data<float>()[(b * T + t) * I + i] = x.data<float>()[(t * B + b) * I + i];
    for (int64_t d = 0; d < D; ++d)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t k = 0; k < H; ++k) {
          h0b.data<float>()[(b * D + d) * H + k] = h0.data<float>()[(d * B + b) * H + k];
          c0b.data<float>()[(b * D + d) * H + k] = c0.data<float>()[(d * B + b) * H + k];
        }
    Graph g;
    g.input("x");
    g.input("h0");
    g.input("c0");
    g.init("w", w);
    g.init("r", r);
    g.init("b", bias);
    for (const char* o : {"y", "yh", "yc"}) g.output(o);
    auto* n = g.node("LSTM", {"x", "w", "r", "b", "", "h0", "c0"}, {"y", "yh", "yc"});
    one_int(n, "hidden_size", H);
    one_int(n, "layout", 1);
    str(n, "direction", "bidirectional");
    const std::vector<Tensor> feeds = {xb, h0b, c0b};
    auto res = g.load()->run_once(feeds);
    const auto want = naive_rnn(true, false, T, D, B, I, H, x, w, r, bias, lens, h0, &c0, nullptr);
    std::vector<double> y(want.y.size()), yh(want.yh.size()), yc(want.yc.size());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t d = 0; d < D; ++d)
        for (int64_t b = 0; b < B; ++b)
          for (int64_t k = 0; k < H; ++k) y[((b * T + t) * D + d) * H + k] = want.y[((t * D + d) * B + b) * H + k];
    for (int64_t d = 0; d < D; ++d)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t k = 0; k < H; ++k) {
          yh[(b * D + d) * H + k] = want.yh[(d * B + b) * H + k];
          yc[(b * D + d) * H + k] = want.yc[(d * B + b) * H + k];
        }
    const std::string what = "layout 1, B = " + std::to_string(B);
    EXPECT_EQ(res[0].dims(), (std::vector<int64_t>{B, T, D, H}));
    expect_close(res[0], y, what + " Y");
    expect_close(res[1], yh, what + " Y_h");
    expect_close(res[2], yc, what + " Y_c");
  }
}
