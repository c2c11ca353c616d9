// CLI tests: run the keel binary, assert exit codes, output and one-line errors.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "format/event_body.h"
#include "keel/keel.h"
#include "log/log.h"
#include "platform/file_system.h"
#include "test_support.h"

using keel::test::TempDir;
using nlohmann::json;

namespace {

using Run = keel::test::CommandRun;

// Runs `keel ARGS` with `input` on stdin (args are passed through the shell: quote them).
using keel::test::keel_cli;
using keel::test::contains;

size_t lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

// The lines, each ended by a newline.
std::string text_lines(const std::vector<std::string>& lines_in) {
  std::string out;
  for (const std::string& line : lines_in) out += line + "\n";
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
    out.push_back(text.substr(start, end - start));
  }
  return out;
}

// Every line of `text` parsed as JSON (a line that is not JSON fails the test).
std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  for (const std::string& line : split_lines(text)) out.push_back(json::parse(line));
  return out;
}

std::vector<uint64_t> sequences_of(const std::string& json_lines_text) {
  std::vector<uint64_t> out;
  for (const json& event : json_lines(json_lines_text)) out.push_back(event.at("sequence"));
  return out;
}

// `keel append STORE ARGS`; returns the receipt.
json append_one(const TempDir& scratch, const std::string& store, const std::string& args) {
  Run run = keel_cli(scratch, "append " + store + " " + args);
  INFO("append " << args << "\nstderr: " << run.err);
  REQUIRE(run.exit_code == 0);
  REQUIRE(lines(run.out) == 1);
  return json::parse(run.out);
}

std::string id_of(const json& receipt) { return receipt.at("event_id").get<std::string>(); }

}  // namespace

TEST_CASE("keel --help lists every command and each command has --help", "[cli]") {
  TempDir scratch;
  Run overview = keel_cli(scratch, "--help");
  CHECK(overview.exit_code == 0);
  for (const char* command : {"demo", "append", "get", "scan", "entity", "query", "ancestry",
                              "effects", "verify", "stats"}) {
    CHECK(contains(overview.out, command));
    Run help = keel_cli(scratch, std::string(command) + " --help");
    CHECK(help.exit_code == 0);
    CHECK(contains(help.out, std::string("usage: keel ") + command));
  }
  for (const char* command : {"query", "ancestry", "effects", "verify"}) {
    Run help = keel_cli(scratch, std::string(command) + " --help");
    CHECK(contains(help.out, std::string("example: keel ") + command));
  }
  Run query_help = keel_cli(scratch, "query --help");
  for (const char* flag :
       {"--entity ", "--entity-prefix", "--lane", "--clock-from", "--clock-to", "--scope", "--kind",
        "--category", "--correlation", "--from", "--to", "--hlc-from", "--hlc-to", "--order",
        "--after", "--limit", "--all", "--payload", "--format"}) {
    CHECK(contains(query_help.out, flag));
  }
  Run none = keel_cli(scratch, "");
  CHECK(none.exit_code == 2);
  Run unknown = keel_cli(scratch, "frobnicate");
  CHECK(unknown.exit_code == 2);
  CHECK(contains(unknown.err, "unknown command"));
}

TEST_CASE("keel --version prints the library's version and the format it writes", "[cli]") {
  TempDir scratch;
  const std::string expected = std::to_string(KEEL_VERSION_MAJOR) + "." +
                               std::to_string(KEEL_VERSION_MINOR) + "." +
                               std::to_string(KEEL_VERSION_PATCH);
  CHECK(std::string(keel::kVersion) == expected);  // the string and the numbers agree
  Run version = keel_cli(scratch, "--version");
  CHECK(version.exit_code == 0);
  CHECK(version.out ==
        "keel " + expected + " (on-disk format " + std::to_string(keel::kFormatVersion) + ")\n");
}

TEST_CASE("keel stats --json and keel verify --json print one JSON object with the same exit code",
          "[cli]") {
  TempDir scratch;
  const std::string store = scratch / "store";
  REQUIRE(keel_cli(scratch, "append --create " + store + " a '1'").exit_code == 0);
  REQUIRE(keel_cli(scratch, "append " + store + " b '2' --lane 1").exit_code == 0);
  Run stats = keel_cli(scratch, "stats " + store + " --json");
  REQUIRE(stats.exit_code == 0);
  json s = json::parse(stats.out);
  CHECK(s.at("events") == 2);
  CHECK(s.at("entity_streams") == 2);
  CHECK(s.at("sequence_next") == 3);
  CHECK(s.at("sequence_visible") == 2);
  CHECK(s.at("epoch").get<uint64_t>() >= 1);
  CHECK(s.at("recovery_actions").is_array());
  CHECK(lines(stats.out) == 1);

  Run verified = keel_cli(scratch, "verify " + store + " --json");
  REQUIRE(verified.exit_code == 0);
  json v = json::parse(verified.out);
  CHECK(v.at("ok") == true);
  CHECK(v.at("events_checked") == 2);
  CHECK(v.at("problem").is_null());
  Run entity = keel_cli(scratch, "verify " + store + " --entity b --lane 1 --json");
  REQUIRE(entity.exit_code == 0);
  CHECK(json::parse(entity.out).at("events_checked") == 1);

  // The broken case (ok false, exit 1) is in "keel verify and keel ancestry report a cause that
  // names a later event".
}

