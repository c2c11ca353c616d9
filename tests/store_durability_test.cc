// The durability contract of docs/ARCHITECTURE.md §4 through the public API: group commit, the
// background sync, visibility policies and read-your-writes, per-append timeouts, waits on every
// watermark (global and per lane), poisoning, the same-process reopen after a poison, and the HLC
// counters in frontier(). Stalls and failures come from the fault file system; nothing here asserts
// a duration except where blocking for the whole timeout is itself the property.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "keel/keel.h"
#include "platform/clock.h"
#include "platform/fault_file_system.h"
#include "test_support.h"

using namespace keel;
using namespace std::chrono_literals;

namespace {

const EventKind kKind = EventKind::make(1, 1);

StoreOptions options_on(platform::FaultFileSystem& fs) {
  StoreOptions options;
  options.file_system = &fs;
  options.create_if_missing = true;
  options.id_seed = 11;
  // No background sync unless a test asks for one: it would race the stalls.
  options.sync_interval = std::chrono::hours(1);
  return options;
}

std::unique_ptr<Store> open_store(const StoreOptions& options) {
  auto opened = Store::open("/store", options);
  KEEL_REQUIRE_OK(opened);
  return std::move(opened).value();
}

AppendOptions at(Durability durability, uint32_t lane = 0) {
  AppendOptions options;
  options.durability = durability;
  options.lane = lane;
  return options;
}

uint64_t mark(const Store& store, Watermark kind) { return store.frontier()[kind].global_sequence; }

// Every read API's view of one sequence: how many of them return it.
int reads_that_see(Store& store, uint64_t sequence, const EventId& id, std::string_view entity,
                   uint32_t lane) {
  int seen = 0;
  if (store.read(sequence).ok()) ++seen;
  if (store.get(id).ok()) ++seen;
  auto scanned = store.scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(scanned);
  for (const Event& e : *scanned) seen += e.sequence == sequence;
  auto stream = store.entity_events(entity, lane);
  KEEL_REQUIRE_OK(stream);
  for (const Event& e : *stream) seen += e.sequence == sequence;
  bool in_scan = false;
  KEEL_REQUIRE_OK(store.scan(sequence, sequence, [&](const EventView&) { return in_scan = true; }));
  seen += in_scan;
  return seen;
}

}  // namespace

TEST_CASE("group commit: one fdatasync covers every caller that arrived while the last one ran",
          "[durability][concurrency]") {
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  KEEL_REQUIRE_OK(store->append({"first", ""}, kKind, "x"));
  uint64_t syncs_before = fs.calls(platform::FaultOp::SyncData);
  fs.stall_syncs(true);
  // Catch2 assertions are not thread-safe: threads count failures, the test checks them after.
  std::atomic<int> failures{0};
  std::thread leader([&] { failures += !store->append({"leader", ""}, kKind, "x").ok(); });
  REQUIRE(fs.wait_for_stalled_sync(5s));
  constexpr int kFollowers = 6;
  std::vector<std::thread> followers;
  for (int i = 0; i < kFollowers; ++i) {
    followers.emplace_back([&, i] {
      failures += !store->append({"follower-" + std::to_string(i), ""}, kKind, "x").ok();
    });
  }
  // Every follower is accepted (sequence assigned) while the leader's fdatasync is stalled.
  for (int spins = 0; mark(*store, Watermark::Accepted) < 2 + kFollowers && spins < 5000; ++spins) {
    std::this_thread::sleep_for(1ms);
  }
  REQUIRE(mark(*store, Watermark::Accepted) == 2 + kFollowers);
  CHECK(mark(*store, Watermark::Durable) == 1);
  fs.stall_syncs(false);
  leader.join();
  for (auto& t : followers) t.join();
  CHECK(failures == 0);
  // The leader's group, then one group for all six followers.
  CHECK(fs.calls(platform::FaultOp::SyncData) - syncs_before == 2);
  CHECK(mark(*store, Watermark::Durable) == 2 + kFollowers);
  CHECK(mark(*store, Watermark::Visible) == 2 + kFollowers);
}

