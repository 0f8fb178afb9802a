// The application: parameters, components, plugins (config.cpp), signals; run() builds the topology
// (topology.cpp) and hands it to the runner (runner.cpp).
#include <atomic>
#include <csignal>

#include "flow/internal.hpp"
#include "quiver/flow/application.hpp"
#include "quiver/flow/topology.hpp"

namespace quiver::flow {

Application::Application() = default;
Application::~Application() {
  components_.clear();  // before the plugins that hold their code
  // Plugins stay loaded: static objects of a plugin may still be referenced (loggers, types).
}

void Application::set_parameter(const std::string& key, const std::string& value) { params_[key] = value; }

void Application::set_parameter_assignment(const std::string& a) {
  auto eq = a.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error(ErrorCode::InvalidArgument, "parameter '" + a + "': expected -Pkey=value");
  set_parameter(a.substr(0, eq), a.substr(eq + 1));
}

std::optional<std::string> Application::parameter(const std::string& key) const {
  auto it = params_.find(key);
  if (it == params_.end()) return std::nullopt;
  return it->second;
}

void Application::mark_used(const std::string& key) const { used_.insert(key); }

std::vector<std::string> Application::unused_parameters() const {
  std::vector<std::string> out;
  for (auto& [k, v] : params_)
    if (!used_.count(k)) out.push_back(k);
  return out;
}

void Application::add_component(std::string name, std::unique_ptr<Component> c) {
  if (name.empty()) throw Error(ErrorCode::InvalidArgument, "component without a name");
  if (find(name)) throw Error(ErrorCode::InvalidArgument, "two components are named '" + name + "'");
  c->name_ = std::move(name);
  c->app_ = this;
  components_.push_back(std::move(c));
}

Component* Application::find(const std::string& name) const {
  for (auto& c : components_)
    if (c->name() == name) return c.get();
  return nullptr;
}

void Application::request_stop() { stop_requested_.store(true); }

namespace {
std::atomic<Application*> g_signal_app{nullptr};
std::atomic<int> g_signal_count{0};
extern "C" void quiver_flow_on_signal(int sig) {
  if (g_signal_count.fetch_add(1) >= 1) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  if (Application* a = g_signal_app.load()) a->request_stop();
}
}  // namespace

void Application::install_signal_handlers() {
  g_signal_app.store(this);
  g_signal_count.store(0);
  std::signal(SIGINT, quiver_flow_on_signal);
  std::signal(SIGTERM, quiver_flow_on_signal);
}
void Application::remove_signal_handlers() {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  g_signal_app.store(nullptr);
}

RunSummary Application::run() {
  Topology t = build_topology();
  return detail::execute(*this, t);
}

std::vector<BenchmarkRow> Application::benchmark(const std::vector<int>& thread_counts) {
  std::vector<BenchmarkRow> rows;
  auto saved = parameter("nthreads");
  for (int t : thread_counts) {
    if (stop_requested_.load()) break;
    set_parameter("nthreads", std::to_string(t));
    RunSummary s = run();
    if (s.fatal) throw *s.fatal;
    rows.push_back({t, s.processed, s.seconds, s.rate()});
  }
  if (saved) set_parameter("nthreads", *saved);
  else params_.erase("nthreads");
  return rows;
}

}  // namespace quiver::flow
