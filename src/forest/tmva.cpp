// TMVA BDT weight files (MethodBDT XML, optionally gzip-compressed), as CMS ships them.
//
// Response (TMVA MethodBDT):
//   Grad:               2 / (1 + exp(-2 F)) - 1,  F = sum of leaf responses (`res`)
//   AdaBoost / Bagging: sum_t w_t * leaf_t / sum_t w_t, leaf = nType (+1/-1) with UseYesNoLeaf, else purity
// Node test (DecisionTreeNode::GoesRight): right iff (x >= Cut) == (cType == 1); NaN compares false.
#include <expat.h>
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "quiver/core/error.hpp"
#include "quiver/forest/forest.hpp"

namespace quiver::forest {

std::string gunzip(std::string_view bytes, const std::string& source, size_t limit);

namespace {

struct XNode {
  int32_t id;
  int ivar = -1;
  double cut = 0;
  int ctype = 1;
  double res = 0, purity = 0;
  int ntype = 0;
  int32_t left = -1, right = -1;
  int64_t line = 0;
};

struct State {
  XML_Parser parser = nullptr;
  std::string error;
  int64_t error_line = 0;
  std::string error_where;
  // options
  std::string method, boost_type, analysis_type;
  bool yes_no_leaf = false;
  bool in_option = false;
  std::string option_name, option_text;
  std::vector<std::pair<std::string, std::string>> options;
  std::vector<std::string> variables;
  int nvar_declared = -1;
  // trees
  bool in_weights = false;
  std::vector<std::vector<XNode>> trees;
  std::vector<double> boost_weights;
  std::vector<int32_t> stack;  // node ids of the current tree
  bool in_tree = false;
  int max_nodes_per_tree = 1 << 22;

