// keel consumers (the durable consumers of a store and how far behind they are) and keel retain
// (retention: an explicit floor or a policy).
#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "keel/keel.h"

namespace keel::cli {

int run_consumers(const ParsedArgs& args) {
  const std::string command = "consumers";
  int code = 0;
  auto store = open_store(command, args.positional[0], false, false, code);
  if (!store) return code;
  auto consumers = list_consumers(*store);
  if (!consumers.ok()) return fail(command, consumers.error());
  if (consumers->empty()) {
    std::printf("(no durable consumers)\n");
    return 0;
  }
  const uint64_t visible = store->stats().sequence_visible;
  uint64_t newest_ms = 0;
  if (visible > 0) {
    if (auto newest = store->read(visible); newest.ok()) newest_ms = newest->hlc.wall_ms;
  }
  std::printf("%-24s %12s %12s %12s %8s %12s  %s\n", "NAME", "CURSOR", "LAG_EVENTS", "LAG_MS",
              "EPOCH", "STATE_BYTES", "FILTER");
  int damaged = 0;
  for (const ConsumerInfo& c : *consumers) {
    if (!c.problem.empty()) {
      std::printf("%-24s %s\n", c.name.c_str(), ("damaged: " + c.problem).c_str());
      ++damaged;
      continue;
    }
    std::string lag_events = c.cursor > visible ? "ahead" : std::to_string(visible - c.cursor);
    std::string lag_ms = "-";  // the cursor's event is not readable (removed, hidden or ahead)
    if (c.cursor >= visible) {
      lag_ms = "0";
    } else if (c.cursor == 0) {
      lag_ms = "-";
    } else if (auto at = store->read(c.cursor); at.ok() && newest_ms >= at->hlc.wall_ms) {
      lag_ms = std::to_string(newest_ms - at->hlc.wall_ms);
    }
    std::printf("%-24s %12llu %12s %12s %8llu %12llu  %s\n", c.name.c_str(),
                static_cast<unsigned long long>(c.cursor), lag_events.c_str(), lag_ms.c_str(),
                static_cast<unsigned long long>(c.epoch),
                static_cast<unsigned long long>(c.state_bytes),
                c.filter.empty() ? "-" : c.filter.c_str());
  }
  return damaged == 0 ? 0 : 1;
}

int run_retain(const ParsedArgs& args) {
  const std::string command = "retain";
  int code = 0;
  const bool explicit_floor = args.has("from");
  const bool policy_given = args.has("max-bytes") || args.has("max-age-ms");
  if (explicit_floor == policy_given) {
    return usage_error(command,
                       "give --from SEQ, or a policy (--max-bytes N and/or --max-age-ms MS)");
  }
  uint64_t from = 0, max_bytes = 0, max_age_ms = 0;
  if (!number_option(args, command, "from", from, UINT64_MAX, code) ||
      !number_option(args, command, "max-bytes", max_bytes, UINT64_MAX, code) ||
      !number_option(args, command, "max-age-ms", max_age_ms, INT64_MAX, code)) {
    return code;
  }
  if (explicit_floor && from == 0) return usage_error(command, "--from wants a sequence from 1");
  if (policy_given && max_bytes == 0 && max_age_ms == 0) {
    return usage_error(command, "--max-bytes and --max-age-ms want a number from 1");
  }
  RetentionOptions options;
  options.force = args.has("force");
  auto store = open_store(command, args.positional[0], true, false, code);
  if (!store) return code;
  Result<RetentionResult> result = [&] {
    if (explicit_floor) return retain_from(*store, from, options);
    RetentionPolicy policy;
    policy.max_bytes = max_bytes;
    policy.max_age = std::chrono::milliseconds(static_cast<int64_t>(max_age_ms));
    return apply_retention(*store, policy, options);
  }();
  if (!result.ok()) return fail(command, result.error());
  std::printf("first retained sequence %llu -> %llu: removed %llu segments (%llu bytes)\n",
              static_cast<unsigned long long>(result->first_retained_before),
              static_cast<unsigned long long>(result->first_retained),
              static_cast<unsigned long long>(result->segments_removed),
              static_cast<unsigned long long>(result->bytes_removed));
  if (!result->held_by.empty()) {
    std::printf("held back from %llu by %s (--force removes past it; it must resync)\n",
                static_cast<unsigned long long>(result->wanted), result->held_by.c_str());
  }
  Status closed = store->close();
  if (!closed.ok()) return fail(command, closed.error());
  return 0;
}

}  // namespace keel::cli
