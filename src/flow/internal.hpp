// Internal structures of the flow framework (not installed).
#pragma once
#include <atomic>
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

// Lazy-factory state of one event slot (a cache line of its own, see SlotBase).
struct alignas(64) FactoryState {
  std::atomic<uint64_t> done_gen{0};
  std::mutex m;
  uint64_t err_gen = 0;
  std::exception_ptr err;
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
// events run by different threads never share one.
struct alignas(64) EventCtx {
  Event event;
  Group* group = nullptr;
  size_t next_async = 0;
  bool failed = false;
  std::optional<Error> error;
  std::exception_ptr async_error;
};

// Wraps any exception into a quiver::Error naming the component (kept when already named).
Error to_error(std::exception_ptr e, const std::string& component);

// The runner: executes a topology (src/flow/runner.cpp).
RunSummary execute(Application& app, const Topology& topology);

}  // namespace quiver::flow::detail
