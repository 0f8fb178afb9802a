// Format detection, file loading, the Model adapter and backend registration.
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/repro/mode.hpp"
#include "quiver/core/error.hpp"
#include "quiver/core/util.hpp"
#include "quiver/forest/forest.hpp"

namespace quiver::forest {

std::string gunzip(std::string_view bytes, const std::string& source, size_t limit) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
    throw_error(ErrorCode::Internal, "zlib inflateInit2 failed", {"", "", "", source});
  std::string out;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  zs.avail_in = static_cast<uInt>(std::min<size_t>(bytes.size(), UINT32_MAX));
  char buf[1 << 16];
  int rc = Z_OK;
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      std::string msg = zs.msg ? zs.msg : "inflate error " + std::to_string(rc);
      int64_t pos = static_cast<int64_t>(zs.total_in);
      inflateEnd(&zs);
      throw_error(ErrorCode::Parse, "corrupt gzip data: " + msg, {"", "", "", source, pos});
    }
    out.append(buf, sizeof(buf) - zs.avail_out);
    if (out.size() > limit) {
      inflateEnd(&zs);
      throw_error(ErrorCode::ResourceExhausted, "decompressed model exceeds " + std::to_string(limit) + " bytes",
                  {"", "", "", source});
    }
    if (rc == Z_STREAM_END) break;
    if (zs.avail_in == 0 && zs.avail_out != 0) {
      inflateEnd(&zs);
      throw_error(ErrorCode::Parse, "truncated gzip data", {"", "", "", source, static_cast<int64_t>(zs.total_in)});
    }
  }
  inflateEnd(&zs);
  return out;
}

namespace {
bool ends_with(const std::string& s, std::string_view suf) {
  if (s.size() < suf.size()) return false;
  for (size_t i = 0; i < suf.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[s.size() - suf.size() + i])) != suf[i]) return false;
  return true;
}
bool contains(std::string_view h, std::string_view n) { return h.find(n) != std::string_view::npos; }
}  // namespace

Format detect_format(const std::string& path, std::string_view head) {
  const bool gz = head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x1f && static_cast<unsigned char>(head[1]) == 0x8b;
  if (gz) return (ends_with(path, ".xml.gz") || ends_with(path, ".xml")) ? Format::TmvaXml : Format::Auto;
  size_t b = 0;
  while (b < head.size() && std::isspace(static_cast<unsigned char>(head[b]))) ++b;
  std::string_view h = head.substr(b);
  if (h.empty()) return Format::Auto;
  if (h[0] == '<') return contains(h, "MethodSetup") || ends_with(path, ".xml") ? Format::TmvaXml : Format::Auto;
  if (h.rfind("tree\n", 0) == 0 || h.rfind("tree\r\n", 0) == 0 || (contains(h, "version=v") && contains(h, "max_feature_idx=")))
    return Format::LightGBM;
  if (h[0] == '{') {
    // UBJSON object: '{' then a length marker ('i','U','I','l','L') of the first key; JSON: '{' then '"' or whitespace
    size_t k = 1;
    if (h.size() > 1 && std::strchr("iUIlL#$", h[1]) != nullptr) return Format::XGBoostUbj;
    while (k < h.size() && std::isspace(static_cast<unsigned char>(h[k]))) ++k;
    if (k < h.size() && (h[k] == '"' || h[k] == '}')) return Format::XGBoostJson;
  }
  return Format::Auto;
}

ForestSpec parse_forest(std::string_view bytes, Format format, const std::string& source) {
  if (format == Format::Auto) format = detect_format(source, bytes.substr(0, 4096));
  switch (format) {
    case Format::XGBoostJson: return parse_xgboost_json(bytes, source);
    case Format::XGBoostUbj: return parse_xgboost_ubj(bytes, source);
    case Format::LightGBM: return parse_lightgbm(bytes, source);
    case Format::TmvaXml: return parse_tmva_xml(bytes, source);
    case Format::Auto: break;
  }
  throw_error(ErrorCode::Unsupported,
              "not a recognised tree-ensemble file (XGBoost JSON/UBJSON, LightGBM text, TMVA BDT XML)", {"", "", "", source});
}

