// Client against real server processes on loopback (the fake KServe server of these tests, which
// can be killed, delayed and overloaded on demand): failover with kill -9, exactly-once delivery,
// fallback and return, discovery from file and DNS, clear errors, coalescing, remote Model.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <future>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>

#include "support/server_process.hpp"
#include "grpc_service.grpc.pb.h"
#include "quiver/backends/backends.hpp"
#include "quiver/client/client.hpp"
#include "quiver/core/util.hpp"

using namespace quiver;
using namespace quiver::client;
using quiver::testing::ServerProcess;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<ServerProcess> fake(std::vector<std::string> extra = {}) {
  std::vector<std::string> args{"--grpc-port", "0", "--model", "identity"};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<ServerProcess>(QUIVER_FAKE_SERVER, args);
}

// The fake server's ModelStatistics: queue count = requests answered; fail count / ns = requests
// ended by cancellation and the deadline budget they arrived with.
inference::InferStatistics fake_statistics(const std::string& endpoint) {
  auto stub = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  inference::ModelStatisticsRequest q;
  inference::ModelStatisticsResponse r;
  const auto st = stub->ModelStatistics(&ctx, q, &r);
  if (!st.ok() || r.model_stats_size() == 0) throw std::runtime_error("ModelStatistics failed: " + st.error_message());
  return r.model_stats(0).inference_stats();
}

Tensor row(float tag, int64_t rows = 1) {
  Tensor t = Tensor::empty(DType::F32, {rows, 4});
  for (int64_t i = 0; i < rows * 4; ++i) t.data<float>()[i] = tag + static_cast<float>(i);
  return t;
}

bool same(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.dims() != b.dims()) return false;
  return std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

ClientOptions fast_options(std::vector<std::string> endpoints) {
  ClientOptions o;
  o.discovery.endpoints = std::move(endpoints);
  o.health_interval_ns = 50'000'000;
  o.probe_timeout_ns = 300'000'000;
  o.breaker.failure_threshold = 2;
  o.breaker.open_ns = 100'000'000;
  o.breaker.max_open_ns = 400'000'000;
  o.retry.attempts_per_server = 2;
  o.retry.max_servers = 3;
  o.retry.backoff_ns = 1'000'000;
  o.default_timeout_ns = 20'000'000'000;
  return o;
}

// Counts completions; wait() blocks on a condition variable until `n` arrived or the timeout.
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  int64_t done = 0;
  void add() {
    std::lock_guard lk(mu);
    ++done;
    cv.notify_all();
  }
  bool wait(int64_t n, std::chrono::milliseconds t) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, t, [&] { return done >= n; });
  }
  int64_t count() {
    std::lock_guard lk(mu);
    return done;
  }
};

std::string make_identity_repo() {
  fs::path dir = fs::temp_directory_path() / ("quiver_client_repo_" + std::to_string(::getpid()));
  quiver::testing::add_repo_model(dir, "identity", quiver::testing::identity_config("identity", 64));
  return dir.string();
}

// A repository of its own holding only the identity model, for an always-local client.
std::string local_identity_repo(const std::string& suffix) {
  std::string repo = make_identity_repo() + suffix;
  fs::create_directories(repo);
  fs::rename(make_identity_repo() + "/identity", repo + "/identity");
  return repo;
}

ClientOptions always_local(const std::string& repo) {
  ClientOptions o;
  o.fallback = FallbackMode::AlwaysLocal;
  o.fallback_repository = repo;
  return o;
}

// Atomic rewrite, as a deployment tool would do it (write + rename).
void replace_file(const std::string& path, const std::string& text) {
  write_file(path + ".tmp", text);
  fs::rename(path + ".tmp", path);
}

}  // namespace

