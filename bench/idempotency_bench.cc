// The idempotency index on its own (issue #6): one keyed append's work on it (prefetch, find a new
// key, expire the oldest past the window, add), at a window that fits in cache and at the default
// 1M keys, filled before timing so the steady state (one key in, one out) is what is measured.
// Also the event fingerprint a keyed append computes. Peer: absl::flat_hash_map<std::string,
// uint64_t> doing the same find/insert/erase with the same keys.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <deque>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "format/event_body.h"
#include "index/idempotency_index.h"
#include "keel/event.h"

namespace {

using namespace keel;

void key_for(uint64_t i, std::string& key) {
  key.assign("req-");
  key += std::to_string(i);
}

Receipt receipt_for(uint64_t sequence) {
  Receipt r;
  r.sequence = sequence;
  r.event_id = {sequence, ~sequence};
  r.hlc = Hlc{1'000, 0};
  return r;
}

void BM_IdempotencyIndexSteady(benchmark::State& state) {
  const uint64_t window = static_cast<uint64_t>(state.range(0));
  index::IdempotencyIndex keys;
  std::string key;
  uint64_t sequence = 1;
  for (; sequence <= window; ++sequence) {
    key_for(sequence, key);
    if (!keys.add(key, Hash128{sequence, 1}, receipt_for(sequence))) std::abort();
  }
  for (auto _ : state) {
    key_for(sequence, key);
    const index::IdempotencyIndex::HashedKey hashed = keys.prefetch(key);  // as the store does
    if (keys.find(hashed) != nullptr) std::abort();
    keys.expire(sequence, 2'000, window, 0);
    if (!keys.add(hashed, Hash128{sequence, 1}, receipt_for(sequence))) std::abort();
    ++sequence;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_IdempotencyIndexSteady)->Arg(1'000)->Arg(1'000'000);

void BM_PeerStringMapSteady(benchmark::State& state) {
  const uint64_t window = static_cast<uint64_t>(state.range(0));
  absl::flat_hash_map<std::string, uint64_t> keys;
  std::deque<std::string> order;
  std::string key;
  uint64_t sequence = 1;
  for (; sequence <= window; ++sequence) {
    key_for(sequence, key);
    keys.emplace(key, sequence);
    order.push_back(key);
  }
  for (auto _ : state) {
    key_for(sequence, key);
    if (keys.contains(key)) std::abort();
    keys.erase(order.front());
    order.pop_front();
    keys.emplace(key, sequence);
    order.push_back(key);
    ++sequence;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PeerStringMapSteady)->Arg(1'000)->Arg(1'000'000);

void BM_EventFingerprint(benchmark::State& state) {
  const std::string payload(100, 'p');
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        format::event_fingerprint("order:10000", "bench", 0, 1, payload, std::nullopt));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EventFingerprint);

}  // namespace
BENCHMARK_MAIN();
