// Sub-tasks: split an event into items, process them, merge the results back.
//
//  - UnfoldFactory<Item, Result>: the items of one event run as parallel tasks, then fold().
//  - BatchFactory<Item, Result>:  items of MANY in-flight events are gathered into one
//    process_batch(items, results) call (at most max_batch items, waiting at most max_wait_ms for
//    the batch to fill), results are scattered back and each event resumes when all of its items
//    are done. Events wait parked: no thread waits for the batch to fill; a timer thread only
//    enqueues the flush of a batch whose oldest item has waited max_wait_ms, and a batch is run
//    at once when it is full or when every in-flight event is waiting on this stage.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "quiver/flow/flow.hpp"

namespace quiver::flow {

// One sub-task in a batch: item `index` of event `event`.
struct BatchTicket {
  Event* event;
  uint32_t index;
};

struct BatchStats {
  uint64_t batches = 0;
  uint64_t items = 0;
  uint64_t largest = 0;
  uint64_t timer_flushes = 0;  // batches started by max_wait
};

// The gathering engine, usable by any component (BatchFactory, InferenceFactory).
class BatchEngine {
 public:
  using ProcessFn = std::function<void(std::span<const BatchTicket>)>;
  BatchEngine();
  ~BatchEngine();
  void start(Runtime& rt, size_t pool_size, int64_t max_batch, double max_wait_ms, ProcessFn fn,
             std::string owner);
  void stop();
  // Queues n sub-tasks of `e`; calls done() (or done.fail) once all n are processed. n == 0: done() now.
  void submit(Event& e, size_t n, Completion done);
  BatchStats stats() const;
  // When every in-flight event waits on this stage, split what is queued into one call per worker
  // thread (default) rather than one call: right for CPU models, off for an accelerator that wants
  // the largest batches. Set before start().
  void set_spread(bool on);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class BatchStageBase : public AsyncFactory {
 public:
  BatchStageBase();
  ~BatchStageBase() override;
  void init() final;
  void finish() final;
  void acquire(Event& e, Completion done) final;
  void produce(Event& e) final;
  BatchStats stats() const { return engine_.stats(); }
  const char* kind() const override { return "batch factory"; }

 protected:
  Parameter<int64_t> max_batch_{this, "max_batch", 64, "largest number of sub-tasks per batch call"};
  Parameter<double> max_wait_ms_{this, "max_wait_ms", 2.0, "longest a sub-task waits for its batch to fill"};
  Parameter<bool> spread_{this, "spread", true,
                          "when all in-flight events wait here, split the queued items over the worker threads "
                          "(off: one call, e.g. for an accelerator)"};
  virtual void on_init() {}
  virtual void on_finish() {}

 private:
  virtual size_t stage_unfold(Event& e) = 0;
  virtual void stage_process(std::span<const BatchTicket> batch) = 0;
  virtual void stage_fold(Event& e) = 0;
  virtual void stage_resize(size_t pool) = 0;
  BatchEngine engine_;
};

template <class Item, class Result>
class BatchFactory : public BatchStageBase {
 protected:
  // Split `e` into items (the vector is empty on entry).
  virtual void unfold(Event& e, std::vector<Item>& items) = 0;
  // Process a batch: results[i] belongs to items[i]. Items come from several events.
  virtual void process_batch(std::span<const Item* const> items, std::span<Result* const> results) = 0;
  // Merge the results of `e` (results[i] for items[i]) into its Outputs.
  virtual void fold(Event& e, std::vector<Result>& results) = 0;

 private:
  struct PerEvent {
    std::vector<Item> items;
    std::vector<Result> results;
  };
  EventLocal<PerEvent> state_;
  void stage_resize(size_t pool) final { state_.resize(pool); }
  size_t stage_unfold(Event& e) final {
    auto& s = state_[e];
    s.items.clear();
    unfold(e, s.items);
    s.results.clear();
    s.results.resize(s.items.size());
    return s.items.size();
  }
  void stage_process(std::span<const BatchTicket> batch) final {
    std::vector<const Item*> items(batch.size());
    std::vector<Result*> results(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& s = state_[*batch[i].event];
      items[i] = &s.items[batch[i].index];
      results[i] = &s.results[batch[i].index];
    }
    process_batch(std::span<const Item* const>(items), std::span<Result* const>(results));
  }
  void stage_fold(Event& e) final { fold(e, state_[e].results); }
};

// Items of one event processed as parallel tasks, then merged.
template <class Item, class Result>
class UnfoldFactory : public AsyncFactory {
 public:
  void acquire(Event& e, Completion done) final {
    auto& s = state_[e];
    s.items.clear();
    unfold(e, s.items);
    s.results.clear();
    s.results.resize(s.items.size());
    s.error = nullptr;
    if (s.items.empty()) {
      done();
      return;
    }
    s.remaining.store(s.items.size());
    for (size_t i = 0; i < s.items.size(); ++i) {
      runtime().enqueue([this, &s, i, done] {
        try {
          process_item(s.items[i], s.results[i]);
        } catch (...) {
          bool expected = false;
          if (s.has_error.compare_exchange_strong(expected, true)) s.error = std::current_exception();
        }
        if (s.remaining.fetch_sub(1) == 1) {
          if (s.has_error.exchange(false)) done.fail(s.error);
          else done();
        }
      });
    }
  }
  void produce(Event& e) final { fold(e, state_[e].results); }
  void init() override { state_.resize(pool_size()); }
  const char* kind() const override { return "unfold factory"; }

 protected:
  virtual void unfold(Event& e, std::vector<Item>& items) = 0;
  // Runs concurrently for the items of an event (and of other events).
  virtual void process_item(const Item& item, Result& result) = 0;
  virtual void fold(Event& e, std::vector<Result>& results) = 0;

 private:
  struct PerEvent {
    std::vector<Item> items;
    std::vector<Result> results;
    std::atomic<size_t> remaining{0};
    std::atomic<bool> has_error{false};
    std::exception_ptr error;
  };
  EventLocal<PerEvent> state_;
};

}  // namespace quiver::flow
