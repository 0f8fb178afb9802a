// ML inference inside the event framework, in three modes chosen by a parameter:
//
//   <name>.mode = direct   one shared immutable model, per-call RunState; per item (default) or per event
//               = batched  items (jets, ...) of many in-flight events gathered into one model call
//               = service  asynchronous requests to a server (quiver::AsyncInferer: the gRPC client or
//                          an in-process stand-in); the event is parked while the request is in flight;
//                          on failure the local model answers (<name>.fallback, quiver::Fallback)
//
// The physics code is written once: fill_inputs() writes the model inputs of each item of an event,
// read_outputs() turns the model outputs into products. Outputs carry provenance.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "quiver/core/infer.hpp"
#include "quiver/core/model.hpp"
#include "quiver/core/tensor.hpp"
#include "quiver/flow/batch.hpp"
#include "quiver/flow/flow.hpp"

namespace quiver::flow {

// Provenance (model, version, sha256, mode: direct | batched | service | service-fallback-direct)
// and the asynchronous inference interface are the core inference-call layer's
// (quiver/core/infer.hpp): the same types as the gRPC client's.
using quiver::AsyncInferer;
using quiver::Provenance;

// The service of an inference component: where its requests go (with the fallback applied) and
// the model and version they name.
struct ServiceTarget {
  std::shared_ptr<AsyncInferer> inferer;
  std::string model, version;
};

// Creates the service for a spec ("loopback[:LATENCY_MS]", "grpc://HOST:PORT[,...][/MODEL[/VERSION]]").
// `model` is the component's local model (may be null) and `model_name` its name, the model
// requests name unless the spec says otherwise. With `fallback` other than Off, failed requests
// are answered by `model` through the one fallback (quiver::Fallback): the gRPC client runs it
// itself; in-process services get it around them, running on `executor`.
using InfererMaker = std::function<ServiceTarget(const std::string& spec, std::shared_ptr<const Model> model,
                                                 const std::string& model_name, FallbackMode fallback,
                                                 const Fallback::Executor& executor)>;
// Adds a scheme to the built-in ones (loopback, and grpc when Quiver is built with its client).
void register_inferer_scheme(const std::string& scheme, InfererMaker maker);
ServiceTarget make_inferer(const std::string& spec, std::shared_ptr<const Model> model, const std::string& model_name,
                           FallbackMode fallback = FallbackMode::Off, const Fallback::Executor& executor = {});

// An in-process stand-in for a server: one service thread answers each request `latency_ms`
// after it arrived, computing with `model` (whatever model name the request carries). For
// `service` mode without a network server, tests and the latency benchmark (a real deployment
// points `service` at `quiver serve` / Triton).
std::shared_ptr<AsyncInferer> make_loopback_inferer(std::shared_ptr<const Model> model, double latency_ms);

// Inputs of the items of one event: input k is a tensor [n_items, item_dims(k)...], zero-filled.
class InferenceInputs {
 public:
  size_t size() const { return n_; }
  size_t num_inputs() const { return tensors_.size(); }
  size_t input_index(const std::string& name) const;
  // Start of item `item` in input `k` (item_numel(k) values of the input's dtype).
  template <class T>
  T* item(size_t k, size_t item) {
    return tensors_[k].data<T>() + item * item_numel_[k];
  }
  float* f32(size_t k, size_t item) { return this->item<float>(k, item); }
  int64_t item_numel(size_t k) const { return item_numel_[k]; }
  const std::vector<int64_t>& item_dims(size_t k) const { return item_dims_[k]; }
  const Tensor& tensor(size_t k) const { return tensors_[k]; }
  // Declares the number of items of this event and zero-fills their inputs.
  void resize(size_t n_items);

 private:
  friend class InferenceFactory;
  size_t n_ = 0;
  std::vector<std::string> names_;
  std::vector<DType> dtypes_;
  std::vector<std::vector<int64_t>> item_dims_;
  std::vector<int64_t> item_numel_;
  std::vector<Tensor> tensors_;
};

class InferenceOutputs {
 public:
  size_t size() const { return n_; }
  size_t output_index(const std::string& name) const;
  template <class T>
  const T* item(size_t k, size_t item) const {
    return tensors_[k].data<T>() + item * item_numel(k);
  }
  const float* f32(size_t k, size_t item) const { return this->item<float>(k, item); }
  int64_t item_numel(size_t k) const { return n_ ? tensors_[k].numel() / static_cast<int64_t>(n_) : 0; }
  const Tensor& tensor(size_t k) const { return tensors_[k]; }
  const Provenance& provenance() const { return prov_; }