TEST_CASE("keel demo writes, reopens and verifies a store", "[cli]") {
  TempDir scratch;
  Run demo = keel_cli(scratch, "demo " + (scratch / "store"));
  INFO(demo.err);
  REQUIRE(demo.exit_code == 0);
  CHECK(contains(demo.out, "order:1001"));
  CHECK(contains(demo.out, "caused by"));
  CHECK(contains(demo.out, "verify: ok (8 events"));
  Run again = keel_cli(scratch, "demo " + (scratch / "store"));
  CHECK(again.exit_code == 2);
  CHECK(contains(again.err, "already holds a store"));
}

TEST_CASE("keel append, get, scan, entity, verify and stats work together", "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  Run first =
      keel_cli(scratch, "append --create " + store + " order:1 '{\"total\": 3}' --kind 2:5");
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  CHECK(contains(first.out, "\"sequence\":1"));
  std::string id = first.out.substr(first.out.find("\"event_id\":\"") + 12, 32);
  Run lines_in = keel_cli(scratch, "append " + store + " order:1 --causation " + id,
                          "{\"n\":1}\n\n{\"n\":2}\n");
  INFO(lines_in.err);
  REQUIRE(lines_in.exit_code == 0);
  CHECK(lines(lines_in.out) == 2);
  Run got = keel_cli(scratch, "get " + store + " " + id);
  REQUIRE(got.exit_code == 0);
  CHECK(contains(got.out, "\"payload\":{\"total\":3}"));
  CHECK(contains(got.out, "\"kind\":\"2:5\""));
  Run scanned = keel_cli(scratch, "scan " + store + " --from 2");
  REQUIRE(scanned.exit_code == 0);
  CHECK(lines(scanned.out) == 2);
  CHECK(contains(scanned.out, "\"causation_id\":\"" + id + "\""));
  Run limited = keel_cli(scratch, "scan " + store + " --limit 1");
  CHECK(lines(limited.out) == 1);
  Run entity = keel_cli(scratch, "entity " + store + " order:1 --from-clock 3");
  REQUIRE(entity.exit_code == 0);
  CHECK(lines(entity.out) == 1);
  CHECK(contains(entity.out, "\"clock\":3"));
  Run verified = keel_cli(scratch, "verify " + store);
  CHECK(verified.exit_code == 0);
  CHECK(contains(verified.out, "ok: 3 events"));
  CHECK(contains(verified.err, "verify: 3/3 (100%)"));  // plain progress when not a terminal
  Run stats = keel_cli(scratch, "stats " + store);
  CHECK(stats.exit_code == 0);
  CHECK(contains(stats.out, "events                 3"));
}

TEST_CASE("a JSON text appended from C++ prints as JSON, and keel append stores the text it is given",
          "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  {
    keel::StoreOptions options;
    options.create_if_missing = true;
    auto opened = keel::Store::open(store, options);
    REQUIRE(opened.ok());
    auto& s = **opened;
    keel::AppendOptions with_metadata;
    with_metadata.metadata = R"({"ip":"10.0.0.1"})";
    const keel::EventKind kind = keel::EventKind::make(1, 1);
    REQUIRE(s.append({"order:1", ""}, kind, R"({"b":1,"a":[true,null]})", with_metadata).ok());
    REQUIRE(s.append({"order:1", ""}, kind, "{\"sku\": \"A-17\",\n \"n\": 2}").ok());
    REQUIRE(s.append({"order:1", ""}, kind, "plain text").ok());
    REQUIRE(s.append({"order:1", ""}, kind, std::string("\x00\xff", 2)).ok());
    REQUIRE(s.append({"order:1", ""}, kind, "null").ok());
    REQUIRE(s.append({"order:1", ""}, kind, "\xff\x80\x80").ok());  // not UTF-8 (0xff never is)
    REQUIRE(s.close().ok());
  }
  Run scanned = keel_cli(scratch, "scan " + store);
  INFO(scanned.err);
  REQUIRE(scanned.exit_code == 0);
  std::vector<std::string> rows = split_lines(scanned.out);
  REQUIRE(rows.size() == 6);
  CHECK(contains(rows[0], R"("payload":{"b":1,"a":[true,null]})"));  // keys in the order written
  CHECK(contains(rows[0], R"("metadata":{"ip":"10.0.0.1"})"));
  CHECK(contains(rows[1], R"("payload":{"sku":"A-17","n":2})"));  // JSON, though not compact
  CHECK(contains(rows[1], R"("metadata":null)"));
  CHECK(contains(rows[2], R"("payload_text":"plain text")"));
  CHECK(contains(rows[3], R"("payload_hex":"00ff")"));
  CHECK(contains(rows[4], R"("payload_text":"null")"));  // "payload": null would read as none
  CHECK(contains(rows[5], R"("payload_hex":"ff8080")"));
  for (const json& event : json_lines(scanned.out)) CHECK(event.contains("event_id"));
  Run table = keel_cli(scratch, "query " + store + " --format table --payload");
  REQUIRE(table.exit_code == 0);
  CHECK(contains(table.out, R"({"b":1,"a":[true,null]})"));
  CHECK(contains(table.out, R"("plain text")"));
  CHECK(contains(table.out, "(2 bytes, not text)"));

  // The CLI's own appends store the JSON text as given, without the white space around it.
  Run appended = keel_cli(scratch, "append " + store + " order:2 ' {\"z\": 1, \"a\": 2} '"
                                   " --metadata '[1, 2]'");
  INFO(appended.err);
  REQUIRE(appended.exit_code == 0);
  {
    auto opened = keel::Store::open(store, keel::StoreOptions{});
    REQUIRE(opened.ok());
    auto events = (*opened)->scan_events(7, 7);
    REQUIRE(events.ok());
    REQUIRE(events->size() == 1);
    CHECK(events->front().payload == R"({"z": 1, "a": 2})");
    CHECK(events->front().metadata == std::optional<std::string>("[1, 2]"));
  }
  // JSON the CLI could not print back as written is refused, not changed.
  Run big = keel_cli(scratch, "append " + store + " order:2 '{\"n\": 18446744073709551616}'");
  CHECK(big.exit_code == 2);
  CHECK(contains(big.err, "does not fit 64 bits"));
  CHECK(keel_cli(scratch, "append " + store + " order:2 '{\"n\": 1'").exit_code == 2);
}

