// Unit tests of the event-processing framework: lazy factories, parameters, async completion,
// batching across events, error policies, back-pressure, ordering, stop, plugins, config.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "flow_test_util.hpp"
#include "quiver/flow/application.hpp"
#include "quiver/flow/batch.hpp"

using namespace quiver::flow;
using flowtest::run_with_timeout;

namespace {

class IntSource : public Source {
 public:
  Output<int> value_{this, "value"};
  Parameter<int> fail_at_{this, "fail_at", -1, "throw when emitting this event"};
  std::atomic<int>* live = nullptr;  // back-pressure probe
  std::atomic<int> max_live{0};
  int n = 0;
  void init() override { n = 0; }
  bool emit(Event& e) override {
    if (n == *fail_at_) throw quiver::Error(quiver::ErrorCode::Parse, "corrupt record", {.file = "input.dat", .offset = n});
    value_(e) = n++;
    if (live) {
      int l = ++*live;
      int m = max_live.load();
      while (l > m && !max_live.compare_exchange_weak(m, l)) {
      }
    }
    return true;
  }
};

class SquareFactory : public Factory {
 public:
  Input<int> in_{this, "value"};
  Output<int64_t> out_{this, "square"};
  Parameter<int> throw_at_{this, "throw_at", -1};
  std::atomic<int> calls{0};
  void process(Event& e) override {
    calls++;
    int v = in_(e);
    if (v == *throw_at_) throw std::runtime_error("cannot square " + std::to_string(v));
    out_(e) = int64_t(v) * v;
  }
};

class UnusedFactory : public Factory {
 public:
  Input<int> in_{this, "value"};
  Output<double> out_{this, "unused"};
  std::atomic<int> calls{0};
  void process(Event& e) override {
    calls++;
    out_(e) = 1;
  }
};

struct Record {
  uint64_t number, sequence;
  int64_t square;
  bool failed;
  std::string error;
};

class Collector : public Processor {
 public:
  explicit Collector(Mode m = Mode::Sequential) : Processor(m) {}
  Input<int64_t> sq_{this, "square"};
  std::mutex m;
  std::vector<Record> rows;
  std::atomic<int>* live = nullptr;
  int stop_after = -1;
  void process(const Event& e) override {
    int64_t s = sq_(e);
    std::lock_guard<std::mutex> lk(m);
    rows.push_back({e.number(), e.sequence(), s, false, ""});
    if (live) --*live;
    if (stop_after >= 0 && static_cast<int>(rows.size()) == stop_after) app().request_stop();
  }
  void failed(const Event& e, const quiver::Error& err) override {
    std::lock_guard<std::mutex> lk(m);
    rows.push_back({e.number(), e.sequence(), -1, true, err.what()});
    if (live) --*live;
  }
};

class SquareReader : public Processor {
 public:
  Input<int64_t> sq_{this, "square"};
  std::atomic<int64_t> sum{0};
  void process(const Event& e) override { sum += sq_(e); }
};

Application& basic(Application& app, int nevents, int threads = 2) {
  app.set_parameter("nevents", std::to_string(nevents));
  app.set_parameter("nthreads", std::to_string(threads));
  return app;
}

}  // namespace

TEST(Flow, LazyFactoryRunsOncePerEventAndOnlyWhenNeeded) {
  Application app;
  basic(app, 200);
  app.add<IntSource>("source");
  auto& sq = app.add<SquareFactory>("square");
  auto& unused = app.add<UnusedFactory>("unused");
  auto& r1 = app.add<SquareReader>("reader1");
  auto& r2 = app.add<SquareReader>("reader2");
  auto& col = app.add<Collector>("collector");
  auto s = run_with_timeout(app);
  ASSERT_FALSE(s.fatal) << s.fatal->what();
  EXPECT_EQ(s.emitted, 200u);
  EXPECT_EQ(s.processed, 200u);
  EXPECT_EQ(sq.calls.load(), 200);  // three consumers, one evaluation per event
  EXPECT_EQ(unused.calls.load(), 0);
  int64_t expect = 0;
  for (int i = 0; i < 200; ++i) expect += int64_t(i) * i;
  EXPECT_EQ(r1.sum.load(), expect);
  EXPECT_EQ(r2.sum.load(), expect);
  ASSERT_EQ(col.rows.size(), 200u);
  for (size_t i = 0; i < col.rows.size(); ++i) {  // ordered by default
    EXPECT_EQ(col.rows[i].sequence, i);
    EXPECT_EQ(col.rows[i].square, int64_t(i) * int64_t(i));
  }
}

// Sub-tasks of one event ask for the same lazy product at once: the factory runs once, the others
// wait for it (its result, or its error) instead of running it again.
namespace {
class HeldSquare : public Factory {
 public:
  Input<int> value_{this, "value"};
  Output<int64_t> square_{this, "square"};
  std::atomic<int> calls{0};
  std::atomic<int>* arrived = nullptr;
  int readers = 0;
  void process(Event& e) override {
    ++calls;
    // Hold the run until every reader has asked (bounded: a reader may still be on its way).
    for (int i = 0; i < 200000 && arrived->load() < readers; ++i) std::this_thread::yield();
    if (value_(e) % 10 == 7) throw quiver::Error(quiver::ErrorCode::Internal, "square of a seven");
    square_(e) = int64_t(value_(e)) * value_(e);
  }
};
class FanOutReader : public Processor {
 public:
  explicit FanOutReader(std::atomic<int>* arrived, int readers) : arrived_(arrived), readers_(readers) {}
  Input<int64_t> sq_{this, "square"};
  Input<int> value_{this, "value"};
  std::atomic<int> wrong{0}, errors{0}, events{0};
  void process(const Event& e) override {
    arrived_->store(0);
    std::vector<std::thread> ts;
    for (int t = 0; t < readers_; ++t)
      ts.emplace_back([&] {
        ++*arrived_;
        try {
          if (sq_(e) != int64_t(value_(e)) * value_(e)) ++wrong;
        } catch (const quiver::Error& err) {
          if (std::string(err.what()).find("square of a seven") == std::string::npos) ++wrong;
          ++errors;
        }
      });
    for (auto& t : ts) t.join();
    ++events;
  }

 private:
  std::atomic<int>* arrived_;
  int readers_;
};
}  // namespace

