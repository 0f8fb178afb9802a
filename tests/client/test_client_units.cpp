// Unit tests of the client's pieces that need no server: discovery, circuit breaker, balancer,
// retry policy, coalescing.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include <unistd.h>

#include "quiver/client/balancer.hpp"
#include "quiver/client/coalesce.hpp"
#include "quiver/client/endpoints.hpp"
#include "quiver/client/local_repository.hpp"
#include "quiver/client/retry.hpp"
#include "quiver/core/util.hpp"

using namespace quiver;
using namespace quiver::client;
namespace fs = std::filesystem;

// ---------------- discovery ----------------
TEST(Endpoints, ValidateSpellings) {
  EXPECT_NO_THROW(validate_endpoint("localhost:8001"));
  EXPECT_NO_THROW(validate_endpoint("10.0.0.1:1"));
  EXPECT_NO_THROW(validate_endpoint("[::1]:65535"));
  EXPECT_NO_THROW(validate_endpoint("unix:/tmp/s.sock"));
  EXPECT_THROW(validate_endpoint("localhost"), Error);
  EXPECT_THROW(validate_endpoint("localhost:0"), Error);
  EXPECT_THROW(validate_endpoint("localhost:70000"), Error);
  EXPECT_THROW(validate_endpoint("::1:80"), Error);
  EXPECT_THROW(validate_endpoint(":80"), Error);
  EXPECT_THROW(validate_endpoint("host:8x"), Error);
}

TEST(Endpoints, ParseListWithCommentsAndDuplicates) {
  auto v = parse_endpoint_list("# servers\n a:1 \n\nb:2 # second\na:1\r\n[::1]:3\n", "f.txt");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0], "a:1");
  EXPECT_EQ(v[1], "b:2");
  EXPECT_EQ(v[2], "[::1]:3");
  try {
    parse_endpoint_list("a:1\nbogus\n", "f.txt");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
    EXPECT_EQ(e.where().file, "f.txt");
    EXPECT_EQ(e.where().offset, 2);
    EXPECT_NE(std::string(e.what()).find("bogus"), std::string::npos);
  }
}

TEST(Endpoints, DnsResolvesLocalhost) {
  auto v = resolve_dns("localhost:8001");
  ASSERT_FALSE(v.empty());
  bool loop = false;
  for (auto& e : v) loop |= (e == "127.0.0.1:8001" || e == "[::1]:8001");
  EXPECT_TRUE(loop) << v[0];
  EXPECT_THROW(resolve_dns("no-such-host.invalid:1"), Error);
}

TEST(Endpoints, FileReReadWhenChanged) {
  fs::path p = fs::temp_directory_path() / ("quiver_servers_" + std::to_string(::getpid()) + ".txt");
  write_file(p.string(), "a:1\nb:2\n");
  EndpointFile f(p.string());
  EXPECT_TRUE(f.poll());
  EXPECT_EQ(f.endpoints(), (std::vector<std::string>{"a:1", "b:2"}));
  EXPECT_FALSE(f.poll());  // unchanged
  write_file(p.string(), "a:1\nc:3\n");  // same size, maybe same mtime second: hash still catches it
  // Force a different mtime in case the file system's clock granularity hides the change.
  fs::last_write_time(p, fs::last_write_time(p) + std::chrono::seconds(1));
  EXPECT_TRUE(f.poll());
  EXPECT_EQ(f.endpoints(), (std::vector<std::string>{"a:1", "c:3"}));
  write_file(p.string(), "a:1\nbad line\n");  // broken rewrite keeps last good list
  fs::last_write_time(p, fs::last_write_time(p) + std::chrono::seconds(2));
  EXPECT_FALSE(f.poll());
  EXPECT_FALSE(f.last_error().empty());
  EXPECT_EQ(f.endpoints().size(), 2u);
  write_file(p.string(), "# truncated\n");  // empty: keep the last good list
  fs::last_write_time(p, fs::last_write_time(p) + std::chrono::seconds(3));
  EXPECT_FALSE(f.poll());
  EXPECT_NE(f.last_error().find("no servers"), std::string::npos);
  EXPECT_EQ(f.endpoints().size(), 2u);
  fs::remove(p);
  EXPECT_FALSE(f.poll());
  EXPECT_NE(f.last_error().find("missing"), std::string::npos);
  EXPECT_EQ(f.endpoints().size(), 2u);
}