TEST_CASE("keel append --key retries idempotently and --expect-clock checks the head", "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  Run first = keel_cli(scratch, "append --create " + store + " order:1 '{\"n\":1}' --key pay-1");
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  Run retry = keel_cli(scratch, "append " + store + " order:1 '{\"n\":1}' --key pay-1");
  CHECK(retry.exit_code == 0);
  CHECK(retry.out == first.out);  // the first receipt, nothing written
  Run conflict = keel_cli(scratch, "append " + store + " order:1 '{\"n\":2}' --key pay-1");
  CHECK(conflict.exit_code != 0);
  CHECK(contains(conflict.err, "IdempotencyConflict"));
  Run stale = keel_cli(scratch, "append " + store + " order:1 '{\"n\":3}' --expect-clock 0");
  CHECK(stale.exit_code != 0);
  CHECK(contains(stale.err, "expected clock 0, actual 1"));
  Run next = keel_cli(scratch, "append " + store + " order:1 '{\"n\":3}' --expect-clock 1");
  INFO(next.err);
  CHECK(next.exit_code == 0);
  CHECK(contains(next.out, "\"sequence\":2"));
  Run lines_with_key = keel_cli(scratch, "append " + store + " order:1 --key k", "{}\n");
  CHECK(lines_with_key.exit_code == 2);
}

TEST_CASE("keel refuses bad input with one line and a non-zero exit", "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  REQUIRE(keel_cli(scratch, "append --create " + store + " a '1'").exit_code == 0);
  struct Case {
    std::string args;
    std::string input;
    int exit_code;
    std::string needle;
  };
  std::vector<Case> cases = {
      {"append " + store + " a '{bad json'", "", 2, "malformed JSON"},
      {"append " + store + " a", "{\"ok\":1}\nnope\n", 2, "stdin line 2: malformed JSON"},
      {"append " + store + " '../x' '1'", "", 1, "InvalidCoordinate"},
      {"append " + store + " a '1' --kind 0:1", "", 1, "category 0"},
      {"append " + store + " a '1' --kind 99:1", "", 2, "--kind"},
      {"append " + store + " a '1' --durability maybe", "", 2, "--durability"},
      {"append " + store + " a '1' --causation xyz", "", 2, "32-digit hex"},
      {"append " + store + " a '1' --bogus", "", 2, "unknown option --bogus"},
      {"append " + store + " a " + std::string(70, '[') + std::string(70, ']'), "", 2, "deeper"},
      {"append " + (scratch / "missing") + " a '1'", "", 2, "holds no keel store"},
      {"scan " + (scratch / "missing"), "", 2, "holds no keel store"},
      {"scan " + store + " --from -1", "", 2, "--from"},
      {"get " + store + " 123", "", 2, "32 hex digits"},
      {"get " + store + " 0123456789abcdef0123456789abcdef", "", 1, "NotFound"},
      {"entity " + store, "", 2, "expected DIR ENTITY"},
      {"scan " + store + " --limit 0", "", 2, "--limit wants a number of at least 1"},
      {"entity " + store + " a --lane 64", "", 1, "lane 64 is not below lanes_max 64"},
      {"entity " + store + " a --from-clock 3 --to-clock 2", "", 2, "--from-clock is above"},
      {"scan " + store + " --from 3 --to 2", "", 2, "--from is above --to"},
      {"append " + store + " a '{\"n\": 18446744073709551616}'", "", 2,
       "the integer 18446744073709551616 does not fit 64 bits"},
      {"append " + store + " a '[-9223372036854775809]'", "", 2, "does not fit 64 bits"},
      {"scan " + store + "/EPOCH", "", 1, "is not a directory"},
  };
  for (const auto& c : cases) {
    Run run = keel_cli(scratch, c.args, c.input);
    INFO(c.args << "\nstderr: " << run.err);
    CHECK(run.exit_code == c.exit_code);
    CHECK(contains(run.err, c.needle));
    CHECK(lines(run.err) == 1);
    CHECK_FALSE(contains(run.err, "[Retryable]"));  // none of these changes by trying again
  }
  // The largest 64-bit integers are kept exactly, and a float stays a float.
  Run big = keel_cli(scratch, "append " + store +
                                  " big '[18446744073709551615, -9223372036854775808, 1.5e300]'");
  INFO(big.err);
  CHECK(big.exit_code == 0);
  Run shown = keel_cli(scratch, "scan " + store);
  CHECK(contains(shown.out, "[18446744073709551615,-9223372036854775808,1.5e+300]"));
}

