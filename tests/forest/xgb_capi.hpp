// Thin RAII helpers over Debian's libxgboost (1.7) C API, used by the peer tests and the benchmark.
#pragma once
#include <xgboost/c_api.h>

#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace xgbref {

inline void check(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string(what) + ": " + XGBGetLastError());
}

struct DMatrix {
  DMatrixHandle h = nullptr;
  DMatrix(const std::vector<float>& x, size_t n, size_t nf, const std::vector<float>* labels = nullptr) {
    check(XGDMatrixCreateFromMat(x.data(), n, nf, NAN, &h), "XGDMatrixCreateFromMat");
    if (labels) check(XGDMatrixSetFloatInfo(h, "label", labels->data(), n), "XGDMatrixSetFloatInfo");
  }
  void set_feature_types(std::vector<const char*> types) {
    check(XGDMatrixSetStrFeatureInfo(h, "feature_type", types.data(), types.size()), "XGDMatrixSetStrFeatureInfo");
  }
  ~DMatrix() { if (h) XGDMatrixFree(h); }
  DMatrix(const DMatrix&) = delete;
  DMatrix& operator=(const DMatrix&) = delete;
};

struct Booster {
  BoosterHandle h = nullptr;
  Booster() { check(XGBoosterCreate(nullptr, 0, &h), "XGBoosterCreate"); }
  explicit Booster(DMatrixHandle train) { check(XGBoosterCreate(&train, 1, &h), "XGBoosterCreate"); }
  ~Booster() { if (h) XGBoosterFree(h); }
  Booster(const Booster&) = delete;
  Booster& operator=(const Booster&) = delete;
  // Returns false (and the message) when libxgboost cannot load the file.
  bool load(const std::string& path, std::string* err) {
    if (XGBoosterLoadModel(h, path.c_str()) != 0) {
      if (err) *err = XGBGetLastError();
      return false;
    }
    return true;
  }
  void set(const char* k, const std::string& v) { check(XGBoosterSetParam(h, k, v.c_str()), "XGBoosterSetParam"); }
  void train(DMatrixHandle d, int rounds) {
    for (int i = 0; i < rounds; ++i) check(XGBoosterUpdateOneIter(h, i, d), "XGBoosterUpdateOneIter");
  }
  void save(const std::string& path) { check(XGBoosterSaveModel(h, path.c_str()), "XGBoosterSaveModel"); }
  // Inplace prediction from a dense float32 matrix. type 0 = transformed value, 1 = margin.
  // Returns a pointer into libxgboost's thread-local buffer (valid until the next call).
  const float* predict(const float* x, size_t n, size_t nf, int type, size_t* out_len, int it_begin = 0, int it_end = 0) {
    char values[256], config[256];
    std::snprintf(values, sizeof values,
                  "{\"data\": [%llu, true], \"shape\": [%zu, %zu], \"typestr\": \"<f4\", \"version\": 3}",
                  static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(x)), n, nf);
    std::snprintf(config, sizeof config,
                  "{\"type\": %d, \"training\": false, \"iteration_begin\": %d, \"iteration_end\": %d, "
                  "\"strict_shape\": false, \"cache_id\": 0, \"missing\": NaN}", type, it_begin, it_end);
    const bst_ulong* shape = nullptr;
    bst_ulong dim = 0;
    const float* out = nullptr;
    check(XGBoosterPredictFromDense(h, values, config, nullptr, &shape, &dim, &out), "XGBoosterPredictFromDense");
    size_t len = 1;
    for (bst_ulong i = 0; i < dim; ++i) len *= shape[i];
    if (out_len) *out_len = len;
    return out;
  }
};

// Synthetic training data: nf features ~ N(0,1) (missing_frac NaN), label from a nonlinear function.
inline void synthetic(size_t n, size_t nf, double missing_frac, unsigned seed, std::vector<float>& x, std::vector<float>& y,
                      int n_class = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  std::uniform_real_distribution<float> u(0, 1);
  x.resize(n * nf);
  y.resize(n);
  for (size_t r = 0; r < n; ++r) {
    double s = 0;
    for (size_t f = 0; f < nf; ++f) {
      float v = nd(rng);
      s += (f % 3 == 0 ? v * v : f % 3 == 1 ? std::sin(3 * v) : 0.5 * v) / (1.0 + 0.1 * f);
      x[r * nf + f] = u(rng) < missing_frac ? NAN : v;
    }
    s += 0.3 * nd(rng);
    if (n_class == 0) y[r] = static_cast<float>(s);
    else if (n_class == 2) y[r] = s > 0.8 ? 1.0f : 0.0f;
    else y[r] = static_cast<float>(std::min(n_class - 1, std::max(0, static_cast<int>((s + 1.0) * n_class / 4.0))));
  }
}

}  // namespace xgbref
