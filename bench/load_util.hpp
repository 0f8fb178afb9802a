// Shared by the server benchmarks: closed-loop load results and the HTTP/REST load generator
// (cpp-httplib keep-alive clients posting a KServe v2 binary-extension request).
#pragma once
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "quiver/core/util.hpp"

namespace quiver::bench {

struct Result {
  double rps = 0, p50 = 0, p90 = 0, p95 = 0, p99 = 0;
  uint64_t errors = 0;
  uint64_t requests = 0;  // completed inside the measured window
  uint64_t starved = 0;   // HTTP: connections that completed no request inside the window
};

// Throughput and latency percentiles (ns -> us) of one measured window of `ns` nanoseconds.
inline Result summarize(std::vector<int64_t>& lat, int64_t ns, uint64_t errors) {
  Result r;
  std::sort(lat.begin(), lat.end());
  r.rps = double(lat.size()) / (double(ns) * 1e-9);
  auto pct = [&](double p) { return lat.empty() ? 0.0 : double(lat[static_cast<size_t>(p * double(lat.size() - 1))]) / 1000.0; };
  r.p50 = pct(0.50);
  r.p90 = pct(0.90);
  r.p95 = pct(0.95);
  r.p99 = pct(0.99);
  r.errors = errors;
  r.requests = lat.size();
  return r;
}

// The measured window of a closed loop: 0.5 s of warm-up, `reset` (forget what the warm-up
// recorded), then `seconds` with `measuring` set. Returns the window's length in ns.
inline int64_t measure_window(double seconds, std::atomic<bool>& measuring, const std::function<void()>& reset) {
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  reset();
  measuring = true;
  const int64_t t0 = now_ns();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  measuring = false;
  return now_ns() - t0;
}

// The run with the median throughput, with the median p50 of all runs.
inline Result median(std::vector<Result> v) {
  std::sort(v.begin(), v.end(), [](const Result& a, const Result& b) { return a.rps < b.rps; });
  Result m = v[v.size() / 2];
  std::vector<double> p50;
  for (auto& r : v) p50.push_back(r.p50);
  std::sort(p50.begin(), p50.end());
  m.p50 = p50[p50.size() / 2];
  return m;
}

// Runs the loads in turn, `reps` rounds, so that load from other processes on the machine hits all
// of them alike; returns each one's median.
inline std::vector<Result> alternate(int reps, const std::vector<std::function<Result()>>& loads) {
  std::vector<std::vector<Result>> runs(loads.size());
  for (int r = 0; r < reps; ++r)
    for (size_t i = 0; i < loads.size(); ++i) runs[i].push_back(loads[i]());
  std::vector<Result> out;
  for (auto& v : runs) out.push_back(median(v));
  return out;
}

// The JSON header of the FP32[1,16] identity request http_load posts, followed by its 64 binary bytes.
inline constexpr const char* kIdentHead =
    R"({"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"FP32","parameters":{"binary_data_size":64}}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]})";
inline constexpr size_t kIdentBinaryBytes = 64;

// `concurrency` keep-alive connections, each posting one FP32[1,16] identity request (JSON header +
// 64 binary bytes) after the other to `path` for `seconds` (after a 0.5 s warm-up).
inline Result http_load(int port, int concurrency, double seconds, const std::string& path = "/v2/models/ident/infer") {
  const std::string head = kIdentHead;
  const std::string body = head + std::string(kIdentBinaryBytes, '\0');
  std::atomic<bool> measuring{false}, stop{false};
  std::atomic<uint64_t> errors{0};
  std::mutex mu;
  std::vector<int64_t> lat;
  uint64_t starved = 0;
  std::vector<std::thread> th;
  for (int c = 0; c < concurrency; ++c)
    th.emplace_back([&] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_keep_alive(true);
      cli.set_tcp_nodelay(true);
      httplib::Headers h = {{"Inference-Header-Content-Length", std::to_string(head.size())}};
      std::vector<int64_t> mine;
      while (!stop) {
        int64_t t0 = now_ns();
        auto r = cli.Post(path, h, body, "application/octet-stream");
        int64_t dt = now_ns() - t0;
        if (!r || r->status != 200) errors++;
        if (measuring) mine.push_back(dt);
      }
      std::lock_guard lk(mu);
      if (mine.empty()) ++starved;
      lat.insert(lat.end(), mine.begin(), mine.end());
    });
  const int64_t ns = measure_window(seconds, measuring, [&] { errors = 0; });
  stop = true;
  for (auto& t : th) t.join();
  Result r = summarize(lat, ns, errors);
  r.starved = starved;
  return r;
}

}  // namespace quiver::bench
