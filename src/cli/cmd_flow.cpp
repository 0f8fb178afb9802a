// `quiver run CONFIG.toml [-Pkey=value ...] [--benchmark | --show-topology | --list-parameters]`: the
// event-processing framework.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "cli/command.hpp"
#include "quiver/core/error.hpp"
#include "quiver/flow/application.hpp"

namespace {

struct RunArgs {
  std::string config;
  std::vector<std::string> params;
  std::vector<std::string> plugins;
  bool benchmark = false;
  std::vector<int> threads;
  std::string rates_file = "quiver_rates.dat";
  bool list_params = false;
  bool show_topology = false;
};

void print_parameters(quiver::flow::Application& app) {
  std::printf("%-40s %-20s %s\n", "parameter", "value", "description");
  for (auto& c : app.components())
    for (auto* p : c->parameters())
      std::printf("%-40s %-20s %s\n", (c->name() + "." + p->name()).c_str(),
                  p->required() && p->value_string().empty() ? "<required>" : p->value_string().c_str(), p->help().c_str());
}

void run_command(const RunArgs& a) {
  using namespace quiver::flow;
  Application app;
  for (auto& p : a.params) app.set_parameter_assignment(p);
  if (!a.config.empty()) app.load_config(a.config);
  if (!app.parameter("ticker")) app.set_parameter("ticker", "10");
  for (auto& p : a.plugins) app.load_plugin(p);
  app.load_plugins();
  if (a.list_params) {
    print_parameters(app);
    return;
  }
  if (a.show_topology) {
    std::fputs(app.build_topology().describe().c_str(), stdout);
    return;
  }
  app.install_signal_handlers();
  if (a.benchmark) {
    std::vector<int> threads = a.threads;
    if (threads.empty()) {
      int n = app.get_parameter<int>("nthreads", static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
      for (int t = 1; t <= n; ++t) threads.push_back(t);
    }
    app.set_parameter("ticker", "0");
    auto rows = app.benchmark(threads);
    Application::remove_signal_handlers();
    std::printf("%8s %12s %10s %14s %10s\n", "threads", "events", "seconds", "events/s", "speedup");
    std::ofstream rates(a.rates_file);
    rates << "# threads events seconds rate_hz\n";
    for (auto& r : rows) {
      std::printf("%8d %12llu %10.3f %14.1f %10.2f\n", r.threads, static_cast<unsigned long long>(r.events), r.seconds,
                  r.rate, rows.front().rate > 0 ? r.rate / rows.front().rate : 0.0);
      rates << r.threads << " " << r.events << " " << r.seconds << " " << r.rate << "\n";
    }
    std::printf("rates written to %s\n", a.rates_file.c_str());
    return;
  }
  RunSummary s = app.run();
  Application::remove_signal_handlers();
  for (auto& k : app.unused_parameters())
    std::fprintf(stderr, "quiver: warning: parameter '%s' was set but no component uses it\n", k.c_str());
  std::fprintf(stderr, "quiver run: %llu events processed, %llu failed, %.3f s, %.1f events/s, %d threads%s\n",
               static_cast<unsigned long long>(s.processed), static_cast<unsigned long long>(s.failed), s.seconds,
               s.rate(), s.threads, s.interrupted ? " (interrupted: stopped and flushed)" : "");
  for (auto& f : s.failures) std::fprintf(stderr, "  failed: %s\n", f.message.c_str());
  if (s.fatal) throw *s.fatal;
  if (s.failed) quiver::cli::set_exit_code(2);
  if (s.interrupted) quiver::cli::set_exit_code(130);
}

quiver::cli::CommandRegistrar reg(60, [](CLI::App& app) {
  auto a = std::make_shared<RunArgs>();
  auto* cmd = app.add_subcommand("run", "run the event-processing framework on a TOML configuration");
  cmd->add_option("config", a->config, "TOML configuration file (plugins, components' parameters)");
  cmd->add_option("-P", a->params, "parameter assignment -Pkey=value (repeatable; overrides the file)")
      ->allow_extra_args(false);
  cmd->add_option("--plugin", a->plugins, "load a plugin (name searched in QUIVER_PLUGIN_PATH, or a path)")
      ->allow_extra_args(false);
  cmd->add_flag("--benchmark", a->benchmark, "sweep thread counts, print a table and write a rates file");
  cmd->add_option("--threads", a->threads, "benchmark: thread counts (default 1..nthreads)")->delimiter(',');
  cmd->add_option("--rates", a->rates_file, "benchmark: rates file");
  cmd->add_flag("--list-parameters", a->list_params, "print every component parameter and exit");
  cmd->add_flag("--show-topology", a->show_topology,
                "print the plan of the run (settings, event path, products) and exit without running");
  cmd->callback([a] { run_command(*a); });
});

}  // namespace
