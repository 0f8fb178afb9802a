#include "quiver/client/coalesce.hpp"

#include <algorithm>
#include <cstring>

#include "quiver/core/shape.hpp"
#include "quiver/core/util.hpp"

namespace quiver::client {

const Tensor& InferResult::output(const std::string& name) const {
  for (auto& o : outputs)
    if (o.name == name) return o.tensor;
  throw Error(ErrorCode::NotFound, "result has no output '" + name + "'",
              {.model = provenance.model, .tensor = name});
}

std::vector<NamedTensor> concat_batch(const std::vector<const std::vector<NamedTensor>*>& parts) {
  if (parts.empty()) return {};
  const auto& first = *parts[0];
  std::vector<NamedTensor> out;
  out.reserve(first.size());
  for (size_t k = 0; k < first.size(); ++k) {
    const Tensor& t0 = first[k].tensor;
    if (t0.rank() == 0)
      throw Error(ErrorCode::InvalidArgument, "cannot batch a scalar input", {.tensor = first[k].name});
    int64_t total = 0;
    for (auto* p : parts) {
      if (p->size() != first.size() || (*p)[k].name != first[k].name)
        throw Error(ErrorCode::InvalidArgument, "coalesced requests have different inputs",
                    {.tensor = first[k].name});
      const Tensor& t = (*p)[k].tensor;
      if (t.dtype() != t0.dtype() || t.rank() != t0.rank() ||
          !std::equal(t.dims().begin() + 1, t.dims().end(), t0.dims().begin() + 1))
        throw Error(ErrorCode::InvalidArgument,
                    "coalesced requests disagree on dtype or non-batch dims: " + dims_to_string(t.dims()) +
                        " vs " + dims_to_string(t0.dims()),
                    {.tensor = first[k].name});
      total += t.dim(0);
    }
    std::vector<int64_t> dims = t0.dims();
    dims[0] = total;
    Tensor merged = Tensor::empty(t0.dtype(), dims);
    if (t0.dtype() == DType::String) {
      std::string* dst = merged.data<std::string>();
      for (auto* p : parts) {
        const Tensor& t = (*p)[k].tensor;
        const std::string* src = t.data<std::string>();
        for (int64_t i = 0; i < t.numel(); ++i) *dst++ = src[i];
      }
    } else {
      char* dst = static_cast<char*>(merged.raw());
      for (auto* p : parts) {
        const Tensor& t = (*p)[k].tensor;
        if (t.nbytes()) std::memcpy(dst, t.raw(), t.nbytes());
        dst += t.nbytes();
      }
    }
    out.push_back({first[k].name, std::move(merged)});
  }
  return out;
}

std::vector<std::vector<NamedTensor>> split_batch(const std::vector<NamedTensor>& outputs,
                                                  const std::vector<int64_t>& offsets) {
  size_t n = offsets.size() - 1;
  std::vector<std::vector<NamedTensor>> parts(n);
  for (auto& o : outputs) {
    const Tensor& t = o.tensor;
    if (t.rank() == 0 || t.dim(0) != offsets.back())
      throw Error(ErrorCode::InvalidArgument,
                  "output of a coalesced request has dims " + dims_to_string(t.dims()) + ", expected dim 0 = " +
                      std::to_string(offsets.back()) + " (the summed batch)",
                  {.tensor = o.name});
    auto keep = std::make_shared<Tensor>(t);  // shares storage / keepalive of the merged output
    size_t row_bytes = t.dim(0) ? t.nbytes() / t.dim(0) : 0;
    for (size_t i = 0; i < n; ++i) {
      std::vector<int64_t> dims = t.dims();
      dims[0] = offsets[i + 1] - offsets[i];
      const char* base = static_cast<const char*>(keep->raw()) + offsets[i] * row_bytes;
      parts[i].push_back({o.name, Tensor::view(t.dtype(), dims, static_cast<const void*>(base), keep)});
    }
  }
  return parts;
}

namespace {
std::string group_key(const std::string& model, const std::vector<NamedTensor>& inputs, const InferOptions& o) {
  std::string k = model;
  k += '\x1f';
  k += o.model_version;
  k += '\x1f';
  k += std::to_string(o.priority);
  for (auto& n : o.outputs) (k += '\x1e') += n;
  for (auto& in : inputs) {
    k += '\x1f';
    k += in.name;
    k += ':';
    k += std::to_string(static_cast<int>(in.tensor.dtype()));
    for (size_t d = 1; d < in.tensor.rank(); ++d) (k += ',') += std::to_string(in.tensor.dim(d));
  }
  return k;
}
}  // namespace

Coalescer::Coalescer(AsyncInferFn send, std::function<int64_t(const std::string&)> max_batch_of,
                     CoalesceOptions options)
    : send_(std::move(send)), max_batch_of_(std::move(max_batch_of)), opt_(options) {
  timer_ = std::thread([this] { timer_loop(); });
}

Coalescer::~Coalescer() {
  std::vector<Group> pending;
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    for (auto& [k, g] : groups_) pending.push_back(std::move(g));
    groups_.clear();
  }
  cv_.notify_all();
  timer_.join();
  for (auto& g : pending) send_group(std::move(g));
}

int64_t Coalescer::limit_for(const std::string& model) {
  if (opt_.max_batch > 0) return opt_.max_batch;
  {
    std::lock_guard lk(mu_);
    auto it = limits_.find(model);
    if (it != limits_.end()) return it->second;
  }
  int64_t m = 0;
  try {
    m = max_batch_of_ ? max_batch_of_(model) : 0;
  } catch (const Error&) {
    return 0;  // metadata not available (yet): send on its own, ask again next time
  }
  m = std::max<int64_t>(m, 0);  // 0: the model has no batch dim, never coalesce it
  std::lock_guard lk(mu_);
  limits_[model] = m;
  return m;
}