TEST(Endpoints, DiscoveryMergesSources) {
  fs::path p = fs::temp_directory_path() / ("quiver_servers2_" + std::to_string(::getpid()) + ".txt");
  write_file(p.string(), "s:1\nfile:2\n");
  DiscoveryOptions o;
  o.endpoints = {"s:1"};
  o.servers_file = p.string();
  o.dns_names = {"localhost:9"};
  Discovery d(o);
  EXPECT_TRUE(d.refresh());
  auto e = d.endpoints();
  ASSERT_GE(e.size(), 3u);
  EXPECT_EQ(e[0], "s:1");
  EXPECT_EQ(e[1], "file:2");
  EXPECT_NE(e[2].find(":9"), std::string::npos);
  EXPECT_FALSE(d.refresh());
  fs::remove(p);
}

// ---------------- circuit breaker ----------------
TEST(Breaker, OpensAfterThresholdAndProbesBackWithBackoff) {
  BreakerOptions o{.failure_threshold = 3, .open_ns = 100, .max_open_ns = 350};
  CircuitBreaker b(o);
  EXPECT_TRUE(b.serving());
  EXPECT_FALSE(b.record_failure(0));
  b.record_success();  // resets the consecutive count
  EXPECT_FALSE(b.record_failure(0));
  EXPECT_FALSE(b.record_failure(0));
  EXPECT_TRUE(b.record_failure(10));
  EXPECT_EQ(b.state(), CircuitBreaker::State::Open);
  EXPECT_FALSE(b.probe_due(109));
  EXPECT_TRUE(b.probe_due(110));
  b.begin_probe();
  EXPECT_EQ(b.state(), CircuitBreaker::State::Probing);
  EXPECT_FALSE(b.probe_due(1000));
  b.probe_result(false, 200);  // wait doubles: 200
  EXPECT_FALSE(b.probe_due(399));
  EXPECT_TRUE(b.probe_due(400));
  b.begin_probe();
  b.probe_result(false, 400);  // 400 -> capped at 350
  EXPECT_TRUE(b.probe_due(750));
  EXPECT_FALSE(b.probe_due(749));
  b.begin_probe();
  b.probe_result(true, 800);
  EXPECT_TRUE(b.serving());
  EXPECT_EQ(b.consecutive_failures(), 0);
  // Backoff is reset after closing.
  b.trip(1000);
  EXPECT_TRUE(b.probe_due(1100));
}

// ---------------- balancer ----------------
TEST(Balancer, PowerOfTwoPrefersLeastOutstanding) {
  Balancer bal;
  bal.set_servers({"a:1", "b:2"});
  auto a = bal.find("a:1"), b = bal.find("b:2");
  a->outstanding = 5;
  for (int i = 0; i < 100; ++i) EXPECT_EQ(bal.pick("m").get(), b.get());  // two servers: always compared
  b->outstanding = 9;
  for (int i = 0; i < 100; ++i) EXPECT_EQ(bal.pick("m").get(), a.get());
}

TEST(Balancer, SpreadsAndNeverPicksTheWorstOfThree) {
  Balancer bal;
  bal.set_servers({"a:1", "b:2", "c:3"});
  bal.find("a:1")->outstanding = 0;
  bal.find("b:2")->outstanding = 1;
  bal.find("c:3")->outstanding = 2;
  std::map<std::string, int> n;
  for (int i = 0; i < 3000; ++i) n[bal.pick("m")->address]++;
  EXPECT_EQ(n["c:3"], 0);            // the most loaded server loses every pair it is in
  EXPECT_NEAR(n["a:1"], 2000, 200);  // a wins both pairs it is in (2/3)
  EXPECT_NEAR(n["b:2"], 1000, 200);
}

TEST(Balancer, QueueTimeCountsAsLoad) {
  Balancer bal(BalancerOptions{.queue_ns_per_request = 1'000'000});
  bal.set_servers({"a:1", "b:2"});
  bal.find("a:1")->queue_ns = 5'000'000;  // 5 ms queued: each request counts ~1.83x
  bal.find("a:1")->outstanding = 3;      // cost 4 * 1.83 = 7.3
  bal.find("b:2")->outstanding = 4;      // cost 5
  for (int i = 0; i < 50; ++i) EXPECT_EQ(bal.pick("m")->address, "b:2");
  bal.find("b:2")->outstanding = 7;      // cost 8 > 7.3: queue time is bounded, load still wins
  for (int i = 0; i < 50; ++i) EXPECT_EQ(bal.pick("m")->address, "a:1");
}

