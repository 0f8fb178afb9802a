// The runner: executes a Topology (topology.cpp) with a fixed pool of in-flight event slots on a
// oneTBB arena. It reads no parameter and wires nothing: the plan is complete when it starts.
//
// Life of an event: a free slot is filled by the source (one thread at a time), then the event's
// async factories run in dependency order — acquire() starts the work and the event is parked
// holding a deferred TBB task (tbb::task_group::defer), which completion() submits to the arena
// from whatever thread it runs on — then processors run: parallel ones inline, sequential ones
// through a non-blocking serializer (the thread that finds it idle drains it; in ordered mode a
// ring buffer releases events in emission order). Lazy factories run inside Input access. When
// the event is done its slot returns to the free queue and the source is pumped again.
// No thread ever waits for an external reply; the main thread waits in task_group::wait(), which
// also executes tasks.
#include <oneapi/tbb/concurrent_queue.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <functional>
#include <map>
#include <thread>

#include "flow/internal.hpp"
#include "quiver/core/util.hpp"
#include "quiver/flow/application.hpp"
#include "quiver/flow/topology.hpp"

// oneTBB is not built with ThreadSanitizer, so TSAN cannot see the happens-before edges of its
// task hand-offs; these annotations state them (no-ops in normal builds).
#if defined(__SANITIZE_THREAD__)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#define QUIVER_TSAN_RELEASE(p) __tsan_release(const_cast<void*>(static_cast<const volatile void*>(p)))
#define QUIVER_TSAN_ACQUIRE(p) __tsan_acquire(const_cast<void*>(static_cast<const volatile void*>(p)))
#else
#define QUIVER_TSAN_RELEASE(p) ((void)0)
#define QUIVER_TSAN_ACQUIRE(p) ((void)0)
#endif

namespace quiver::flow {

using detail::EventCtx;

struct Runner;

struct Completion::State {
  Runner* runner = nullptr;
  EventCtx* ctx = nullptr;
  tbb::task_handle handle;
  std::atomic<bool> fired{false};
  void fire(std::exception_ptr e);
  ~State() {
    if (!fired.load())
      fire(std::make_exception_ptr(Error(ErrorCode::Internal, "completion was dropped without being called")));
  }
};

void Completion::operator()() const {
  if (s_) s_->fire(nullptr);
}
void Completion::fail(std::exception_ptr error) const {
  if (s_) s_->fire(error ? error : std::make_exception_ptr(Error(ErrorCode::Internal, "async work failed")));
}

namespace {
thread_local bool tls_pumping = false;
thread_local bool tls_repump = false;
}  // namespace

struct Sequencer {
  std::mutex m;
  bool busy = false;
  bool ordered = true;
  uint64_t next = 0;
  std::vector<EventCtx*> ring;  // ordered: slot seq % size
  std::deque<EventCtx*> fifo;   // unordered
};

struct Runner final : Runtime {
  Application& app;
  const Topology& topo;
  const int threads;
  const size_t pool_n;
  const uint64_t max_events;
  const uint64_t nskip;
  const bool ordered;
  const bool abort_policy;

  const std::vector<Source*>& sources;
  const std::vector<AsyncFactory*>& asyncs;
  std::vector<Processor*> procs;
  std::vector<std::unique_ptr<Sequencer>> seqs;
  std::vector<std::unique_ptr<EventCtx>> pool;

  std::unique_ptr<tbb::global_control> gc;
  std::unique_ptr<tbb::task_arena> arena;
  std::unique_ptr<tbb::task_group> tg;

  tbb::concurrent_queue<EventCtx*> free_q;
  std::atomic<bool> source_busy{false};
  std::atomic<bool> pump_requested{false};
  std::atomic<bool> source_done{false};
  std::atomic<bool> aborting{false};
  std::atomic<int64_t> inflight{0};
  size_t cur_source = 0;
  uint64_t next_seq = 0;
  uint64_t skipped = 0;
  std::atomic<uint64_t> emitted{0};
  std::atomic<uint64_t> failed{0};
  uint64_t gen_base = 0;

