// The Reduce* family: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
// ReduceLogSum, ReduceLogSumExp, ReduceSumSquare.
//
// Axes: an `axes` attribute before opset 13 (ReduceSum) / 18 (the others), the optional second input
// from then on. No axes = reduce everything, unless noop_with_empty_axes=1 (then the op is an
// identity). keepdims (default 1) keeps reduced dims as size 1.
// Accumulation is in double for floating types (F16/BF16 included) and in 64-bit integers for integer
// types; bool ReduceMax / ReduceMin are any / all. Empty reductions give the identity of the op:
// 0 (Sum, L1, L2, SumSquare), 1 (Prod), -inf / +inf or the integer limits (Max / Min), -inf (LogSum,
// LogSumExp), NaN (Mean of floats).
#include "onnx/ops/mathops.hpp"
#include "onnx/emit.hpp"

namespace quiver::onnx {
namespace {

enum class RKind { Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare };

struct LseAcc {
  double m, s;
};

// Accumulator type for element type T.
template <class T>
using acc_base_t = std::conditional_t<std::is_floating_point_v<compute_t<T>>, double,
                                      std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;

template <RKind K, class T>
struct Reducer {
  using B = acc_base_t<T>;
  using Acc = std::conditional_t<K == RKind::LogSumExp, LseAcc, B>;

