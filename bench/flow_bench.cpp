// Benchmarks of the event-processing framework (docs/benchmarks.md, section "Event framework").
//
//   bench_flow overhead [--work-ns 0,500,2000] [--threads 1,2,4,...] [--runs 5] [--events N]
//                       [--in-flight N] [--variants parallel,ordered,unordered]
//                                               source -> lazy factory (busy work) -> processor; per
//                                               thread count: events/s and framework CPU per event,
//                                               median [min-max] of alternating runs, scaling vs 1 thread;
//                                               before each round, what a cache line costs to move
//                                               between two CPUs (ping-pong), printed with the table
//   bench_flow service [--latency-ms 10] [--events N] [--in-flight 16,64,256]
//                                               service mode against a server answering after 10 ms
//   bench_flow particlenet [--events N] [--threads T] [--device cuda [--in-flight N]]
//                                               jet-tagging example: ParticleNet-AK4 direct vs batched
#include <oneapi/tbb/task_arena.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>

#include <algorithm>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <cmath>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "quiver/core/model.hpp"
#include "quiver/flow/application.hpp"
#include "quiver/flow/inference.hpp"

using namespace quiver;
using namespace quiver::flow;

namespace {

class CountSource : public Source {
 public:
  Output<int64_t> out_{this, "n"};
  int64_t n = 0;
  void init() override { n = 0; }
  bool emit(Event& e) override {
    out_(e) = n++;
    return true;
  }
};
int64_t g_work_iters = 0;  // per-event busy work (0: empty pipeline)
double spin(int64_t iters, double x) {
  for (int64_t i = 0; i < iters; ++i) x = x * 0.999999 + 1e-7;
  return x;
}
class Trivial : public Factory {
 public:
  Input<int64_t> in_{this, "n"};
  Output<int64_t> out_{this, "m"};
  void process(Event& e) override {
    int64_t v = in_(e) * 3 + 1;
    if (g_work_iters && spin(g_work_iters, static_cast<double>(v)) < -1) v = 0;
    out_(e) = v;
  }
};
// Sums per worker thread (one cache line each), so that the benchmark's own processor does not
// add a cache line written by every thread to what is measured.
class Sink : public Processor {
 public:
  explicit Sink(Mode m) : Processor(m) {}
  Input<int64_t> in_{this, "m"};
  struct alignas(64) Lane {
    int64_t sum = 0;
  };
  std::vector<Lane> lanes;
  void init() override { lanes.assign(static_cast<size_t>(runtime().concurrency()) + 1, Lane{}); }
  void process(const Event& e) override {
    int i = tbb::this_task_arena::current_thread_index();
    size_t l = i >= 0 && static_cast<size_t>(i) < lanes.size() - 1 ? static_cast<size_t>(i) : lanes.size() - 1;
    lanes[l].sum += in_(e);
  }
  int64_t sum() const {
    int64_t s = 0;
    for (auto& l : lanes) s += l.sum;
    return s;
  }
};

// y [N, 4] = 2 x: cheap, so that the service benchmark is latency-bound.
class Doubler final : public Model {
 public:
  Doubler() {
    info_.name = "doubler";
    info_.backend = "bench";
    info_.inputs = {{"x", DType::F32, {Dim::sym("N"), 4}}};
    info_.outputs = {{"y", DType::F32, {Dim::sym("N"), 4}}};
    info_.max_batch = 4096;
  }
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<RunState>(); }
  void run(std::span<const Tensor> in, std::vector<Tensor>& out, RunState&) const override {
    out.resize(1);
    out[0].ensure(DType::F32, in[0].dims());
    for (int64_t i = 0; i < in[0].numel(); ++i) out[0].data<float>()[i] = 2 * in[0].data<float>()[i];
  }

 private:
  ModelInfo info_;
};

class Tagger : public InferenceFactory {
 public:
  Input<int64_t> in_{this, "n"};
  Output<float> out_{this, "score"};

 protected:
  void fill_inputs(const Event& e, InferenceInputs& in) override {
    in.resize(2);
    for (size_t i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k) in.f32(0, i)[k] = static_cast<float>(in_(e) % 100) + k;
  }
  void read_outputs(Event& e, const InferenceOutputs& out) override {
    out_(e) = out.f32(0, 0)[0] + out.f32(0, 1)[3];
  }
};
class ScoreSink : public Processor {
 public:
  Input<float> in_{this, "score"};
  std::atomic<int64_t> n{0};
  void process(const Event& e) override {
    if (in_(e) >= 0) n.fetch_add(1, std::memory_order_relaxed);
  }
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

std::string arg(int argc, char** argv, const char* name, const char* def) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return argv[i + 1];
  return def;
}

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p <= list.size()) {
    size_t c = list.find(',', p);
    if (c == std::string::npos) c = list.size();
    if (c > p) out.push_back(list.substr(p, c - p));
    p = c + 1;
  }
  return out;
}