TEST_CASE("the next Durable leader gathers the callers the last fdatasync released",
          "[durability][concurrency]") {
  // L leads an fdatasync that stalls while F1..F3 wait for the next one. When it ends, L comes
  // back 2 ms later with a second event. F1, leading the next group, waits for it (the last
  // fdatasync found four Durable callers, and took longer than 2 ms): one fdatasync covers F1..F3
  // and L's second event. Without the gathering F1 syncs at once and L's event needs a third.
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  KEEL_REQUIRE_OK(store->append({"first", ""}, kKind, "x"));
  const uint64_t syncs_before = fs.calls(platform::FaultOp::SyncData);
  fs.stall_syncs(true);
  std::atomic<int> failures{0};
  std::thread leader([&] {
    failures += !store->append({"leader", ""}, kKind, "1").ok();
    std::this_thread::sleep_for(2ms);
    failures += !store->append({"leader", ""}, kKind, "2").ok();
  });
  REQUIRE(fs.wait_for_stalled_sync(5s));
  std::vector<std::thread> followers;
  for (int i = 0; i < 3; ++i) {
    followers.emplace_back([&, i] {
      failures += !store->append({"follower-" + std::to_string(i), ""}, kKind, "x").ok();
    });
  }
  for (int spins = 0; mark(*store, Watermark::Accepted) < 5 && spins < 5000; ++spins) {
    std::this_thread::sleep_for(1ms);
  }
  REQUIRE(mark(*store, Watermark::Accepted) == 5);
  std::this_thread::sleep_for(20ms);  // the stalled fdatasync takes longer than L's return
  fs.stall_syncs(false);
  leader.join();
  for (auto& t : followers) t.join();
  CHECK(failures == 0);
  CHECK(fs.calls(platform::FaultOp::SyncData) - syncs_before == 2);
  CHECK(mark(*store, Watermark::Durable) == 6);
}

TEST_CASE("a gathering for callers who do not come back ends and its caller leads",
          "[durability][concurrency]") {
  // As above, but L does not come back: F1 gathers for it (the last fdatasync found four Durable
  // callers) until the gathering's clock runs out, then leads; later a lone caller gathers for
  // the followers, who are gone too. Every append lands well inside its 2 s timeout. Without the
  // clock each would wait for callers who never come until its timeout: WriteInDoubt.
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  KEEL_REQUIRE_OK(store->append({"first", ""}, kKind, "x"));
  AppendOptions durable = at(Durability::Durable);
  durable.timeout = 2s;
  fs.stall_syncs(true);
  std::atomic<int> failures{0};
  std::thread leader([&] { failures += !store->append({"leader", ""}, kKind, "1", durable).ok(); });
  REQUIRE(fs.wait_for_stalled_sync(5s));
  std::vector<std::thread> followers;
  for (int i = 0; i < 3; ++i) {
    followers.emplace_back([&, i] {
      failures += !store->append({"follower-" + std::to_string(i), ""}, kKind, "x", durable).ok();
    });
  }
  for (int spins = 0; mark(*store, Watermark::Accepted) < 5 && spins < 5000; ++spins) {
    std::this_thread::sleep_for(1ms);
  }
  REQUIRE(mark(*store, Watermark::Accepted) == 5);
  std::this_thread::sleep_for(20ms);
  fs.stall_syncs(false);
  leader.join();
  for (auto& t : followers) t.join();
  CHECK(failures == 0);
  KEEL_REQUIRE_OK(store->append({"alone", ""}, kKind, "x", durable));
  CHECK(mark(*store, Watermark::Durable) == 6);
}

