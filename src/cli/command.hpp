// Subcommands of the `quiver` program register themselves here; each part of Quiver contributes
// its commands from its own cmd_<part>.cpp so parts can be added without touching main.cpp.
#pragma once
#include <functional>
#include <vector>

namespace CLI { class App; }

namespace quiver::cli {

// Adds subcommands to `app`. The callbacks set on subcommands run after parsing; a callback
// reports failure by throwing (quiver::Error or std::exception) -> exit code 1 with the message,
// or by calling set_exit_code().
using CommandAdder = std::function<void(CLI::App& app)>;

struct CommandRegistrar {
  CommandRegistrar(int order, CommandAdder adder);
};

void set_exit_code(int code);
int exit_code();

std::vector<std::pair<int, CommandAdder>>& command_adders();

}  // namespace quiver::cli
