// StringNormalizer: drops the elements of a [C] or [1, C] string tensor that are stopwords (compared
// case-insensitively unless is_case_sensitive=1), then applies case_change_action LOWER / UPPER /
// NONE (ASCII; `locale` is not interpreted). If every element is dropped the output is [""] ([1] or
// [1, 1]).
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
namespace {

std::string ascii_case(std::string s, int mode) {  // 1 lower, 2 upper
  for (char& c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (mode == 1) c = static_cast<char>(std::tolower(u));
    else if (mode == 2) c = static_cast<char>(std::toupper(u));
  }
  return s;
}

}  // namespace

QUIVER_REGISTER_OPS(stringnormalizer) {
  registry.add({"", "StringNormalizer", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  ctx.expect_dtype(0, {DType::String});
                  const std::string action = ctx.attrs().get_string("case_change_action", "NONE");
                  int mode = 0;
                  if (action == "LOWER") mode = 1;
                  else if (action == "UPPER") mode = 2;
                  else if (action != "NONE") ctx.fail("case_change_action must be LOWER, UPPER or NONE, got '" + action + "'");
                  const bool sensitive = ctx.attrs().get_int("is_case_sensitive", 0) != 0;
                  std::vector<std::string> stops = ctx.attrs().get_strings("stopwords", {});
                  if (!sensitive)
                    for (auto& w : stops) w = ascii_case(w, 1);
                  ctx.set_output(0, DType::String);
                  return make_kernel([mode, sensitive, stops](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    if (!(x.rank() == 1 || (x.rank() == 2 && x.dim(0) == 1)))
                      ec.fail("input must be [C] or [1, C], got " + dims_to_string(x.dims()), "X");
                    const std::string* px = x.data<std::string>();
                    std::vector<std::string> kept;
                    for (int64_t i = 0, n = x.numel(); i < n; ++i) {
                      const std::string key = sensitive ? px[i] : ascii_case(px[i], 1);
                      if (std::find(stops.begin(), stops.end(), key) != stops.end()) continue;
                      kept.push_back(ascii_case(px[i], mode));
                    }
                    if (kept.empty()) kept.emplace_back();
                    const int64_t c = static_cast<int64_t>(kept.size());
                    Tensor& y = x.rank() == 1 ? ec.output(0, DType::String, {c}) : ec.output(0, DType::String, {1, c});
                    std::string* py = y.data<std::string>();
                    for (int64_t i = 0; i < c; ++i) py[i] = kept[static_cast<size_t>(i)];
                  });
                }});
}
}  // namespace quiver::onnx
