// Helpers shared by the flow tests: a watchdog around Application::run, a delay timer that
// completes async work from its own thread, and a gate that holds work until the test opens it.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <queue>
#include <set>
#include <thread>
#include <vector>

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

// Holds work until something the test waits for has happened (open()), so that a test puts the
// pipeline in a known state by events, not by sleeping. Should that never happen, the gate opens by
// itself after `safety_seconds` so the run still ends and the test fails on its own assertions;
// opened_by_timeout() then says so.
class Gate {
 public:
  explicit Gate(double safety_seconds = 30) : watchdog_([this, safety_seconds] {
      std::unique_lock<std::mutex> lk(m_);
      if (!cv_.wait_for(lk, std::chrono::duration<double>(safety_seconds), [this] { return open_ || closing_; })) {
        lk.unlock();
        open(true);
      }
    }) {}
  ~Gate() {
    {
      std::lock_guard<std::mutex> lk(m_);
      closing_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
  }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;
  // Runs `f` now when open, otherwise on the thread that opens the gate.
  void hold(std::function<void()> f) {
    {
      std::lock_guard<std::mutex> lk(m_);
      if (!open_) {
        held_.push_back(std::move(f));
        return;
      }
    }
    f();
  }
  void open() { open(false); }
  bool is_open() const {
    std::lock_guard<std::mutex> lk(m_);
    return open_;
  }
  bool opened_by_timeout() const {
    std::lock_guard<std::mutex> lk(m_);
    return by_timeout_;
  }
  // How much work was waiting when the gate opened.
  size_t held_at_open() const {
    std::lock_guard<std::mutex> lk(m_);
    return held_at_open_;
  }

 private:
  void open(bool by_timeout) {
    std::vector<std::function<void()>> run;
    {
      std::lock_guard<std::mutex> lk(m_);
      if (open_) return;
      open_ = true;
      by_timeout_ = by_timeout;
      held_at_open_ = held_.size();
      run.swap(held_);
    }
    cv_.notify_all();
    for (auto& f : run) f();
  }
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::vector<std::function<void()>> held_;
  bool open_ = false, by_timeout_ = false, closing_ = false;
  size_t held_at_open_ = 0;
  std::thread watchdog_;  // last: starts after the members it uses
};

// Counts how many calls of a piece of work overlap in time. Whether calls *can* overlap is what
// the tests ask, not how fast an idle worker thread wakes: on a loaded machine (CI under a
// sanitizer, other builds) a sleeping oneTBB worker can take hundreds of milliseconds to be
// scheduled, and a run of short calls may end on one thread before it arrives. So the first call
// that finds itself alone waits (once per probe, at most `patience`) for a second call to start.
// A runner that never overlaps the calls still fails the test: the wait ends with one call active.
class OverlapProbe {
 public:
  explicit OverlapProbe(std::chrono::milliseconds patience = std::chrono::seconds(10)) : patience_(patience) {}
  void enter() {
    std::unique_lock<std::mutex> lk(m_);
    max_ = std::max(max_, ++active_);
    threads_.insert(std::this_thread::get_id());
    cv_.notify_all();
    if (max_ < 2 && !waited_) {
      waited_ = true;
      cv_.wait_for(lk, patience_, [this] { return max_ >= 2; });
    }
  }
  void leave() {
    std::lock_guard<std::mutex> lk(m_);
    --active_;
  }
  int max_active() const {
    std::lock_guard<std::mutex> lk(m_);
    return max_;
  }
  size_t threads() const {
    std::lock_guard<std::mutex> lk(m_);
    return threads_.size();
  }

 private:
  const std::chrono::milliseconds patience_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  int active_ = 0, max_ = 0;
  bool waited_ = false;
  std::set<std::thread::id> threads_;
};

}  // namespace flowtest
