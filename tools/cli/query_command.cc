// keel query: the predicates of keel::Query as flags; events out as JSON lines or an aligned table,
// one page at a time (or every page with --all).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/json_codec.h"
#include "keel/keel.h"

namespace keel::cli {
namespace {

const std::string kCommand = "query";

// "WALL_MS" or "WALL_MS.LOGICAL". Without a logical part an upper bound takes the whole
// millisecond (logical UINT32_MAX), a lower bound starts at its beginning (logical 0).
std::optional<Hlc> parse_hlc(const std::string& text, bool upper_bound) {
  size_t dot = text.find('.');
  auto wall = parse_u64(text.substr(0, dot));
  if (!wall) return std::nullopt;
  Hlc hlc{*wall, upper_bound ? UINT32_MAX : 0};
  if (dot != std::string::npos) {
    auto logical = parse_u64(text.substr(dot + 1));
    if (!logical || *logical > UINT32_MAX) return std::nullopt;
    hlc.logical = static_cast<uint32_t>(*logical);
  }
  return hlc;
}

// The entity, scope, kind and correlation predicates; false after a usage error.
bool parse_predicates(const std::string& command, const ParsedArgs& args, Query& q, int& code) {
  if (args.has("entity") && args.has("entity-prefix")) {
    code = usage_error(command, "--entity and --entity-prefix exclude each other");
    return false;
  }
  q.entity = args.get("entity");
  q.entity_prefix = args.get("entity-prefix");
  q.scope = args.get("scope");
  if (auto text = args.get("kind")) {
    q.kind = parse_kind(*text);
    if (!q.kind) {
      code = usage_error(command, kKindWanted);
      return false;
    }
  }
  if (args.has("category")) {
    uint64_t category = 0;
    if (!number_option(args, command, "category", category, 15, code)) return false;
    q.category = static_cast<uint8_t>(category);
    if (q.kind && q.kind->category() != category) {
      code = usage_error(command, "--category disagrees with the category of --kind");
      return false;
    }
  }
  if (auto text = args.get("correlation")) {
    q.correlation_id = EventId::from_hex(*text);
    if (!q.correlation_id) {
      code =
          usage_error(command, "--correlation wants a 32-digit hex event id, got '" + *text + "'");
      return false;
    }
  }
  return true;
}

// Lane, clock, sequence and HLC ranges; false after a usage error.
bool parse_ranges(const std::string& command, const ParsedArgs& args, Query& q, int& code) {
  if (args.has("lane")) {
    uint64_t lane = 0;
    if (!number_option(args, command, "lane", lane, UINT32_MAX, code)) return false;
    q.lane = static_cast<uint32_t>(lane);
  }
  if (!number_option(args, command, "clock-from", q.clock_from, UINT64_MAX, code) ||
      !number_option(args, command, "clock-to", q.clock_to, UINT64_MAX, code) ||
      !number_option(args, command, "from", q.sequence_from, UINT64_MAX, code) ||
      !number_option(args, command, "to", q.sequence_to, UINT64_MAX, code)) {
    return false;
  }
  if ((args.has("clock-from") || args.has("clock-to")) && !q.entity && !q.entity_prefix) {
    code = usage_error(command, "--clock-from/--clock-to need --entity or --entity-prefix");
    return false;
  }
  for (const char* name : {"hlc-from", "hlc-to"}) {
    auto text = args.get(name);
    if (!text) continue;
    bool upper = std::string(name) == "hlc-to";
    std::optional<Hlc> hlc = parse_hlc(*text, upper);
    if (!hlc) {
      code = usage_error(command, std::string("--") + name +
                                       " wants WALL_MS or WALL_MS.LOGICAL, got '" + *text + "'");
      return false;
    }
    (upper ? q.hlc_to : q.hlc_from) = hlc;
  }
  const char* reversed = nullptr;
  if (q.clock_from > q.clock_to) {
    reversed = "--clock-from is above --clock-to";
  } else if (q.sequence_from > q.sequence_to) {
    reversed = "--from is above --to";
  } else if (q.hlc_from && q.hlc_to && *q.hlc_to < *q.hlc_from) {
    reversed = "--hlc-from is above --hlc-to";
  }
  if (reversed != nullptr) {
    code = usage_error(command, reversed);
    return false;
  }
  return true;
}

// Order, after, limit and payload; false after a usage error.
bool parse_page(const ParsedArgs& args, Query& q, int& code) {
  std::string order = args.get("order").value_or("asc");
  if (order != "asc" && order != "desc") {
    code = usage_error(kCommand, "--order wants asc or desc, got '" + order + "'");
    return false;
  }
  q.order = order == "asc" ? Order::Ascending : Order::Descending;
  if (args.has("after")) {
    uint64_t after = 0;
    if (!number_option(args, kCommand, "after", after, UINT64_MAX, code)) return false;
    q.after = after;
  }
  uint64_t limit = q.limit;
  if (!number_option(args, kCommand, "limit", limit, kQueryLimitMax, code)) return false;
  if (limit == 0) {
    code =
        usage_error(kCommand, "--limit wants a number from 1 to " + std::to_string(kQueryLimitMax));
    return false;
  }
  q.limit = static_cast<size_t>(limit);
  q.with_payload = args.has("payload");
  return true;
}

// An aligned table: columns as wide as their widest cell, numbers right-aligned, the last column
// unpadded.
class Table {
 public:
  Table(std::vector<std::string> header, std::vector<bool> right_aligned)
      : right_aligned_(std::move(right_aligned)) {
    rows_.push_back(std::move(header));
  }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t body_rows() const { return rows_.size() - 1; }