TEST(Flow, LazyFactoryAskedFromManyThreadsOfOneEventRunsOnce) {
  Application app;
  basic(app, 60, 1);
  app.set_parameter("error_policy", "skip");
  std::atomic<int> arrived{0};
  app.add<IntSource>("source");
  auto& sq = app.add<HeldSquare>("square");
  sq.arrived = &arrived;
  sq.readers = 4;
  auto& r = app.add<FanOutReader>("reader", &arrived, 4);
  auto s = run_with_timeout(app);
  ASSERT_FALSE(s.fatal) << s.fatal->what();
  EXPECT_EQ(sq.calls.load(), 60);  // once per event, however many threads asked
  EXPECT_EQ(r.events.load(), 60);
  EXPECT_EQ(r.wrong.load(), 0);
  EXPECT_EQ(r.errors.load(), 6 * 4);  // events 7, 17, ..., 57: every reader gets the factory's error
}

TEST(Flow, ParametersFromAssignmentsAndConfig) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("quiver_flow_cfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "c.toml");
    f << "nevents = 10\nnthreads = 1\nplugins = [\"a\", \"b\"]\n[square]\nthrow_at = 3\nratio = 0.5\n[square.sub]\nflag = true\n";
  }
  Application app;
  app.set_parameter_assignment("nevents=7");
  app.load_config((dir / "c.toml").string());
  EXPECT_EQ(*app.parameter("nevents"), "7");  // -P wins over the file
  EXPECT_EQ(*app.parameter("square.throw_at"), "3");
  EXPECT_EQ(*app.parameter("square.sub.flag"), "true");
  EXPECT_EQ(*app.parameter("plugins"), "a,b");
  EXPECT_DOUBLE_EQ(app.get_parameter<double>("square.ratio", 0), 0.5);
  EXPECT_EQ(app.config_dir(), fs::absolute(dir).string());
  EXPECT_THROW(app.set_parameter_assignment("novalue"), quiver::Error);
  EXPECT_THROW(parse_parameter<int>("k", "12x"), quiver::Error);
  EXPECT_THROW(parse_parameter<bool>("k", "maybe"), quiver::Error);
  EXPECT_EQ(parse_parameter<std::vector<double>>("k", "1, 2.5"), (std::vector<double>{1, 2.5}));

  {
    std::ofstream f(dir / "bad.toml");
    f << "a = [1,\n";
  }
  try {
    app.load_config((dir / "bad.toml").string());
    FAIL() << "expected a parse error";
  } catch (const quiver::Error& e) {
    EXPECT_EQ(e.code(), quiver::ErrorCode::Parse);
    EXPECT_NE(std::string(e.what()).find("bad.toml"), std::string::npos);
  }
  fs::remove_all(dir);
}

class NeedsParam : public Factory {
 public:
  Input<int> in_{this, "value"};
  Output<int64_t> out_{this, "square"};
  Parameter<double> scale_{this, "scale", Required{}, "scale factor"};
  void process(Event& e) override { out_(e) = static_cast<int64_t>(in_(e) * *scale_); }
};

// The lazy factory behind a sequential (writer-like) processor's input runs before the event
// enters the serialized stage, so two threads run it at the same time.
class SlowSquare : public Factory {
 public:
  Input<int> in_{this, "value"};
  Output<int64_t> out_{this, "square"};
  flowtest::OverlapProbe calls;
  void process(Event& e) override {
    calls.enter();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    int v = in_(e);
    out_(e) = static_cast<int64_t>(v) * v;
    calls.leave();
  }
};

TEST(Flow, SequentialProcessorInputsAreProducedInParallel) {
  Application app;
  basic(app, 40, 2);
  app.add<IntSource>("source");
  auto& f = app.add<SlowSquare>("square");
  auto& col = app.add<Collector>("out");
  auto s = run_with_timeout(app);
  ASSERT_FALSE(s.fatal) << s.fatal->what();
  ASSERT_EQ(col.rows.size(), 40u);
  for (size_t i = 0; i < 40; ++i) EXPECT_EQ(col.rows[i].square, static_cast<int64_t>(i) * static_cast<int64_t>(i));
  EXPECT_EQ(f.calls.max_active(), 2) << "the factory should not run inside the sequential stage";
}

