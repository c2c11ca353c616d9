// The keel subcommands. Each returns the process exit code: 0 success, 1 a store error or a failed
// check, 2 a usage error, 3 (verify) chains whole but recovery dropped bytes from the log's end.
// Errors are one line on stderr.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "keel/store.h"

namespace keel::cli {

struct Command {
  CommandSpec spec;
  int (*run)(const ParsedArgs& args);
};

const std::vector<Command>& commands();

int run_demo(const ParsedArgs& args);
int run_query(const ParsedArgs& args);     // query_command.cc
int run_ancestry(const ParsedArgs& args);  // causal_commands.cc
int run_effects(const ParsedArgs& args);   // causal_commands.cc
int run_repair(const ParsedArgs& args);    // repair_command.cc
int run_tail(const ParsedArgs& args);      // query_command.cc
int run_consumers(const ParsedArgs& args); // consumer_commands.cc
int run_retain(const ParsedArgs& args);    // consumer_commands.cc
int run_snapshot(const ParsedArgs& args);  // snapshot_command.cc
int run_export(const ParsedArgs& args);    // artifact_commands.cc
int run_import(const ParsedArgs& args);    // artifact_commands.cc
int run_load(const ParsedArgs& args);      // load_dump_commands.cc
int run_dump(const ParsedArgs& args);      // load_dump_commands.cc
int run_replicate(const ParsedArgs& args); // replicate_command.cc
inline constexpr uint64_t kEffectsLimitDefault = 1000;

// Helpers shared by the commands.
int fail(const std::string& command, const StoreError& error);
int usage_error(const std::string& command, const std::string& message);
// Opens the store at `dir`; on an error prints it, sets exit_code and returns null.
// A directory that is missing or holds no store is a usage error (exit 2) with the way to make one.
std::unique_ptr<Store> open_store(const std::string& command, const std::string& dir, bool writable,
                                  bool create, int& exit_code);
// Prints why opening `dir` failed: exit 2 when it holds no store, else fail()'s 1.
int open_failed(const std::string& command, const std::string& dir, const StoreError& error);
// Option --name as a number up to `max` into `out` (left alone when the option is absent); false
// after printing a usage error (exit_code set) when the value is not such a number.
bool number_option(const ParsedArgs& args, const std::string& command, const std::string& name,
                   uint64_t& out, uint64_t max, int& exit_code);
// An event kind as CATEGORY:TYPE or a 16-bit number; kKindWanted is the usage error for --kind.
std::optional<EventKind> parse_kind(const std::string& text);
extern const char* const kKindWanted;

}  // namespace keel::cli
