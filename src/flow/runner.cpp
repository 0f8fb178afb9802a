// The runner: executes a Topology (topology.cpp) on a oneTBB arena. It reads no parameter and wires
// nothing: the plan is complete when it starts.
//
// Life of an event. The source is read by one thread at a time, a *group* of up to K events per
// turn, into the slots of the group that just finished on that thread (or free slots of the pool);
// the thread that read a group runs its events one after the other: async
// factories in plan order (acquire() starts the work and the event parks holding a deferred TBB task,
// which completion() submits to the arena from whatever thread it runs on; no thread waits), then the
// processors — parallel ones inline, sequential ones by the same thread when it can take the stage
// (else its events park in its lane until its next visit, or are handed over to the stage's holder
// when it goes idle; in ordered mode events run in emission order, see SeqStage).
// Lazy factories run inside Input access. The group's slots come back together when its last event
// has finished, and the thread that finished it reads its next group into them.
//
// What is shared, and how often (docs/flow.md, "What an event shares"):
//  - the source and the hub (its state word, counters, the pool of free slots): one turn per group
//    (a compare-and-swap to take it, one to let go). A thread with slots to read into waits about a
//    turn for a busy hub; past that, or with nothing to read into, it hands its slots over,
//    registers a want and goes idle: the holder reads a group for each want and spawns it.
//  - a sequential stage: one visit (a mutex held to look) per group, not per event; the stage's
//    state moves to the thread that takes it, the events stay where they ran. The reorder window
//    and the processor belong to the thread that holds it.
//  - everything else an event writes is its own: its products and lazy-factory state (EventCtx,
//    slots and guards on lines of their own), its group's countdown (one atomic subtraction per
//    group when the group finishes where it ran), and the running thread's lane (events finished,
//    returned groups).
// K adapts to the cost of an event (about kGroupNs of inline work per group, at most in_flight / (2 x
// nthreads)): heavy events go one at a time, tiny ones share a source turn, a hand-off and a slot
// return among many. Balance comes from oneTBB's work stealing of group and pump tasks.
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <condition_variable>
#include <functional>
#include <map>
#include <thread>

#include "flow/internal.hpp"
#include "quiver/core/util.hpp"
#include "quiver/flow/application.hpp"
#include "quiver/flow/topology.hpp"

// oneTBB is not built with ThreadSanitizer, so TSAN cannot see the happens-before edges of its
// task hand-offs; these annotations state them (no-ops in normal builds).
#if defined(QUIVER_TSAN) || defined(__SANITIZE_THREAD__)  // the build hides the latter (CMakeLists.txt)
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
using detail::Group;

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}
constexpr int64_t kGroupNs = 10000;  // inline work a group aims at: per-group costs stay a few %
constexpr size_t kMaxGroup = Topology::Settings::kMaxGroup;
}  // namespace

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

// Per worker thread (arena slot) of one run. Written only by its thread, except `finished`, which
// in_flight() reads from anywhere (so it has a cache line of its own).
struct Lane {
  alignas(64) std::atomic<uint64_t> finished{0};  // events that left the pipeline on this thread
  alignas(64) bool pumping = false;               // inside pump() or a guarded task: don't recurse
  bool repump = false;                            // a group came back meanwhile: read the source again
  Group* returned = nullptr;                      // groups finished here, not yet back in the pool
  uint64_t groups_run = 0;
  Group* group = nullptr;                         // the group run_group is running on this thread
  uint32_t group_done = 0;                        // its events finished here meanwhile
  double ns_per_event = 0;                        // moving average of an event's inline cost
  // Per sequential stage: this thread's events that reached it while another thread held it (or,
  // ordered, before their turn). They stay here, in this core's cache, and this thread runs them
  // itself when it next takes the stage; it hands them over only when it goes idle (pump).
  std::vector<std::vector<EventCtx*>> parked;
  // Per sequential stage: the events this thread runs in one round while it holds the stage. The
  // thread's own buffer, not the stage's: a stage's buffer would move between the cores with the
  // stage, a line for every 8 events.
  std::vector<std::vector<EventCtx*>> run;
};

// Events of one group that reached a sequential stage, handed over together.
struct Handoff {
  std::array<EventCtx*, kMaxGroup> ev;
  size_t n = 0;
  void push(EventCtx* c) { ev[n++] = c; }
};

// The source and the free slots: held by one thread at a time, for one group.
struct Hub {
  // Bit 0: a thread holds the hub. Bits 1..: threads that went idle wanting a group (the holder
  // reads one for each and spawns it). One word, so that letting go (a compare-and-swap) fails when
  // a want came in meanwhile, and the holder serves it first.
  static constexpr uint32_t kBusy = 1, kWant = 2;
  // The holder's counters. During a turn the holder works on a copy of its own (emit) and stores
  // them back just before it lets go, on the state word's line: the next holder gets the state and
  // the counters in one line transfer, and the threads spinning on `state` see that line written
  // only when the hub is taken and let go, not per event read.
  struct Counters {
    uint64_t next_seq = 0, skipped = 0, gen = 0, emitted = 0;
    size_t out = 0;  // events read whose slots have not come back to the pool
    uint32_t cur_source = 0;
    bool done = false;
  };
  alignas(64) std::atomic<uint32_t> state{0};
  Counters c;
  std::atomic<uint64_t> published{0};  // `emitted` for in_flight() readers
  // The pool: written only when slots pass through it (not when a thread reads into its own group).
  alignas(64) std::vector<EventCtx*> free_slots;
  std::vector<Group*> free_groups;
};
static_assert(offsetof(Hub, published) + sizeof(Hub::published) <= 64, "the hub's state and counters share one line");