TEST(Flow, ComponentParametersAndMissingRequired) {
  {
    Application app;
    basic(app, 5);
    app.add<IntSource>("source");
    app.add<NeedsParam>("scaler");
    app.add<Collector>("out");
    try {
      app.run();
      FAIL() << "expected missing parameter";
    } catch (const quiver::Error& e) {
      EXPECT_NE(std::string(e.what()).find("scaler.scale"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
    }
  }
  {
    Application app;
    basic(app, 5);
    app.set_parameter("scaler.scale", "3");
    app.set_parameter("scaler.typo", "1");
    app.add<IntSource>("source");
    app.add<NeedsParam>("scaler");
    auto& c = app.add<Collector>("out");
    auto s = run_with_timeout(app);
    ASSERT_FALSE(s.fatal);
    ASSERT_EQ(c.rows.size(), 5u);
    EXPECT_EQ(c.rows[4].square, 12);
    auto unused = app.unused_parameters();
    EXPECT_EQ(unused, std::vector<std::string>{"scaler.typo"});
  }
  {
    Application app;
    basic(app, 5);
    app.set_parameter("scaler.scale", "three");
    app.add<IntSource>("source");
    app.add<NeedsParam>("scaler");
    app.add<Collector>("out");
    try {
      app.run();
      FAIL();
    } catch (const quiver::Error& e) {
      EXPECT_NE(std::string(e.what()).find("scaler.scale"), std::string::npos) << e.what();
    }
  }
}

TEST(Flow, WiringErrors) {
  {
    Application app;
    app.add<IntSource>("source");
    app.add<Collector>("out");  // needs "square", nobody makes it
    try {
      app.run();
      FAIL();
    } catch (const quiver::Error& e) {
      std::string w = e.what();
      EXPECT_NE(w.find("'out'"), std::string::npos) << w;
      EXPECT_NE(w.find("square"), std::string::npos) << w;
    }
  }
  {
    Application app;
    app.add<SquareFactory>("square");
    app.add<Collector>("out");
    EXPECT_THROW(app.run(), quiver::Error);  // no source
  }
  {
    Application app;
    app.add<IntSource>("source");
    app.add<SquareFactory>("a");
    app.add<SquareFactory>("b");
    try {
      app.run();
      FAIL();
    } catch (const quiver::Error& e) {
      EXPECT_NE(std::string(e.what()).find("produced by both"), std::string::npos) << e.what();
    }
  }
  {
    Application app;
    app.add<IntSource>("source");
    EXPECT_THROW(app.add<IntSource>("source"), quiver::Error);  // duplicate name
  }
}

// ---- async factories
class DelayedDouble : public AsyncFactory {
 public:
  Input<int> in_{this, "value"};
  Output<int64_t> out_{this, "square"};
  flowtest::DelayTimer* timer = nullptr;
  int delay_us = 2000;
  bool random_delay = false;
  int delay_mod = 3000;  // random delays are 0 .. delay_mod - 1 us
  int fail_at = -1;
  flowtest::Gate* gate = nullptr;        // when set, no answer starts before the gate opens
  std::function<void(int)> on_parked;  // called with the number of events waiting for an answer
  EventLocal<int64_t> result_;
  std::atomic<int> concurrent{0}, max_concurrent{0};
  void init() override { result_.resize(pool_size()); }
  void acquire(Event& e, Completion done) override {
    int v = in_(e);
    int64_t* slot = &result_[e];
    int c = ++concurrent;
    int m = max_concurrent.load();
    while (c > m && !max_concurrent.compare_exchange_weak(m, c)) {
    }
    int d = random_delay ? (v * 7919) % delay_mod : delay_us;
    auto answer = [this, v, slot, done, d] {
      timer->after(std::chrono::microseconds(d), [this, v, slot, done] {
        --concurrent;
        if (v == fail_at) {
          done.fail(std::make_exception_ptr(quiver::Error(quiver::ErrorCode::Unavailable, "server gone")));
          return;
        }
        *slot = int64_t(v) * v;
        done();  // from the timer thread
      });
    };
    log(LogLevel::Debug, "parked event " + std::to_string(e.number()));
    if (gate) gate->hold(answer);
    else answer();
    if (on_parked) on_parked(c);
  }
  void produce(Event& e) override { out_(e) = result_[e]; }
};

TEST(Flow, AsyncCompletionFromAnotherThreadParksWithoutBlocking) {
  // One worker thread, in_flight 16, and no answer before 16 events wait for one: only a worker
  // that parks each event and moves on (instead of waiting for its answer) gets there.
  flowtest::DelayTimer timer;
  flowtest::Gate gate(20);
  Application app;
  basic(app, 64, 1);
  app.set_parameter("in_flight", "16");
  app.add<IntSource>("source");
  auto& af = app.add<DelayedDouble>("remote");
  af.timer = &timer;
  af.delay_us = 1000;
  af.gate = &gate;
  af.on_parked = [&gate](int waiting) {
    if (waiting == 16) gate.open();
  };
  auto& col = app.add<Collector>("out");
  auto s = run_with_timeout(app, 60);
  ASSERT_FALSE(s.fatal) << s.fatal->what();
  EXPECT_FALSE(gate.opened_by_timeout()) << "the single worker never had 16 events parked at once (" << af.max_concurrent.load()
                                         << " at most): async work blocks it";
  EXPECT_EQ(gate.held_at_open(), 16u);
  EXPECT_EQ(af.max_concurrent.load(), 16);  // never more than in_flight
  ASSERT_EQ(col.rows.size(), 64u);
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(col.rows[i].square, int64_t(i) * int64_t(i));
}

TEST(Flow, OrderedAndUnorderedOutputWithRandomLatency) {
  for (bool ordered : {true, false}) {
    flowtest::DelayTimer timer;
    Application app;
    basic(app, 300, 2);
    app.set_parameter("ordered", ordered ? "true" : "false");
    app.set_parameter("in_flight", "12");
    app.add<IntSource>("source");
    auto& af = app.add<DelayedDouble>("remote");
    af.timer = &timer;
    af.random_delay = true;
    auto& col = app.add<Collector>("out");
    auto s = run_with_timeout(app);
    ASSERT_FALSE(s.fatal);
    ASSERT_EQ(col.rows.size(), 300u);
    std::vector<uint64_t> seqs;
    for (auto& r : col.rows) seqs.push_back(r.sequence);
    bool sorted = std::is_sorted(seqs.begin(), seqs.end());
    if (ordered) {
      EXPECT_TRUE(sorted);
    }
    std::sort(seqs.begin(), seqs.end());
    for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i], i);
    if (!ordered) {
      EXPECT_FALSE(sorted) << "random latencies should reorder unordered output";
    }
  }
}

TEST(Flow, BackPressureBoundsEventsInFlight) {
  flowtest::DelayTimer timer;
  std::atomic<int> live{0};
  Application app;
  basic(app, 100, 2);
  app.set_parameter("in_flight", "3");
  auto& src = app.add<IntSource>("source");
  src.live = &live;
  auto& af = app.add<DelayedDouble>("remote");
  af.timer = &timer;
  af.delay_us = 500;
  auto& col = app.add<Collector>("out");
  col.live = &live;
  auto s = run_with_timeout(app);
  ASSERT_FALSE(s.fatal);
  EXPECT_EQ(col.rows.size(), 100u);
  EXPECT_LE(src.max_live.load(), 3);
  EXPECT_GE(src.max_live.load(), 2);
}

// The last events of a run finish on one thread while the other holds the source with nothing to
// read and its want already registered: the finishing thread hands its slots over and goes idle.
// The holder must notice them after letting go, or the run ends early with "the scheduler went
// idle" (seen once under ThreadSanitizer in CI). Many short runs with answers arriving at random
// moments from another thread, few slots, so that the window is hit now and then.
TEST(Flow, HandedOverSlotsAreNeverStranded) {
  flowtest::DelayTimer timer;
  for (int run = 0; run < 150; ++run) {
    std::atomic<int> live{0};
    Application app;
    basic(app, 60, 2);
    app.set_parameter("in_flight", std::to_string(2 + run % 3));
    auto& src = app.add<IntSource>("source");
    src.live = &live;
    auto& af = app.add<DelayedDouble>("remote");
    af.timer = &timer;
    af.random_delay = true;
    af.delay_mod = 40;
    auto& col = app.add<Collector>("out", run % 2 ? Processor::Mode::Parallel : Processor::Mode::Sequential);
    col.live = &live;
    auto s = run_with_timeout(app);
    ASSERT_FALSE(s.fatal) << "run " << run << ": " << s.fatal->what();
    ASSERT_EQ(col.rows.size(), 60u) << "run " << run;
  }
}

