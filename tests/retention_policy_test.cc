// Retention as a policy (include/keel/retention.h): explicit retain_from, by total bytes, by age;
// the floor only moves forward, survives reopens and power losses, never passes the lowest durable
// consumer cursor unless forced (and then that consumer is CursorExpired and resyncs by reset).
#include <catch2/catch.hpp>
#include <string>

#include "keel/keel.h"
#include "platform/clock.h"
#include "platform/fault_file_system.h"
#include "platform/memory_file_system.h"
#include "test_support.h"

namespace keel {
namespace {

constexpr char kDir[] = "/store";
constexpr EventKind kKind = EventKind::make(1, 1);

StoreOptions options_on(platform::FileSystem& fs) {
  StoreOptions options;
  options.create_if_missing = true;
  options.file_system = &fs;
  options.segment_size = 4096;
  options.id_seed = 5;
  return options;
}

std::unique_ptr<Store> open_store(const StoreOptions& options) {
  auto store = Store::open(kDir, options);
  if (!store.ok()) FAIL(store.error().to_string());
  return std::move(store).value();
}

void append_n(Store& store, int n) {
  for (int i = 0; i < n; ++i) {
    KEEL_REQUIRE_OK(store.append({"e:" + std::to_string(i % 10), "s"}, kKind, std::string(200, 'p')));
  }
}

TEST_CASE("retain_from keeps every event from the sequence on, moves forward only, and survives "
          "reopens and power losses",
          "[retention]") {
  platform::FaultFileSystem fs;
  StoreOptions options = options_on(fs);
  auto store = open_store(options);
  append_n(*store, 200);
  auto retained = retain_from(*store, 120);
  KEEL_REQUIRE_OK(retained);
  const uint64_t first = retained->first_retained;
  CHECK(first > 1);
  CHECK(first <= 120);
  CHECK(retained->first_retained_before == 1);
  CHECK(retained->wanted == 120);
  CHECK(retained->segments_removed > 0);
  CHECK(retained->bytes_removed >= retained->segments_removed * 64);
  CHECK(retained->held_by.empty());
  CHECK(store->stats().first_retained_sequence == first);
  auto kept = store->read(120);
  KEEL_REQUIRE_OK(kept);
  auto gone = store->read(first - 1);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code() == ErrorCode::NotFound);
  // Never backwards.
  auto lower = retain_from(*store, 10);
  KEEL_REQUIRE_OK(lower);
  CHECK(lower->first_retained == first);
  CHECK(lower->segments_removed == 0);
  // A power loss right after: RETAIN was durable before any segment went.
  for (auto op : {platform::FaultOp::Write, platform::FaultOp::SyncData, platform::FaultOp::Rename,
                  platform::FaultOp::SyncDirectory}) {
    fs.fail_from_nth(op, 1);
  }
  store.reset();
  fs.crash(7);
  fs.clear_faults();
  store = open_store(options);
  CHECK(store->stats().first_retained_sequence == first);
  CHECK(store->stats().sequence_visible == 200);
}

TEST_CASE("retention refuses bad floors and read-only stores", "[retention]") {
  platform::MemoryFileSystem fs;
  {
    auto store = open_store(options_on(fs));
    append_n(*store, 50);
    auto code = [](const auto& r) { return r.ok() ? std::string("ok") : std::string(r.error().code_name()); };
    CHECK(code(retain_from(*store, 0)) == "InvalidArgument");
    CHECK(code(retain_from(*store, 52)) == "InvalidArgument");  // above durable + 1
    CHECK(code(retain_from(*store, 51)) == "ok");               // everything sealed may go
    RetentionPolicy negative;
    negative.max_age = std::chrono::milliseconds(-1);
    CHECK(code(apply_retention(*store, negative)) == "InvalidArgument");
    KEEL_REQUIRE_OK(store->close());
  }
  StoreOptions read_only = options_on(fs);
  read_only.read_only = true;
  auto store = open_store(read_only);
  auto refused = retain_from(*store, 10);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == ErrorCode::ReadOnlyStore);
}