TEST_CASE("every command on a directory that holds no store fails with exit 2 and changes nothing",
          "[cli]") {
  TempDir scratch;
  const std::string dir = scratch / "photos";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/cat.jpg") << "not a store";
  const auto before = keel::test::snapshot_directory(dir);
  const std::string id = "0123456789abcdef0123456789abcdef";
  for (const std::string& args :
       {"scan " + dir, "get " + dir + " " + id, "entity " + dir + " a", "query " + dir,
        "ancestry " + dir + " " + id, "effects " + dir + " " + id, "verify " + dir, "stats " + dir,
        "tail " + dir, "consumers " + dir, "retain " + dir + " --from 1", "snapshot list " + dir,
        "export " + dir + " " + (scratch / "copy"), "repair " + dir, "append " + dir + " a '1'"}) {
    Run run = keel_cli(scratch, args);
    INFO(args << "\nstderr: " << run.err);
    CHECK(run.exit_code == 2);
    CHECK(contains(run.err, dir + " holds no keel store"));
    CHECK(contains(run.err, "keel append --create"));
    CHECK(lines(run.err) == 1);
    CHECK(run.out.empty());
    CHECK((keel::test::snapshot_directory(dir) == before));
  }
  CHECK_FALSE(std::filesystem::exists(scratch / "copy"));
  Run created = keel_cli(scratch, "append --create " + dir + " a '1'");
  CHECK(created.exit_code == 0);
  CHECK(keel_cli(scratch, "scan " + dir).exit_code == 0);
}

TEST_CASE("keel on a corrupt store fails closed with a one-line error", "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  REQUIRE(keel_cli(scratch, "append --create " + store + " a", "1\n2\n3\n").exit_code == 0);
  keel::test::flip_byte(store + "/EPOCH", 20);
  for (const char* command : {"scan", "verify", "stats"}) {
    Run run = keel_cli(scratch, std::string(command) + " " + store);
    INFO(run.err);
    CHECK(run.exit_code == 1);
    CHECK(contains(run.err, "CorruptSidecar"));
    CHECK(contains(run.err, "[FailClosed]"));
    CHECK(lines(run.err) == 1);
  }
}

// ---- query, ancestry, effects, verify --entity ----

namespace {

// Six events: order:1 has lanes 0 and 1, two scopes and three categories; order:1's first event
// starts a conversation that events 2 and 4 join. Returns the receipts (receipt i is sequence i+1).
std::vector<json> append_query_fixture(const TempDir& scratch, const std::string& store) {
  std::vector<json> r;
  r.push_back(append_one(scratch, store, "--create order:1 '{\"n\":1}' --scope shop --kind 1:1"));
  std::string first = id_of(r[0]);
  r.push_back(append_one(scratch, store,
                         "order:1 '{\"n\":2}' --scope shop --kind 1:2 --correlation " + first +
                             " --causation " + first));
  r.push_back(append_one(scratch, store, "order:2 '{\"n\":3}' --scope shop --kind 1:1"));
  r.push_back(append_one(scratch, store,
                         "order:1 '{\"n\":4}' --scope billing --kind 2:1 --lane 1 --correlation " +
                             first + " --causation " + id_of(r[1])));
  r.push_back(append_one(scratch, store, "user:1 '{\"n\":5}' --kind 2:7"));
  r.push_back(append_one(scratch, store, "order:1 '{\"n\":6}' --scope shop --kind 1:3"));
  return r;
}

std::string hlc_text(const json& receipt) {
  return std::to_string(receipt.at("hlc").at("wall_ms").get<uint64_t>()) + "." +
         std::to_string(receipt.at("hlc").at("logical").get<uint32_t>());
}

}  // namespace

