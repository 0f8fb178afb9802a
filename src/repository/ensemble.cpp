// Triton ensembles (platform "ensemble", ensemble_scheduling): a fixed graph of repository models
// whose tensors flow from the ensemble's inputs through the steps to its outputs. The plan (step
// order, tensor slots, bindings) is checked once at load; a call runs the steps in that order on
// its own slots and per-model run states. Composing models are resolved on every call, so a
// reloaded model is used at once and an unloaded one fails the call naming it.
#include <map>
#include <set>

#include "repository/loader.hpp"

namespace quiver::repository {

namespace {

struct StepPlan {
  std::string model;
  int64_t version = -1;                // -1: the version the composing model's policy serves
  std::vector<int> in_slot;            // per composing-model input (its order): the tensor slot
  std::vector<std::pair<size_t, int>> out;  // (composing-model output index, slot) for mapped outputs
  size_t n_outputs = 0;
};

class EnsembleState final : public RunState {
 public:
  struct Step {
    std::shared_ptr<const Model> model;  // the composing model `state` belongs to (held: a
    std::unique_ptr<RunState> state;     // reloaded model never meets another model's state)
    std::vector<Tensor> out;
  };
  std::vector<Tensor> slots;
  std::vector<Step> steps;
};

class EnsembleModel final : public Model {
 public:
  EnsembleModel(ModelInfo info, std::vector<StepPlan> steps, std::vector<int> in_slots, std::vector<int> out_slots,
                size_t n_slots, ModelResolver resolver)
      : info_(std::move(info)),
        steps_(std::move(steps)),
        in_slots_(std::move(in_slots)),
        out_slots_(std::move(out_slots)),
        n_slots_(n_slots),
        resolve_(std::move(resolver)) {}

  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override {
    auto s = std::make_unique<EnsembleState>();
    s->slots.resize(n_slots_);
    s->steps.resize(steps_.size());
    return s;
  }

  void run(std::span<const Tensor> inputs, std::vector<Tensor>& outputs, RunState& state) const override {
    validate_inputs(info_, inputs);
    auto& st = static_cast<EnsembleState&>(state);
    for (size_t i = 0; i < in_slots_.size(); ++i) st.slots[static_cast<size_t>(in_slots_[i])] = inputs[i];
    std::vector<Tensor> args;
    for (size_t k = 0; k < steps_.size(); ++k) {
      const StepPlan& p = steps_[k];
      std::shared_ptr<const Model> m;
      try {
        m = resolve_(p.model, p.version);
      } catch (const Error& e) {
        throw Error(e.code(), "ensemble step " + std::to_string(k) + ": " + e.what(), {info_.name, p.model});
      }
      const ModelInfo& mi = m->info();
      if (mi.inputs.size() != p.in_slot.size() || mi.outputs.size() != p.n_outputs)
        throw Error(ErrorCode::Unavailable,
                    "ensemble step " + std::to_string(k) + ": model '" + p.model +
                        "' was reloaded with other inputs or outputs than the ensemble was loaded against",
                    {info_.name, p.model});
      auto& ss = st.steps[k];
      if (ss.model != m) {  // first call, or the model was reloaded: a state of its own
        ss.state = m->make_state();
        ss.model = m;
        ss.out.clear();
      }
      args.assign(p.in_slot.size(), Tensor());
      for (size_t i = 0; i < p.in_slot.size(); ++i) args[i] = st.slots[static_cast<size_t>(p.in_slot[i])];
      try {
        m->run(args, ss.out, *ss.state);
      } catch (const Error& e) {
        throw e.with_context({info_.name, "step " + std::to_string(k) + " (" + p.model + ")"});
      }
      for (const auto& [o, slot] : p.out) st.slots[static_cast<size_t>(slot)] = ss.out[o];
    }
    outputs.resize(out_slots_.size());
    for (size_t o = 0; o < out_slots_.size(); ++o) outputs[o] = st.slots[static_cast<size_t>(out_slots_[o])];
    for (auto& t : st.slots) t = Tensor();  // let the steps reuse their output storage next call
  }

  void describe(std::ostream& os) const override {
    Model::describe(os);
    os << "ensemble steps:\n";
    for (const auto& p : steps_) os << "  " << p.model << (p.version >= 0 ? " v" + std::to_string(p.version) : "") << "\n";
  }

