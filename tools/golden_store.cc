#include "golden_store.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "format/event_body.h"
#include "log/log.h"

namespace keel::tools {
namespace {

// Golden event ids are (kEventIdHigh + n, kEventIdLow + n) for the n-th event made (from 1):
// fixed, so nothing in the store depends on time or randomness.
constexpr uint64_t kEventIdHigh = 0x0000018000000000ull;
constexpr uint64_t kEventIdLow = 0x6b65656c00000000ull;  // "keel\0\0\0\0"
constexpr uint64_t kWallMsBase = 1'700'000'000'000ull;
// Small segments, so a few dozen events rotate (the smallest size the writer accepts).
constexpr uint64_t kGoldenSegmentSize = 4096;

EventId golden_event_id(uint64_t n) { return EventId{kEventIdHigh + n, kEventIdLow + n}; }

// Builds events with deterministic ids, clocks and a correct (entity, lane) hash chain: each
// event's prev_hash is the chained hash of the previous visible event of its (entity, lane), and
// its causation is the previous visible event of the store.
class GoldenEvents {
 public:
  // The head of one (entity, lane): its last visible event's clock and chained hash.
  struct Head {
    uint64_t clock = 0;
    std::optional<Hash128> hash;
  };
  using Heads = std::map<std::tuple<std::string, uint32_t>, Head>;
  // What a cancelled fence rolls back: the chain heads and the last visible event
  // (docs/ARCHITECTURE.md §7: every touched head reverts to its last visible event).
  struct Checkpoint {
    Heads heads;
    std::optional<EventId> last_visible;
  };

  format::EventBody make(const std::string& entity, uint32_t lane, uint16_t kind,
                         const std::string& payload) {
    ++count_;
    auto& head = heads_[{entity, lane}];
    format::EventBody e;
    e.event_id = golden_event_id(count_);
    e.entity = keep(entity);
    e.scope = keep("golden");
    e.kind = kind;
    e.lane = lane;
    e.entity_clock = ++head.clock;
    e.hlc_wall_ms = kWallMsBase + count_;
    e.hlc_logical = static_cast<uint32_t>(count_ % 3);
    e.correlation_id = golden_event_id(1);
    e.causation_id = last_visible_;
    e.payload = keep(payload);
    e.prev_hash = head.hash;
    last_visible_ = e.event_id;
    return e;
  }
  // Records `hash` as the chained hash of `e`, the new head of its (entity, lane).
  void chained(const format::EventBody& e, const Hash128& hash) {
    heads_[{std::string(e.entity), e.lane}].hash = hash;
  }
  Checkpoint checkpoint() const { return Checkpoint{heads_, last_visible_}; }
  void restore(const Checkpoint& checkpoint) {
    heads_ = checkpoint.heads;
    last_visible_ = checkpoint.last_visible;
  }

