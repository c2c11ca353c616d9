// The block cache of point reads (log/block_cache.h) and the store reading through it: least
// recently used blocks go first, and reads through the cache return exactly what reads without it
// do while the active segment grows and rotates.
#include "log/block_cache.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "keel/keel.h"
#include "platform/memory_file_system.h"
#include "test_support.h"

using namespace keel;

namespace {

log::BlockCache::Block block_of(char fill) {
  auto bytes = std::make_shared<log::BlockCache::Bytes>(16);
  std::fill_n(bytes->data.get(), 16, static_cast<std::byte>(fill));
  return bytes;
}

}  // namespace

TEST_CASE("the block cache keeps the most recently used blocks up to its capacity", "[cache]") {
  log::BlockCache cache(2 * log::BlockCache::kBlockBytes);
  REQUIRE(cache.enabled());
  cache.insert(1, 0, block_of('a'));
  cache.insert(1, 1, block_of('b'));
  REQUIRE(cache.find(1, 0)->size == 16);  // block 0 is now the most recently used
  cache.insert(2, 0, block_of('c'));      // evicts block (1, 1)
  CHECK(cache.find(1, 1) == nullptr);
  CHECK(cache.find(1, 0)->data[0] == std::byte{'a'});
  CHECK(cache.find(2, 0)->data[0] == std::byte{'c'});
  CHECK(cache.bytes() == 2 * log::BlockCache::kBlockBytes);
  CHECK(cache.hits() == 3);
  CHECK(cache.misses() == 1);
  log::BlockCache::Block held = cache.find(2, 0);
  cache.insert(2, 0, block_of('d'));       // replacing a block keeps one copy
  CHECK(held->data[0] == std::byte{'c'});  // a reader's block outlives its eviction
  CHECK(cache.find(2, 0)->data[0] == std::byte{'d'});
  CHECK(cache.bytes() == 2 * log::BlockCache::kBlockBytes);
  cache.clear();
  CHECK(cache.find(1, 0) == nullptr);
  CHECK_FALSE(log::BlockCache(log::BlockCache::kBlockBytes - 1).enabled());
}

TEST_CASE("reads through the block cache equal reads without it while segments grow and rotate",
          "[cache][store]") {
  platform::MemoryFileSystem fs;
  auto open_with = [&](const std::string& dir, uint64_t cache_bytes) {
    StoreOptions options;
    options.create_if_missing = true;
    options.file_system = &fs;
    options.segment_size = 64 << 10;  // a few blocks per segment: reads cross rotations
    options.id_seed = 7;
    options.read_cache_bytes = cache_bytes;
    auto opened = Store::open(dir, options);
    REQUIRE(opened.ok());
    return std::move(opened).value();
  };
  auto cached = open_with("/cached", 64 << 20);
  auto uncached = open_with("/uncached", 0);
  std::vector<EventId> cached_ids;
  std::vector<EventId> uncached_ids;
  for (int i = 0; i < 3000; ++i) {
    std::string entity = "order:" + std::to_string(i % 37);
    std::string payload(50 + i % 200, static_cast<char>('a' + i % 26));
    auto a = cached->append({entity, "s"}, EventKind::make(1, 1), payload);
    auto b = uncached->append({entity, "s"}, EventKind::make(1, 1), payload);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    cached_ids.push_back(a->event_id);
    uncached_ids.push_back(b->event_id);
    // Read back an earlier event and the newest (whose block is still being written).
    for (size_t k : {static_cast<size_t>(i) / 2, static_cast<size_t>(i)}) {
      auto x = cached->get(cached_ids[k]);
      auto y = uncached->get(uncached_ids[k]);
      REQUIRE(x.ok());
      REQUIRE(y.ok());
      REQUIRE(x->payload == y->payload);
      REQUIRE(x->sequence == y->sequence);
      REQUIRE(x->entity_clock == y->entity_clock);
    }
  }
  REQUIRE(cached->stats().segments > 3);
  for (size_t k = 0; k < cached_ids.size(); ++k) {
    auto x = cached->get(cached_ids[k]);
    REQUIRE(x.ok());
    REQUIRE(x->payload == uncached->get(uncached_ids[k])->payload);
  }
}

// Query pages read their frames in runs (one read per run of nearby frames, RecordReader::
// hold_frames) and point reads go through the cache: every page, dense or sparse, of batches and
// single events, small and large, across segment ends and the active segment's growing tail, must
// hold exactly what a point read of each sequence gives.
TEST_CASE("query pages read in runs equal point reads of every event", "[cache][store][query]") {
  platform::MemoryFileSystem fs;
  StoreOptions options;
  options.create_if_missing = true;
  options.file_system = &fs;
  options.segment_size = 64 << 10;
  options.id_seed = 3;
  auto opened = Store::open("/store", options);
  REQUIRE(opened.ok());
  Store& store = **opened;
  auto compare_pages = [&](Query filter, size_t limit) {
    filter.limit = limit;
    filter.with_payload = true;
    uint64_t pages = 0;
    for (;;) {
      auto page = store.query(filter);
      REQUIRE(page.ok());
      for (const Event& e : page->events) {
        auto point = store.read(e.sequence);
        REQUIRE(point.ok());
        INFO("sequence " << e.sequence << " limit " << limit << " pages " << pages);
        REQUIRE(point->payload == e.payload);
        REQUIRE(point->event_id == e.event_id);
        REQUIRE(point->coordinate.entity == e.coordinate.entity);
      }
      ++pages;
      if (!page->next_after) return pages;
      filter.after = page->next_after;
    }
  };
  for (int round = 0; round < 40; ++round) {
    if (round % 3 == 0) {  // a batch: events sharing one frame
      std::vector<BatchItem> items;
      for (int i = 0; i < 1 + round % 17; ++i) {
        items.push_back({{"order:" + std::to_string(i % 5), "s"},
                         EventKind::make(1, 1),
                         std::string(20 + i * 3, static_cast<char>('a' + i % 26)),
                         {}});
      }
      REQUIRE(store.append_batch(items).ok());
    } else {
      for (int i = 0; i < 30; ++i) {
        // Mostly small; now and then larger than a run's tail read and than a cache block.
        size_t size = i % 11 == 0 ? 40'000 : i % 7 == 0 ? 2'000 : 50 + i;
        REQUIRE(store
                    .append({"user:" + std::to_string(i % 4), "s"}, EventKind::make(1, 2),
                            std::string(size, static_cast<char>('A' + i % 26)))
                    .ok());
      }
    }
    Query rare;
    rare.entity = "user:3";
    Query batches;
    batches.entity_prefix = "order:";
    Query newest_first = batches;  // a batch's events visited backwards from one frame
    newest_first.order = Order::Descending;
    for (size_t limit : {size_t{1}, size_t{7}, size_t{1000}}) {
      compare_pages(Query{}, limit);
      compare_pages(rare, limit);
      compare_pages(batches, limit);
      compare_pages(newest_first, limit);
    }
  }
  REQUIRE(store.stats().segments > 3);
}
