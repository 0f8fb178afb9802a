// Internal structures of the flow framework (not installed).
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "quiver/flow/application.hpp"
#include "quiver/flow/flow.hpp"

namespace quiver::flow {
struct Application::Plugin {
  std::string path;
  void* handle = nullptr;
};
}  // namespace quiver::flow

namespace quiver::flow::detail {

struct KeyHash {
  size_t operator()(const ProductKey& k) const noexcept {
    return k.type.hash_code() * 31u ^ std::hash<std::string>()(k.tag);
  }
};

// Lazy-factory state of one event slot.
struct FactoryState {
  std::atomic<uint64_t> done_gen{0};
  std::mutex m;
  uint64_t err_gen = 0;
  std::exception_ptr err;
};

// The wired product graph of one run.
struct Graph {
  std::vector<ProductKey> products;
  std::unordered_map<ProductKey, size_t, KeyHash> index;
  std::vector<const OutputBase*> slot_maker;   // one per product
  std::vector<std::string> producer_name;      // component producing each product
  std::vector<int64_t> producer_factory;       // lazy factory index or -1
  std::vector<Factory*> factories;             // lazy factories
};

struct EventCtx {
  Event event;
  size_t next_async = 0;
  bool failed = false;
  std::optional<Error> error;
  std::exception_ptr async_error;
};

// Wraps any exception into a quiver::Error naming the component (kept when already named).
Error to_error(std::exception_ptr e, const std::string& component);

}  // namespace quiver::flow::detail
