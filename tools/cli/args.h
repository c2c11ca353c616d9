// A small command-line parser for keel's subcommands: `--name value`, `--name=value`, boolean
// `--flag`, positionals, and a generated --help per command.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace keel::cli {

struct OptionSpec {
  std::string name;        // without the leading "--"
  std::string value_name;  // empty for a boolean flag
  std::string help;
};

struct CommandSpec {
  std::string name;
  std::string positionals;  // e.g. "DIR ENTITY [PAYLOAD]"
  std::string summary;
  std::string details;      // more help text, may be empty
  std::vector<OptionSpec> options;
  size_t positional_min = 0;
  size_t positional_max = 0;
};

struct ParsedArgs {
  std::map<std::string, std::string> options;
  std::vector<std::string> positional;
  bool help = false;

  bool has(const std::string& name) const { return options.count(name) > 0; }
  std::optional<std::string> get(const std::string& name) const;
};

// Parses argv[first..argc) against `spec`. On a usage error returns nullopt and sets `error`.
std::optional<ParsedArgs> parse_args(const CommandSpec& spec, int argc, char** argv, int first,
                                     std::string& error);
std::string command_help(const CommandSpec& spec);

// Strict number parsing for option values: nullopt unless the whole text is a number (decimal or
// 0x-prefixed hex) that fits.
std::optional<uint64_t> parse_u64(const std::string& text);

}  // namespace keel::cli
