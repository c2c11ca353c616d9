// Concurrency tests of the store (run under TSan in CI: tag [concurrency]).
#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "keel/keel.h"
#include "test_support.h"

using namespace keel;

TEST_CASE("threads appending through one store get dense sequences and intact chains",
          "[concurrency][store]") {
  test::TempDir dir;
  StoreOptions options;
  options.create_if_missing = true;
  options.segment_size = 16384;
  auto store = Store::open(dir.path(), options);
  KEEL_REQUIRE_OK(store);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::vector<Receipt>> receipts(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      AppendOptions written;
      written.durability = Durability::Written;
      for (int i = 0; i < kPerThread; ++i) {
        auto r = (*store)->append({"shared", ""}, EventKind::make(1, 1), std::to_string(t), written);
        if (r.ok()) receipts[t].push_back(*r);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  KEEL_REQUIRE_OK((*store)->sync());
  std::vector<bool> seen(kThreads * kPerThread + 1, false);
  for (const auto& list : receipts) {
    REQUIRE(list.size() == kPerThread);
    for (const auto& r : list) {
      REQUIRE(r.sequence <= kThreads * kPerThread);
      CHECK(!seen[r.sequence]);
      seen[r.sequence] = true;
      CHECK(r.entity_clock == r.sequence);  // one entity: its clock is the global sequence
    }
  }
  auto report = (*store)->verify();
  KEEL_REQUIRE_OK(report);
  CHECK(report->ok);
  CHECK(report->events_checked == kThreads * kPerThread);
}

TEST_CASE("read-only opens beside a busy writer always open and see a growing prefix",
          "[concurrency][store]") {
  test::TempDir dir;
  StoreOptions options;
  options.create_if_missing = true;
  options.segment_size = 8192;  // rotate while readers open
  auto store = Store::open(dir.path(), options);
  KEEL_REQUIRE_OK(store);
  KEEL_REQUIRE_OK((*store)->append({"a", ""}, EventKind::make(1, 1), "first"));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    AppendOptions written;
    written.durability = Durability::Written;
    for (int i = 0; i < 2000 && !stop; ++i) {
      auto r = (*store)->append({"a", ""}, EventKind::make(1, 1), std::string(40, 'x'),
                                i % 10 == 0 ? AppendOptions{} : written);
      if (!r.ok()) break;
    }
  });
  StoreOptions read_only;
  read_only.read_only = true;
  uint64_t last_seen = 0;
  for (int i = 0; i < 30; ++i) {
    auto reader = Store::open(dir.path(), read_only);
    if (!reader.ok()) {
      stop = true;
      writer.join();
      FAIL(reader.error().to_string());
    }
    uint64_t visible = (*reader)->stats().sequence_visible;
    CHECK(visible >= last_seen);
    last_seen = visible;
    auto events = (*reader)->scan_events(1, UINT64_MAX);
    KEEL_REQUIRE_OK(events);
    CHECK(events->size() == visible);
  }
  stop = true;
  writer.join();
}