  static Acc init() {
    if constexpr (K == RKind::LogSumExp) {
      return {-std::numeric_limits<double>::infinity(), 0.0};
    } else if constexpr (K == RKind::Max) {
      if constexpr (std::is_floating_point_v<B>) return -std::numeric_limits<B>::infinity();
      else return static_cast<B>(std::numeric_limits<T>::lowest());
    } else if constexpr (K == RKind::Min) {
      if constexpr (std::is_floating_point_v<B>) return std::numeric_limits<B>::infinity();
      else return static_cast<B>(std::numeric_limits<T>::max());
    } else if constexpr (K == RKind::Prod) {
      return B(1);
    } else {
      return B(0);
    }
  }
  static Acc step(Acc a, T xv) {
    const B x = static_cast<B>(to_compute(xv));
    if constexpr (K == RKind::Sum || K == RKind::Mean || K == RKind::LogSum) {
      return a + x;
    } else if constexpr (K == RKind::Max) {
      if constexpr (std::is_floating_point_v<B>) return (x > a || std::isnan(x)) ? x : a;
      else return x > a ? x : a;
    } else if constexpr (K == RKind::Min) {
      if constexpr (std::is_floating_point_v<B>) return (x < a || std::isnan(x)) ? x : a;
      else return x < a ? x : a;
    } else if constexpr (K == RKind::Prod) {
      return a * x;
    } else if constexpr (K == RKind::L1) {
      if constexpr (std::is_unsigned_v<B>) return a + x;
      else return a + (x < B(0) ? B(-x) : x);
    } else if constexpr (K == RKind::L2 || K == RKind::SumSquare) {
      return a + x * x;
    } else {  // LogSumExp, online with a running maximum
      const double xd = static_cast<double>(x);
      if (std::isnan(xd) || std::isnan(a.m)) return {std::numeric_limits<double>::quiet_NaN(), 1.0};
      if (xd <= a.m) return {a.m, a.s + std::exp(xd - a.m)};
      if (std::isinf(xd)) return {xd, 1.0};
      return {xd, a.s * std::exp(a.m - xd) + 1.0};
    }
  }
  // Combines two partial results (not used for LogSumExp).
  static Acc merge(Acc a, Acc b) {
    if constexpr (K == RKind::Max) {
      if constexpr (std::is_floating_point_v<B>) return (b > a || std::isnan(b)) ? b : a;
      else return b > a ? b : a;
    } else if constexpr (K == RKind::Min) {
      if constexpr (std::is_floating_point_v<B>) return (b < a || std::isnan(b)) ? b : a;
      else return b < a ? b : a;
    } else if constexpr (K == RKind::Prod) {
      return a * b;
    } else if constexpr (K == RKind::LogSumExp) {
      return a;
    } else {
      return a + b;
    }
  }
  static T finish(Acc a, int64_t count) {
    if constexpr (K == RKind::Mean) {
      if constexpr (std::is_floating_point_v<B>) return from_compute<T>(a / static_cast<double>(count));
      else return count == 0 ? T(0) : static_cast<T>(a / static_cast<B>(count));
    } else if constexpr (K == RKind::L2) {
      return from_compute<T>(std::sqrt(static_cast<double>(a)));
    } else if constexpr (K == RKind::LogSum) {
      return from_compute<T>(std::log(static_cast<double>(a)));
    } else if constexpr (K == RKind::LogSumExp) {
      if (a.s == 0.0) return from_compute<T>(-std::numeric_limits<double>::infinity());
      return from_compute<T>(a.m + std::log(a.s));
    } else {
      if constexpr (std::is_floating_point_v<B>) return from_compute<T>(a);
      else return static_cast<T>(a);
    }
  }
};

// Reduces x (dims) over the axes flagged in `red` into y (laid out as the kept dims, in order).
template <RKind K, class T>
void reduce_run(ExecContext& ec, const T* x, T* y, const std::vector<int64_t>& dims, const std::vector<char>& red) {
  using R = Reducer<K, T>;
  using Acc = typename R::Acc;
  // Merge runs of adjacent dims with the same reduced/kept status, dropping size-1 dims.
  std::vector<int64_t> gsize;
  std::vector<char> gred;
  int64_t count = 1, out_n = 1;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (red[d]) count *= dims[d];
    else out_n *= dims[d];
    if (dims[d] == 1) continue;
    if (!gsize.empty() && gred.back() == red[d]) gsize.back() *= dims[d];
    else { gsize.push_back(dims[d]); gred.push_back(red[d]); }
  }
  if (out_n == 0) return;
  if (count == 0) {
    const T v = R::finish(R::init(), 0);
    for (int64_t i = 0; i < out_n; ++i) y[i] = v;
    return;
  }
  size_t nred = 0;
  for (char r : gred) nred += r ? 1 : 0;
  if (nred == 0) {
    for (int64_t i = 0; i < out_n; ++i) y[i] = R::finish(R::step(R::init(), x[i]), 1);
    return;
  }
  if (nred == 1) {
    // [outer kept] [reduced] [inner kept]
    size_t ri = 0;
    while (!gred[ri]) ++ri;
    const int64_t outer = product(gsize, 0, ri), rn = gsize[ri], inner = product(gsize, ri + 1);
    if (inner == 1) {
      for (int64_t o = 0; o < outer; ++o) {
        const T* px = x + o * rn;
        Acc a = R::init();
        int64_t j = 0;
        if constexpr (K != RKind::LogSumExp) {
          // Four independent partial results so the loop is not one long dependency chain.
          Acc a4[4] = {R::init(), R::init(), R::init(), R::init()};
          for (; j + 4 <= rn; j += 4)
            for (int k = 0; k < 4; ++k) a4[k] = R::step(a4[k], px[j + k]);
          a = R::merge(R::merge(a4[0], a4[1]), R::merge(a4[2], a4[3]));
        }
        for (; j < rn; ++j) a = R::step(a, px[j]);
        y[o] = R::finish(a, rn);
      }
      return;
    }
    Acc* acc = static_cast<Acc*>(ec.scratch(static_cast<size_t>(inner) * sizeof(Acc)));
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) acc[i] = R::init();
      for (int64_t j = 0; j < rn; ++j) {
        const T* px = x + (o * rn + j) * inner;
        for (int64_t i = 0; i < inner; ++i) acc[i] = R::step(acc[i], px[i]);
      }
      T* py = y + o * inner;
      for (int64_t i = 0; i < inner; ++i) py[i] = R::finish(acc[i], rn);
    }
    return;
  }
  // General: walk the input in order, adding each element into its output slot.
  const size_t g = gsize.size();
  std::vector<int64_t> ostride(g, 0);
  int64_t s = 1;
  for (size_t d = g; d-- > 0;)
    if (!gred[d]) { ostride[d] = s; s *= gsize[d]; }
  Acc* acc = static_cast<Acc*>(ec.scratch(static_cast<size_t>(out_n) * sizeof(Acc)));
  for (int64_t i = 0; i < out_n; ++i) acc[i] = R::init();
  std::vector<int64_t> idx(g, 0);
  const int64_t inner = gsize[g - 1], istep = ostride[g - 1];
  const int64_t n = count * out_n;
  int64_t off = 0;
  for (int64_t i = 0; i < n; i += inner) {
    for (int64_t j = 0; j < inner; ++j) acc[off + j * istep] = R::step(acc[off + j * istep], x[i + j]);
    for (size_t d = g - 1; d-- > 0;) {
      if (++idx[d] < gsize[d]) { off += ostride[d]; break; }
      off -= ostride[d] * (gsize[d] - 1);
      idx[d] = 0;
    }
  }
  for (int64_t i = 0; i < out_n; ++i) y[i] = R::finish(acc[i], count);
}

