// The command table, and append, get, scan, entity, verify, stats.
#include "cli/commands.h"

#include <cstdio>
#include <iostream>

#include "cli/json_codec.h"
#include "cli/progress.h"
#include "keel/keel.h"

namespace keel::cli {

std::unique_ptr<Store> open_store(const std::string& command, const std::string& dir, bool writable,
                                  bool create, int& exit_code) {
  StoreOptions options;
  options.read_only = !writable;
  options.create_if_missing = create;
  auto store = Store::open(dir, options);
  if (!store.ok()) {
    exit_code = open_failed(command, dir, store.error());
    return nullptr;
  }
  return std::move(store).value();
}

int open_failed(const std::string& command, const std::string& dir, const StoreError& error) {
  if (!error.is(ErrorCode::NotFound) || error.field_string("key") != dir) return fail(command, error);
  std::fprintf(stderr,
               "keel %s: %s holds no keel store (%s); `keel append --create %s ENTITY "
               "PAYLOAD_JSON` makes one\n",
               command.c_str(), dir.c_str(), error.message().c_str(), dir.c_str());
  return 2;
}

bool number_option(const ParsedArgs& args, const std::string& command, const std::string& name,
                   uint64_t& out, uint64_t max, int& exit_code) {
  auto text = args.get(name);
  if (!text) return true;
  auto value = parse_u64(*text);
  if (!value || *value > max) {
    exit_code = usage_error(command, "--" + name + " wants a number up to " + std::to_string(max) +
                                         ", got '" + *text + "'");
    return false;
  }
  out = *value;
  return true;
}

const char* const kKindWanted = "--kind wants CATEGORY:TYPE (0-15:0-4095) or a 16-bit number";

std::optional<EventKind> parse_kind(const std::string& text) {
  if (size_t colon = text.find(':'); colon != std::string::npos) {
    auto category = parse_u64(text.substr(0, colon));
    auto type = parse_u64(text.substr(colon + 1));
    if (!category || !type || *category > 15 || *type > 0xfff) return std::nullopt;
    return EventKind::make(static_cast<uint8_t>(*category), static_cast<uint16_t>(*type));
  }
  auto value = parse_u64(text);
  if (!value || *value > 0xffff) return std::nullopt;
  return EventKind{static_cast<uint16_t>(*value)};
}

namespace {

int append_run(const ParsedArgs& args) {
  const std::string cmd = "append";
  int code = 0;
  AppendOptions options;
  std::string scope = args.get("scope").value_or("");
  auto kind = parse_kind(args.get("kind").value_or("1:1"));
  if (!kind) return usage_error(cmd, kKindWanted);
  uint64_t lane = 0;
  if (!number_option(args, cmd, "lane", lane, UINT32_MAX, code)) return code;
  options.lane = static_cast<uint32_t>(lane);
  for (const char* id_option : {"correlation", "causation"}) {
    if (auto text = args.get(id_option)) {
      auto id = EventId::from_hex(*text);
      if (!id) return usage_error(cmd, std::string("--") + id_option + " wants a 32-digit hex event id");
      (std::string(id_option) == "correlation" ? options.correlation_id : options.causation_id) = *id;
    }
  }
  if (auto metadata = args.get("metadata")) {
    std::string error;
    auto bytes = stored_json_text(*metadata, error);
    if (!bytes) return usage_error(cmd, "--metadata: " + error);
    options.metadata = *bytes;
  }
  options.idempotency_key = args.get("key");
  if (options.idempotency_key && args.positional.size() != 3) {
    return usage_error(cmd, "--key names one event: give PAYLOAD_JSON, not stdin lines");
  }
  if (args.get("expect-clock")) {
    uint64_t expected = 0;
    if (!number_option(args, cmd, "expect-clock", expected, UINT64_MAX, code)) return code;
    if (args.positional.size() != 3) {
      return usage_error(cmd, "--expect-clock checks one event: give PAYLOAD_JSON, not stdin lines");
    }
    options.expected_clock = expected;
  }
  std::string durability = args.get("durability").value_or("durable");
  if (durability == "accepted") {
    options.durability = Durability::Accepted;
  } else if (durability == "written") {
    options.durability = Durability::Written;
  } else if (durability != "durable") {
    return usage_error(cmd, "--durability wants accepted, written or durable");
  }
  auto store = open_store(cmd, args.positional[0], true, args.has("create"), code);
  if (!store) return code;
  Coordinate coordinate{args.positional[1], scope};
  auto append_one = [&](const std::string& json_text, const std::string& where) {
    std::string error;
    auto payload = stored_json_text(json_text, error);
    if (!payload) return usage_error(cmd, where + error);
    auto receipt = store->append(coordinate, *kind, *payload, options);
    if (!receipt.ok()) return fail(cmd, receipt.error());
    std::printf("%s\n", receipt_json(*receipt).c_str());
    return 0;
  };
  if (args.positional.size() == 3) return append_one(args.positional[2], "payload: ");
  std::string line;
  for (uint64_t number = 1; std::getline(std::cin, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (int rc = append_one(line, "stdin line " + std::to_string(number) + ": "); rc != 0) return rc;
  }
  auto closed = store->close();
  return closed.ok() ? 0 : fail(cmd, closed.error());
}

int get_run(const ParsedArgs& args) {
  int code = 0;
  auto id = EventId::from_hex(args.positional[1]);
  if (!id) return usage_error("get", "EVENT_ID wants 32 hex digits, got '" + args.positional[1] + "'");
  auto store = open_store("get", args.positional[0], false, false, code);
  if (!store) return code;
  auto event = store->get(*id);
  if (!event.ok()) return fail("get", event.error());
  std::optional<std::string> line;
  Status status = store->scan(event->sequence, event->sequence, [&](const EventView& view) {
    line = event_json(view);
    return false;
  });
  if (!status.ok()) return fail("get", status.error());
  std::printf("%s\n", line.value_or("").c_str());
  return 0;
}

int scan_run(const ParsedArgs& args) {
  int code = 0;
  uint64_t from = 1, to = UINT64_MAX, limit = UINT64_MAX;
  if (!number_option(args, "scan", "from", from, UINT64_MAX, code) ||
      !number_option(args, "scan", "to", to, UINT64_MAX, code) ||
      !number_option(args, "scan", "limit", limit, UINT64_MAX, code)) {
    return code;
  }
  if (limit == 0) return usage_error("scan", "--limit wants a number of at least 1, got '0'");
  if (from > to) return usage_error("scan", "--from is above --to");
  auto store = open_store("scan", args.positional[0], false, false, code);
  if (!store) return code;
  uint64_t printed = 0;
  Status status = store->scan(from, to, [&](const EventView& view) {
    std::printf("%s\n", event_json(view).c_str());
    return ++printed < limit;
  });
  return status.ok() ? 0 : fail("scan", status.error());
}

int entity_run(const ParsedArgs& args) {
  int code = 0;
  uint64_t lane = 0, from = 1, to = UINT64_MAX;
  if (!number_option(args, "entity", "lane", lane, UINT32_MAX, code) ||
      !number_option(args, "entity", "from-clock", from, UINT64_MAX, code) ||
      !number_option(args, "entity", "to-clock", to, UINT64_MAX, code)) {
    return code;
  }
  if (from > to) return usage_error("entity", "--from-clock is above --to-clock");
  auto store = open_store("entity", args.positional[0], false, false, code);
  if (!store) return code;
  Status status = store->entity_stream(args.positional[1], static_cast<uint32_t>(lane), from, to,
                                       [&](const EventView& view) {
                                         std::printf("%s\n", event_json(view).c_str());
                                         return true;
                                       });
  return status.ok() ? 0 : fail("entity", status.error());
}

// What recovery cut (or, read-only, would cut) from the log's end, and the losses on record.
void print_recovery_notes(const VerifyReport& report) {
  for (const std::string& loss : report.data_losses) {
    std::printf("data loss on record: %s\n", loss.c_str());
  }
  for (const std::string& dropped : report.recovery_dropped) {
    std::printf("recovery dropped: %s\n", dropped.c_str());
  }
}

int broken(const VerifyReport& report) {
  std::fprintf(stderr, "keel verify: BROKEN at sequence %llu: %s\n",
               static_cast<unsigned long long>(report.first_bad_sequence), report.problem.c_str());
  return 1;
}

// The report of verify_entity: one entity, on one lane or on every lane.
int verify_entity_run(Store& store, const ParsedArgs& args) {
  int code = 0;
  std::optional<uint32_t> lane;
  if (args.has("lane")) {
    uint64_t number = 0;
    if (!number_option(args, "verify", "lane", number, UINT32_MAX, code)) return code;
    lane = static_cast<uint32_t>(number);
  }
  std::string entity = *args.get("entity");
  auto report = store.verify_entity(entity, lane);
  if (!report.ok()) return fail("verify", report.error());
  if (args.has("json")) {
    std::printf("%s\n", verify_json(*report).c_str());
    return report->ok ? 0 : 1;
  }
  if (!report->ok) return broken(*report);
  std::string where = lane ? "lane " + std::to_string(*lane) : "every lane";
  std::printf("ok: %llu events of %s (%s) verified (checksums, chained hashes, chain, causes)\n",
              static_cast<unsigned long long>(report->events_checked), entity.c_str(),
              where.c_str());
  if (report->events_checked == 0) {
    std::fprintf(stderr, "keel verify: %s has no visible events on %s\n", entity.c_str(),
                 where.c_str());
  }
  return 0;
}

int verify_run(const ParsedArgs& args) {
  int code = 0;
  if (args.has("lane") && !args.has("entity")) {
    return usage_error("verify", "--lane needs --entity");
  }
  auto store = open_store("verify", args.positional[0], false, false, code);
  if (!store) return code;
  if (args.has("entity")) return verify_entity_run(*store, args);
  Progress progress("verify", stderr_is_terminal());
  auto report = store->verify([&](uint64_t done, uint64_t total) { progress.update(done, total); });
  progress.finish();
  if (!report.ok()) return fail("verify", report.error());
  if (args.has("json")) {
    std::printf("%s\n", verify_json(*report).c_str());
    return !report->ok ? 1 : report->recovery_dropped.empty() ? 0 : 3;
  }
  print_recovery_notes(*report);
  if (!report->ok) return broken(*report);
  if (!report->recovery_dropped.empty()) {
    std::fprintf(stderr,
                 "keel verify: %llu events verified, but recovery dropped bytes from the end of "
                 "the log (above)\n",
                 static_cast<unsigned long long>(report->events_checked));
    return 3;
  }
  std::printf(
      "ok: %llu events in %llu frames verified (checksums, chained hashes, chains, causes)\n",
      static_cast<unsigned long long>(report->events_checked),
      static_cast<unsigned long long>(report->frames_checked));
  return 0;
}

int stats_run(const ParsedArgs& args) {
  int code = 0;
  auto store = open_store("stats", args.positional[0], false, false, code);
  if (!store) return code;
  StoreStats s = store->stats();
  if (args.has("json")) {
    std::printf("%s\n", stats_json(s).c_str());
    return 0;
  }
  auto line = [](const char* name, uint64_t value) {
    std::printf("%-22s %llu\n", name, static_cast<unsigned long long>(value));
  };
  line("epoch", s.epoch);
  line("events", s.events);
  line("entity_streams", s.entities);
  line("segments", s.segments);
  line("bytes_on_disk", s.bytes_on_disk);
  line("sequence_next", s.sequence_next);
  line("sequence_durable", s.sequence_durable);
  line("sequence_visible", s.sequence_visible);
  line("recovery_bytes_dropped", s.recovery_bytes_dropped);
  line("recovery_frames_dropped", s.recovery_frames_dropped);
  line("index_bytes", s.index_bytes);
  line("records_replayed", s.records_replayed);
  std::printf("%-22s %s\n", "indexes_from", s.index_source.c_str());
  for (const auto& action : s.recovery_actions) std::printf("recovery: %s\n", action.c_str());
  for (const auto& loss : s.data_losses) std::printf("data loss on record: %s\n", loss.c_str());
  return 0;
}

}  // namespace

int fail(const std::string& command, const StoreError& error) {
  std::fprintf(stderr, "keel %s: %s [%s]\n", command.c_str(), error.to_string().c_str(),
               std::string(error_class_name(error.error_class())).c_str());
  return 1;
}

int usage_error(const std::string& command, const std::string& message) {
  std::fprintf(stderr, "keel %s: %s\n", command.c_str(), message.c_str());
  return 2;
}

// The predicates of keel::Query as flags (keel query, keel tail), followed by `more`.
static std::vector<OptionSpec> with_filter_options(std::vector<OptionSpec> more) {
  std::vector<OptionSpec> options = {
      {"entity", "ENTITY", "exactly this entity"},
      {"entity-prefix", "PREFIX", "every entity starting with PREFIX (not with --entity)"},
      {"lane", "N", "only lane N (default: every lane)"},
      {"clock-from", "N", "first entity clock (needs --entity or --entity-prefix)"},
      {"clock-to", "N", "last entity clock (needs --entity or --entity-prefix)"},
      {"scope", "SCOPE", "exactly this scope"},
      {"kind", "C:T", "event kind as CATEGORY:TYPE or a 16-bit number, as append takes it"},
      {"category", "N", "kind category 0-15"},
      {"correlation", "ID", "conversation ID (32 hex digits): its root and every event in it"},
      {"from", "N", "first global sequence (default 1)"},
      {"to", "N", "last global sequence (default: the newest)"},
      {"hlc-from", "MS[.L]", "first HLC: wall ms, optionally .logical (default .0)"},
      {"hlc-to", "MS[.L]", "last HLC: wall ms, optionally .logical (default: the whole ms)"},
  };
  options.insert(options.end(), more.begin(), more.end());
  return options;
}

const std::vector<Command>& commands() {
  static const std::vector<Command> all = {
      {{"demo", "DIR", "run a small order flow into a new store at DIR, then reopen and check it",
        "Writes orders placed -> paid -> shipped with correlation and causation, prints them,\n"
        "reopens the store and shows everything survived (verify included). DIR must not exist.",
        {}, 1, 1},
       run_demo},
      {{"append", "DIR ENTITY [PAYLOAD_JSON]", "append events; prints one JSON receipt per event",
        "The payload is a JSON text, stored as given (without the white space around it).\n"
        "Without PAYLOAD_JSON, every non-empty line of stdin is one payload (JSON lines),\n"
        "appended in order. Commands that print events show a payload that is a JSON text (from\n"
        "here or from a program) as \"payload\": its value, other UTF-8 text as \"payload_text\"\n"
        "and other bytes as \"payload_hex\"; metadata likewise.\n\n"
        "example: keel append ./orders order:42 '{\"total\":12}' --key pay-42 --expect-clock 3\n"
        "         (a retry with the same --key prints the first receipt and writes nothing)",
        {{"scope", "SCOPE",
          "a label on the event, matched by query --scope (default empty); it does not split "
          "the entity's clock"},
         {"kind", "C:T", "event kind as CATEGORY:TYPE (1-15:0-4095) or a number; default 1:1"},
         {"lane", "N", "lane (default 0)"},
         {"correlation", "ID", "correlation id (32 hex digits); default: the event's own id"},
         {"causation", "ID", "the id of the event that caused this one"},
         {"metadata", "JSON", "metadata, a JSON text stored as given"},
         {"durability", "LEVEL", "accepted, written or durable (default durable)"},
         {"key", "KEY", "idempotency key: a retry with the same key returns the first receipt"},
         {"expect-clock", "N", "append only if the entity's clock on the lane is N (0: no events)"},
         {"create", "", "create the store if DIR does not hold one"}},
        2, 3},
       append_run},
      {{"get", "DIR EVENT_ID", "print one event as JSON", "", {}, 2, 2}, get_run},
      {{"scan", "DIR", "print events in sequence order as JSON lines", "",
        {{"from", "N", "first sequence (default 1)"},
         {"to", "N", "last sequence (default: the newest)"},
         {"limit", "N", "print at most N events"}},
        1, 1},
       scan_run},
      {{"entity", "DIR ENTITY", "print one entity's events on a lane in clock order", "",
        {{"lane", "N", "lane (default 0)"},
         {"from-clock", "N", "first clock (default 1)"},
         {"to-clock", "N", "last clock (default: the newest)"}},
        2, 2},
       entity_run},
      {{"query", "DIR", "print the events matching a query as JSON lines or a table",
        "Every flag given must hold (AND). Events come in global sequence order (see --order),\n"
        "one page of --limit events; when more match, the next --after value is printed on\n"
        "stderr as 'more: --after N' (--all follows every page instead). JSON lines carry the\n"
        "fields of 'keel get'; payload and metadata only with --payload.\n\n"
        "example: keel query ./orders --entity-prefix order: --kind 1:2 --order desc --limit 10\n"
        "         keel query ./orders --correlation 0190f3c1e2a47b00a1b2c3d4e5f60718 --all\n"
        "         keel query ./orders --entity order:42 --lane 0 --clock-from 3 --format table",
        with_filter_options({
         {"order", "asc|desc", "sequence order (default asc)"},
         {"after", "N", "start after sequence N (in --order: above it asc, below it desc)"},
         {"limit", "N", "events per page, 1-" + std::to_string(kQueryLimitMax) + " (default 100)"},
         {"all", "", "follow every page to the end"},
         {"payload", "", "include payload and metadata"},
         {"format", "FMT", "json (JSON lines, the default) or table (aligned columns)"}}),
        1, 1},
       run_query},
      {{"ancestry", "DIR EVENT_ID", "print an event's causes up to its root",
        "One line per event (#SEQUENCE ENTITY/LANE@CLOCK kind C:T id ID), the event first, each\n"
        "cause indented under its effect; 'caused by external cause ID' when the root names a\n"
        "cause that is not an event of this store.\n\n"
        "example: keel ancestry ./orders 0190f3c1e2a47b00a1b2c3d4e5f60718",
        {{"json", "", "one JSON object: {\"chain\": [...], \"external_cause\": ID or null}"}},
        2, 2},
       run_ancestry},
      {{"effects", "DIR EVENT_ID", "print what an event caused, transitively, as a tree",
        "The event first, then each effect indented under its cause (#SEQUENCE ENTITY/LANE@CLOCK\n"
        "kind C:T id ID). Effects are collected breadth-first; '(truncated at N)' follows when\n"
        "more than --limit exist.\n\n"
        "example: keel effects ./orders 0190f3c1e2a47b00a1b2c3d4e5f60718 --limit 50",
        {{"limit", "N",
          "at most N effects, 1-" + std::to_string(kQueryLimitMax) + " (default " +
              std::to_string(kEffectsLimitDefault) + ")"},
         {"json", "",
          "one JSON object: {\"event\", \"effects\" (each with causation_id), \"truncated\"}"}},
        2, 2},
       run_effects},
      {{"verify", "DIR",
        "check every checksum, chained hash, chain and cause; exit 1 on a break",
        "Without --entity the whole store is checked, with a progress bar when stderr is a\n"
        "terminal (plain progress lines otherwise). With --entity only that entity's chains.\n"
        "Also prints what recovery drops from the end of the log (a torn tail after a crash)\n"
        "and exits 3 when it drops anything; prints the data losses accepted on record.\n\n"
        "example: keel verify ./orders --entity order:42 --lane 0",
        {{"entity", "ENTITY", "check only this entity's chains"},
         {"lane", "N", "with --entity: only lane N (default: every lane)"},
         {"json", "",
          "one JSON object: {\"ok\", \"events_checked\", \"frames_checked\", "
          "\"first_bad_sequence\", \"problem\", \"recovery_dropped\", \"data_losses\"}; "
          "the exit code is the same"}},
        1, 1},
       verify_run},
      {{"stats", "DIR", "print counts, watermarks and what recovery repaired", "",
        {{"json", "", "one JSON object with the same fields, and the recovery actions and data "
                      "losses as arrays"}},
        1, 1},
       stats_run},
      {{"repair", "DIR", "open writable: run recovery's repairs and print them",
        "Runs recovery as a writable open does (cuts a torn tail, cancels a fence left open,\n"
        "deletes leftovers) and prints what it did. When durable events are missing (the log\n"
        "ends before a point the store recorded as durable: its last segment removed, emptied\n"
        "or damaged), the open fails with DurableDataLost and no file changes. With\n"
        "--accept-data-loss the log is cut at its recovered end instead, the loss is recorded\n"
        "in the store (keel stats and keel verify show it), and the store goes on in a new\n"
        "epoch: the lost sequence numbers are issued again to new events.\n\n"
        "example: keel repair ./orders --accept-data-loss",
        {{"accept-data-loss", "", "go on without the missing durable events"}},
        1, 1},
       run_repair},
      {{"tail", "DIR", "print the last matching events, then (--follow) new ones as they come",
        "JSON lines, as 'keel query' prints them, in sequence order: the last --lines events that\n"
        "match, or every one after --after; with --follow it keeps printing events as they become\n"
        "visible until interrupted. A store another process writes is followed by refreshing;\n"
        "there an event shows once a later frame vouches it durable, so the newest may wait for\n"
        "the writer's next append.\n"
        "The filter flags are those of 'keel query'. A start below the retention floor fails with\n"
        "CursorExpired.\n\n"
        "example: keel tail ./orders --entity-prefix order: --follow\n"
        "         keel tail ./orders --after 1200 --kind 1:2",
        with_filter_options({
         {"lines", "N", "start with the last N matching events (default 10; 0: only new ones)"},
         {"after", "N", "start after sequence N instead of --lines"},
         {"follow", "", "keep printing new events until interrupted"},
         {"payload", "", "include payload and metadata"}}),
        1, 1},
       run_tail},
      {{"consumers", "DIR", "list the durable consumers, their cursors and how far behind they are",
        "One row per consumer: NAME, CURSOR (the last sequence it committed as applied),\n"
        "LAG_EVENTS (visible sequences after the cursor, matching its filter or not), LAG_MS (HLC\n"
        "wall time from the cursor's event to the newest visible one; '-' when that event is not\n"
        "readable), EPOCH (of its last commit), STATE_BYTES and FILTER (the filter its cursor was\n"
        "committed under, as JSON; '-' when none is recorded, after a reset). A damaged cursor\n"
        "file is reported on its row and the command exits 1.\n\n"
        "example: keel consumers ./orders",
        {},
        1, 1},
       run_consumers},
      {{"retain", "DIR", "remove old segments: from a sequence, or by a size or age policy",
        "Removes sealed segments and moves the first retained sequence forward (never back).\n"
        "--from keeps every event from SEQ on; --max-bytes and --max-age-ms remove the oldest\n"
        "sealed segments while the store is larger or they are older. The segment being written\n"
        "always stays. Never past a durable consumer's committed cursor, nor past the sequence of\n"
        "a published snapshot (replaying from it needs the events after it), unless --force\n"
        "(that consumer then gets CursorExpired and must resync).\n\n"
        "example: keel retain ./orders --from 100000\n"
        "         keel retain ./orders --max-bytes 1073741824 --max-age-ms 604800000",
        {{"from", "SEQ", "keep every event from SEQ on"},
         {"max-bytes", "N", "keep at most N bytes of segments"},
         {"max-age-ms", "MS", "remove segments whose newest event is older than MS"},
         {"force", "", "remove past durable consumers' cursors and published snapshots"}},
        1, 1},
       run_retain},
      {{"snapshot", "ACTION DIR [NAME]", "list, show or prune the named snapshots of a store",
        "A snapshot is a caller's state saved under a name at the last sequence it covers\n"
        "(keel::save_snapshot); only the newest is published (its pointer), older payloads are\n"
        "kept until pruned.\n"
        "  list DIR          one row per name: published SEQUENCE, BYTES, EPOCH, HASH and how\n"
        "                    many payload files it has; a damaged pointer is reported on its row\n"
        "                    and the command exits 1\n"
        "  show DIR NAME     the name's payload files, then loads the published one and checks it\n"
        "                    whole (size and XXH3-128 against the pointer, sequence against the\n"
        "                    log); --output FILE writes its bytes there\n"
        "  prune DIR NAME    keeps the published payload and the newest below it (--keep in all,\n"
        "                    default 2); removes older ones and orphans a crash left (opens the\n"
        "                    store writable)\n\n"
        "example: keel snapshot list ./orders\n"
        "         keel snapshot show ./orders totals --output totals.bin\n"
        "         keel snapshot prune ./orders totals --keep 3",
        {{"output", "FILE", "show: write the published snapshot's bytes to FILE"},
         {"keep", "K", "prune: payloads to keep, the published one included (default 2)"}},
        2, 3},
       run_snapshot},
      {{"replicate", "ACTION DIR", "copy a store's events to other machines through NATS JetStream",
        "  publish STORE   publishes every visible event of STORE, in sequence order, to the\n"
        "                  JetStream stream --stream (created when missing, on subject\n"
        "                  keel.NAME or --subject), one message per event with its stored body.\n"
        "                  A durable consumer 'replicate.NAME' keeps the cursor, committed after\n"
        "                  JetStream acknowledged the messages (keel consumers shows its lag).\n"
        "                  Each message expects the stream's last sequence, so a second\n"
        "                  publisher (another store) is refused by the server. Opens STORE\n"
        "                  writable; in a program that holds the store, use keel::NatsPublisher.\n"
        "  follow DIR      writes the stream's events into the replica store DIR (created when\n"
        "                  missing): the same ids, sequences, clocks, causes and chained hashes\n"
        "                  (keel verify gives the same hashes as the source). Resumes after the\n"
        "                  replica's last event, which it first finds in the stream and compares.\n"
        "                  When the stream's limits removed events the replica still needs, it\n"
        "                  stops with CursorExpired, never skipping them; with --bootstrap it\n"
        "                  then resyncs from that export of the source (imported and checked\n"
        "                  beside DIR, then put in its place; the old replica is kept as\n"
        "                  DIR.expired-SECONDS) and goes on.\n"
        "Both run until interrupted (--once: until caught up), retrying every 100 ms to 5 s\n"
        "while the server is away, with a status line on stderr every 5 s. Visibility fences\n"
        "are carried: a committed one becomes visible in the replica all at once.\n"
        "docs/REPLICATION.md has the message format and the guarantees.\n\n"
        "example: keel replicate publish ./orders --stream orders --nats nats://10.0.0.5:4222\n"
        "         keel replicate follow ./orders-replica --stream orders --nats nats://10.0.0.5:4222",
        {{"stream", "NAME", "the JetStream stream (1-64 of A-Z a-z 0-9 _ -); required"},
         {"nats", "URL", "the NATS server (default nats://127.0.0.1:4222)"},
         {"subject", "SUBJECT", "publish: the subject of a stream it creates (default keel.NAME)"},
         {"once", "", "stop once caught up (publish: cursor at the visible end; follow: the "
                      "stream's last message when it began taken, then none within 500 ms)"},
         {"bootstrap", "ARTIFACT",
          "follow: an export of the source (keel export), imported when DIR holds no store, "
          "and to resync once after CursorExpired"}},
        2, 2},
       run_replicate},
      {{"export", "STORE DEST", "copy a store, while it is in use, into a verified artifact",
        "Copies the store as of its durable sequence into DEST (a missing directory, or an empty\n"
        "one): its segments (the last one up to that sequence), an index image and idempotency\n"
        "keys cut at it, EPOCH, RETAIN and END, each durable consumer's cursor and each\n"
        "snapshot's published payload. The copy is opened to check that it holds exactly those\n"
        "events; then MANIFEST (every file's size and XXH3-128, the epoch and the sequence) is\n"
        "written last. Appends wait only while the cut is taken (reported). Opens STORE\n"
        "writable; in a program that holds the store, call keel::export_store instead.\n"
        "Progress on stderr: a bar on a terminal, a line per 10% otherwise.\n\n"
        "example: keel export ./orders /backup/orders-2026-12-06",
        {},
        2, 2},
       run_export},
      {{"import", "ARTIFACT DEST", "check an exported artifact and make it a store at DEST",
        "Treats ARTIFACT as untrusted: every file must be a regular file that MANIFEST lists and\n"
        "hash to what it says; no other entries, no symbolic links, no names outside the store's\n"
        "own; MANIFEST at most 1 MiB with known fields and versions. The copy is staged beside\n"
        "DEST (a hidden .NAME.import-* directory), opened and verified (it must hold MANIFEST's\n"
        "sequence), then renamed to DEST, which must be missing or an empty directory: after a\n"
        "failure or a crash nothing is at DEST (a crash may leave the staging directory; remove\n"
        "it). Exit 1 with the reason when the artifact is refused.\n\n"
        "example: keel import /backup/orders-2026-12-06 ./orders-restored",
        {},
        2, 2},
       run_import},
      {{"load",
        "STORE FILE|-",
        "append whole events from JSON lines, in atomic batches",
        "Each non-blank line of FILE (- reads stdin) is one JSON object: \"entity\" (required;\n"
        "\"entity_hex\" for one that is not UTF-8), \"scope\" (or \"scope_hex\"), \"lane\",\n"
        "\"kind\" (\"CATEGORY:TYPE\", default \"1:1\"), one of \"payload\"\n"
        "(any JSON value, stored as its compact text), \"payload_text\" (a string, stored as its\n"
        "UTF-8 bytes) and \"payload_hex\" (exact bytes), likewise \"metadata\", \"metadata_text\"\n"
        "or \"metadata_hex\", \"correlation_id\", \"causation_id\", \"idempotency_key\", and\n"
        "\"event_id\": the event's id where the line came from. A cause or correlation naming\n"
        "the event_id of an earlier line is mapped to the id that event gets here; any other is\n"
        "kept (an external cause). Fields keel dump writes for information (sequence, clock,\n"
        "epoch, hlc, prev_hash, chained_hash) are ignored; any other field is an error.\n"
        "Lines are appended in batches of --batch events, each all or nothing: a bad line, or an\n"
        "event the store refuses, stops the load with its line number, and nothing of its batch\n"
        "is written (the batches before it are). Prints a summary on stderr, and the receipts\n"
        "(one JSON line per event) with --receipts. Progress on stderr for a FILE.\n\n"
        "example: keel dump ./orders | keel load ./orders-copy - --create",
        {{"create", "", "create the store if STORE does not hold one"},
         {"batch", "N", "events per atomic batch, 1 to 10000 (default 1000)"},
         {"durability", "LEVEL", "durable (default: each batch is fdatasync'd) or written"},
         {"receipts", "", "print each event's receipt as a JSON line"}},
        2,
        2},
       run_load},
      {{"dump",
        "STORE",
        "print every visible event as a JSON line keel load reads back",
        "Writes the events in sequence order, one JSON object per line, with the fields keel\n"
        "load reads: a payload or metadata as \"payload\" (its JSON value) when it is that\n"
        "value's compact text, else as \"payload_text\" (other UTF-8 text) or \"payload_hex\",\n"
        "so load stores the same bytes back. Loading the output into an empty store gives the\n"
        "same entities, scopes, lanes, kinds, clocks, payloads, metadata and causal links, with\n"
        "new ids, sequences and HLCs. Idempotency keys are not part of a read event, so they are\n"
        "not dumped.\n\n"
        "example: keel dump ./orders --from 1000 > orders.jsonl",
        {{"from", "SEQ", "first sequence (default 1)"}, {"to", "SEQ", "last sequence"}},
        1,
        1},
       run_dump},
  };
  return all;
}

}  // namespace keel::cli