// A sequential processor. The processor moves to the events, not the events to it: a thread whose
// group reaches the stage takes it and runs its own events there (unordered: if no other thread
// holds it; ordered: if its first event is the next in sequence); otherwise it parks them in its
// lane and goes on, and runs them at its next visit. One hand-over of the stage per group instead
// of moving each event's lines to a drainer. Events handed over (a thread going idle, async
// pipelines) come through the inbox; the holder runs them too: it owns the reorder window.
struct SeqStage {
  // What every visit writes, on one line: it moves once when the stage changes hands.
  alignas(64) std::mutex m;
  bool draining = false;
  uint64_t next = 0;  // ordered: sequence of the next event to run (read by visitors under m while idle)
  // Written only when events are handed over, so visits only read this line and it stays in both caches.
  alignas(64) std::vector<EventCtx*> inbox;
  std::vector<EventCtx*> taken;   // holder only from here on
  std::vector<EventCtx*> window;  // ordered: handed-over event of sequence s at s % size
  // Address only (TSan annotations of the tasks spawned after this stage). Not the mutex's: TSan
  // keeps one clock per address and a mutex unlock overwrites it, which would drop a spawn's release.
  char task_token = 0;
};
static_assert(offsetof(SeqStage, next) + sizeof(SeqStage::next) <= 64, "a visit writes one line of the stage");

struct Runner final : Runtime {
  Application& app;
  const Topology& topo;
  const int threads;
  const size_t pool_n;
  const size_t kmax;
  const uint64_t max_events;
  const uint64_t nskip;
  const bool ordered;
  const bool abort_policy;
  const bool bounded_read_ahead;
  const size_t read_ahead_groups;  // default pool: groups per thread in flight (topology.cpp chose the pool for it)
  const size_t nthreads_z;
  const uint32_t max_wants;  // threads that may wait for a group at once: all but one
  // Events park at a busy sequential stage (SeqStage) only in synchronous pipelines with several
  // threads: async factories' events come back one at a time on any thread, and a parked event
  // holds its slot, which those pipelines need in flight.
  const bool park;
  // Ordered pipelines with a sequential stage read events with a lighter hub turn: emit and the
  // sequence numbers only; the thread that runs the event resets its slot and publishes the
  // source's products (prepare). There it lowered the 2-thread CPU per event by ~5 % (for ~2 % on
  // one thread); elsewhere it gained nothing (unordered) or slowed one thread by ~5 % (parallel)
  // (docs/benchmarks.md, #22), so only these pipelines take it.
  const bool light_turn;

  const std::vector<Source*>& sources;
  const std::vector<AsyncFactory*>& asyncs;
  std::vector<Processor*> procs;
  // Light turn: per source, the product slots of its outputs. prepare() publishes them from here,
  // not through the source object, whose lines the thread holding the hub is writing meanwhile.
  std::vector<std::vector<size_t>> source_outputs;
  std::vector<std::unique_ptr<SeqStage>> seqs;  // per processor; null for parallel ones
  std::vector<size_t> next_seq_stage;           // per position: first sequential stage at or after it
  std::vector<bool> parallel_after;             // per stage: a parallel processor comes later
  std::vector<std::unique_ptr<EventCtx>> pool;
  std::vector<std::unique_ptr<Group>> group_records;
  std::unique_ptr<Lane[]> lanes;

  std::unique_ptr<tbb::global_control> gc;
  std::unique_ptr<tbb::task_arena> arena;
  std::unique_ptr<tbb::task_group> tg;

  Hub hub;
  alignas(64) std::atomic<bool> pump_task_pending{false};
  alignas(64) std::atomic<Group*> returned{nullptr};     // groups given back while the hub was busy
  alignas(64) std::atomic<size_t> group_k{1};            // events per group (1 at the start)
  alignas(64) std::atomic<int> firing{0};                // completions inside arena->enqueue
  std::atomic<bool> aborting{false};
  std::atomic<uint64_t> failed{0};

  std::mutex fail_m;
  std::vector<EventFailure> failures;
  std::optional<Error> fatal;