// Without async factories and without an in_flight parameter the pool is 128 x nthreads slots, but
// the runner keeps only max(4, 2 x K) x nthreads events in flight: two groups per thread; with a
// sequential processor on several threads 512 x nthreads and eight groups per thread.
// Returns the most events ever read and not yet collected.
template <class Square>
int default_pool_peak(int nevents, int threads, Processor::Mode mode) {
  std::atomic<int> live{0};
  Application app;
  basic(app, nevents, threads);
  auto& src = app.add<IntSource>("source");
  src.live = &live;
  app.add<Square>("square");
  auto& col = app.add<Collector>("out", mode);
  col.live = &live;
  auto s = run_with_timeout(app, 120);
  EXPECT_FALSE(s.fatal) << s.fatal->what();
  EXPECT_EQ(col.rows.size(), static_cast<size_t>(nevents));
  const size_t per_thread = threads > 1 && mode == Processor::Mode::Sequential ? 512 : 128;
  EXPECT_EQ(col.pool_size(), per_thread * static_cast<size_t>(threads));
  return src.max_live.load();
}

TEST(Flow, DefaultPoolBoundsReadAheadByGroupSize) {
  // Tiny events, one thread: K starts at 1 (4 events in the first turn), then at most two groups.
  const int tiny = default_pool_peak<SquareFactory>(5000, 1, Processor::Mode::Sequential);
  EXPECT_GE(tiny, 4);
  EXPECT_LE(tiny, 128);
  // Heavy events (5 ms each), two threads: one event per group from the start (the first groups
  // are read before any was timed) and at most 4 per thread in flight, as with the old pool.
  const int heavy = default_pool_peak<SlowSquare>(100, 2, Processor::Mode::Parallel);
  EXPECT_GE(heavy, 1);
  EXPECT_LE(heavy, 8);
  // Tiny events at a sequential stage, two threads: the larger pool (eight groups of 64 per thread).
  const int parked = default_pool_peak<SquareFactory>(20000, 2, Processor::Mode::Sequential);
  EXPECT_GE(parked, 4);
}

// ---- sequential stages without async factories: a thread runs its own events in the stage, or
// parks them and runs them at its next visit, or hands them over when it goes idle (runner.cpp,
// SeqStage). Tiny events of uneven cost on more threads than cores, so that threads are preempted,
// groups finish out of order and events park, wait behind another thread's and are handed over.

// Squares, with a few microseconds of spinning for some events (so groups desynchronize).
class UnevenSquare : public Factory {
 public:
  Input<int> in_{this, "value"};
  Output<int64_t> out_{this, "square"};
  Parameter<int> throw_every_{this, "throw_every", 0, "throw for every N-th value (0: never)"};
  void process(Event& e) override {
    const int v = in_(e);
    if (*throw_every_ > 0 && v % *throw_every_ == 3) throw std::runtime_error("uneven " + std::to_string(v));
    volatile uint64_t x = 0;
    const int spins = (v * 2654435761u >> 20) % 7 == 0 ? 3000 : 0;
    for (int i = 0; i < spins; ++i) x = x + static_cast<uint64_t>(i);
    out_(e) = static_cast<int64_t>(v) * v;
  }
};

// A parallel processor between two sequential stages: the first stage's events go on as tasks.
class ParallelTouch : public Processor {
 public:
  ParallelTouch() : Processor(Mode::Parallel) {}
  Input<int64_t> sq_{this, "square"};
  std::atomic<int64_t> n{0};
  void process(const Event& e) override {
    (void)sq_(e);
    n.fetch_add(1, std::memory_order_relaxed);
  }
};

// Checks one sequential stage's record of a run: each of `n` events exactly once, in emission order
// when ordered, with the right square (failed ones: by `failed_every` as UnevenSquare throws).
void expect_each_once(const Collector& col, size_t n, bool ordered, int failed_every, const std::string& what) {
  ASSERT_EQ(col.rows.size(), n) << what;
  std::vector<int> seen(n, 0);
  for (size_t i = 0; i < col.rows.size(); ++i) {
    const Record& r = col.rows[i];
    ASSERT_LT(r.sequence, n) << what;
    ++seen[r.sequence];
    if (ordered && i > 0) {
      ASSERT_LT(col.rows[i - 1].sequence, r.sequence) << what << ": row " << i << " out of order";
    }
    const bool should_fail = failed_every > 0 && static_cast<int>(r.number) % failed_every == 3;
    EXPECT_EQ(r.failed, should_fail) << what << ": event " << r.number;
    if (!r.failed) {
      EXPECT_EQ(r.square, static_cast<int64_t>(r.number * r.number)) << what;
    }
  }
  for (size_t q = 0; q < n; ++q) ASSERT_EQ(seen[q], 1) << what << ": event " << q << " seen " << seen[q] << " times";
}

TEST(Flow, SequentialStagesRunTinyEventsOnceAndInOrderOnManyThreads) {
  for (int threads : {2, 3, 4})
    for (bool ordered : {true, false})
      for (int run = 0; run < 3; ++run) {
        const std::string what =
            std::to_string(threads) + " threads, " + (ordered ? "ordered" : "unordered") + ", run " + std::to_string(run);
#ifdef QUIVER_TSAN
        // Fewer under ThreadSanitizer, which runs this ~20x slower.
        const int n = 3000 + 77 * run;
#else
        const int n = 20000 + 777 * run;
#endif
        Application app;
        basic(app, n, threads);
        app.set_parameter("ordered", ordered ? "true" : "false");
        app.add<IntSource>("source");
        app.add<UnevenSquare>("square");
        auto& first = app.add<Collector>("first");
        auto& touch = app.add<ParallelTouch>("touch");
        auto& second = app.add<Collector>("second");
        auto s = run_with_timeout(app, 120);
        ASSERT_FALSE(s.fatal) << what << ": " << s.fatal->what();
        EXPECT_EQ(s.emitted, static_cast<uint64_t>(n)) << what;
        EXPECT_EQ(s.processed, static_cast<uint64_t>(n)) << what;
        EXPECT_EQ(touch.n.load(), n) << what;
        expect_each_once(first, static_cast<size_t>(n), ordered, 0, what + ", first stage");
        expect_each_once(second, static_cast<size_t>(n), ordered, 0, what + ", second stage");
      }
}

