#include "quiver/core/infer.hpp"

#include <algorithm>
#include <cstdio>

namespace quiver {

const Tensor& InferResult::output(const std::string& name) const {
  for (auto& o : outputs)
    if (o.name == name) return o.tensor;
  throw Error(ErrorCode::NotFound, "result has no output '" + name + "'", {.model = provenance.model, .tensor = name});
}

FallbackMode fallback_mode_from_string(const std::string& s) {
  if (s == "off" || s.empty()) return FallbackMode::Off;
  if (s == "on-failure" || s == "on_failure") return FallbackMode::OnFailure;
  if (s == "on-any-failure" || s == "on_any_failure") return FallbackMode::OnAnyFailure;
  if (s == "always-local" || s == "always_local" || s == "always") return FallbackMode::AlwaysLocal;
  throw Error(ErrorCode::InvalidArgument,
              "unknown fallback mode '" + s + "' (off, on-failure, on-any-failure, always-local)");
}

const char* fallback_mode_name(FallbackMode m) {
  switch (m) {
    case FallbackMode::Off: return "off";
    case FallbackMode::OnFailure: return "on-failure";
    case FallbackMode::OnAnyFailure: return "on-any-failure";
    case FallbackMode::AlwaysLocal: return "always-local";
  }
  return "?";
}

// ---------------------------------------------------------------- local models
std::vector<NamedTensor> LocalModels::run(const std::string& model, const std::string& version,
                                          const std::vector<NamedTensor>& inputs,
                                          const std::vector<std::string>& outputs) {
  std::shared_ptr<const Model> m = get(model, version);
  const ModelInfo& info = m->info();
  std::vector<Tensor> ordered(info.inputs.size());
  std::vector<bool> seen(info.inputs.size(), false);
  for (auto& in : inputs) {
    size_t i = m->input_index(in.name);  // throws NotFound naming the input
    ordered[i] = in.tensor;
    seen[i] = true;
  }
  for (size_t i = 0; i < seen.size(); ++i)
    if (!seen[i]) throw Error(ErrorCode::InvalidArgument, "missing input", {.model = model, .tensor = info.inputs[i].name});
  std::unique_ptr<RunState> st;
  {
    std::lock_guard lk(states_mu_);
    auto& free = states_[m.get()];
    if (!free.empty()) {
      st = std::move(free.back());
      free.pop_back();
    }
  }
  if (!st) st = m->make_state();
  std::vector<Tensor> outs;
  m->run(ordered, outs, *st);
  {
    std::lock_guard lk(states_mu_);
    states_[m.get()].push_back(std::move(st));
  }
  std::vector<NamedTensor> result;
  for (size_t i = 0; i < outs.size(); ++i) {
    const std::string& n = info.outputs[i].name;
    if (!outputs.empty() && std::find(outputs.begin(), outputs.end(), n) == outputs.end()) continue;
    result.push_back({n, std::move(outs[i])});
  }
  return result;
}

void LocalModels::add_states(const Model& model, std::vector<std::unique_ptr<RunState>> states) {
  std::lock_guard lk(states_mu_);
  auto& free = states_[&model];
  for (auto& st : states) free.push_back(std::move(st));
}

namespace {
class SingleModel final : public LocalModels {
 public:
  SingleModel(std::shared_ptr<const Model> m, std::string name) : model_(std::move(m)), name_(std::move(name)) {
    if (!model_) throw Error(ErrorCode::InvalidArgument, "local fallback needs a model");
    if (name_.empty()) name_ = model_->info().name;
  }
  bool has(const std::string& model) const override { return model == name_; }
  std::shared_ptr<const Model> get(const std::string& model, const std::string&) override {
    if (model != name_)
      throw Error(ErrorCode::NotFound, "the local model answers for '" + name_ + "' only", {.model = model});
    return model_;
  }
  std::string source() const override {
    const std::string& p = model_->info().path;
    return "local:" + (p.empty() ? model_->info().name : p);
  }