  Runner(Application& a, const Topology& t)
      : app(a),
        topo(t),
        threads(t.settings.threads),
        pool_n(t.settings.in_flight),
        // Async factories' events come back one at a time: waiting for K free slots would leave
        // slots idle, so those pipelines read one event per group.
        kmax(t.asyncs.empty()
                 ? std::clamp<size_t>(t.settings.in_flight / (2 * static_cast<size_t>(t.settings.threads)), 1, kMaxGroup)
                 : 1),
        max_events(t.settings.max_events),
        nskip(t.settings.nskip),
        ordered(t.settings.ordered),
        abort_policy(t.settings.error_policy == ErrorPolicy::Abort),
        bounded_read_ahead(t.settings.bounded_read_ahead),
        read_ahead_groups(std::max<size_t>(
            1, t.settings.in_flight / (kMaxGroup * static_cast<size_t>(t.settings.threads)))),
        nthreads_z(static_cast<size_t>(t.settings.threads)),
        max_wants(static_cast<uint32_t>(t.settings.threads - 1)),
        park(t.settings.threads > 1 && t.asyncs.empty()),
        light_turn(t.settings.ordered &&
                   std::any_of(t.stages.begin(), t.stages.end(), [](const auto& st) { return st.sequential; })),
        sources(t.sources),
        asyncs(t.asyncs) {
    for (auto& st : t.stages) procs.push_back(st.processor);
    if (light_turn)
      for (Source* src : sources) {
        source_outputs.emplace_back();
        for (const OutputBase* o : src->outputs()) source_outputs.back().push_back(o->index());
      }
  }

  RunSummary run();

  // A task of this run. TSan cannot see oneTBB's hand-offs (the library is not instrumented), so
  // they are stated, edge by edge and no more (a shared token would order unrelated tasks and hide
  // real races): the spawner releases `token` once the task object is built, the task acquires it
  // when it starts and releases `done_token` when it ends, which the main thread acquires after
  // task_group::wait. Orderings between tasks are the scheduler's own atomics and mutexes.
  template <class F>
  tbb::task_handle make_task(const void* token, F&& f) {
    return tg->defer([this, token, f = std::forward<F>(f)] {
      QUIVER_TSAN_ACQUIRE(token);
      f();
      QUIVER_TSAN_RELEASE(&done_token);
    });
  }
  template <class F>
  void spawn(const void* token, F&& f) {
    tbb::task_handle h = make_task(token, std::forward<F>(f));
    QUIVER_TSAN_RELEASE(token);
    tg->run(std::move(h));
  }
  char done_token = 0, enqueue_token = 0;  // addresses only (TSan annotations)

  // ---- Runtime
  void enqueue(std::function<void()> task) override {
    tbb::task_handle h = make_task(&enqueue_token, [task = std::move(task)] {
      try {
        task();
      } catch (const std::exception& e) {
        spdlog::error("[flow] task failed: {}", e.what());
      } catch (...) {
        spdlog::error("[flow] task failed with an unknown exception");
      }
    });
    QUIVER_TSAN_RELEASE(&enqueue_token);
    arena->enqueue(std::move(h));
  }
  int64_t in_flight() const override {
    uint64_t done = 0;
    for (int i = 0; i <= threads; ++i) done += lanes[i].finished.load(std::memory_order_relaxed);
    return static_cast<int64_t>(hub.published.load(std::memory_order_relaxed)) - static_cast<int64_t>(done);
  }
  bool stopping() const override {
    return aborting.load(std::memory_order_relaxed) || app.stop_requested_.load(std::memory_order_relaxed);
  }
  int concurrency() const override { return threads; }
  std::vector<std::function<void(const Event&)>> finish_listeners;  // registered during init, read-only after
  void on_event_finished(std::function<void(const Event&)> cb) override { finish_listeners.push_back(std::move(cb)); }

  // The calling thread's lane. Only arena threads run events (completions from other threads only
  // submit tasks), and a thread keeps its arena slot while it runs a task. There is one lane more
  // than threads: an arena of one thread takes in a worker for enqueued tasks while the calling
  // thread also works in it (oneTBB's mandatory concurrency), in slot 1.
  Lane& lane() {
    const int i = tbb::this_task_arena::current_thread_index();
    return lanes[i >= 0 && i <= threads ? i : threads];
  }

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

  // ---- source: groups of events
  // Reads the source and runs what it read on this thread, as long as slots come back.
  void pump(Lane& L) {
    if (L.pumping) {
      L.repump = true;
      return;
    }
    L.pumping = true;
    for (;;) {
      L.repump = false;
      Group* g = emit(L);
      if (g) {
        run_group(L, g);
        continue;
      }
      if (L.repump) continue;
      // Going idle: events parked at sequential stages would wait for a visit that may never come.
      if (!hand_over_parked(L) || !L.repump) break;
    }
    L.pumping = false;
  }

  // Runs f with this thread's pump loop marked active, so that groups finishing inside f come back
  // without recursing into the source; reads the source afterwards if any did.
  template <class F>
  void pump_guard(Lane& L, F&& f) {
    if (L.pumping) {
      f();
      return;
    }
    L.pumping = true;
    L.repump = false;
    f();
    L.pumping = false;
    // The thread is free now: read the next group, or register a want (a thread that goes idle
    // without one is fed only when another thread happens to be short of slots).
    pump(L);
  }

  // A task that reads the source, for slots that came back on a thread busy with something else.
  void spawn_pump() {
    if (pump_task_pending.load(std::memory_order_relaxed) || pump_task_pending.exchange(true)) return;
    spawn(&pump_task_pending, [this] {
      pump_task_pending.store(false);
      pump(lane());
    });
  }

  void spawn_group(Group* g) {
    spawn(g, [this, g] {
      Lane& L = lane();
      pump_guard(L, [&] { run_group(L, g); });
    });
  }