 private:
  std::string_view keep(const std::string& s) {
    strings_.push_back(std::make_unique<std::string>(s));
    return *strings_.back();
  }
  uint64_t count_ = 0;
  Heads heads_;
  std::optional<EventId> last_visible_;
  std::vector<std::unique_ptr<std::string>> strings_;
};

// msgpack {"n": i} as bytes (i < 128: a positive fixint).
std::string payload(int i) {
  std::string p = "\x81\xa1n";
  p += static_cast<char>(i & 0x7f);
  return p;
}

Status append(log::SegmentWriter& w, GoldenEvents& g, const format::EventBody& e) {
  Hash128 hash;
  KEEL_TRY(w.append_event(e, &hash));
  g.chained(e, hash);
  return ok_status();
}

format::SystemRecord fence_record(format::RecordType type, uint64_t fence_id) {
  return format::SystemRecord{type, fence_id, format::CancelReason::Caller, 0};
}

// Four plain events, each synced alone (so durable_through grows frame by frame): order:1 on both
// lanes (two independent chains of one entity) and order:2 on lane 1.
Status write_plain_events(log::SegmentWriter& w, GoldenEvents& g) {
  const std::tuple<const char*, uint32_t> coordinates[] = {
      {"order:1", 0}, {"order:2", 1}, {"order:1", 1}, {"order:1", 0}};
  int i = 0;
  for (const auto& [entity, lane] : coordinates) {
    KEEL_TRY(append(w, g, g.make(entity, lane, 0x1001, payload(i++))));
    KEEL_TRY(w.sync());
  }
  return ok_status();
}

// A batch of three on order:1 lane 0, synced; each item chains to the one before it.
Status write_batch(log::SegmentWriter& w, GoldenEvents& g) {
  std::vector<format::EventBody> batch;
  for (int i = 0; i < 3; ++i) {
    format::EventBody e = g.make("order:1", 0, 0x1002, payload(10 + i));
    std::vector<std::byte> scratch;  // the chained hash does not depend on where the body sits
    g.chained(e, format::encode_event_body(scratch, e));
    batch.push_back(e);
  }
  KEEL_TRY(w.append_batch(batch, nullptr));
  return w.sync();
}

// Fence 1: begun, two fenced events on order:3, committed; one group, one sync.
Status write_committed_fence(log::SegmentWriter& w, GoldenEvents& g) {
  KEEL_TRY(w.append_system(fence_record(format::RecordType::FenceBegin, 1)));
  for (int i = 0; i < 2; ++i) {
    format::EventBody e = g.make("order:3", 0, 0x1003, payload(20 + i));
    e.fence_id = 1;
    KEEL_TRY(append(w, g, e));
  }
  KEEL_TRY(w.append_system(fence_record(format::RecordType::FenceCommit, 1)));
  return w.sync();
}

// Fence 2: begun, one fenced event on order:1 lane 0, cancelled by the caller. The event stays on
// disk but hidden, so the chain head of order:1 lane 0 reverts: the next event there takes the
// same clock and chains to the last visible event, as a store does.
Status write_cancelled_fence(log::SegmentWriter& w, GoldenEvents& g) {
  GoldenEvents::Checkpoint before = g.checkpoint();
  KEEL_TRY(w.append_system(fence_record(format::RecordType::FenceBegin, 2)));
  format::EventBody e = g.make("order:1", 0, 0x1003, payload(30));
  e.fence_id = 2;
  KEEL_TRY(append(w, g, e));
  KEEL_TRY(w.append_system(fence_record(format::RecordType::FenceCancel, 2)));
  KEEL_TRY(w.sync());
  g.restore(before);
  KEEL_TRY(append(w, g, g.make("order:1", 0, 0x1001, payload(31))));
  return w.sync();
}

// Events with metadata, an idempotency key and its fingerprint, each synced alone: enough to
// rotate twice with 4 KiB segments.
Status write_keyed_events(log::SegmentWriter& w, GoldenEvents& g) {
  // msgpack {"ip": "127.0.0.1"} (split so that \xa9 is not read as \xa91).
  const std::string metadata = std::string("\x81\xa2ip\xa9") + "127.0.0.1";
  for (int i = 0; i < 24; ++i) {
    format::EventBody e = g.make("order:5", 0, 0x2001, payload(40 + i) + std::string(64, 'x'));
    e.metadata = metadata;
    const std::string key = "golden-key-" + std::to_string(i);
    e.idempotency_key = key;
    e.idempotency_fingerprint =
        format::event_fingerprint(e.entity, e.scope, e.lane, e.kind, e.payload, e.metadata);
    KEEL_TRY(append(w, g, e));
    KEEL_TRY(w.sync());
  }
  return ok_status();
}

}  // namespace

Status write_golden_store(platform::FileSystem& fs, const std::string& directory) {
  log::LogOptions options;
  options.create_if_missing = true;
  options.writer.segment_size = kGoldenSegmentSize;
  KEEL_ASSIGN_OR_RETURN(auto log, log::Log::open(fs, directory, options));
  log::SegmentWriter& w = *log->writer();
  GoldenEvents g;
  KEEL_TRY(write_plain_events(w, g));
  KEEL_TRY(write_batch(w, g));
  KEEL_TRY(write_committed_fence(w, g));
  KEEL_TRY(write_cancelled_fence(w, g));
  KEEL_TRY(write_keyed_events(w, g));
  return log->close();
}

}  // namespace keel::tools