  std::mutex fail_m;
  std::vector<EventFailure> failures;
  std::optional<Error> fatal;

  Runner(Application& a, const Topology& t)
      : app(a),
        topo(t),
        threads(t.settings.threads),
        pool_n(t.settings.in_flight),
        max_events(t.settings.max_events),
        nskip(t.settings.nskip),
        ordered(t.settings.ordered),
        abort_policy(t.settings.error_policy == ErrorPolicy::Abort),
        sources(t.sources),
        asyncs(t.asyncs) {
    for (auto& st : t.stages) procs.push_back(st.processor);
  }

  RunSummary run();

  // ---- Runtime
  void enqueue(std::function<void()> task) override {
    QUIVER_TSAN_RELEASE(this);
    arena->enqueue(tg->defer([this, task = std::move(task)] {
      QUIVER_TSAN_ACQUIRE(this);
      struct Done {
        Runner* r;
        ~Done() { QUIVER_TSAN_RELEASE(r); }
      } done_{this};
      try {
        task();
      } catch (const std::exception& e) {
        spdlog::error("[flow] task failed: {}", e.what());
      } catch (...) {
        spdlog::error("[flow] task failed with an unknown exception");
      }
    }));
  }
  int64_t in_flight() const override { return inflight.load(std::memory_order_relaxed); }
  bool stopping() const override { return aborting.load() || app.stop_requested_.load(); }
  int concurrency() const override { return threads; }
  std::vector<std::function<void(const Event&)>> finish_listeners;  // registered during init, read-only after
  void on_event_finished(std::function<void(const Event&)> cb) override { finish_listeners.push_back(std::move(cb)); }

  // ---- failures
  void fail_event(EventCtx* c, const std::string& component, std::exception_ptr e) {
    Error err = detail::to_error(e, component);
    if (c->failed) return;  // first failure of an event wins
    c->failed = true;
    const std::string& comp = err.where().node.empty() ? component : err.where().node;
    std::string msg = "event " + std::to_string(c->event.number()) + " failed in component '" + comp + "': " + err.what();
    c->error = Error(err.code(), msg, ErrorWhere{.node = comp, .offset = static_cast<int64_t>(c->event.number())});
    failed.fetch_add(1);
    {
      std::lock_guard<std::mutex> lk(fail_m);
      if (failures.size() < 1000) failures.push_back({c->event.number(), comp, err.code(), msg});
      if (abort_policy && !fatal) fatal = *c->error;
    }
    if (abort_policy) {
      aborting.store(true);
      spdlog::error("[flow] {} (error_policy=abort: stopping after the events in flight)", msg);
    } else {
      spdlog::warn("[flow] {} (error_policy=skip)", msg);
    }
  }

  // ---- source pump
  void pump() {
    bool outer = !tls_pumping;
    tls_pumping = true;
    for (;;) {
      tls_repump = false;
      EventCtx* last = emit_some();
      if (last) {
        run_event(last);
        continue;
      }
      if (!tls_repump) break;
    }
    if (outer) tls_pumping = false;
  }

  // Emits events into free slots (spawning all but the last, which is returned to run inline).
  EventCtx* emit_some() {
    bool expected = false;
    if (!source_busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) {
      pump_requested.store(true);
      // The holder may have just released; retry once so the request is not lost.
      expected = false;
      if (!source_busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) return nullptr;
    }
    EventCtx* last = nullptr;
    for (;;) {
      if (pump_requested.load(std::memory_order_relaxed)) pump_requested.store(false);
      while (!source_done.load(std::memory_order_relaxed) && !stopping()) {
        EventCtx* c = nullptr;
        if (!free_q.try_pop(c)) break;
        QUIVER_TSAN_ACQUIRE(c);
        if (!fill(c)) {
          free_q.push(c);
          break;
        }
        if (last) {
          EventCtx* l = last;
          QUIVER_TSAN_RELEASE(this);
          tg->run([this, l] {
            QUIVER_TSAN_ACQUIRE(this);
            guarded_run(l);
            QUIVER_TSAN_RELEASE(this);
          });
        }
        last = c;
      }
      source_busy.store(false, std::memory_order_release);
      // Someone asked while we held the source: take it again if there is work.
      if (!pump_requested.load() || source_done.load() || stopping() || free_q.empty()) break;
      expected = false;
      if (!source_busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) break;
    }
    return last;
  }

