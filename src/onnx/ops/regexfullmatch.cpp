// RegexFullMatch(X: strings, pattern): true where the whole string matches. The pattern is compiled
// once at load with std::regex (ECMAScript grammar, which covers the RE2 subset these patterns use:
// classes, \w \W \d \b, alternation, bounded repetition, anchors).
#include <regex>

#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
QUIVER_REGISTER_OPS(regexfullmatch) {
  registry.add({"", "RegexFullMatch", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  ctx.expect_dtype(0, {DType::String});
                  const std::string pattern = ctx.attrs().req_string("pattern");
                  std::shared_ptr<const std::regex> re;
                  try {
                    re = std::make_shared<const std::regex>(pattern, std::regex::ECMAScript | std::regex::optimize);
                  } catch (const std::regex_error& e) {
                    ctx.fail("bad pattern '" + pattern + "': " + e.what());
                  }
                  ctx.set_output(0, DType::Bool, ctx.input(0).shape);
                  return make_kernel([re](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    Tensor& y = ec.output(0, DType::Bool, x.dims());
                    const std::string* px = x.data<std::string>();
                    bool* py = y.data<bool>();
                    for (int64_t i = 0, n = x.numel(); i < n; ++i) py[i] = std::regex_match(px[i], *re);
                  });
                }});
}
}  // namespace quiver::onnx
