// The keel subcommands. Each returns the process exit code: 0 success, 1 a store error or a failed
// check, 2 a usage error. Errors are one line on stderr.
#pragma once

#include <string>
#include <vector>

#include "cli/args.h"
#include "keel/result.h"

namespace keel::cli {

struct Command {
  CommandSpec spec;
  int (*run)(const ParsedArgs& args);
};

const std::vector<Command>& commands();

int run_demo(const ParsedArgs& args);

// Helpers shared by the commands.
int fail(const std::string& command, const StoreError& error);
int usage_error(const std::string& command, const std::string& message);

}  // namespace keel::cli