TEST(Flow, SequentialStagesKeepSkipPolicyAndStopWithTinyEvents) {
  for (bool ordered : {true, false}) {
    const std::string mode = ordered ? "ordered" : "unordered";
    {  // error_policy = skip: every event written or reported failed, once, in order
      Application app;
      basic(app, 10000, 3);
      app.set_parameter("ordered", ordered ? "true" : "false");
      app.set_parameter("error_policy", "skip");
      app.set_parameter("square.throw_every", "101");
      app.add<IntSource>("source");
      app.add<UnevenSquare>("square");
      auto& col = app.add<Collector>("out");
      auto s = run_with_timeout(app, 120);
      ASSERT_FALSE(s.fatal) << mode << ": " << s.fatal->what();
      EXPECT_EQ(s.failed, 99u) << mode;  // 3, 104, ..., 9901
      EXPECT_EQ(s.processed + s.failed, 10000u) << mode;
      expect_each_once(col, 10000, ordered, 101, mode + ", skip");
    }
    {  // a stop request: the events in flight finish and are written, none lost
      Application app;
      basic(app, 0, 3);  // endless source
      app.set_parameter("ordered", ordered ? "true" : "false");
      app.add<IntSource>("source");
      app.add<UnevenSquare>("square");
      auto& col = app.add<Collector>("out");
      col.stop_after = 5000;
      auto s = run_with_timeout(app, 120);
      EXPECT_TRUE(s.interrupted) << mode;
      ASSERT_FALSE(s.fatal) << mode << ": " << s.fatal->what();
      EXPECT_GE(s.processed, 5000u) << mode;
      EXPECT_EQ(s.processed, s.emitted) << mode;
      expect_each_once(col, s.emitted, ordered, 0, mode + ", stop");
    }
  }
}

// ---- errors
TEST(Flow, SkipPolicyReportsFailedEventsAndLosesNone) {
  Application app;
  basic(app, 50, 2);
  app.set_parameter("error_policy", "skip");
  app.set_parameter("square.throw_at", "7");
  app.add<IntSource>("source");
  app.add<SquareFactory>("square");
  auto& reader = app.add<SquareReader>("reader");
  auto& col = app.add<Collector>("out");
  auto s = run_with_timeout(app);
  EXPECT_FALSE(s.fatal);
  EXPECT_EQ(s.emitted, 50u);
  EXPECT_EQ(s.processed, 49u);
  EXPECT_EQ(s.failed, 1u);
  ASSERT_EQ(s.failures.size(), 1u);
  EXPECT_EQ(s.failures[0].event, 7u);
  EXPECT_EQ(s.failures[0].component, "square");  // the factory, not the processor that asked
  EXPECT_NE(s.failures[0].message.find("cannot square 7"), std::string::npos);
  EXPECT_NE(s.failures[0].message.find("event 7"), std::string::npos) << s.failures[0].message;
  ASSERT_EQ(col.rows.size(), 50u);  // every event written or reported as failed, in order
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(col.rows[i].number, i);
    EXPECT_EQ(col.rows[i].failed, i == 7);
  }
  EXPECT_NE(col.rows[7].error.find("square"), std::string::npos);
  int64_t expect = 0;
  for (int i = 0; i < 50; ++i)
    if (i != 7) expect += int64_t(i) * i;
  EXPECT_EQ(reader.sum.load(), expect);
}

TEST(Flow, AbortPolicyStopsAndNamesComponentAndEvent) {
  Application app;
  basic(app, 100000, 2);
  app.set_parameter("square.throw_at", "20");
  app.add<IntSource>("source");
  app.add<SquareFactory>("square");
  auto& col = app.add<Collector>("out");
  auto s = run_with_timeout(app);
  ASSERT_TRUE(s.fatal);
  std::string w = s.fatal->what();
  EXPECT_NE(w.find("event 20"), std::string::npos) << w;
  EXPECT_NE(w.find("'square'"), std::string::npos) << w;
  EXPECT_LT(s.emitted, 1000u);  // stopped reading
  EXPECT_EQ(s.processed + s.failed, s.emitted);  // in-flight events were finished
  EXPECT_EQ(col.rows.size(), s.emitted);
}

TEST(Flow, AsyncFailureFailsTheEvent) {
  flowtest::DelayTimer timer;
  Application app;
  basic(app, 30, 2);
  app.set_parameter("error_policy", "skip");
  app.add<IntSource>("source");
  auto& af = app.add<DelayedDouble>("remote");
  af.timer = &timer;
  af.delay_us = 100;
  af.fail_at = 11;
  auto& col = app.add<Collector>("out");
  auto s = run_with_timeout(app);
  EXPECT_EQ(s.failed, 1u);
  ASSERT_EQ(s.failures.size(), 1u);
  EXPECT_EQ(s.failures[0].component, "remote");
  EXPECT_EQ(s.failures[0].event, 11u);
  EXPECT_NE(s.failures[0].message.find("server gone"), std::string::npos);
  EXPECT_EQ(col.rows.size(), 30u);
}

class ThrowingAcquire : public AsyncFactory {
 public:
  Input<int> in_{this, "value"};
  Output<int64_t> out_{this, "square"};
  void acquire(Event& e, Completion done) override {
    if (in_(e) % 2 == 1) throw std::runtime_error("odd value");
    done();
  }
  void produce(Event& e) override { out_(e) = in_(e); }
};

class DroppingAcquire : public AsyncFactory {
 public:
  Input<int> in_{this, "value"};
  Output<int64_t> out_{this, "square"};
  void acquire(Event& e, Completion done) override {
    if (in_(e) == 3) return;  // forgets to complete: the event must fail, not hang
    done();
  }
  void produce(Event& e) override { out_(e) = in_(e); }
};

TEST(Flow, AcquireThatThrowsOrForgetsFailsTheEvent) {
  {
    Application app;
    basic(app, 20, 2);
    app.set_parameter("error_policy", "skip");
    app.add<IntSource>("source");
    app.add<ThrowingAcquire>("async");
    auto& col = app.add<Collector>("out");
    auto s = run_with_timeout(app);
    EXPECT_EQ(s.failed, 10u);
    EXPECT_EQ(s.processed, 10u);
    EXPECT_EQ(col.rows.size(), 20u);
    for (auto& f : s.failures) EXPECT_EQ(f.component, "async");
  }
  {
    Application app;
    basic(app, 10, 2);
    app.set_parameter("error_policy", "skip");
    app.add<IntSource>("source");
    app.add<DroppingAcquire>("async");
    auto& col = app.add<Collector>("out");
    auto s = run_with_timeout(app);
    EXPECT_EQ(s.failed, 1u);
    ASSERT_EQ(s.failures.size(), 1u);
    EXPECT_NE(s.failures[0].message.find("dropped"), std::string::npos);
    EXPECT_EQ(col.rows.size(), 10u);
  }
}