TEST_CASE("AfterDurable: no read path returns an event above durable while its fdatasync stalls",
          "[durability][concurrency]") {
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  auto first = store->append({"order-1", ""}, kKind, "a");
  KEEL_REQUIRE_OK(first);
  fs.stall_syncs(true);
  std::atomic<bool> returned{false};
  Result<Receipt> second = StoreError(ErrorCode::NotFound);
  std::thread appender([&] {
    second = store->append({"order-1", ""}, kKind, "b");
    returned = true;
  });
  REQUIRE(fs.wait_for_stalled_sync(5s));
  // Accepted and written, not durable: every read path still shows only the first event.
  Frontier f = store->frontier();
  CHECK(f[Watermark::Accepted].global_sequence == 2);
  CHECK(f[Watermark::Written].global_sequence == 2);
  CHECK(f[Watermark::Durable].global_sequence == 1);
  CHECK(f[Watermark::Visible].global_sequence == 1);
  CHECK(f.visible_minus_durable == 0);
  CHECK_FALSE(returned.load());
  auto scanned = store->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(scanned);
  CHECK(scanned->size() == 1);
  CHECK(store->read(2).error().is(ErrorCode::NotFound));
  auto stream = store->entity_events("order-1", 0);
  KEEL_REQUIRE_OK(stream);
  CHECK(stream->size() == 1);
  CHECK(store->stats().sequence_visible == 1);
  fs.stall_syncs(false);
  appender.join();
  KEEL_REQUIRE_OK(second);
  // Read-your-writes: the append returned at Durable, so every read path sees it.
  CHECK(reads_that_see(*store, 2, second->event_id, "order-1", 0) == 5);
}

TEST_CASE("AfterWrite: a Written append is visible at once, visible runs ahead of durable",
          "[durability]") {
  platform::FaultFileSystem fs;
  StoreOptions options = options_on(fs);
  options.visibility = VisibilityPolicy::AfterWrite;
  auto store = open_store(options);
  auto receipt = store->append({"order-1", ""}, kKind, "a", at(Durability::Written));
  KEEL_REQUIRE_OK(receipt);
  CHECK(reads_that_see(*store, receipt->sequence, receipt->event_id, "order-1", 0) == 5);
  Frontier f = store->frontier();
  CHECK(f[Watermark::Durable].global_sequence == 0);
  CHECK(f[Watermark::Visible].global_sequence == 1);
  CHECK(f.visible_minus_durable == 1);
  // An Accepted append is not visible yet (not written), under either policy.
  auto accepted = store->append({"order-1", ""}, kKind, "b", at(Durability::Accepted));
  KEEL_REQUIRE_OK(accepted);
  CHECK(store->read(accepted->sequence).error().is(ErrorCode::NotFound));
  KEEL_REQUIRE_OK(store->sync());
  CHECK(store->read(accepted->sequence).ok());
  CHECK(store->frontier().visible_minus_durable == 0);
}

TEST_CASE("the background sync makes Accepted and Written appends durable and visible unaided",
          "[durability]") {
  platform::FaultFileSystem fs;
  StoreOptions options = options_on(fs);
  options.sync_interval = 20ms;
  auto store = open_store(options);
  auto accepted = store->append({"a", ""}, kKind, "x", at(Durability::Accepted));
  auto written = store->append({"b", ""}, kKind, "y", at(Durability::Written));
  KEEL_REQUIRE_OK(accepted);
  KEEL_REQUIRE_OK(written);
  // No other call: the pipeline's own timer syncs and publishes.
  KEEL_REQUIRE_OK(store->wait_for(Watermark::Durable, written->sequence, 10s));
  KEEL_REQUIRE_OK(store->wait_for(Watermark::Visible, written->sequence, 10s));
  CHECK(store->read(accepted->sequence).ok());
  CHECK(store->get(written->event_id).ok());
  CHECK(store->stats().commit_syncs >= 1);
}

TEST_CASE("the background sync also fires on bytes before the interval", "[durability]") {
  platform::FaultFileSystem fs;
  StoreOptions options = options_on(fs);
  options.sync_bytes = 4096;  // the interval stays an hour
  auto store = open_store(options);
  std::string payload(1000, 'p');
  uint64_t last = 0;
  for (int i = 0; i < 8; ++i) {
    auto r = store->append({"a", ""}, kKind, payload, at(Durability::Accepted));
    KEEL_REQUIRE_OK(r);
    last = r->sequence;
  }
  KEEL_REQUIRE_OK(store->wait_for(Watermark::Durable, last - 4, 10s));
}

