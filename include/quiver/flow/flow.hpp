// Quiver's event-processing framework: components and the event they work on.
//
//  - Source:        fills new events (sequentially, one at a time).
//  - Factory:       computes its outputs lazily, once per event, the first time one is requested.
//  - AsyncFactory:  acquire(event, completion) starts external work and returns at once; the event
//                   is parked (no thread waits); completion() (any thread) re-enqueues it and
//                   produce(event) runs. CMSSW's ExternalWork.
//  - Processor:     consumes products, in parallel or sequentially (writers), ordered or not.
//  - BatchFactory / UnfoldFactory (batch.hpp): split events into sub-tasks and merge them back;
//                   BatchFactory gathers sub-tasks of many in-flight events into one call.
//
// Components declare their ports and parameters as members, which register with their owner:
//
//   class JetFactory : public quiver::flow::Factory {
//     Input<std::vector<Particle>> particles_{this, "particles"};
//     Output<std::vector<Jet>> jets_{this, "jets"};
//     Parameter<double> radius_{this, "radius", 0.4, "anti-kt distance parameter"};
//     void process(Event& e) override { auto& jets = jets_(e); ... particles_(e) ... *radius_ ... }
//   };
//
// One instance of each component serves all events: process() may run concurrently for different
// events and must only touch per-event data (products, EventLocal) or thread-safe members.
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include "quiver/core/error.hpp"

namespace quiver::flow {

class Application;
class Component;
class Event;
struct Runner;
struct Topology;
namespace detail {
struct EventCtx;
struct FactoryState;
}  // namespace detail

// ---------------------------------------------------------------- products
struct ProductKey {
  std::type_index type;
  std::string tag;
  bool operator==(const ProductKey& o) const { return type == o.type && tag == o.tag; }
};
std::string demangle(const char* mangled);
std::string product_name(const ProductKey& k);  // "std::vector<Jet> 'jets'"

// Products are reused from event to event: an Output clears the previous value (keeping the
// capacity of containers) the first time it is touched in a new event.
template <class T>
void clear_product(T& v) {
  if constexpr (requires { v.clear(); }) {
    v.clear();
  } else {
    v = T{};
  }
}

// A cache line (or more) of its own: events run by different threads never share one.
class alignas(64) SlotBase {
 public:
  virtual ~SlotBase() = default;
  std::atomic<uint64_t> present_gen{0};  // == event generation when the product exists
  uint64_t touched_gen = 0;              // generation it was last cleared for (by an Output)
  // Marks the product present in event generation `gen`, clearing it first when its producer never
  // touched it in that event. Needs only the slot: the runner publishes a source's products this
  // way, without reading the source object.
  virtual void publish(uint64_t gen) = 0;
};
template <class T>
class Slot final : public SlotBase {
 public:
  T value{};
  // The value to fill in generation `gen`: cleared on the first touch in each generation.
  T& touch(uint64_t gen) {
    if (touched_gen != gen) {
      clear_product(value);
      touched_gen = gen;
    }
    return value;
  }
  void publish(uint64_t gen) override {
    (void)touch(gen);
    present_gen.store(gen, std::memory_order_release);
  }
};

// ---------------------------------------------------------------- event
class Event {
 public:
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Event number (the source may set it, e.g. from the file; default: emission order).
  uint64_t number() const { return number_; }
  void set_number(uint64_t n) { number_ = n; }
  // Position in emission order (0, 1, 2, ...), used for ordered output.
  uint64_t sequence() const { return sequence_; }
  // Index of the in-flight slot this event occupies (0 .. pool_size-1): key for EventLocal.
  size_t slot() const { return slot_; }

  // A product by type and tag; runs its factory (once per event) when not yet produced.
  // Throws quiver::Error(NotFound) when nothing produces it.
  template <class T>
  const T& get(std::string_view tag = {}) const {
    return static_cast<const Slot<T>&>(get_slot(find_index(ProductKey{typeid(T), std::string(tag)}))).value;
  }
  // True when the product already exists in this event (does not run its factory).
  template <class T>
  bool has(std::string_view tag = {}) const {
    return has_index(find_index(ProductKey{typeid(T), std::string(tag)}, /*must_exist=*/false));
  }

  // Internal: product slot access used by Input/Output.
  const SlotBase& get_slot(size_t index) const;
  SlotBase& slot_ref(size_t index) { return *slots_[index]; }
  uint64_t generation() const { return gen_; }

 private:
  friend struct detail::EventCtx;
  friend class Application;
  friend struct Runner;
  Event() = default;
  ~Event();
  size_t find_index(const ProductKey& key, bool must_exist = true) const;
  bool has_index(size_t index) const;
  void run_factory(size_t factory) const;

