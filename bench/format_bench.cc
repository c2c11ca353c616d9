// Micro-benchmarks of the on-disk format: encoding and decoding event frames, one event and a batch
// of 100, against two peers measured in the same binary on the same bytes (docs/ARCHITECTURE.md
// §11.7: the machines are shared, so ratios within one run mean more than absolute numbers):
//   - a bare XXH3-64 over the frame bytes (the checksum alone, the floor of any verified encode),
//   - a memcpy of the frame bytes (the floor of producing them at all).
// Every benchmark reports events/s (items) and frame bytes/s.
#include <benchmark/benchmark.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "format/checksum.h"
#include "format/event_body.h"
#include "format/frame.h"
#include "format/record.h"

namespace {

using keel::EventId;
using keel::Hash128;
using namespace keel::format;

constexpr uint64_t kSegmentId = 1;
constexpr FrameContext kContext{kSegmentId, /*epoch=*/3, /*durable_through=*/1 << 20};
constexpr uint64_t kSequence = 1'000'000;
constexpr size_t kBatchSize = 100;

// A 100-byte payload (opaque to the codec, which copies it).
const std::string kPayload = [] {
  std::string p;
  for (size_t i = 0; i < 100; ++i) p.push_back(static_cast<char>('a' + i % 26));
  return p;
}();

EventBody realistic_event(uint64_t index) {
  EventBody e;
  e.event_id = EventId{0x0000018c2f3a1b00 + index, 0x9e3779b97f4a7c15 ^ index};
  e.entity = "order:12345";
  e.scope = "billing";
  e.kind = 0x1002;  // category 1, type 2
  e.lane = 0;
  e.entity_clock = 42 + index;
  e.hlc_wall_ms = 1'700'000'000'123 + index;
  e.hlc_logical = static_cast<uint32_t>(index % 4);
  e.correlation_id = EventId{0x0000018c2f3a1a00, 0x1234567890abcdef};
  e.causation_id = EventId{0x0000018c2f3a1aff + index, 0x0fedcba987654321};
  e.payload = kPayload;
  e.prev_hash = Hash128{0x243f6a8885a308d3 + index, 0x13198a2e03707344};
  return e;
}

std::vector<EventBody> realistic_batch() {
  std::vector<EventBody> events;
  for (uint64_t i = 0; i < kBatchSize; ++i) events.push_back(realistic_event(i));
  return events;
}

std::vector<std::byte> encoded_event_frame() {
  std::vector<std::byte> out;
  append_event_frame(out, kContext, kSequence, realistic_event(0), nullptr);
  return out;
}

std::vector<std::byte> encoded_batch_frame() {
  std::vector<std::byte> out;
  auto events = realistic_batch();
  append_batch_frame(out, kContext, kSequence, events, nullptr);
  return out;
}

// The frame the peer benchmarks work on: Arg 1 = the one-event frame, Arg 100 = the batch frame.
std::vector<std::byte> frame_for_events(int64_t events) {
  return events == 1 ? encoded_event_frame() : encoded_batch_frame();
}

void report(benchmark::State& state, uint64_t events_per_iteration, size_t bytes_per_iteration) {
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * events_per_iteration));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes_per_iteration));
  state.counters["frame_bytes"] = static_cast<double>(bytes_per_iteration);
}

void fail_unless(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "format_bench: %s\n", what);
    std::abort();
  }
}

// Decodes the frame and every event in it; with `verify`, also recomputes each chained hash.
// Returns the number of events (checked by the caller once, outside the timed loop).
template <bool kVerify>
uint32_t decode_all(std::span<const std::byte> bytes) {
  DecodedFrame frame;
  if (decode_frame(bytes, kSegmentId, frame) != FrameDecode::Ok) return 0;
  uint32_t events = 0;
  bool hashes_match = true;
  const char* error = decode_record_events(frame, [&](uint32_t, const EventBody& event) {
    benchmark::DoNotOptimize(event.entity_clock);
    benchmark::DoNotOptimize(event.payload.data());
    if constexpr (kVerify) hashes_match &= hash128(event.hashed_bytes) == event.chained_hash;
    ++events;
  });
  return error == nullptr && hashes_match ? events : 0;
}

// ---- (a) encode one event -------------------------------------------------------------------

