// build_topology(): from components and parameters to the plan of a run, without running anything.
#include "quiver/flow/topology.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <typeinfo>

#include "flow/internal.hpp"
#include "quiver/flow/application.hpp"

namespace quiver::flow {

size_t ProductKeyHash::operator()(const ProductKey& k) const noexcept {
  return k.type.hash_code() * 31u ^ std::hash<std::string>()(k.tag);
}

size_t Topology::find(const ProductKey& key) const {
  auto it = index.find(key);
  return it == index.end() ? npos : it->second;
}

namespace {

int default_threads() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

Topology::Settings read_settings(const Application& app) {
  Topology::Settings s;
  s.threads = app.get_parameter<int>("nthreads", default_threads());
  if (s.threads < 1) throw Error(ErrorCode::InvalidArgument, "parameter 'nthreads' must be >= 1");
  // Unset: decided once the async factories are known (build_topology).
  s.bounded_read_ahead = !app.parameter("in_flight");
  int64_t inflight = app.get_parameter<int64_t>("in_flight", 4 * static_cast<int64_t>(s.threads));
  if (inflight < 1) throw Error(ErrorCode::InvalidArgument, "parameter 'in_flight' must be >= 1");
  s.in_flight = static_cast<size_t>(inflight);
  s.max_events = app.get_parameter<uint64_t>("nevents", 0);
  s.nskip = app.get_parameter<uint64_t>("nskip", 0);
  s.ordered = app.get_parameter<bool>("ordered", true);
  std::string policy = app.get_parameter<std::string>("error_policy", "abort");
  if (policy != "abort" && policy != "skip")
    throw Error(ErrorCode::InvalidArgument, "parameter 'error_policy': expected abort or skip, got '" + policy + "'");
  s.error_policy = policy == "abort" ? ErrorPolicy::Abort : ErrorPolicy::Skip;
  s.ticker_s = app.get_parameter<double>("ticker", 0.0);
  s.log_level = parse_log_level("log_level", app.get_parameter<std::string>("log_level", "info"));
  return s;
}

// Async factory i needs async factory j when one of its inputs is j's product, directly or through
// the inputs of the lazy factories in between. Returns the order (dependencies first) and, per
// entry of that order, the positions of the entries it needs.
void order_async_factories(Topology& t) {
  const size_t n = t.asyncs.size();
  std::map<const Component*, size_t> async_of;
  for (size_t i = 0; i < n; ++i) async_of[t.asyncs[i]] = i;
  std::vector<std::set<size_t>> deps(n);
  for (size_t i = 0; i < n; ++i) {
    std::vector<size_t> stack;
    std::set<size_t> seen;
    for (auto* in : t.asyncs[i]->inputs()) stack.push_back(in->index());
    while (!stack.empty()) {
      size_t p = stack.back();
      stack.pop_back();
      if (!seen.insert(p).second) continue;
      auto ai = async_of.find(t.products[p].producer);
      if (ai != async_of.end()) deps[i].insert(ai->second);
      if (t.products[p].factory >= 0)
        for (auto* in : t.factories[t.products[p].factory]->inputs()) stack.push_back(in->index());
    }
  }
  std::vector<size_t> order;
  std::vector<size_t> position(n, 0);
  std::vector<bool> placed(n, false);
  while (order.size() < n) {
    bool progress = false;
    for (size_t i = 0; i < n; ++i) {
      if (placed[i]) continue;
      bool ready = true;
      for (size_t d : deps[i]) ready = ready && placed[d];
      if (ready) {
        placed[i] = true;
        position[i] = order.size();
        order.push_back(i);
        progress = true;
      }
    }
    if (!progress) {
      std::string names;
      for (size_t i = 0; i < n; ++i)
        if (!placed[i]) names += (names.empty() ? "'" : ", '") + t.asyncs[i]->name() + "'";
      throw Error(ErrorCode::InvalidArgument, "async factories depend on each other in a cycle: " + names);
    }
  }
  std::vector<AsyncFactory*> asyncs;
  std::vector<std::vector<size_t>> after;
  for (size_t i : order) {
    asyncs.push_back(t.asyncs[i]);
    std::vector<size_t> a;
    for (size_t d : deps[i]) a.push_back(position[d]);
    std::sort(a.begin(), a.end());
    after.push_back(std::move(a));
  }
  t.asyncs = std::move(asyncs);
  t.async_after = std::move(after);
}

void check_lazy_cycles(const Topology& t) {
  std::vector<int> state(t.factories.size(), 0);  // 0 unseen, 1 on the path, 2 done
  std::function<void(size_t)> dfs = [&](size_t f) {
    state[f] = 1;
    for (auto* in : t.factories[f]->inputs()) {
      int64_t p = t.products[in->index()].factory;
      if (p < 0) continue;
      if (state[p] == 1)
        throw Error(ErrorCode::InvalidArgument, "factories '" + t.factories[f]->name() + "' and '" +
                                                    t.factories[p]->name() + "' depend on each other (cycle)");
      if (state[p] == 0) dfs(static_cast<size_t>(p));
    }
    state[f] = 2;
  };
  for (size_t i = 0; i < t.factories.size(); ++i)
    if (state[i] == 0) dfs(i);
}

}  // namespace

Topology Application::build_topology() {
  Topology t;
  t.settings = read_settings(*this);

  // ---- components: parameters, log levels, roles
  for (auto& c : components_) {
    c->app_ = this;
    for (auto* p : c->params_) {
      std::string key = c->name() + "." + p->name();
      auto v = parameter(key);
      mark_used(key);
      if (v) p->set(key, *v);
      else if (p->required())
        throw Error(ErrorCode::InvalidArgument,
                    "missing required parameter '" + key + "' (" + p->help() + ")", ErrorWhere{.node = c->name()});
    }
    std::string lk = c->name() + ".log_level";
    auto lv = parameter(lk);
    mark_used(lk);
    c->level_ = lv ? parse_log_level(lk, *lv) : t.settings.log_level;
    Topology::Node node{c.get(), Topology::Role::Source, c->level_};
    if (auto* s = dynamic_cast<Source*>(c.get())) {
      t.sources.push_back(s);
    } else if (auto* f = dynamic_cast<Factory*>(c.get())) {
      node.role = Topology::Role::Factory;
      t.factories.push_back(f);
    } else if (auto* a = dynamic_cast<AsyncFactory*>(c.get())) {
      node.role = Topology::Role::AsyncFactory;
      t.asyncs.push_back(a);
    } else if (auto* p = dynamic_cast<Processor*>(c.get())) {
      node.role = Topology::Role::Processor;
      t.stages.push_back({p, p->mode() == Processor::Mode::Sequential});
    } else {
      throw Error(ErrorCode::InvalidArgument, "component '" + c->name() + "' has an unknown kind");
    }
    t.components.push_back(node);
  }
  if (t.sources.empty()) throw Error(ErrorCode::InvalidArgument, "no event source: add a Source component");

  // ---- products: one producer each (sources read one after the other may share theirs)
  auto add_product = [&](OutputBase* o, Component* c, int64_t factory, bool may_share) {
    size_t existing = t.find(o->key());
    if (existing != Topology::npos) {
      const Topology::Product& p = t.products[existing];
      if (may_share && p.factory < 0 && dynamic_cast<const Source*>(p.producer)) {
        o->index_ = existing;
        return;
      }
      throw Error(ErrorCode::InvalidArgument, "product " + product_name(o->key()) + " is produced by both '" +
                                                  p.producer->name() + "' and '" + c->name() + "'");
    }
    size_t idx = t.products.size();
    t.products.push_back({o->key(), c, o, factory, {}});
    t.index.emplace(o->key(), idx);
    o->index_ = idx;
  };
  for (auto* s : t.sources)
    for (auto* o : s->outputs_) add_product(o, s, -1, true);
  for (size_t i = 0; i < t.factories.size(); ++i)
    for (auto* o : t.factories[i]->outputs_) add_product(o, t.factories[i], static_cast<int64_t>(i), false);
  for (auto* a : t.asyncs)
    for (auto* o : a->outputs_) add_product(o, a, -1, false);
  for (auto& c : components_)
    for (auto* in : c->inputs_) {
      size_t idx = t.find(in->key());
      if (idx == Topology::npos)
        throw Error(ErrorCode::InvalidArgument,
                    "component '" + c->name() + "' needs " + product_name(in->key()) + " but no component produces it",
                    ErrorWhere{.node = c->name()});
      in->index_ = idx;
      auto& users = t.products[idx].consumers;
      if (std::find(users.begin(), users.end(), c.get()) == users.end()) users.push_back(c.get());
    }

  // The default pool: events of synchronous pipelines run in groups of up to 64, and two groups per
  // thread in flight keep the source ahead of the workers (the runner bounds the read-ahead); eight
  // where events park at a sequential stage (several threads), or a thread whose groups wait there
  // runs out of slots and goes idle. Async factories' events come back one at a time, so there
  // every slot is usable and 4 per thread stay.
  if (t.settings.bounded_read_ahead) {
    const bool parks = t.settings.threads > 1 &&
                       std::any_of(t.stages.begin(), t.stages.end(), [](const auto& st) { return st.sequential; });
    if (t.asyncs.empty())
      t.settings.in_flight = (parks ? Topology::Settings::kAutoSlotsPerThreadSequential
                                    : Topology::Settings::kAutoSlotsPerThread) *
                             static_cast<size_t>(t.settings.threads);
    else
      t.settings.bounded_read_ahead = false;
  }

  check_lazy_cycles(t);
  order_async_factories(t);
  return t;
}

// ---------------------------------------------------------------- describe
namespace {
const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::Trace: return "trace";
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
    case LogLevel::Off: return "off";
  }
  return "?";
}

