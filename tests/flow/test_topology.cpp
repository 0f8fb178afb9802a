// Unit tests of build_topology(): the plan of a run, built without running anything (no thread, no
// init(), no event).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "quiver/flow/application.hpp"
#include "quiver/flow/topology.hpp"

using namespace quiver::flow;

namespace {

std::atomic<int> g_inits{0};
std::atomic<int> g_calls{0};  // emit/process/acquire calls: building a topology must make none

class Numbers : public Source {
 public:
  Output<int> out_{this, "n"};
  Parameter<int> start_{this, "start", 0, "first number"};
  void init() override { ++g_inits; }
  bool emit(Event& e) override {
    ++g_calls;
    out_(e) = *start_;
    return false;
  }
};

// Reads `in`, writes `out` (tags given at construction so one class serves several roles).
class Step : public Factory {
 public:
  Step(std::string in, std::string out) : in_(this, std::move(in)), out_(this, std::move(out)) {}
  Input<int> in_;
  Output<int> out_;
  void init() override { ++g_inits; }
  void process(Event& e) override {
    ++g_calls;
    out_(e) = in_(e);
  }
};

class Remote : public AsyncFactory {
 public:
  Remote(std::string in, std::string out) : in_(this, std::move(in)), out_(this, std::move(out)) {}
  Input<int> in_;
  Output<int> out_;
  void init() override { ++g_inits; }
  void acquire(Event&, Completion done) override {
    ++g_calls;
    done();
  }
};

class Reader : public Processor {
 public:
  Reader(std::string in, Mode m) : Processor(m), in_(this, std::move(in)) {}
  Input<int> in_;
  Parameter<std::string> label_{this, "label", quiver::flow::Required{}, "what to call it"};
  void init() override { ++g_inits; }
  void process(const Event&) override { ++g_calls; }
};

size_t position(const std::vector<AsyncFactory*>& v, const Component* c) {
  return static_cast<size_t>(std::find(v.begin(), v.end(), c) - v.begin());
}

std::string build_error(Application& app) {
  try {
    app.build_topology();
  } catch (const quiver::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Topology, RolesWiringAndAsyncOrderWithoutRunningAnything) {
  g_inits = 0;
  g_calls = 0;
  Application app;
  app.set_parameter("nthreads", "3");
  app.set_parameter("ordered", "false");
  app.set_parameter("source.start", "5");
  app.set_parameter("out.label", "x");
  app.set_parameter("writer.label", "y");
  app.set_parameter("late.log_level", "debug");
  auto& src = app.add<Numbers>("source");
  // `late` needs `early`'s product through the lazy factory `mid`: added first, it must run second.
  auto& late = app.add<Remote>("late", "m", "l");
  auto& mid = app.add<Step>("mid", "e", "m");
  auto& early = app.add<Remote>("early", "n", "e");
  auto& unused = app.add<Step>("unused", "n", "u");
  auto& out = app.add<Reader>("out", "l", Processor::Mode::Parallel);
  auto& writer = app.add<Reader>("writer", "m", Processor::Mode::Sequential);

  Topology t = app.build_topology();
  EXPECT_EQ(g_inits.load(), 0) << "build_topology must not call init()";
  EXPECT_EQ(g_calls.load(), 0) << "build_topology must not run components";

  EXPECT_EQ(t.settings.threads, 3);
  EXPECT_EQ(t.settings.in_flight, 12u);  // 4 x nthreads by default with an async factory
  EXPECT_FALSE(t.settings.bounded_read_ahead);
  EXPECT_FALSE(t.settings.ordered);
  EXPECT_EQ(t.settings.error_policy, ErrorPolicy::Abort);
  EXPECT_EQ(*src.start_, 5);  // parameters are bound

  ASSERT_EQ(t.components.size(), 7u);
  EXPECT_EQ(t.components[0].role, Topology::Role::Source);
  EXPECT_EQ(t.components[1].role, Topology::Role::AsyncFactory);
  EXPECT_EQ(t.components[1].level, LogLevel::Debug);
  EXPECT_EQ(t.components[2].role, Topology::Role::Factory);
  EXPECT_EQ(t.components[5].role, Topology::Role::Processor);
  EXPECT_EQ(t.components[5].level, LogLevel::Info);

  ASSERT_EQ(t.sources.size(), 1u);
  ASSERT_EQ(t.factories.size(), 2u);
  ASSERT_EQ(t.asyncs.size(), 2u);
  EXPECT_EQ(position(t.asyncs, &early), 0u);
  EXPECT_EQ(position(t.asyncs, &late), 1u);
  ASSERT_EQ(t.async_after.size(), 2u);
  EXPECT_TRUE(t.async_after[0].empty());
  EXPECT_EQ(t.async_after[1], std::vector<size_t>{0});
  ASSERT_EQ(t.stages.size(), 2u);
  EXPECT_EQ(t.stages[0].processor, &out);
  EXPECT_FALSE(t.stages[0].sequential);
  EXPECT_EQ(t.stages[1].processor, &writer);
  EXPECT_TRUE(t.stages[1].sequential);

  // Products: one per distinct key, ports bound to their index, producers and consumers known.
  ASSERT_EQ(t.products.size(), 5u);  // n, e, m, l, u
  for (const char* tag : {"n", "e", "m", "l", "u"})
    EXPECT_NE(t.find(ProductKey{typeid(int), tag}), Topology::npos) << tag;
  EXPECT_EQ(t.find(ProductKey{typeid(int), "nope"}), Topology::npos);
  EXPECT_EQ(t.find(ProductKey{typeid(double), "n"}), Topology::npos);
  const size_t m = t.find(ProductKey{typeid(int), "m"});
  EXPECT_EQ(mid.out_.index(), m);
  EXPECT_EQ(late.in_.index(), m);
  EXPECT_EQ(writer.in_.index(), m);
  EXPECT_EQ(t.products[m].producer, &mid);
  EXPECT_EQ(t.products[m].output, &mid.out_);
  EXPECT_EQ(t.products[m].factory, 0);  // mid is the first lazy factory
  EXPECT_EQ(t.products[m].consumers, (std::vector<const Component*>{&late, &writer}));
  const size_t l = t.find(ProductKey{typeid(int), "l"});
  EXPECT_EQ(t.products[l].producer, &late);
  EXPECT_EQ(t.products[l].factory, -1);
  EXPECT_TRUE(t.products[unused.out_.index()].consumers.empty());

  // Building again gives the same plan; the parameters were all read.
  Topology t2 = app.build_topology();
  EXPECT_EQ(t2.describe(), t.describe());
  EXPECT_TRUE(app.unused_parameters().empty());
}

TEST(Topology, DescribePrintsSettingsEventPathAndProducts) {
  Application app;
  app.set_parameter("nthreads", "2");
  app.set_parameter("in_flight", "6");
  app.set_parameter("nevents", "10");
  app.set_parameter("error_policy", "skip");
  app.set_parameter("writer.label", "y");
  app.add<Numbers>("source");
  app.add<Remote>("late", "m", "l");
  app.add<Step>("mid", "e", "m");
  app.add<Remote>("early", "n", "e");
  app.add<Reader>("writer", "l", Processor::Mode::Sequential);
  std::string d = app.build_topology().describe();
  EXPECT_NE(d.find("nthreads=2 in_flight=6 nevents=10"), std::string::npos) << d;
  EXPECT_NE(d.find("error_policy=skip"), std::string::npos) << d;
  EXPECT_NE(d.find("1. source         source ["), std::string::npos) << d;
  EXPECT_NE(d.find("2. async factory  early ["), std::string::npos) << d;
  EXPECT_NE(d.find("3. async factory  late ["), std::string::npos) << d;
  EXPECT_NE(d.find("(after 'early')"), std::string::npos) << d;
  EXPECT_NE(d.find("4. processor      writer ["), std::string::npos) << d;
  EXPECT_NE(d.find("sequential, in event order: reads int 'l'"), std::string::npos) << d;
  EXPECT_NE(d.find("lazy factories"), std::string::npos) << d;
  EXPECT_NE(d.find("mid ["), std::string::npos) << d;
  EXPECT_NE(d.find("int 'm': made by 'mid', read by 'late'"), std::string::npos) << d;
  EXPECT_NE(d.find("Numbers]"), std::string::npos) << "the component's class is named: " << d;
}

// The default pool depends on the pipeline: without async factories it is large and the runner
// bounds the read-ahead by the group size; an explicit in_flight is taken as it is.
TEST(Topology, DefaultInFlightWithoutAsyncFactories) {
  Application app;
  app.set_parameter("nthreads", "3");
  app.set_parameter("out.label", "x");
  app.add<Numbers>("source");
  app.add<Step>("mid", "n", "m");
  app.add<Reader>("out", "m", Processor::Mode::Sequential);
  Topology t = app.build_topology();
  EXPECT_EQ(t.settings.in_flight, 1536u);  // 512 x nthreads slots: a sequential processor, 3 threads
  EXPECT_TRUE(t.settings.bounded_read_ahead);
  EXPECT_NE(t.describe().find("in_flight=1536 (default: max(4, 8 x K) x nthreads of them in flight)"), std::string::npos)
      << t.describe();

  app.set_parameter("in_flight", "12");
  t = app.build_topology();
  EXPECT_EQ(t.settings.in_flight, 12u);
  EXPECT_FALSE(t.settings.bounded_read_ahead);
}

TEST(Topology, SourcesReadOneAfterTheOtherShareTheirProducts) {
  Application app;
  app.set_parameter("out.label", "x");
  auto& a = app.add<Numbers>("a");
  auto& b = app.add<Numbers>("b");
  app.add<Reader>("out", "n", Processor::Mode::Parallel);
  Topology t = app.build_topology();
  ASSERT_EQ(t.sources.size(), 2u);
  EXPECT_EQ(t.products.size(), 1u);
  EXPECT_EQ(a.out_.index(), b.out_.index());
  EXPECT_EQ(t.products[0].producer, &a);

  app.add<Step>("again", "x", "n");  // a factory may not make a source's product
  std::string w = build_error(app);
  EXPECT_NE(w.find("produced by both 'a' and 'again'"), std::string::npos) << w;
}

TEST(Topology, ConfigurationErrorsNameWhatIsWrong) {
  struct Case {
    std::vector<std::pair<std::string, std::string>> params;
    void (*add)(Application&);
    std::string expect;
  };
  auto basic = [](Application& app) {
    app.add<Numbers>("source");
    app.add<Reader>("out", "n", Processor::Mode::Parallel);
  };
  std::vector<Case> cases = {
      {{{"out.label", "x"}, {"nthreads", "0"}}, +basic, "'nthreads' must be >= 1"},
      {{{"out.label", "x"}, {"in_flight", "0"}}, +basic, "'in_flight' must be >= 1"},
      {{{"out.label", "x"}, {"nthreads", "two"}}, +basic, "parameter 'nthreads': cannot read 'two'"},
      {{{"out.label", "x"}, {"error_policy", "retry"}}, +basic, "expected abort or skip, got 'retry'"},
      {{{"out.label", "x"}, {"log_level", "loud"}}, +basic, "unknown log level 'loud'"},
      {{{"out.label", "x"}, {"out.log_level", "loud"}}, +basic, "parameter 'out.log_level'"},
      {{}, +basic, "missing required parameter 'out.label' (what to call it)"},
      {{{"out.label", "x"}},
       +[](Application& app) { app.add<Reader>("out", "n", Processor::Mode::Parallel); },
       "no event source"},
      {{{"out.label", "x"}},
       +[](Application& app) {
         app.add<Numbers>("source");
         app.add<Reader>("out", "missing", Processor::Mode::Parallel);
       },
       "component 'out' needs int 'missing' but no component produces it"},
      {{{"out.label", "x"}},
       +[](Application& app) {
         app.add<Numbers>("source");
         app.add<Step>("f", "n", "x");
         app.add<Step>("g", "n", "x");
         app.add<Reader>("out", "x", Processor::Mode::Parallel);
       },
       "product int 'x' is produced by both 'f' and 'g'"},
      {{{"out.label", "x"}},
       +[](Application& app) {
         app.add<Numbers>("source");
         app.add<Step>("f", "y", "x");
         app.add<Step>("g", "x", "y");
         app.add<Reader>("out", "x", Processor::Mode::Parallel);
       },
       "depend on each other (cycle)"},
      {{{"out.label", "x"}},
       +[](Application& app) {
         app.add<Numbers>("source");
         app.add<Remote>("r1", "b", "a");
         app.add<Step>("f", "a", "c");
         app.add<Remote>("r2", "c", "b");
         app.add<Reader>("out", "n", Processor::Mode::Parallel);
       },
       "async factories depend on each other in a cycle: 'r1', 'r2'"},
  };
  for (auto& c : cases) {
    Application app;
    for (auto& [k, v] : c.params) app.set_parameter(k, v);
    c.add(app);
    std::string w = build_error(app);
    EXPECT_NE(w.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << w;
    // run() reports the same error: it builds the same topology.
    try {
      app.run();
      ADD_FAILURE() << "run() accepted: " << c.expect;
    } catch (const quiver::Error& e) {
      EXPECT_EQ(std::string(e.what()), w);
    }
  }
}