TEST_CASE("without a background sync due, weaker appends stay unsynced (control)", "[durability]") {
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));  // interval an hour, bytes 8 MiB
  auto written = store->append({"a", ""}, kKind, "x", at(Durability::Written));
  KEEL_REQUIRE_OK(written);
  Status waited = store->wait_for(Watermark::Durable, written->sequence, 100ms);
  REQUIRE_FALSE(waited.ok());
  CHECK(waited.error().is(ErrorCode::WaitTimeout));
  CHECK(store->read(written->sequence).error().is(ErrorCode::NotFound));
}

TEST_CASE("an append that times out after its sequence was assigned is in doubt, then lands",
          "[durability][concurrency]") {
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  fs.stall_syncs(true);
  AppendOptions options;
  options.timeout = 50ms;
  auto started = std::chrono::steady_clock::now();
  Result<Receipt> timed_out = StoreError(ErrorCode::NotFound);
  std::thread appender([&] { timed_out = store->append({"a", ""}, kKind, "x", options); });
  REQUIRE(fs.wait_for_stalled_sync(5s));
  // The leader does its own I/O: it cannot time out inside fdatasync. A follower can.
  Result<Receipt> follower = store->append({"b", ""}, kKind, "y", options);
  REQUIRE_FALSE(follower.ok());
  CHECK(std::chrono::steady_clock::now() - started >= 50ms);
  INFO(follower.error().to_string());
  CHECK(follower.error().is(ErrorCode::WriteInDoubt));
  CHECK(follower.error().error_class() == ErrorClass::Indeterminate);
  const StoreError* cause = follower.error().cause();
  REQUIRE(cause != nullptr);
  CHECK(cause->is(ErrorCode::WaitTimeout));
  CHECK(cause->field_string("watermark") == "durable");
  CHECK(cause->field_u64("target") == 2);
  CHECK(cause->field_u64("waited_ms") >= 50);
  fs.stall_syncs(false);
  appender.join();
  KEEL_REQUIRE_OK(timed_out);
  // In doubt is not lost: the next group makes it durable and visible.
  KEEL_REQUIRE_OK(store->sync());
  auto read = store->read(2);
  KEEL_REQUIRE_OK(read);
  CHECK(read->payload == "y");
}