struct Variant {
  const char* label;
  bool seq, ordered;
  bool independent = false;  // T separate 1-thread pipelines side by side (shares nothing)
};

RunSummary run_pipeline(const Variant& v, int threads, int64_t events, const std::string& in_flight, int64_t* sum_out) {
  Application app;
  app.set_parameter("ordered", v.ordered ? "true" : "false");
  app.set_parameter("nthreads", std::to_string(threads));
  app.set_parameter("nevents", std::to_string(events));
  if (!in_flight.empty()) app.set_parameter("in_flight", in_flight);
  app.add<CountSource>("source");
  app.add<Trivial>("trivial");
  auto& sink = app.add<Sink>("sink", v.seq ? Processor::Mode::Sequential : Processor::Mode::Parallel);
  auto s = app.run();
  if (s.fatal) throw *s.fatal;
  *sum_out = sink.sum();
  return s;
}

// The control: T pipelines of one thread each, in T threads of their own, sharing no framework
// state: what this machine gives T threads running this code when nothing is shared. Returns the
// combined rate; the sum is checked per pipeline.
double run_independent(const Variant& v, int threads, int64_t events, const std::string& in_flight, bool* ok) {
  const int64_t per = events / threads;
  int64_t expect = 0;
  for (int64_t i = 0; i < per; ++i) expect += i * 3 + 1;
  std::vector<std::thread> ts;
  std::atomic<bool> good{true};
  const auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&] {
      int64_t sum = 0;
      Variant one = v;
      one.independent = false;
      auto s = run_pipeline(one, 1, per, in_flight, &sum);
      if (sum != expect || s.processed != static_cast<uint64_t>(per)) good = false;
    });
  for (auto& t : ts) t.join();
  *ok = good.load();
  return static_cast<double>(per * threads) /
         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// What one cache line costs to move between two of this machine's CPUs, right now: two threads
// pinned to the first two CPUs the process may use bounce one line (ns per one-way transfer; 0
// with fewer than 2 CPUs). On a VM this changes with where the host places the vCPUs (on the
// AMD EPYC host of docs/benchmarks.md, ~50-80 ns or ~210-245 ns from one minute to the next), and
// with it what every line that moves between threads costs the 2-thread runs: the rounds record it.
double line_transfer_ns() {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 0;
  int cpus[2], n = 0;
  for (int c = 0; c < CPU_SETSIZE && n < 2; ++c)
    if (CPU_ISSET(c, &allowed)) cpus[n++] = c;
  if (n < 2) return 0;
  auto pin = [](int c) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(c, &one);
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
  };
  struct alignas(128) Line {
    std::atomic<int64_t> turn{0};
  } line;
  constexpr int64_t kRounds = 100000;
  auto play = [&](int64_t first) {
    for (int64_t i = first; i < 2 * kRounds; i += 2) {
      while (line.turn.load(std::memory_order_acquire) != i) {
      }
      line.turn.store(i + 1, std::memory_order_release);
    }
  };
  std::thread other([&] {
    pin(cpus[1]);
    play(1);
  });
  cpu_set_t before;
  pthread_getaffinity_np(pthread_self(), sizeof before, &before);
  pin(cpus[0]);
  const auto t0 = std::chrono::steady_clock::now();
  play(0);
  while (line.turn.load(std::memory_order_acquire) != 2 * kRounds) {
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  other.join();
  pthread_setaffinity_np(pthread_self(), sizeof before, &before);
  return ns / (2.0 * kRounds);
}

struct Stat {
  double median, lo, hi;
};
Stat stat(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  return {med, v.front(), v.back()};
}
std::string rate_text(double r) {
  char b[32];
  if (r >= 1e6) std::snprintf(b, sizeof b, "%.2f M", r / 1e6);
  else std::snprintf(b, sizeof b, "%.0f k", r / 1e3);
  return b;
}

