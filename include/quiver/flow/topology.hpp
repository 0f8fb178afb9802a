// The plan of a run: what Application::build_topology() derives from the components and the
// parameters before anything runs — framework settings, each component's role, the product wiring,
// the order of async factories and the processor stages. Building it binds parameters and ports and
// checks the wiring (every error names the component and product); it starts no thread, creates no
// event and calls no init(). Application::run() builds one and hands it to the runner, which only
// executes it. `quiver run CONFIG --show-topology` prints describe().
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "quiver/flow/flow.hpp"

namespace quiver::flow {

enum class ErrorPolicy { Abort, Skip };

struct ProductKeyHash {
  size_t operator()(const ProductKey& k) const noexcept;
};

struct Topology {
  // Framework parameters, validated.
  struct Settings {
    int threads = 1;
    size_t in_flight = 4;        // event slots (back-pressure bound)
    // in_flight was not set: a pipeline without async factories gets kAutoSlotsPerThread x nthreads
    // slots, of which the runner keeps max(4, G x K) x nthreads in flight (K: events per group, G:
    // the slots per thread over the largest group), so tiny events travel in large groups while
    // heavy ones stay a few per thread. With several threads and a sequential processor, events
    // wait at its stage while their thread reads on (docs/flow.md, "Scheduling"): those pipelines
    // get kAutoSlotsPerThreadSequential. With async factories the default is 4 x nthreads, all of
    // them usable.
    bool bounded_read_ahead = false;
    static constexpr size_t kMaxGroup = 64;  // the most events the runner reads in one group
    static constexpr size_t kAutoSlotsPerThread = 2 * kMaxGroup;
    static constexpr size_t kAutoSlotsPerThreadSequential = 8 * kMaxGroup;
    uint64_t max_events = 0;     // 0: until the sources end
    uint64_t nskip = 0;
    bool ordered = true;         // sequential processors see events in emission order
    ErrorPolicy error_policy = ErrorPolicy::Abort;
    double ticker_s = 0;
    LogLevel log_level = LogLevel::Info;
  };
  Settings settings;

  enum class Role { Source, Factory, AsyncFactory, Processor };
  struct Node {
    Component* component = nullptr;
    Role role = Role::Source;
    LogLevel level = LogLevel::Info;
  };
  std::vector<Node> components;  // in the order they were added (init order)

  struct Product {
    ProductKey key;
    const Component* producer = nullptr;
    const OutputBase* output = nullptr;  // makes the per-event slot (the first producer's port)
    int64_t factory = -1;                // index in `factories` when a lazy factory makes it
    std::vector<const Component*> consumers;
  };
  std::vector<Product> products;  // product index = position (Input/Output::index())
  std::unordered_map<ProductKey, size_t, ProductKeyHash> index;

  std::vector<Source*> sources;        // read one after the other
  std::vector<Factory*> factories;     // lazy: run once per event, on first use
  std::vector<AsyncFactory*> asyncs;   // the order every event runs them in (dependencies first)
  std::vector<std::vector<size_t>> async_after;  // per entry of `asyncs`: the earlier ones it needs
  struct Stage {
    Processor* processor = nullptr;
    bool sequential = false;  // one event at a time (in emission order when settings.ordered)
  };
  std::vector<Stage> stages;  // processors, in the order every event visits them

  // Index of the product with this key, or npos.
  static constexpr size_t npos = static_cast<size_t>(-1);
  size_t find(const ProductKey& key) const;
  // Human-readable plan: settings, the path of an event, lazy factories, products and their users.
  std::string describe() const;
};

}  // namespace quiver::flow