  void print() const {
    std::vector<size_t> width(rows_[0].size(), 0);
    for (const auto& row : rows_) {
      for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
    }
    for (const auto& row : rows_) {
      std::string line;
      for (size_t c = 0; c < row.size(); ++c) {
        bool last = c + 1 == row.size();
        std::string pad(width[c] - row[c].size(), ' ');
        if (right_aligned_[c]) {
          line += pad + row[c];
        } else {
          line += row[c] + (last ? "" : pad);
        }
        if (!last) line += "  ";
      }
      std::printf("%s\n", line.c_str());
    }
  }

 private:
  std::vector<bool> right_aligned_;
  std::vector<std::vector<std::string>> rows_;
};

Table event_table(bool with_payload) {
  std::vector<std::string> header = {"SEQ",   "ENTITY", "LANE",     "CLOCK",    "KIND",
                                     "SCOPE", "HLC",    "EVENT_ID", "CAUSED_BY"};
  std::vector<bool> right = {true, false, true, true, false, false, false, false, false};
  if (with_payload) {
    header.push_back("PAYLOAD");
    right.push_back(false);
  }
  return Table(std::move(header), std::move(right));
}

std::vector<std::string> table_row(const Event& e, bool with_payload) {
  std::vector<std::string> row = {
      std::to_string(e.sequence),
      e.coordinate.entity,
      std::to_string(e.lane),
      std::to_string(e.entity_clock),
      kind_text(e.kind),
      e.coordinate.scope.empty() ? "-" : e.coordinate.scope,
      std::to_string(e.hlc.wall_ms) + "." + std::to_string(e.hlc.logical),
      e.event_id.to_hex(),
      e.causation_id ? e.causation_id->to_hex() : "-"};
  if (with_payload) {
    row.push_back(bytes_cell(e.payload));
  }
  return row;
}

}  // namespace

int run_query(const ParsedArgs& args) {
  int code = 0;
  Query q;
  if (!parse_predicates(kCommand, args, q, code) || !parse_ranges(kCommand, args, q, code) ||
      !parse_page(args, q, code)) {
    return code;
  }
  std::string format = args.get("format").value_or("json");
  if (format != "json" && format != "table") {
    return usage_error(kCommand, "--format wants json or table, got '" + format + "'");
  }
  const bool all = args.has("all");
  auto store = open_store(kCommand, args.positional[0], false, false, code);
  if (!store) return code;
  Table table = event_table(q.with_payload);
  std::optional<uint64_t> more;
  for (;;) {
    auto page = store->query(q);
    if (!page.ok()) return fail(kCommand, page.error());
    for (const Event& e : page->events) {
      if (format == "table") {
        table.add(table_row(e, q.with_payload));
      } else {
        std::printf("%s\n", event_json(e, q.with_payload).c_str());
      }
    }
    if (!page->next_after) break;
    if (!all) {
      more = page->next_after;
      break;
    }
    q.after = page->next_after;
  }
  if (format == "table") {
    if (table.body_rows() == 0) {
      std::printf("(no events)\n");
    } else {
      table.print();
    }
  }
  std::fflush(stdout);
  if (more) std::fprintf(stderr, "more: --after %llu\n", static_cast<unsigned long long>(*more));
  return 0;
}

}  // namespace keel::cli

namespace keel::cli {

// keel tail: the last --lines matching events, then (--follow) every new one as it becomes
// visible, as JSON lines. A read-only store follows the writer by refreshing.
int run_tail(const ParsedArgs& args) {
  const std::string command = "tail";
  int code = 0;
  Query filter;
  if (!parse_predicates(command, args, filter, code) || !parse_ranges(command, args, filter, code)) {
    return code;
  }
  uint64_t lines = 10;
  if (!number_option(args, command, "lines", lines, kQueryLimitMax, code)) return code;
  const bool with_payload = args.has("payload");
  auto store = open_store(command, args.positional[0], false, false, code);
  if (!store) return code;
  // Where to start: after --after, else before the last `lines` matching events.
  uint64_t after = 0;
  if (args.has("after")) {
    if (!number_option(args, command, "after", after, UINT64_MAX, code)) return code;
  } else if (lines == 0) {
    after = store->stats().sequence_visible;
  } else {
    Query last = filter;
    last.order = Order::Descending;
    last.limit = static_cast<size_t>(lines);
    auto page = store->query(last);
    if (!page.ok()) return fail(command, page.error());
    if (page->events.size() == lines) after = page->events.back().sequence - 1;
    // Fewer than `lines` match: from the first retained event.
    if (page->events.size() < lines) after = store->stats().first_retained_sequence - 1;
  }
  SubscriptionOptions options;
  options.with_payload = with_payload;
  auto subscription = Subscription::open(*store, filter, after, options);
  if (!subscription.ok()) return fail(command, subscription.error());
  const bool follow = args.has("follow");
  for (;;) {
    auto batch = (*subscription)->next(std::chrono::milliseconds(follow ? 500 : 0));
    if (!batch.ok()) return fail(command, batch.error());
    for (const Event& e : *batch) std::printf("%s\n", event_json(e, with_payload).c_str());
    std::fflush(stdout);
    if (batch->empty() && !follow) return 0;
  }
}

}  // namespace keel::cli