// Appenders at every level and lane, batch appenders, readers, waiters and a frontier poller at
// once, on a real directory. Readers check that what they see is a visible prefix (under
// AfterDurable: never above durable); the poller checks every frontier invariant and that each
// watermark only grows. Threads record violations; the test asserts after joining them.
TEST_CASE("appenders readers waiters and the frontier all at once", "[concurrency][durability]") {
  test::TempDir dir;
  StoreOptions options;
  options.create_if_missing = true;
  options.segment_size = 32768;  // rotations under load
  options.lanes_max = 4;
  options.sync_interval = std::chrono::milliseconds(2);
  // This case checks invariants under contention, not latency. Under TSan on a loaded 2-core CI
  // machine one append of 600 failed once (CI of 2026-11-30; the error was not recorded then, it
  // is now); the likely cause is the default 5 s append_timeout, with two readers scanning the
  // whole log under the store's mutex. A pipeline that stopped making progress still fails here.
  options.append_timeout = std::chrono::minutes(1);
  auto opened = Store::open(dir.path(), options);
  KEEL_REQUIRE_OK(opened);
  Store& store = **opened;
  std::atomic<bool> done{false};
  std::atomic<int> violations{0};
  std::atomic<int> append_errors{0};
  std::mutex first_error_mu;
  std::string first_error;  // the first failed append's error, for the failure message
  auto note = [&](const auto& s) {
    if (s.ok()) return;
    ++append_errors;
    std::lock_guard<std::mutex> lock(first_error_mu);
    if (first_error.empty()) first_error = s.error().to_string();
  };
  std::vector<std::thread> threads;
  constexpr int kAppenders = 4;
  for (int t = 0; t < kAppenders; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 150; ++i) {
        AppendOptions append;
        append.durability = static_cast<Durability>((t + i) % 3);
        append.lane = static_cast<uint32_t>(i % 4);
        if (i % 10 == 0) {
          std::vector<BatchItem> items(3, BatchItem{{"batch-" + std::to_string(t), ""},
                                                    EventKind::make(1, 1), "b", append});
          BatchOptions batch;
          batch.durability = append.durability;
          note(store.append_batch(items, batch));
        } else {
          note(store.append({"e" + std::to_string(i % 5), ""}, EventKind::make(1, 1),
                             std::to_string(t), append));
        }
      }
    });
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&] {
      while (!done) {
        uint64_t count = 0;
        uint64_t last = 0;
        Status scanned = store.scan(1, UINT64_MAX, [&](const EventView& v) {
          violations += v.sequence != last + 1;  // a prefix: dense from 1
          last = v.sequence;
          ++count;
          return true;
        });
        violations += !scanned.ok();
        violations += last > store.frontier()[Watermark::Durable].global_sequence;
        if (last > 0) violations += !store.read(last).ok();
      }
    });
  }
  threads.emplace_back([&] {
    uint64_t target = 1;
    while (!done) {
      Status waited = store.wait_for(Watermark::Durable, target, std::chrono::milliseconds(50));
      if (waited.ok()) {
        violations += store.frontier()[Watermark::Durable].global_sequence < target;
        target += 7;
      } else {
        violations += !waited.error().is(ErrorCode::WaitTimeout);
      }
    }
  });
  threads.emplace_back([&] {
    WatermarkSequences previous;
    while (!done) {
      Frontier f = store.frontier();
      uint64_t acc = f[Watermark::Accepted].global_sequence;
      uint64_t wri = f[Watermark::Written].global_sequence;
      uint64_t dur = f[Watermark::Durable].global_sequence;
      uint64_t vis = f[Watermark::Visible].global_sequence;
      violations += !(acc >= wri && wri >= dur && vis <= dur);
      violations += f[Watermark::Emitted].global_sequence > vis;
      violations += f[Watermark::Applied].global_sequence > vis;
      for (int k = 0; k < kWatermarkCount; ++k) {
        violations += f.points[k].global_sequence < previous.value[k];
        previous.value[k] = f.points[k].global_sequence;
      }
      for (const LaneFrontier& lane : f.lanes) {
        violations += lane.sequences[Watermark::Durable] > lane.sequences[Watermark::Accepted];
        violations += lane.sequences[Watermark::Visible] > lane.sequences[Watermark::Durable];
      }
    }
  });
  for (int t = 0; t < kAppenders; ++t) threads[t].join();
  KEEL_REQUIRE_OK(store.sync());
  done = true;
  for (size_t t = kAppenders; t < threads.size(); ++t) threads[t].join();
  INFO("first append error: " << first_error);
  CHECK(append_errors == 0);
  CHECK(violations == 0);
  Frontier f = store.frontier();
  CHECK(f[Watermark::Visible].global_sequence == f[Watermark::Accepted].global_sequence);
  auto report = store.verify();
  KEEL_REQUIRE_OK(report);
  CHECK(report->ok);
  CHECK(report->events_checked == f[Watermark::Accepted].global_sequence);
}

TEST_CASE("index images written while appenders and queries run reopen to the same answers",
          "[concurrency][image]") {
  test::TempDir dir;
  StoreOptions options;
  options.create_if_missing = true;
  options.segment_size = 16384;  // images cut across rotations too
  options.index_image_interval = std::chrono::milliseconds(1);
  options.index_image_min_events = 1;
  auto store = Store::open(dir.path(), options);
  KEEL_REQUIRE_OK(store);
  constexpr int kThreads = 3;
  constexpr int kPerThread = 150;
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      AppendOptions options_t;
      options_t.durability = t == 0 ? Durability::Durable : Durability::Written;
      std::optional<EventId> previous;
      for (int i = 0; i < kPerThread; ++i) {
        options_t.causation_id = previous;  // each thread a causal chain
        auto r = (*store)->append({"e" + std::to_string(t), ""}, EventKind::make(1, 1),
                                  std::to_string(i), options_t);
        if (r.ok()) previous = r->event_id;
      }
    });
  }
  std::thread reader([&] {
    while (!done.load()) {
      Query q;
      q.entity_prefix = "e";
      q.limit = 20;
      q.order = Order::Descending;
      auto page = (*store)->query(q);
      if (page.ok() && !page->events.empty()) {
        (void)(*store)->ancestors(page->events.front().event_id, 10);
      }
    }
  });
  for (auto& thread : threads) thread.join();
  done.store(true);
  reader.join();
  KEEL_REQUIRE_OK((*store)->sync());
  // Let the image thread cut at least one image of everything, then close (one more).
  for (int wait = 0; wait < 2000 && (*store)->stats().index_images_written == 0; ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  StoreStats before = (*store)->stats();
  CHECK(before.index_images_written > 0);
  CHECK(before.index_image_error.empty());
  auto all = (*store)->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(all);
  KEEL_REQUIRE_OK((*store)->close());
  auto reopened = Store::open(dir.path(), options);
  KEEL_REQUIRE_OK(reopened);
  CHECK((*reopened)->stats().index_source == "image");
  auto again = (*reopened)->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(again);
  REQUIRE(again->size() == all->size());
  for (size_t i = 0; i < all->size(); ++i) CHECK((*again)[i].receipt() == (*all)[i].receipt());
  for (int t = 0; t < kThreads; ++t) {
    Query q;
    q.entity = "e" + std::to_string(t);
    q.order = Order::Descending;
    q.limit = 1;
    auto last = (*reopened)->query(q);
    KEEL_REQUIRE_OK(last);
    REQUIRE(last->events.size() == 1);
    auto chain = (*reopened)->ancestors(last->events.front().event_id);
    KEEL_REQUIRE_OK(chain);
    CHECK(chain->chain.size() == kPerThread);
  }
}

