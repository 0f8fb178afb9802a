// Reshape: 0 copies the input dim (unless allowzero=1), -1 is inferred. Output views the input.
#include "onnx/ops/shape_ops.hpp"
#include "onnx/emit.hpp"
namespace quiver::onnx {

std::vector<int64_t> reshape_dims(std::span<const int64_t> in, const std::vector<int64_t>& spec, bool allowzero,
                                         const ExecContext* ec, const BuildContext* bc) {
  auto fail = [&](const std::string& m) {
    if (ec) ec->fail(m);
    if (bc) bc->fail(m);
    throw_error(ErrorCode::InvalidArgument, m);
  };
  std::vector<int64_t> out(spec.size());
  int64_t known = 1;
  int infer = -1;
  for (size_t i = 0; i < spec.size(); ++i) {
    int64_t d = spec[i];
    if (d == 0 && !allowzero) {
      if (i >= in.size()) fail("shape entry 0 at position " + std::to_string(i) + " has no input dim to copy");
      d = in[i];
    }
    if (d == -1) {
      if (infer >= 0) fail("more than one -1 in shape");
      infer = static_cast<int>(i);
      out[i] = 1;
      continue;
    }
    if (d < 0) fail("invalid shape entry " + std::to_string(d));
    out[i] = d;
    known *= d;
  }
  const int64_t total = product(in);
  if (infer >= 0) {
    if (known == 0 || total % known != 0)
      fail("cannot reshape " + dims_to_string(in) + " to " + dims_to_string(spec));
    out[static_cast<size_t>(infer)] = total / known;
  } else if (known != total) {
    fail("cannot reshape " + dims_to_string(in) + " (" + std::to_string(total) + " elements) to " + dims_to_string(spec));
  }
  return out;
}

// quiver compile: a view of input 0 with the output's dims.
void emit_reshape(Emit& e) {
  if (e.num_inputs() < 2 || !e.has_input(1)) e.refuse("Reshape without a shape input (opset < 5) is not emitted");
  const int r = e.rank_out(0);
  const bool allowzero = e.attrs().get_int("allowzero", 0) != 0;
  e.read_values(1);
  e.dims_only(1);
  e.shape(std::string("if (const char* m = rt::reshape_dims(I0, x1, ") + std::to_string(r) + ", " +
          (allowzero ? "true" : "false") + ", O0)) fail(m);\n");
  e.view(0);
}

QUIVER_REGISTER_OPS(reshape) {
  OpDef d{"", "Reshape", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
            ctx.expect_inputs(2, 2);
            const bool allowzero = ctx.attrs().get_int("allowzero", 0) != 0;
            std::optional<std::vector<int64_t>> shape;
            auto spec = ctx.const_ints(1);
            if (spec && ctx.input(0).shape) {
              bool known = true;
              for (auto x : *ctx.input(0).shape) known &= x >= 0;
              if (known) shape = reshape_dims(*ctx.input(0).shape, *spec, allowzero, nullptr, &ctx);
            }
            if (!shape && spec) {
              // Rank is known even when some dims are dynamic.
              shape = std::vector<int64_t>(spec->size(), -1);
              for (size_t i = 0; i < spec->size(); ++i)
                if ((*spec)[i] > 0) (*shape)[i] = (*spec)[i];
            }
            // A shape computed at run time still has a known length: the output's rank.
            const auto& spec_shape = ctx.input(1).shape;
            if (!shape && spec_shape && spec_shape->size() == 1 && (*spec_shape)[0] >= 0)
              shape = std::vector<int64_t>(static_cast<size_t>((*spec_shape)[0]), -1);
            ctx.set_output(0, ctx.input_dtype(0), shape);
            if (spec) {
              return make_kernel([spec = *spec, allowzero](ExecContext& ec) {
                const Tensor& x = ec.input(0);
                ec.alias_output(0, 0, reshape_dims(x.dims(), spec, allowzero, &ec, nullptr));
              });
            }
            return make_kernel([allowzero](ExecContext& ec) {
              const Tensor& x = ec.input(0);
              ec.alias_output(0, 0, reshape_dims(x.dims(), read_ints(ec.input(1)), allowzero, &ec, nullptr));
            });
          }};
  d.aliases_input0 = true;
  registry.add(d, Repro::Exact);
}

QUIVER_REGISTER_EMITTERS(reshape) {
  emitters.add("", "Reshape", exact(emit_reshape));
}
}  // namespace quiver::onnx