TEST_CASE("followers whose deadline races the end of the fdatasync all return and none is lost",
          "[durability][concurrency]") {
  // A stage's end wakes its waiters through one another (each wakes two more), so a waiter whose
  // deadline passes just as it is taken off the list must still pass the wake on. Rounds release
  // the stall before, at and after the followers' deadline; every follower returns, landed or in
  // doubt, and every event it was given a sequence for is read back after a sync.
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  constexpr int kFollowers = 12;
  AppendOptions options;
  options.timeout = 20ms;
  uint64_t expected = 0;
  for (int round = 0; round < 8; ++round) {
    INFO("round " << round);
    fs.stall_syncs(true);
    std::atomic<int> other_errors{0};
    std::thread leader([&] { other_errors += !store->append({"leader", ""}, kKind, "x").ok(); });
    REQUIRE(fs.wait_for_stalled_sync(5s));
    std::atomic<int> landed{0}, in_doubt{0};
    std::vector<std::thread> followers;
    for (int i = 0; i < kFollowers; ++i) {
      followers.emplace_back([&, i] {
        Result<Receipt> r = store->append({"f" + std::to_string(i), ""}, kKind, "y", options);
        if (r.ok()) {
          ++landed;
        } else if (r.error().is(ErrorCode::WriteInDoubt)) {
          ++in_doubt;
        } else {
          ++other_errors;
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * round));  // 0 to 35 ms
    fs.stall_syncs(false);
    leader.join();
    for (auto& t : followers) t.join();
    CHECK(other_errors == 0);
    CHECK(landed + in_doubt == kFollowers);
    expected += 1 + kFollowers;
    KEEL_REQUIRE_OK(store->sync());  // in doubt is not lost: every one of them lands
    CHECK(mark(*store, Watermark::Durable) == expected);
  }
  auto all = store->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(all);
  CHECK(all->size() == expected);
}

TEST_CASE("wait_for: satisfied at equality, a full timeout when unreachable, named errors",
          "[durability]") {
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  auto r = store->append({"a", ""}, kKind, "x", at(Durability::Durable, 4));
  KEEL_REQUIRE_OK(r);
  for (Watermark kind : {Watermark::Accepted, Watermark::Written, Watermark::Durable,
                         Watermark::Visible, Watermark::Emitted, Watermark::Applied}) {
    INFO(watermark_name(kind));
    KEEL_REQUIRE_OK(store->wait_for(kind, r->sequence, 1ms));
    KEEL_REQUIRE_OK(store->wait_for_lane(kind, 4, r->sequence, 1ms));
  }
  auto started = std::chrono::steady_clock::now();
  Status unreachable = store->wait_for_lane(Watermark::Visible, 4, r->sequence + 1, 150ms);
  auto waited = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(unreachable.ok());
  CHECK(unreachable.error().is(ErrorCode::WaitTimeout));
  CHECK(unreachable.error().error_class() == ErrorClass::Retryable);
  CHECK(unreachable.error().field_string("watermark") == "visible");
  CHECK(unreachable.error().field_u64("target") == r->sequence + 1);
  CHECK(unreachable.error().field_u64("waited_ms") >= 150);
  CHECK(waited >= 150ms);
  CHECK(store->wait_for(Watermark::Durable, 1, -1ms).error().is(ErrorCode::InvalidArgument));
  CHECK(store->wait_for_lane(Watermark::Durable, 64, 1, 1ms).error().is(ErrorCode::InvalidArgument));
}

TEST_CASE("each wait times out when only other watermarks advance", "[durability]") {
  platform::FaultFileSystem fs;
  StoreOptions options = options_on(fs);
  options.visibility = VisibilityPolicy::AfterWrite;
  auto store = open_store(options);
  // Accepted only: written, durable, visible stay behind.
  auto accepted = store->append({"a", ""}, kKind, "x", at(Durability::Accepted, 2));
  KEEL_REQUIRE_OK(accepted);
  uint64_t s = accepted->sequence;
  KEEL_REQUIRE_OK(store->wait_for(Watermark::Accepted, s, 1ms));
  KEEL_REQUIRE_OK(store->wait_for_lane(Watermark::Accepted, 2, s, 1ms));
  for (Watermark kind : {Watermark::Written, Watermark::Durable, Watermark::Visible,
                         Watermark::Emitted, Watermark::Applied}) {
    INFO(watermark_name(kind));
    CHECK(store->wait_for(kind, s, 20ms).error().is(ErrorCode::WaitTimeout));
    CHECK(store->wait_for_lane(kind, 2, s, 20ms).error().is(ErrorCode::WaitTimeout));
  }
  // Written (and visible, AfterWrite) but not durable.
  auto written = store->append({"a", ""}, kKind, "y", at(Durability::Written, 2));
  KEEL_REQUIRE_OK(written);
  s = written->sequence;
  KEEL_REQUIRE_OK(store->wait_for_lane(Watermark::Written, 2, s, 1ms));
  KEEL_REQUIRE_OK(store->wait_for_lane(Watermark::Visible, 2, s, 1ms));
  CHECK(store->wait_for(Watermark::Durable, s, 20ms).error().is(ErrorCode::WaitTimeout));
  CHECK(store->wait_for_lane(Watermark::Durable, 2, s, 20ms).error().is(ErrorCode::WaitTimeout));
  // A consumer that has not applied holds applied back while visible moves on.
  KEEL_REQUIRE_OK(store->register_consumer("projector", s));
  auto later = store->append({"a", ""}, kKind, "z", at(Durability::Durable, 2));
  KEEL_REQUIRE_OK(later);
  KEEL_REQUIRE_OK(store->wait_for(Watermark::Visible, later->sequence, 1ms));
  KEEL_REQUIRE_OK(store->wait_for(Watermark::Emitted, later->sequence, 1ms));
  CHECK(store->wait_for(Watermark::Applied, later->sequence, 20ms).error().is(ErrorCode::WaitTimeout));
  CHECK(store->wait_for_lane(Watermark::Applied, 2, later->sequence, 20ms)
            .error()
            .is(ErrorCode::WaitTimeout));
  // A wait is woken by the consumer's progress.
  std::atomic<bool> applied{false};
  std::thread consumer([&] {
    std::this_thread::sleep_for(10ms);
    applied = store->consumer_applied("projector", later->sequence).ok();
  });
  Status woken = store->wait_for(Watermark::Applied, later->sequence, 10s);
  consumer.join();
  KEEL_REQUIRE_OK(woken);
  CHECK(applied);
}

TEST_CASE("lane views are on the global-sequence axis", "[durability][concurrency]") {
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  KEEL_REQUIRE_OK(store->append({"a", ""}, kKind, "x", at(Durability::Durable, 1)));  // 1
  KEEL_REQUIRE_OK(store->append({"b", ""}, kKind, "x", at(Durability::Durable, 2)));  // 2
  fs.stall_syncs(true);
  std::atomic<bool> appended{false};
  std::thread appender(
      [&] { appended = store->append({"a", ""}, kKind, "y", at(Durability::Durable, 1)).ok(); });
  REQUIRE(fs.wait_for_stalled_sync(5s));  // sequence 3 on lane 1: written, not durable
  Frontier f = store->frontier();
  REQUIRE(f.lanes.size() == 2);
  const LaneFrontier& lane1 = f.lanes[0];
  const LaneFrontier& lane2 = f.lanes[1];
  CHECK(lane1.lane == 1);
  CHECK(lane1.sequences[Watermark::Written] == 3);
  CHECK(lane1.sequences[Watermark::Durable] == 2);  // its event at 3 is not covered
  CHECK(lane1.visible_minus_durable == 0);
  CHECK(lane2.lane == 2);
  CHECK(lane2.sequences[Watermark::Durable] == 3);  // nothing of lane 2 is pending
  CHECK(store->wait_for_lane(Watermark::Durable, 2, 3, 1ms).ok());
  CHECK(store->wait_for_lane(Watermark::Durable, 1, 3, 20ms).error().is(ErrorCode::WaitTimeout));
  fs.stall_syncs(false);
  appender.join();
  CHECK(appended);
  CHECK(store->wait_for_lane(Watermark::Durable, 1, 3, 1s).ok());
}

TEST_CASE("consumers define applied, lowering it is an explicit, logged reset", "[durability]") {
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  for (int i = 0; i < 5; ++i) KEEL_REQUIRE_OK(store->append({"a", ""}, kKind, "x"));
  CHECK(mark(*store, Watermark::Applied) == 5);  // no consumer: applied follows visible
  CHECK(store->register_consumer("slow", 2).error().is(ErrorCode::InvalidArgument));  // below
  CHECK(store->register_consumer("ahead", 6).error().is(ErrorCode::InvalidArgument));  // above
  KEEL_REQUIRE_OK(store->register_consumer("p", 5));
  KEEL_REQUIRE_OK(store->append({"a", ""}, kKind, "x"));
  CHECK(mark(*store, Watermark::Applied) == 5);
  auto line = store->reset_applied(3, "rebuild projection p");
  KEEL_REQUIRE_OK(line);
  CHECK(line->find("rebuild projection p") != std::string::npos);
  CHECK(mark(*store, Watermark::Applied) == 3);
  REQUIRE(store->stats().frontier_log.size() == 1);
  KEEL_REQUIRE_OK(store->consumer_applied("p", 6));
  CHECK(mark(*store, Watermark::Applied) == 6);
  CHECK(store->consumer_applied("nobody", 6).error().is(ErrorCode::NotFound));
  KEEL_REQUIRE_OK(store->unregister_consumer("p"));
  CHECK(store->frontier().consumers == 0);
}

TEST_CASE("a poisoned writer: durable frozen, later appends refused, frozen waits fail at once",
          "[durability][fault]") {
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  KEEL_REQUIRE_OK(store->append({"a", ""}, kKind, "durable"));
  fs.fail_nth(platform::FaultOp::SyncData, 1);
  auto in_doubt = store->append({"a", ""}, kKind, "in doubt");
  REQUIRE_FALSE(in_doubt.ok());
  CHECK(in_doubt.error().is(ErrorCode::WriteInDoubt));
  CHECK(in_doubt.error().error_class() == ErrorClass::Indeterminate);
  Frontier f = store->frontier();
  CHECK(f.poisoned);
  CHECK(f[Watermark::Written].global_sequence == 2);  // the write succeeded, its fdatasync failed
  CHECK(f[Watermark::Durable].global_sequence == 1);
  CHECK(f[Watermark::Visible].global_sequence == 1);
  CHECK(store->wait_for(Watermark::Durable, 2, 10s).error().is(ErrorCode::WriterPoisoned));
  auto refused = store->append({"a", ""}, kKind, "refused", at(Durability::Accepted));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().is(ErrorCode::WriterPoisoned));
  CHECK(refused.error().error_class() == ErrorClass::FailClosed);
  auto started = std::chrono::steady_clock::now();
  for (Watermark kind : {Watermark::Durable, Watermark::Visible, Watermark::Written}) {
    INFO(watermark_name(kind));
    Status waited = store->wait_for(kind, 3, 10s);
    REQUIRE_FALSE(waited.ok());
    CHECK(waited.error().is(ErrorCode::WriterPoisoned));
    CHECK(waited.error().root_cause().field_string("operation") == "fdatasync");
  }
  CHECK(std::chrono::steady_clock::now() - started < 5s);  // at once, not after the timeout
  // A later successful fdatasync of the file does not unfreeze durable (fsyncgate).
  fs.clear_faults();
  CHECK(store->sync().error().is(ErrorCode::WriterPoisoned));
  CHECK(mark(*store, Watermark::Durable) == 1);
  CHECK(store->read(2).error().is(ErrorCode::NotFound));
}

TEST_CASE("reopening a poisoned store in the same process cuts what no fdatasync covered",
          "[durability][fault]") {
  platform::FaultFileSystem fs;
  {
    auto store = open_store(options_on(fs));
    KEEL_REQUIRE_OK(store->append({"a", ""}, kKind, "durable"));
    fs.fail_nth(platform::FaultOp::SyncData, 1);
    auto in_doubt = store->append({"a", ""}, kKind, "written, fdatasync failed");
    REQUIRE_FALSE(in_doubt.ok());
    CHECK_FALSE(store->close().ok());  // reports the poison
  }
  // No crash: the page cache (the fault file system's cache) still holds the in-doubt event. A
  // reopen that believed it would show an event the disk may not have.
  auto store = open_store(options_on(fs));
  auto events = store->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(events);
  REQUIRE(events->size() == 1);
  CHECK((*events)[0].payload == "durable");
  bool reported = false;
  for (const std::string& action : store->stats().recovery_actions) {
    reported |= action.find("PoisonedWriterReopen") != std::string::npos;
  }
  CHECK(reported);
  // The store goes on from there.
  auto next = store->append({"a", ""}, kKind, "after");
  KEEL_REQUIRE_OK(next);
  CHECK(next->sequence == 2);
}

TEST_CASE("frontier reports HLC jumps, appends go on", "[durability]") {
  platform::FaultFileSystem fs;
  platform::ManualClock clock(1'700'000'000'000);
  StoreOptions options = options_on(fs);
  options.clock = &clock;
  options.hlc_jump_bound = 1000ms;
  auto store = open_store(options);
  auto before = store->append({"a", ""}, kKind, "x");
  KEEL_REQUIRE_OK(before);
  clock.set_wall_ms(1'700'000'000'000 + 3'600'000);  // the wall clock jumps an hour ahead
  auto after = store->append({"a", ""}, kKind, "y");
  KEEL_REQUIRE_OK(after);
  HlcStatus hlc = store->frontier().hlc;
  CHECK(hlc.forward_jumps == 1);
  CHECK(hlc.largest_jump_ms >= 3'600'000);
  CHECK(after->hlc > before->hlc);
  CHECK(after->hlc.wall_ms < before->hlc.wall_ms + 1000);  // the jump was not adopted
}

TEST_CASE("close while appends and waits are in flight ends them all", "[durability][concurrency]") {
  platform::FaultFileSystem fs;
  StoreOptions options = options_on(fs);
  options.sync_interval = 5ms;
  auto store = open_store(options);
  std::atomic<bool> stop{false};
  std::atomic<int> unexpected{0};  // errors other than "the store closed"
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop && i < 10'000; ++i) {
        auto r = store->append({"e" + std::to_string(t), ""}, kKind, "x",
                               at(static_cast<Durability>(i % 3)));
        if (!r.ok()) {
          unexpected += !r.error().is(ErrorCode::InvalidArgument);
          return;
        }
      }
    });
  }
  threads.emplace_back([&] {
    Status waited = store->wait_for(Watermark::Durable, UINT64_MAX, 60s);
    unexpected += waited.ok() || !waited.error().is(ErrorCode::InvalidArgument);
  });
  std::this_thread::sleep_for(20ms);
  KEEL_REQUIRE_OK(store->close());
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(unexpected == 0);
  auto reopened = open_store(options_on(fs));
  auto report = reopened->verify();
  KEEL_REQUIRE_OK(report);
  CHECK(report->ok);
}

