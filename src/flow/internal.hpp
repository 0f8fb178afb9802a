// Internal structures of the flow framework (not installed).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "quiver/flow/application.hpp"
#include "quiver/flow/flow.hpp"
#include "quiver/flow/topology.hpp"

namespace quiver::flow {
struct Application::Plugin {
  std::string path;
  void* handle = nullptr;
};
}  // namespace quiver::flow

namespace quiver::flow::detail {

// Lazy-factory state of one event slot (its first cache line is its own, see SlotBase). A
// factory runs once per event: the thread that moves `claim_gen` to the event's generation (one
// compare-and-swap, the only locked instruction on this path; the mutex it replaced took two and
// more code) runs it and then publishes `done_gen` with a plain release store; `err_gen` == the
// generation when it failed with `err`. Only a thread that finds the run taken by another one (the
// sub-tasks of one event asking for the same product at once) uses `m` and `cv` to wait.
struct alignas(64) FactoryState {
  std::atomic<uint64_t> done_gen{0};
  std::atomic<uint64_t> claim_gen{0};
  std::atomic<bool> waiting{false};
  uint64_t err_gen = 0;
  std::exception_ptr err;
  alignas(64) std::mutex m;
  std::condition_variable cv;
};

struct EventCtx;

// Events read from the source in one turn by one thread; their slots go back to the pool together,
// when the last of them has finished (runner.cpp).
struct alignas(64) Group {
  std::atomic<uint32_t> remaining{0};  // events not yet finished
  Group* next = nullptr;               // in a list of returned groups
  std::vector<EventCtx*> ev;
};

// One in-flight slot: the event and the runner's state for it. A cache line of its own, so that
// events run by different threads never share one. What reading and running an event touch comes
// first (the Event and the next four fields: two lines); `error`, set only when the event fails,
// is last, on lines an event that does not fail never touches.
struct alignas(64) EventCtx {
  Event event;
  Group* group = nullptr;
  size_t next_async = 0;
  uint32_t source = 0;  // light hub turn (runner.cpp): the source that read it, for prepare()
  bool failed = false;
  std::exception_ptr async_error;
  std::optional<Error> error;
};

// Wraps any exception into a quiver::Error naming the component (kept when already named).
Error to_error(std::exception_ptr e, const std::string& component);

// The runner: executes a topology (src/flow/runner.cpp).
RunSummary execute(Application& app, const Topology& topology);

}  // namespace quiver::flow::detail