 private:
  ModelInfo info_;
  std::vector<StepPlan> steps_;
  std::vector<int> in_slots_, out_slots_;
  size_t n_slots_;
  ModelResolver resolve_;
};


}  // namespace

std::shared_ptr<const Model> make_ensemble_model(const inference::ModelConfig& c, const std::string& version,
                                                 const ModelResolver& resolver) {
  const std::string& name = c.name();
  if (!c.has_ensemble_scheduling() || c.ensemble_scheduling().step_size() == 0)
    throw Error(ErrorCode::InvalidArgument, "platform \"ensemble\" needs ensemble_scheduling with at least one step", {name});
  if (!resolver)
    throw Error(ErrorCode::Unsupported, "ensembles need the repository they come from", {name});
  if (c.input_size() == 0 || c.output_size() == 0)
    throw Error(ErrorCode::InvalidArgument, "an ensemble's config must list its inputs and outputs", {name});
  const bool batched = c.max_batch_size() > 0;
  ModelInfo info;
  info.name = name;
  info.backend = "ensemble";
  info.format = "config";
  info.version = version;
  info.max_batch = c.max_batch_size();

  std::map<std::string, int> slot;  // ensemble tensor name -> slot
  std::map<std::string, DType> slot_dtype;
  std::vector<int> in_slots, out_slots;
  for (const auto& t : c.input()) {
    auto dt = config_dtype(t.data_type());
    if (!dt || *dt == DType::Undefined) throw Error(ErrorCode::InvalidArgument, "unsupported data_type", {name, "", t.name()});
    if (slot.count(t.name())) throw Error(ErrorCode::InvalidArgument, "input listed twice", {name, "", t.name()});
    const int s = static_cast<int>(slot.size());
    slot[t.name()] = s;
    slot_dtype[t.name()] = *dt;
    in_slots.push_back(s);
    info.inputs.push_back({t.name(), *dt, config_shape(t.dims(), batched)});
  }
  auto slot_of = [&](const std::string& tensor) {
    auto it = slot.find(tensor);
    if (it != slot.end()) return it->second;
    const int s = static_cast<int>(slot.size());
    slot[tensor] = s;
    return s;
  };

  // Steps in an order where every input is available: the ensemble's inputs, then what earlier
  // steps produce. A step waiting on a tensor nobody makes (or a cycle) is refused by name.
  const auto& steps = c.ensemble_scheduling().step();
  std::set<std::string> available;
  for (const auto& t : c.input()) available.insert(t.name());
  std::vector<bool> placed(static_cast<size_t>(steps.size()), false);
  std::vector<StepPlan> plan;
  std::set<std::string> produced_by_steps;
  while (plan.size() < placed.size()) {
    bool progress = false;
    for (int k = 0; k < steps.size(); ++k) {
      if (placed[static_cast<size_t>(k)]) continue;
      const auto& step = steps[k];
      bool ready = true;
      for (const auto& [model_in, tensor] : step.input_map()) ready &= available.count(tensor) > 0;
      if (!ready) continue;
      const std::string where = "ensemble step " + std::to_string(k) + " (model '" + step.model_name() + "')";
      std::shared_ptr<const Model> m;
      try {
        m = resolver(step.model_name(), step.model_version() > 0 ? step.model_version() : -1);
      } catch (const Error& e) {
        throw Error(e.code(), where + ": " + e.what(), {name, step.model_name()});
      }
      const ModelInfo& mi = m->info();
      // A batching ensemble hands its whole batch to every step: each must take a batch dim.
      if (batched) {
        for (const auto& t : mi.inputs)
          if (t.shape.empty() || t.shape[0].is_fixed())
            throw Error(ErrorCode::InvalidArgument,
                        where + ": the ensemble batches (max_batch_size " + std::to_string(c.max_batch_size()) +
                            ") but input '" + t.name + "' of the model has no batch dimension",
                        {name, step.model_name(), t.name});
        if (mi.max_batch > 0 && mi.max_batch < c.max_batch_size())
          throw Error(ErrorCode::InvalidArgument,
                      where + ": the model takes batches of at most " + std::to_string(mi.max_batch) +
                          ", less than the ensemble's max_batch_size " + std::to_string(c.max_batch_size()),
                      {name, step.model_name()});
      }
      StepPlan p;
      p.model = step.model_name();
      p.version = step.model_version() > 0 ? step.model_version() : -1;
      p.in_slot.assign(mi.inputs.size(), -1);
      p.n_outputs = mi.outputs.size();
      for (const auto& [model_in, tensor] : step.input_map()) {
        size_t i = mi.inputs.size();
        for (size_t j = 0; j < mi.inputs.size(); ++j)
          if (mi.inputs[j].name == model_in) i = j;
        if (i == mi.inputs.size())
          throw Error(ErrorCode::InvalidArgument, where + ": the model has no input '" + model_in + "'", {name, p.model, model_in});
        auto dt = slot_dtype.find(tensor);
        if (dt != slot_dtype.end() && dt->second != mi.inputs[i].dtype)
          throw Error(ErrorCode::InvalidArgument,
                      where + ": tensor '" + tensor + "' is " + std::string(dtype_kserve_name(dt->second)) + " but input '" +
                          model_in + "' takes " + std::string(dtype_kserve_name(mi.inputs[i].dtype)),
                      {name, p.model, model_in});
        p.in_slot[i] = slot_of(tensor);
      }
      for (size_t i = 0; i < p.in_slot.size(); ++i)
        if (p.in_slot[i] < 0)
          throw Error(ErrorCode::InvalidArgument, where + ": input '" + mi.inputs[i].name + "' is not in input_map",
                      {name, p.model, mi.inputs[i].name});
      for (const auto& [model_out, tensor] : step.output_map()) {
        size_t o = mi.outputs.size();
        for (size_t j = 0; j < mi.outputs.size(); ++j)
          if (mi.outputs[j].name == model_out) o = j;
        if (o == mi.outputs.size())
          throw Error(ErrorCode::InvalidArgument, where + ": the model has no output '" + model_out + "'",
                      {name, p.model, model_out});
        if (available.count(tensor) || produced_by_steps.count(tensor))
          throw Error(ErrorCode::InvalidArgument, where + ": tensor '" + tensor + "' is produced twice",
                      {name, p.model, tensor});
        produced_by_steps.insert(tensor);
        slot_dtype[tensor] = mi.outputs[o].dtype;
        p.out.emplace_back(o, slot_of(tensor));
      }
      for (const auto& [model_out, tensor] : step.output_map()) available.insert(tensor);
      placed[static_cast<size_t>(k)] = true;
      plan.push_back(std::move(p));
      progress = true;
    }
    if (!progress) {
      for (int k = 0; k < steps.size(); ++k) {
        if (placed[static_cast<size_t>(k)]) continue;
        for (const auto& [model_in, tensor] : steps[k].input_map())
          if (!available.count(tensor))
            throw Error(ErrorCode::InvalidArgument,
                        "ensemble step " + std::to_string(k) + " (model '" + steps[k].model_name() +
                            "') needs tensor '" + tensor + "', which no ensemble input or earlier step provides",
                        {name, steps[k].model_name(), tensor});
      }
      throw Error(ErrorCode::Internal, "ensemble steps could not be ordered", {name});
    }
  }
  for (const auto& t : c.output()) {
    auto dt = config_dtype(t.data_type());
    if (!dt || *dt == DType::Undefined) throw Error(ErrorCode::InvalidArgument, "unsupported data_type", {name, "", t.name()});
    if (!available.count(t.name()))
      throw Error(ErrorCode::InvalidArgument, "ensemble output '" + t.name() + "' is produced by no step", {name, "", t.name()});
    if (slot_dtype.count(t.name()) && slot_dtype[t.name()] != *dt)
      throw Error(ErrorCode::InvalidArgument,
                  "ensemble output '" + t.name() + "' is declared " + std::string(dtype_kserve_name(*dt)) + " but its step makes " +
                      std::string(dtype_kserve_name(slot_dtype[t.name()])),
                  {name, "", t.name()});
    out_slots.push_back(slot.at(t.name()));
    info.outputs.push_back({t.name(), *dt, config_shape(t.dims(), batched)});
  }
  return std::make_shared<EnsembleModel>(std::move(info), std::move(plan), std::move(in_slots), std::move(out_slots),
                                         slot.size(), resolver);
}

}  // namespace quiver::repository
