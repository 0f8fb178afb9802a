// Cross-event batching: sub-tasks of parked events are queued; a batch runs when it is full (on the
// thread that filled it), when every in-flight event is waiting here, or when its oldest sub-task
// has waited max_wait (a timer thread enqueues that flush as a TBB task; it never runs a batch).
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "quiver/flow/batch.hpp"

namespace quiver::flow {

struct BatchEngine::Impl {
  struct Pending {
    std::atomic<uint32_t> remaining{0};
    Completion done;
    std::exception_ptr error;
  };
  struct Queued {
    BatchTicket t;
    std::chrono::steady_clock::time_point since;
  };
  Runtime* rt = nullptr;
  int64_t max_batch = 64;
  bool spread = true;
  std::chrono::nanoseconds max_wait{0};
  ProcessFn fn;
  std::string owner;

  std::unique_ptr<Pending[]> pending;
  mutable std::mutex m;
  std::condition_variable cv;
  std::deque<Queued> queue;
  int64_t waiting_events = 0;  // events with sub-tasks not yet processed
  // Events done with this stage but still in flight (e.g. held by an ordered writer): they cannot
  // add sub-tasks, so they count as "waiting" for the idle-flush rule. Indexed by event slot.
  std::vector<char> passed;
  int64_t passed_events = 0;
  void mark_passed_locked(const Event& e) {
    if (!passed[e.slot()]) {
      passed[e.slot()] = 1;
      passed_events++;
    }
  }
  bool stop = false;
  std::thread timer;
  BatchStats stats;

  // Takes up to `limit` tickets from the queue (lock held).
  std::vector<BatchTicket> take_locked(int64_t limit) {
    size_t n = std::min(queue.size(), static_cast<size_t>(limit));
    std::vector<BatchTicket> b;
    b.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      b.push_back(queue.front().t);
      queue.pop_front();
    }
    return b;
  }

  void run_batch(const std::vector<BatchTicket>& b) {
    std::exception_ptr err;
    try {
      fn(std::span<const BatchTicket>(b));
    } catch (...) {
      err = std::current_exception();
    }
    std::vector<std::pair<Completion, std::exception_ptr>> done_now;
    {
      std::lock_guard<std::mutex> lk(m);
      stats.batches++;
      stats.items += b.size();
      stats.largest = std::max<uint64_t>(stats.largest, b.size());
      for (auto& t : b) {
        Pending& p = pending[t.event->slot()];
        if (err && !p.error) p.error = err;
        if (p.remaining.fetch_sub(1) == 1) {
          waiting_events--;
          mark_passed_locked(*t.event);
          done_now.emplace_back(std::move(p.done), p.error);
          p.done = Completion();
          p.error = nullptr;
        }
      }
    }
    for (auto& [d, e] : done_now) {
      if (e) d.fail(e);
      else d();
    }
  }

  // Batches ready to run (lock held): full ones; and when every in-flight event waits on this stage
  // (or a stop is requested) nothing else can fill the batch, so everything queued, split into one
  // call per worker thread when `spread` is on (otherwise one thread runs the batch while the
  // others have nothing to do).
  std::vector<std::vector<BatchTicket>> collect_locked() {
    std::vector<std::vector<BatchTicket>> ready;
    for (;;) {
      const int64_t queued = static_cast<int64_t>(queue.size());
      if (queued == 0) break;
      if (waiting_events + passed_events >= rt->in_flight() || rt->stopping()) {
        int64_t parts = (queued + max_batch - 1) / max_batch;
        if (spread) {
          const int64_t c = std::max(1, rt->concurrency());
          parts = std::min(queued, (parts + c - 1) / c * c);
        }
        const int64_t chunk = (queued + parts - 1) / parts;
        while (!queue.empty()) ready.push_back(take_locked(chunk));
        break;
      }
      if (queued < max_batch) break;
      ready.push_back(take_locked(max_batch));
    }
    return ready;
  }

  void enqueue_batch(std::vector<BatchTicket>&& b) {
    auto p = std::make_shared<std::vector<BatchTicket>>(std::move(b));
    rt->enqueue([this, p] { run_batch(*p); });
  }

  // An event left the pipeline: in_flight() dropped, so the events queued here may now be all
  // that is in flight. Runs on the finishing thread: batches go to the arena, never run here.
  void on_event_finished(const Event& e) {
    std::vector<std::vector<BatchTicket>> ready;
    {
      std::lock_guard<std::mutex> lk(m);
      if (passed[e.slot()]) {
        passed[e.slot()] = 0;
        passed_events--;
      }
      if (stop || queue.empty()) return;
      ready = collect_locked();
    }
    for (auto& b : ready) enqueue_batch(std::move(b));
  }

