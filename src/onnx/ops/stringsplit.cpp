// StringSplit(X, delimiter, maxsplit) -> Y [..., max substrings] (padded with ""), Z int64 counts.
// Like Python's str.split: no/empty delimiter splits on runs of whitespace and drops empty pieces; a
// delimiter keeps empty pieces between consecutive delimiters. maxsplit limits the number of splits.
#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
namespace {

std::vector<std::string> split_one(const std::string& s, const std::string& delim, int64_t maxsplit) {
  std::vector<std::string> parts;
  int64_t splits = 0;
  if (delim.empty()) {
    size_t i = 0;
    const auto ws = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    while (i < s.size()) {
      while (i < s.size() && ws(s[i])) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && splits >= maxsplit) {
        size_t e = s.size();
        while (e > i && ws(s[e - 1])) --e;
        parts.push_back(s.substr(i, e - i));
        break;
      }
      size_t j = i;
      while (j < s.size() && !ws(s[j])) ++j;
      parts.push_back(s.substr(i, j - i));
      ++splits;
      i = j;
    }
    return parts;
  }
  size_t start = 0;
  while (true) {
    const size_t p = (maxsplit >= 0 && splits >= maxsplit) ? std::string::npos : s.find(delim, start);
    if (p == std::string::npos) {
      parts.push_back(s.substr(start));
      break;
    }
    parts.push_back(s.substr(start, p - start));
    ++splits;
    start = p + delim.size();
  }
  return parts;
}

}  // namespace

QUIVER_REGISTER_OPS(stringsplit) {
  registry.add({"", "StringSplit", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  ctx.expect_dtype(0, {DType::String});
                  const std::string delim = ctx.attrs().get_string("delimiter", "");
                  const int64_t maxsplit = ctx.attrs().has("maxsplit") ? ctx.attrs().get_int("maxsplit", -1) : -1;
                  ctx.set_output(0, DType::String);
                  if (ctx.num_outputs() > 1) ctx.set_output(1, DType::I64, ctx.input(0).shape);
                  return make_kernel([delim, maxsplit](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    const int64_t n = x.numel();
                    const std::string* px = x.data<std::string>();
                    std::vector<std::vector<std::string>> parts(static_cast<size_t>(n));
                    int64_t width = 0;
                    for (int64_t i = 0; i < n; ++i) {
                      parts[static_cast<size_t>(i)] = split_one(px[i], delim, maxsplit);
                      width = std::max<int64_t>(width, static_cast<int64_t>(parts[static_cast<size_t>(i)].size()));
                    }
                    std::vector<int64_t> yd = x.dims();
                    yd.push_back(width);
                    Tensor& y = ec.output(0, DType::String, yd);
                    std::string* py = y.data<std::string>();
                    for (int64_t i = 0; i < n; ++i) {
                      const auto& p = parts[static_cast<size_t>(i)];
                      for (int64_t j = 0; j < width; ++j)
                        py[i * width + j] = j < static_cast<int64_t>(p.size()) ? p[static_cast<size_t>(j)] : std::string();
                    }
                    if (ec.num_outputs() > 1 && ec.wants_output(1)) {
                      Tensor& z = ec.output(1, DType::I64, x.dims());
                      for (int64_t i = 0; i < n; ++i) z.data<int64_t>()[i] = static_cast<int64_t>(parts[static_cast<size_t>(i)].size());
                    }
                  });
                }});
}
}  // namespace quiver::onnx
