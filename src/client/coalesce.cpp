#include "quiver/client/coalesce.hpp"

#include <algorithm>
#include <cstring>

#include "quiver/core/shape.hpp"
#include "quiver/core/util.hpp"

namespace quiver::client {

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
