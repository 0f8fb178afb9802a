#include "serve/scheduler.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>

#include "quiver/core/batching.hpp"
#include "quiver/core/util.hpp"

namespace quiver::serve {

// A finished batch on its way to the responder: the requests and a copy of the outputs (the
// instance's own are overwritten by its next batch).
struct Scheduler::Responses {
  std::vector<Pending> batch;
  std::vector<Tensor> outputs;
  int64_t total = 0;  // rows
};

struct Scheduler::Instance {
  std::unique_ptr<RunState> state;
  std::vector<Tensor> batch_inputs;
  std::vector<Tensor> outputs;
  std::vector<const Tensor*> parts;  // one input of every request of a batch
  std::thread thread;
  // The responder (dynamic batching): batches handed over, answered in order.
  std::thread responder;
  std::mutex resp_mu;
  std::condition_variable resp_cv;
  std::deque<Responses> handed;
  bool resp_stop = false;
};

static uint64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

std::unique_ptr<Scheduler::Instance> Scheduler::new_instance() const {
  auto inst = std::make_unique<Instance>();
  inst->state = model_->make_state();
  return inst;
}

Scheduler::Scheduler(std::shared_ptr<const Model> model, SchedulerOptions opt, std::string label)
    : model_(std::move(model)), opt_(std::move(opt)), label_(std::move(label)) {
  levels_ = opt_.priority_levels > 0 ? opt_.priority_levels : 1;
  queues_.resize(levels_);
  delayed_.resize(levels_);
  if (opt_.instances < 1) opt_.instances = 1;
  if (opt_.max_batch <= 0) opt_.dynamic_batching = false;
  std::sort(opt_.preferred_batch_sizes.begin(), opt_.preferred_batch_sizes.end());
  for (int i = 0; i < opt_.instances; ++i) instances_.push_back(new_instance());
  for (auto& inst : instances_) {
    Instance* p = inst.get();
    if (opt_.dynamic_batching) p->responder = std::thread([this, p] { responder(*p); });
    p->thread = std::thread([this, p] { worker(*p); });
  }
}

Scheduler::~Scheduler() {
  stop();
  for (auto& inst : instances_)
    if (inst->thread.joinable()) inst->thread.join();
  // The instances have handed over their last batches: the responders answer them, then end.
  for (auto& inst : instances_) {
    {
      std::lock_guard lk(inst->resp_mu);
      inst->resp_stop = true;
    }
    inst->resp_cv.notify_one();
    if (inst->responder.joinable()) inst->responder.join();
  }
}

bool Scheduler::on_worker_thread() const {
  for (const auto& inst : instances_)
    if (inst->thread.get_id() == std::this_thread::get_id() || inst->responder.get_id() == std::this_thread::get_id())
      return true;
  return false;
}

void Scheduler::warm_up(std::span<const Tensor> inputs, int count) {
  std::vector<Instance*> all;
  {
    std::lock_guard lk(mu_);
    while (static_cast<int>(spare_.size()) < opt_.instances) spare_.push_back(new_instance());
    for (auto& i : instances_) all.push_back(i.get());
    for (auto& i : spare_) all.push_back(i.get());
  }
  // The worker threads only touch their state for a request, and none has arrived yet.
  for (Instance* inst : all)
    for (int k = 0; k < std::max(1, count); ++k) model_->run(inputs, inst->outputs, *inst->state);
}

PrepareReport Scheduler::prepare(const std::string& configured, const ErrorWhere& where) {
  std::vector<RunState*> states;
  {
    std::lock_guard lk(mu_);
    // The inline path (no batcher, no ordering) runs on spare states: size as many as it can use.
    if (!opt_.dynamic_batching && !opt_.preserve_ordering)
      while (static_cast<int>(spare_.size()) < opt_.instances) spare_.push_back(new_instance());
    for (auto& i : instances_) states.push_back(i->state.get());
    for (auto& i : spare_) states.push_back(i->state.get());
  }
  PrepareSpec automatic;
  automatic.batch = 1;
  if (opt_.dynamic_batching)
    automatic.batch = opt_.preferred_batch_sizes.empty() ? opt_.max_batch : opt_.preferred_batch_sizes.back();
  // The worker threads only touch their state for a request, and none has arrived yet.
  return prepare_states(*model_, states, configured, automatic, where, opt_.max_batch);
}

size_t Scheduler::state_bytes() const {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (const auto& i : instances_) n += quiver::state_bytes(*i->state);
  for (const auto& i : spare_) n += quiver::state_bytes(*i->state);
  return n;
}

void Scheduler::stop() {
  std::lock_guard lk(mu_);
  stopping_ = true;
  cv_.notify_all();
}

void Scheduler::drain() {
  std::unique_lock lk(mu_);
  idle_cv_.wait(lk, [&] { return in_flight_ == 0; });
}

const QueuePolicy& Scheduler::policy(size_t level) const {
  auto it = opt_.priority_policy.find(level + 1);
  return it != opt_.priority_policy.end() ? it->second : opt_.default_policy;
}

void Scheduler::enqueue(std::unique_ptr<InferRequest> req) {
  if (req->arrival_ns == 0) req->arrival_ns = now_ns();
  Status reject;
  {
    std::unique_lock lk(mu_);
    size_t level;
    if (opt_.priority_levels == 0 || req->priority == 0) {
      level = opt_.default_priority > 0 ? opt_.default_priority - 1 : 0;
    } else {
      level = req->priority - 1;
    }
    if (level >= levels_) level = levels_ - 1;
    const QueuePolicy& pol = policy(level);
    if (stopping_) {
      reject = Status::error(ErrorCode::Unavailable, label_ + " is unloading or the server is shutting down");
    } else if (pol.max_queue_size > 0 && queues_[level].size() + delayed_[level].size() >= pol.max_queue_size) {
      reject = Status::error(ErrorCode::Unavailable,
                             "Exceeds maximum queue size (" + std::to_string(pol.max_queue_size) + ") of " + label_);
    } else {
      Pending p;
      p.level = level;
      p.seq = next_seq_++;
      uint64_t timeout = pol.default_timeout_us;
      if (req->timeout_us > 0 && (pol.allow_timeout_override || timeout == 0)) timeout = req->timeout_us;
      if (timeout > 0) p.deadline_ns = req->arrival_ns + static_cast<int64_t>(timeout) * 1000;
      p.req = std::move(req);
      // Inline fast path (see header): only for short executions, so that transport threads
      // are not held for long.
      constexpr int64_t kInlineMaxNs = 300000;
      if (!opt_.dynamic_batching && !opt_.preserve_ordering && queued_ == 0 && busy_ < opt_.instances &&
          avg_exec_ns_.load(std::memory_order_relaxed) < kInlineMaxNs) {
        ++busy_;
        ++in_flight_;
        std::unique_ptr<Instance> inst;
        if (!spare_.empty()) {
          inst = std::move(spare_.back());
          spare_.pop_back();
        }
        lk.unlock();
        if (!inst) inst = new_instance();
        std::vector<Pending> batch;
        batch.push_back(std::move(p));
        execute(*inst, batch);
        lk.lock();
        spare_.push_back(std::move(inst));
        --busy_;
        if (queued_ > 0) cv_.notify_one();
        lk.unlock();
        // The request (its completion may hold the last reference to this model version, when
        // it was unloaded meanwhile) is released only after the last use of `this`.
        batch.clear();
        return;
      }
      if (p.deadline_ns > 0) next_deadline_ns_ = std::min(next_deadline_ns_, p.deadline_ns);
      const bool expires_sooner = p.deadline_ns > 0 && p.deadline_ns < delay_wake_ns_;
      queued_rows_ += p.req->batch;
      queues_[level].push_back(std::move(p));
      ++queued_;
      ++in_flight_;
      if (idle_waiters_ > 0 ||
          (delay_waiters_ > 0 && (queued_rows_ >= opt_.max_batch || !opt_.preferred_batch_sizes.empty() || expires_sooner)))
        cv_.notify_one();
      return;
    }
  }
  {
    std::lock_guard lk(stats_mu_);
    stats_.fail.add(static_cast<uint64_t>(now_ns() - req->arrival_ns));
    stats_.failures[FailReason::Rejected]++;
  }
  req->complete(reject, FailReason::Rejected, {});
}

bool Scheduler::compatible(const InferRequest& a, const InferRequest& b) const {
  if (a.inputs.size() != b.inputs.size()) return false;
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    const auto& da = a.inputs[i].dims();
    const auto& db = b.inputs[i].dims();
    if (da.size() != db.size() || da.empty()) return false;
    if (!std::equal(da.begin() + 1, da.end(), db.begin() + 1)) return false;
  }
  return true;
}