TEST_CASE("the HLC is recovered on open: time never runs backwards across restarts",
          "[durability]") {
  platform::FaultFileSystem fs;
  platform::ManualClock clock(1'700'000'000'000);
  StoreOptions options = options_on(fs);
  options.clock = &clock;
  Hlc last;
  {
    auto store = open_store(options);
    for (int i = 0; i < 3; ++i) {
      auto r = store->append({"a", ""}, kKind, "x");
      KEEL_REQUIRE_OK(r);
      last = r->hlc;
    }
    KEEL_REQUIRE_OK(store->close());
  }
  // The machine comes back with its wall clock an hour behind: not a jump (downtime is not
  // measured), and the next HLC still follows the recovered one.
  platform::ManualClock behind(1'700'000'000'000 - 3'600'000);
  options.clock = &behind;
  auto store = open_store(options);
  CHECK(store->frontier().hlc.last == last);
  auto next = store->append({"a", ""}, kKind, "y");
  KEEL_REQUIRE_OK(next);
  CHECK(next->hlc > last);
  HlcStatus hlc = store->frontier().hlc;
  CHECK(hlc.forward_jumps == 0);
  CHECK(hlc.backward_jumps == 0);
}

TEST_CASE("an fdatasync that succeeds after the writer was poisoned does not move durable",
          "[durability][fault][concurrency]") {
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  KEEL_REQUIRE_OK(store->append({"a", ""}, kKind, "durable"));
  KEEL_REQUIRE_OK(store->append({"a", ""}, kKind, "written", at(Durability::Written)));
  // An fdatasync covering sequence 2 starts and stalls.
  fs.stall_syncs(true);
  Status synced;
  std::thread syncer([&] { synced = store->sync(); });
  REQUIRE(fs.wait_for_stalled_sync(5s));
  // Meanwhile a write fails: the writer is poisoned.
  fs.fail_nth(platform::FaultOp::Write, 1);
  auto failed = store->append({"a", ""}, kKind, "write fails", at(Durability::Written));
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().error_class() == ErrorClass::Indeterminate);
  // The stalled fdatasync now succeeds on the file, but nothing may be believed after the poison.
  fs.stall_syncs(false);
  syncer.join();
  CHECK_FALSE(synced.ok());
  Frontier f = store->frontier();
  CHECK(f.poisoned);
  CHECK(f[Watermark::Durable].global_sequence == 1);
  CHECK(f[Watermark::Visible].global_sequence == 1);
  CHECK(store->read(2).error().is(ErrorCode::NotFound));
}