Forest load_forest(const std::string& path, Format format) {
  std::string bytes = read_file(path);
  return Forest::build(parse_forest(bytes, format, path), path);
}

// ---------------------------------------------------------------------------------------------
// Model adapter
// ---------------------------------------------------------------------------------------------
namespace {
class ForestState : public RunState {
 public:
  std::vector<float> scratch;  // FIL class ids / softmax: the prediction or margins before reduction
};

bool param_bool(const LoadOptions& o, const char* key, bool def, const std::string& path) {
  auto it = o.params.find(key);
  if (it == o.params.end()) return def;
  std::string v = it->second;
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (v == "true" || v == "1") return true;
  if (v == "false" || v == "0") return false;
  throw_error(ErrorCode::InvalidArgument,
              std::string("load parameter '") + key + "' must be true or false, got '" + it->second + "'", {"", "", "", path});
}

float param_float(const LoadOptions& o, const char* key, float def, const std::string& path) {
  auto it = o.params.find(key);
  if (it == o.params.end()) return def;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0' || !std::isfinite(v))
    throw_error(ErrorCode::InvalidArgument,
                std::string("load parameter '") + key + "' is not a finite number: '" + it->second + "'", {"", "", "", path});
  return static_cast<float>(v);
}

int64_t param_int(const LoadOptions& o, const char* key, int64_t def, const std::string& path) {
  auto it = o.params.find(key);
  if (it == o.params.end()) return def;
  try {
    size_t used = 0;
    long long v = std::stoll(it->second, &used);
    if (used != it->second.size()) throw std::invalid_argument("trailing");
    return v;
  } catch (const std::exception&) {
    throw_error(ErrorCode::InvalidArgument, std::string("load parameter '") + key + "' is not an integer: '" + it->second + "'",
                {"", "", "", path});
  }
}
}  // namespace

ForestModel::ForestModel(Forest forest, ModelInfo info, FilOutput fil)
    : forest_(std::move(forest)), info_(std::move(info)), fil_(fil) {}