std::vector<Scheduler::Pending> Scheduler::next_batch(std::unique_lock<std::mutex>& lk,
                                                      std::vector<Pending>& rejected) {
  for (;;) {
    if (queued_ == 0 || busy_ >= opt_.instances) {
      if (stopping_ && queued_ == 0) return {};
      ++idle_waiters_;
      cv_.wait(lk);
      --idle_waiters_;
      continue;
    }
    int64_t now = now_ns();
    // Queue policy: requests past their deadline are rejected or moved behind the others.
    if (now >= next_deadline_ns_) {
      next_deadline_ns_ = INT64_MAX;
      for (size_t l = 0; l < levels_; ++l) {
        auto& q = queues_[l];
        for (auto it = q.begin(); it != q.end();) {
          if (it->deadline_ns == 0 || now < it->deadline_ns) {
            if (it->deadline_ns > 0) next_deadline_ns_ = std::min(next_deadline_ns_, it->deadline_ns);
            ++it;
            continue;
          }
          if (policy(l).delay_on_timeout) {
            it->delayed = true;
            delayed_[l].push_back(std::move(*it));
          } else {
            queued_rows_ -= it->req->batch;
            rejected.push_back(std::move(*it));
            --queued_;
          }
          it = q.erase(it);
        }
      }
    }
    if (!rejected.empty()) return {};
    if (queued_ == 0) continue;

    // Candidate order: normal queues by priority, then the delayed ones.
    std::vector<std::pair<std::deque<Pending>*, size_t>> order;
    Pending* head = nullptr;
    std::deque<Pending>* head_q = nullptr;
    for (auto* qs : {&queues_, &delayed_})
      for (auto& q : *qs)
        if (!q.empty() && !head) { head = &q.front(); head_q = &q; }
    if (!head) continue;

    std::vector<Pending> batch;
    if (!opt_.dynamic_batching) {
      batch.push_back(std::move(head_q->front()));
      head_q->pop_front();
      --queued_;
      queued_rows_ -= batch.back().req->batch;
      ++busy_;
      return batch;
    }
    // Gather shape-compatible requests in priority order up to max_batch.
    struct Pick { std::deque<Pending>* q; size_t idx; int64_t cum; };
    std::vector<Pick> picks;
    int64_t total = 0;
    bool full = false;
    for (auto* qs : {&queues_, &delayed_}) {
      for (auto& q : *qs) {
        for (size_t i = 0; i < q.size() && !full; ++i) {
          if (!compatible(*head->req, *q[i].req)) continue;
          if (total + q[i].req->batch > opt_.max_batch) { full = true; break; }
          total += q[i].req->batch;
          picks.push_back({&q, i, total});
        }
      }
    }
    if (total >= opt_.max_batch) full = true;
    // A head larger than max_batch on its own (the transports refuse those; other callers may
    // not) runs alone rather than never: an empty batch would end the worker with the request
    // still counted in flight.
    if (picks.empty()) picks.push_back({head_q, 0, head->req->batch});
    size_t take = picks.size();
    bool run_now = full || stopping_ || opt_.max_queue_delay_us == 0;
    int64_t deadline = head->req->arrival_ns + static_cast<int64_t>(opt_.max_queue_delay_us) * 1000;
    if (!opt_.preferred_batch_sizes.empty() && !full) {
      // Largest preferred size that a prefix of the candidates forms exactly: run it now.
      size_t best = 0;
      for (size_t k = 0; k < picks.size(); ++k)
        if (std::binary_search(opt_.preferred_batch_sizes.begin(), opt_.preferred_batch_sizes.end(), picks[k].cum))
          best = k + 1;
      if (best > 0 && (best == picks.size() || opt_.max_queue_delay_us == 0 || now < deadline)) {
        take = best;
        run_now = true;
      }
    }
    if (!run_now && now < deadline) {
      // Wake for the batch's deadline or a queued request's expiry, whichever comes first (a
      // request must not outlive its timeout because a long batching delay is running).
      const int64_t wake = std::min(deadline, next_deadline_ns_);
      ++delay_waiters_;
      delay_wake_ns_ = std::min(delay_wake_ns_, wake);
      cv_.wait_until(lk, std::chrono::steady_clock::time_point(std::chrono::nanoseconds(wake)));
      if (--delay_waiters_ == 0) delay_wake_ns_ = INT64_MAX;
      continue;
    }
    // Remove picks (indices shift per queue: erase from the back).
    batch.reserve(take);
    for (size_t k = 0; k < take; ++k) batch.push_back(std::move((*picks[k].q)[picks[k].idx]));
    for (size_t k = take; k-- > 0;) picks[k].q->erase(picks[k].q->begin() + static_cast<long>(picks[k].idx));
    queued_ -= take;
    queued_rows_ -= picks[take - 1].cum;
    ++busy_;
    if (queued_ > 0) cv_.notify_one();  // another instance may start on the rest
    return batch;
  }
}

