// A plugin for the plugin-loading test: adds a source and a counting processor.
#include <atomic>

#include "quiver/flow/application.hpp"

namespace {
using namespace quiver::flow;
class CountingSource : public Source {
 public:
  Output<int> out_{this, "plugin_value"};
  int n = 0;
  bool emit(Event& e) override {
    out_(e) = n++;
    return true;
  }
};
class Counter : public Processor {
 public:
  Input<int> in_{this, "plugin_value"};
  std::atomic<int64_t> sum{0};
  void process(const Event& e) override { sum += in_(e); }
};
}  // namespace

QUIVER_FLOW_PLUGIN(app) {
  app.add<CountingSource>("plugin_source");
  app.add<Counter>("plugin_counter");
}
