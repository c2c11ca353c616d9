// Concurrency tests of the store (run under TSan in CI: tag [concurrency]).
#include <atomic>
#include <catch2/catch.hpp>
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