void Scheduler::worker(Instance& inst) {
  std::unique_lock lk(mu_);
  for (;;) {
    std::vector<Pending> rejected;
    std::vector<Pending> batch = next_batch(lk, rejected);
    if (batch.empty() && rejected.empty()) return;  // stopping and drained
    lk.unlock();
    for (auto& p : rejected)
      finish(p, Status::error(ErrorCode::Unavailable, "Request timeout expired in the queue of " + label_),
             FailReason::Rejected, {}, 0);
    const bool ran = !batch.empty();
    if (ran) execute(inst, batch);
    lk.lock();
    if (ran) {
      --busy_;
      if (queued_ > 0) cv_.notify_one();
    }
  }
}

void Scheduler::execute(Instance& inst, std::vector<Pending>& batch) {
  const int64_t t0 = now_ns();
  int64_t total = 0;
  for (auto& p : batch) total += p.req->batch;
  std::span<const Tensor> inputs;
  Status failure;
  const ModelInfo& mi = model_->info();
  try {
    if (batch.size() == 1) {
      inputs = batch[0].req->inputs;
    } else {
      const auto& first = batch[0].req->inputs;
      inst.batch_inputs.resize(first.size());
      inst.parts.resize(batch.size());
      for (size_t i = 0; i < first.size(); ++i) {
        for (size_t r = 0; r < batch.size(); ++r) inst.parts[r] = &batch[r].req->inputs[i];
        join_rows(inst.parts, inst.batch_inputs[i], i < mi.inputs.size() ? mi.inputs[i].name : "");
      }
      inputs = inst.batch_inputs;
    }
  } catch (const Error& e) {
    failure = Status::from(e);
  } catch (const std::exception& e) {
    failure = Status::error(ErrorCode::Internal, std::string("batching inputs: ") + e.what());
  }
  const int64_t t1 = now_ns();
  if (failure.ok) {
    try {
      model_->run(inputs, inst.outputs, *inst.state);
      if (batch.size() > 1) {
        for (size_t o = 0; o < inst.outputs.size(); ++o) {
          const Tensor& t = inst.outputs[o];
          if (t.rank() == 0 || t.dim(0) != total)
            throw Error(ErrorCode::Internal,
                        "model returned an output whose first dimension is not the batch size " + std::to_string(total),
                        {mi.name, "", o < mi.outputs.size() ? mi.outputs[o].name : ""});
        }
      }
    } catch (const Error& e) {
      failure = Status::from(e.with_context({mi.name}));
    } catch (const std::exception& e) {
      failure = Status::error(ErrorCode::Internal, label_ + ": " + e.what());
    }
  }
  const int64_t t2 = now_ns();
  {
    // Typical execution time, robust to preemption spikes on a busy machine: follows a faster
    // sample at once, a slower one gradually (a genuinely slow model still crosses the inline
    // threshold after its first execution).
    int64_t avg = avg_exec_ns_.load(std::memory_order_relaxed), x = t2 - t1;
    avg_exec_ns_.store(avg == 0 || x < avg ? x : avg + (x - avg) / 64, std::memory_order_relaxed);
  }
  if (!failure.ok) {
    for (auto& p : batch) finish(p, failure, FailReason::Backend, {}, t0);
    return;
  }
  // Statistics of the whole execution in one step, before any response leaves: a snapshot sees
  // each request in all of success, queue and compute input / infer / output or in none of them
  // (perf_analyzer refuses unequal compute counts), and never lags behind what clients saw. The
  // output phase (slicing, encoding and handing each response to the transport) is timed after
  // the callbacks; its nanoseconds follow, without changing a count.
  {
    std::lock_guard lk(stats_mu_);
    stats_.execution_count++;
    stats_.inference_count += static_cast<uint64_t>(total);
    stats_.last_inference_ms = wall_ms();
    auto& b = stats_.batch[static_cast<uint64_t>(total)];
    b[0].add(t1 - t0);
    b[1].add(t2 - t1);
    b[2].count++;
    for (const auto& p : batch) {
      stats_.queue.add(static_cast<uint64_t>(t0 - p.req->arrival_ns));
      stats_.compute_input.add(t1 - t0);
      stats_.compute_infer.add(t2 - t1);
      stats_.compute_output.count++;
      stats_.success.add(static_cast<uint64_t>(t2 - p.req->arrival_ns));
    }
  }
  if (!inst.responder.joinable() || inst.thread.get_id() != std::this_thread::get_id()) {
    respond(batch, inst.outputs, total);
    return;
  }
  // Handed over: the copy costs a memcpy of the batch's outputs, the answers cost far more.
  Responses r;
  r.total = total;
  r.batch = std::move(batch);
  r.outputs.reserve(inst.outputs.size());
  for (const auto& t : inst.outputs) r.outputs.push_back(t.clone());
  {
    std::lock_guard lk(inst.resp_mu);
    inst.handed.push_back(std::move(r));
  }
  inst.resp_cv.notify_one();
}

