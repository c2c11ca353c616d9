// keel: the command-line tool. `keel --help` lists the commands; `keel COMMAND --help` explains one.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"
#include "keel/version.h"

namespace {

void print_overview(FILE* out) {
  std::fprintf(out,
               "usage: keel COMMAND [options] ARGS\n\n"
               "keel is an embedded event store; this tool opens a store directory directly.\n"
               "Read commands open the store read-only and work beside a running writer.\n\n"
               "commands:\n");
  for (const auto& command : keel::cli::commands()) {
    std::fprintf(out, "  %-9s %s\n", command.spec.name.c_str(), command.spec.summary.c_str());
  }
  std::fprintf(out,
               "\nRun 'keel COMMAND --help' for a command's options; 'keel --version' for the "
               "version.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_overview(stderr);
    return 2;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_overview(stdout);
    return 0;
  }
  if (name == "--version" || name == "version") {
    std::printf("keel %s (on-disk format %u)\n", keel::kVersion,
                static_cast<unsigned>(keel::kFormatVersion));
    return 0;
  }
  for (const auto& command : keel::cli::commands()) {
    if (command.spec.name != name) continue;
    std::string error;
    auto parsed = keel::cli::parse_args(command.spec, argc, argv, 2, error);
    if (!parsed) return keel::cli::usage_error(name, error);
    if (parsed->help) {
      std::fputs(keel::cli::command_help(command.spec).c_str(), stdout);
      return 0;
    }
    return command.run(*parsed);
  }
  return keel::cli::usage_error(name, "unknown command (see keel --help)");
}