// Framework overhead and scaling: source -> lazy factory (busy work) -> processor. For each amount of
// work, runs alternate over the processor kinds and the thread counts (so that a change in the
// machine's load touches every row alike); the table gives the median and [min-max] of the runs.
// "CPU ns/event" is the process's user+system CPU time per event: the work, the framework, and
// whatever the worker threads burn while idle.
int overhead(int argc, char** argv) {
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::string default_threads;
  for (int t = 1; t <= hw; t *= 2) default_threads += (default_threads.empty() ? "" : ",") + std::to_string(t);
  if ((hw & (hw - 1)) != 0) default_threads += "," + std::to_string(hw);
  std::vector<int> threads;
  for (auto& t : split(arg(argc, argv, "--threads", default_threads.c_str()))) threads.push_back(std::atoi(t.c_str()));
  const int runs = std::max(1, std::atoi(arg(argc, argv, "--runs", "5").c_str()));
  const int64_t fixed_events = std::atoll(arg(argc, argv, "--events", "0").c_str());
  const std::string in_flight = arg(argc, argv, "--in-flight", "");
  std::vector<double> works;
  for (auto& w : split(arg(argc, argv, "--work-ns", "0,500,2000"))) works.push_back(std::atof(w.c_str()));
  std::vector<Variant> variants;
  for (auto& v : split(arg(argc, argv, "--variants", "parallel,unordered,ordered,independent"))) {
    if (v == "parallel") variants.push_back({"parallel", false, true});
    else if (v == "unordered") variants.push_back({"seq unordered", true, false});
    else if (v == "ordered") variants.push_back({"seq ordered", true, true});
    else if (v == "independent") variants.push_back({"T x 1 thread", false, true, true});
    else
      throw Error(ErrorCode::InvalidArgument,
                  "--variants: parallel, unordered, ordered or independent, not '" + v + "'");
  }
  // Calibrate the busy loop once.
  const int64_t probe = 20000000;
  auto c0 = std::chrono::steady_clock::now();
  volatile double sink = spin(probe, 1.0);
  (void)sink;
  const double ns_per_iter =
      std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - c0).count() / probe;
  std::printf("bench_flow overhead: %d runs per cell (alternating thread counts), in_flight %s, %d hardware threads\n",
              runs, in_flight.empty() ? "default" : in_flight.c_str(), hw);
  for (double work_ns : works) {
    g_work_iters = static_cast<int64_t>(work_ns / ns_per_iter);
    const int64_t events =
        fixed_events > 0 ? fixed_events : std::max<int64_t>(200000, static_cast<int64_t>(0.5e9 / (work_ns + 100)));
    int64_t expect = 0;
    for (int64_t i = 0; i < events; ++i) expect += i * 3 + 1;
    std::printf("\nsource -> factory (%s) -> processor, %lld events per run\n",
                work_ns > 0 ? ("~" + std::to_string(static_cast<int>(work_ns)) + " ns of work").c_str() : "no work",
                static_cast<long long>(events));
    std::printf("%-14s %7s %24s %9s %24s %9s\n", "processor", "threads", "events/s median [min-max]", "vs 1 thr",
                "CPU ns/event [min-max]", "vs 1 thr");
    // Runs alternate over the variants too (run r of every variant and thread count, then run r + 1),
    // so that the control (T x 1 thread) is measured in the same stretch of time as the pipelines: a
    // disturbance of the machine (another process, the VM's neighbours) shows in the control as well.
    using Samples = std::vector<std::vector<double>>;
    std::vector<double> transfer;  // line_transfer_ns() before each round
    std::vector<Samples> rate(variants.size(), Samples(threads.size())), cpu(variants.size(), Samples(threads.size()));
    for (const Variant& v : variants)
      for (size_t ti = 0; ti < threads.size(); ++ti) {  // warm-up
        int64_t sum = 0;
        if (!v.independent) run_pipeline(v, threads[ti], std::max<int64_t>(events / 10, 1000), in_flight, &sum);
      }
    for (int r = 0; r < runs; ++r)
      for (size_t vi = 0; vi < variants.size(); ++vi) {
        if (vi == 0) transfer.push_back(line_transfer_ns());
        for (size_t ti = 0; ti < threads.size(); ++ti) {
          const Variant& v = variants[vi];
          std::this_thread::sleep_for(std::chrono::milliseconds(30));  // idle workers go to sleep
          int64_t sum = 0;
          double t0 = cpu_seconds();
          if (v.independent) {
            bool ok = false;
            const double r_all = run_independent(v, threads[ti], events, in_flight, &ok);
            const double used = cpu_seconds() - t0;
            if (!ok) {
              std::fprintf(stderr, "bench_flow: wrong result in an independent pipeline\n");
              return 1;
            }
            rate[vi][ti].push_back(r_all);
            cpu[vi][ti].push_back(1e9 * used / static_cast<double>(events / threads[ti] * threads[ti]));
            continue;
          }
          auto s = run_pipeline(v, threads[ti], events, in_flight, &sum);
          double used = cpu_seconds() - t0;
          if (sum != expect || s.processed != static_cast<uint64_t>(events)) {
            std::fprintf(stderr, "bench_flow: wrong result (%lld events, sum %lld, expected %lld)\n",
                         static_cast<long long>(s.processed), static_cast<long long>(sum), static_cast<long long>(expect));
            return 1;
          }
          rate[vi][ti].push_back(s.rate());
          cpu[vi][ti].push_back(1e9 * used / s.processed);
        }
      }
    {
      const Stat t = stat(transfer);
      std::printf("cache line between two CPUs (ping-pong before each round): %.0f ns [%.0f-%.0f] one way\n", t.median,
                  t.lo, t.hi);
    }
    for (size_t vi = 0; vi < variants.size(); ++vi) {
      const Stat r1 = stat(rate[vi][0]), c1 = stat(cpu[vi][0]);
      for (size_t ti = 0; ti < threads.size(); ++ti) {
        Stat r = stat(rate[vi][ti]), c = stat(cpu[vi][ti]);
        char rb[64], cb[64];
        std::snprintf(rb, sizeof rb, "%s [%s-%s]", rate_text(r.median).c_str(), rate_text(r.lo).c_str(),
                      rate_text(r.hi).c_str());
        std::snprintf(cb, sizeof cb, "%.0f [%.0f-%.0f]", c.median, c.lo, c.hi);
        std::printf("%-14s %7d %24s %8.2fx %24s %8.2fx\n", variants[vi].label, threads[ti], rb, r.median / r1.median,
                    cb, c.median / c1.median);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

int service(int argc, char** argv) {
  double latency = std::atof(arg(argc, argv, "--latency-ms", "10").c_str());
  int64_t events = std::atoll(arg(argc, argv, "--events", "20000").c_str());
  std::string list = arg(argc, argv, "--in-flight", "16,64,256");
  int threads = std::atoi(arg(argc, argv, "--threads", "2").c_str());
  auto model = std::make_shared<Doubler>();
  // CPU-bound rate: the same pipeline in direct mode.
  double cpu_rate;
  {
    Application app;
    app.set_parameter("nthreads", std::to_string(threads));
    app.set_parameter("nevents", std::to_string(events * 5));
    app.set_parameter("tagger.mode", "direct");
    app.add<CountSource>("source");
    app.add<Tagger>("tagger").set_model(model);
    app.add<ScoreSink>("sink");
    auto s = app.run();
    if (s.fatal) throw *s.fatal;
    cpu_rate = s.rate();
  }
  std::printf("service mode, server latency %.1f ms, %d threads; CPU-bound (direct) rate %.0f events/s\n", latency,
              threads, cpu_rate);
  std::printf("%10s %10s %14s %14s %10s %16s %12s\n", "in_flight", "events", "events/s", "bound", "fraction",
              "no-framework/s", "vs control");
  size_t p = 0;
  while (p < list.size()) {
    size_t c = list.find(',', p);
    int inflight = std::atoi(list.substr(p, c - p).c_str());
    p = c == std::string::npos ? list.size() : c + 1;
    double bound = std::min(cpu_rate, inflight / (latency * 1e-3));
    int64_t n = std::max<int64_t>(events, static_cast<int64_t>(bound * 2));  // >= ~2 s of work
    Application app;
    app.set_parameter("nthreads", std::to_string(threads));
    app.set_parameter("nevents", std::to_string(n));
    app.set_parameter("in_flight", std::to_string(inflight));
    app.set_parameter("tagger.mode", "service");
    app.set_parameter("tagger.service", "loopback:" + std::to_string(latency));
    app.add<CountSource>("source");
    app.add<Tagger>("tagger").set_model(model);
    auto& sink = app.add<ScoreSink>("sink");
    auto s = app.run();
    if (s.fatal) throw *s.fatal;
    if (sink.n.load() != n) {
      std::fprintf(stderr, "lost events\n");
      return 1;
    }
    // Control: the same loopback service driven without the framework (each answer immediately
    // sends the next request from the service thread), i.e. what this machine allows right now.
    double control;
    {
      auto svc = make_loopback_inferer(model, latency);
      std::atomic<int64_t> done{0};
      std::mutex m;
      std::condition_variable cv;
      int64_t total = std::max<int64_t>(inflight * 50, 2000);
      std::function<void()> send;
      auto x = Tensor::zeros(DType::F32, {2, 4});
      send = [&] {
        svc->infer_async("model", {{"x", x}}, {}, [&](quiver::InferResult) {
          int64_t d = ++done;
          if (d + inflight <= total) send();
          if (d == total) {
            std::lock_guard<std::mutex> lk(m);
            cv.notify_all();
          }
        });
      };
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < inflight; ++i) send();
      std::unique_lock<std::mutex> lk(m);
      cv.wait(lk, [&] { return done.load() >= total; });
      control = total / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::printf("%10d %10lld %14.0f %14.0f %9.1f%% %16.0f %11.1f%%\n", inflight, static_cast<long long>(n), s.rate(),
                bound, 100 * s.rate() / bound, control, 100 * s.rate() / control);
  }
  return 0;
}

// ParticleNet-AK4 in the jet-tagging example: direct (one call per jet), direct per event, batched.
int particlenet(int argc, char** argv) {
  std::string events = arg(argc, argv, "--events", "200");
  std::string threads = arg(argc, argv, "--threads", "2");
  std::string config = arg(argc, argv, "--config", QUIVER_SOURCE_DIR "/examples/jet_tagging/config.toml");
  struct Variant {
    std::string label;
    std::vector<std::pair<std::string, std::string>> params;
  };
  std::vector<Variant> variants = {
      {"direct, one call per jet", {{"inference.mode", "direct"}, {"inference.direct_granularity", "item"}}},
      {"direct, one call per event", {{"inference.mode", "direct"}, {"inference.direct_granularity", "event"}}},
      {"batched (max 64 jets)", {{"inference.mode", "batched"}, {"inference.max_batch", "64"}}},
      {"batched (max 256 jets)", {{"inference.mode", "batched"}, {"inference.max_batch", "256"}, {"in_flight", "64"}}},
  };
  // --device cuda: the batch stage offloads to the GPU executor; one call per batch (no spreading of
  // idle flushes over threads), enough events in flight to fill it.
  const std::string device = arg(argc, argv, "--device", "cpu");
  if (device != "cpu") {
    variants.erase(variants.begin() + 1, variants.end());
    const std::string fixed_inflight = arg(argc, argv, "--in-flight", "");
    for (const char* mb : {"256", "1024"}) {
      const std::string inflight = fixed_inflight.empty() ? std::to_string(std::atoi(mb) / 2) : fixed_inflight;
      variants.push_back({"batched on " + device + " (max " + mb + ", " + inflight + " ev)", {{"inference.mode", "batched"}, {"inference.device", device},
                                                  {"inference.max_batch", mb}, {"inference.spread", "false"},
                                                  {"in_flight", inflight}}});
    }
  }
  std::printf("ParticleNet-AK4 jet tagging, %s events, %s threads (config %s)\n", events.c_str(), threads.c_str(),
              config.c_str());
  std::printf("%-40s %10s %12s %12s %10s %14s\n", "mode", "seconds", "events/s", "CPU s", "ratio", "CPU ratio");
  double base = 0, base_cpu = 0;
  for (auto& v : variants) {
    Application app;
    for (auto& [k, val] : v.params) app.set_parameter(k, val);
    app.set_parameter("nevents", events);
    app.set_parameter("nthreads", threads);
    app.set_parameter("ticker", "0");
    app.set_parameter("writer.csv", "");
    app.set_parameter("writer.hdf5", "");
    app.load_config(config);
    app.load_plugins();
    double c0 = cpu_seconds();
    auto s = app.run();
    double cpu = cpu_seconds() - c0;
    if (s.fatal) throw *s.fatal;
    if (base == 0) {
      base = s.rate();
      base_cpu = cpu;
    }
    std::printf("%-40s %10.3f %12.1f %12.3f %10.2f %14.2f\n", v.label.c_str(), s.seconds, s.rate(), cpu, s.rate() / base,
                base_cpu / cpu);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string what = argc > 1 ? argv[1] : "overhead";
  try {
    if (what == "overhead") return overhead(argc, argv);
    if (what == "service") return service(argc, argv);
    if (what == "particlenet") return particlenet(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_flow: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: bench_flow overhead|service [options]\n");
  return 2;
}
