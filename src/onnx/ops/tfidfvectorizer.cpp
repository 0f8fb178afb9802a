// TfIdfVectorizer: counts the pool's n-grams (min_gram_length..max_gram_length, tokens up to
// max_skip_count apart; unigrams counted once, not per skip distance) in each row of X ([C] or
// [B, C], int32/int64/string) and writes TF, IDF (weight if present) or TFIDF (weight * count) into
// Y[..., ngram_indexes[j]] as float.
#include <unordered_map>

#include "onnx/ops/mathops.hpp"

namespace quiver::onnx {
namespace {

// Unambiguous key of a token sequence: length-prefixed tokens.
void append_token(std::string& key, const std::string& tok) {
  key += std::to_string(tok.size());
  key += ':';
  key += tok;
}

struct TfIdfSpec {
  int64_t min_n = 1, max_n = 1, max_skip = 0, out_size = 0;
  int mode = 1;  // 1 TF, 2 IDF, 3 TFIDF
  std::unordered_map<std::string, int64_t> grams;  // key -> output index
  std::vector<float> weights;
};

}  // namespace

QUIVER_REGISTER_OPS(tfidfvectorizer) {
  registry.add({"", "TfIdfVectorizer", [](BuildContext& ctx) -> std::unique_ptr<Kernel> {
                  ctx.expect_inputs(1, 1);
                  ctx.expect_dtype(0, {DType::I32, DType::I64, DType::String});
                  const auto& A = ctx.attrs();
                  auto spec = std::make_shared<TfIdfSpec>();
                  spec->min_n = A.req_int("min_gram_length");
                  spec->max_n = A.req_int("max_gram_length");
                  spec->max_skip = A.req_int("max_skip_count");
                  if (spec->min_n < 1 || spec->max_n < spec->min_n || spec->max_skip < 0)
                    ctx.fail("bad min_gram_length / max_gram_length / max_skip_count");
                  const std::string mode = A.req_string("mode");
                  if (mode == "TF") spec->mode = 1;
                  else if (mode == "IDF") spec->mode = 2;
                  else if (mode == "TFIDF") spec->mode = 3;
                  else ctx.fail("mode must be TF, IDF or TFIDF, got '" + mode + "'");
                  const auto counts = A.req_ints("ngram_counts");
                  const auto indexes = A.req_ints("ngram_indexes");
                  std::vector<std::string> pool = A.get_strings("pool_strings", {});
                  if (pool.empty())
                    for (int64_t v : A.get_ints("pool_int64s", {})) pool.push_back(std::to_string(v));
                  for (float w : A.get_floats("weights", {})) spec->weights.push_back(w);
                  if (indexes.empty()) ctx.fail("ngram_indexes is empty");
                  spec->out_size = *std::max_element(indexes.begin(), indexes.end()) + 1;
                  if (!spec->weights.empty() && static_cast<int64_t>(spec->weights.size()) < spec->out_size)
                    ctx.fail("weights has fewer entries than the output size");
                  size_t gram_id = 0;
                  for (size_t g = 0; g < counts.size(); ++g) {
                    const int64_t n = static_cast<int64_t>(g) + 1;
                    const int64_t start = counts[g];
                    const int64_t end = g + 1 < counts.size() ? counts[g + 1] : static_cast<int64_t>(pool.size());
                    if (start < 0 || end > static_cast<int64_t>(pool.size()) || end < start || (end - start) % n != 0)
                      ctx.fail("ngram_counts does not partition the pool into " + std::to_string(n) + "-grams");
                    for (int64_t p = start; p < end; p += n, ++gram_id) {
                      if (gram_id >= indexes.size()) ctx.fail("more n-grams in the pool than ngram_indexes entries");
                      if (n < spec->min_n || n > spec->max_n) continue;
                      std::string key;
                      for (int64_t k = 0; k < n; ++k) append_token(key, pool[static_cast<size_t>(p + k)]);
                      spec->grams.emplace(key, indexes[gram_id]);
                    }
                  }
                  std::optional<std::vector<int64_t>> os;
                  if (const auto& s = ctx.input(0).shape) {
                    if (s->size() == 2) os = std::vector<int64_t>{(*s)[0], spec->out_size};
                    else os = std::vector<int64_t>{spec->out_size};
                  }
                  ctx.set_output(0, DType::F32, os);
                  return make_kernel([spec](ExecContext& ec) {
                    const Tensor& x = ec.input(0);
                    if (x.rank() > 2) ec.fail("input must be [C] or [B, C], got " + dims_to_string(x.dims()), "X");
                    const int64_t rows = x.rank() == 2 ? x.dim(0) : 1;
                    const int64_t C = x.rank() == 0 ? 1 : x.dim(x.rank() - 1);
                    std::vector<std::string> tok(static_cast<size_t>(x.numel()));
                    if (x.dtype() == DType::String) {
                      for (size_t i = 0; i < tok.size(); ++i) tok[i] = x.data<std::string>()[i];
                    } else {
                      const auto v = read_ints(x);
                      for (size_t i = 0; i < tok.size(); ++i) tok[i] = std::to_string(v[i]);
                    }
                    std::vector<int64_t> freq(static_cast<size_t>(rows * spec->out_size), 0);
                    for (int64_t r = 0; r < rows; ++r) {
                      const std::string* row = tok.data() + r * C;
                      int64_t* f = freq.data() + r * spec->out_size;
                      for (int64_t skip = 1; skip <= spec->max_skip + 1; ++skip) {
                        const int64_t min_n = skip > 1 ? std::max<int64_t>(spec->min_n, 2) : spec->min_n;
                        if (min_n > spec->max_n) break;
                        for (int64_t s = 0; s < C; ++s) {
                          std::string key;
                          for (int64_t n = 1; n <= spec->max_n; ++n) {
                            const int64_t pos = s + (n - 1) * skip;
                            if (pos >= C) break;
                            append_token(key, row[pos]);
                            if (n < min_n) continue;
                            const auto it = spec->grams.find(key);
                            if (it != spec->grams.end()) ++f[it->second];
                          }
                        }
                      }
                    }
                    std::vector<int64_t> od;
                    if (x.rank() == 2) od.push_back(rows);
                    od.push_back(spec->out_size);
                    Tensor& y = ec.output(0, DType::F32, od);
                    float* py = y.data<float>();
                    const bool has_w = !spec->weights.empty();
                    for (int64_t r = 0; r < rows; ++r)
                      for (int64_t i = 0; i < spec->out_size; ++i) {
                        const int64_t c = freq[static_cast<size_t>(r * spec->out_size + i)];
                        const float w = has_w ? spec->weights[static_cast<size_t>(i)] : 1.f;
                        float v = static_cast<float>(c);
                        if (spec->mode == 2) v = c > 0 ? w : 0.f;
                        else if (spec->mode == 3) v = w * static_cast<float>(c);
                        py[r * spec->out_size + i] = v;
                      }
                  });
                }});
}
}  // namespace quiver::onnx
