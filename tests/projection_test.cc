// Projections (include/keel/projection.h): resume from the snapshot, saves by count, the consumer
// moved to the snapshot after a crash between them, a fold that fails, a stale second saver.
// The replay property (snapshot + tail == full replay) is tests/prop/projection_prop.cc.
#include <cinttypes>
#include <cstdio>

#include "keel/keel.h"
#include "log/consumer_file.h"
#include "platform/memory_file_system.h"
#include "test_support.h"

namespace keel {
namespace {

constexpr char kDir[] = "/store";
constexpr EventKind kKind = EventKind::make(1, 1);
constexpr auto kNow = std::chrono::milliseconds(0);

StoreOptions options_on(platform::FileSystem& fs) {
  StoreOptions options;
  options.create_if_missing = true;
  options.file_system = &fs;
  options.id_seed = 8;
  return options;
}

std::unique_ptr<Store> open_store(platform::FileSystem& fs) {
  auto store = Store::open(kDir, options_on(fs));
  if (!store.ok()) FAIL(store.error().to_string());
  return std::move(store).value();
}

// Counts the events it folds, and sums their payloads as numbers: "<count> <sum>".
Status count_and_sum(std::string& state, const EventView& event) {
  uint64_t count = 0, sum = 0;
  if (!state.empty()) std::sscanf(state.c_str(), "%" SCNu64 " %" SCNu64, &count, &sum);
  sum += std::stoull(std::string(event.payload));
  state = std::to_string(count + 1) + " " + std::to_string(sum);
  return ok_status();
}

void append_numbers(Store& store, int from, int to, const std::string& entity = "order:1") {
  for (int i = from; i <= to; ++i) {
    KEEL_REQUIRE_OK(store.append({entity, ""}, kKind, std::to_string(i)));
  }
}

std::unique_ptr<Projection> open_projection(Store& store, ProjectionOptions options = {}) {
  Query orders;
  orders.entity_prefix = "order:";
  auto projection = Projection::open(store, "totals", orders, count_and_sum, options);
  if (!projection.ok()) FAIL(projection.error().to_string());
  return std::move(projection).value();
}

void catch_up(Projection& projection, Store& store) {
  while (projection.position() < store.stats().sequence_visible) {
    KEEL_REQUIRE_OK(projection.run(kNow));
  }
}

TEST_CASE("a projection resumes from its snapshot and saves every N events", "[projection]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(fs);
  append_numbers(*store, 1, 25);
  append_numbers(*store, 100, 104, "user:1");  // not matching
  ProjectionOptions every_10;
  every_10.save_every_events = 10;
  every_10.save_every = std::chrono::milliseconds(0);
  every_10.subscription.batch_max = 5;
  auto projection = open_projection(*store, every_10);
  CHECK(projection->state().empty());
  catch_up(*projection, *store);
  CHECK(projection->state() == "25 325");
  CHECK(projection->saved_sequence() == 20);  // saved at 10 and 20 folded events
  auto snapshot = load_snapshot(*store, "totals");
  KEEL_REQUIRE_OK(snapshot);
  CHECK((*snapshot)->bytes == "20 210");
  // The consumer of the same name counts in applied at the snapshot.
  CHECK(store->frontier()[Watermark::Applied].global_sequence == 20);
  // Reopened, it starts from the snapshot and replays the tail only.
  projection.reset();
  projection = open_projection(*store, every_10);
  CHECK(projection->state() == "20 210");
  CHECK(projection->position() == 20);
  catch_up(*projection, *store);
  CHECK(projection->state() == "25 325");
  KEEL_REQUIRE_OK(projection->save());
  CHECK(projection->saved_sequence() == store->stats().sequence_visible);
}

TEST_CASE("after a crash between a save and its commit the consumer moves to the snapshot",
          "[projection]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(fs);
  append_numbers(*store, 1, 10);
  {
    auto projection = open_projection(*store);
    catch_up(*projection, *store);
    KEEL_REQUIRE_OK(projection->save());  // snapshot and consumer at 10
  }
  // A save that published its snapshot at 14 and died before committing the consumer.
  append_numbers(*store, 11, 14);
  KEEL_REQUIRE_OK(save_snapshot(*store, "totals", "14 105", 14));
  auto behind = log::read_consumer_cursor(fs, kDir, "totals");
  KEEL_REQUIRE_OK(behind);
  CHECK((*behind)->cursor == 10);
  auto projection = open_projection(*store);
  CHECK(projection->position() == 14);
  CHECK(projection->state() == "14 105");
  auto moved = log::read_consumer_cursor(fs, kDir, "totals");
  KEEL_REQUIRE_OK(moved);
  CHECK((*moved)->cursor == 14);
  // A consumer ahead of the snapshot (its state after the snapshot is gone) moves back.
  projection.reset();
  KEEL_REQUIRE_OK(DurableConsumer::reset(*store, "totals", 14, ""));
  append_numbers(*store, 15, 16);
  KEEL_REQUIRE_OK(DurableConsumer::reset(*store, "totals", 16, ""));
  projection = open_projection(*store);
  CHECK(projection->position() == 14);
  catch_up(*projection, *store);
  CHECK(projection->state() == "16 136");
}

TEST_CASE("a fold that fails stops the projection, and nothing after the last save is published",
          "[projection]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(fs);
  append_numbers(*store, 1, 5);
  int calls = 0;
  auto failing = [&calls](std::string& state, const EventView& event) -> Status {
    if (++calls == 4) {
      return StoreError(ErrorCode::InvalidArgument)
          .with("argument", "event")
          .with("reason", "the fold refused it");
    }
    return count_and_sum(state, event);
  };
  ProjectionOptions options;
  options.save_every_events = 2;
  options.save_every = std::chrono::milliseconds(0);
  options.subscription.batch_max = 2;
  auto projection = Projection::open(*store, "totals", Query{}, failing, options);
  KEEL_REQUIRE_OK(projection);
  KEEL_REQUIRE_OK((*projection)->run(kNow));  // events 1, 2: saved at 2
  auto failed = (*projection)->run(kNow);     // event 3 folds, event 4 fails
  REQUIRE(!failed.ok());
  CHECK(failed.error().message().find("the fold refused it") != std::string::npos);
  CHECK(!(*projection)->run(kNow).ok());
  CHECK(!(*projection)->save().ok());
  auto snapshot = load_snapshot(*store, "totals");
  KEEL_REQUIRE_OK(snapshot);
  CHECK((*snapshot)->info.sequence == 2);
  CHECK(
      Projection::open(*store, "totals", Query{}, nullptr).error().is(ErrorCode::InvalidArgument));
}

TEST_CASE("a projection whose snapshot another saver moved on gets StaleSequence", "[projection]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(fs);
  append_numbers(*store, 1, 10);
  auto projection = open_projection(*store);
  catch_up(*projection, *store);
  KEEL_REQUIRE_OK(projection->save());
  append_numbers(*store, 11, 12);
  KEEL_REQUIRE_OK(save_snapshot(*store, "totals", "someone else's", 12));
  append_numbers(*store, 13, 13);
  catch_up(*projection, *store);
  auto stale = projection->save();
  REQUIRE(!stale.ok());
  CHECK(stale.error().is(ErrorCode::StaleSequence));
  auto snapshot = load_snapshot(*store, "totals");
  KEEL_REQUIRE_OK(snapshot);
  CHECK((*snapshot)->bytes == "someone else's");
}

}  // namespace
}  // namespace keel