std::shared_ptr<const ForestModel> ForestModel::load(const std::string& path, const LoadOptions& options) {
  std::string bytes = read_file(path);
  Format fmt = detect_format(path, std::string_view(bytes).substr(0, 4096));
  ForestSpec spec = parse_forest(bytes, fmt, path);
  if (fmt == Format::Auto) fmt = spec.format == "xgboost-ubj" ? Format::XGBoostUbj : Format::XGBoostJson;
  // round range
  int64_t rb = param_int(options, "round_begin", 0, path);
  int64_t re = param_int(options, "round_end", -1, path);
  auto bi = options.params.find("use_best_iteration");
  if (bi != options.params.end() && (bi->second == "1" || bi->second == "true")) {
    bool found = false;
    for (auto& [k, v] : spec.notes) {
      if (k != "best_iteration") continue;
      char* end = nullptr;
      long long b = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || b < 0 || b >= INT32_MAX)
        throw_error(ErrorCode::Parse, "best_iteration attribute is not a round number: '" + v + "'", {"", "", "", path});
      re = b + 1;
      found = true;
    }
    if (!found)
      throw_error(ErrorCode::InvalidArgument, "use_best_iteration: the model has no best_iteration attribute", {"", "", "", path});
  }
  if (rb < 0 || rb > INT32_MAX || re > INT32_MAX)
    throw_error(ErrorCode::InvalidArgument, "round range out of range", {"", "", "", path});
  spec.default_round_begin = static_cast<int32_t>(rb);
  spec.default_round_end = static_cast<int32_t>(re);
  Forest forest = Forest::build(spec, path);
  if (const repro::Mode mode = repro::mode_of(options); mode.reproducible) forest.set_reproducible(&repro::kernels(mode.isa));

  ModelInfo mi;
  mi.name = options.name.empty() ? std::filesystem::path(path).filename().string() : options.name;
  for (const char* suf : {".gz", ".xml", ".json", ".ubj", ".txt"}) {
    if (options.name.empty() && ends_with(mi.name, suf)) mi.name.resize(mi.name.size() - std::strlen(suf));
  }
  mi.backend = "forest";
  mi.format = spec.format;
  mi.version = options.version;
  mi.path = path;
  mi.sha256 = sha256_hex(bytes);
  mi.max_batch = param_int(options, "max_batch", int64_t(1) << 24, path);
  FilOutput fil;
  auto itf = options.params.find("interface");
  if (itf != options.params.end() && itf->second == "triton_fil") {
    fil.enabled = true;
    fil.output_class = param_bool(options, "output_class", param_bool(options, "is_classifier", false, path), path);
    fil.predict_proba = param_bool(options, "predict_proba", false, path);
    fil.threshold = param_float(options, "threshold", 0.5f, path);
    const int64_t pc = param_int(options, "binary_proba_columns", 1, path);
    if (pc != 1 && pc != 2)
      throw_error(ErrorCode::InvalidArgument,
                  "load parameter 'binary_proba_columns' must be 1 (p) or 2 ([1 - p, p]), got " + std::to_string(pc),
                  {"", "", "", path});
    fil.binary_proba_pair = pc == 2 && fil.predict_proba && forest.transform() != Transform::SoftmaxClass &&
                            forest.n_prediction_columns() == 1;
  } else if (itf != options.params.end() && !itf->second.empty() && itf->second != "native") {
    throw_error(ErrorCode::InvalidArgument, "load parameter 'interface' must be native or triton_fil, got '" + itf->second + "'",
                {"", "", "", path});
  }
  if (fil.enabled) {
    int64_t cols = forest.n_prediction_columns();
    if (fil.binary_proba_pair) cols = 2;
    else if (fil.predict_proba) cols = forest.transform() == Transform::SoftmaxClass ? forest.n_outputs() : cols;
    else if (fil.output_class) cols = 1;
    mi.inputs.push_back({"input__0", DType::F32, {Dim::sym("batch"), Dim(forest.n_features())}});
    mi.outputs.push_back({"output__0", DType::F32, {Dim::sym("batch"), Dim(cols)}});
  } else {
    mi.inputs.push_back({"input", DType::F32, {Dim::sym("batch"), Dim(forest.n_features())}});
    mi.outputs.push_back({"prediction", DType::F32, {Dim::sym("batch"), Dim(forest.n_prediction_columns())}});
    mi.outputs.push_back({"margin", DType::F32, {Dim::sym("batch"), Dim(forest.n_outputs())}});
  }
  return std::make_shared<const ForestModel>(std::move(forest), std::move(mi), fil);
}

std::unique_ptr<RunState> ForestModel::make_state() const { return std::make_unique<ForestState>(); }

void ForestModel::run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState& state) const {
  validate_inputs(info_, inputs);
  const Tensor& x = inputs[0];
  const std::string& in_name = info_.inputs[0].name;
  if (x.rank() != 2)
    throw_error(ErrorCode::InvalidArgument, "expected a [batch, " + std::to_string(forest_.n_features()) + "] input, got " +
                                                dims_to_string(x.dims()), {info_.name, "", in_name});
  const int64_t n = x.dim(0);
  if (x.dim(1) != forest_.n_features())
    throw_error(ErrorCode::InvalidArgument, "row width " + std::to_string(x.dim(1)) + " does not match the model's " +
                                                std::to_string(forest_.n_features()) + " features", {info_.name, "", in_name});
  if (fil_.enabled) {
    outputs.resize(1);
    run_fil(x, outputs[0], state);
    return;
  }
  outputs.resize(2);
  const int64_t pd[2] = {n, forest_.n_prediction_columns()};
  const int64_t md[2] = {n, forest_.n_outputs()};
  outputs[0].ensure(DType::F32, pd);
  outputs[1].ensure(DType::F32, md);
  forest_.predict_both(x.data<float>(), static_cast<size_t>(n), outputs[1].data<float>(), outputs[0].data<float>());
}