void Scheduler::responder(Instance& inst) {
  std::unique_lock lk(inst.resp_mu);
  for (;;) {
    inst.resp_cv.wait(lk, [&] { return !inst.handed.empty() || inst.resp_stop; });
    if (inst.handed.empty()) return;  // stopping, and everything handed over is answered
    Responses r = std::move(inst.handed.front());
    inst.handed.pop_front();
    lk.unlock();
    respond(r.batch, r.outputs, r.total);
    // The requests (a completion may hold the last reference to this model version) are released
    // here, before this thread waits again; the version's owner never joins it from here
    // (on_worker_thread).
    r = Responses();
    lk.lock();
  }
}

// Hands each request of a finished batch its rows of every output (views, valid during the
// callback); the output phase's time goes to the statistics.
void Scheduler::respond(std::vector<Pending>& batch, std::span<const Tensor> outputs, int64_t total) {
  const int64_t t2 = now_ns();
  const uint64_t n = batch.size();
  std::vector<Tensor> slices;
  int64_t row = 0;
  for (auto& p : batch) {
    const int64_t rows = p.req->batch;  // finish() may move the request away (preserve_ordering)
    if (batch.size() == 1) {
      finish(p, Status::success(), FailReason::Other, outputs, -1);
    } else {
      slices.resize(outputs.size());
      for (size_t o = 0; o < outputs.size(); ++o) slices[o] = outputs[o].rows(row, rows);
      finish(p, Status::success(), FailReason::Other, slices, -1);
    }
    row += rows;
  }
  const uint64_t out_ns = static_cast<uint64_t>(now_ns() - t2);
  std::lock_guard lk(stats_mu_);
  stats_.batch[static_cast<uint64_t>(total)][2].ns += out_ns;
  stats_.compute_output.ns += out_ns * n;
  stats_.success.ns += out_ns * n;
}