TEST(Flow, SourceFailureStopsReadingAndKeepsWhatWasRead) {
  Application app;
  basic(app, 0, 2);
  app.set_parameter("source.fail_at", "25");
  app.add<IntSource>("source");
  app.add<SquareFactory>("square");
  auto& col = app.add<Collector>("out");
  auto s = run_with_timeout(app);
  ASSERT_TRUE(s.fatal);
  std::string w = s.fatal->what();
  EXPECT_NE(w.find("source 'source'"), std::string::npos) << w;
  EXPECT_NE(w.find("corrupt record"), std::string::npos) << w;
  EXPECT_NE(w.find("input.dat"), std::string::npos) << w;
  EXPECT_EQ(s.emitted, 25u);
  EXPECT_EQ(col.rows.size(), 25u);
}

TEST(Flow, StopRequestFinishesEventsInFlight) {
  flowtest::DelayTimer timer;
  Application app;
  basic(app, 0, 2);  // endless source
  app.set_parameter("in_flight", "8");
  app.add<IntSource>("source");
  auto& af = app.add<DelayedDouble>("remote");
  af.timer = &timer;
  af.delay_us = 300;
  auto& col = app.add<Collector>("out");
  col.stop_after = 40;
  auto s = run_with_timeout(app);
  EXPECT_TRUE(s.interrupted);
  EXPECT_FALSE(s.fatal);
  EXPECT_GE(s.processed, 40u);
  EXPECT_LE(s.processed, 40u + 8u);
  EXPECT_EQ(s.processed, s.emitted);
  EXPECT_EQ(col.rows.size(), s.emitted);
}

// ---- batching
class BatchDoubler : public BatchFactory<int, int64_t> {
 public:
  Input<int> in_{this, "value"};
  Output<int64_t> out_{this, "square"};
  std::mutex m;
  std::vector<size_t> sizes;
  int mixed_batches = 0;
  int fail_value = -1;
  int sleep_ms = 0;
  std::function<void(std::span<const int* const>)> on_batch;  // called at the start of each batch
  std::atomic<int> in_call{0}, max_in_call{0};
  flowtest::OverlapProbe* overlap = nullptr;  // when set, calls wait there once for a second call

 protected:
  void unfold(Event& e, std::vector<int>& items) override {
    int v = in_(e);
    for (int k = 0; k < v % 5; ++k) items.push_back(v * 10 + k);
  }
  void process_batch(std::span<const int* const> items, std::span<int64_t* const> results) override {
    int c = ++in_call;
    int mc = max_in_call.load();
    while (c > mc && !max_in_call.compare_exchange_weak(mc, c)) {
    }
    if (on_batch) on_batch(items);
    if (overlap) overlap->enter();
    if (sleep_ms) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    if (overlap) overlap->leave();
    std::set<int> events;
    for (size_t i = 0; i < items.size(); ++i) {
      if (*items[i] / 10 == fail_value) {
        --in_call;
        throw std::runtime_error("bad item");
      }
      *results[i] = 2 * *items[i];
      events.insert(*items[i] / 10);
    }
    std::lock_guard<std::mutex> lk(m);
    sizes.push_back(items.size());
    if (events.size() > 1) ++mixed_batches;
    --in_call;
  }
  void fold(Event& e, std::vector<int64_t>& results) override {
    int64_t s = 0;
    for (auto r : results) s += r;
    out_(e) = s;
  }
};

int64_t batch_expect(int v) {
  int64_t s = 0;
  for (int k = 0; k < v % 5; ++k) s += 2 * (v * 10 + k);
  return s;
}

TEST(Flow, BatchStageGathersAcrossEventsAndScattersBack) {
  Application app;
  basic(app, 500, 2);
  app.set_parameter("in_flight", "32");
  app.set_parameter("batcher.max_batch", "16");
  app.set_parameter("batcher.max_wait_ms", "5");
  app.add<IntSource>("source");
  auto& b = app.add<BatchDoubler>("batcher");
  auto& col = app.add<Collector>("out");
  auto s = run_with_timeout(app);
  ASSERT_FALSE(s.fatal) << s.fatal->what();
  ASSERT_EQ(col.rows.size(), 500u);
  for (size_t i = 0; i < 500; ++i) EXPECT_EQ(col.rows[i].square, batch_expect(static_cast<int>(i))) << i;
  size_t total = 0;
  for (auto n : b.sizes) {
    EXPECT_LE(n, 16u);
    total += n;
  }
  size_t expect_items = 0;
  for (int i = 0; i < 500; ++i) expect_items += i % 5;
  EXPECT_EQ(total, expect_items);
  EXPECT_GT(b.mixed_batches, 0);
  auto st = b.stats();
  EXPECT_EQ(st.items, expect_items);
  EXPECT_EQ(st.largest, 16u);
  EXPECT_LT(st.batches, expect_items / 2) << "batches should gather several items";
}

// Batches never fill (max_batch 1000) and the timer never fires: every batch is an "all in-flight
// events wait here" flush, including when the last event not waiting here leaves an ordered
// writer (that used to wait for the timer). Spread on: the queued items become one call per
// worker thread and the two calls overlap.
TEST(Flow, BatchStageSpreadsIdleFlushesOverTheWorkerThreads) {
  for (bool spread : {true, false}) {
    Application app;
    basic(app, 24, 2);
    app.set_parameter("in_flight", "8");
    app.set_parameter("batcher.max_batch", "1000");
    app.set_parameter("batcher.max_wait_ms", "60000");
    app.set_parameter("batcher.spread", spread ? "true" : "false");
    app.add<IntSource>("source");
    auto& b = app.add<BatchDoubler>("batcher");
    b.sleep_ms = 40;
    flowtest::OverlapProbe overlap;  // spread: the first half waits for the second worker's half
    if (spread) b.overlap = &overlap;
    auto& col = app.add<Collector>("out");
    auto s = run_with_timeout(app, 60);
    ASSERT_FALSE(s.fatal) << s.fatal->what();
    ASSERT_EQ(col.rows.size(), 24u);
    for (size_t i = 0; i < 24; ++i) EXPECT_EQ(col.rows[i].square, batch_expect(static_cast<int>(i))) << i;
    EXPECT_EQ(b.stats().timer_flushes, 0u);
    // Off: each idle flush is one call (two may still overlap when flushes race).
    if (spread) {
      EXPECT_EQ(b.max_in_call.load(), 2) << "the idle flush should run on both threads";
      EXPECT_EQ(overlap.max_active(), 2);
    }
  }
}