// Resolves axes (may be empty) to a per-dim flag; false from the return when the op is a no-op.
bool resolve_axes(ExecContext* ec, const BuildContext* bc, const std::vector<int64_t>& axes, size_t rank, bool noop_empty,
                  std::vector<char>& red) {
  red.assign(rank, axes.empty() ? 1 : 0);
  if (axes.empty()) return !noop_empty;
  for (int64_t a : axes) {
    const int64_t n = norm_axis(a, static_cast<int64_t>(rank), ec, bc);
    red[static_cast<size_t>(n)] = 1;
  }
  return true;
}

template <RKind K>
KernelBuilder reduce_builder(int axes_input_opset) {
  return [axes_input_opset](BuildContext& ctx) -> std::unique_ptr<Kernel> {
    const bool axes_as_input = ctx.opset() >= axes_input_opset;
    ctx.expect_inputs(1, axes_as_input ? 2 : 1);
    const DType t = ctx.input_dtype(0);
    // Bool: ReduceMax (any) / ReduceMin (all) from opset 20.
    const bool bool_ok = t == DType::Bool && (K == RKind::Max || K == RKind::Min);
    if (!dtype_is_float(t) && !dtype_is_integer(t) && !bool_ok)
      ctx.fail("unsupported dtype " + dt_str(t), ctx.input_name(0), ErrorCode::Unsupported);
    const bool keepdims = ctx.attrs().get_int("keepdims", 1) != 0;
    const bool noop_empty = ctx.attrs().get_int("noop_with_empty_axes", 0) != 0;
    std::optional<std::vector<int64_t>> axes;  // nullopt: only known at run time
    if (!axes_as_input) {
      axes = ctx.attrs().get_ints("axes", {});
    } else if (!ctx.has_input(1)) {
      axes = std::vector<int64_t>{};
    } else {
      if (ctx.input_dtype(1) != DType::I64) ctx.fail("axes must be int64", ctx.input_name(1));
      axes = ctx.const_ints(1);
    }
    // Static output shape when the axes and the input rank are known.
    std::optional<std::vector<int64_t>> oshape;
    const auto& ishape = ctx.input(0).shape;
    if (axes && ishape) {
      std::vector<char> red;
      if (!resolve_axes(nullptr, &ctx, *axes, ishape->size(), noop_empty, red)) {
        oshape = ishape;
      } else {
        oshape.emplace();
        for (size_t d = 0; d < ishape->size(); ++d) {
          if (!red[d]) oshape->push_back((*ishape)[d]);
          else if (keepdims) oshape->push_back(1);
        }
      }
    }
    ctx.set_output(0, t, oshape);
    return make_kernel([t, keepdims, noop_empty, axes](ExecContext& ec) {
      const Tensor& x = ec.input(0);
      std::vector<int64_t> ax;
      if (axes) ax = *axes;
      else if (ec.has_input(1)) ax = read_ints(ec.input(1));
      std::vector<char> red;
      const bool reduce = resolve_axes(&ec, nullptr, ax, x.rank(), noop_empty, red);
      std::vector<int64_t> od;
      for (size_t d = 0; d < x.rank(); ++d) {
        if (!reduce || !red[d]) od.push_back(x.dim(d));
        else if (keepdims) od.push_back(1);
      }
      Tensor& y = ec.output(0, t, od);
      if (!reduce) {  // noop_with_empty_axes: the input unchanged
        copy_elements(t, x.raw(), y.raw(), static_cast<size_t>(x.numel()));
        return;
      }
      if (t == DType::Bool) {  // bools are single bytes holding 0 or 1: max = any, min = all
        if constexpr (K == RKind::Max || K == RKind::Min) {
          static_assert(sizeof(bool) == 1);
          reduce_run<K, uint8_t>(ec, static_cast<const uint8_t*>(x.raw()), static_cast<uint8_t*>(y.raw()), x.dims(), red);
        }
        return;
      }
      visit_numeric_half(t, [&](auto tag) {
        using T = typename decltype(tag)::type;
        reduce_run<K, T>(ec, x.data<T>(), y.data<T>(), x.dims(), red);
      });
    });
  };
}

}  // namespace