  bool hub_try_acquire() {
    uint32_t st = hub.state.load(std::memory_order_relaxed);
    return !(st & Hub::kBusy) && hub.state.compare_exchange_strong(st, st | Hub::kBusy, std::memory_order_acquire,
                                                                    std::memory_order_relaxed);
  }
  // Waits a little for the hub: a thread with slots of its own to read into would otherwise go idle
  // and leave them to the holder, whose cache does not hold them. A turn reads one group (about a
  // microsecond for tiny events), so the wait is bounded to a few turns (~30-100 cycles a pause):
  // past that the holder is slow or preempted, and spinning only burns CPU; the thread hands over
  // and leaves a want.
  bool hub_spin() {
    for (int i = 0; i < 256; ++i) {
      cpu_relax();
      if (hub_try_acquire()) return true;
    }
    return false;
  }
  // The hub is busy: register as a thread wanting a group (true: the holder, or the next one, reads
  // it and spawns it), or take the hub if it was let go meanwhile (false). At most nthreads - 1
  // wants: one group for each other thread is all that idle threads can use.
  // With the wants full it registers nothing, so slots handed over just before (give_back_shared)
  // are seen by the holder only through the check emit makes after letting go; both sides are
  // sequentially consistent for that (see emit).
  bool hub_request() {
    uint32_t st = hub.state.load(std::memory_order_seq_cst);
    for (;;) {
      if (!(st & Hub::kBusy)) {
        if (hub.state.compare_exchange_weak(st, st | Hub::kBusy, std::memory_order_seq_cst, std::memory_order_seq_cst))
          return false;
      } else if ((st >> 1) >= max_wants ||
                 hub.state.compare_exchange_weak(st, st + Hub::kWant, std::memory_order_seq_cst,
                                                 std::memory_order_seq_cst)) {
        return true;
      }
    }
  }

  // Pushes a list of groups (linked by next) onto `returned`.
  void give_back_shared(Group* list) {
    Group* last = list;
    while (last->next) last = last->next;
    Group* head = returned.load(std::memory_order_relaxed);
    do {
      last->next = head;
    } while (!returned.compare_exchange_weak(head, list, std::memory_order_seq_cst, std::memory_order_relaxed));
  }

  // Hub held (t: the holder's counters): slots and records of finished groups go back to the pool.
  void reclaim(Hub::Counters& t, Group* list) {
    while (list) {
      Group* g = list;
      list = g->next;
      g->next = nullptr;
      t.out -= g->ev.size();
      for (EventCtx* c : g->ev) hub.free_slots.push_back(c);
      g->ev.clear();
      hub.free_groups.push_back(g);
    }
  }

  // Takes the hub and reads one group of up to K events to run here, into the slots of a group that
  // just finished on this thread (their lines, and the group record's, are in its cache; the pool's
  // lists are not touched), plus one group, spawned as a task, for each thread that went idle
  // wanting one. Events are thus read by the thread that runs them, and slots cross threads only
  // for an idle one or after a sequential stage. A thread that finds the hub busy waits only a
  // little: then it hands over its finished groups and registers a want, which the holder serves
  // before it lets go.
  Group* emit(Lane& L) {
    if (!hub_try_acquire() && !(L.returned && hub_spin())) {
      if (L.returned) {
        give_back_shared(L.returned);
        L.returned = nullptr;
      }
      if (hub_request()) return nullptr;
    }
    Group* first = nullptr;
    Hub::Counters t = hub.c;  // the turn's counters, stored back before letting go (Hub)
    Group* mine = L.returned;  // its slots and record are reused for this thread's next group
    if (mine) {
      L.returned = mine->next;
      mine->next = nullptr;
      t.out -= mine->ev.size();
    }
    uint32_t st = hub.state.load(std::memory_order_relaxed);
    for (;;) {
      if (returned.load(std::memory_order_relaxed)) reclaim(t, returned.exchange(nullptr, std::memory_order_acquire));
      reclaim(t, L.returned);
      L.returned = nullptr;
      if (!first) first = next_group(t, mine);
      if (mine) {  // not reused (nothing to read, the bound): back to the pool
        t.out += mine->ev.size();
        reclaim(t, mine);
        mine = nullptr;
      }
      for (; st >> 1; st -= Hub::kWant) {
        Group* g = next_group(t, mine);
        if (!g) break;
        hub.state.fetch_sub(Hub::kWant, std::memory_order_relaxed);  // the holder alone removes wants
        hub.published.store(t.emitted, std::memory_order_relaxed);  // before its events can finish
        spawn_group(g);
      }
      // Nothing to read (slots in flight, the read-ahead bound): want a group when slots come back,
      // so that this thread is not left idle while another reads only for itself.
      uint32_t next = st & ~Hub::kBusy;
      if (!first && (st >> 1) < max_wants && !t.done && !stopping()) next += Hub::kWant;
      hub.c = t;
      hub.published.store(t.emitted, std::memory_order_relaxed);
      if (hub.state.compare_exchange_strong(st, next, std::memory_order_seq_cst, std::memory_order_relaxed)) {
        // Slots handed over after the reclaim above by a thread that found the wants full: it
        // registered nothing (the exchange did not fail) and went idle counting on the holder. It
        // pushed them before it read the hub busy, and we read `returned` after letting go, both
        // sequentially consistent: we see them, or it saw the hub free and took it. Without this,
        // a run whose last events finish that way strands their slots and ends early.
        if (!returned.load(std::memory_order_seq_cst) || !hub_try_acquire()) break;
        t = hub.c;
        st = hub.state.load(std::memory_order_relaxed);
        continue;
      }
      // A want (or handed-over slots with it) came in meanwhile: serve it before letting go.
    }
    return first;
  }

