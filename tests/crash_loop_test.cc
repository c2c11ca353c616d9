// The SIGKILL crash loop (tools/crash_loop.cc, docs/ARCHITECTURE.md §10) as a short CI run, with
// its negative controls: falsified receipts the oracle must catch, so a passing run is not a
// vacuous one. `make crash-loop` runs the long version. Single-threaded (each case runs the tool as
// a process).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <regex>
#include <string>

#include "test_support.h"

using keel::test::TempDir;

namespace {

using Run = keel::test::CommandRun;

// Runs `keel-crash-loop ARGS` (passed through the shell).
Run crash_loop(const TempDir& scratch, const std::string& args) {
  return keel::test::run_command(scratch, KEEL_CRASH_LOOP, args);
}

using keel::test::contains;

// Sums "<n> durable" over the per-iteration progress lines.
uint64_t durable_receipts_checked(const std::string& out) {
  static const std::regex durable(R"(; (\d+) durable,)");
  uint64_t total = 0;
  for (std::sregex_iterator it(out.begin(), out.end(), durable), end; it != end; ++it) {
    total += std::stoull((*it)[1]);
  }
  return total;
}

}  // namespace

TEST_CASE("SIGKILLed appenders lose no acknowledged receipt and leave no refused append",
          "[crash]") {
  TempDir scratch;
  Run run = crash_loop(scratch, "run --dir " + (scratch / "store") +
                                    " --iterations 15 --max-ms 150 --seed 20240601");
  INFO(run.out);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(contains(run.out, "all 15 iterations passed"));
  size_t iterations = 0;
  for (size_t at = 0; (at = run.out.find("verify ok\n", at)) != std::string::npos; ++at) {
    ++iterations;
  }
  CHECK(iterations == 15);
  // Not vacuous: children were killed with durable receipts outstanding, all of them checked.
  CHECK(durable_receipts_checked(run.out) > 0);
}

TEST_CASE("The crash loop's oracle catches falsified receipts (negative controls)", "[crash]") {
  struct Control {
    const char* mode;
    const char* finding;
    int iterations = 20;  // a run stops at its first finding
  };
  for (Control control :
       {Control{"hash", "holds another event of the same epoch"},
        Control{"epoch", "lost acknowledged "}, Control{"refused", " is stored"},
        // A SIGKILL keeps what was handed to the OS: a Written receipt is required too.
        Control{"written", "lost acknowledged "},
        Control{"keys", "instead of the stored sequence"},
        // Without fence records a cancelled fence's events show (or break the
        // chains their clocks were reused on, which the reopen refuses), or a
        // kill inside a fence keeps part of it: any way the run fails. It needs
        // a kill while a fence is open: under a slow build (ASan) 20 kills may
        // not land one.
        Control{"fences", "was cancelled|reopen failed: Corruption|is split", 100},
        // A reactor without its derived keys reacts twice when a kill lands
        // between a reaction and the cursor's commit.
        Control{"reactor", "was reacted to twice", 100}}) {
    TempDir scratch;
    Run run = crash_loop(scratch, "run --dir " + (scratch / "store") + " --iterations " +
                                      std::to_string(control.iterations) +
                                      " --max-ms 100 --seed 7 --tamper " + control.mode);
    INFO(control.mode << "\n" << run.out << run.err);
    CHECK(run.exit_code == 1);
    CHECK(contains(run.err, "tampered (" + std::string(control.mode) + ")"));
    CHECK(contains(run.err, "FAILED at iteration"));
    bool found = false;
    std::string findings = control.finding;
    for (size_t at = 0, bar; at <= findings.size(); at = bar + 1) {
      bar = std::min(findings.find('|', at), findings.size());
      found |= contains(run.err, findings.substr(at, bar - at));
    }
    CHECK(found);
  }
}

// Sums "<n> dropped" and "<n> zeroed" over the power-loss lines: pages the power losses took.
uint64_t pages_lost(const std::string& out) {
  static const std::regex lost(R"((\d+) dropped, \d+ kept, (\d+) zeroed)");
  uint64_t total = 0;
  for (std::sregex_iterator it(out.begin(), out.end(), lost), end; it != end; ++it) {
    total += std::stoull((*it)[1]) + std::stoull((*it)[2]);
  }
  return total;
}

TEST_CASE("Power losses in the crash loop's workload keep every acknowledged-durable receipt",
          "[crash]") {
  TempDir scratch;
  Run run = crash_loop(scratch, "power --dir /store --iterations 40 --max-ms 60 --seed 20261205");
  INFO(run.out);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(contains(run.out, "all 40 iterations passed"));
  // Not vacuous: durable receipts were checked, and the power losses took unsynced pages.
  CHECK(durable_receipts_checked(run.out) > 0);
  CHECK(pages_lost(run.out) > 0);
}

TEST_CASE("The power-loss loop catches a store that skips fdatasync (negative control)",
          "[crash]") {
  TempDir scratch;
  Run run = crash_loop(
      scratch, "power --dir /store --iterations 40 --max-ms 60 --seed 20261205 --tamper nosync");
  INFO(run.out << run.err);
  CHECK(run.exit_code == 1);
  CHECK(contains(run.err, "tampered (nosync)"));
  CHECK(contains(run.err, "FAILED at iteration"));
}

TEST_CASE("keel-crash-loop explains itself and refuses bad arguments", "[crash]") {
  TempDir scratch;
  Run help = crash_loop(scratch, "--help");
  CHECK(help.exit_code == 0);
  CHECK(contains(help.out, "usage: keel-crash-loop run --dir DIR"));
  CHECK(crash_loop(scratch, "").exit_code == 2);
  CHECK(crash_loop(scratch, "run").exit_code == 2);  // no --dir
  Run bad = crash_loop(scratch, "run --dir " + (scratch / "store") + " --max-ms 2");
  CHECK(bad.exit_code == 2);
  CHECK(contains(bad.err, "bad value for --max-ms"));
  CHECK(crash_loop(scratch, "run --dir " + (scratch / "store") + " --tamper nothing").exit_code ==
        2);
  Run nosync = crash_loop(scratch, "run --dir " + (scratch / "store") + " --tamper nosync");
  CHECK(nosync.exit_code == 2);
  CHECK(contains(nosync.err, "needs power"));
}