  void fail(const std::string& msg) {
    if (!error.empty()) return;
    error = msg;
    error_line = static_cast<int64_t>(XML_GetCurrentLineNumber(parser));
    if (in_tree) {
      error_where = "tree " + std::to_string(trees.size() - 1);
      if (!trees.empty()) error_where += ", node " + std::to_string(trees.back().size());
    }
    XML_StopParser(parser, XML_FALSE);
  }
};

const char* attr(const char** atts, const char* name) {
  for (int i = 0; atts[i]; i += 2)
    if (std::strcmp(atts[i], name) == 0) return atts[i + 1];
  return nullptr;
}

bool to_double(const char* s, double& out) {
  if (!s || !*s) return false;
  char* end = nullptr;
  out = std::strtod(s, &end);
  while (*end == ' ' || *end == '\t') ++end;
  return *end == '\0';
}
bool to_int(const char* s, int& out) {
  double d;
  if (!to_double(s, d) || d != std::floor(d) || d < -1e9 || d > 1e9) return false;
  out = static_cast<int>(d);
  return true;
}

void XMLCALL on_start(void* ud, const char* name, const char** atts) {
  auto* st = static_cast<State*>(ud);
  if (!st->error.empty()) return;
  if (std::strcmp(name, "MethodSetup") == 0) {
    if (const char* m = attr(atts, "Method")) st->method = m;
  } else if (std::strcmp(name, "Info") == 0) {
    const char* n = attr(atts, "name");
    const char* v = attr(atts, "value");
    if (n && v && std::strcmp(n, "AnalysisType") == 0) st->analysis_type = v;
  } else if (std::strcmp(name, "Option") == 0) {
    st->in_option = true;
    const char* n = attr(atts, "name");
    st->option_name = n ? n : "";
    st->option_text.clear();
  } else if (std::strcmp(name, "Variables") == 0) {
    if (const char* n = attr(atts, "NVar")) {
      if (!to_int(n, st->nvar_declared) || st->nvar_declared < 0 || st->nvar_declared > (1 << 20))
        st->fail("bad Variables NVar");
    }
  } else if (std::strcmp(name, "Variable") == 0 && !st->in_weights) {
    int idx = -1;
    if (!to_int(attr(atts, "VarIndex"), idx) || idx != static_cast<int>(st->variables.size())) {
      st->fail("Variable VarIndex is missing or out of order");
      return;
    }
    const char* e = attr(atts, "Expression");
    if (!e) e = attr(atts, "Label");
    st->variables.emplace_back(e ? e : "var" + std::to_string(idx));
  } else if (std::strcmp(name, "Weights") == 0) {
    st->in_weights = true;
  } else if (std::strcmp(name, "BinaryTree") == 0) {
    if (!st->in_weights) { st->fail("BinaryTree outside <Weights>"); return; }
    if (st->in_tree) { st->fail("nested BinaryTree"); return; }
    double w = 1.0;
    if (const char* bw = attr(atts, "boostWeight"); bw && !to_double(bw, w)) { st->fail("bad boostWeight"); return; }
    st->trees.emplace_back();
    st->boost_weights.push_back(w);
    st->stack.clear();
    st->in_tree = true;
  } else if (std::strcmp(name, "Node") == 0) {
    if (!st->in_tree) { st->fail("Node outside <BinaryTree>"); return; }
    auto& tree = st->trees.back();
    if (static_cast<int>(tree.size()) >= st->max_nodes_per_tree) { st->fail("too many nodes in tree"); return; }
    XNode nd;
    nd.id = static_cast<int32_t>(tree.size());
    nd.line = static_cast<int64_t>(XML_GetCurrentLineNumber(st->parser));
    int ncoef = 0;
    if (const char* nc = attr(atts, "NCoef"); nc && (!to_int(nc, ncoef) || ncoef != 0)) {
      if (ncoef > 0) {
        st->fail("Fisher-discriminant cuts (UseFisherCuts, NCoef > 0) are not supported");
      } else {
        st->fail("bad NCoef");
      }
      return;
    }
    if (!to_int(attr(atts, "IVar"), nd.ivar)) { st->fail("Node without a valid IVar"); return; }
    if (!to_double(attr(atts, "Cut"), nd.cut)) { st->fail("Node without a valid Cut"); return; }
    if (!to_int(attr(atts, "cType"), nd.ctype)) { st->fail("Node without a valid cType"); return; }
    if (const char* r = attr(atts, "res"); r && !to_double(r, nd.res)) { st->fail("bad res"); return; }
    if (const char* p = attr(atts, "purity"); p && !to_double(p, nd.purity)) { st->fail("bad purity"); return; }
    if (const char* t = attr(atts, "nType"); t && !to_int(t, nd.ntype)) { st->fail("bad nType"); return; }
    const char* pos = attr(atts, "pos");
    if (!st->stack.empty()) {
      XNode& parent = tree[static_cast<size_t>(st->stack.back())];
      if (pos && pos[0] == 'l' && parent.left < 0) parent.left = nd.id;
      else if (pos && pos[0] == 'r' && parent.right < 0) parent.right = nd.id;
      else { st->fail(std::string("unexpected child position '") + (pos ? pos : "") + "'"); return; }
    } else if (!tree.empty()) {
      st->fail("second root node in a tree");
      return;
    }
    tree.push_back(nd);
    st->stack.push_back(nd.id);
  }
}

void XMLCALL on_end(void* ud, const char* name) {
  auto* st = static_cast<State*>(ud);
  if (!st->error.empty()) return;
  if (std::strcmp(name, "Option") == 0 && st->in_option) {
    st->in_option = false;
    auto trim = [](std::string s) {
      size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    st->options.emplace_back(st->option_name, trim(st->option_text));
  } else if (std::strcmp(name, "Node") == 0) {
    if (!st->stack.empty()) st->stack.pop_back();
  } else if (std::strcmp(name, "BinaryTree") == 0) {
    st->in_tree = false;
  } else if (std::strcmp(name, "Weights") == 0) {
    st->in_weights = false;
  }
}

void XMLCALL on_text(void* ud, const char* s, int len) {
  auto* st = static_cast<State*>(ud);
  if (st->in_option && st->option_text.size() < 4096) st->option_text.append(s, static_cast<size_t>(len));
}

}  // namespace

ForestSpec parse_tmva_xml(std::string_view bytes, const std::string& source) {
  std::string inflated;
  if (bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f && static_cast<unsigned char>(bytes[1]) == 0x8b) {
    inflated = gunzip(bytes, source, size_t(1) << 30);
    bytes = inflated;
  }
  // CMS files put whitespace before the XML declaration, which XML forbids: skip it.
  size_t start = 0;
  while (start < bytes.size() && (bytes[start] == ' ' || bytes[start] == '\t' || bytes[start] == '\n' || bytes[start] == '\r'))
    ++start;
  bytes.remove_prefix(start);

  State st;
  st.parser = XML_ParserCreate(nullptr);
  if (!st.parser) throw_error(ErrorCode::ResourceExhausted, "cannot create XML parser", {"", "", "", source});
  XML_SetUserData(st.parser, &st);
  XML_SetElementHandler(st.parser, on_start, on_end);
  XML_SetCharacterDataHandler(st.parser, on_text);
  XML_Status status = XML_STATUS_OK;
  // feed in chunks (XML_Parse takes an int length)
  size_t off = 0;
  constexpr size_t kChunk = 1 << 24;
  do {
    size_t len = std::min(kChunk, bytes.size() - off);
    bool final = off + len >= bytes.size();
    status = XML_Parse(st.parser, bytes.data() + off, static_cast<int>(len), final ? 1 : 0);
    off += len;
    if (status != XML_STATUS_OK) break;
  } while (off < bytes.size());
  if (status != XML_STATUS_OK && st.error.empty()) {
    std::string msg = std::string("malformed XML: ") + XML_ErrorString(XML_GetErrorCode(st.parser));
    int64_t line = static_cast<int64_t>(XML_GetCurrentLineNumber(st.parser));
    XML_ParserFree(st.parser);
    throw_error(ErrorCode::Parse, msg + " (line " + std::to_string(line) + ")", {"", "", "", source, line});
  }
  XML_ParserFree(st.parser);
  if (!st.error.empty())
    throw_error(ErrorCode::Parse, st.error + " (line " + std::to_string(st.error_line) + ")",
                {"", st.error_where, "", source, st.error_line});

  if (st.method.rfind("BDT", 0) != 0)
    throw_error(ErrorCode::Unsupported, "not a TMVA BDT weight file (MethodSetup Method='" + st.method + "')", {"", "", "", source});
  for (auto& [k, v] : st.options) {
    if (k == "BoostType") st.boost_type = v;
    if (k == "UseYesNoLeaf") st.yes_no_leaf = (v == "True" || v == "true" || v == "1");
  }
  if (!st.analysis_type.empty() && st.analysis_type != "Classification")
    throw_error(ErrorCode::Unsupported, "TMVA analysis type '" + st.analysis_type + "' is not supported (only Classification)",
                {"", "", "", source});
  const bool grad = st.boost_type == "Grad";
  if (!grad && st.boost_type != "AdaBoost" && st.boost_type != "Bagging")
    throw_error(ErrorCode::Unsupported, "TMVA BoostType '" + st.boost_type + "' is not supported (Grad, AdaBoost, Bagging are)",
                {"", "", "", source});
  if (st.nvar_declared >= 0 && st.nvar_declared != static_cast<int>(st.variables.size()))
    throw_error(ErrorCode::Parse, "Variables NVar=" + std::to_string(st.nvar_declared) + " but " +
                                      std::to_string(st.variables.size()) + " <Variable> entries", {"", "", "", source});
  if (st.trees.empty()) throw_error(ErrorCode::Parse, "no <BinaryTree> in <Weights>", {"", "", "", source});

  ForestSpec spec;
  spec.format = std::string(format_name(Format::TmvaXml));
  spec.n_features = static_cast<int>(st.variables.size());
  spec.feature_names = st.variables;
  spec.n_outputs = 1;
  spec.objective = "tmva " + st.method + " " + st.boost_type + (grad ? "" : (st.yes_no_leaf ? " (YesNoLeaf)" : " (purity)"));
  spec.transform = grad ? Transform::TmvaGrad : Transform::Identity;
  double norm = 0.0;
  if (!grad) {
    for (double w : st.boost_weights) norm += w;
    if (!(std::fabs(norm) > 1e-300) || !std::isfinite(norm))
      throw_error(ErrorCode::Parse, "sum of boost weights is zero or not finite", {"", "", "", source});
  }
  spec.trees.resize(st.trees.size());
  for (size_t t = 0; t < st.trees.size(); ++t) {
    const auto& xt = st.trees[t];
    if (xt.empty()) throw_error(ErrorCode::Parse, "tree has no nodes", {"", "tree " + std::to_string(t), "", source});
    TreeArrays& tr = spec.trees[t];
    const size_t n = xt.size();
    tr.feature.assign(n, 0);
    tr.threshold.assign(n, 0.0);
    tr.left.assign(n, -1);
    tr.right.assign(n, -1);
    tr.default_left.assign(n, 0);
    tr.mode.assign(n, SplitMode::Leaf);
    tr.leaf_value.assign(n, 0.0);
    tr.weight = grad ? 1.0 : st.boost_weights[t] / norm;
    for (size_t i = 0; i < n; ++i) {
      const XNode& x = xt[i];
      const std::string where = "tree " + std::to_string(t) + ", node " + std::to_string(i);
      const bool leaf = x.left < 0 && x.right < 0;
      if (leaf) {
        tr.leaf_value[i] = grad ? x.res : (st.yes_no_leaf ? static_cast<double>(x.ntype) : x.purity);
        continue;
      }
      if (x.left < 0 || x.right < 0)
        throw_error(ErrorCode::Parse, "internal node with only one child", {"", where, "", source, x.line});
      if (x.ivar < 0 || x.ivar >= spec.n_features)
        throw_error(ErrorCode::Parse, "IVar " + std::to_string(x.ivar) + " out of range (" + std::to_string(spec.n_features) +
                                          " variables)", {"", where, "", source, x.line});
      tr.feature[i] = x.ivar;
      tr.threshold[i] = x.cut;
      // right iff (x >= cut) == cType  ->  cType 1: left iff x < cut (NaN left); cType 0: left iff x >= cut (NaN right)
      tr.mode[i] = x.ctype == 1 ? SplitMode::LT : SplitMode::GTE;
      tr.default_left[i] = x.ctype == 1 ? 1 : 0;
      tr.left[i] = x.left;
      tr.right[i] = x.right;
    }
  }
  spec.notes.emplace_back("tmva method", st.method);
  spec.notes.emplace_back("boost type", st.boost_type);
  return spec;
}

}  // namespace quiver::forest