TEST_CASE("keel query selects exactly the events every given flag matches", "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  std::vector<json> r = append_query_fixture(scratch, store);
  std::string first = id_of(r[0]);
  // Events at or before event 3's wall millisecond: what --hlc-to WALL_MS (a whole ms) must give.
  uint64_t wall3 = r[2].at("hlc").at("wall_ms");
  std::vector<uint64_t> through_wall3;
  for (const json& receipt : r) {
    if (receipt.at("hlc").at("wall_ms").get<uint64_t>() <= wall3) {
      through_wall3.push_back(receipt.at("sequence"));
    }
  }
  struct Case {
    std::string flags;
    std::vector<uint64_t> sequences;
  };
  std::vector<Case> cases = {
      {"", {1, 2, 3, 4, 5, 6}},
      {"--entity order:1", {1, 2, 4, 6}},
      {"--entity order:1 --lane 0", {1, 2, 6}},
      {"--entity order:1 --lane 1", {4}},
      {"--entity-prefix order:", {1, 2, 3, 4, 6}},
      {"--entity-prefix order: --lane 0 --clock-from 2", {2, 6}},
      {"--entity order:1 --lane 0 --clock-from 2 --clock-to 2", {2}},
      {"--kind 1:1", {1, 3}},
      {"--kind 4097", {1, 3}},  // 0x1001 = 1:1, the numeric form append takes
      {"--category 2", {4, 5}},
      {"--scope billing", {4}},
      {"--correlation " + first, {1, 2, 4}},
      {"--from 2 --to 4", {2, 3, 4}},
      {"--hlc-from " + hlc_text(r[2]) + " --hlc-to " + hlc_text(r[3]), {3, 4}},
      {"--hlc-to " + std::to_string(wall3), through_wall3},
      {"--order desc", {6, 5, 4, 3, 2, 1}},
      {"--order desc --after 4 --limit 3", {3, 2, 1}},
      {"--after 4", {5, 6}},
      {"--entity-prefix order: --category 1 --scope shop --order desc", {6, 3, 2, 1}},
      {"--correlation " + first + " --lane 0 --from 2", {2}},
      {"--entity nobody", {}},
  };
  for (const auto& c : cases) {
    Run run = keel_cli(scratch, "query " + store + " " + c.flags);
    INFO("query " << c.flags << "\nstderr: " << run.err);
    REQUIRE(run.exit_code == 0);
    CHECK(sequences_of(run.out) == c.sequences);
    CHECK(run.err.empty());
  }
}

TEST_CASE("keel query prints the fields of keel get, with payload only when --payload is given",
          "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  std::vector<json> r = append_query_fixture(scratch, store);
  Run got = keel_cli(scratch, "get " + store + " " + id_of(r[3]));
  REQUIRE(got.exit_code == 0);
  Run with_payload = keel_cli(scratch, "query " + store + " --entity order:1 --lane 1 --payload");
  REQUIRE(with_payload.exit_code == 0);
  CHECK(with_payload.out == got.out);
  json event = json::parse(with_payload.out);
  CHECK(event.at("sequence") == 4);
  CHECK(event.at("entity") == "order:1");
  CHECK(event.at("scope") == "billing");
  CHECK(event.at("kind") == "2:1");
  CHECK(event.at("lane") == 1);
  CHECK(event.at("clock") == 1);
  CHECK(event.at("correlation_id") == id_of(r[0]));
  CHECK(event.at("causation_id") == id_of(r[1]));
  CHECK(event.at("payload") == json{{"n", 4}});
  CHECK(event.at("hlc") == r[3].at("hlc"));
  CHECK(event.at("chained_hash") == r[3].at("chained_hash"));

  Run without = keel_cli(scratch, "query " + store + " --entity order:1 --lane 1");
  REQUIRE(without.exit_code == 0);
  json bare = json::parse(without.out);
  CHECK_FALSE(bare.contains("payload"));
  CHECK_FALSE(bare.contains("metadata"));
  json expected = event;
  expected.erase("payload");
  expected.erase("metadata");
  CHECK(bare == expected);
}

TEST_CASE("keel query --format table prints one aligned row per event under a header", "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  std::vector<json> r = append_query_fixture(scratch, store);
  Run run = keel_cli(scratch, "query " + store + " --entity order:1 --format table --payload");
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  std::vector<std::string> rows = split_lines(run.out);
  REQUIRE(rows.size() == 5);
  CHECK(rows[0].rfind("SEQ", 0) == 0);
  size_t id_column = rows[0].find("EVENT_ID");
  size_t cause_column = rows[0].find("CAUSED_BY");
  size_t payload_column = rows[0].find("PAYLOAD");
  REQUIRE(id_column != std::string::npos);
  REQUIRE(cause_column != std::string::npos);
  REQUIRE(payload_column != std::string::npos);
  const size_t expected_sequences[] = {1, 2, 4, 6};
  for (size_t i = 0; i < 4; ++i) {
    const json& receipt = r[expected_sequences[i] - 1];
    INFO(rows[i + 1]);
    CHECK(rows[i + 1].find(id_of(receipt)) == id_column);
    CHECK(rows[i + 1].find("{\"n\":" + std::to_string(expected_sequences[i]) + "}") ==
          payload_column);
    CHECK(rows[i + 1].find(" order:1 ") != std::string::npos);
    CHECK(rows[i + 1].find(hlc_text(receipt)) != std::string::npos);
  }
  CHECK(rows[2].find(id_of(r[0])) == cause_column);  // event 2 was caused by event 1
  CHECK(rows[1].substr(cause_column, 2) == "- ");    // event 1 has no cause
  CHECK(contains(rows[3], "billing"));
  Run empty = keel_cli(scratch, "query " + store + " --entity nobody --format table");
  CHECK(empty.out == "(no events)\n");
}

