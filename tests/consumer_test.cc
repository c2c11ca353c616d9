// Consumers (include/keel/consumer.h): subscriptions deliver exactly the visible matching events in
// order across catch-up and live; fences appear at commit only; a resume below the retention floor
// is CursorExpired (never clamped: the clamping control must be caught); durable consumers resume
// after their committed cursor with the state committed with it, through failed commits and power
// losses (the cursor-at-receipt control must be caught); a cursor beyond the log is
// CursorAheadOfLog; durable consumers define applied across reopens.
#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "format/byte_order.h"
#include "format/format_constants.h"
#include "keel/keel.h"
#include "log/consumer_file.h"
#include "log/sidecar_file.h"
#include "platform/fault_file_system.h"
#include "platform/memory_file_system.h"
#include "test_support.h"

namespace keel {
namespace {

constexpr char kDir[] = "/store";
constexpr EventKind kKind = EventKind::make(1, 1);
constexpr auto kWait = std::chrono::milliseconds(2'000);

StoreOptions options_on(platform::FileSystem& fs) {
  StoreOptions options;
  options.create_if_missing = true;
  options.file_system = &fs;
  options.segment_size = 4096;  // many segments, so retention has something to remove
  options.id_seed = 11;
  return options;
}

std::unique_ptr<Store> open_store(const StoreOptions& options) {
  auto store = Store::open(kDir, options);
  if (!store.ok()) FAIL(store.error().to_string());
  return std::move(store).value();
}

// Appends `n` events alternating between "order:<i % 3>" and "user:<i % 2>".
void append_mixed(Store& store, int n, int start = 0) {
  for (int i = start; i < start + n; ++i) {
    std::string entity =
        i % 2 == 0 ? "order:" + std::to_string(i % 3) : "user:" + std::to_string(i % 2);
    KEEL_REQUIRE_OK(store.append({entity, "s"}, kKind, "payload-" + std::to_string(i)));
  }
}

// The sequences of every visible event matching `filter`, read page by page.
std::vector<uint64_t> matching(Store& store, Query filter) {
  std::vector<uint64_t> out;
  filter.limit = 1000;
  for (;;) {
    auto page = store.query(filter);
    if (!page.ok()) FAIL(page.error().to_string());
    for (const Event& e : page->events) out.push_back(e.sequence);
    if (!page->next_after) return out;
    filter.after = page->next_after;
  }
}

// Reads a subscription until it has delivered `want` events (or the time runs out).
std::vector<uint64_t> drain(Subscription& subscription, size_t want) {
  std::vector<uint64_t> got;
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (got.size() < want && std::chrono::steady_clock::now() < give_up) {
    auto batch = subscription.next(std::chrono::milliseconds(100));
    if (!batch.ok()) FAIL(batch.error().to_string());
    for (const Event& e : *batch) got.push_back(e.sequence);
  }
  return got;
}

Query entity_prefix(std::string prefix) {
  Query q;
  q.entity_prefix = std::move(prefix);
  return q;
}

TEST_CASE("a subscription delivers every matching event once, in order, from catch-up into live",
          "[consumer][concurrency]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_mixed(*store, 300);  // catch-up: already there
  SubscriptionOptions small;
  small.batch_max = 7;  // many pages, so cut pages and the hand-off are both crossed
  auto subscription = Subscription::open(*store, entity_prefix("order:"), 0, small);
  KEEL_REQUIRE_OK(subscription);
  // Live: appended by another thread while the subscription reads.
  std::thread appender([&] {
    for (int round = 0; round < 30; ++round) {
      append_mixed(*store, 10, 300 + round * 10);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  std::vector<uint64_t> got = drain(**subscription, 300);  // 600 events, half "order:"
  appender.join();
  std::vector<uint64_t> want = matching(*store, entity_prefix("order:"));
  REQUIRE(want.size() == 300);
  CHECK(got == want);  // no gap, no duplicate, sequence order
  // Nothing more, and the position covers what it read past.
  auto more = (*subscription)->next(std::chrono::milliseconds(20));
  KEEL_REQUIRE_OK(more);
  CHECK(more->empty());
  CHECK((*subscription)->position() == store->stats().sequence_visible);
}

TEST_CASE(
    "the view form of next delivers what the copying form does, and its visitor may call "
    "into the store",
    "[consumer]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_mixed(*store, 200);
  SubscriptionOptions options;
  options.batch_max = 9;
  auto copies = Subscription::open(*store, entity_prefix("order:"), 0, options);
  auto views = Subscription::open(*store, entity_prefix("order:"), 0, options);
  KEEL_REQUIRE_OK(copies);
  KEEL_REQUIRE_OK(views);
  std::vector<Event> want;
  for (;;) {
    auto batch = (*copies)->next(std::chrono::milliseconds(0));
    KEEL_REQUIRE_OK(batch);
    if (batch->empty()) break;
    want.insert(want.end(), batch->begin(), batch->end());
  }
  REQUIRE(want.size() == 100);
  std::vector<Event> got;
  uint64_t appended_inside = 0;
  for (;;) {
    auto seen = (*views)->next(std::chrono::milliseconds(0), [&](const EventView& view) {
      got.push_back(Event::from_view(view));
      // No lock of the store is held here: a read, an append and retention all work.
      if (got.size() == 50) {
        KEEL_REQUIRE_OK(store->query(Query{}));
        KEEL_REQUIRE_OK(store->append({"audit:1", "s"}, kKind, "from a visitor"));
        ++appended_inside;
        KEEL_REQUIRE_OK(store->sync());
        auto retained = retain_from(*store, 90);  // below the ~100 it has seen
        KEEL_REQUIRE_OK(retained);
        REQUIRE(retained->segments_removed > 0);
      }
    });
    KEEL_REQUIRE_OK(seen);
    if (*seen == 0) break;
  }
  REQUIRE(appended_inside == 1);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].sequence == want[i].sequence);
    CHECK(got[i].payload == want[i].payload);
    CHECK(got[i].event_id == want[i].event_id);
  }
  // Without payloads the views carry none either.
  SubscriptionOptions bare = options;
  bare.with_payload = false;
  auto refs = Subscription::open(*store, Query{}, store->stats().first_retained_sequence - 1, bare);
  KEEL_REQUIRE_OK(refs);
  size_t payload_bytes = 0;
  auto seen = (*refs)->next(std::chrono::milliseconds(0),
                            [&](const EventView& view) { payload_bytes += view.payload.size(); });
  KEEL_REQUIRE_OK(seen);
  CHECK(*seen == 9);
  CHECK(payload_bytes == 0);
}

TEST_CASE(
    "the reusing form of next fills the caller's Events exactly as the copying form, through "
    "batches that shrink and grow",
    "[consumer]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  // Payloads from empty to 3 KiB, metadata on every third event only: a reused Event must take
  // each field from its new event, never keep one from the last.
  for (int i = 0; i < 150; ++i) {
    AppendOptions with;
    if (i % 3 == 0) with.metadata = "meta-" + std::string(i % 50, 'm');
    if (i % 5 == 0) with.causation_id = EventId{};
    with.lane = static_cast<uint32_t>(i % 2);
    KEEL_REQUIRE_OK(store->append({"e:" + std::to_string(i % 7), i % 4 == 0 ? "" : "scope"}, kKind,
                                  std::string(static_cast<size_t>((i * 97) % 3000), 'a' + i % 26),
                                  with));
  }
  std::vector<Event> want;
  {
    auto all = Subscription::open(*store, Query{}, 0);
    KEEL_REQUIRE_OK(all);
    auto batch = (*all)->next(std::chrono::milliseconds(0));
    KEEL_REQUIRE_OK(batch);
    want = std::move(*batch);
  }
  REQUIRE(want.size() == 150);
  SubscriptionOptions options;
  options.batch_max = 20;
  auto reusing = Subscription::open(*store, Query{}, 0, options);
  KEEL_REQUIRE_OK(reusing);
  std::vector<Event> batch;
  size_t at = 0;
  // Seeking back and forth makes the batches start at other events: the Events kept from one
  // batch are filled with different ones in the next.
  const uint64_t seeks[] = {0, 7, 3, 60, 59, 149, 100, 150};
  for (uint64_t after : seeks) {
    (*reusing)->seek(after);
    at = after;
    auto seen = (*reusing)->next(std::chrono::milliseconds(0), batch);
    KEEL_REQUIRE_OK(seen);
    REQUIRE(*seen == batch.size());
    REQUIRE(batch.size() == std::min<size_t>(20, 150 - at));
    for (size_t i = 0; i < batch.size(); ++i) CHECK(batch[i] == want[at + i]);
  }
  // A timeout delivers nothing and leaves an empty batch.
  CHECK(batch.empty());
  // Read through from 0 with the same vector: every event once, in order.
  (*reusing)->seek(0);
  std::vector<Event> got;
  for (;;) {
    auto seen = (*reusing)->next(std::chrono::milliseconds(0), batch);
    KEEL_REQUIRE_OK(seen);
    if (*seen == 0) break;
    got.insert(got.end(), batch.begin(), batch.end());
  }
  CHECK(got == want);
}

// Query pages read their frames outside the store's mutex (store_query.cc): appends go on, and
// retention removes segment files only once no page is reading. A reader must get whole, correct
// events or CursorExpired, never a failed read of a removed file.
TEST_CASE(
    "subscriptions reading while appends go on and retention removes segments get whole "
    "events or CursorExpired",
    "[consumer][retention][concurrency]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  constexpr int kEvents = 3000;
  std::atomic<bool> written{false};
  std::atomic<int> expired{0};
  std::atomic<int> retained{0};
  std::vector<std::string> failures(5);
  std::thread writer([&] {
    for (int i = 0; i < kEvents; ++i) {
      // Halfway, until retention has removed a segment (at most 10 s): on a fast machine all the
      // appends could otherwise end before the retainer's first turn.
      for (int spins = 0; i == kEvents / 2 && retained.load() == 0 && spins < 10000; ++spins) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      auto r = store->append({"order:" + std::to_string(i % 7), "s"}, kKind,
                             "payload-" + std::to_string(i));
      if (!r.ok()) {
        failures[4] = "append: " + r.error().to_string();
        break;
      }
    }
    written = true;
  });
  std::thread retainer([&] {
    while (!written.load()) {
      uint64_t visible = store->frontier()[Watermark::Visible].global_sequence;
      if (visible > 300) {
        auto r = retain_from(*store, visible - 300);
        if (r.ok() && r->segments_removed > 0) ++retained;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      SubscriptionOptions options;
      options.batch_max = 64;
      uint64_t last = 0;
      std::unique_ptr<Subscription> subscription;
      auto resync = [&] {  // from the floor, as a consumer does after CursorExpired
        ++expired;
        last = store->stats().first_retained_sequence - 1;
        subscription.reset();
      };
      while (failures[t].empty() && !(written.load() && last == static_cast<uint64_t>(kEvents))) {
        if (!subscription) {
          auto opened = Subscription::open(*store, Query{}, last, options);
          if (!opened.ok() && opened.error().is(ErrorCode::CursorExpired)) {
            resync();
          } else if (!opened.ok()) {
            failures[t] = "open: " + opened.error().to_string();
          } else {
            subscription = std::move(opened).value();
          }
          continue;
        }
        auto batch = subscription->next(std::chrono::milliseconds(5));
        if (!batch.ok() && batch.error().is(ErrorCode::CursorExpired)) {
          resync();
          continue;
        }
        if (!batch.ok()) {
          failures[t] = "next: " + batch.error().to_string();
          break;
        }
        for (const Event& e : *batch) {
          if (e.sequence <= last || e.payload != "payload-" + std::to_string(e.sequence - 1)) {
            failures[t] = "sequence " + std::to_string(e.sequence) + " after " +
                          std::to_string(last) + " with payload " + e.payload;
            break;
          }
          last = e.sequence;
        }
      }
    });
  }
  writer.join();
  retainer.join();
  for (auto& reader : readers) reader.join();
  for (const std::string& failure : failures) CHECK(failure == "");
  CHECK(retained.load() > 0);  // retention ran while they read
  INFO("CursorExpired resyncs: " << expired.load());
}

TEST_CASE("a subscription shows a fence's events when it commits and never a cancelled one's",
          "[consumer]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_mixed(*store, 4);
  auto subscription = Subscription::open(*store, Query{}, 0);
  KEEL_REQUIRE_OK(subscription);
  CHECK(drain(**subscription, 4).size() == 4);

  auto cancelled = store->begin_fence();
  KEEL_REQUIRE_OK(cancelled);
  KEEL_REQUIRE_OK((*cancelled)->append({"order:9", "s"}, kKind, "hidden"));
  auto none = (*subscription)->next(std::chrono::milliseconds(50));
  KEEL_REQUIRE_OK(none);
  CHECK(none->empty());  // invisible while the fence is open
  KEEL_REQUIRE_OK((*cancelled)->cancel());

  auto committed = store->begin_fence();
  KEEL_REQUIRE_OK(committed);
  auto a = (*committed)->append({"order:8", "s"}, kKind, "a");
  auto b = (*committed)->append({"order:8", "s"}, kKind, "b");
  KEEL_REQUIRE_OK(a);
  KEEL_REQUIRE_OK(b);
  none = (*subscription)->next(std::chrono::milliseconds(50));
  KEEL_REQUIRE_OK(none);
  CHECK(none->empty());
  KEEL_REQUIRE_OK((*committed)->commit());
  auto batch = (*subscription)->next(kWait);
  KEEL_REQUIRE_OK(batch);
  REQUIRE(batch->size() == 2);  // both at once, the cancelled one never
  CHECK((*batch)[0].sequence == a->sequence);
  CHECK((*batch)[1].sequence == b->sequence);
}

// Whether a resume after `cursor` below the floor is refused as CursorExpired, for a subscription,
// a durable-consumer-style resume and a query page; filtered and unfiltered.
struct ExpiryRun {
  bool subscribe_refused = false;
  bool filtered_refused = false;
  bool query_refused = false;
  bool live_refused = false;  // a subscription the floor overtook, at its next delivery
};

ExpiryRun run_expiry(bool clamp) {
  platform::MemoryFileSystem fs;
  StoreOptions options = options_on(fs);
  options.unsafe_clamp_expired_cursors_for_test = clamp;
  auto store = open_store(options);
  append_mixed(*store, 200);
  auto live = Subscription::open(*store, Query{}, 5);  // position 5, then overtaken
  REQUIRE(live.ok());
  auto floor = retain_first(*store, 150);
  if (!floor.ok()) FAIL(floor.error().to_string());
  const uint64_t first = *floor;
  REQUIRE(first > 10);
  REQUIRE(store->stats().first_retained_sequence == first);
  auto is_expired = [&](const auto& result) {
    if (result.ok()) return false;
    if (result.error().code() != ErrorCode::CursorExpired) FAIL(result.error().to_string());
    CHECK(*result.error().field("cursor") == ErrorFieldValue(uint64_t{first - 2}));
    CHECK(*result.error().field("first_retained") == ErrorFieldValue(uint64_t{first}));
    return true;
  };
  ExpiryRun run;
  run.subscribe_refused = is_expired(Subscription::open(*store, Query{}, first - 2));
  run.filtered_refused = is_expired(Subscription::open(*store, entity_prefix("user:"), first - 2));
  Query page;
  page.after = first - 2;
  run.query_refused = is_expired(store->query(page));
  auto overtaken = (*live)->next(std::chrono::milliseconds(0));
  run.live_refused = !overtaken.ok() && overtaken.error().code() == ErrorCode::CursorExpired;
  // The boundary: nothing after first - 1 is gone, so resuming there is sound.
  auto boundary = Subscription::open(*store, Query{}, first - 1);
  KEEL_REQUIRE_OK(boundary);
  auto batch = (*boundary)->next(kWait);
  KEEL_REQUIRE_OK(batch);
  REQUIRE(!batch->empty());
  CHECK(batch->front().sequence == first);
  return run;
}

TEST_CASE("a resume below the retention floor is CursorExpired, filtered or not, live or not",
          "[consumer][retention]") {
  ExpiryRun run = run_expiry(false);
  CHECK(run.subscribe_refused);
  CHECK(run.filtered_refused);
  CHECK(run.query_refused);
  CHECK(run.live_refused);
}

TEST_CASE("control: a store that clamps expired cursors to the floor is caught",
          "[consumer][retention]") {
  ExpiryRun run = run_expiry(true);
  CHECK_FALSE(run.subscribe_refused);
  CHECK_FALSE(run.filtered_refused);
  CHECK_FALSE(run.query_refused);
  CHECK_FALSE(run.live_refused);
}

TEST_CASE("subscriptions and queries refuse bad positions and page fields", "[consumer]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_mixed(*store, 3);
  auto code_of = [](const auto& result) { return result.ok() ? "ok" : result.error().code_name(); };
  CHECK(std::string(code_of(Subscription::open(*store, Query{}, UINT64_MAX))) == "InvalidArgument");
  Query page;
  page.after = UINT64_MAX;
  CHECK(std::string(code_of(store->query(page))) == "InvalidArgument");
  Query with_after;
  with_after.after = 1;
  CHECK(std::string(code_of(Subscription::open(*store, with_after, 0))) == "InvalidArgument");
  Query descending;
  descending.order = Order::Descending;
  CHECK(std::string(code_of(Subscription::open(*store, descending, 0))) == "InvalidArgument");
  SubscriptionOptions zero;
  zero.batch_max = 0;
  CHECK(std::string(code_of(Subscription::open(*store, Query{}, 0, zero))) == "InvalidArgument");
  Query bad_lane;
  bad_lane.lane = 999;
  CHECK(std::string(code_of(Subscription::open(*store, bad_lane, 0))) == "InvalidArgument");
  auto ok = Subscription::open(*store, Query{}, 0);
  KEEL_REQUIRE_OK(ok);
  CHECK(std::string(code_of((*ok)->next(std::chrono::milliseconds(-1)))) == "InvalidArgument");
}

TEST_CASE("a Subscriber delivers on its own thread until stopped, or until deliver fails",
          "[consumer][concurrency]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_mixed(*store, 50);
  std::mutex mutex;
  std::vector<uint64_t> got;
  auto subscriber = Subscriber::start(*store, Query{}, 0, [&](const std::vector<Event>& batch) {
    std::lock_guard lock(mutex);
    for (const Event& e : batch) got.push_back(e.sequence);
    return ok_status();
  });
  KEEL_REQUIRE_OK(subscriber);
  append_mixed(*store, 50, 50);
  REQUIRE(store->wait_for(Watermark::Visible, 100, kWait).ok());
  for (int i = 0; i < 400 && (*subscriber)->position() < 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  KEEL_REQUIRE_OK((*subscriber)->stop());
  CHECK_FALSE((*subscriber)->running());
  {
    std::lock_guard lock(mutex);
    REQUIRE(got.size() == 100);
    for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == i + 1);
  }
  // A failing deliver ends the thread and is what stop() returns.
  auto failing = Subscriber::start(*store, Query{}, 0, [](const std::vector<Event>&) -> Status {
    return StoreError(ErrorCode::NotSupported).with("feature", "x").with("reason", "test");
  });
  KEEL_REQUIRE_OK(failing);
  for (int i = 0; i < 400 && (*failing)->running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto ended = (*failing)->stop();
  REQUIRE_FALSE(ended.ok());
  CHECK(ended.error().code() == ErrorCode::NotSupported);
  CHECK((*failing)->position() == 0);  // the batch it refused does not count as delivered
}

TEST_CASE(
    "a durable consumer resumes after its committed cursor with its state, and defines "
    "applied across reopens",
    "[consumer]") {
  platform::MemoryFileSystem fs;
  {
    auto store = open_store(options_on(fs));
    append_mixed(*store, 40);
    auto consumer = DurableConsumer::open(*store, "billing", entity_prefix("order:"));
    KEEL_REQUIRE_OK(consumer);
    CHECK((*consumer)->cursor() == 0);
    CHECK(store->frontier()[Watermark::Applied].global_sequence == 0);  // it applied nothing yet
    auto batch = (*consumer)->next(kWait);
    KEEL_REQUIRE_OK(batch);
    REQUIRE(batch->size() == 20);
    // Apply the first 10, commit them with the state they produced.
    uint64_t cursor = (*batch)[9].sequence;
    KEEL_REQUIRE_OK((*consumer)->commit(cursor, "applied 10"));
    CHECK((*consumer)->cursor() == cursor);
    CHECK(store->frontier()[Watermark::Applied].global_sequence == cursor);
    // Commits are monotone and never beyond what was delivered.
    auto below = (*consumer)->commit(cursor - 1);
    REQUIRE_FALSE(below.ok());
    CHECK(below.error().code() == ErrorCode::InvalidArgument);
    auto beyond = (*consumer)->commit((*consumer)->position() + 1);
    REQUIRE_FALSE(beyond.ok());
    CHECK(beyond.error().code() == ErrorCode::InvalidArgument);
    // A second handle in this process, and a removal while open, are refused.
    auto twice = DurableConsumer::open(*store, "billing", entity_prefix("order:"));
    REQUIRE_FALSE(twice.ok());
    CHECK(twice.error().code() == ErrorCode::InvalidArgument);
    CHECK_FALSE(DurableConsumer::remove(*store, "billing").ok());
    KEEL_REQUIRE_OK(store->close());
  }
  auto store = open_store(options_on(fs));
  // Restored at open: applied is the committed cursor, not visible.
  std::vector<uint64_t> orders = matching(*store, entity_prefix("order:"));
  const uint64_t cursor = orders[9];
  CHECK(store->frontier()[Watermark::Applied].global_sequence == cursor);
  CHECK(store->frontier().consumers == 1);
  auto consumer = DurableConsumer::open(*store, "billing", entity_prefix("order:"));
  KEEL_REQUIRE_OK(consumer);
  CHECK((*consumer)->cursor() == cursor);
  CHECK((*consumer)->state() == "applied 10");
  auto batch = (*consumer)->next(kWait);
  KEEL_REQUIRE_OK(batch);
  REQUIRE(batch->size() == 10);  // exactly the ones not committed
  CHECK(batch->front().sequence == orders[10]);
  // The state is kept when only the cursor moves.
  KEEL_REQUIRE_OK((*consumer)->commit((*consumer)->position()));
  CHECK((*consumer)->state() == "applied 10");
  auto infos = list_consumers(*store);
  KEEL_REQUIRE_OK(infos);
  REQUIRE(infos->size() == 1);
  CHECK((*infos)[0].name == "billing");
  CHECK((*infos)[0].cursor == (*consumer)->position());
  CHECK((*infos)[0].state_bytes == 10);
  consumer->reset();
  KEEL_REQUIRE_OK(DurableConsumer::remove(*store, "billing"));
  CHECK(store->frontier().consumers == 0);
  CHECK(store->frontier()[Watermark::Applied].global_sequence == store->stats().sequence_visible);
}

// A new consumer starts at cursor 0, below applied: lowering applied and counting the consumer are
// one step, or an append between them moves applied back up and the registration is refused.
TEST_CASE("durable consumers open while appends go on", "[consumer][concurrency]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_mixed(*store, 5);
  std::atomic<bool> done{false};
  std::vector<std::thread> appenders;
  for (int t = 0; t < 4; ++t) {
    appenders.emplace_back([&, t] {
      for (int i = 0; !done.load(); ++i) {
        KEEL_REQUIRE_OK(store->append({"order:" + std::to_string(t), "s"}, kKind, "p"));
      }
    });
  }
  std::vector<std::string> failures;
  for (int c = 0; c < 5000; ++c) {
    auto consumer = DurableConsumer::open(*store, "c" + std::to_string(c), Query{});
    if (!consumer.ok()) failures.push_back(consumer.error().to_string());
  }
  done = true;
  for (auto& appender : appenders) appender.join();
  INFO((failures.empty() ? std::string() : failures.front()));
  CHECK(failures.empty());
  CHECK(store->frontier()[Watermark::Applied].global_sequence == 0);  // the consumers are at 0
}

TEST_CASE("durable consumers refuse bad names and read-only stores", "[consumer]") {
  platform::MemoryFileSystem fs;
  {
    auto store = open_store(options_on(fs));
    append_mixed(*store, 3);
    for (const std::string& bad : {std::string(), std::string(".hidden"), std::string("a/b"),
                                   std::string("with space"), std::string(65, 'x')}) {
      INFO("name '" << bad << "'");
      auto consumer = DurableConsumer::open(*store, bad, Query{});
      REQUIRE_FALSE(consumer.ok());
      CHECK(consumer.error().code() == ErrorCode::InvalidArgument);
    }
    KEEL_REQUIRE_OK(DurableConsumer::open(*store, std::string(64, 'x'), Query{}));  // the longest
    KEEL_REQUIRE_OK(store->close());
  }
  StoreOptions read_only = options_on(fs);
  read_only.read_only = true;
  read_only.create_if_missing = false;
  auto store = open_store(read_only);
  auto consumer = DurableConsumer::open(*store, "billing", Query{});
  REQUIRE_FALSE(consumer.ok());
  CHECK(consumer.error().code() == ErrorCode::ReadOnlyStore);
}

TEST_CASE("a committed cursor beyond the recovered log is CursorAheadOfLog, never lowered",
          "[consumer]") {
  platform::MemoryFileSystem fs;
  {
    auto store = open_store(options_on(fs));
    append_mixed(*store, 10);
    KEEL_REQUIRE_OK(store->close());
  }
  // What a lost log end leaves behind: a cursor file naming sequence 25 of a 10-event log.
  KEEL_REQUIRE_OK(
      log::write_consumer_cursor(fs, kDir, log::ConsumerCursor{"late", 1, 25, "s", std::nullopt}));
  auto store = open_store(options_on(fs));
  CHECK(store->frontier()[Watermark::Applied].global_sequence == 10);  // it does not count
  auto consumer = DurableConsumer::open(*store, "late", Query{});
  REQUIRE_FALSE(consumer.ok());
  CHECK(consumer.error().code() == ErrorCode::CursorAheadOfLog);
  CHECK(*consumer.error().field("cursor") == ErrorFieldValue(uint64_t{25}));
  CHECK(*consumer.error().field("recovered") == ErrorFieldValue(uint64_t{10}));
  // The file is untouched (never silently lowered); the resync path is an explicit reset.
  auto file = log::read_consumer_cursor(fs, kDir, "late");
  KEEL_REQUIRE_OK(file);
  CHECK((*file)->cursor == 25);
  KEEL_REQUIRE_OK(DurableConsumer::reset(*store, "late", 10, "rebuilt"));
  auto reopened = DurableConsumer::open(*store, "late", Query{});
  KEEL_REQUIRE_OK(reopened);
  CHECK((*reopened)->cursor() == 10);
  CHECK((*reopened)->state() == "rebuilt");
}

// The filter a consumer's cursor was committed under, as list_consumers shows it ("" when none).
std::string recorded_filter(Store& store, const std::string& name) {
  auto consumers = list_consumers(store);
  KEEL_REQUIRE_OK(consumers);
  for (const ConsumerInfo& c : *consumers) {
    if (c.name == name) return c.filter;
  }
  FAIL("no consumer " << name);
  return {};
}

TEST_CASE(
    "a durable consumer keeps the filter its cursor was committed under: another is refused until "
    "reset",
    "[consumer]") {
  platform::MemoryFileSystem fs;
  {
    auto store = open_store(options_on(fs));
    append_mixed(*store, 30);
    auto consumer = DurableConsumer::open(*store, "proj", entity_prefix("order:"));
    KEEL_REQUIRE_OK(consumer);
    KEEL_REQUIRE_OK((*consumer)->next(kWait));
    KEEL_REQUIRE_OK((*consumer)->commit((*consumer)->position(), "orders-state"));
    KEEL_REQUIRE_OK(store->close());
  }
  auto store = open_store(options_on(fs));
  CHECK(recorded_filter(*store, "proj") == R"({"entity_prefix":"order:"})");
  const uint64_t committed = (*log::read_consumer_cursor(fs, kDir, "proj"))->cursor;
  REQUIRE(committed > 0);
  // Every event, or other entities: its cursor does not vouch for those events.
  for (const Query& other : {Query{}, entity_prefix("user:"), entity_prefix("order")}) {
    auto refused = DurableConsumer::open(*store, "proj", other);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code() == ErrorCode::InvalidArgument);
    CHECK(*refused.error().field("argument") == ErrorFieldValue(std::string("filter")));
  }
  CHECK((*log::read_consumer_cursor(fs, kDir, "proj"))->cursor == committed);
  // The page fields are not part of a filter.
  Query same = entity_prefix("order:");
  same.limit = 7;
  same.with_payload = true;
  {
    auto reopened = DurableConsumer::open(*store, "proj", same);
    KEEL_REQUIRE_OK(reopened);
    CHECK((*reopened)->cursor() == committed);
    CHECK((*reopened)->state() == "orders-state");
  }
  // The way to another filter: rebuild the state, reset, open with the new filter.
  KEEL_REQUIRE_OK(DurableConsumer::reset(*store, "proj", 0, "rebuilt-for-all"));
  CHECK(recorded_filter(*store, "proj").empty());
  {
    auto all = DurableConsumer::open(*store, "proj", Query{});
    KEEL_REQUIRE_OK(all);
    CHECK((*all)->state() == "rebuilt-for-all");
  }
  CHECK(recorded_filter(*store, "proj") == "{}");
  CHECK_FALSE(DurableConsumer::open(*store, "proj", entity_prefix("order:")).ok());
}

TEST_CASE("a consumer's filter is recorded as canonical JSON of the fields set", "[consumer]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_mixed(*store, 5);
  Query every;
  every.entity = "ord\"er\\1";
  every.lane = 2;
  every.clock_from = 3;
  every.clock_to = 9;
  every.scope = "s";
  every.kind = EventKind::make(1, 5);
  every.category = 1;
  every.correlation_id = EventId{1, 2};
  every.sequence_from = 4;
  every.sequence_to = 400;
  every.hlc_from = Hlc{10, 1};
  every.hlc_to = Hlc{20, 0};
  KEEL_REQUIRE_OK(DurableConsumer::open(*store, "every", every));
  CHECK(recorded_filter(*store, "every") ==
        R"({"entity":"ord\"er\\1","lane":2,"clock_from":3,"clock_to":9,"scope":"s","kind":4101,)"
        R"("category":1,"correlation_id":"00000000000000010000000000000002","sequence_from":4,)"
        R"("sequence_to":400,"hlc_from":[10,1],"hlc_to":[20,0]})");
  // Fields at their defaults are left out: they match the same events as unset ones.
  Query defaults = entity_prefix("order:");
  defaults.clock_from = 1;
  defaults.sequence_to = UINT64_MAX;
  KEEL_REQUIRE_OK(DurableConsumer::open(*store, "defaults", defaults));
  CHECK(recorded_filter(*store, "defaults") == R"({"entity_prefix":"order:"})");
}

TEST_CASE("a version 1 consumer file, which has no filter, opens and records the filter",
          "[consumer]") {
  platform::MemoryFileSystem fs;
  {
    auto store = open_store(options_on(fs));
    append_mixed(*store, 10);
    KEEL_REQUIRE_OK(store->close());
  }
  // FORMAT.md 8.9, version 1: epoch, cursor, state length, name length, name, state.
  const std::string name = "old", state = "st";
  std::vector<std::byte> payload(26 + name.size() + state.size());
  format::store_u64(payload.data(), 1);
  format::store_u64(payload.data() + 8, 4);
  format::store_u64(payload.data() + 16, state.size());
  format::store_u16(payload.data() + 24, static_cast<uint16_t>(name.size()));
  std::memcpy(payload.data() + 26, name.data(), name.size());
  std::memcpy(payload.data() + 26 + name.size(), state.data(), state.size());
  KEEL_REQUIRE_OK(
      log::write_sidecar(fs, kDir, "CONSUMER.old", format::SidecarKind::Cursor, 1, payload));
  auto store = open_store(options_on(fs));
  CHECK(store->frontier()[Watermark::Applied].global_sequence == 4);
  CHECK(recorded_filter(*store, "old").empty());
  {
    auto consumer = DurableConsumer::open(*store, "old", entity_prefix("user:"));
    KEEL_REQUIRE_OK(consumer);
    CHECK((*consumer)->cursor() == 4);
    CHECK((*consumer)->state() == "st");
  }
  CHECK(recorded_filter(*store, "old") == R"({"entity_prefix":"user:"})");
  auto file = log::read_consumer_cursor(fs, kDir, "old");
  KEEL_REQUIRE_OK(file);
  CHECK((*file)->cursor == 4);
  CHECK((*file)->state == "st");
}

TEST_CASE("a failed commit changes nothing and the next commit covers both", "[consumer][fault]") {
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  append_mixed(*store, 30);
  auto consumer = DurableConsumer::open(*store, "c", Query{});
  KEEL_REQUIRE_OK(consumer);
  auto batch = (*consumer)->next(kWait);
  KEEL_REQUIRE_OK(batch);
  REQUIRE(batch->size() == 30);
  KEEL_REQUIRE_OK((*consumer)->commit(10, "ten"));
  for (platform::FaultOp op : {platform::FaultOp::SyncData, platform::FaultOp::Rename}) {
    fs.fail_nth(op, 1);
    auto failed = (*consumer)->commit(20, "twenty");
    REQUIRE_FALSE(failed.ok());
    CHECK((*consumer)->cursor() == 10);
    CHECK((*consumer)->state() == "ten");
    auto file = log::read_consumer_cursor(fs, kDir, "c");
    KEEL_REQUIRE_OK(file);
    CHECK((*file)->cursor == 10);
    CHECK((*file)->state == "ten");
    fs.clear_faults();
  }
  KEEL_REQUIRE_OK((*consumer)->commit(30, "thirty"));  // no gap: 11..30 in one commit
  CHECK(store->frontier()[Watermark::Applied].global_sequence == 30);
}

// The cursor-after-apply crash test: a consumer sums the payload numbers it applies into its state
// ("<last sequence applied> <sum>") and commits (cursor, state) every few events; power is cut at a
// random point; after reopen the committed state must describe exactly the events up to the
// committed cursor, and the consumer goes on from there. Returns how many runs found a cursor
// whose state did not match.
int cursor_after_apply_violations(bool commit_at_receipt, int runs) {
  int violations = 0;
  for (int run = 0; run < runs; ++run) {
    platform::FaultFileSystem fs;
    StoreOptions options = options_on(fs);
    ConsumerOptions consumer_options;
    consumer_options.unsafe_commit_at_receipt_for_test = commit_at_receipt;
    consumer_options.subscription.batch_max = 5;
    {
      auto store = open_store(options);
      for (int i = 1; i <= 60; ++i) {
        KEEL_REQUIRE_OK(store->append({"n", "s"}, kKind, std::to_string(i)));
      }
      auto consumer = DurableConsumer::open(*store, "sum", Query{}, consumer_options);
      KEEL_REQUIRE_OK(consumer);
      uint64_t last = 0, sum = 0;
      const int stop_after_batches = 1 + run % 9;
      for (int b = 0; b < stop_after_batches; ++b) {
        auto batch = (*consumer)->next(kWait);
        KEEL_REQUIRE_OK(batch);
        if (b == stop_after_batches - 1 && run % 2 == 0) break;  // crash before applying it
        for (const Event& e : *batch) {
          last = e.sequence;
          sum += std::stoull(e.payload);
        }
        if (b % 2 == 1) {  // commit every other batch, after applying it
          KEEL_REQUIRE_OK(
              (*consumer)->commit(last, std::to_string(last) + " " + std::to_string(sum)));
        }
      }
      // The power goes: nothing more reaches the disk (the handles' teardown writes nothing).
      for (auto op : {platform::FaultOp::Write, platform::FaultOp::SyncData,
                      platform::FaultOp::Rename, platform::FaultOp::SyncDirectory}) {
        fs.fail_from_nth(op, 1);
      }
    }
    fs.crash(static_cast<uint64_t>(run) + 1);
    fs.clear_faults();
    auto store = open_store(options);
    auto consumer = DurableConsumer::open(*store, "sum", Query{});
    KEEL_REQUIRE_OK(consumer);
    uint64_t cursor = (*consumer)->cursor();
    uint64_t want_sum = cursor * (cursor + 1) / 2;  // payload i at sequence i
    std::string want_state =
        cursor == 0 ? "" : std::to_string(cursor) + " " + std::to_string(want_sum);
    if ((*consumer)->state() != want_state) ++violations;
  }
  return violations;
}

TEST_CASE(
    "after a power loss a durable consumer's cursor names exactly the events its state "
    "applied",
    "[consumer][fault]") {
  CHECK(cursor_after_apply_violations(false, 18) == 0);
}

TEST_CASE("control: a consumer that commits its cursor at receipt is caught", "[consumer][fault]") {
  CHECK(cursor_after_apply_violations(true, 18) > 0);
}

}  // namespace
}  // namespace keel

namespace keel {
namespace {

TEST_CASE("emitted is what every live subscription has been handed and follows visible without one",
          "[consumer]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  auto emitted = [&] { return store->frontier()[Watermark::Emitted].global_sequence; };
  append_mixed(*store, 10);
  CHECK(emitted() == 10);  // no subscription: follows visible
  SubscriptionOptions three;
  three.batch_max = 3;
  auto slow = Subscription::open(*store, Query{}, 10, three);
  KEEL_REQUIRE_OK(slow);
  auto fast = Subscription::open(*store, Query{}, 10);
  KEEL_REQUIRE_OK(fast);
  append_mixed(*store, 10, 10);
  CHECK(emitted() == 10);  // visible is 20, but nothing was handed out yet
  KEEL_REQUIRE_OK((*fast)->next(std::chrono::milliseconds(0)));
  CHECK(emitted() == 10);  // the slow one has had nothing
  KEEL_REQUIRE_OK((*slow)->next(std::chrono::milliseconds(0)));
  CHECK(emitted() == 13);  // the lowest position handed out
  // A subscription from the start does not lower it (monotone).
  auto from_start = Subscription::open(*store, Query{}, 0);
  KEEL_REQUIRE_OK(from_start);
  CHECK(emitted() == 13);
  from_start->reset();
  CHECK(emitted() == 13);
  slow->reset();  // gone: the fast one (at 20) is the lowest
  CHECK(emitted() == 20);
  fast->reset();
  append_mixed(*store, 5, 20);
  CHECK(emitted() == 25);  // none again: follows visible
  Frontier f = store->frontier();
  CHECK(f[Watermark::Emitted].global_sequence <= f[Watermark::Visible].global_sequence);
}

}  // namespace
}  // namespace keel