TEST(Balancer, SkipsOpenRemovedExcludedAndMissingModel) {
  Balancer bal(BalancerOptions{}, BreakerOptions{.failure_threshold = 1});
  bal.set_servers({"a:1", "b:2", "c:3", "d:4"});
  auto a = bal.find("a:1"), b = bal.find("b:2"), c = bal.find("c:3"), d = bal.find("d:4");
  EXPECT_TRUE(a->on_transport_failure(now_ns()));  // opens at once (threshold 1)
  EXPECT_FALSE(a->serving.load());
  bal.set_servers({"a:1", "b:2", "c:3"});  // d removed
  EXPECT_TRUE(d->removed.load());
  c->mark_missing("m");
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(bal.pick("m").get(), b.get());
    EXPECT_EQ(bal.pick("m", {b.get()}), nullptr);
  }
  EXPECT_NE(bal.pick("other", {b.get()}), nullptr);  // c serves other models
  EXPECT_EQ(bal.serving_count(), 2);
  bal.set_servers({"d:4"});  // comes back with its state
  EXPECT_EQ(bal.find("d:4").get(), d.get());
  EXPECT_FALSE(d->removed.load());
  EXPECT_EQ(bal.servers().size(), 4u);
}

// ---------------- retry policy ----------------
TEST(Retry, SameServerThenOthersThenFail) {
  RetryPolicy p{.attempts_per_server = 2, .max_servers = 3};
  EXPECT_EQ(decide_retry(p, AttemptError::Transport, 1, 1, true), RetryAction::SameServer);
  EXPECT_EQ(decide_retry(p, AttemptError::Transport, 2, 1, true), RetryAction::OtherServer);
  EXPECT_EQ(decide_retry(p, AttemptError::Transport, 1, 1, false), RetryAction::OtherServer);  // breaker open
  EXPECT_EQ(decide_retry(p, AttemptError::Transport, 2, 3, true), RetryAction::Fail);
  EXPECT_EQ(decide_retry(p, AttemptError::Overloaded, 1, 1, true), RetryAction::OtherServer);
  EXPECT_EQ(decide_retry(p, AttemptError::Overloaded, 1, 3, true), RetryAction::Fail);
  EXPECT_EQ(decide_retry(p, AttemptError::ModelNotFound, 1, 2, true), RetryAction::OtherServer);
  EXPECT_EQ(decide_retry(p, AttemptError::DeadlineExceeded, 1, 1, true), RetryAction::Fail);
  EXPECT_EQ(decide_retry(p, AttemptError::Caller, 1, 1, true), RetryAction::Fail);
  EXPECT_EQ(decide_retry(p, AttemptError::Cancelled, 1, 1, true), RetryAction::Fail);
  EXPECT_EQ(attempt_error_code(AttemptError::Overloaded), ErrorCode::ResourceExhausted);
}

TEST(Retry, BackoffDoublesAndCaps) {
  RetryPolicy p{.backoff_ns = 10, .max_backoff_ns = 35};
  EXPECT_EQ(backoff_for(p, 1), 10);
  EXPECT_EQ(backoff_for(p, 2), 20);
  EXPECT_EQ(backoff_for(p, 3), 35);
  EXPECT_EQ(backoff_for(p, 10), 35);
}

// ---------------- coalescing ----------------
static Tensor rows_f32(int64_t rows, int64_t cols, float base) {
  Tensor t = Tensor::empty(DType::F32, {rows, cols});
  for (int64_t i = 0; i < rows * cols; ++i) t.data<float>()[i] = base + static_cast<float>(i);
  return t;
}

