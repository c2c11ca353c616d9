#include "cli/args.h"

#include <cerrno>
#include <cstdlib>

namespace keel::cli {

std::optional<std::string> ParsedArgs::get(const std::string& name) const {
  auto it = options.find(name);
  if (it == options.end()) return std::nullopt;
  return it->second;
}

std::optional<ParsedArgs> parse_args(const CommandSpec& spec, int argc, char** argv, int first,
                                     std::string& error) {
  ParsedArgs parsed;
  bool options_done = false;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (options_done || arg.size() < 2 || arg.rfind("--", 0) != 0) {
      if (arg == "-h") {
        parsed.help = true;
        continue;
      }
      parsed.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_done = true;
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name == "help") {
      parsed.help = true;
      continue;
    }
    const OptionSpec* option = nullptr;
    for (const auto& o : spec.options) {
      if (o.name == name) option = &o;
    }
    if (option == nullptr) {
      error = "unknown option --" + name + " (see keel " + spec.name + " --help)";
      return std::nullopt;
    }
    if (option->value_name.empty()) {
      if (inline_value) {
        error = "--" + name + " takes no value";
        return std::nullopt;
      }
      parsed.options[name] = "";
    } else if (inline_value) {
      parsed.options[name] = *inline_value;
    } else if (i + 1 < argc) {
      parsed.options[name] = argv[++i];
    } else {
      error = "--" + name + " needs a value " + option->value_name;
      return std::nullopt;
    }
  }
  if (parsed.help) return parsed;
  if (parsed.positional.size() < spec.positional_min || parsed.positional.size() > spec.positional_max) {
    error = "expected " + spec.positionals + ", got " + std::to_string(parsed.positional.size()) +
            " argument(s) (see keel " + spec.name + " --help)";
    return std::nullopt;
  }
  return parsed;
}

std::string command_help(const CommandSpec& spec) {
  std::string text = "usage: keel " + spec.name + " [options] " + spec.positionals + "\n\n" +
                     spec.summary + "\n";
  if (!spec.details.empty()) text += "\n" + spec.details + "\n";
  if (!spec.options.empty()) {
    text += "\noptions:\n";
    for (const auto& o : spec.options) {
      std::string left = "  --" + o.name + (o.value_name.empty() ? "" : " " + o.value_name);
      if (left.size() < 26) left.resize(26, ' ');
      text += left + " " + o.help + "\n";
    }
  }
  text += "  --help                   show this help\n";
  return text;
}

std::optional<uint64_t> parse_u64(const std::string& text) {
  if (text.empty() || text[0] == '-' || text[0] == '+' || text[0] == ' ') return std::nullopt;
  errno = 0;
  char* end = nullptr;
  bool hex = text.rfind("0x", 0) == 0 || text.rfind("0X", 0) == 0;
  unsigned long long value = std::strtoull(text.c_str(), &end, hex ? 16 : 10);
  if (errno != 0 || end == text.c_str() || *end != '\0' || (hex && text.size() == 2)) {
    return std::nullopt;
  }
  return static_cast<uint64_t>(value);
}

}  // namespace keel::cli
