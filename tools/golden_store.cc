#include "golden_store.h"

#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "format/event_body.h"
#include "log/log.h"

namespace keel::tools {
namespace {

// Builds events with deterministic ids, clocks and a correct (entity, lane) hash chain.
class GoldenEvents {
 public:
  format::EventBody make(const std::string& entity, uint32_t lane, uint16_t kind,
                         const std::string& payload) {
    ++count_;
    auto& head = heads_[{entity, lane}];
    format::EventBody e;
    e.event_id = EventId{0x0000018000000000ull + count_, 0x6b65656c00000000ull + count_};
    e.entity = keep(entity);
    e.scope = keep("golden");
    e.kind = kind;
    e.lane = lane;
    e.entity_clock = ++head.clock;
    e.hlc_wall_ms = 1'700'000'000'000ull + count_;
    e.hlc_logical = static_cast<uint32_t>(count_ % 3);
    e.correlation_id = EventId{0x0000018000000000ull + 1, 0x6b65656c00000001ull};
    if (count_ > 1) e.causation_id = EventId{0x0000018000000000ull + count_ - 1, 0x6b65656c00000000ull + count_ - 1};
    e.payload = keep(payload);
    e.prev_hash = head.hash;
    return e;
  }
  void chained(const format::EventBody& e, const Hash128& hash) {
    heads_[{std::string(e.entity), e.lane}].hash = hash;
  }

 private:
  struct Head {
    uint64_t clock = 0;
    std::optional<Hash128> hash;
  };
  std::string_view keep(const std::string& s) {
    strings_.push_back(std::make_unique<std::string>(s));
    return *strings_.back();
  }
  uint64_t count_ = 0;
  std::map<std::tuple<std::string, uint32_t>, Head> heads_;
  std::vector<std::unique_ptr<std::string>> strings_;
};

// msgpack {"n": i} as bytes.
std::string payload(int i) {
  std::string p = "\x81\xa1n";
  p += static_cast<char>(i & 0x7f);
  return p;
}

Status append(log::SegmentWriter& w, GoldenEvents& g, format::EventBody e) {
  Hash128 hash;
  KEEL_TRY(w.append_event(e, &hash));
  g.chained(e, hash);
  return ok_status();
}

}  // namespace

Status write_golden_store(platform::FileSystem& fs, const std::string& directory) {
  log::LogOptions options;
  options.create_if_missing = true;
  options.writer.segment_size = 4096;
  KEEL_ASSIGN_OR_RETURN(auto log, log::Log::open(fs, directory, options));
  log::SegmentWriter& w = *log->writer();
  GoldenEvents g;
  // Plain events, two entities, two lanes; synced one by one.
  for (int i = 0; i < 4; ++i) {
    KEEL_TRY(append(w, g, g.make(i % 2 ? "order:2" : "order:1", i % 2, 0x1001, payload(i))));
    KEEL_TRY(w.sync());
  }
  // A batch of three; each item chains to the one before it.
  std::vector<format::EventBody> batch;
  for (int i = 0; i < 3; ++i) {
    auto e = g.make("order:1", 0, 0x1002, payload(10 + i));
    std::vector<std::byte> scratch;
    g.chained(e, format::encode_event_body(scratch, e));
    batch.push_back(e);
  }
  std::vector<Hash128> hashes;
  KEEL_TRY(w.append_batch(batch, &hashes));
  KEEL_TRY(w.sync());
  // A fence begun, two fenced events, committed.
  KEEL_TRY(w.append_system({format::RecordType::FenceBegin, 1, format::CancelReason::Caller, 0}));
  for (int i = 0; i < 2; ++i) {
    auto e = g.make("order:3", 0, 0x1003, payload(20 + i));
    e.fence_id = 1;
    KEEL_TRY(append(w, g, e));
  }
  KEEL_TRY(w.append_system({format::RecordType::FenceCommit, 1, format::CancelReason::Caller, 0}));
  KEEL_TRY(w.sync());
  // A fence begun, one fenced event, cancelled. (A store would revert the chain head; the golden
  // generator only needs the bytes.)
  KEEL_TRY(w.append_system({format::RecordType::FenceBegin, 2, format::CancelReason::Caller, 0}));
  {
    auto e = g.make("order:4", 0, 0x1003, payload(30));
    e.fence_id = 2;
    Hash128 ignored;
    KEEL_TRY(w.append_event(e, &ignored));
  }
  KEEL_TRY(w.append_system({format::RecordType::FenceCancel, 2, format::CancelReason::Caller, 0}));
  KEEL_TRY(w.sync());
  // Enough events with a metadata field and an idempotency key to rotate into segment 2.
  std::string metadata = "\x81\xa2ip\xa9" "127.0.0.1";
  for (int i = 0; i < 24; ++i) {
    auto e = g.make("order:5", 0, 0x2001, payload(40 + i) + std::string(64, 'x'));
    e.metadata = metadata;
    std::string key = "golden-key-" + std::to_string(i);
    e.idempotency_key = key;
    e.idempotency_fingerprint =
        format::event_fingerprint(e.entity, e.scope, e.lane, e.kind, e.payload, e.metadata);
    KEEL_TRY(append(w, g, e));
    KEEL_TRY(w.sync());
  }
  return log->close();
}

}  // namespace keel::tools