  // Hub held: the next group of up to K events, within the read-ahead bound, read into the slots of
  // `mine` (a finished group; null: the pool) and then the pool's. Null when there is nothing to read
  // (too few slots free, the bound, the end of the input, a stop). Clears `mine` when it used it.
  Group* next_group(Hub::Counters& t, Group*& mine) {
    if (t.done || stopping()) return nullptr;
    // Only whole groups (or the last events of the input): with fewer than K slots free, more than
    // half the pool is in flight and will come back, so no thread waits long for them, and groups
    // do not fragment into the single slots events finish one by one.
    const size_t kg = group_k.load(std::memory_order_relaxed);
    size_t k = kg;
    if (max_events) {
      if (t.emitted >= max_events) {
        t.done = true;
        return nullptr;
      }
      k = std::min<uint64_t>(k, max_events - t.emitted);
    }
    if ((mine ? mine->ev.size() : 0) + hub.free_slots.size() < k) return nullptr;
    // Default pool: at most max(4, G x K) x nthreads events in flight (G groups per thread, 2 or 8;
    // heavy events, K = 1, stay at the classic 4 per thread), however many slots are free.
    if (bounded_read_ahead && t.out + k > std::max<size_t>(4, read_ahead_groups * kg) * nthreads_z) return nullptr;
    // The record and slots to read into: mine's, or the pool's.
    std::array<EventCtx*, kMaxGroup> reuse;
    size_t nreuse = 0, used = 0;
    Group* g = mine;
    if (g) {
      nreuse = g->ev.size();
      std::copy(g->ev.begin(), g->ev.end(), reuse.begin());
      g->ev.clear();
      mine = nullptr;
    } else {
      g = hub.free_groups.back();
      hub.free_groups.pop_back();
    }
    while (g->ev.size() < k) {
      EventCtx* c = used < nreuse ? reuse[used] : hub.free_slots.empty() ? nullptr : hub.free_slots.back();
      if (!c || !fill(t, c)) break;
      if (used < nreuse) ++used;
      else hub.free_slots.pop_back();
      if (!light_turn) c->group = g;  // else prepare()
      g->ev.push_back(c);
    }
    for (; used < nreuse; ++used) hub.free_slots.push_back(reuse[used]);  // a smaller K, the end of input
    if (g->ev.empty()) {
      hub.free_groups.push_back(g);
      return nullptr;
    }
    t.out += g->ev.size();
    g->remaining.store(static_cast<uint32_t>(g->ev.size()), std::memory_order_relaxed);
    return g;
  }

  // Hub held: reads one event into c. False: no event (end of input, nevents, source failure).
  bool fill(Hub::Counters& t, EventCtx* c) {
    for (;;) {
      if ((max_events && t.emitted >= max_events) || t.cur_source >= sources.size()) {
        t.done = true;
        return false;
      }
      Source* src = sources[t.cur_source];
      Event& e = c->event;
      e.gen_ = ++t.gen;
      e.sequence_ = t.next_seq;
      e.number_ = t.next_seq + t.skipped;
      if (light_turn) c->source = t.cur_source;
      else reset_slot(c);
      bool ok;
      try {
        ok = src->emit(e);
        if (ok && !light_turn)
          for (auto* o : src->outputs()) o->publish(e);
      } catch (...) {
        Error err = detail::to_error(std::current_exception(), src->name());
        std::string msg = "source '" + src->name() + "' failed after " + std::to_string(t.emitted) +
                          " events (reading event " + std::to_string(e.number()) + "): " + err.what();
        spdlog::error("[flow] {}", msg);
        std::lock_guard<std::mutex> lk(fail_m);
        if (!fatal) fatal = Error(err.code(), msg, ErrorWhere{.node = src->name()});
        t.done = true;
        return false;
      }
      if (!ok) {
        ++t.cur_source;
        continue;
      }
      if (t.skipped < nskip) {
        ++t.skipped;
        continue;
      }
      ++t.next_seq;
      ++t.emitted;
      return true;
    }
  }