// `exec_start`: >= 0 for a failure (its time and reason counted here; queue and compute times
// count successes only, as in Triton), < 0 for a success, whose statistics execute() has recorded.
void Scheduler::finish(Pending& p, const Status& st, FailReason why, std::span<const Tensor> outputs,
                       int64_t exec_start) {
  InferRequest& r = *p.req;
  const bool counted = exec_start < 0;
  auto account = [this, &p, why] {
    int64_t end = now_ns();
    std::lock_guard lk(stats_mu_);
    stats_.fail.add(static_cast<uint64_t>(end - p.req->arrival_ns));
    stats_.failures[why]++;
  };
  auto call = [&r, st, why](std::span<const Tensor> outs) {
    try {
      r.complete(st, why, outs);
    } catch (...) {
      // A transport callback must not take the scheduler down.
    }
  };
  if (!counted) account();  // before the response leaves: statistics never lag behind what clients saw
  if (!opt_.preserve_ordering) {
    call(outputs);
  } else {
    // Keep a copy of the outputs until every earlier request has been answered.
    auto held = std::make_shared<std::vector<Tensor>>();
    for (const auto& t : outputs) held->push_back(t.clone());
    auto owned = std::make_shared<Pending>(std::move(p));
    deliver_ordered(owned->seq, [owned, held, st, why]() mutable {
      try {
        owned->req->complete(st, why, *held);
      } catch (...) {
      }
    });
  }
  std::lock_guard lk(mu_);
  if (--in_flight_ == 0) idle_cv_.notify_all();
}