TEST_CASE("a durable consumer holds the floor at its cursor unless forced and resyncs when forced",
          "[retention][consumer]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_n(*store, 200);
  {
    auto consumer = DurableConsumer::open(*store, "slow", Query{});
    KEEL_REQUIRE_OK(consumer);
    auto batch = (*consumer)->next(std::chrono::milliseconds(1000));
    KEEL_REQUIRE_OK(batch);
    KEEL_REQUIRE_OK((*consumer)->commit(40));
  }
  auto held = retain_from(*store, 150);
  KEEL_REQUIRE_OK(held);
  CHECK(held->first_retained <= 41);  // every event after cursor 40 stays
  CHECK(held->held_by == "consumer slow at cursor 40");
  auto resumed = DurableConsumer::open(*store, "slow", Query{});
  KEEL_REQUIRE_OK(resumed);  // not expired
  resumed->reset();

  RetentionOptions force;
  force.force = true;
  auto forced = retain_from(*store, 150, force);
  KEEL_REQUIRE_OK(forced);
  const uint64_t first = forced->first_retained;
  REQUIRE(first > 41);
  auto expired = DurableConsumer::open(*store, "slow", Query{});
  REQUIRE_FALSE(expired.ok());
  CHECK(expired.error().code() == ErrorCode::CursorExpired);
  // A new consumer from the start cannot begin either, and nothing of it is created.
  auto fresh = DurableConsumer::open(*store, "fresh", Query{});
  REQUIRE_FALSE(fresh.ok());
  CHECK(fresh.error().code() == ErrorCode::CursorExpired);
  auto listed = list_consumers(*store);
  KEEL_REQUIRE_OK(listed);
  CHECK(listed->size() == 1);  // only "slow"
  // The resync: rebuild the state, move the cursor to just below the floor, go on.
  KEEL_REQUIRE_OK(DurableConsumer::reset(*store, "slow", first - 1, "rebuilt from a snapshot"));
  auto again = DurableConsumer::open(*store, "slow", Query{});
  KEEL_REQUIRE_OK(again);
  auto batch = (*again)->next(std::chrono::milliseconds(1000));
  KEEL_REQUIRE_OK(batch);
  REQUIRE_FALSE(batch->empty());
  CHECK(batch->front().sequence == first);
}

TEST_CASE("max_bytes removes the oldest sealed segments until the store fits", "[retention]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_n(*store, 400);
  const uint64_t before = store->stats().bytes_on_disk;
  REQUIRE(before > 400 * 200);  // every segment written since open counts
  RetentionPolicy policy;
  policy.max_bytes = before / 3;
  auto applied = apply_retention(*store, policy);
  KEEL_REQUIRE_OK(applied);
  INFO("before " << before << " segments " << store->stats().segments << " wanted " << applied->wanted
                 << " first " << applied->first_retained);
  CHECK(applied->segments_removed > 0);
  CHECK(store->stats().bytes_on_disk <= policy.max_bytes);
  CHECK(store->stats().bytes_on_disk + 4096 > policy.max_bytes);  // no more than needed went
  CHECK(store->stats().sequence_visible == 400);
  // Applied again, nothing more goes.
  auto again = apply_retention(*store, policy);
  KEEL_REQUIRE_OK(again);
  CHECK(again->segments_removed == 0);
}

TEST_CASE("max_age removes the sealed segments whose newest event is older than the bound",
          "[retention]") {
  platform::MemoryFileSystem fs;
  platform::ManualClock clock(1'700'000'000'000);
  StoreOptions options = options_on(fs);
  options.clock = &clock;
  auto store = open_store(options);
  append_n(*store, 100);  // old
  clock.advance_ms(3'600'000);
  const uint64_t new_from = store->stats().sequence_next;
  append_n(*store, 100);  // an hour later
  RetentionPolicy policy;
  policy.max_age = std::chrono::minutes(30);
  auto applied = apply_retention(*store, policy);
  KEEL_REQUIRE_OK(applied);
  CHECK(applied->segments_removed > 0);
  // Everything appended within the bound stays; the old segments went except the one the new
  // events began in.
  CHECK(store->stats().first_retained_sequence <= new_from);
  CHECK(store->stats().first_retained_sequence > new_from - 30);
  KEEL_REQUIRE_OK(store->read(new_from));
}

}  // namespace
}  // namespace keel