  // Runs the events of a group on this thread, in order, up to where each parks or reaches a
  // sequential stage; those that reach one are handed over together. Local arrays, not lane
  // scratch: a component that waits inside TBB may run another group on this thread meanwhile.
  void run_group(Lane& L, Group* g) {
    // Copy: the record goes back to the pool as soon as its last event finishes, which may happen
    // on another thread while this loop still runs.
    std::array<EventCtx*, kMaxGroup> run;
    const size_t n = g->ev.size();
    std::copy(g->ev.begin(), g->ev.end(), run.begin());
    Handoff handoff;
    // Events of g that finish on this thread, inside this call, are counted here and subtracted
    // from g->remaining once, at the end (one atomic operation per group instead of per event).
    Group* const outer_group = L.group;
    const uint32_t outer_done = L.group_done;
    L.group = g;
    L.group_done = 0;
    // The clock costs as much as a tiny event (a vDSO call; more on a VM): time one group in 8.
    const bool timed = kmax > 1 && (L.groups_run++ % 8 == 0);
    const int64_t t0 = timed ? now_ns() : 0;
    for (size_t j = 0; j < n; ++j) {
      if (light_turn) prepare(run[j], g);
      run_event(L, run[j], &handoff);
      if (L.returned && j + 1 < n && threads > 1) {
        // Another group finished here (a resumed or drained event): its slots must not wait for
        // the rest of this group; let an idle thread read into them.
        give_back_shared(L.returned);
        L.returned = nullptr;
        spawn_pump();
      }
    }
    if (timed) {
      const double per_event = static_cast<double>(now_ns() - t0) / static_cast<double>(n);
      L.ns_per_event = L.ns_per_event > 0 ? 0.75 * L.ns_per_event + 0.25 * per_event : per_event;
      const size_t k = std::clamp<size_t>(static_cast<size_t>(kGroupNs / std::max(L.ns_per_event, 1.0)), 1, kmax);
      if (k != group_k.load(std::memory_order_relaxed)) group_k.store(k, std::memory_order_relaxed);
    }
    if (handoff.n) submit(L, next_seq_stage[0], handoff.ev.data(), handoff.n);
    const uint32_t done = L.group_done;
    L.group = outer_group;
    L.group_done = outer_done;
    if (done && g->remaining.fetch_sub(done, std::memory_order_acq_rel) == done) group_finished(L, g);
  }

