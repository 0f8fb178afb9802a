// Benchmarks of the event-processing framework (docs/benchmarks.md, section "Event framework").
//
//   bench_flow overhead [--events N]            empty pipeline: source -> trivial factory -> processor;
//                                               ns/event on 1 thread, rate on 1 and 2 threads
//   bench_flow service [--latency-ms 10] [--events N] [--in-flight 16,64,256]
//                                               service mode against a server answering after 10 ms
//   bench_flow particlenet [--events N] [--threads T] [--device cuda [--in-flight N]]
//                                               jet-tagging example: ParticleNet-AK4 direct vs batched
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <cmath>
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
class Sink : public Processor {
 public:
  explicit Sink(Mode m) : Processor(m) {}
  Input<int64_t> in_{this, "m"};
  std::atomic<int64_t> sum{0};
  void process(const Event& e) override { sum.fetch_add(in_(e), std::memory_order_relaxed); }
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

RunSummary run_empty(int threads, int64_t events, bool sequential, int64_t* sum_out, bool ordered = true) {
  Application app;
  app.set_parameter("ordered", ordered ? "true" : "false");
  app.set_parameter("nthreads", std::to_string(threads));
  app.set_parameter("nevents", std::to_string(events));
  app.add<CountSource>("source");
  app.add<Trivial>("trivial");
  auto& sink = app.add<Sink>("sink", sequential ? Processor::Mode::Sequential : Processor::Mode::Parallel);
  auto s = app.run();
  if (s.fatal) throw *s.fatal;
  *sum_out = sink.sum.load();
  return s;
}

int overhead(int argc, char** argv) {
  int64_t events = std::atoll(arg(argc, argv, "--events", "2000000").c_str());
  double work_ns = std::atof(arg(argc, argv, "--work-ns", "0").c_str());
  if (work_ns > 0) {
    int64_t probe = 10000000;
    auto t0 = std::chrono::steady_clock::now();
    volatile double sink = spin(probe, 1.0);
    (void)sink;
    double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    g_work_iters = static_cast<int64_t>(work_ns * probe / ns);
  }
  std::printf("pipeline: source -> factory (%s) -> processor, %lld events\n",
              work_ns > 0 ? ("~" + std::to_string(static_cast<int>(work_ns)) + " ns of work").c_str() : "trivial",
              static_cast<long long>(events));
  std::printf("%-14s %6s %10s %12s %12s %14s\n", "processor", "threads", "seconds", "events/s", "wall ns/ev",
              "CPU ns/event");
  int64_t expect = 0;
  for (int64_t i = 0; i < events; ++i) expect += i * 3 + 1;
  struct Variant {
    const char* label;
    bool seq, ordered;
  };
  for (const Variant& v : {Variant{"parallel", false, true}, Variant{"seq ordered", true, true},
                           Variant{"seq unordered", true, false}}) {
    double r1 = 0;
    for (int t : {1, 2}) {
      int64_t sum = 0;
      run_empty(t, events / 10, v.seq, &sum, v.ordered);  // warm-up
      double c0 = cpu_seconds();
      auto s = run_empty(t, events, v.seq, &sum, v.ordered);
      double cpu = cpu_seconds() - c0;
      if (sum != expect) {
        std::fprintf(stderr, "wrong sum\n");
        return 1;
      }
      if (t == 1) r1 = s.rate();
      std::printf("%-14s %6d %10.3f %12.0f %12.1f %14.1f%s\n", v.label, t, s.seconds, s.rate(),
                  1e9 * s.seconds / s.processed, 1e9 * cpu / s.processed,
                  t == 2 ? (" (x" + std::to_string(s.rate() / r1).substr(0, 4) + " wall)").c_str() : "");
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