 private:
  friend class InferenceFactory;
  size_t n_ = 0;
  std::vector<std::string> names_;
  std::vector<Tensor> tensors_;
  Provenance prov_;
};

class InferenceFactory : public AsyncFactory {
 public:
  InferenceFactory();
  ~InferenceFactory() override;
  void init() final;
  void finish() final;
  void acquire(Event& e, Completion done) final;
  void produce(Event& e) final;
  const char* kind() const override { return "inference factory"; }

  // Programmatic set-up (tests, embedding): a model instead of the `model` file parameter, a
  // service instead of the `service` spec (requests name the model's name; the fallback parameter
  // applies to it as to any service).
  void set_model(std::shared_ptr<const Model> m) { model_override_ = std::move(m); }
  void set_inferer(std::shared_ptr<AsyncInferer> s) { inferer_override_ = std::move(s); }
  // Values of symbolic item dims (e.g. n_pf = 50), for building inputs from the model's metadata.
  void set_dim(const std::string& symbol, int64_t value);
  BatchStats batch_stats() const { return engine_.stats(); }
  // Events (service mode) that the local model answered after the service failed.
  uint64_t fallbacks() const { return fallbacks_.load(); }

 protected:
  Parameter<std::string> mode_{this, "mode", "direct", "direct | batched | service"};
  Parameter<std::string> model_path_{this, "model", "", "model file (direct, batched, service fallback)"};
  Parameter<std::string> device_{this, "device", "cpu",
                                 "where the local model runs (direct, batched, fallback): cpu | cuda | cuda:N | auto | "
                                 "gpu-emulator"};
  Parameter<std::string> numerics_{this, "numerics", "default",
                                   "the local model's numerics: default | reproducible (outputs bitwise identical on "
                                   "any CPU ISA, batch and thread count; CPU only)"};
  Parameter<int64_t> device_streams_{this, "device_streams", 4,
                                     "GPU: batches of this model on the device at once (each with its own buffers)"};
  Parameter<std::string> service_{this, "service", "loopback:0", "service: loopback[:LATENCY_MS] | grpc://HOST:PORT"};
  Parameter<std::string> fallback_{this, "fallback", "direct", "on service failure: direct | fail"};
  Parameter<std::string> granularity_{this, "direct_granularity", "item", "direct mode: one call per item | event"};
  Parameter<int64_t> max_batch_{this, "max_batch", 64, "batched mode: items per model call"};
  Parameter<std::string> prepare_{this, "prepare", "",
                                  "direct/batched: size the local model's states ahead, BATCH[,SYMBOL=VALUE...] or off; "
                                  "default: max_batch in batched mode, else 1 (symbolic dims from set_dim)"};
  Parameter<double> max_wait_ms_{this, "max_wait_ms", 2.0, "batched mode: longest wait for a batch to fill"};
  Parameter<bool> spread_{this, "spread", true,
                          "when all in-flight events wait here, split the queued items over the worker threads "
                          "(off: one call, e.g. for an accelerator)"};

  virtual void on_init() {}
  // Physics code, mode-independent: resize `in` to the number of items and fill their inputs.
  virtual void fill_inputs(const Event& e, InferenceInputs& in) = 0;
  // Physics code: turn the outputs of the items into products (Outputs of this component).
  virtual void read_outputs(Event& e, const InferenceOutputs& out) = 0;

  const Model& model() const { return *model_; }

 private:
  struct PerEvent;
  struct Impl;
  struct Gather;
  void run_direct(PerEvent& s);
  void run_batch(std::span<const BatchTicket> b);
  void request_service(PerEvent& s, Completion done);
  void service_answered(PerEvent* sp, const Completion& done, Gather& g);
  std::shared_ptr<const Model> model_override_, model_;
  std::shared_ptr<AsyncInferer> inferer_override_;
  ServiceTarget target_;
  std::unique_ptr<Impl> impl_;
  BatchEngine engine_;
  std::atomic<uint64_t> fallbacks_{0};
};

}  // namespace quiver::flow