  // Reads one event into c. False: no event (end of input, failure).
  bool fill(EventCtx* c) {
    for (;;) {
      if (max_events && emitted.load(std::memory_order_relaxed) >= max_events) {
        source_done.store(true);
        return false;
      }
      if (cur_source >= sources.size()) {
        source_done.store(true);
        return false;
      }
      Source* src = sources[cur_source];
      Event& e = c->event;
      e.gen_ = ++gen_base;
      e.sequence_ = next_seq;
      e.number_ = next_seq + skipped;
      c->next_async = 0;
      c->failed = false;
      c->error.reset();
      c->async_error = nullptr;
      bool ok;
      try {
        ok = src->emit(e);
        if (ok)
          for (auto* o : src->outputs()) o->publish(e);
      } catch (...) {
        Error err = detail::to_error(std::current_exception(), src->name());
        std::string msg = "source '" + src->name() + "' failed after " + std::to_string(emitted.load()) +
                          " events (reading event " + std::to_string(e.number()) + "): " + err.what();
        spdlog::error("[flow] {}", msg);
        std::lock_guard<std::mutex> lk(fail_m);
        if (!fatal) fatal = Error(err.code(), msg, ErrorWhere{.node = src->name()});
        source_done.store(true);
        return false;
      }
      if (!ok) {
        ++cur_source;
        continue;
      }
      if (skipped < nskip) {
        ++skipped;
        continue;
      }
      ++next_seq;
      emitted.store(emitted.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // source lock held
      inflight.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }

  void guarded_run(EventCtx* c) {
    pump_guard([&] { run_event(c); });
  }
  // Runs f with the pump loop active on this thread, so that events finishing inside f restart
  // the source iteratively instead of recursively.
  template <class F>
  void pump_guard(F&& f) {
    if (tls_pumping) {
      f();
      return;
    }
    tls_pumping = true;
    tls_repump = false;
    f();
    bool again = tls_repump;
    tls_pumping = false;
    if (again || pump_requested.load()) pump();
  }

  // ---- event steps
  void run_event(EventCtx* c) {
    if (c->next_async < asyncs.size() && !c->failed) {
      AsyncFactory* af = asyncs[c->next_async];
      auto st = std::make_shared<Completion::State>();
      st->runner = this;
      st->ctx = c;
      st->handle = tg->defer([this, c] {
        QUIVER_TSAN_ACQUIRE(c);
        resume(c);
        QUIVER_TSAN_RELEASE(this);
      });
      Completion keep(st);
      st.reset();
      try {
        af->acquire(c->event, keep);
      } catch (...) {
        // The event resumes exactly once: with this error unless the component already completed.
        std::exception_ptr e = std::current_exception();
        if (!keep.s_->fired.load()) {
          keep.fail(e);
        } else {
          Error err = detail::to_error(e, af->name());
          spdlog::error("[{}] acquire threw after completing: {}", af->name(), err.what());
        }
      }
      return;  // parked until completion
    }
    run_processors(c, 0);
  }

  void resume(EventCtx* c) {
    pump_guard([&] {
      AsyncFactory* af = asyncs[c->next_async];
      if (c->async_error) {
        fail_event(c, af->name(), c->async_error);
      } else {
        try {
          af->produce(c->event);
          for (auto* o : af->outputs()) o->publish(c->event);
        } catch (...) {
          fail_event(c, af->name(), std::current_exception());
        }
      }
      c->async_error = nullptr;
      c->next_async++;
      run_event(c);
    });
  }

  void run_processors(EventCtx* c, size_t from) {
    for (size_t i = from; i < procs.size(); ++i) {
      if (seqs[i]) {
        // Lazy factories behind a sequential processor's declared inputs run here, in parallel,
        // not inside the serialized stage (otherwise the work they do is serialized too).
        if (!c->failed) {
          try {
            for (const InputBase* in : procs[i]->inputs()) (void)c->event.get_slot(in->index());
          } catch (...) {
            fail_event(c, procs[i]->name(), std::current_exception());
          }
        }
        submit_sequential(i, c);
        return;
      }
      if (c->failed) continue;
      try {
        procs[i]->process(c->event);
      } catch (...) {
        fail_event(c, procs[i]->name(), std::current_exception());
      }
    }
    finish_event(c);
  }

  void submit_sequential(size_t i, EventCtx* c) {
    Sequencer& s = *seqs[i];
    std::unique_lock<std::mutex> lk(s.m);
    if (s.ordered) s.ring[c->event.sequence() % s.ring.size()] = c;
    else s.fifo.push_back(c);
    if (s.busy) return;
    s.busy = true;
    for (;;) {
      EventCtx* x = nullptr;
      if (s.ordered) {
        EventCtx*& r = s.ring[s.next % s.ring.size()];
        if (r && r->event.sequence() == s.next) {
          x = r;
          r = nullptr;
          ++s.next;
        }
      } else if (!s.fifo.empty()) {
        x = s.fifo.front();
        s.fifo.pop_front();
      }
      if (!x) {
        s.busy = false;
        return;
      }
      lk.unlock();
      Processor* p = procs[i];
      if (!x->failed) {
        try {
          p->process(x->event);
        } catch (...) {
          fail_event(x, p->name(), std::current_exception());
        }
      }
      if (x->failed) {  // failed upstream, or in this processor: let it record the failure
        try {
          p->failed(x->event, *x->error);
        } catch (const std::exception& e) {
          spdlog::error("[{}] failed() threw: {}", p->name(), e.what());
        }
      }
      run_processors(x, i + 1);
      lk.lock();
    }
  }

  void finish_event(EventCtx* c) {
    QUIVER_TSAN_RELEASE(c);
    inflight.fetch_sub(1, std::memory_order_release);
    for (auto& cb : finish_listeners) cb(c->event);  // before the slot can be reused
    free_q.push(c);
    if (tls_pumping) tls_repump = true;
    else pump();
  }
};

void Completion::State::fire(std::exception_ptr e) {
  if (fired.exchange(true)) return;
  ctx->async_error = e;
  QUIVER_TSAN_RELEASE(ctx);
  runner->arena->enqueue(std::move(handle));
}

RunSummary Runner::run() {
  Runner& r = *this;
  RunSummary sum;

  // ---- event pool
  r.pool.reserve(r.pool_n);
  for (size_t s = 0; s < r.pool_n; ++s) {
    auto c = std::unique_ptr<EventCtx>(new EventCtx());
    c->event.slot_ = s;
    c->event.topo_ = &topo;
    for (auto& p : topo.products) c->event.slots_.push_back(p.output->make_slot());
    c->event.fstate_ = std::make_unique<detail::FactoryState[]>(topo.factories.size());
    r.free_q.push(c.get());
    r.pool.push_back(std::move(c));
  }
  r.seqs.resize(r.procs.size());
  for (size_t i = 0; i < r.procs.size(); ++i)
    if (topo.stages[i].sequential) {
      r.seqs[i] = std::make_unique<Sequencer>();
      r.seqs[i]->ordered = r.ordered;
      r.seqs[i]->ring.assign(r.pool_n, nullptr);
    }

  spdlog::set_level(spdlog::level::trace);  // components filter by their own level

  // ---- TBB
  if (r.threads > static_cast<int>(tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism)))
    r.gc = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, r.threads);
  r.arena = std::make_unique<tbb::task_arena>(r.threads);
  r.arena->initialize();
  r.tg = std::make_unique<tbb::task_group>();