void Scheduler::deliver_ordered(uint64_t seq, std::function<void()> fn) {
  std::lock_guard lk(order_mu_);
  ready_.emplace(seq, std::move(fn));
  while (!ready_.empty() && ready_.begin()->first == next_deliver_) {
    auto f = std::move(ready_.begin()->second);
    ready_.erase(ready_.begin());
    ++next_deliver_;
    f();
  }
}

void Scheduler::count_failure(FailReason why, int64_t ns) {
  std::lock_guard lk(stats_mu_);
  stats_.fail.add(static_cast<uint64_t>(ns));
  stats_.failures[why]++;
}

std::string stats_inconsistency(const StatsSnapshot& st) {
  std::string why;
  auto expect = [&](const char* what, uint64_t a, uint64_t b) {
    if (a != b) why += std::string(what) + " " + std::to_string(a) + " != " + std::to_string(b) + "; ";
  };
  expect("compute_input vs compute_infer", st.compute_input.count, st.compute_infer.count);
  expect("compute_infer vs compute_output", st.compute_infer.count, st.compute_output.count);
  expect("compute_output vs success", st.compute_output.count, st.success.count);
  expect("success vs queue", st.success.count, st.queue.count);
  uint64_t b_in = 0, b_infer = 0, b_out = 0, rows = 0;
  for (const auto& [size, d] : st.batch) {
    b_in += d[0].count;
    b_infer += d[1].count;
    b_out += d[2].count;
    rows += size * d[0].count;
  }
  expect("batch input vs execution_count", b_in, st.execution_count);
  expect("batch infer vs execution_count", b_infer, st.execution_count);
  expect("batch output vs execution_count", b_out, st.execution_count);
  expect("batch rows vs inference_count", rows, st.inference_count);
  return why;
}

StatsSnapshot Scheduler::stats() const {
  StatsSnapshot s;
  {
    std::lock_guard lk(stats_mu_);
    s = stats_;
  }
  std::lock_guard lk(mu_);
  s.pending = in_flight_;
  return s;
}

}  // namespace quiver::serve
