// The application: parameters, plugins, components, and the TBB scheduler that runs them.
//
// Framework parameters (TOML config or -Pkey=value):
//   nthreads (default: all cores)      nevents (0: until the source ends)    nskip (0)
//   in_flight (event slots: back-pressure bound; default 4 * nthreads with async factories,
//              otherwise 128 * nthreads slots of which max(4, 2 * K) * nthreads are used, K the
//              events per group the runner picks; with a sequential processor and several threads
//              512 * nthreads and max(4, 8 * K) * nthreads; docs/flow.md, "Scheduling")
//   ordered (true: sequential processors see events in emission order)
//   error_policy (abort | skip)        log_level (info), <component>.log_level
//   ticker (seconds between progress lines; 0 = off)
//   plugins (comma list or TOML array), plugin_path (extra dirs, ':' separated)
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "quiver/core/error.hpp"
#include "quiver/flow/flow.hpp"
#include "quiver/flow/topology.hpp"

namespace quiver::flow {

struct EventFailure {
  uint64_t event = 0;       // event number
  std::string component;    // component that threw
  ErrorCode code = ErrorCode::Internal;
  std::string message;      // full message
};

struct RunSummary {
  uint64_t emitted = 0;     // events read from the source
  uint64_t processed = 0;   // events that went through every component
  uint64_t failed = 0;      // events reported as failed (skip policy, or the one that aborted)
  std::vector<EventFailure> failures;  // first 1000
  double seconds = 0;
  int threads = 0;
  bool interrupted = false;            // stop requested (Ctrl-C)
  std::optional<Error> fatal;          // abort policy error or source failure
  double rate() const { return seconds > 0 ? processed / seconds : 0; }
  bool ok() const { return !fatal && failed == 0; }
};

struct BenchmarkRow {
  int threads = 0;
  uint64_t events = 0;
  double seconds = 0;
  double rate = 0;  // events / s
};

class Application {
 public:
  Application();
  ~Application();
  Application(const Application&) = delete;
  Application& operator=(const Application&) = delete;

  // ---- parameters
  void set_parameter(const std::string& key, const std::string& value);
  // Parses "key=value" (the text after -P).
  void set_parameter_assignment(const std::string& assignment);
  // Loads a TOML file; tables flatten to dotted keys ([inference] mode = "x" -> inference.mode).
  // Keys already set (e.g. by -P) are not overridden.
  void load_config(const std::string& path, bool override_existing = false);
  std::optional<std::string> parameter(const std::string& key) const;
  template <class T>
  T get_parameter(const std::string& key, T fallback) const {
    auto v = parameter(key);
    mark_used(key);
    return v ? parse_parameter<T>(key, *v) : fallback;
  }
  const std::map<std::string, std::string>& parameters() const { return params_; }
  // Directory of the loaded config file (for relative paths), empty when none.
  const std::string& config_dir() const { return config_dir_; }

  // ---- plugins: shared objects exporting  extern "C" void quiver_flow_plugin(Application&)
  // Searched by name (lib<name>.so, <name>.so) in QUIVER_PLUGIN_PATH, `plugin_path`, then the
  // build/install plugin dirs; a name containing '/' is a path.
  void load_plugin(const std::string& name);
  // Loads the plugins listed in parameter `plugins`.
  void load_plugins();
  std::vector<std::string> plugin_search_path() const;

  // ---- components (the application owns them)
  template <class C, class... Args>
  C& add(std::string name, Args&&... args) {
    auto c = std::make_unique<C>(std::forward<Args>(args)...);
    C& ref = *c;
    add_component(std::move(name), std::move(c));
    return ref;
  }
  void add_component(std::string name, std::unique_ptr<Component> c);
  Component* find(const std::string& name) const;
  const std::vector<std::unique_ptr<Component>>& components() const { return components_; }

  // ---- running
  // The plan of a run (topology.hpp): reads the framework parameters, binds component parameters
  // and ports and checks the wiring. Runs nothing (no thread, no init()). Throws quiver::Error for
  // configuration errors (missing parameter, unwired input, two producers, cycles, ...).
  Topology build_topology();
  // Builds the topology and executes it: until the source ends, nevents, or stop; can be called
  // again (components see init/finish again). Throws what build_topology() throws.
  RunSummary run();
  // Runs once per thread count and returns the rates (each run reads `nevents` events).
  std::vector<BenchmarkRow> benchmark(const std::vector<int>& thread_counts);
  // Async-signal-safe: finish the events in flight, flush, return from run().
  void request_stop();
  // SIGINT/SIGTERM -> request_stop() on this application; a second signal kills the process.
  void install_signal_handlers();
  static void remove_signal_handlers();

  // Parameters that were set but never read (likely typos); valid after run().
  std::vector<std::string> unused_parameters() const;

  void mark_used(const std::string& key) const;

 private:
  struct Plugin;
  std::map<std::string, std::string> params_;
  mutable std::set<std::string> used_;
  std::string config_dir_;
  std::vector<std::unique_ptr<Component>> components_;
  std::vector<std::shared_ptr<Plugin>> plugins_;
  std::atomic<bool> stop_requested_{false};
  friend struct Runner;
};

// In a plugin:  QUIVER_FLOW_PLUGIN(app) { app.add<MySource>("source"); ... }
#define QUIVER_FLOW_PLUGIN(app) extern "C" void quiver_flow_plugin(::quiver::flow::Application& app)

}  // namespace quiver::flow