  // ---- init
  std::vector<Component*> inited;
  auto finish_all = [&] {
    for (auto it = inited.rbegin(); it != inited.rend(); ++it) {
      try {
        (*it)->finish();
      } catch (...) {
        Error e = detail::to_error(std::current_exception(), (*it)->name());
        spdlog::error("[flow] finish of '{}' failed: {}", (*it)->name(), e.what());
        if (!r.fatal) r.fatal = Error(e.code(), std::string("finish failed: ") + e.what(), ErrorWhere{.node = (*it)->name()});
      }
      (*it)->runtime_ = nullptr;
    }
  };
  for (auto& node : topo.components) {
    Component* c = node.component;
    c->runtime_ = &r;
    c->pool_size_ = r.pool_n;
    try {
      c->init();
    } catch (...) {
      Error e = detail::to_error(std::current_exception(), c->name());
      c->runtime_ = nullptr;
      finish_all();
      throw Error(e.code(), "init of component '" + c->name() + "' failed: " + e.what(), ErrorWhere{.node = c->name()});
    }
    inited.push_back(c);
  }

  // ---- ticker
  std::mutex tick_m;
  std::condition_variable tick_cv;
  bool tick_stop = false;
  std::thread ticker;
  int64_t t0 = now_ns();
  const double ticker_s = topo.settings.ticker_s;
  if (ticker_s > 0) {
    ticker = std::thread([&] {
      std::unique_lock<std::mutex> lk(tick_m);
      uint64_t last = 0;
      int64_t tl = t0;
      while (!tick_cv.wait_for(lk, std::chrono::duration<double>(ticker_s), [&] { return tick_stop; })) {
        uint64_t n = r.emitted.load() - r.inflight.load();
        int64_t t = now_ns();
        spdlog::info("[flow] {} events, {:.1f} events/s (avg {:.1f}), {} in flight, {} failed", n,
                     (n - last) / ((t - tl) * 1e-9), n / ((t - t0) * 1e-9), r.inflight.load(), r.failed.load());
        last = n;
        tl = t;
      }
    });
  }