TEST_CASE("keel query hints the next --after on stderr when a page is cut and --all reads them all",
          "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  append_query_fixture(scratch, store);
  Run page1 = keel_cli(scratch, "query " + store + " --limit 2");
  REQUIRE(page1.exit_code == 0);
  CHECK(sequences_of(page1.out) == std::vector<uint64_t>{1, 2});
  CHECK(page1.err == "more: --after 2\n");
  Run page2 = keel_cli(scratch, "query " + store + " --limit 2 --after 2");
  CHECK(sequences_of(page2.out) == std::vector<uint64_t>{3, 4});
  CHECK(page2.err == "more: --after 4\n");
  Run page3 = keel_cli(scratch, "query " + store + " --limit 2 --after 4");
  CHECK(sequences_of(page3.out) == std::vector<uint64_t>{5, 6});
  CHECK(page3.err.empty());  // the answer ended exactly here
  Run down = keel_cli(scratch, "query " + store + " --limit 4 --order desc");
  CHECK(sequences_of(down.out) == std::vector<uint64_t>{6, 5, 4, 3});
  CHECK(down.err == "more: --after 3\n");

  Run all = keel_cli(scratch, "query " + store + " --limit 2 --all");
  REQUIRE(all.exit_code == 0);
  CHECK(sequences_of(all.out) == std::vector<uint64_t>{1, 2, 3, 4, 5, 6});
  CHECK(all.err.empty());
  Run all_down =
      keel_cli(scratch, "query " + store + " --entity-prefix order: --limit 1 --all --order desc");
  CHECK(sequences_of(all_down.out) == std::vector<uint64_t>{6, 4, 3, 2, 1});
  Run all_table = keel_cli(scratch, "query " + store + " --limit 2 --all --format table");
  CHECK(lines(all_table.out) == 7);  // one header over every page's rows
  CHECK(all_table.err.empty());
}

namespace {

// A causal tree on entity "flow": root (caused by an id outside the store) -> a, b; a -> c -> d;
// and an unrelated root on "other". Sequences: root 1, a 2, b 3, other 4, c 5, d 6.
struct CausalTree {
  std::string external = "00000000000000000000000000c0ffee";
  std::string root, a, b, other, c, d;
};

CausalTree append_causal_tree(const TempDir& scratch, const std::string& store) {
  CausalTree t;
  t.root =
      id_of(append_one(scratch, store, "--create flow 1 --kind 1:1 --causation " + t.external));
  t.a = id_of(append_one(scratch, store, "flow 2 --kind 1:2 --causation " + t.root));
  t.b = id_of(append_one(scratch, store, "flow 3 --kind 1:3 --causation " + t.root));
  t.other = id_of(append_one(scratch, store, "other 4"));
  t.c = id_of(append_one(scratch, store, "flow 5 --kind 1:4 --causation " + t.a));
  t.d = id_of(append_one(scratch, store, "flow 6 --kind 1:5 --lane 2 --causation " + t.c));
  return t;
}

}  // namespace

TEST_CASE("keel ancestry prints the chain from the event up to its root and its external cause",
          "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  CausalTree t = append_causal_tree(scratch, store);
  Run run = keel_cli(scratch, "ancestry " + store + " " + t.d);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.out ==
        text_lines({
            "#6 flow/2@1 kind 1:5 id " + t.d,
            "  caused by #5 flow/0@4 kind 1:4 id " + t.c,
            "    caused by #2 flow/0@2 kind 1:2 id " + t.a,
            "      caused by #1 flow/0@1 kind 1:1 id " + t.root,
            "        caused by external cause " + t.external + " (not an event of this store)",
        }));

  Run as_json = keel_cli(scratch, "ancestry " + store + " " + t.d + " --json");
  REQUIRE(as_json.exit_code == 0);
  json j = json::parse(as_json.out);
  std::vector<std::string> chain;
  for (const json& ref : j.at("chain")) chain.push_back(ref.at("event_id"));
  CHECK(chain == std::vector<std::string>{t.d, t.c, t.a, t.root});
  CHECK(j.at("external_cause") == t.external);
  CHECK(j.at("chain")[0].at("sequence") == 6);
  CHECK(j.at("chain")[0].at("entity") == "flow");
  CHECK(j.at("chain")[0].at("lane") == 2);
  CHECK(j.at("chain")[0].at("clock") == 1);
  CHECK(j.at("chain")[0].at("kind") == "1:5");

  Run lone = keel_cli(scratch, "ancestry " + store + " " + t.other);
  CHECK(lone.out == "#4 other/0@1 kind 1:1 id " + t.other + "\n");
  Run lone_json = keel_cli(scratch, "ancestry " + store + " " + t.other + " --json");
  CHECK(json::parse(lone_json.out).at("external_cause").is_null());
}