// Passes events on as they come, except that events other than number `first` wait until the gate
// opens: the batch stage behind it then holds `first` alone while the others are in flight.
class GateStage : public AsyncFactory {
 public:
  Input<int> in_{this, "value"};
  Output<int> out_{this, "gated"};
  flowtest::Gate* gate = nullptr;
  int first = 1;
  void acquire(Event& e, Completion done) override {
    if (in_(e) == first) done();
    else gate->hold([done] { done(); });
  }
  void produce(Event& e) override { out_(e) = in_(e); }
};

TEST(Flow, BatchStageFlushesOnTimerWhenBatchCannotFill) {
  // in_flight 4 and max_batch 1000: event 1 (one item) reaches the batcher while event 0 (emitted
  // before it) and any later ones wait at the gate in front of it. The batch cannot fill and not
  // every in-flight event waits in the batcher, so only the max_wait timer can start its batch;
  // that batch opens the gate.
  flowtest::Gate gate(20);
  Application app;
  basic(app, 40, 2);
  app.set_parameter("in_flight", "4");
  app.set_parameter("batcher.max_batch", "1000");
  app.set_parameter("batcher.max_wait_ms", "5");
  app.add<IntSource>("source");
  auto& g = app.add<GateStage>("gate");
  g.gate = &gate;
  auto& b = app.add<BatchDoubler>("batcher");
  b.in_.set_tag("gated");
  std::vector<size_t> first_batch;
  uint64_t timer_flushes_at_first = 0;
  b.on_batch = [&](std::span<const int* const> items) {
    if (gate.is_open()) return;
    for (auto* it : items) first_batch.push_back(static_cast<size_t>(*it));
    timer_flushes_at_first = b.stats().timer_flushes;
    gate.open();
  };
  auto& col = app.add<Collector>("out");
  auto s = run_with_timeout(app, 60);
  ASSERT_FALSE(s.fatal) << s.fatal->what();
  EXPECT_FALSE(gate.opened_by_timeout()) << "no batch ran while event 1 waited alone in the batcher: the max_wait timer did not flush";
  EXPECT_EQ(first_batch, (std::vector<size_t>{10})) << "the first batch should be event 1's only item";
  EXPECT_EQ(timer_flushes_at_first, 1u) << "the first batch was not started by the timer";
  ASSERT_EQ(col.rows.size(), 40u);
  for (size_t i = 0; i < 40; ++i) EXPECT_EQ(col.rows[i].square, batch_expect(static_cast<int>(i)));
}

TEST(Flow, BatchFailureFailsEveryEventInTheBatchOnly) {
  Application app;
  basic(app, 60, 2);
  app.set_parameter("error_policy", "skip");
  app.set_parameter("in_flight", "8");
  app.set_parameter("batcher.max_batch", "4");
  app.add<IntSource>("source");
  auto& b = app.add<BatchDoubler>("batcher");
  b.fail_value = 13;
  auto& col = app.add<Collector>("out");
  auto s = run_with_timeout(app);
  EXPECT_FALSE(s.fatal);
  EXPECT_GE(s.failed, 1u);
  EXPECT_EQ(s.processed + s.failed, 60u);
  EXPECT_EQ(col.rows.size(), 60u);
  bool saw13 = false;
  for (auto& f : s.failures) {
    EXPECT_EQ(f.component, "batcher");
    saw13 |= f.event == 13;
  }
  EXPECT_TRUE(saw13);
  for (auto& r : col.rows)
    if (!r.failed) {
      EXPECT_EQ(r.square, batch_expect(static_cast<int>(r.number)));
    }
}

class SplitSquare : public UnfoldFactory<int, int64_t> {
 public:
  Input<int> in_{this, "value"};
  Output<int64_t> out_{this, "square"};

 protected:
  void unfold(Event& e, std::vector<int>& items) override {
    int v = in_(e);
    for (int k = 0; k < v % 7; ++k) items.push_back(v + k);
  }
  void process_item(const int& item, int64_t& r) override { r = int64_t(item) * item; }
  void fold(Event& e, std::vector<int64_t>& rs) override {
    int64_t s = 0;
    for (auto x : rs) s += x;
    out_(e) = s;
  }
};

TEST(Flow, UnfoldFoldRunsItemsAsTasks) {
  Application app;
  basic(app, 200, 2);
  app.add<IntSource>("source");
  app.add<SplitSquare>("split");
  auto& col = app.add<Collector>("out", Processor::Mode::Parallel);
  auto s = run_with_timeout(app);
  ASSERT_FALSE(s.fatal);
  ASSERT_EQ(col.rows.size(), 200u);
  for (auto& r : col.rows) {
    int v = static_cast<int>(r.number);
    int64_t e = 0;
    for (int k = 0; k < v % 7; ++k) e += int64_t(v + k) * (v + k);
    EXPECT_EQ(r.square, e);
  }
}

TEST(Flow, RunsTwiceAndNskip) {
  Application app;
  basic(app, 10, 1);
  app.set_parameter("nskip", "5");
  app.add<IntSource>("source");
  app.add<SquareFactory>("square");
  auto& col = app.add<Collector>("out");
  auto s1 = run_with_timeout(app);
  auto s2 = run_with_timeout(app);
  EXPECT_EQ(s1.processed, 10u);
  EXPECT_EQ(s2.processed, 10u);
  ASSERT_EQ(col.rows.size(), 20u);
  EXPECT_EQ(col.rows[0].number, 5u);
  EXPECT_EQ(col.rows[0].square, 25);
  EXPECT_EQ(col.rows[10].square, 25);
}

// ---- plugins
TEST(Flow, PluginLoadsFromPluginPathAndUnknownPluginIsNamed) {
  ::setenv("QUIVER_PLUGIN_PATH", FLOW_TEST_PLUGIN_DIR, 1);
  Application app;
  basic(app, 25, 2);
  app.set_parameter("plugins", "flow_test_plugin");
  app.load_plugins();
  ASSERT_NE(app.find("plugin_source"), nullptr);
  ASSERT_NE(app.find("plugin_counter"), nullptr);
  auto s = run_with_timeout(app);
  EXPECT_FALSE(s.fatal);
  EXPECT_EQ(s.processed, 25u);

  Application app2;
  try {
    app2.load_plugin("no_such_plugin");
    FAIL();
  } catch (const quiver::Error& e) {
    EXPECT_EQ(e.code(), quiver::ErrorCode::NotFound);
    std::string w = e.what();
    EXPECT_NE(w.find("no_such_plugin"), std::string::npos);
    EXPECT_NE(w.find(FLOW_TEST_PLUGIN_DIR), std::string::npos) << w;
  }
  ::unsetenv("QUIVER_PLUGIN_PATH");
}