  // ---- run
  try {
    r.arena->execute([&] {
      QUIVER_TSAN_RELEASE(&r);
      r.tg->run([&] {
        QUIVER_TSAN_ACQUIRE(&r);
        r.pump();
        QUIVER_TSAN_RELEASE(&r);
      });
      r.tg->wait();
      QUIVER_TSAN_ACQUIRE(&r);
    });
  } catch (...) {
    Error e = detail::to_error(std::current_exception(), "scheduler");
    spdlog::error("[flow] {}", e.what());
    if (!r.fatal) r.fatal = e;
  }
  sum.seconds = (now_ns() - t0) * 1e-9;
  if (ticker.joinable()) {
    {
      std::lock_guard<std::mutex> lk(tick_m);
      tick_stop = true;
    }
    tick_cv.notify_all();
    ticker.join();
  }
  finish_all();
  if (r.inflight.load() != 0 && !r.fatal)
    r.fatal = Error(ErrorCode::Internal, std::to_string(r.inflight.load()) + " events were lost in flight");

  sum.emitted = r.emitted.load();
  sum.processed = r.emitted.load() - r.failed.load() - static_cast<uint64_t>(std::max<int64_t>(0, r.inflight.load()));
  sum.failed = r.failed.load();
  sum.failures = std::move(r.failures);
  sum.threads = r.threads;
  sum.interrupted = app.stop_requested_.load();
  sum.fatal = r.fatal;
  return sum;
}

namespace detail {
RunSummary execute(Application& app, const Topology& topology) { return Runner(app, topology).run(); }
}  // namespace detail

}  // namespace quiver::flow