std::string label(const Component* c) { return c->name() + " [" + demangle(typeid(*c).name()) + "]"; }

std::string product_list(const std::vector<size_t>& idx, const Topology& t) {
  std::string s;
  for (size_t i : idx) s += (s.empty() ? "" : ", ") + product_name(t.products[i].key);
  return s.empty() ? "nothing" : s;
}
template <class Ports>
std::vector<size_t> indices(const Ports& ports) {
  std::vector<size_t> v;
  for (auto* p : ports) v.push_back(p->index());
  return v;
}
}  // namespace

std::string Topology::describe() const {
  std::ostringstream os;
  const Settings& s = settings;
  os << "settings: nthreads=" << s.threads << " in_flight=" << s.in_flight
     << (s.bounded_read_ahead ? " (default: max(4, " +
                                    std::to_string(s.in_flight / (Settings::kMaxGroup * static_cast<size_t>(s.threads))) +
                                    " x K) x nthreads of them in flight)"
                              : "")
     << " nevents=" << s.max_events
     << (s.max_events ? "" : " (until the sources end)") << " nskip=" << s.nskip
     << " ordered=" << (s.ordered ? "true" : "false")
     << " error_policy=" << (s.error_policy == ErrorPolicy::Abort ? "abort" : "skip") << " ticker=" << s.ticker_s
     << " log_level=" << level_name(s.log_level) << "\n";

  os << "event path (every event, in this order):\n";
  int step = 1;
  for (auto* src : sources)
    os << "  " << step++ << ". source         " << label(src) << " -> " << product_list(indices(src->outputs()), *this)
       << (sources.size() > 1 ? "  (sources are read one after the other)" : "") << "\n";
  for (size_t i = 0; i < asyncs.size(); ++i) {
    os << "  " << step++ << ". async factory  " << label(asyncs[i]) << ": " << product_list(indices(asyncs[i]->inputs()), *this)
       << " -> " << product_list(indices(asyncs[i]->outputs()), *this);
    if (!async_after[i].empty()) {
      os << "  (after";
      for (size_t a : async_after[i]) os << " '" << asyncs[a]->name() << "'";
      os << ")";
    }
    os << "\n";
  }
  for (const Stage& st : stages) {
    os << "  " << step++ << ". processor      " << label(st.processor) << ", "
       << (st.sequential ? (s.ordered ? "sequential, in event order" : "sequential, unordered") : "parallel")
       << ": reads " << product_list(indices(st.processor->inputs()), *this) << "\n";
  }
  if (!factories.empty()) {
    os << "lazy factories (once per event, when an input first asks):\n";
    for (auto* f : factories)
      os << "  " << label(f) << ": " << product_list(indices(f->inputs()), *this) << " -> "
         << product_list(indices(f->outputs()), *this) << "\n";
  }
  os << "products:\n";
  for (const Product& p : products) {
    os << "  " << product_name(p.key) << ": made by '" << p.producer->name() << "'";
    if (p.consumers.empty()) {
      os << ", read by no component";
    } else {
      os << ", read by";
      for (auto* c : p.consumers) os << " '" << c->name() << "'";
    }
    os << "\n";
  }
  bool levels = false;
  for (const Node& n : components) levels = levels || n.level != s.log_level;
  if (levels) {
    os << "log levels:";
    for (const Node& n : components)
      if (n.level != s.log_level) os << " " << n.component->name() << "=" << level_name(n.level);
    os << "\n";
  }
  return os.str();
}

}  // namespace quiver::flow