void ForestModel::run_fil(const Tensor& x, Tensor& out, RunState& state) const {
  const int64_t n = x.dim(0);
  const int64_t od[2] = {n, info_.outputs[0].shape[1].value};
  out.ensure(DType::F32, od);
  float* y = out.data<float>();
  const float* rows = x.data<float>();
  const size_t un = static_cast<size_t>(n);
  const bool softmax_class = forest_.transform() == Transform::SoftmaxClass;
  auto& scratch = static_cast<ForestState&>(state).scratch;
  if (fil_.predict_proba && softmax_class) {
    // multi:softmax stores the class, not the scores: the scores are the softmax of the margins.
    const size_t k = static_cast<size_t>(forest_.n_outputs());
    scratch.resize(un * k);
    forest_.predict(rows, un, scratch.data(), true);
    for (size_t r = 0; r < un; ++r) {
      const float* m = &scratch[r * k];
      if (const repro::Kernels* rk = forest_.reproducible()) {
        rk->softmax(m, y + r * k, 1, static_cast<int64_t>(k), 1, false);
        continue;
      }
      const float mx = *std::max_element(m, m + k);
      double sum = 0;
      for (size_t c = 0; c < k; ++c) sum += std::exp(static_cast<double>(m[c] - mx));
      for (size_t c = 0; c < k; ++c) y[r * k + c] = static_cast<float>(std::exp(static_cast<double>(m[c] - mx)) / sum);
    }
  } else if (fil_.binary_proba_pair) {  // [1 - p, p], written back to front in place
    forest_.predict(rows, un, y);
    for (size_t r = un; r-- > 0;) {
      const float p = y[r];
      y[2 * r + 1] = p;
      y[2 * r] = 1.0f - p;
    }
  } else if (fil_.output_class && !fil_.predict_proba && !softmax_class) {
    const size_t np = static_cast<size_t>(forest_.n_prediction_columns());
    if (np == 1) {  // binary: the decision at the threshold (NaN scores are "no")
      forest_.predict(rows, un, y);
      for (size_t r = 0; r < un; ++r) y[r] = y[r] > fil_.threshold ? 1.0f : 0.0f;
    } else {  // multiclass: the first class with the highest score
      scratch.resize(un * np);
      forest_.predict(rows, un, scratch.data());
      for (size_t r = 0; r < un; ++r) {
        const float* p = &scratch[r * np];
        y[r] = static_cast<float>(std::max_element(p, p + np) - p);
      }
    }
  } else {
    forest_.predict(rows, un, y);
  }
}

void ForestModel::describe(std::ostream& os) const {
  Model::describe(os);
  forest_.describe(os);
}

Backend backend() {
  Backend b;
  b.name = "forest";
  b.accepts = [](const std::string& path, std::string_view head) {
    const bool ext = ends_with(path, ".json") || ends_with(path, ".ubj") || ends_with(path, ".txt") ||
                     ends_with(path, ".xml") || ends_with(path, ".xml.gz") || ends_with(path, ".model");
    if (!ext) return false;
    Format f = detect_format(path, head);
    if (f == Format::XGBoostJson) return contains(head, "\"learner\"") || head.size() < 64;
    if (f == Format::XGBoostUbj) return contains(head, "learner");
    return f != Format::Auto;
  };
  b.load = [](const std::string& path, const LoadOptions& o) -> std::shared_ptr<const Model> {
    return ForestModel::load(path, o);
  };
  return b;
}

}  // namespace quiver::forest