  void timer_loop() {
    std::unique_lock<std::mutex> lk(m);
    while (!stop) {
      if (queue.empty()) {
        cv.wait(lk);
        continue;
      }
      auto due = queue.front().since + max_wait;
      if (std::chrono::steady_clock::now() < due && !rt->stopping()) {
        cv.wait_until(lk, std::min(due, std::chrono::steady_clock::now() + std::chrono::milliseconds(50)));
        continue;
      }
      auto b = take_locked(max_batch);
      stats.timer_flushes++;
      lk.unlock();
      enqueue_batch(std::move(b));
      lk.lock();
    }
  }
};

BatchEngine::BatchEngine() : impl_(std::make_unique<Impl>()) {}
BatchEngine::~BatchEngine() { stop(); }

void BatchEngine::start(Runtime& rt, size_t pool_size, int64_t max_batch, double max_wait_ms, ProcessFn fn,
                        std::string owner) {
  stop();
  if (max_batch < 1)
    throw Error(ErrorCode::InvalidArgument, "max_batch must be >= 1", ErrorWhere{.node = owner});
  if (max_wait_ms < 0)
    throw Error(ErrorCode::InvalidArgument, "max_wait_ms must be >= 0", ErrorWhere{.node = owner});
  auto& I = *impl_;
  I.rt = &rt;
  I.max_batch = max_batch;
  I.max_wait = std::chrono::nanoseconds(static_cast<int64_t>(max_wait_ms * 1e6));
  I.fn = std::move(fn);
  I.owner = std::move(owner);
  I.pending = std::make_unique<Impl::Pending[]>(pool_size);
  I.queue.clear();
  I.waiting_events = 0;
  I.stop = false;
  I.stats = {};
  I.passed.assign(pool_size, 0);
  I.passed_events = 0;
  rt.on_event_finished([this](const Event& e) { impl_->on_event_finished(e); });
  I.timer = std::thread([this] { impl_->timer_loop(); });
}

void BatchEngine::stop() {
  auto& I = *impl_;
  if (!I.timer.joinable()) return;
  {
    std::lock_guard<std::mutex> lk(I.m);
    I.stop = true;
  }
  I.cv.notify_all();
  I.timer.join();
}

void BatchEngine::submit(Event& e, size_t n, Completion done) {
  auto& I = *impl_;
  if (n == 0) {
    // Nothing to queue, but this event now counts as passed, which may make the events queued
    // here all that can still add work: check the idle flush too.
    std::vector<std::vector<BatchTicket>> ready;
    {
      std::lock_guard<std::mutex> lk(I.m);
      I.mark_passed_locked(e);
      ready = I.collect_locked();
    }
    done();
    for (auto& b : ready) I.enqueue_batch(std::move(b));
    return;
  }
  auto now = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lk(I.m);
  Impl::Pending& p = I.pending[e.slot()];
  p.remaining.store(static_cast<uint32_t>(n));
  p.done = std::move(done);
  p.error = nullptr;
  I.waiting_events++;
  bool was_empty = I.queue.empty();
  for (size_t i = 0; i < n; ++i) I.queue.push_back({BatchTicket{&e, static_cast<uint32_t>(i)}, now});
  // Full batches run here, on this thread; an idle flush (see collect_locked) is spread over the
  // arena: all but the last batch become tasks, the last runs here.
  auto ready = I.collect_locked();
  if (!ready.empty()) {
    lk.unlock();
    for (size_t i = 0; i + 1 < ready.size(); ++i) I.enqueue_batch(std::move(ready[i]));
    I.run_batch(ready.back());
    lk.lock();
  }
  if (was_empty && !I.queue.empty()) {
    lk.unlock();
    I.cv.notify_all();
  }
}

void BatchEngine::set_spread(bool on) { impl_->spread = on; }

BatchStats BatchEngine::stats() const {
  std::lock_guard<std::mutex> lk(impl_->m);
  return impl_->stats;
}

// ---------------------------------------------------------------- BatchStageBase
BatchStageBase::BatchStageBase() = default;
BatchStageBase::~BatchStageBase() = default;

void BatchStageBase::init() {
  stage_resize(pool_size());
  on_init();
  engine_.set_spread(*spread_);
  engine_.start(runtime(), pool_size(), *max_batch_, *max_wait_ms_,
                [this](std::span<const BatchTicket> b) { stage_process(b); }, name());
}
void BatchStageBase::finish() {
  engine_.stop();
  on_finish();
}
void BatchStageBase::acquire(Event& e, Completion done) {
  size_t n = stage_unfold(e);
  engine_.submit(e, n, std::move(done));
}
void BatchStageBase::produce(Event& e) { stage_fold(e); }

}  // namespace quiver::flow