TEST(Coalesce, ConcatAndSplitRoundTrip) {
  std::vector<NamedTensor> a{{"x", rows_f32(2, 3, 0)}}, b{{"x", rows_f32(1, 3, 100)}};
  auto merged = concat_batch({&a, &b});
  ASSERT_EQ(merged.size(), 1u);
  EXPECT_EQ(merged[0].tensor.dims(), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(merged[0].tensor.data<float>()[6], 100.f);
  auto parts = split_batch(merged, {0, 2, 3});
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0][0].tensor.dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(parts[1][0].tensor.dims(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(parts[1][0].tensor.data<float>()[2], 102.f);
  EXPECT_TRUE(parts[1][0].tensor.is_view());
  std::vector<NamedTensor> c{{"x", rows_f32(1, 4, 0)}};
  EXPECT_THROW(concat_batch({&a, &c}), Error);
  EXPECT_THROW(split_batch(merged, {0, 1}), Error);
}

TEST(Coalesce, StringInputsConcat) {
  Tensor s1 = Tensor::empty(DType::String, {1, 2});
  s1.data<std::string>()[0] = "a";
  s1.data<std::string>()[1] = "b";
  Tensor s2 = Tensor::empty(DType::String, {1, 2});
  s2.data<std::string>()[0] = "c";
  s2.data<std::string>()[1] = "d";
  std::vector<NamedTensor> a{{"s", s1}}, b{{"s", s2}};
  auto m = concat_batch({&a, &b});
  EXPECT_EQ(m[0].tensor.data<std::string>()[3], "d");
}

// A fake server: echoes inputs (x -> y = x * 2), counts RPCs and their batch sizes, answers on a
// separate thread like a completion queue would.
struct FakeSender {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::vector<NamedTensor>, InferCallback>> queue;
  std::vector<int64_t> batch_sizes;
  std::vector<int64_t> timeouts;
  bool stop = false;
  bool fail = false;
  std::thread th;
  FakeSender() {
    th = std::thread([this] {
      std::unique_lock lk(mu);
      while (true) {
        cv.wait(lk, [&] { return stop || !queue.empty(); });
        if (queue.empty() && stop) return;
        auto item = std::move(queue.front());
        queue.erase(queue.begin());
        lk.unlock();
        InferResult r;
        r.provenance.server = "fake:1";
        r.provenance.model = "m";
        if (fail) {
          r.error = Error(ErrorCode::Unavailable, "fake failure");
        } else {
          Tensor y = item.first[0].tensor.clone();
          for (auto& v : y.span<float>()) v *= 2;
          r.outputs.push_back({"y", std::move(y)});
        }
        item.second(std::move(r));
        lk.lock();
      }
    });
  }
  ~FakeSender() {
    {
      std::lock_guard lk(mu);
      stop = true;
    }
    cv.notify_all();
    th.join();
  }
  AsyncInferFn fn() {
    return [this](const std::string&, std::vector<NamedTensor> in, const InferOptions& o, InferCallback done) {
      std::lock_guard lk(mu);
      batch_sizes.push_back(in[0].tensor.dim(0));
      timeouts.push_back(o.timeout_ns);
      queue.emplace_back(std::move(in), std::move(done));
      cv.notify_all();
    };
  }
};

TEST(Coalesce, ManyThreadsFewerRpcsEachGetsOwnRows) {
  FakeSender fake;
  std::atomic<int> ok{0}, bad{0};
  {
    Coalescer co(fake.fn(), [](const std::string&) { return int64_t{16}; },
                 CoalesceOptions{.max_delay_ns = 20'000'000});
    const int threads = 16, per_thread = 20;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
      ts.emplace_back([&, t] {
        for (int i = 0; i < per_thread; ++i) {
          float tag = static_cast<float>(t * 1000 + i);
          std::promise<InferResult> p;
          auto f = p.get_future();
          co.infer_async("m", {{"x", rows_f32(1, 4, tag)}}, {},
                         [&p](InferResult r) { p.set_value(std::move(r)); });
          InferResult r = f.get();
          if (r.ok() && r.outputs[0].tensor.dims() == std::vector<int64_t>{1, 4} &&
              r.outputs[0].tensor.data<float>()[0] == 2 * tag && r.outputs[0].tensor.data<float>()[3] == 2 * (tag + 3))
            ok++;
          else
            bad++;
        }
      });
    for (auto& t : ts) t.join();
    auto st = co.stats();
    EXPECT_EQ(st.requests, threads * per_thread);
    EXPECT_EQ(st.rows, threads * per_thread);
    EXPECT_LT(st.rpcs * 4, st.requests) << "coalescing merged too little: " << st.rpcs << " rpcs";
  }
  EXPECT_EQ(ok, 320);
  EXPECT_EQ(bad, 0);
  for (auto b : fake.batch_sizes) EXPECT_LE(b, 16);
}

TEST(Coalesce, FlushesAtMaxBatchWithoutWaitingForTheTimer) {
  FakeSender fake;
  Coalescer co(fake.fn(), nullptr, CoalesceOptions{.max_batch = 4, .max_delay_ns = 60'000'000'000});
  std::atomic<int> done{0};
  for (int i = 0; i < 4; ++i)
    co.infer_async("m", {{"x", rows_f32(1, 2, 0)}}, {}, [&](InferResult r) { done += r.ok(); });
  auto t0 = std::chrono::steady_clock::now();
  while (done < 4 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(done, 4);
  EXPECT_EQ(co.stats().rpcs, 1);
  EXPECT_EQ(co.stats().full_flushes, 1);
}

TEST(Coalesce, TimerFlushesPartialGroupAndErrorsReachEveryCaller) {
  FakeSender fake;
  fake.fail = true;
  Coalescer co(fake.fn(), nullptr, CoalesceOptions{.max_batch = 100, .max_delay_ns = 2'000'000});
  std::atomic<int> errors{0}, calls{0};
  for (int i = 0; i < 3; ++i)
    co.infer_async("m", {{"x", rows_f32(2, 2, 0)}}, {.timeout_ns = 1'000'000'000}, [&](InferResult r) {
      calls++;
      errors += (!r.ok() && r.error->code() == ErrorCode::Unavailable);
    });
  auto t0 = std::chrono::steady_clock::now();
  while (calls < 3 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(errors, 3);
  EXPECT_EQ(co.stats().timer_flushes, 1);
  std::lock_guard lk(fake.mu);
  ASSERT_EQ(fake.batch_sizes.size(), 1u);
  EXPECT_EQ(fake.batch_sizes[0], 6);
  EXPECT_GT(fake.timeouts[0], 0);
  EXPECT_LE(fake.timeouts[0], 1'000'000'000);
}

TEST(Coalesce, DifferentShapesAndOversizeGoSeparately) {
  FakeSender fake;
  Coalescer co(fake.fn(), nullptr, CoalesceOptions{.max_batch = 4, .max_delay_ns = 1'000'000});
  std::atomic<int> calls{0};
  co.infer_async("m", {{"x", rows_f32(1, 2, 0)}}, {}, [&](InferResult) { calls++; });
  co.infer_async("m", {{"x", rows_f32(1, 3, 0)}}, {}, [&](InferResult) { calls++; });
  co.infer_async("m", {{"x", rows_f32(9, 2, 0)}}, {}, [&](InferResult) { calls++; });  // > max batch
  auto t0 = std::chrono::steady_clock::now();
  while (calls < 3 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(co.stats().rpcs, 3);
  EXPECT_EQ(co.stats().direct, 1);
}

// ---------------- local fallback repository ----------------
// Names stay inside the repository; ensembles run through the same loader as the server's and one
// that leads back to itself is refused instead of recursing.
TEST(LocalRepository, NamesStayInsideAndEnsemblesRun) {
  const fs::path root = fs::temp_directory_path() / ("quiver-local-repo-" + std::to_string(::getpid()));
  fs::remove_all(root);
  auto model = [&](const std::string& name, const std::string& cfg) {
    fs::create_directories(root / name / "1");
    std::ofstream(root / name / "config.pbtxt") << cfg;
  };
  model("ident", "backend: \"identity\" max_batch_size: 4 input [ { name: \"I\" data_type: TYPE_FP32 dims: [ 2 ] } ] "
                 "output [ { name: \"O\" data_type: TYPE_FP32 dims: [ 2 ] } ]");
  auto ensemble = [](const std::string& step_model) {
    const bool ident = step_model == "ident";
    std::string c = "platform: \"ensemble\" max_batch_size: 4 input [ { name: \"A\" data_type: TYPE_FP32 dims: [ 2 ] } ] "
                    "output [ { name: \"B\" data_type: TYPE_FP32 dims: [ 2 ] } ] ensemble_scheduling { step [ { model_name: \"";
    c.append(step_model).append("\" input_map { key: \"").append(ident ? "I" : "A");
    c.append("\" value: \"A\" } output_map { key: \"").append(ident ? "O" : "B").append("\" value: \"B\" } } ] }");
    return c;
  };
  model("ens", ensemble("ident"));
  model("loop", ensemble("loop"));
  // version 1 pinned by the policy although 2 exists: the fallback serves what the server would
  model("pinned", "backend: \"identity\" max_batch_size: 0 version_policy: { specific: { versions: [ 1 ] } } "
                  "input [ { name: \"I\" data_type: TYPE_FP32 dims: [ 1 ] } ] output [ { name: \"O\" data_type: TYPE_FP32 dims: [ 1 ] } ]");
  fs::create_directories(root / "pinned" / "2");
  LocalRepository repo(root.string());
  EXPECT_TRUE(repo.has("ident"));
  for (const char* bad : {"", ".", "..", "../x", "a/b", "a\\b", "nope"}) EXPECT_FALSE(repo.has(bad)) << bad;
  EXPECT_THROW(repo.get(".."), Error);
  EXPECT_EQ(repo.get("pinned")->info().version, "1");
  auto out = repo.run("ens", "", {{"A", Tensor::from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2})}});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].name, "B");
  EXPECT_EQ(out[0].tensor.data<float>()[3], 4.0f);
  try {
    repo.get("loop");
    ADD_FAILURE() << "a self-referencing ensemble loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("loop"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}
