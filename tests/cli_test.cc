// CLI tests: run the keel binary, assert exit codes, output and one-line errors.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>

#include "test_support.h"

using keel::test::TempDir;

namespace {

using Run = keel::test::CommandRun;

// Runs `keel ARGS` with `input` on stdin (args are passed through the shell: quote them).
Run keel_cli(const TempDir& scratch, const std::string& args, const std::string& input = "") {
  return keel::test::run_command(scratch, KEEL_CLI, args, input);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

size_t lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

}  // namespace

TEST_CASE("keel --help lists every command and each command has --help", "[cli]") {
  TempDir scratch;
  Run overview = keel_cli(scratch, "--help");
  CHECK(overview.exit_code == 0);
  for (const char* command : {"demo", "append", "get", "scan", "entity", "verify", "stats"}) {
    CHECK(contains(overview.out, command));
    Run help = keel_cli(scratch, std::string(command) + " --help");
    CHECK(help.exit_code == 0);
    CHECK(contains(help.out, std::string("usage: keel ") + command));
  }
  Run none = keel_cli(scratch, "");
  CHECK(none.exit_code == 2);
  Run unknown = keel_cli(scratch, "frobnicate");
  CHECK(unknown.exit_code == 2);
  CHECK(contains(unknown.err, "unknown command"));
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
  Run first = keel_cli(scratch, "append --create " + store + " order:1 '{\"total\": 3}' --kind 2:5");
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
      {"append " + (scratch / "missing") + " a '1'", "", 1, "NotFound"},
      {"scan " + (scratch / "missing"), "", 1, "NotFound"},
      {"scan " + store + " --from -1", "", 2, "--from"},
      {"get " + store + " 123", "", 2, "32 hex digits"},
      {"get " + store + " 0123456789abcdef0123456789abcdef", "", 1, "NotFound"},
      {"entity " + store, "", 2, "expected DIR ENTITY"},
  };
  for (const auto& c : cases) {
    Run run = keel_cli(scratch, c.args, c.input);
    INFO(c.args << "\nstderr: " << run.err);
    CHECK(run.exit_code == c.exit_code);
    CHECK(contains(run.err, c.needle));
    CHECK(lines(run.err) == 1);
  }
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