CoalesceStats Coalescer::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

void Coalescer::infer_async(const std::string& model, std::vector<NamedTensor> inputs, const InferOptions& options,
                            InferCallback done) {
  const int64_t now = now_ns();
  bool batchable = !inputs.empty();
  int64_t rows = -1;
  for (auto& in : inputs) {
    if (in.tensor.rank() == 0) { batchable = false; break; }
    if (rows < 0) rows = in.tensor.dim(0);
    else if (rows != in.tensor.dim(0)) { batchable = false; break; }
  }
  const int64_t limit = batchable ? limit_for(model) : 0;
  if (!batchable || rows > limit || rows == 0) {
    {
      std::lock_guard lk(mu_);
      stats_.requests++;
      stats_.rpcs++;
      stats_.direct++;
      stats_.rows += std::max<int64_t>(rows, 0);
    }
    send_(model, std::move(inputs), options, std::move(done));
    return;
  }
  Member m;
  m.request_id = options.request_id.empty() ? "c" + std::to_string(next_id_.fetch_add(1)) : options.request_id;
  m.rows = rows;
  m.deadline_ns = options.timeout_ns > 0 ? now + options.timeout_ns : 0;
  m.start_ns = now;
  m.done = std::move(done);
  std::string key = group_key(model, inputs, options);
  m.inputs = std::move(inputs);

  std::vector<Group> to_send;
  bool wake = false;
  {
    std::lock_guard lk(mu_);
    stats_.requests++;
    auto it = groups_.find(key);
    if (it != groups_.end() && it->second.rows + rows > limit) {  // would overflow: send what is there
      stats_.full_flushes++;
      to_send.push_back(std::move(it->second));
      groups_.erase(it);
      it = groups_.end();
    }
    if (it == groups_.end()) {
      Group g;
      g.model = model;
      g.options = options;
      g.options.request_id.clear();
      g.due_ns = now + opt_.max_delay_ns;
      it = groups_.emplace(key, std::move(g)).first;
      wake = true;
    }
    it->second.rows += rows;
    it->second.members.push_back(std::move(m));
    if (it->second.rows >= limit || opt_.max_delay_ns <= 0) {
      stats_.full_flushes++;
      to_send.push_back(std::move(it->second));
      groups_.erase(it);
    }
    for (auto& g : to_send) {
      stats_.rpcs++;
      stats_.rows += g.rows;
    }
  }
  if (wake) cv_.notify_one();
  for (auto& g : to_send) send_group(std::move(g));
}

void Coalescer::timer_loop() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    int64_t earliest = INT64_MAX;
    for (auto& [k, g] : groups_) earliest = std::min(earliest, g.due_ns);
    if (earliest == INT64_MAX) {
      cv_.wait(lk);
      continue;
    }
    int64_t now = now_ns();
    if (earliest > now) {
      cv_.wait_for(lk, std::chrono::nanoseconds(earliest - now));
      continue;
    }
    std::vector<Group> due;
    for (auto it = groups_.begin(); it != groups_.end();) {
      if (it->second.due_ns <= now) {
        stats_.timer_flushes++;
        stats_.rpcs++;
        stats_.rows += it->second.rows;
        due.push_back(std::move(it->second));
        it = groups_.erase(it);
      } else {
        ++it;
      }
    }
    lk.unlock();
    for (auto& g : due) send_group(std::move(g));
    lk.lock();
  }
}

void Coalescer::send_group(Group g) {
  struct Shared {
    std::vector<Member> members;
    std::vector<int64_t> offsets;
  };
  auto sh = std::make_shared<Shared>();
  sh->members = std::move(g.members);
  std::vector<const std::vector<NamedTensor>*> parts;
  sh->offsets.push_back(0);
  int64_t deadline = 0;
  for (auto& m : sh->members) {
    parts.push_back(&m.inputs);
    sh->offsets.push_back(sh->offsets.back() + m.rows);
    if (m.deadline_ns > 0) deadline = deadline == 0 ? m.deadline_ns : std::min(deadline, m.deadline_ns);
  }
  std::vector<NamedTensor> merged;
  if (sh->members.size() == 1) {
    merged = std::move(sh->members[0].inputs);
  } else {
    merged = concat_batch(parts);  // signature-equal by construction of the key
    for (auto& m : sh->members) m.inputs.clear();
  }
  InferOptions o = g.options;
  if (deadline > 0) o.timeout_ns = std::max<int64_t>(1, deadline - now_ns());
  send_(g.model, std::move(merged), o, [sh](InferResult r) {
    const int64_t end = now_ns();
    std::vector<std::vector<NamedTensor>> split;
    std::optional<Error> err = r.error;
    if (!err) {
      try {
        split = split_batch(r.outputs, sh->offsets);
      } catch (const Error& e) {
        err = e.with_context({.model = r.provenance.model});
      }
    }
    for (size_t i = 0; i < sh->members.size(); ++i) {
      auto& m = sh->members[i];
      InferResult mine;
      mine.request_id = m.request_id;
      mine.provenance = r.provenance;
      mine.client_ns = end - m.start_ns;
      if (err) mine.error = err;
      else mine.outputs = std::move(split[i]);
      m.done(std::move(mine));
    }
  });
}

}  // namespace quiver::client