  uint64_t number_ = 0;
  uint64_t sequence_ = 0;
  uint64_t gen_ = 0;
  size_t slot_ = 0;
  const Topology* topo_ = nullptr;
  std::vector<std::unique_ptr<SlotBase>> slots_;
  std::unique_ptr<detail::FactoryState[]> fstate_;
};

// Per-event scratch of a component, indexed by the event's in-flight slot. Size it in init():
//   void init() override { state_.resize(pool_size()); }
template <class T>
class EventLocal {
 public:
  void resize(size_t n) {
    v_ = std::make_unique<T[]>(n);
    n_ = n;
  }
  T& operator[](const Event& e) { return v_[e.slot()]; }
  const T& operator[](const Event& e) const { return v_[e.slot()]; }
  T& at_slot(size_t s) { return v_[s]; }
  size_t size() const { return n_; }

 private:
  std::unique_ptr<T[]> v_;
  size_t n_ = 0;
};

// ---------------------------------------------------------------- ports and parameters
class InputBase {
 public:
  InputBase(Component* owner, std::type_index type, std::string tag);
  const ProductKey& key() const { return key_; }
  void set_tag(std::string tag) { key_.tag = std::move(tag); }
  size_t index() const { return index_; }

 protected:
  ProductKey key_;
  size_t index_ = static_cast<size_t>(-1);
  friend class Application;
};

template <class T>
class Input final : public InputBase {
 public:
  Input(Component* owner, std::string tag = {}) : InputBase(owner, typeid(T), std::move(tag)) {}
  // The product in `e`, produced on first use.
  const T& operator()(const Event& e) const { return static_cast<const Slot<T>&>(e.get_slot(index_)).value; }
};

class OutputBase {
 public:
  OutputBase(Component* owner, std::type_index type, std::string tag);
  virtual ~OutputBase() = default;
  const ProductKey& key() const { return key_; }
  void set_tag(std::string tag) { key_.tag = std::move(tag); }
  size_t index() const { return index_; }
  virtual std::unique_ptr<SlotBase> make_slot() const = 0;
  // Marks the product present in `e` (clearing it first when it was never touched in `e`).
  virtual void publish(Event& e) const = 0;

 protected:
  ProductKey key_;
  size_t index_ = static_cast<size_t>(-1);
  friend class Application;
};

template <class T>
class Output final : public OutputBase {
 public:
  Output(Component* owner, std::string tag = {}) : OutputBase(owner, typeid(T), std::move(tag)) {}
  // The product to fill in `e` (cleared on first access in each event).
  T& operator()(Event& e) const { return static_cast<Slot<T>&>(e.slot_ref(index_)).touch(e.generation()); }
  std::unique_ptr<SlotBase> make_slot() const override { return std::make_unique<Slot<T>>(); }
  // Slot<T> is final: a direct, inlined call.
  void publish(Event& e) const override { static_cast<Slot<T>&>(e.slot_ref(index_)).publish(e.generation()); }
};

// Parameter values come from the TOML config and -Pcomponent.name=value.
template <class T>
T parse_parameter(const std::string& key, const std::string& text);  // int, int64, size_t, double, float, bool, string, vector<string>, vector<double>
template <class T>
std::string parameter_to_string(const T& v);

#define QUIVER_FLOW_PARAM_TYPE(T)                                               \
  template <> T parse_parameter<T>(const std::string& key, const std::string& text); \
  template <> std::string parameter_to_string<T>(const T& v);
QUIVER_FLOW_PARAM_TYPE(int)
QUIVER_FLOW_PARAM_TYPE(int64_t)
QUIVER_FLOW_PARAM_TYPE(uint64_t)
QUIVER_FLOW_PARAM_TYPE(double)
QUIVER_FLOW_PARAM_TYPE(float)
QUIVER_FLOW_PARAM_TYPE(bool)
QUIVER_FLOW_PARAM_TYPE(std::string)
QUIVER_FLOW_PARAM_TYPE(std::vector<std::string>)
QUIVER_FLOW_PARAM_TYPE(std::vector<double>)
QUIVER_FLOW_PARAM_TYPE(std::vector<int>)
#undef QUIVER_FLOW_PARAM_TYPE

struct Required {};

class ParameterBase {
 public:
  ParameterBase(Component* owner, std::string name, std::string help, bool required);
  virtual ~ParameterBase() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  bool required() const { return required_; }
  virtual void set(const std::string& full_key, const std::string& text) = 0;
  virtual std::string value_string() const = 0;

 private:
  std::string name_, help_;
  bool required_;
};

template <class T>
class Parameter final : public ParameterBase {
 public:
  Parameter(Component* owner, std::string name, T default_value, std::string help = {})
      : ParameterBase(owner, std::move(name), std::move(help), false), value_(std::move(default_value)) {}
  Parameter(Component* owner, std::string name, Required, std::string help = {})
      : ParameterBase(owner, std::move(name), std::move(help), true) {}
  const T& operator()() const { return value_; }
  const T& operator*() const { return value_; }
  const T* operator->() const { return &value_; }
  void set_value(T v) { value_ = std::move(v); }
  void set(const std::string& full_key, const std::string& text) override {
    value_ = parse_parameter<T>(full_key, text);
  }
  std::string value_string() const override { return parameter_to_string(value_); }

