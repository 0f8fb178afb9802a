// Helpers shared by the flow tests: a watchdog around Application::run and a delay timer that
// completes async work from its own thread.
#pragma once
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <queue>
#include <thread>

#include "quiver/flow/application.hpp"

namespace flowtest {

// Runs app.run() and aborts the test binary if it takes longer than `seconds` (no test may hang).
inline quiver::flow::RunSummary run_with_timeout(quiver::flow::Application& app, double seconds = 30) {
  auto fut = std::async(std::launch::async, [&] { return app.run(); });
  if (fut.wait_for(std::chrono::duration<double>(seconds)) != std::future_status::ready) {
    std::fprintf(stderr, "flow test: run() did not finish within %.0f s (deadlock?)\n", seconds);
    std::abort();
  }
  return fut.get();
}

// Calls functions after a delay, from its own thread (simulates a remote server answering).
class DelayTimer {
 public:
  DelayTimer() : t_([this] { loop(); }) {}
  ~DelayTimer() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    t_.join();
  }
  void after(std::chrono::microseconds d, std::function<void()> f) {
    {
      std::lock_guard<std::mutex> lk(m_);
      q_.push({std::chrono::steady_clock::now() + d, seq_++, std::move(f)});
    }
    cv_.notify_all();
  }

 private:
  struct Item {
    std::chrono::steady_clock::time_point when;
    uint64_t seq;
    std::function<void()> f;
    bool operator>(const Item& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  void loop() {
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      if (q_.empty()) {
        if (stop_) return;
        cv_.wait(lk);
        continue;
      }
      auto when = q_.top().when;
      if (std::chrono::steady_clock::now() < when) {
        cv_.wait_until(lk, when);
        continue;
      }
      auto f = q_.top().f;
      q_.pop();
      lk.unlock();
      f();
      lk.lock();
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> q_;
  uint64_t seq_ = 0;
  bool stop_ = false;
  std::thread t_;
};

}  // namespace flowtest