  // ---- event steps
  // What the previous event of a slot left: cleared before the slot's next event runs.
  static void reset_slot(EventCtx* c) {
    c->next_async = 0;
    if (c->failed) {  // only then: `error` lies on lines of its own (EventCtx)
      c->failed = false;
      c->error.reset();
    }
    c->async_error = nullptr;
  }
  // Light turn: what reading an event needs besides the source's emit, done by the thread that runs
  // it after the hub is let go (the hub's turn is the serial part of a run): the slot's reset and
  // the source's products published, before the event's first step.
  void prepare(EventCtx* c, Group* g) {
    c->group = g;
    reset_slot(c);
    try {
      const uint64_t gen = c->event.generation();
      for (size_t index : source_outputs[c->source]) c->event.slot_ref(index).publish(gen);
    } catch (...) {
      fail_event(c, sources[c->source]->name(), std::current_exception());
    }
  }
  // `handoff`: where events that reach the first sequential stage go (null: submit each at once).
  void run_event(Lane& L, EventCtx* c, Handoff* handoff) {
    if (c->next_async < asyncs.size() && !c->failed) {
      AsyncFactory* af = asyncs[c->next_async];
      auto st = std::make_shared<Completion::State>();
      st->runner = this;
      st->ctx = c;
      st->handle = make_task(c, [this, c] {  // Completion::State::fire releases c
        Lane& R = lane();
        pump_guard(R, [&] { resume(R, c); });
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
    advance(L, c, 0, handoff);
  }

  void resume(Lane& L, EventCtx* c) {
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
    run_event(L, c, nullptr);
  }

  // Runs processors from stage `from` on until a sequential one (the event is then appended to
  // `handoff`, or submitted alone) or the end (the event finishes).
  void advance(Lane& L, EventCtx* c, size_t from, Handoff* handoff) {
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
        if (handoff) handoff->push(c);
        else submit(L, i, &c, 1);
        return;
      }
      if (c->failed) continue;
      try {
        procs[i]->process(c->event);
      } catch (...) {
        fail_event(c, procs[i]->name(), std::current_exception());
      }
    }
    finish_event(L, c);
  }

  // ---- sequential stages
  static bool by_sequence(const EventCtx* a, const EventCtx* b) { return a->event.sequence() < b->event.sequence(); }

  // Events of this thread reach sequential stage i. With parking, they join the thread's parked
  // events there, and the thread runs them now if it can take the stage (unordered: no other thread
  // holds it; ordered: its earliest parked event is the next in sequence), else it goes on and
  // runs them at its next visit (or hands them over when it goes idle). Without: submit_shared.
  void submit(Lane& L, size_t i, EventCtx* const* ev, size_t n) {
    if (!park) {
      submit_shared(L, i, ev, n);
      return;
    }
    SeqStage& s = *seqs[i];
    std::vector<EventCtx*>& mine = L.parked[i];
    const size_t old = mine.size();
    mine.insert(mine.end(), ev, ev + n);
    // A thread's groups come in sequence order, except a group stolen or run nested meanwhile.
    if (ordered && !std::is_sorted(mine.begin() + static_cast<ptrdiff_t>(old ? old - 1 : 0), mine.end(), by_sequence))
      std::sort(mine.begin(), mine.end(), by_sequence);
    {
      std::lock_guard<std::mutex> lk(s.m);
      // `next` is written by the holder only, so it is read here only while the stage is idle.
      if (s.draining || (ordered && mine.front()->event.sequence() != s.next)) return;
      s.draining = true;
    }
    drain(L, i);
  }

  // Events handed over to stage i: the holder runs them (this thread, if the stage is idle).
  void submit_shared(Lane& L, size_t i, EventCtx* const* ev, size_t n) {
    SeqStage& s = *seqs[i];
    {
      std::lock_guard<std::mutex> lk(s.m);
      if (s.draining) {
        s.inbox.insert(s.inbox.end(), ev, ev + n);
        return;
      }
      s.draining = true;
    }
    s.taken.assign(ev, ev + n);
    drain(L, i);
  }

  // This thread goes idle: it hands its parked events over to their stages (in stage order, since
  // running one stage may park events at a later one). True if it handed any over.
  bool hand_over_parked(Lane& L) {
    bool any = false;
    for (size_t i = 0; i < procs.size(); ++i) {
      if (!seqs[i]) continue;
      // submit_shared copies them, but may park more here (a processor waiting inside TBB runs a
      // group meanwhile): hand over from a copy until none is left.
      while (!L.parked[i].empty()) {
        std::vector<EventCtx*> evs;
        evs.swap(L.parked[i]);
        submit_shared(L, i, evs.data(), evs.size());
        if (L.parked[i].empty()) {  // keep the reserved capacity
          evs.clear();
          L.parked[i].swap(evs);
        }
        any = true;
      }
    }
    return any;
  }

  // This thread holds stage i: it runs the handed-over events (`taken`, then the inbox) and its own
  // parked ones, until none is left that it may run. Ordered: in sequence, while the next one is
  // handed over (the window) or its own; an event parked by another thread stops it (that thread
  // runs it at its next visit). Events that cannot run yet wait in the window or where they are.
  void drain(Lane& L, size_t i) {
    SeqStage& s = *seqs[i];
    Processor* p = procs[i];
    std::vector<EventCtx*>& mine = L.parked[i];
    std::vector<EventCtx*>& out = L.run[i];
    for (;;) {
      out.clear();
      if (ordered) {
        for (EventCtx* x : s.taken) s.window[x->event.sequence() % s.window.size()] = x;
        size_t h = 0;
        uint64_t next = s.next;  // stored once: a visitor locking m meanwhile takes that line away
        for (;;) {
          EventCtx*& w = s.window[next % s.window.size()];
          if (w && w->event.sequence() == next) {
            out.push_back(w);
            w = nullptr;
          } else if (h < mine.size() && mine[h]->event.sequence() == next) {
            out.push_back(mine[h++]);
          } else {
            break;
          }
          ++next;
        }
        s.next = next;
        mine.erase(mine.begin(), mine.begin() + static_cast<ptrdiff_t>(h));
      } else {
        out.assign(s.taken.begin(), s.taken.end());
        out.insert(out.end(), mine.begin(), mine.end());
        mine.clear();
      }
      if (!s.taken.empty()) s.taken.clear();  // a store even when empty: the line would move
      // Not `mine` from here on: a processor that waits inside TBB may run a group on this thread
      // meanwhile, whose events park there.
      for (EventCtx* x : out) pass(p, x);
      continue_after(L, i, out);
      std::lock_guard<std::mutex> lk(s.m);
      if (s.inbox.empty()) {
        const bool own = !mine.empty() && (!ordered || mine.front()->event.sequence() == s.next);
        if (!own) {
          s.draining = false;
          return;
        }
      }
      std::swap(s.inbox, s.taken);
    }
  }

  void pass(Processor* p, EventCtx* x) {
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
  }

  // Events that passed sequential stage i: finish them, or take them to the next stages — on a task
  // when a parallel processor comes later, so that its work is not serialized on the drainer.
  void continue_after(Lane& L, size_t i, const std::vector<EventCtx*>& out) {
    if (out.empty()) return;
    if (i + 1 == procs.size()) {
      // The holder may finish other threads' events here (handed over): one subtraction per run of
      // events of one group (they arrive together), not one per event on a line that the group's
      // thread uses.
      for (size_t j = 0; j < out.size();) {
        Group* g = out[j]->group;
        uint32_t n = 0;
        for (; j < out.size() && out[j]->group == g; ++j, ++n) leave(L, out[j]);
        count_finished(L, g, n);
      }
      return;
    }
    auto go = [this, i](Lane& R, const std::vector<EventCtx*>& evs) {
      // In chunks of a group's size: a Handoff holds at most kMaxGroup events.
      for (size_t b = 0; b < evs.size(); b += kMaxGroup) {
        Handoff next;
        for (size_t j = b; j < std::min(evs.size(), b + kMaxGroup); ++j) advance(R, evs[j], i + 1, &next);
        if (next.n) submit(R, next_seq_stage[i + 1], next.ev.data(), next.n);
      }
    };
    if (parallel_after[i] && threads > 1) {
      spawn(&seqs[i]->task_token, [this, go, evs = out] {
        Lane& R = lane();
        pump_guard(R, [&] { go(R, evs); });
      });
      return;
    }
    go(L, out);
  }

  void finish_event(Lane& L, EventCtx* c) {
    leave(L, c);
    count_finished(L, c->group, 1);
  }
  // An event leaves the pipeline (its slot stays taken until its group is counted finished).
  void leave(Lane& L, EventCtx* c) {
    L.finished.store(L.finished.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    for (auto& cb : finish_listeners) cb(c->event);  // before the slot can be reused
  }
  // n events of g have left the pipeline on this thread.
  void count_finished(Lane& L, Group* g, uint32_t n) {
    if (g == L.group) L.group_done += n;  // run_group of g on this thread subtracts it
    else if (g->remaining.fetch_sub(n, std::memory_order_acq_rel) == n) group_finished(L, g);
  }

  void group_finished(Lane& L, Group* g) {
    g->next = L.returned;
    L.returned = g;
    if (L.pumping) L.repump = true;
    else pump(L);
  }
};

void Completion::State::fire(std::exception_ptr e) {
  if (fired.exchange(true)) return;
  ctx->async_error = e;
  QUIVER_TSAN_RELEASE(ctx);
  // The event may finish, and the run end, before enqueue() returns on this (foreign) thread: the
  // runner keeps its arena until no completion is inside it.
  Runner* r = runner;
  r->firing.fetch_add(1, std::memory_order_relaxed);
  r->arena->enqueue(std::move(handle));
  r->firing.fetch_sub(1, std::memory_order_release);
}

RunSummary Runner::run() {
  Runner& r = *this;
  RunSummary sum;

  // ---- event pool, groups, lanes, sequential stages
  r.pool.reserve(r.pool_n);
  for (size_t s = 0; s < r.pool_n; ++s) {
    auto c = std::make_unique<EventCtx>();
    c->event.slot_ = s;
    c->event.topo_ = &topo;
    for (auto& p : topo.products) c->event.slots_.push_back(p.output->make_slot());
    c->event.fstate_ = std::make_unique<detail::FactoryState[]>(topo.factories.size());
    r.pool.push_back(std::move(c));
  }
  // Slot 0 on top: the first groups get the lowest slots.
  for (size_t s = r.pool_n; s-- > 0;) r.hub.free_slots.push_back(r.pool[s].get());
  for (size_t g = 0; g < r.pool_n; ++g) {
    r.group_records.push_back(std::make_unique<Group>());
    r.group_records.back()->ev.reserve(r.kmax);
    r.hub.free_groups.push_back(r.group_records.back().get());
  }
  r.lanes = std::make_unique<Lane[]>(static_cast<size_t>(r.threads) + 1);
  // One event per group until the first group has been timed: heavy events must not start out
  // serialized in a large group on one thread (a lane times its first group; tiny events reach
  // large groups at once).
  r.group_k.store(1);
  // The first thread to read reads a group for each other thread too.
  r.hub.state.store(r.max_wants * Hub::kWant);
  const size_t nproc = r.procs.size();
  r.seqs.resize(nproc);
  r.next_seq_stage.assign(nproc + 1, nproc);
  r.parallel_after.assign(nproc, false);
  for (size_t i = nproc; i-- > 0;) {
    r.next_seq_stage[i] = topo.stages[i].sequential ? i : r.next_seq_stage[i + 1];
    if (i + 1 < nproc) r.parallel_after[i] = r.parallel_after[i + 1] || !topo.stages[i + 1].sequential;
    if (topo.stages[i].sequential) {
      r.seqs[i] = std::make_unique<SeqStage>();
      r.seqs[i]->window.assign(r.pool_n, nullptr);
      r.seqs[i]->inbox.reserve(r.pool_n);
      r.seqs[i]->taken.reserve(r.pool_n);
    }
  }
  for (int t = 0; t <= r.threads; ++t) {
    r.lanes[t].parked.resize(nproc);
    r.lanes[t].run.resize(nproc);
    for (size_t i = 0; i < nproc; ++i)
      if (r.seqs[i]) {
        r.lanes[t].parked[i].reserve(r.pool_n);
        r.lanes[t].run[i].reserve(r.pool_n);
      }
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
        const int64_t inflight = std::max<int64_t>(0, r.in_flight());
        const uint64_t n = r.hub.published.load() - static_cast<uint64_t>(inflight);
        int64_t t = now_ns();
        spdlog::info("[flow] {} events, {:.1f} events/s (avg {:.1f}), {} in flight, {} failed", n,
                     (n - last) / ((t - tl) * 1e-9), n / ((t - t0) * 1e-9), inflight, r.failed.load());
        last = n;
        tl = t;
      }
    });
  }

  // ---- run
  try {
    r.arena->execute([&] {
      r.spawn(&r, [&r] { r.pump(r.lane()); });
      r.tg->wait();
      while (r.firing.load(std::memory_order_acquire) != 0) std::this_thread::yield();
      QUIVER_TSAN_ACQUIRE(&r.done_token);
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
  const int64_t lost = r.in_flight();
  if (lost != 0 && !r.fatal) r.fatal = Error(ErrorCode::Internal, std::to_string(lost) + " events were lost in flight");
  // Every task has ended: unless the input ended or a stop was asked for, a wake-up was lost. Say so
  // rather than report a short run as complete.
  if (!r.hub.c.done && !r.stopping() && !r.fatal)
    r.fatal = Error(ErrorCode::Internal, "the scheduler went idle after " + std::to_string(r.hub.c.emitted) +
                                             " events before the input ended");

  sum.emitted = r.hub.published.load();
  sum.processed = sum.emitted - r.failed.load() - static_cast<uint64_t>(std::max<int64_t>(0, lost));
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