TEST(ClientIntegration, KillNineOneOfThreeEveryRequestCompletesExactlyOnce) {
  auto s0 = fake({"--delay-us", "200", "--name", "s0"});
  auto s1 = fake({"--delay-us", "200", "--name", "s1"});
  auto s2 = fake({"--delay-us", "200", "--name", "s2"});
  Client client(fast_options({s0->grpc(), s1->grpc(), s2->grpc()}));
  ASSERT_TRUE(client.wait_for_serving(3, 10'000'000'000));

  const int N = 10000;
  std::vector<std::atomic<int>> calls(N);
  std::atomic<int> ok{0}, wrong{0}, errors{0};
  std::mutex err_mu;
  std::string first_error;
  Waiter w;
  for (int i = 0; i < N; ++i) {
    Tensor x = row(static_cast<float>(i) * 8);
    client.infer_async("identity", {{"INPUT0", x}}, {}, [&, i, x](InferResult r) {
      calls[i].fetch_add(1);
      if (r.ok()) {
        if (r.outputs.size() == 1 && same(r.outputs[0].tensor, x)) ok++;
        else wrong++;
      } else {
        errors++;
        std::lock_guard lk(err_mu);
        if (first_error.empty()) first_error = r.error->what();
      }
      w.add();
    });
    if (i == N / 5) {  // with ~2000 requests issued and many in flight, kill one server
      s1->kill9();
    }
  }
  ASSERT_TRUE(w.wait(N, std::chrono::seconds(45))) << "only " << w.count() << " of " << N << " completed";
  EXPECT_EQ(ok, N) << "errors " << errors << " wrong " << wrong << " first error: " << first_error;
  for (int i = 0; i < N; ++i) ASSERT_EQ(calls[i].load(), 1) << "request " << i;
  auto rep = client.report();
  EXPECT_EQ(rep.completed, N);
  EXPECT_EQ(rep.failed, 0);
  const ServerReport* killed = nullptr;
  for (auto& s : rep.servers)
    if (s.address == s1->grpc()) killed = &s;
  ASSERT_NE(killed, nullptr);
  EXPECT_FALSE(killed->serving);
  EXPECT_GT(killed->failures, 0) << "the kill hit no request in flight";
  EXPECT_GT(rep.retries, 0);

  // The killed server comes back on the same port: traffic returns to it.
  const std::string addr = s1->grpc();
  s1->restart();
  ASSERT_EQ(s1->grpc(), addr);
  ASSERT_TRUE(client.wait_for_serving(3, 10'000'000'000));
  const int M = 3000;
  std::atomic<int> to_restarted{0}, ok2{0};
  Waiter w2;
  for (int i = 0; i < M; ++i)
    client.infer_async("identity", {{"INPUT0", row(1)}}, {}, [&](InferResult r) {
      ok2 += r.ok();
      to_restarted += (r.ok() && r.provenance.server == addr);
      w2.add();
    });
  ASSERT_TRUE(w2.wait(M, std::chrono::seconds(30)));
  EXPECT_EQ(ok2, M);
  EXPECT_GT(to_restarted, M / 10) << "traffic did not return to the restarted server";
}

// One endpoint that stands for many servers (a load balancer): a failed attempt is retried on
// it, since its next attempt goes to another backend; the budget is attempts_per_server.
TEST(ClientIntegration, SingleEndpointRetriesTransientFailures) {
  auto s0 = fake({"--fail-every", "3", "--name", "balancer"});
  ClientOptions o = fast_options({s0->grpc()});
  o.breaker.failure_threshold = 1000;  // the injected failures are not the server going away
  Client client(o);
  ASSERT_TRUE(client.wait_for_serving(1, 10'000'000'000));
  // Sequential requests: an attempt fails when the server's counter hits a multiple of 3, so a
  // retry (the next count) never fails too.
  const int N = 60;
  for (int i = 0; i < N; ++i) {
    InferResult r = client.infer("identity", {{"INPUT0", row(1)}});
    ASSERT_TRUE(r.ok()) << "request " << i << ": " << r.error->what();
  }
  EXPECT_EQ(client.report().retries, N / 2);  // attempts 0, 3, 6, ... failed: one retry per two requests

  // The budget holds: a server that fails every request is tried attempts_per_server times.
  auto bad = fake({"--fail-every", "1", "--name", "broken"});
  ClientOptions ob = fast_options({bad->grpc()});
  ob.breaker.failure_threshold = 1000;
  Client broken(ob);
  ASSERT_TRUE(broken.wait_for_serving(1, 10'000'000'000));
  InferResult r = broken.infer("identity", {{"INPUT0", row(1)}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->code(), ErrorCode::Internal) << r.error->what();
  EXPECT_NE(std::string(r.error->what()).find("2 attempt(s) on 1 server(s)"), std::string::npos) << r.error->what();
}

TEST(ClientIntegration, AllServersDownFallbackThenBack) {
  std::string repo = make_identity_repo();
  auto s0 = fake();
  auto s1 = fake();
  ClientOptions o = fast_options({s0->grpc(), s1->grpc()});
  o.fallback = FallbackMode::OnFailure;
  o.fallback_repository = repo;
  Client client(o);
  ASSERT_TRUE(client.wait_for_serving(2, 10'000'000'000));

  std::vector<Tensor> server_out;
  for (int i = 0; i < 20; ++i) {
    auto r = client.infer("identity", {{"INPUT0", row(static_cast<float>(i), 3)}});
    ASSERT_TRUE(r.ok()) << r.error->what();
    EXPECT_FALSE(r.provenance.fallback);
    EXPECT_TRUE(r.provenance.server == s0->grpc() || r.provenance.server == s1->grpc());
    EXPECT_EQ(r.provenance.model, "identity");
    EXPECT_EQ(r.provenance.version, "1");
    EXPECT_EQ(r.provenance.sha256.rfind("fake-", 0), 0u);
    server_out.push_back(r.output("OUTPUT0").clone());
  }
  s0->kill9();
  s1->kill9();
  for (int i = 0; i < 20; ++i) {
    auto r = client.infer("identity", {{"INPUT0", row(static_cast<float>(i), 3)}});
    ASSERT_TRUE(r.ok()) << r.error->what();
    EXPECT_TRUE(r.provenance.fallback);
    EXPECT_EQ(r.provenance.server, "local:" + repo);
    EXPECT_EQ(r.provenance.version, "1");
    EXPECT_TRUE(same(r.output("OUTPUT0"), server_out[i])) << "fallback output differs at " << i;
  }
  EXPECT_GE(client.report().fallbacks, 20);
  s0->restart();
  s1->restart();
  ASSERT_TRUE(client.wait_for_serving(2, 10'000'000'000));
  int remote = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = client.infer("identity", {{"INPUT0", row(static_cast<float>(i), 3)}});
    ASSERT_TRUE(r.ok());
    remote += !r.provenance.fallback;
    EXPECT_TRUE(same(r.output("OUTPUT0"), server_out[i]));
  }
  EXPECT_EQ(remote, 20) << "traffic did not move back to the servers";
  fs::remove_all(repo);
}

// Every request fails at once (no server serving: all killed, or a rate-limited balancer whose
// breaker is open) while each callback issues the next request, as `quiver perf` does. The
// client promises `done` runs later on a client thread: never inside infer_async, so such a chain
// cannot recurse however many requests fail in a row.
namespace {
thread_local int issuing_depth = 0;  // > 0 while this thread is inside infer_async
}

TEST(ClientIntegration, AllServersDownCallbacksNeverRunInsideInferAsync) {
  auto s0 = fake();
  auto s1 = fake();
  ClientOptions o = fast_options({s0->grpc(), s1->grpc()});
  o.default_timeout_ns = 2'000'000'000;
  o.breaker.open_ns = o.breaker.max_open_ns = 600'000'000'000;  // once open, it stays open
  Client client(o);
  ASSERT_TRUE(client.wait_for_serving(2, 10'000'000'000));
  s0->kill9();
  s1->kill9();
  // Until both are known down, a request may still make an attempt (which fails on a client
  // thread); the failed attempts open the breakers, after which every request fails before
  // infer_async could return.
  auto any_serving = [&] {
    for (const auto& s : client.report().servers)
      if (s.serving) return true;
    return false;
  };
  for (int i = 0; i < 1000 && any_serving(); ++i) (void)client.infer("identity", {{"INPUT0", row(1)}});
  for (const auto& s : client.report().servers) ASSERT_FALSE(s.serving) << s.address;
  const auto before = client.report();

  const std::thread::id main_id = std::this_thread::get_id();
  // Recursion of any depth shows in `nested`; ClientServe.PerfWithDeadServer... shows the crash.
  const int kChains = 8, kTotal = 20000;
  std::atomic<int> issued{0}, unavailable{0}, other{0}, nested{0}, on_main{0};
  std::mutex err_mu;
  std::string first_error;
  Waiter w;
  std::function<void()> issue = [&] {
    issued++;
    ++issuing_depth;
    client.infer_async("identity", {{"INPUT0", row(1)}}, {}, [&](InferResult r) {
      if (issuing_depth > 0) nested++;
      if (std::this_thread::get_id() == main_id) on_main++;
      if (!r.ok() && r.error->code() == ErrorCode::Unavailable) {
        unavailable++;
      } else {
        other++;
        std::lock_guard lk(err_mu);
        if (first_error.empty()) first_error = r.ok() ? "success" : r.error->what();
      }
      w.add();
      if (issued.load() < kTotal) issue();
    });
    --issuing_depth;
  };
  for (int c = 0; c < kChains; ++c) issue();
  // Each chain stops once kTotal were issued; a few chains may overshoot by one each.
  ASSERT_TRUE(w.wait(kTotal, std::chrono::seconds(120))) << "only " << w.count() << " callbacks";
  ASSERT_TRUE(w.wait(issued.load(), std::chrono::seconds(30)));
  EXPECT_EQ(nested, 0) << "callbacks ran inside infer_async (recursion)";
  EXPECT_EQ(on_main, 0) << "callbacks ran on the thread that called infer_async";
  EXPECT_EQ(unavailable.load(), issued.load()) << other << " other results, first: " << first_error;
  auto rep = client.report();
  EXPECT_EQ(rep.failed - before.failed, issued.load());
  EXPECT_EQ(rep.requests - before.requests, issued.load());
}

TEST(ClientIntegration, AlwaysLocalNeedsNoServer) {
  const std::string repo = local_identity_repo("_local");
  Client client(always_local(repo));
  auto r = client.infer("identity", {{"INPUT0", row(5, 2)}});
  ASSERT_TRUE(r.ok()) << r.error->what();
  EXPECT_TRUE(r.provenance.fallback);
  EXPECT_TRUE(same(r.output("OUTPUT0"), row(5, 2)));
  auto bad = client.infer("nope", {{"INPUT0", row(5, 2)}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error->code(), ErrorCode::NotFound);
  auto meta = client.model_metadata("identity");
  EXPECT_EQ(meta->info.max_batch, 64);
  EXPECT_EQ(meta->info.inputs.at(0).name, "INPUT0");
  fs::remove_all(repo);
}

// The fallback's work must not depend on the calling thread ever waiting on it: a caller blocks on
// its future, and no TBB worker may be free (a one-core job slot has none: `quiver validate` under
// `taskset -c 0` hung every time, and at times on two cores). One thread for TBB, as on one core;
// calls from a thread that has done TBB work and from a fresh one must all complete.
TEST(ClientIntegration, AlwaysLocalCallsCompleteWhileTheCallerBlocks) {
  tbb::global_control one_thread(tbb::global_control::max_allowed_parallelism, 1);
  const std::string repo = local_identity_repo("_blocking");
  Client client(always_local(repo));
  auto calls = [&](int n) {
    std::atomic<int> sum{0};
    tbb::parallel_for(0, 1000, [&](int i) { sum.fetch_add(i, std::memory_order_relaxed); });
    for (int i = 0; i < n; ++i) {
      auto f = client.infer_future("identity", {{"INPUT0", row(static_cast<float>(i), 2)}});
      if (f.wait_for(std::chrono::seconds(10)) != std::future_status::ready) return i;
      auto r = f.get();
      if (!r.ok() || !same(r.output("OUTPUT0"), row(static_cast<float>(i), 2))) return -i - 1;
    }
    return n;
  };
  EXPECT_EQ(calls(300), 300) << "call never completed (or, negative, wrong result)";
  int from_thread = 0;
  std::thread([&] { from_thread = calls(300); }).join();
  EXPECT_EQ(from_thread, 300);
  fs::remove_all(repo);
}

TEST(ClientIntegration, ClearErrors) {
  // Deadline: the server would answer after 2 s (it stops early when the call is cancelled). The
  // client must give up at its 50 ms deadline, before any answer: the server has answered nothing
  // when the DeadlineExceeded arrives, and the request reached it with at most 50 ms of budget
  // (events and the wire deadline, not a wall-clock bound on the test).
  auto slow = fake({"--delay-us", "2000000"});
  {
    Client c(fast_options({slow->grpc()}));
    ASSERT_TRUE(c.wait_for_serving(1, 10'000'000'000));
    auto r = c.infer("identity", {{"INPUT0", row(1)}}, {.timeout_ns = 50'000'000});
    const auto stats = fake_statistics(slow->grpc());
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error->code(), ErrorCode::DeadlineExceeded) << r.error->what();
    EXPECT_NE(std::string(r.error->what()).find("deadline"), std::string::npos) << r.error->what();
    EXPECT_EQ(stats.queue().count(), 0u) << "the server had answered before the client reported its deadline";
    // The call ends on the server by cancellation (within its 2 s), not by an answer nobody reads.
    inference::InferStatistics end = stats;
    for (int i = 0; i < 1000 && end.fail().count() + end.queue().count() == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      end = fake_statistics(slow->grpc());
    }
    EXPECT_EQ(end.fail().count(), 1u) << "the client left the call open instead of cancelling it";
    EXPECT_GT(end.fail().ns(), 0u);
    // 50 ms plus slack for the wire encoding and the two clocks; a budget of another origin (the
    // 20 s default, a unit slip) is far above.
    EXPECT_LE(end.fail().ns(), 100'000'000u) << "the request did not carry the client's 50 ms deadline to the server";
    // Wrong model name: NotFound naming the model.
    auto nf = c.infer("no_such_model", {{"INPUT0", row(1)}});
    ASSERT_FALSE(nf.ok());
    EXPECT_EQ(nf.error->code(), ErrorCode::NotFound) << nf.error->what();
    EXPECT_NE(std::string(nf.error->what()).find("no_such_model"), std::string::npos) << nf.error->what();
    EXPECT_THROW(c.model_metadata("no_such_model"), Error);
  }
  // Overloaded: the queue policy rejects; with one server there is nowhere else to go.
  auto busy = fake({"--delay-us", "100000", "--max-inflight", "1"});
  {
    Client c(fast_options({busy->grpc()}));
    ASSERT_TRUE(c.wait_for_serving(1, 10'000'000'000));
    std::vector<std::future<InferResult>> fs;
    for (int i = 0; i < 6; ++i) fs.push_back(c.infer_future("identity", {{"INPUT0", row(1)}}));
    int ok = 0, overloaded = 0;
    std::string msg;
    for (auto& f : fs) {
      auto r = f.get();
      ok += r.ok();
      if (!r.ok() && r.error->code() == ErrorCode::ResourceExhausted) {
        overloaded++;
        msg = r.error->what();
      }
    }
    EXPECT_GE(ok, 1);
    EXPECT_GE(overloaded, 1);
    EXPECT_NE(msg.find("overloaded"), std::string::npos) << msg;
    EXPECT_NE(msg.find("queue full"), std::string::npos) << msg;
  }
  // Every server down, no fallback: Unavailable, saying so.
  {
    auto gone = fake();
    std::string addr = gone->grpc();
    gone->kill9();
    ClientOptions o = fast_options({addr});
    Client c(o);
    auto r = c.infer("identity", {{"INPUT0", row(1)}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error->code(), ErrorCode::Unavailable) << r.error->what();
    EXPECT_NE(std::string(r.error->what()).find("fallback is off"), std::string::npos) << r.error->what();
  }
  // Bad request: an undefined tensor never leaves the client.
  {
    auto s = fake();
    Client c(fast_options({s->grpc()}));
    auto r = c.infer("identity", {{"INPUT0", Tensor()}});
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error->code(), ErrorCode::InvalidArgument);
    EXPECT_NE(std::string(r.error->what()).find("INPUT0"), std::string::npos) << r.error->what();
  }
}

TEST(ClientIntegration, ServersFileAndDnsDiscovery) {
  auto a = fake();
  auto b = fake();
  fs::path file = fs::temp_directory_path() / ("quiver_client_servers_" + std::to_string(::getpid()));
  write_file(file.string(), a->grpc() + "\n");
  ClientOptions o = fast_options({});
  o.discovery.servers_file = file.string();
  o.discovery_interval_ns = 100'000'000;
  Client c(o);
  ASSERT_TRUE(c.wait_for_serving(1, 10'000'000'000));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(c.infer("identity", {{"INPUT0", row(1)}}).provenance.server, a->grpc());
  replace_file(file.string(), "# two now\n" + a->grpc() + "\n" + b->grpc() + "\n");
  c.refresh_now();
  ASSERT_TRUE(c.wait_for_serving(2, 10'000'000'000));
  std::map<std::string, int> n;
  for (int i = 0; i < 200; ++i) n[c.infer("identity", {{"INPUT0", row(1)}}).provenance.server]++;
  EXPECT_GT(n[b->grpc()], 20);
  replace_file(file.string(), b->grpc() + "\n");  // a removed
  c.refresh_now();
  auto t0 = std::chrono::steady_clock::now();
  bool removed = false;
  while (!removed && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5)) {
    for (auto& s : c.report().servers)
      if (s.address == a->grpc()) removed = s.removed;
    if (!removed) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(removed);
  for (int i = 0; i < 20; ++i) {
    auto r = c.infer("identity", {{"INPUT0", row(1)}});
    EXPECT_EQ(r.provenance.server, b->grpc()) << (r.ok() ? "" : r.error->what());
  }
  fs::remove(file);

  // DNS: "localhost:PORT" resolves to 127.0.0.1 (and perhaps ::1, where nothing listens).
  ClientOptions d = fast_options({});
  d.discovery.dns_names = {"localhost:" + std::to_string(a->port())};
  Client dc(d);
  ASSERT_TRUE(dc.wait_for_serving(1, 10'000'000'000));
  auto r = dc.infer("identity", {{"INPUT0", row(1)}});
  ASSERT_TRUE(r.ok()) << r.error->what();
  EXPECT_EQ(r.provenance.server, a->grpc());
}

TEST(ClientIntegration, CoalescingMergesConcurrentCallers) {
  auto s = fake({"--max-batch", "32"});
  Client c(fast_options({s->grpc()}));
  ASSERT_TRUE(c.wait_for_serving(1, 10'000'000'000));
  BatchingClient bc(c, CoalesceOptions{.max_delay_ns = 2'000'000});
  const int threads = 32, per = 25;
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < per; ++i) {
        Tensor x = row(static_cast<float>(t * 1000 + i * 8));
        auto r = bc.infer("identity", {{"INPUT0", x}});
        ok += (r.ok() && same(r.output("OUTPUT0"), x) && r.provenance.server == s->grpc());
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok, threads * per);
  auto st = bc.stats();
  EXPECT_EQ(st.requests, threads * per);
  EXPECT_LE(st.rpcs * 8, st.requests) << st.rpcs << " RPCs for " << st.requests << " requests";
  EXPECT_EQ(c.report().requests, st.rpcs);
}

TEST(ClientIntegration, RemoteModelThroughLoadModel) {
  auto s = fake();
  register_remote_backend();
  fs::path file = fs::temp_directory_path() / ("quiver_client_" + std::to_string(::getpid()) + ".remote.json");
  write_file(file.string(), "{\"format\": \"quiver-remote\", \"url\": \"grpc://" + s->grpc() +
                                "/identity\", \"timeout_ms\": 5000}");
  auto m = load_model(file.string());
  fs::remove(file);
  EXPECT_EQ(m->info().backend, "remote");
  ASSERT_EQ(m->info().inputs.size(), 1u);
  EXPECT_EQ(m->info().inputs[0].name, "INPUT0");
  EXPECT_EQ(m->info().max_batch, 64);
  Tensor x = row(3, 2);
  auto out = m->run_once(std::vector<Tensor>{x});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(same(out[0], x));
  EXPECT_THROW(make_remote_model("grpc://" + s->grpc()), Error);  // no model in the URL
  auto m2 = make_remote_model("grpc://" + s->grpc() + "/identity/1");
  EXPECT_EQ(m2->info().version, "1");
  EXPECT_TRUE(same(m2->run_once(std::vector<Tensor>{x})[0], x));
}

namespace {

// Records, per state, the largest batch it has run; a run on real (non-zero) inputs larger than
// that is a state growing on a production call. prepare runs on zeros.
class SizingModel final : public Model {
 public:
  SizingModel() {
    info_.name = "sizing";
    info_.backend = "test";
    info_.max_batch = 64;
    info_.inputs = {{"INPUT0", DType::F32, {Dim::sym("N"), 4}}};
    info_.outputs = {{"OUTPUT0", DType::F32, {Dim::sym("N"), 4}}};
  }
  struct State : RunState {
    int64_t sized = 0;
  };
  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<RunState> make_state() const override { return std::make_unique<State>(); }
  void run(std::span<const Tensor> in, std::vector<Tensor>& out, RunState& st) const override {
    auto& s = static_cast<State&>(st);
    bool real = false;
    for (float v : in[0].span<float>()) real = real || v != 0;
    if (real && in[0].dim(0) > s.sized) ++grew;
    s.sized = std::max(s.sized, in[0].dim(0));
    out.assign(1, in[0].clone());
  }
  mutable std::atomic<int> grew{0};

 private:
  ModelInfo info_;
};

}  // namespace

// fallback_prepare: the model is loaded and its fallback states sized at construction, so local
// calls up to that size never grow a state; without it the first calls do. Bytes are reported for
// the engine's models; a bad entry fails the construction naming the model.
TEST(ClientIntegration, FallbackPrepareSizesTheLocalStatesAhead) {
  for (bool prepare : {true, false}) {
    auto m = std::make_shared<SizingModel>();
    ClientOptions o;
    o.fallback = FallbackMode::AlwaysLocal;
    o.fallback_models = single_local_model(m, "sizing");
    if (prepare) o.fallback_prepare = {"sizing=8"};
    o.fallback_prepare_states = 2;
    Client client(o);
    std::vector<std::future<InferResult>> calls;
    for (int k = 0; k < 6; ++k) {
      std::promise<InferResult> p;
      calls.push_back(p.get_future());
      client.infer_async("sizing", {{"INPUT0", row(static_cast<float>(k + 1), 1 + k % 8)}}, {},
                         [p = std::make_shared<std::promise<InferResult>>(std::move(p))](InferResult r) { p->set_value(std::move(r)); });
    }
    for (auto& f : calls) ASSERT_TRUE(f.get().ok());
    if (prepare) EXPECT_EQ(m->grew.load(), 0) << "a prepared fallback state grew on a call";
    else EXPECT_GT(m->grew.load(), 0) << "without fallback_prepare the first calls size the states";
  }

  quiver::testing::TempRepository t("quiver_client_prepare");
  t.add("ticl", "backend: \"onnx\" max_batch_size: 16");
  const std::string hep = std::string(QUIVER_SHARED_DIR) + "/models/hep/ticl_energy_id";
  fs::copy_file(hep + "/model.onnx", t.dir / "ticl/1/model.onnx");
  ClientOptions o = always_local(t.dir.string());
  o.fallback_prepare = {"ticl:1=8"};
  o.fallback_prepare_states = 1;
  {
    Client client(o);
    EXPECT_GT(client.report().fallback_prepared_bytes, 0);
  }
  for (auto [entry, needle] : {std::pair<const char*, const char*>{"ticl=8,n_pf=3", "'n_pf'"},
                               {"ticl=eight", "'eight'"},
                               {"nope=4", "nope"}}) {
    o.fallback_prepare = {entry};
    try {
      Client client(o);
      ADD_FAILURE() << entry << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("fallback_prepare"), std::string::npos) << e.what();
    }
  }
}
