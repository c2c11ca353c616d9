// keel export / keel import: a store moved between machines as a verified artifact
// (include/keel/artifact.h).
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/progress.h"
#include "keel/keel.h"

namespace keel::cli {

namespace {

std::string mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

}  // namespace

int run_export(const ParsedArgs& args) {
  int code = 0;
  auto store = open_store("export", args.positional[0], true, false, code);
  if (!store) return code;
  Progress progress("export", stderr_is_terminal());
  ExportOptions options;
  options.progress = [&](const TransferProgress& p) { progress.update(p.bytes_done, p.bytes_total); };
  auto report = export_store(*store, args.positional[1], options);
  progress.finish();
  if (!report.ok()) return fail("export", report.error());
  std::printf("exported %s to %s: events 1..%llu of epoch %llu, %llu files, %s (%llu consumers, "
              "%llu snapshots) in %llu ms (checking the copy: %llu ms); appends waited %.1f ms "
              "for the cut\n",
              args.positional[0].c_str(), report->destination.c_str(),
              static_cast<unsigned long long>(report->sequence),
              static_cast<unsigned long long>(report->epoch),
              static_cast<unsigned long long>(report->files), mib(report->bytes).c_str(),
              static_cast<unsigned long long>(report->consumers),
              static_cast<unsigned long long>(report->snapshots),
              static_cast<unsigned long long>(report->elapsed_ms),
              static_cast<unsigned long long>(report->check_ms),
              static_cast<double>(report->writer_blocked_us) / 1000.0);
  return 0;
}

int run_import(const ParsedArgs& args) {
  Progress progress("import", stderr_is_terminal());
  ImportOptions options;
  options.progress = [&](const TransferProgress& p) { progress.update(p.bytes_done, p.bytes_total); };
  auto report = import_store(args.positional[0], args.positional[1], options);
  progress.finish();
  if (!report.ok()) return fail("import", report.error());
  std::printf("imported %s as %s: events 1..%llu of epoch %llu, %llu files, %s, every file "
              "checked against MANIFEST and the log verified, in %llu ms (opening and verifying "
              "the copy: %llu ms)\n",
              args.positional[0].c_str(), report->destination.c_str(),
              static_cast<unsigned long long>(report->sequence),
              static_cast<unsigned long long>(report->epoch),
              static_cast<unsigned long long>(report->files), mib(report->bytes).c_str(),
              static_cast<unsigned long long>(report->elapsed_ms),
              static_cast<unsigned long long>(report->check_ms));
  return 0;
}

}  // namespace keel::cli