// quiver compile: reductions over axes known at compile time (attribute or constant input).
template <RKind K>
Emitter emit_reduce(int axes_input_opset) {
  return [axes_input_opset](Emit& e) {
    const DType t = e.in(0).dtype;
    if (t != DType::F32 && !(K != RKind::Mean && (t == DType::I64 || t == DType::I32))) e.refuse("element type not emitted");
    const int r = e.rank_in(0);
    const std::vector<int64_t> axes = e.axes(axes_input_opset, r);
    const bool keep = e.attrs().get_int("keepdims", 1) != 0;
    if (axes.empty() && e.attrs().get_int("noop_with_empty_axes", 0) != 0) e.refuse("noop_with_empty_axes");
    std::vector<bool> mask(static_cast<size_t>(r), axes.empty());
    for (int64_t a : axes) mask[static_cast<size_t>(a)] = true;
    std::vector<std::string> d;
    std::string m, cnt = "1";
    for (int i = 0; i < r; ++i) {
      const bool red = mask[static_cast<size_t>(i)];
      m += (i ? ", " : "") + std::string(red ? "true" : "false");
      if (red) cnt += " * I0.d[" + std::to_string(i) + "]";
      if (!red) d.push_back("I0.d[" + std::to_string(i) + "]");
      else if (keep) d.push_back("1");
    }
    e.set_dims(0, d);
    const std::string ty = e.tin(0);
    if (e.reproducible()) {
      // The kernel's own order and double accumulation (rr::reduce); integer sums would wrap
      // differently in the emitted type than in the kernel's 64 bits.
      if (t != DType::F32) e.refuse("reproducible emission is for float only");
      static const char* const kinds[] = {"rr::kSum", "rr::kMean", "rr::kMax", "rr::kMin"};
      e.scratch("8 * (O0.n() > 0 ? O0.n() : 1)");
      e.compute("static const bool mask[] = {" + (m.empty() ? std::string("false") : m) + "};\nrr::reduce<" +
                kinds[static_cast<int>(K)] + ">(x0, I0, mask, y0, static_cast<double*>(scratch));\n");
      e.bitwise();
      return;
    }
    std::string init, f;
    switch (K) {
      case RKind::Sum: case RKind::Mean: init = ty + "(0)"; f = "a + b"; break;
      case RKind::Max: init = "std::numeric_limits<" + ty + ">::lowest()"; f = "a > b ? a : b"; break;
      default: init = "std::numeric_limits<" + ty + ">::max()"; f = "a < b ? a : b"; break;
    }
    const std::string fn = e.functor(e.op(), ty + " operator()(" + ty + " a, " + ty + " b) const { return " + f + "; }");
    std::string c = "static const bool mask[] = {" + (m.empty() ? std::string("false") : m) + "};\nrt::reduce(x0, I0, mask, y0, " +
                    init + ", " + fn + "{});\n";
    if (K == RKind::Mean)
      c += "const int64_t cnt = " + cnt + ";\nconst int64_t no = O0.n();\nfor (int64_t j = 0; j < no; ++j) y0[j] /= static_cast<float>(cnt);\n";
    e.compute(c);
  };
}

QUIVER_REGISTER_OPS(reduce) {
  registry.add({"", "ReduceSum", reduce_builder<RKind::Sum>(13)}, Repro::Exact);
  registry.add({"", "ReduceMean", reduce_builder<RKind::Mean>(18)}, Repro::Exact);
  registry.add({"", "ReduceMax", reduce_builder<RKind::Max>(18)}, Repro::Exact);
  registry.add({"", "ReduceMin", reduce_builder<RKind::Min>(18)}, Repro::Exact);
  registry.add({"", "ReduceProd", reduce_builder<RKind::Prod>(18)});
  registry.add({"", "ReduceL1", reduce_builder<RKind::L1>(18)});
  registry.add({"", "ReduceL2", reduce_builder<RKind::L2>(18)});
  registry.add({"", "ReduceLogSum", reduce_builder<RKind::LogSum>(18)});
  registry.add({"", "ReduceLogSumExp", reduce_builder<RKind::LogSumExp>(18)});
  registry.add({"", "ReduceSumSquare", reduce_builder<RKind::SumSquare>(18)});
}


QUIVER_REGISTER_EMITTERS(reduce) {
  emitters.add("", "ReduceSum", emit_reduce<RKind::Sum>(13));
  emitters.add("", "ReduceMean", emit_reduce<RKind::Mean>(18));
  emitters.add("", "ReduceMax", emit_reduce<RKind::Max>(18));
  emitters.add("", "ReduceMin", emit_reduce<RKind::Min>(18));
}
}  // namespace quiver::onnx
