// Forest: compiles the flat-array description into the evaluation layout and evaluates it.
//
// Layout: every tree's nodes are stored breadth-first and contiguously (16-byte nodes, four per
// cache line). Every test is reduced to "go left iff x < value" with x rounded to float32 (children
// swapped and thresholds rounded exactly where the source format compares differently), plus a
// default-left bit for NaN. Leaves point to themselves, so a tree is evaluated by exactly
// depth(tree) steps with no data-dependent branch; several trees (single row) or several rows
// (batch) are walked at once to overlap their memory latencies.
#include "quiver/forest/forest.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <deque>
#include <iomanip>
#include <limits>
#include <sstream>

#include "core/repro/repro.hpp"
#include "quiver/core/error.hpp"

namespace quiver::forest {

std::string_view split_mode_name(SplitMode m) {
  switch (m) {
    case SplitMode::Leaf: return "LEAF";
    case SplitMode::LT: return "BRANCH_LT";
    case SplitMode::LEQ: return "BRANCH_LEQ";
    case SplitMode::GT: return "BRANCH_GT";
    case SplitMode::GTE: return "BRANCH_GTE";
    case SplitMode::EQ: return "BRANCH_EQ";
    case SplitMode::NEQ: return "BRANCH_NEQ";
    case SplitMode::CatIn: return "CAT_IN";
  }
  return "?";
}

SplitMode split_mode_from_onnx(std::string_view s) {
  if (s == "BRANCH_LEQ") return SplitMode::LEQ;
  if (s == "BRANCH_LT") return SplitMode::LT;
  if (s == "BRANCH_GTE") return SplitMode::GTE;
  if (s == "BRANCH_GT") return SplitMode::GT;
  if (s == "BRANCH_EQ") return SplitMode::EQ;
  if (s == "BRANCH_NEQ") return SplitMode::NEQ;
  if (s == "LEAF") return SplitMode::Leaf;
  throw_error(ErrorCode::InvalidArgument, "unknown tree node mode '" + std::string(s) + "'");
}

std::string_view transform_name(Transform t) {
  switch (t) {
    case Transform::Identity: return "identity";
    case Transform::Sigmoid: return "sigmoid";
    case Transform::Softmax: return "softmax";
    case Transform::SoftmaxClass: return "softmax-argmax";
    case Transform::Exp: return "exp";
    case Transform::Hinge: return "hinge (margin > 0)";
    case Transform::TmvaGrad: return "tmva-grad (2/(1+exp(-2F))-1)";
  }
  return "?";
}

int32_t TreeArrays::add_split(int32_t f, double thr, SplitMode m, bool dl) {
  int32_t id = static_cast<int32_t>(mode.size());
  feature.push_back(f);
  threshold.push_back(thr);
  left.push_back(-1);
  right.push_back(-1);
  default_left.push_back(dl ? 1 : 0);
  mode.push_back(m);
  leaf_value.resize(leaf_value.size() + static_cast<size_t>(leaf_width), 0.0);
  return id;
}

int32_t TreeArrays::add_leaf(double value) {
  int32_t id = add_split(0, 0.0, SplitMode::Leaf, false);
  leaf_value[static_cast<size_t>(id) * static_cast<size_t>(leaf_width)] = value;
  return id;
}

namespace {

// Smallest float >= t (x < t  <=>  x < round_up(t) for every float x).
float round_up_float(double t) {
  if (std::isnan(t)) return std::numeric_limits<float>::quiet_NaN();
  if (t > static_cast<double>(std::numeric_limits<float>::max())) return std::numeric_limits<float>::infinity();
  if (t < -static_cast<double>(std::numeric_limits<float>::max()))
    return std::isinf(t) ? -std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::max();
  float f = static_cast<float>(t);
  if (static_cast<double>(f) < t) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}
// Largest float <= t.
float round_down_float(double t) { return -round_up_float(-t); }
// x <= t  <=>  x < next_up(round_down(t)).
float leq_to_lt(double t) {
  float d = round_down_float(t);
  if (d == std::numeric_limits<float>::infinity()) return d;  // x <= +inf: all non-NaN; x < inf misses inf only
  return std::nextafter(d, std::numeric_limits<float>::infinity());
}

[[noreturn]] void fail(const std::string& source, size_t tree, int64_t node, const std::string& msg) {
  std::string where = "tree " + std::to_string(tree);
  if (node >= 0) where += ", node " + std::to_string(node);
  throw_error(ErrorCode::Parse, msg, {"", where, "", source});
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// build
// ---------------------------------------------------------------------------------------------
Forest Forest::build(const ForestSpec& spec, const std::string& source) {
  Forest f;
  if (spec.n_features < 0 || spec.n_features > static_cast<int>(kFeatureMask))
    throw_error(ErrorCode::Parse, "number of features " + std::to_string(spec.n_features) + " out of range", {"", "", "", source});
  if (spec.n_outputs < 1 || spec.n_outputs > 65535)
    throw_error(ErrorCode::Parse, "number of outputs " + std::to_string(spec.n_outputs) + " out of range", {"", "", "", source});
  f.n_features_ = spec.n_features;
  f.n_outputs_ = spec.n_outputs;
  f.transform_ = spec.transform;
  f.sigmoid_alpha_ = spec.sigmoid_alpha;
  f.average_ = spec.average;
  f.objective_ = spec.objective;
  f.format_ = spec.format;
  f.feature_names_ = spec.feature_names;
  f.feature_types_ = spec.feature_types;
  f.category_names_ = spec.category_names;
  f.notes_ = spec.notes;
  f.base_margin_.assign(static_cast<size_t>(spec.n_outputs), 0.0);
  if (!spec.base_margin.empty()) {
    if (spec.base_margin.size() == 1) {
      std::fill(f.base_margin_.begin(), f.base_margin_.end(), spec.base_margin[0]);
    } else if (spec.base_margin.size() == static_cast<size_t>(spec.n_outputs)) {
      f.base_margin_ = spec.base_margin;
    } else {
      throw_error(ErrorCode::Parse, "base score has " + std::to_string(spec.base_margin.size()) + " entries for " +
                                        std::to_string(spec.n_outputs) + " outputs", {"", "", "", source});
    }
    for (double b : f.base_margin_)
      if (!std::isfinite(b)) throw_error(ErrorCode::Parse, "base score is not finite in margin space", {"", "", "", source});
  }

  // spec tree index -> first compiled tree index (vector-leaf trees become one tree per output)
  std::vector<int32_t> compiled_index(spec.trees.size() + 1, 0);
  std::vector<int32_t> order;
  std::deque<int32_t> queue;
  std::vector<int32_t> new_id;
  std::vector<int32_t> depth_of;
  for (size_t t = 0; t < spec.trees.size(); ++t) {
    compiled_index[t] = static_cast<int32_t>(f.tree_root_.size());
    const TreeArrays& tr = spec.trees[t];
    const size_t n = tr.mode.size();
    if (n == 0) fail(source, t, -1, "tree has no nodes");
    if (tr.feature.size() != n || tr.threshold.size() != n || tr.left.size() != n || tr.right.size() != n ||
        tr.default_left.size() != n)
      fail(source, t, -1, "tree arrays have inconsistent lengths");
    if (tr.leaf_width != 1 && tr.leaf_width != spec.n_outputs)
      fail(source, t, -1, "leaf vector width " + std::to_string(tr.leaf_width) + " does not match " +
                              std::to_string(spec.n_outputs) + " outputs");
    if (tr.leaf_value.size() != n * static_cast<size_t>(tr.leaf_width))
      fail(source, t, -1, "leaf value array has the wrong length");
    if (tr.leaf_width == 1 && (tr.output < 0 || tr.output >= spec.n_outputs))
      fail(source, t, -1, "tree output " + std::to_string(tr.output) + " out of range (model has " +
                              std::to_string(spec.n_outputs) + " outputs)");
    if (!std::isfinite(tr.weight)) fail(source, t, -1, "tree weight is not finite");
    bool has_cat = false;
    for (auto m : tr.mode) has_cat |= (m == SplitMode::CatIn);
    if (has_cat && (tr.cat_begin.size() != n || tr.cat_size.size() != n))
      fail(source, t, -1, "categorical split without category arrays");

    // breadth-first order from the root; validates children, finds cycles and depth
    order.clear();
    new_id.assign(n, -1);
    depth_of.assign(n, 0);
    queue.clear();
    queue.push_back(0);
    new_id[0] = 0;
    int max_d = 0;
    while (!queue.empty()) {
      int32_t i = queue.front();
      queue.pop_front();
      order.push_back(i);
      if (tr.mode[i] == SplitMode::Leaf) continue;
      for (int32_t c : {tr.left[i], tr.right[i]}) {
        if (c < 0 || static_cast<size_t>(c) >= n)
          fail(source, t, i, "child index " + std::to_string(c) + " out of range (tree has " + std::to_string(n) + " nodes)");
        if (new_id[c] >= 0) fail(source, t, i, "node " + std::to_string(c) + " is reached twice (not a tree)");
        new_id[c] = static_cast<int32_t>(order.size() + queue.size());
        depth_of[c] = depth_of[i] + 1;
        max_d = std::max(max_d, depth_of[c]);
        queue.push_back(c);
      }
    }
    if (max_d > 255) fail(source, t, -1, "tree depth " + std::to_string(max_d) + " exceeds 255");
    // validate splits
    for (int32_t i : order) {
      if (tr.mode[i] == SplitMode::Leaf) {
        for (int k = 0; k < tr.leaf_width; ++k)
          if (!std::isfinite(tr.leaf_value[static_cast<size_t>(i) * tr.leaf_width + k]))
            fail(source, t, i, "leaf value is not finite");
        continue;
      }
      if (tr.feature[i] < 0 || tr.feature[i] >= spec.n_features)
        fail(source, t, i, "split feature " + std::to_string(tr.feature[i]) + " out of range (model has " +
                               std::to_string(spec.n_features) + " features)");
      if (tr.mode[i] != SplitMode::CatIn && std::isnan(tr.threshold[i])) fail(source, t, i, "split threshold is NaN");
      if (tr.mode[i] == SplitMode::CatIn) {
        if (static_cast<size_t>(tr.cat_begin[i]) + tr.cat_size[i] > tr.categories.size())
          fail(source, t, i, "category set out of range");
        for (uint32_t k = 0; k < tr.cat_size[i]; ++k) {
          int32_t c = tr.categories[tr.cat_begin[i] + k];
          if (c < 0 || c >= (1 << 28)) fail(source, t, i, "category " + std::to_string(c) + " out of range [0, 2^28)");
        }
      }
    }

    int n_copies = tr.leaf_width == 1 ? 1 : spec.n_outputs;
    for (int copy = 0; copy < n_copies; ++copy) {
      int out = tr.leaf_width == 1 ? tr.output : copy;
      if (tr.leaf_width > 1 && !spec.average) {  // skip outputs this vector-leaf tree never touches
        bool any = false;
        for (int32_t i : order)
          if (tr.mode[i] == SplitMode::Leaf && tr.leaf_value[static_cast<size_t>(i) * tr.leaf_width + copy] != 0.0) any = true;
        if (!any) continue;
      }
      const int32_t base = static_cast<int32_t>(f.nodes_.size());
      if (static_cast<size_t>(base) + order.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
        fail(source, t, -1, "forest too large");
      f.tree_root_.push_back(base);
      f.tree_depth_.push_back(static_cast<uint8_t>(max_d));
      f.tree_output_.push_back(static_cast<uint16_t>(out));
      f.max_depth_ = std::max(f.max_depth_, max_d);
      for (int32_t i : order) {
        FlatNode nd{};
        const int32_t self = base + new_id[i];
        const SplitMode m = tr.mode[i];
        if (m == SplitMode::Leaf) {
          double v = tr.weight * tr.leaf_value[static_cast<size_t>(i) * tr.leaf_width + (tr.leaf_width == 1 ? 0 : copy)];
          nd.value = static_cast<float>(v);
          nd.meta = 0;
          nd.left = nd.right = self;
          f.nodes_.push_back(nd);
          continue;
        }
        int32_t l = base + new_id[tr.left[i]], r = base + new_id[tr.right[i]];
        bool dl = tr.default_left[i] != 0;
        bool zero_missing = !tr.zero_is_missing.empty() && tr.zero_is_missing[i];
        uint32_t meta = static_cast<uint32_t>(tr.feature[i]);
        double thr = tr.threshold[i];
        bool swap = false;
        switch (m) {
          case SplitMode::LT: nd.value = round_up_float(thr); break;
          case SplitMode::LEQ: nd.value = leq_to_lt(thr); break;
          case SplitMode::GTE: nd.value = round_up_float(thr); swap = true; break;   // !(x < t)
          case SplitMode::GT: nd.value = leq_to_lt(thr); swap = true; break;         // !(x <= t)
          case SplitMode::EQ:
          case SplitMode::NEQ: {
            float tf = static_cast<float>(thr);
            nd.value = static_cast<double>(tf) == thr ? tf : std::numeric_limits<float>::quiet_NaN();
            meta |= kSpecial | kEq;
            swap = (m == SplitMode::NEQ);
            break;
          }
          case SplitMode::CatIn: {
            meta |= kSpecial | kCat;
            if (!tr.cat_invalid_left.empty() && tr.cat_invalid_left[i]) meta |= kCatInvalidLeft;
            int32_t maxc = -1;
            for (uint32_t k = 0; k < tr.cat_size[i]; ++k) maxc = std::max(maxc, tr.categories[tr.cat_begin[i] + k]);
            uint32_t nbits = static_cast<uint32_t>(maxc + 1);
            uint32_t wbegin = static_cast<uint32_t>(f.cat_words_.size());
            if (f.cat_words_.size() + (nbits + 31) / 32 > (size_t(1) << 25))
              fail(source, t, i, "category bitsets exceed 128 MiB in total");
            f.cat_words_.resize(f.cat_words_.size() + (nbits + 31) / 32, 0u);
            for (uint32_t k = 0; k < tr.cat_size[i]; ++k) {
              uint32_t c = static_cast<uint32_t>(tr.categories[tr.cat_begin[i] + k]);
              f.cat_words_[wbegin + c / 32] |= 1u << (c % 32);
            }
            uint32_t set_index = static_cast<uint32_t>(f.cat_sets_.size() / 2);
            f.cat_sets_.push_back(wbegin);
            f.cat_sets_.push_back(nbits);
            std::memcpy(&nd.value, &set_index, 4);
            break;
          }
          case SplitMode::Leaf: break;
        }
        if (zero_missing && m != SplitMode::CatIn) meta |= kSpecial | kZeroMissing;
        if (swap) {
          std::swap(l, r);
          dl = !dl;
        }
        if (dl) meta |= kDefaultLeft;
        if (meta & kSpecial) {
          f.has_special_ = true;
          nd.left = l;
          nd.right = r;
        } else {
          // Plain node, one comparison: go to `right` iff (s * x) < value, else (and for NaN) `left`.
          //   NaN -> right child: left iff x < t       => s = +1, value = t, (left, right) = (r, l)
          //   NaN -> left child:  right iff x >= t, i.e. -x < -prev(t)
          //                                             => s = -1 (sign bit in meta), value = -prev(t)
          if (!dl) {
            nd.left = r;
            nd.right = l;
          } else {
            nd.value = -std::nextafter(nd.value, -std::numeric_limits<float>::infinity());
            nd.left = l;
            nd.right = r;
          }
        }
        nd.meta = meta;
        f.nodes_.push_back(nd);
      }
    }
  }
  compiled_index[spec.trees.size()] = static_cast<int32_t>(f.tree_root_.size());

  // rounds
  if (spec.round_ptr.empty()) {
    f.round_ptr_.resize(f.tree_root_.size() + 1);
    for (size_t i = 0; i <= f.tree_root_.size(); ++i) f.round_ptr_[i] = static_cast<int32_t>(i);
  } else {
    if (spec.round_ptr.front() != 0 || spec.round_ptr.back() != static_cast<int32_t>(spec.trees.size()))
      throw_error(ErrorCode::Parse, "round index (iteration_indptr) does not cover the " +
                                        std::to_string(spec.trees.size()) + " trees", {"", "", "", source});
    for (size_t r = 0; r + 1 < spec.round_ptr.size(); ++r)
      if (spec.round_ptr[r] > spec.round_ptr[r + 1])
        throw_error(ErrorCode::Parse, "round index (iteration_indptr) is not increasing at round " + std::to_string(r),
                    {"", "", "", source});
    for (int32_t p : spec.round_ptr) f.round_ptr_.push_back(compiled_index[static_cast<size_t>(p)]);
  }
  if (f.round_ptr_.size() < 2) f.round_ptr_ = {0, 0};  // zero trees: one empty round
  int32_t nr = static_cast<int32_t>(f.round_ptr_.size() - 1);
  f.round_begin_ = spec.default_round_begin;
  f.round_end_ = spec.default_round_end < 0 ? nr : std::min(spec.default_round_end, nr);
  if (f.round_begin_ < 0 || f.round_begin_ > f.round_end_)
    throw_error(ErrorCode::InvalidArgument, "round range [" + std::to_string(spec.default_round_begin) + ", " +
                                                std::to_string(spec.default_round_end) + ") is invalid for " +
                                                std::to_string(nr) + " rounds", {"", "", "", source});
  f.nodes_.shrink_to_fit();
  f.tree_root_.shrink_to_fit();
  f.tree_depth_.shrink_to_fit();
  f.tree_output_.shrink_to_fit();
  f.round_ptr_.shrink_to_fit();
  f.cat_words_.shrink_to_fit();
  f.cat_sets_.shrink_to_fit();
  f.single_output_ = f.n_outputs_ == 1;
  return f;
}

int Forest::category_code(int feat, std::string_view text) const {
  if (!has_category_names(feat)) return -1;
  const auto& names = category_names_[static_cast<size_t>(feat)];
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == text) return static_cast<int>(i);
  return -1;
}

size_t Forest::memory_bytes() const {
  size_t b = sizeof(Forest);
  b += nodes_.capacity() * sizeof(FlatNode) + tree_root_.capacity() * 4 + tree_depth_.capacity() +
       tree_output_.capacity() * 2 + round_ptr_.capacity() * 4 + cat_words_.capacity() * 4 + cat_sets_.capacity() * 4 +
       base_margin_.capacity() * 8;
  auto strs = [](const std::vector<std::string>& v) {
    size_t s = v.capacity() * sizeof(std::string);
    for (auto& x : v) s += x.capacity() > 15 ? x.capacity() + 1 : 0;
    return s;
  };
  b += strs(feature_names_) + strs(feature_types_);
  for (auto& c : category_names_) b += strs(c) + sizeof(c);
  for (auto& [k, v] : notes_) b += sizeof(k) * 2 + k.capacity() + v.capacity();
  b += objective_.capacity() + format_.capacity();
  return b;
}

// ---------------------------------------------------------------------------------------------
// evaluation
// ---------------------------------------------------------------------------------------------
namespace {

struct Ctx {
  const FlatNode* nodes;
  const uint32_t* cat_words;
  const uint32_t* cat_sets;
};

__attribute__((noinline)) int32_t step_special(const Ctx& c, const FlatNode& n, float x) {
  const bool nan = x != x;
  const bool dl = (n.meta & Forest::kDefaultLeft) != 0;
  bool left;
  if (n.meta & Forest::kCat) {
    if (nan) {
      left = dl;
    } else {
      uint32_t set;
      std::memcpy(&set, &n.value, 4);
      uint32_t wbegin = c.cat_sets[2 * set], nbits = c.cat_sets[2 * set + 1];
      if (!(x >= 0.0f) || x >= static_cast<float>(nbits)) {
        left = (n.meta & Forest::kCatInvalidLeft) != 0;
      } else {
        uint32_t code = static_cast<uint32_t>(x);
        left = ((c.cat_words[wbegin + code / 32] >> (code % 32)) & 1u) != 0;
      }
    }
  } else if (n.meta & Forest::kEq) {
    left = nan ? dl : (x == n.value);
  } else {  // zero counts as missing (LightGBM missing_type=Zero)
    left = (nan || std::fabs(x) <= 1e-35f) ? dl : (x < n.value);
  }
  return left ? n.left : n.right;
}

template <bool Special>
inline __attribute__((always_inline)) int32_t step(const Ctx& c, const float* row, int32_t i) {
  const FlatNode& n = c.nodes[i];
  const float x = row[n.meta & Forest::kFeatureMask];
  if constexpr (Special) {
    if (__builtin_expect((n.meta & Forest::kSpecial) != 0, 0)) return step_special(c, n, x);
  }
  // Branch-free, one comparison: flip the sign of x when the node's sign bit is set (see build());
  // NaN compares false and takes `left`, which build() made the node's missing-value child.
  const float xs = std::bit_cast<float>(std::bit_cast<uint32_t>(x) ^ (n.meta & 0x80000000u));
  const int32_t go = -static_cast<int32_t>(xs < n.value);
  return n.left + ((n.right - n.left) & go);
}

}  // namespace

std::pair<int32_t, int32_t> Forest::tree_range(int32_t rb, int32_t re) const {
  const int32_t nr = static_cast<int32_t>(round_ptr_.size() - 1);
  if (rb < 0) rb = round_begin_;
  if (re < 0) re = round_end_;
  if (re > nr || rb > re)
    throw_error(ErrorCode::InvalidArgument, "round range [" + std::to_string(rb) + ", " + std::to_string(re) +
                                                ") is invalid: the model has " + std::to_string(nr) + " rounds");
  return {round_ptr_[static_cast<size_t>(rb)], round_ptr_[static_cast<size_t>(re)]};
}

namespace {
// Trees per block in batch evaluation: a block's nodes (64 depth-6 trees = 128 KiB) stay in L2 while
// every row of the batch walks them.
constexpr int32_t kTreeBlock = 64;

// Sum of the leaves of trees [t0, t1) for one row (single-output forests). Eight walks at a time:
// their loads and compares are independent, so their latencies overlap.
template <bool Special>
inline double block_sum(const Ctx& c, const int32_t* roots, const uint8_t* depth, const float* row, int32_t t0,
                        int32_t t1) {
  double s = 0.0;
  int32_t t = t0;
  for (; t + 8 <= t1; t += 8) {
    int32_t i[8];
    int d = 0;
    for (int k = 0; k < 8; ++k) {
      i[k] = roots[t + k];
      d = std::max<int>(d, depth[t + k]);
    }
    for (int level = 0; level < d; ++level)
      for (int k = 0; k < 8; ++k) i[k] = step<Special>(c, row, i[k]);
    double e = static_cast<double>(c.nodes[i[0]].value) + c.nodes[i[1]].value;
    double g = static_cast<double>(c.nodes[i[2]].value) + c.nodes[i[3]].value;
    double h = static_cast<double>(c.nodes[i[4]].value) + c.nodes[i[5]].value;
    double j = static_cast<double>(c.nodes[i[6]].value) + c.nodes[i[7]].value;
    s += (e + g) + (h + j);
  }
  for (; t < t1; ++t) {
    int32_t i = roots[t];
    for (int level = 0, d = depth[t]; level < d; ++level) i = step<Special>(c, row, i);
    s += c.nodes[i].value;
  }
  return s;
}

// Multi-output: adds each tree's leaf to acc[output(tree)].
template <bool Special>
inline void block_multi(const Ctx& c, const int32_t* roots, const uint8_t* depth, const uint16_t* outs, const float* row,
                        int32_t t0, int32_t t1, double* acc) {
  int32_t t = t0;
  for (; t + 8 <= t1; t += 8) {
    int32_t i[8];
    int d = 0;
    for (int k = 0; k < 8; ++k) {
      i[k] = roots[t + k];
      d = std::max<int>(d, depth[t + k]);
    }
    for (int level = 0; level < d; ++level)
      for (int k = 0; k < 8; ++k) i[k] = step<Special>(c, row, i[k]);
    for (int k = 0; k < 8; ++k) acc[outs[t + k]] += c.nodes[i[k]].value;
  }
  for (; t < t1; ++t) {
    int32_t i = roots[t];
    for (int level = 0, d = depth[t]; level < d; ++level) i = step<Special>(c, row, i);
    acc[outs[t]] += c.nodes[i].value;
  }
}
}  // namespace

template <bool Special>
double Forest::row_sum_single(const float* row, int32_t t0, int32_t t1) const {
  const Ctx c{nodes_.data(), cat_words_.data(), cat_sets_.data()};
  double s = 0.0;
  for (int32_t b = t0; b < t1; b += kTreeBlock)
    s += block_sum<Special>(c, tree_root_.data(), tree_depth_.data(), row, b, std::min(t1, b + kTreeBlock));
  return s;
}

// acc: n x n_outputs sums (zeroed by the caller). Blocked: trees in L2-sized blocks, every row walks a
// block before the next block is touched; per row, eight trees are walked at a time.
template <bool Special>
void Forest::accumulate(const float* rows, size_t n, double* acc, int32_t t0, int32_t t1) const {
  const Ctx c{nodes_.data(), cat_words_.data(), cat_sets_.data()};
  const size_t nf = static_cast<size_t>(n_features_);
  const size_t no = static_cast<size_t>(n_outputs_);
  const int32_t* roots = tree_root_.data();
  const uint8_t* depth = tree_depth_.data();
  constexpr size_t kRowBlock = 256;  // rows per block: their features stay in L1/L2 across tree blocks
  for (size_t r0 = 0; r0 < n; r0 += kRowBlock) {
    const size_t r1 = std::min(n, r0 + kRowBlock);
    for (int32_t b = t0; b < t1; b += kTreeBlock) {
      const int32_t e = std::min(t1, b + kTreeBlock);
      size_t r = r0;
      if constexpr (!Special) {
        // Eight rows walk the same tree together: exact per-tree depth (no steps wasted on shallow trees)
        // and independent chains. (Forests with categorical / special nodes keep the per-row walk of
        // eight trees at a time, which measured faster for them.)
        const uint16_t* outs = tree_output_.data();
        for (; r + 8 <= r1; r += 8) {
          const float* rp[8];
          for (int k = 0; k < 8; ++k) rp[k] = rows + (r + static_cast<size_t>(k)) * nf;
          double* ar = acc + r * no;
          for (int32_t t = b; t < e; ++t) {
            int32_t i[8];
            const int32_t root = roots[t];
            for (int k = 0; k < 8; ++k) i[k] = root;
            for (int level = 0, d = depth[t]; level < d; ++level)
              for (int k = 0; k < 8; ++k) i[k] = step<Special>(c, rp[k], i[k]);
            const size_t o = outs[t];
            for (int k = 0; k < 8; ++k) ar[static_cast<size_t>(k) * no + o] += c.nodes[i[k]].value;
          }
        }
      }
      if (single_output_ && !repro_) {
        for (; r < r1; ++r) acc[r] += block_sum<Special>(c, roots, depth, rows + r * nf, b, e);
      } else {
        for (; r < r1; ++r)
          block_multi<Special>(c, roots, depth, tree_output_.data(), rows + r * nf, b, e, acc + r * no);
      }
    }
  }
}

void Forest::transform_row(const float* m, float* p) const {
  const int no = n_outputs_;
  if (repro_) {  // float, the engine's own functions
    switch (transform_) {
      case Transform::Sigmoid:
        for (int k = 0; k < no; ++k) p[k] = static_cast<float>(sigmoid_alpha_ * m[k]);
        repro_->sigmoid(p, p, no);
        return;
      case Transform::Exp: repro_->exp(m, p, no); return;
      case Transform::TmvaGrad: repro_->tanh(m, p, no); return;  // 2 / (1 + e^-2m) - 1 = tanh m
      case Transform::Softmax: repro_->softmax(m, p, 1, no, 1, false); return;
      default: break;  // exact: identity, hinge, argmax
    }
  }
  switch (transform_) {
    case Transform::Identity:
      for (int k = 0; k < no; ++k) p[k] = m[k];
      break;
    case Transform::Sigmoid:
      for (int k = 0; k < no; ++k) p[k] = static_cast<float>(1.0 / (1.0 + std::exp(-sigmoid_alpha_ * m[k])));
      break;
    case Transform::Exp:
      for (int k = 0; k < no; ++k) p[k] = static_cast<float>(std::exp(static_cast<double>(m[k])));
      break;
    case Transform::Hinge:
      for (int k = 0; k < no; ++k) p[k] = m[k] > 0.0f ? 1.0f : 0.0f;
      break;
    case Transform::TmvaGrad:
      for (int k = 0; k < no; ++k) p[k] = static_cast<float>(2.0 / (1.0 + std::exp(-2.0 * m[k])) - 1.0);
      break;
    case Transform::Softmax: {
      double mx = -std::numeric_limits<double>::infinity();
      for (int k = 0; k < no; ++k) mx = std::max(mx, static_cast<double>(m[k]));
      double sum = 0.0;
      for (int k = 0; k < no; ++k) sum += std::exp(static_cast<double>(m[k]) - mx);
      for (int k = 0; k < no; ++k) p[k] = static_cast<float>(std::exp(static_cast<double>(m[k]) - mx) / sum);
      break;
    }
    case Transform::SoftmaxClass: {
      int best = 0;
      for (int k = 1; k < no; ++k)
        if (m[k] > m[best]) best = k;
      p[0] = static_cast<float>(best);
      break;
    }
  }
}

void Forest::finish(double* acc, size_t n, int32_t t0, int32_t t1, float* margin_out, float* pred_out) const {
  const size_t no = static_cast<size_t>(n_outputs_);
  double sbuf[64];
  std::vector<double> svec;
  double* scale = sbuf;
  if (no > 64) {
    svec.resize(no);
    scale = svec.data();
  }
  std::fill(scale, scale + no, 1.0);
  if (average_) {
    std::fill(scale, scale + no, 0.0);
    for (int32_t t = t0; t < t1; ++t) scale[tree_output_[t]] += 1.0;
    for (size_t k = 0; k < no; ++k) scale[k] = scale[k] > 0 ? 1.0 / scale[k] : 1.0;
  }
  float mbuf[64];
  std::vector<float> mvec;
  float* m = mbuf;
  if (no > 64) {
    mvec.resize(no);
    m = mvec.data();
  }
  const size_t npc = static_cast<size_t>(n_prediction_columns());
  for (size_t r = 0; r < n; ++r) {
    for (size_t k = 0; k < no; ++k) m[k] = static_cast<float>(base_margin_[k] + scale[k] * acc[r * no + k]);
    if (margin_out) std::memcpy(margin_out + r * no, m, no * sizeof(float));
    if (pred_out) {
      if (!repro_ && (transform_ == Transform::Sigmoid || transform_ == Transform::Exp || transform_ == Transform::TmvaGrad)) {
        // transform from the double sum (no extra float rounding of the margin)
        for (size_t k = 0; k < no; ++k) {
          double mm = base_margin_[k] + scale[k] * acc[r * no + k];
          double v = transform_ == Transform::Sigmoid ? 1.0 / (1.0 + std::exp(-sigmoid_alpha_ * mm))
                     : transform_ == Transform::Exp   ? std::exp(mm)
                                                      : 2.0 / (1.0 + std::exp(-2.0 * mm)) - 1.0;
          pred_out[r * npc + k] = static_cast<float>(v);
        }
      } else {
        transform_row(m, pred_out + r * npc);
      }
    }
  }
}

void Forest::predict_both(const float* rows, size_t n, float* margin_out, float* pred_out, int32_t rb,
                          int32_t re) const {
  auto [t0, t1] = tree_range(rb, re);
  const size_t no = static_cast<size_t>(n_outputs_);
  constexpr size_t kChunk = 4096;  // bounded scratch
  double stack_acc[64];
  std::vector<double> heap;
  for (size_t r0 = 0; r0 < n; r0 += kChunk) {
    const size_t m = std::min(kChunk, n - r0);
    double* acc;
    if (m * no <= 64) {
      acc = stack_acc;
    } else {
      heap.resize(m * no);
      acc = heap.data();
    }
    std::fill(acc, acc + m * no, 0.0);
    const float* rows_c = rows + r0 * static_cast<size_t>(n_features_);
    if (has_special_) accumulate<true>(rows_c, m, acc, t0, t1);
    else accumulate<false>(rows_c, m, acc, t0, t1);
    finish(acc, m, t0, t1, margin_out ? margin_out + r0 * no : nullptr,
           pred_out ? pred_out + r0 * static_cast<size_t>(n_prediction_columns()) : nullptr);
  }
}

void Forest::predict(const float* rows, size_t n, float* out, bool margin, int32_t rb, int32_t re) const {
  if (margin) predict_both(rows, n, out, nullptr, rb, re);
  else predict_both(rows, n, nullptr, out, rb, re);
}

float Forest::predict_row(const float* row, bool margin) const {
  if (single_output_ && !average_ && !repro_) {
    const int32_t t0 = round_ptr_[static_cast<size_t>(round_begin_)];
    const int32_t t1 = round_ptr_[static_cast<size_t>(round_end_)];
    double s = base_margin_[0] + (has_special_ ? row_sum_single<true>(row, t0, t1) : row_sum_single<false>(row, t0, t1));
    if (margin) return static_cast<float>(s);
    switch (transform_) {
      case Transform::Identity: return static_cast<float>(s);
      case Transform::Sigmoid: return static_cast<float>(1.0 / (1.0 + std::exp(-sigmoid_alpha_ * s)));
      case Transform::Exp: return static_cast<float>(std::exp(s));
      case Transform::Hinge: return s > 0.0 ? 1.0f : 0.0f;
      case Transform::TmvaGrad: return static_cast<float>(2.0 / (1.0 + std::exp(-2.0 * s)) - 1.0);
      case Transform::Softmax: return 1.0f;
      case Transform::SoftmaxClass: return 0.0f;
    }
  }
  float buf[64];
  std::vector<float> v;
  float* p = buf;
  if (n_outputs_ > 64) {
    v.resize(static_cast<size_t>(n_outputs_));
    p = v.data();
  }
  predict_row(row, p, margin);
  return p[0];
}

void Forest::predict_row(const float* row, float* out, bool margin) const {
  predict(row, 1, out, margin);
}

void Forest::describe(std::ostream& os) const {
  size_t n_special = 0, n_cat = 0, n_leaves = 0;
  for (auto& nd : nodes_) {
    if (nd.left == nd.right) ++n_leaves;
    else if (nd.meta & kSpecial) {
      ++n_special;
      if (nd.meta & kCat) ++n_cat;
    }
  }
  os << "forest:\n";
  os << "  format:      " << format_ << "\n";
  os << "  objective:   " << objective_ << "\n";
  os << "  transform:   " << transform_name(transform_) << "\n";
  os << "  trees:       " << n_trees() << " (" << n_rounds() << " rounds; default rounds [" << round_begin_ << ", "
     << round_end_ << "))\n";
  os << "  max depth:   " << max_depth_ << "\n";
  os << "  nodes:       " << nodes_.size() << " (" << n_leaves << " leaves, " << n_cat << " categorical splits)\n";
  os << "  node bytes:  " << node_bytes() << "  (forest total " << memory_bytes() << ")\n";
  os << "  outputs:     " << n_outputs_ << (transform_ == Transform::Softmax || transform_ == Transform::SoftmaxClass
                                                 ? " (classes)" : "") << "\n";
  os << "  base margin:";
  for (size_t k = 0; k < base_margin_.size() && k < 16; ++k) os << " " << std::setprecision(9) << base_margin_[k];
  if (base_margin_.size() > 16) os << " ...";
  os << "\n  features:    " << n_features_ << "\n";
  for (auto& [k, v] : notes_) os << "  " << k << ": " << v << "\n";
  const size_t show = std::min<size_t>(feature_names_.size(), 64);
  for (size_t i = 0; i < show; ++i) {
    os << "    [" << i << "] " << feature_names_[i];
    if (i < feature_types_.size() && !feature_types_[i].empty()) os << " (" << feature_types_[i] << ")";
    if (has_category_names(static_cast<int>(i))) os << " categories: " << category_names_[i].size();
    os << "\n";
  }
  if (feature_names_.size() > show) os << "    ... " << feature_names_.size() - show << " more\n";
}

std::string_view format_name(Format f) {
  switch (f) {
    case Format::Auto: return "auto";
    case Format::XGBoostJson: return "xgboost-json";
    case Format::XGBoostUbj: return "xgboost-ubj";
    case Format::LightGBM: return "lightgbm";
    case Format::TmvaXml: return "tmva-xml";
  }
  return "?";
}

}  // namespace quiver::forest