TEST_CASE("keel effects prints each effect indented under its cause and says when it truncated",
          "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  CausalTree t = append_causal_tree(scratch, store);
  std::string root_line = "#1 flow/0@1 kind 1:1 id " + t.root;
  Run run = keel_cli(scratch, "effects " + store + " " + t.root);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.out == text_lines({
                       root_line,
                       "  #2 flow/0@2 kind 1:2 id " + t.a,
                       "    #5 flow/0@4 kind 1:4 id " + t.c,
                       "      #6 flow/2@1 kind 1:5 id " + t.d,
                       "  #3 flow/0@3 kind 1:3 id " + t.b,
                   }));

  // Breadth-first: the first two effects are the root's children, then the cut is reported.
  Run limited = keel_cli(scratch, "effects " + store + " " + t.root + " --limit 2");
  REQUIRE(limited.exit_code == 0);
  CHECK(limited.out == text_lines({
                           root_line,
                           "  #2 flow/0@2 kind 1:2 id " + t.a,
                           "  #3 flow/0@3 kind 1:3 id " + t.b,
                           "(truncated at 2)",
                       }));
  Run exact = keel_cli(scratch, "effects " + store + " " + t.root + " --limit 4");
  CHECK_FALSE(contains(exact.out, "truncated"));

  Run as_json = keel_cli(scratch, "effects " + store + " " + t.root + " --json");
  REQUIRE(as_json.exit_code == 0);
  json j = json::parse(as_json.out);
  CHECK(j.at("event").at("event_id") == t.root);
  CHECK(j.at("truncated") == false);
  std::vector<std::pair<std::string, std::string>> effect_cause;
  for (const json& e : j.at("effects")) {
    effect_cause.emplace_back(e.at("event_id"), e.at("causation_id"));
  }
  CHECK(effect_cause == std::vector<std::pair<std::string, std::string>>{
                            {t.a, t.root}, {t.b, t.root}, {t.c, t.a}, {t.d, t.c}});
  Run limited_json = keel_cli(scratch, "effects " + store + " " + t.root + " --limit 3 --json");
  CHECK(json::parse(limited_json.out).at("truncated") == true);

  Run leaf = keel_cli(scratch, "effects " + store + " " + t.d);
  CHECK(leaf.out == "#6 flow/2@1 kind 1:5 id " + t.d + "\n");
}

namespace {

// Writes one event through the log layer, bypassing the store's chaining and cause checks.
void append_raw_event(const std::string& dir, const keel::format::EventBody& body) {
  keel::log::LogOptions options;
  auto log = keel::log::Log::open(keel::platform::posix_file_system(), dir, options);
  KEEL_REQUIRE_OK(log);
  KEEL_REQUIRE_OK((*log)->writer()->append_event(body, nullptr));
  KEEL_REQUIRE_OK((*log)->close());
}

}  // namespace

TEST_CASE("keel verify --entity checks only that entity's chains, on one lane or every lane",
          "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  append_one(scratch, store, "--create a 1");
  append_one(scratch, store, "a 2 --lane 1");
  append_one(scratch, store, "b 3");
  append_one(scratch, store, "a 4");
  Run every_lane = keel_cli(scratch, "verify " + store + " --entity a");
  INFO(every_lane.err);
  CHECK(every_lane.exit_code == 0);
  CHECK(contains(every_lane.out, "ok: 3 events of a (every lane)"));
  Run one_lane = keel_cli(scratch, "verify " + store + " --entity a --lane 1");
  CHECK(one_lane.exit_code == 0);
  CHECK(contains(one_lane.out, "ok: 1 events of a (lane 1)"));
  Run nobody = keel_cli(scratch, "verify " + store + " --entity nobody");
  CHECK(nobody.exit_code == 0);
  CHECK(contains(nobody.out, "ok: 0 events of nobody"));
  CHECK(contains(nobody.err, "nobody has no visible events"));

  // Break a's lane-0 chain (clock 3 with a prev hash that is not event 4's chained hash): a fails,
  // b and a's lane 1 stay ok.
  keel::format::EventBody broken;
  broken.event_id = keel::EventId{UINT64_MAX - 1, 1};
  broken.entity = "a";
  broken.kind = keel::EventKind::make(1, 1).value;
  broken.entity_clock = 3;
  broken.correlation_id = broken.event_id;
  broken.payload = "raw";
  broken.prev_hash = keel::Hash128{1, 2};
  append_raw_event(store, broken);
  Run a_broken = keel_cli(scratch, "verify " + store + " --entity a");
  CHECK(a_broken.exit_code == 1);
  CHECK(contains(a_broken.err, "BROKEN at sequence 5"));
  CHECK(contains(a_broken.err, "prev hash of a lane 0 clock 3"));
  CHECK(lines(a_broken.err) == 1);
  CHECK(keel_cli(scratch, "verify " + store + " --entity a --lane 1").exit_code == 0);
  CHECK(keel_cli(scratch, "verify " + store + " --entity b").exit_code == 0);
  CHECK(keel_cli(scratch, "verify " + store).exit_code == 1);
}