// Issue #6: CAS at the commit point. Threads race to append the next clock of one entity, each
// reading the head and retrying on SequenceMismatch: every clock value has exactly one winner and
// every loser was told the actual clock.
TEST_CASE("threads racing CAS on one entity: exactly one winner per clock value",
          "[concurrency][write]") {
  test::TempDir dir;
  StoreOptions options;
  options.create_if_missing = true;
  auto store = Store::open(dir.path(), options);
  KEEL_REQUIRE_OK(store);
  constexpr int kThreads = 4;
  constexpr uint64_t kClocks = 60;
  std::vector<std::vector<uint64_t>> won(kThreads);
  std::vector<std::string> problems(kThreads);  // Catch2 assertions stay on the main thread
  std::atomic<uint64_t> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      AppendOptions cas;
      cas.durability = Durability::Written;
      uint64_t expected = 0;
      while (expected < kClocks && problems[t].empty()) {
        cas.expected_clock = expected;
        auto r = (*store)->append({"account:1", ""}, EventKind::make(1, 1), std::to_string(t), cas);
        if (r.ok()) {
          won[t].push_back(r->entity_clock);
          expected = r->entity_clock;
          continue;
        }
        uint64_t actual = r.error().field_u64("actual").value_or(0);
        if (!r.error().is(ErrorCode::SequenceMismatch) || actual <= expected) {
          problems[t] = r.error().to_string();  // a mismatch must name a clock someone else won
        }
        expected = actual;
        mismatches.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const std::string& problem : problems) CHECK(problem.empty());
  std::vector<int> winners(kClocks + kThreads + 1, 0);
  uint64_t total = 0;
  for (const auto& list : won) {
    for (uint64_t clock : list) ++winners[clock];
    total += list.size();
  }
  CHECK(total == kClocks);  // nobody appended past the last expected clock
  for (uint64_t clock = 1; clock <= kClocks; ++clock) CHECK(winners[clock] == 1);
  KEEL_REQUIRE_OK((*store)->sync());
  auto events = (*store)->entity_events("account:1", 0);
  KEEL_REQUIRE_OK(events);
  CHECK(events->size() == kClocks);
  INFO("mismatches seen: " << mismatches.load());
}

// Issue #6: many threads retrying one idempotency key get one event and the same receipt.
TEST_CASE("threads racing one idempotency key: one event, one receipt for all",
          "[concurrency][write]") {
  test::TempDir dir;
  StoreOptions options;
  options.create_if_missing = true;
  auto store = Store::open(dir.path(), options);
  KEEL_REQUIRE_OK(store);
  constexpr int kThreads = 4;
  constexpr int kKeys = 40;
  std::vector<std::vector<Receipt>> receipts(kThreads, std::vector<Receipt>(kKeys));
  std::vector<std::string> problems(kThreads);  // Catch2 assertions stay on the main thread
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      AppendOptions keyed;
      keyed.durability = t % 2 == 0 ? Durability::Durable : Durability::Written;
      for (int k = 0; k < kKeys && problems[t].empty(); ++k) {
        keyed.idempotency_key = "payment-" + std::to_string(k);
        auto r = (*store)->append({"payment:" + std::to_string(k), ""}, EventKind::make(1, 2),
                                  "charge", keyed);
        if (r.ok()) {
          receipts[t][k] = *r;
        } else {
          problems[t] = r.error().to_string();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (const std::string& problem : problems) REQUIRE(problem.empty());
  for (int k = 0; k < kKeys; ++k) {
    for (int t = 1; t < kThreads; ++t) CHECK(receipts[t][k] == receipts[0][k]);
  }
  KEEL_REQUIRE_OK((*store)->sync());
  auto stats = (*store)->stats();
  CHECK(stats.sequence_next == kKeys + 1);  // one event per key
  CHECK(stats.idempotency_hits == uint64_t{(kThreads - 1) * kKeys});
}