 private:
  T value_{};
};

// ---------------------------------------------------------------- components
enum class LogLevel { Trace, Debug, Info, Warn, Error, Off };
LogLevel parse_log_level(const std::string& key, const std::string& s);

// What a component may ask of the running framework (valid between init() and finish()).
class Runtime {
 public:
  virtual ~Runtime() = default;
  // Runs `task` on the framework's TBB arena; callable from any thread (timer threads, callbacks).
  // The run does not end before it has executed. Exceptions are logged and swallowed.
  virtual void enqueue(std::function<void()> task) = 0;
  // Events emitted and not yet finished.
  virtual int64_t in_flight() const = 0;
  // Stop requested (Ctrl-C, abort policy): flush what is pending.
  virtual bool stopping() const = 0;
  // Worker threads of the arena (how many tasks can run at once).
  virtual int concurrency() const { return 1; }
  // `cb(event)` runs (on any thread, must be cheap and must not block) each time an event leaves
  // the pipeline: in_flight() has just dropped and the event's slot is not reused yet. Register in
  // init(); valid for this run only.
  virtual void on_event_finished(std::function<void(const Event&)> cb) { (void)cb; }
};

class Component {
 public:
  Component();
  virtual ~Component();
  Component(const Component&) = delete;
  Component& operator=(const Component&) = delete;

  const std::string& name() const { return name_; }
  // After parameters are set and ports wired, before the first event. May throw.
  virtual void init() {}
  // After the last event of a run (also after a stop): flush and close.
  virtual void finish() {}

  void log(LogLevel level, const std::string& message) const;
  bool log_enabled(LogLevel level) const { return level >= level_ && level != LogLevel::Off; }
  // Number of in-flight event slots (valid from init()).
  size_t pool_size() const { return pool_size_; }
  Runtime& runtime() const;
  Application& app() const { return *app_; }

  const std::vector<InputBase*>& inputs() const { return inputs_; }
  const std::vector<OutputBase*>& outputs() const { return outputs_; }
  const std::vector<ParameterBase*>& parameters() const { return params_; }
  virtual const char* kind() const = 0;

 private:
  friend class InputBase;
  friend class OutputBase;
  friend class ParameterBase;
  friend class Application;
  friend struct Runner;
  std::string name_;
  Application* app_ = nullptr;
  Runtime* runtime_ = nullptr;
  size_t pool_size_ = 0;
  LogLevel level_ = LogLevel::Info;
  std::vector<InputBase*> inputs_;
  std::vector<OutputBase*> outputs_;
  std::vector<ParameterBase*> params_;
};

class Source : public Component {
 public:
  // Fill `e` through Outputs. Return false when there are no more events. Called by one thread at
  // a time. Throw quiver::Error on failure (e.g. corrupt input): the run stops reading, finishes the
  // events in flight and reports the error.
  virtual bool emit(Event& e) = 0;
  const char* kind() const override { return "source"; }
};

class Factory : public Component {
 public:
  // Fill the Outputs from the Inputs. Runs at most once per event, when first needed.
  virtual void process(Event& e) = 0;
  const char* kind() const override { return "factory"; }
};

// Called exactly once (from any thread) when an AsyncFactory's external work is done. Copyable;
// further calls are ignored. Dropping every copy without calling it fails the event.
class Completion {
 public:
  struct State;
  friend struct Runner;
  Completion() = default;
  explicit Completion(std::shared_ptr<State> s) : s_(std::move(s)) {}
  void operator()() const;
  void fail(std::exception_ptr error) const;
  explicit operator bool() const { return s_ != nullptr; }

 private:
  std::shared_ptr<State> s_;
};

class AsyncFactory : public Component {
 public:
  // Start the work for `e` and return at once; call `done()` (any thread) when it has finished,
  // or done.fail(exception). Inputs may be read here. Must not block waiting for the work.
  virtual void acquire(Event& e, Completion done) = 0;
  // Runs on a framework thread after completion: fill Outputs from what the work returned.
  virtual void produce(Event& e) {}
  const char* kind() const override { return "async factory"; }
};

class Processor : public Component {
 public:
  enum class Mode { Parallel, Sequential };
  explicit Processor(Mode mode = Mode::Parallel) : mode_(mode) {}
  // Consume products. Parallel: concurrent for different events. Sequential: one event at a
  // time, in event order when the run is ordered (parameter `ordered`, default true).
  virtual void process(const Event& e) = 0;
  // Sequential processors are told about events that failed (upstream, or in their own process()),
  // in order,
  // so that writers can record them: every event is written or reported as failed.
  virtual void failed(const Event& e, const Error& error) {}
  Mode mode() const { return mode_; }
  const char* kind() const override { return "processor"; }

 private:
  Mode mode_;
};

}  // namespace quiver::flow