TEST_CASE("keel verify and keel ancestry report a cause that names a later event", "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  append_one(scratch, store, "--create seed 1");
  // Sequence 2 names sequence 3 as its cause: only a damaged store holds such a forward link.
  keel::EventId later{UINT64_MAX - 1, 7};
  keel::format::EventBody effect;
  effect.event_id = keel::EventId{UINT64_MAX - 2, 7};
  effect.entity = "c";
  effect.kind = keel::EventKind::make(1, 1).value;
  effect.entity_clock = 1;
  effect.correlation_id = effect.event_id;
  effect.causation_id = later;
  effect.payload = "raw";
  append_raw_event(store, effect);
  keel::format::EventBody cause = effect;
  cause.event_id = later;
  cause.entity = "d";
  cause.correlation_id = later;
  cause.causation_id.reset();
  append_raw_event(store, cause);

  Run whole = keel_cli(scratch, "verify " + store);
  CHECK(whole.exit_code == 1);
  CHECK(contains(whole.err, "BROKEN at sequence 2"));
  CHECK(contains(whole.err, "is the later sequence 3"));
  Run scoped = keel_cli(scratch, "verify " + store + " --entity c");
  CHECK(scoped.exit_code == 1);
  CHECK(contains(scoped.err, "is the later sequence 3"));
  for (const std::string& args :
       {"verify " + store + " --json", "verify " + store + " --entity c --json"}) {
    Run as_json = keel_cli(scratch, args);
    INFO(args);
    CHECK(as_json.exit_code == 1);
    json report = json::parse(as_json.out);
    CHECK(report.at("ok") == false);
    CHECK(report.at("first_bad_sequence") == 2);
    CHECK(contains(report.at("problem").get<std::string>(), "is the later sequence 3"));
  }
  CHECK(keel_cli(scratch, "verify " + store + " --entity d").exit_code == 0);
  Run ancestry = keel_cli(scratch, "ancestry " + store + " " + effect.event_id.to_hex());
  CHECK(ancestry.exit_code == 1);
  CHECK(contains(ancestry.err, "Corruption"));
  CHECK(lines(ancestry.err) == 1);
}

TEST_CASE("keel query, ancestry, effects and verify refuse bad input with one line and exit 2",
          "[cli]") {
  TempDir scratch;
  std::string store = scratch / "store";
  std::string id = id_of(append_one(scratch, store, "--create a 1"));
  struct Case {
    std::string args;
    int exit_code;
    std::string needle;
  };
  std::vector<Case> cases = {
      {"query " + store + " --bogus", 2, "unknown option --bogus"},
      {"query " + store + " --entity a --entity-prefix a", 2, "exclude each other"},
      {"query " + store + " --clock-from 2", 2, "need --entity or --entity-prefix"},
      {"query " + store + " --entity a --clock-from 3 --clock-to 2", 2, "--clock-from is above"},
      {"query " + store + " --from 5 --to 2", 2, "--from is above --to"},
      {"query " + store + " --hlc-from 10.5 --hlc-to 10.4", 2, "--hlc-from is above"},
      {"query " + store + " --hlc-from 10.x", 2, "--hlc-from wants WALL_MS"},
      {"query " + store + " --hlc-to .5", 2, "--hlc-to wants WALL_MS"},
      {"query " + store + " --kind 1:99999", 2, "--kind wants"},
      {"query " + store + " --category 16", 2, "--category"},
      {"query " + store + " --kind 1:1 --category 2", 2, "disagrees"},
      {"query " + store + " --correlation abc", 2, "32-digit hex"},
      {"query " + store + " --limit 0", 2, "--limit"},
      {"query " + store + " --limit 1000001", 2, "--limit"},
      {"query " + store + " --lane x", 2, "--lane wants a number"},
      {"query " + store + " --after -1", 2, "--after"},
      {"query " + store + " --order sideways", 2, "--order wants asc or desc"},
      {"query " + store + " --format xml", 2, "--format wants json or table"},
      {"query " + store + " --limit", 2, "needs a value"},
      {"query " + store + " extra", 2, "expected DIR"},
      {"query " + store + " --lane 64", 1, "InvalidArgument"},  // the store's lanes_max
      {"query " + (scratch / "missing"), 2, "holds no keel store"},
      {"ancestry " + store + " xyz", 2, "32 hex digits"},
      {"ancestry " + store, 2, "expected DIR EVENT_ID"},
      {"ancestry " + store + " 0123456789abcdef0123456789abcdef", 1, "NotFound"},
      {"effects " + store + " " + id + " --limit 0", 2, "--limit"},
      {"effects " + store + " " + id + " --depth 2", 2, "unknown option --depth"},
      {"effects " + store + " 0123456789abcdef0123456789abcdef", 1, "NotFound"},
      {"verify " + store + " --lane 1", 2, "--lane needs --entity"},
      {"verify " + store + " --entity a --lane -1", 2, "--lane"},
      {"verify " + store + " --entity ../x", 1, "InvalidCoordinate"},
  };
  for (const auto& c : cases) {
    Run run = keel_cli(scratch, c.args);
    INFO(c.args << "\nstderr: " << run.err);
    CHECK(run.exit_code == c.exit_code);
    CHECK(contains(run.err, c.needle));
    CHECK(lines(run.err) == 1);
    CHECK(run.out.empty());
  }
}