 private:
  std::shared_ptr<const Model> model_;
  std::string name_;
};
}  // namespace

std::shared_ptr<LocalModels> single_local_model(std::shared_ptr<const Model> model, std::string name) {
  return std::make_shared<SingleModel>(std::move(model), std::move(name));
}

// ---------------------------------------------------------------- fallback
Fallback::Fallback(FallbackMode mode, std::shared_ptr<LocalModels> models, Executor executor)
    : mode_(mode), models_(std::move(models)), executor_(std::move(executor)) {
  if (mode_ != FallbackMode::Off && !models_)
    throw Error(ErrorCode::InvalidArgument, std::string("fallback ") + fallback_mode_name(mode_) + " needs local models");
  if (!executor_) throw Error(ErrorCode::InvalidArgument, "fallback needs an executor");
}

bool Fallback::covers(const std::string& model, ErrorCode code) const {
  switch (mode_) {
    case FallbackMode::Off: return false;
    case FallbackMode::OnFailure:
      if (code != ErrorCode::Unavailable && code != ErrorCode::NotFound) return false;
      break;
    case FallbackMode::OnAnyFailure:
    case FallbackMode::AlwaysLocal:
      if (code == ErrorCode::Cancelled) return false;
      break;
  }
  return models_->has(model);
}

InferResult Fallback::run_now(const std::string& model, const InferOptions& options,
                              const std::vector<NamedTensor>& inputs, int attempts, const std::string& history) const {
  InferResult r;
  r.request_id = options.request_id;
  try {
    r.outputs = models_->run(model, options.model_version, inputs, options.outputs);
    for (auto& o : r.outputs)  // never views of the inputs, which the caller may reuse afterwards
      if (o.tensor.is_view()) o.tensor = o.tensor.clone();
    const ModelInfo& info = models_->get(model, options.model_version)->info();
    r.provenance.server = models_->source();
    r.provenance.model = info.name;
    r.provenance.version = info.version;
    r.provenance.sha256 = info.sha256;
    r.provenance.mode = "service-fallback-direct";
    r.provenance.fallback = true;
    r.provenance.attempts = attempts;
  } catch (const Error& e) {
    r.outputs.clear();
    r.error = Error(e.code(), "local fallback failed: " + e.message() + history, e.where()).with_context({.model = model});
  } catch (const std::exception& e) {
    r.outputs.clear();
    r.error = Error(ErrorCode::Internal, std::string("local fallback failed: ") + e.what(), {.model = model});
  }
  if (!r.ok()) {
    r.provenance.model = model;
    r.provenance.version = options.model_version;
    r.provenance.attempts = attempts;
  }
  return r;
}

void Fallback::run(const std::string& model, const InferOptions& options, std::vector<NamedTensor> inputs,
                   int attempts, std::string history, InferCallback done) const {
  executor_([this, model, options, inputs = std::move(inputs), attempts, history = std::move(history),
             done = std::move(done)]() mutable { done(run_now(model, options, inputs, attempts, history)); });
}

namespace {
class WithFallback final : public AsyncInferer {
 public:
  WithFallback(std::shared_ptr<AsyncInferer> primary, std::shared_ptr<const Fallback> fallback)
      : primary_(std::move(primary)), fallback_(std::move(fallback)) {}
  void infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options,
                   InferCallback done) override {
    if (fallback_->mode() == FallbackMode::AlwaysLocal) {
      fallback_->run(model, options, std::move(inputs), 0, "", std::move(done));
      return;
    }
    if (fallback_->mode() == FallbackMode::Off) {
      primary_->infer_async(model, std::move(inputs), options, std::move(done));
      return;
    }
    // The inputs stay referenced until the answer: the fallback needs them after a failure.
    auto kept = std::make_shared<std::vector<NamedTensor>>(inputs);
    primary_->infer_async(model, std::move(inputs), options,
                          [fb = fallback_, model, options, kept, done = std::move(done)](InferResult r) mutable {
                            if (r.ok() || !fb->covers(model, r.error->code())) {
                              done(std::move(r));
                              return;
                            }
                            // The task keeps the fallback alive through `done` until it has run.
                            const Fallback& f = *fb;
                            f.run(model, options, std::move(*kept), r.provenance.attempts,
                                  std::string("; service: ") + r.error->what(),
                                  [fb = std::move(fb), done = std::move(done)](InferResult x) { done(std::move(x)); });
                          });
  }
  int64_t max_batch(const std::string& model, const std::string& version) override {
    return primary_->max_batch(model, version);
  }

 private:
  std::shared_ptr<AsyncInferer> primary_;
  std::shared_ptr<const Fallback> fallback_;
};
}  // namespace

std::shared_ptr<AsyncInferer> wrap_with_fallback(std::shared_ptr<AsyncInferer> primary,
                                                 std::shared_ptr<const Fallback> fallback) {
  if (!primary) throw Error(ErrorCode::InvalidArgument, "no service to wrap with a fallback");
  if (!fallback) return primary;
  return std::make_shared<WithFallback>(std::move(primary), std::move(fallback));
}

}  // namespace quiver
