// The consumer commands of the CLI: keel tail (last events, --after, --follow beside a writer in
// another process), keel consumers (cursor and lag), keel retain (--from, a policy, held back by a
// consumer, --force, usage errors).
#include <catch2/catch.hpp>
#include <string>
#include <thread>

#include "keel/keel.h"
#include "test_support.h"

namespace keel {
namespace {

using test::TempDir;
using Run = test::CommandRun;

using test::keel_cli;
using test::contains;

// The "sequence" of every JSON line, in order.
std::vector<uint64_t> sequences_of(const std::string& out) {
  std::vector<uint64_t> found;
  const std::string key = "\"sequence\":";
  for (size_t at = out.find(key); at != std::string::npos; at = out.find(key, at + 1)) {
    found.push_back(std::stoull(out.substr(at + key.size())));
  }
  return found;
}

StoreOptions writable(size_t segment_size = 4096) {
  StoreOptions options;
  options.create_if_missing = true;
  options.segment_size = segment_size;
  return options;
}

void append_n(Store& store, int n, const std::string& prefix) {
  for (int i = 0; i < n; ++i) {
    KEEL_REQUIRE_OK(store.append({prefix + std::to_string(i % 4), "s"}, EventKind::make(1, 1),
                                 std::string(100, 'x')));
  }
}

TEST_CASE("keel tail prints the last matching events, or those after --after, in order",
          "[cli][consumer]") {
  TempDir scratch;
  const std::string dir = scratch / "store";
  {
    auto store = Store::open(dir, writable());
    KEEL_REQUIRE_OK(store);
    append_n(**store, 20, "order:");
    append_n(**store, 20, "user:");
    KEEL_REQUIRE_OK((*store)->close());
  }
  Run last = keel_cli(scratch, "tail " + dir + " --lines 3 --entity-prefix order:");
  REQUIRE(last.exit_code == 0);
  CHECK(sequences_of(last.out) == std::vector<uint64_t>{18, 19, 20});
  Run after = keel_cli(scratch, "tail " + dir + " --after 37");
  REQUIRE(after.exit_code == 0);
  CHECK(sequences_of(after.out) == std::vector<uint64_t>{38, 39, 40});
  Run none = keel_cli(scratch, "tail " + dir + " --lines 0");
  REQUIRE(none.exit_code == 0);
  CHECK(none.out.empty());
  Run bad = keel_cli(scratch, "tail " + dir + " --lines x");
  CHECK(bad.exit_code == 2);
  CHECK(contains(bad.err, "keel tail: --lines"));
}

TEST_CASE("keel tail --follow prints what a writer in another process appends", "[cli][consumer]") {
  TempDir scratch;
  const std::string dir = scratch / "store";
  auto store = Store::open(dir, writable());
  KEEL_REQUIRE_OK(store);
  append_n(**store, 5, "order:");
  Run follow;
  std::thread follower([&] {
    follow = test::run_command(
        scratch, "timeout", "3 " + std::string(KEEL_CLI) + " tail " + dir + " --lines 2 --follow");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  append_n(**store, 5, "order:");  // durable, so the reader beside the writer may show them
  follower.join();
  CHECK(follow.exit_code == 124);  // stopped by timeout, not by an error
  // A reader beside a live writer shows its durable prefix, the newest group included (the
  // writer's SYNCED point vouches for it; segments/FORMAT.md 8.10): the last two at start, then
  // every later one, no gap, none twice, the last one too although no frame follows it.
  std::vector<uint64_t> seen = sequences_of(follow.out);
  CHECK(seen == std::vector<uint64_t>{4, 5, 6, 7, 8, 9, 10});
}

TEST_CASE("keel consumers shows each durable consumer's cursor and lag", "[cli][consumer]") {
  TempDir scratch;
  const std::string dir = scratch / "store";
  {
    auto store = Store::open(dir, writable());
    KEEL_REQUIRE_OK(store);
    Run empty = keel_cli(scratch, "consumers " + dir);
    CHECK(empty.exit_code == 0);
    CHECK(contains(empty.out, "(no durable consumers)"));
    append_n(**store, 30, "order:");
    auto consumer = DurableConsumer::open(**store, "billing", Query{});
    KEEL_REQUIRE_OK(consumer);
    KEEL_REQUIRE_OK((*consumer)->next(std::chrono::milliseconds(1000)));
    KEEL_REQUIRE_OK((*consumer)->commit(12, "state"));
    Query orders;
    orders.entity_prefix = "order:";
    orders.lane = 0;
    KEEL_REQUIRE_OK(DurableConsumer::open(**store, "orders", orders));
  }
  Run listed = keel_cli(scratch, "consumers " + dir);
  REQUIRE(listed.exit_code == 0);
  CHECK(contains(listed.out, "LAG_EVENTS"));
  CHECK(contains(listed.out, "billing"));
  CHECK(contains(listed.out, " 12 "));  // cursor
  CHECK(contains(listed.out, " 18 "));  // 30 - 12 events behind
  CHECK(contains(listed.out, "FILTER"));
  CHECK(contains(listed.out, " {}\n"));  // billing reads every event
  CHECK(contains(listed.out, R"( {"entity_prefix":"order:","lane":0})"));
}

TEST_CASE(
    "keel retain moves the floor, is held back by a consumer unless --force, and refuses "
    "bad usage",
    "[cli][retention]") {
  TempDir scratch;
  const std::string dir = scratch / "store";
  {
    auto store = Store::open(dir, writable());
    KEEL_REQUIRE_OK(store);
    append_n(**store, 300, "order:");
    auto consumer = DurableConsumer::open(**store, "slow", Query{});
    KEEL_REQUIRE_OK(consumer);
    KEEL_REQUIRE_OK((*consumer)->next(std::chrono::milliseconds(1000)));
    KEEL_REQUIRE_OK((*consumer)->commit(50));
  }
  Run held = keel_cli(scratch, "retain " + dir + " --from 200");
  REQUIRE(held.exit_code == 0);
  CHECK(contains(held.out, "held back from 200 by consumer slow at cursor 50"));
  Run forced = keel_cli(scratch, "retain " + dir + " --from 200 --force");
  REQUIRE(forced.exit_code == 0);
  CHECK(contains(forced.out, "first retained sequence"));
  auto store = Store::open(dir, writable());
  KEEL_REQUIRE_OK(store);
  const uint64_t first = (*store)->stats().first_retained_sequence;
  CHECK(first > 51);
  CHECK(first <= 200);
  KEEL_REQUIRE_OK((*store)->close());
  Run by_size = keel_cli(scratch, "retain " + dir + " --max-bytes 8192 --force");
  REQUIRE(by_size.exit_code == 0);
  Run neither = keel_cli(scratch, "retain " + dir);
  CHECK(neither.exit_code == 2);
  Run both = keel_cli(scratch, "retain " + dir + " --from 3 --max-bytes 10");
  CHECK(both.exit_code == 2);
  Run zero = keel_cli(scratch, "retain " + dir + " --from 0");
  CHECK(zero.exit_code == 2);
  Run expired = keel_cli(scratch, "tail " + dir + " --after 10");
  CHECK(expired.exit_code == 1);
  CHECK(contains(expired.err, "CursorExpired"));
}

}  // namespace
}  // namespace keel
