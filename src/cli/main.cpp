#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "cli/command.hpp"
#include "quiver/core/error.hpp"

namespace quiver::cli {

static int g_exit_code = 0;
void set_exit_code(int code) { g_exit_code = code; }
int exit_code() { return g_exit_code; }

std::vector<std::pair<int, CommandAdder>>& command_adders() {
  static std::vector<std::pair<int, CommandAdder>> v;
  return v;
}

CommandRegistrar::CommandRegistrar(int order, CommandAdder adder) {
  command_adders().emplace_back(order, std::move(adder));
}

}  // namespace quiver::cli

int main(int argc, char** argv) {
  CLI::App app{"quiver: machine-learning inference for HEP event processing"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "quiver 0.1.0");
  auto& adders = quiver::cli::command_adders();
  std::stable_sort(adders.begin(), adders.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [order, add] : adders) add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const quiver::Error& e) {
    std::fprintf(stderr, "quiver: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quiver: error: %s\n", e.what());
    return 1;
  }
  return quiver::cli::exit_code();
}