void BM_EncodeEventFrame(benchmark::State& state) {
  EventBody event = realistic_event(0);
  std::vector<std::byte> out;
  out.reserve(4096);
  size_t frame_size = 0;
  for (auto _ : state) {
    out.clear();
    Hash128 chained;
    frame_size = append_event_frame(out, kContext, kSequence, event, &chained);
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(chained);
    benchmark::ClobberMemory();
  }
  report(state, 1, frame_size);
}
BENCHMARK(BM_EncodeEventFrame);

// ---- (b) decode one event, with and without verifying its chained hash -------------------------

void BM_DecodeEventFrame(benchmark::State& state) {
  auto frame = encoded_event_frame();
  fail_unless(decode_all<false>(frame) == 1, "the event frame does not decode");
  for (auto _ : state) benchmark::DoNotOptimize(decode_all<false>(frame));
  report(state, 1, frame.size());
}
BENCHMARK(BM_DecodeEventFrame);

void BM_DecodeVerifyEventFrame(benchmark::State& state) {
  auto frame = encoded_event_frame();
  fail_unless(decode_all<true>(frame) == 1, "the event frame does not verify");
  for (auto _ : state) benchmark::DoNotOptimize(decode_all<true>(frame));
  report(state, 1, frame.size());
}
BENCHMARK(BM_DecodeVerifyEventFrame);

// ---- (c) a batch of 100 events: encode, decode, decode + verify -------------------------------

void BM_EncodeBatch100Frame(benchmark::State& state) {
  auto events = realistic_batch();
  std::vector<std::byte> out;
  out.reserve(64 * 1024);
  std::vector<Hash128> chained;
  chained.reserve(kBatchSize);
  size_t frame_size = 0;
  for (auto _ : state) {
    out.clear();
    chained.clear();
    frame_size = append_batch_frame(out, kContext, kSequence, events, &chained);
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(chained.data());
    benchmark::ClobberMemory();
  }
  report(state, kBatchSize, frame_size);
}
BENCHMARK(BM_EncodeBatch100Frame);

void BM_DecodeBatch100Frame(benchmark::State& state) {
  auto frame = encoded_batch_frame();
  fail_unless(decode_all<false>(frame) == kBatchSize, "the batch frame does not decode");
  for (auto _ : state) benchmark::DoNotOptimize(decode_all<false>(frame));
  report(state, kBatchSize, frame.size());
}
BENCHMARK(BM_DecodeBatch100Frame);

void BM_DecodeVerifyBatch100Frame(benchmark::State& state) {
  auto frame = encoded_batch_frame();
  fail_unless(decode_all<true>(frame) == kBatchSize, "the batch frame does not verify");
  for (auto _ : state) benchmark::DoNotOptimize(decode_all<true>(frame));
  report(state, kBatchSize, frame.size());
}
BENCHMARK(BM_DecodeVerifyBatch100Frame);

// ---- (d) peers on the same bytes: a bare checksum and a copy -----------------------------------

void BM_PeerXxh3_64(benchmark::State& state) {
  int64_t events = state.range(0);
  auto frame = frame_for_events(events);
  for (auto _ : state) {
    benchmark::DoNotOptimize(frame.data());
    uint64_t sum = XXH3_64bits_withSeed(frame.data(), frame.size(), kSegmentId);
    benchmark::DoNotOptimize(sum);
  }
  report(state, static_cast<uint64_t>(events), frame.size());
}
BENCHMARK(BM_PeerXxh3_64)->Arg(1)->Arg(kBatchSize)->ArgName("events");

void BM_PeerMemcpy(benchmark::State& state) {
  int64_t events = state.range(0);
  auto frame = frame_for_events(events);
  std::vector<std::byte> copy(frame.size());
  for (auto _ : state) {
    benchmark::DoNotOptimize(frame.data());
    std::memcpy(copy.data(), frame.data(), frame.size());
    benchmark::DoNotOptimize(copy.data());
    benchmark::ClobberMemory();
  }
  report(state, static_cast<uint64_t>(events), frame.size());
}
BENCHMARK(BM_PeerMemcpy)->Arg(1)->Arg(kBatchSize)->ArgName("events");

}  // namespace

BENCHMARK_MAIN();
