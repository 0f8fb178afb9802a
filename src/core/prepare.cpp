#include "quiver/core/prepare.hpp"

#include <optional>

#include "quiver/core/util.hpp"

namespace quiver {

std::vector<Tensor> expected_inputs(const ModelInfo& info, int64_t batch, const std::map<std::string, int64_t>& dims) {
  if (batch < 1) throw Error(ErrorCode::InvalidArgument, "batch must be at least 1, got " + std::to_string(batch), {info.name});
  std::vector<Tensor> out;
  for (const auto& ti : info.inputs) {
    std::vector<int64_t> d;
    for (size_t i = 0; i < ti.shape.size(); ++i) {
      const Dim& x = ti.shape[i];
      if (x.is_fixed()) {
        d.push_back(x.value);
        continue;
      }
      auto it = dims.find(x.symbol);
      if (it != dims.end()) d.push_back(it->second);
      else if (i == 0) d.push_back(batch);
      else
        throw Error(ErrorCode::InvalidArgument,
                    "dynamic dim '" + x.symbol + "' at position " + std::to_string(i) + " needs a value",
                    {info.name, "", ti.name});
    }
    out.push_back(Tensor::zeros(ti.dtype, d));
  }
  return out;
}

std::map<std::string, int64_t> dims_of(const ModelInfo& info, std::span<const Tensor> inputs) {
  std::map<std::string, int64_t> dims;
  for (size_t i = 0; i < info.inputs.size() && i < inputs.size(); ++i) {
    const Shape& shape = info.inputs[i].shape;
    for (size_t d = 0; d < shape.size() && d < static_cast<size_t>(inputs[i].rank()); ++d)
      if (!shape[d].is_fixed()) dims.emplace(shape[d].symbol, inputs[i].dim(d));
  }
  return dims;
}

void prepare_state(const Model& model, RunState& state, int64_t batch, const std::map<std::string, int64_t>& dims) {
  const auto inputs = expected_inputs(model.info(), batch, dims);
  std::vector<Tensor> outputs;
  model.run(inputs, outputs, state);
}

}  // namespace quiver

namespace quiver {

std::string PrepareSpec::str() const {
  if (batch <= 0) return "off";
  std::string s = std::to_string(batch);
  for (const auto& [k, v] : dims) s += "," + k + "=" + std::to_string(v);
  return s;
}

namespace {

// A positive decimal integer or nullopt (no sign, no suffix, no overflow).
std::optional<int64_t> positive(const std::string& s) {
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  return std::stoll(s);
}

}  // namespace

PrepareSpec parse_prepare_spec(const std::string& text, const ErrorWhere& where) {
  PrepareSpec spec;
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::InvalidArgument,
                 "prepare spec '" + text + "': " + why + " (expected BATCH or BATCH,SYMBOL=VALUE,...; or off)", where);
  };
  if (text == "off" || text == "0") return spec;
  size_t pos = 0;
  bool first = true;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string part(trim(std::string_view(text).substr(pos, end - pos)));
    if (first) {
      auto b = positive(part);
      if (!b || *b < 1) throw bad("the batch '" + part + "' is not a positive integer");
      spec.batch = *b;
    } else {
      const size_t eq = part.find('=');
      if (eq == std::string::npos || eq == 0) throw bad("'" + part + "' is not SYMBOL=VALUE");
      std::string sym = part.substr(0, eq);
      auto v = positive(part.substr(eq + 1));
      if (!v || *v < 1) throw bad("the value of '" + sym + "' is not a positive integer");
      if (!spec.dims.emplace(sym, *v).second) throw bad("'" + sym + "' is given twice");
    }
    first = false;
    pos = end + 1;
  }
  return spec;
}

void check_prepare_spec(const ModelInfo& info, const PrepareSpec& spec, int64_t max_batch) {
  if (spec.batch <= 0) return;
  if (max_batch <= 0) max_batch = info.max_batch;
  if (max_batch > 0 && spec.batch > max_batch)
    throw Error(ErrorCode::InvalidArgument,
                "prepare batch " + std::to_string(spec.batch) + " exceeds the model's max batch " +
                    std::to_string(max_batch),
                {info.name});
  for (const auto& [sym, v] : spec.dims) {
    bool found = false;
    for (const auto& ti : info.inputs)
      for (const auto& d : ti.shape) found = found || (!d.is_fixed() && d.symbol == sym);
    if (!found) {
      std::string known;
      for (const auto& ti : info.inputs)
        for (const auto& d : ti.shape)
          if (!d.is_fixed() && !d.symbol.empty() && known.find("'" + d.symbol + "'") == std::string::npos)
            known += (known.empty() ? "'" : ", '") + d.symbol + "'";
      throw Error(ErrorCode::InvalidArgument,
                  "prepare spec names dim '" + sym + "', which no input of the model has (dynamic dims: " +
                      (known.empty() ? std::string("none") : known) + ")",
                  {info.name});
    }
  }
  try {
    expected_inputs(info, spec.batch, spec.dims);
  } catch (const Error& e) {  // a dynamic dim without a value: names the input
    throw Error(e.code(), "prepare spec '" + spec.str() + "': " + e.message(), e.where());
  }
}

}  // namespace quiver