class SleepyProcessor : public Processor {
 public:
  Input<int> in_{this, "value"};
  flowtest::OverlapProbe calls;
  void process(const Event& e) override {
    calls.enter();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    calls.leave();
  }
};

TEST(Flow, EventsRunConcurrentlyOnAllThreads) {
  // 10 ms of (non-CPU) work per event on 3 threads: events must overlap in time on different
  // threads (checked by counting overlapping process() calls, not by wall time, which a loaded
  // CI machine distorts).
  Application app;
  basic(app, 40, 3);
  app.add<IntSource>("source");
  auto& p = app.add<SleepyProcessor>("sleepy");
  auto s = run_with_timeout(app);
  ASSERT_FALSE(s.fatal);
  EXPECT_EQ(s.processed, 40u);
  EXPECT_GE(p.calls.threads(), 2u);
  EXPECT_GE(p.calls.max_active(), 2) << "events never overlapped";
  EXPECT_LE(p.calls.max_active(), 3);
}

namespace {
// Captures what is logged through spdlog's default logger (the framework and the components) while
// it lives; on_line sees each line as it is logged.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<Sink>(*this)), previous_(spdlog::default_logger()) {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("flow_test_capture", sink_));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::vector<std::string> lines() const {
    std::lock_guard<std::mutex> lk(m_);
    return lines_;
  }
  std::function<void(const std::string&)> on_line;

 private:
  class Sink final : public spdlog::sinks::base_sink<std::mutex> {
   public:
    explicit Sink(LogCapture& c) : c_(c) {}

   protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
      const auto lv = spdlog::level::to_string_view(msg.level);
      std::string line = std::string(lv.data(), lv.size()) + " " + std::string(msg.payload.data(), msg.payload.size());
      {
        std::lock_guard<std::mutex> lk(c_.m_);
        c_.lines_.push_back(line);
      }
      if (c_.on_line) c_.on_line(line);
    }
    void flush_() override {}

   private:
    LogCapture& c_;
  };
  mutable std::mutex m_;
  std::vector<std::string> lines_;
  std::shared_ptr<Sink> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

const std::regex kTick(R"(\[flow\] (\d+) events, [0-9.]+ events/s \(avg [0-9.]+\), (\d+) in flight, (\d+) failed)");
}  // namespace

TEST(Flow, LogLevelsAndTicker) {
  {
    Application app;
    basic(app, 5);
    app.set_parameter("out.log_level", "loud");
    app.add<IntSource>("source");
    app.add<SquareFactory>("square");
    app.add<Collector>("out");
    try {
      app.run();
      FAIL();
    } catch (const quiver::Error& e) {
      EXPECT_NE(std::string(e.what()).find("out.log_level"), std::string::npos) << e.what();
    }
  }
  LogCapture logs;
  // Ticker every 10 ms, and no answer reaches any event before the first progress line: that line
  // must report 0 events done and the waiting events in flight.
  flowtest::Gate gate(20);
  logs.on_line = [&gate](const std::string& line) {
    if (std::regex_search(line, kTick)) gate.open();
  };
  flowtest::DelayTimer timer;
  Application app;
  basic(app, 40, 2);
  app.set_parameter("ticker", "0.01");
  app.set_parameter("log_level", "warn");
  app.set_parameter("remote.log_level", "debug");
  app.add<IntSource>("source");
  auto& af = app.add<DelayedDouble>("remote");
  af.timer = &timer;
  af.delay_us = 200;
  af.gate = &gate;
  auto& col = app.add<Collector>("out");
  auto s = run_with_timeout(app, 60);
  ASSERT_FALSE(s.fatal) << s.fatal->what();
  EXPECT_EQ(col.rows.size(), 40u);
  EXPECT_FALSE(gate.opened_by_timeout()) << "no ticker line in 20 s while every event waited for its answer";
  std::vector<std::smatch> ticks;
  const auto lines = logs.lines();
  for (const auto& l : lines) {
    std::smatch m;
    if (std::regex_search(l, m, kTick)) ticks.push_back(m);
  }
  ASSERT_FALSE(ticks.empty()) << "no progress line from the ticker";
  EXPECT_EQ(ticks[0][1], "0") << ticks[0][0] << ": no event can have finished before the first tick";
  const int in_flight = std::stoi(ticks[0][2]);
  EXPECT_GE(in_flight, 1) << ticks[0][0];
  EXPECT_LE(in_flight, 8) << ticks[0][0] << ": more than in_flight (4 x 2 threads) events";
  EXPECT_EQ(ticks[0][3], "0") << ticks[0][0];
  for (const auto& t : ticks) EXPECT_LE(std::stoull(t[1]), 40u) << t[0];
  // Levels: the component's own level wins over the global one.
  EXPECT_TRUE(af.log_enabled(LogLevel::Debug));
  EXPECT_FALSE(col.log_enabled(LogLevel::Info));
  EXPECT_TRUE(col.log_enabled(LogLevel::Warn));
  const auto debug_from_remote = std::count_if(lines.begin(), lines.end(), [](const std::string& l) {
    return l.rfind("debug [remote] parked event ", 0) == 0;
  });
  EXPECT_EQ(debug_from_remote, 40) << "remote.log_level=debug: one debug line per event";

  // Ticker off (the default): no progress line, and the remote's debug lines stay off at "info".
  const size_t before = logs.lines().size();
  Application quiet;
  basic(quiet, 10, 2);
  quiet.add<IntSource>("source");
  auto& qaf = quiet.add<DelayedDouble>("remote");
  qaf.timer = &timer;
  qaf.delay_us = 200;
  quiet.add<Collector>("out");
  ASSERT_FALSE(run_with_timeout(quiet).fatal);
  const auto after = logs.lines();
  for (size_t i = before; i < after.size(); ++i) {
    EXPECT_FALSE(std::regex_search(after[i], kTick)) << after[i];
    EXPECT_EQ(after[i].find("[remote]"), std::string::npos) << after[i];
  }
}
