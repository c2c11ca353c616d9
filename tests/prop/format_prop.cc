// Property tests of the on-disk format (segments/FORMAT.md) with rapidcheck:
//   (a) whatever sequence of events, batches, fences and syncs a SegmentWriter writes (small
//       segments, so it rotates) reads back through recovery exactly: every field, order,
//       sequences, chained hashes, fences;
//   (b) any single-byte change inside a frame is detected by decode_frame, and recovery never
//       delivers altered content: what it delivers is exactly the records before the damage;
//   (c) the event body codec round-trips in both forms, and msgpack-c reads the msgpack form as a
//       standard msgpack array of 17 fields with the same values.
// Negative controls ([control]) show the checks of (b) fail when the checksum is bypassed.
#include <rapidcheck/catch.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <msgpack.hpp>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "format/byte_order.h"
#include "format/checksum.h"
#include "format/event_body.h"
#include "format/frame.h"
#include "format/record.h"
#include "log/log.h"
#include "log/segment_files.h"
#include "owned_event.h"
#include "platform/memory_file_system.h"
#include "test_support.h"

namespace keel::format {
namespace {

using test::OwnedEvent;


// ---- Generators ----

// `length` bytes of every value 0..255, from a seed (fast for 70 KB; shrinks by length and seed).
std::string filled_bytes(size_t length, uint64_t seed) {
  std::string s(length, '\0');
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x >> 56);
  }
  return s;
}

enum class Sizes : uint8_t {
  Small,   // up to 255 bytes: fixstr, str8, bin8
  Medium,  // payload and metadata up to 4 KB: also bin16 (entity stays Small)
  Large,   // up to ~70 KB, entity included: also str16, str32, bin32
};

rc::Gen<size_t> gen_length_scaled(Sizes sizes) {
  using rc::gen::inRange;
  using rc::gen::just;
  switch (sizes) {
    case Sizes::Small:
      return rc::gen::weightedOneOf<size_t>(
          {{1, just<size_t>(0)}, {6, inRange<size_t>(1, 32)}, {3, inRange<size_t>(32, 256)}});
    case Sizes::Medium:
      return rc::gen::weightedOneOf<size_t>({{1, just<size_t>(0)},
                                             {6, inRange<size_t>(1, 32)},
                                             {3, inRange<size_t>(32, 256)},
                                             {2, inRange<size_t>(256, 4096)}});
    case Sizes::Large:
      return rc::gen::weightedOneOf<size_t>({{1, just<size_t>(0)},
                                             {6, inRange<size_t>(1, 32)},
                                             {3, inRange<size_t>(32, 256)},
                                             {2, inRange<size_t>(256, 4096)},
                                             {1, inRange<size_t>(65'536, 70'001)}});
  }
  return just<size_t>(0);
}

// Lengths at full range from the first case (rapidcheck scales inRange with the case's size).
rc::Gen<size_t> gen_length(Sizes sizes) { return rc::gen::resize(100, gen_length_scaled(sizes)); }

rc::Gen<std::string> gen_bytes(Sizes sizes) {
  return rc::gen::exec([sizes] {
    size_t length = *gen_length(sizes);
    return filled_bytes(length, *rc::gen::arbitrary<uint64_t>());
  });
}

template <class T>
rc::Gen<std::optional<T>> gen_optional(rc::Gen<T> gen) {
  return rc::gen::exec([gen] {
    if (!*rc::gen::arbitrary<bool>()) return std::optional<T>();
    return std::optional<T>(*gen);
  });
}

rc::Gen<EventId> gen_id() {
  return rc::gen::exec([] {
    return EventId{*rc::gen::arbitrary<uint64_t>(), *rc::gen::arbitrary<uint64_t>()};
  });
}

rc::Gen<Hash128> gen_hash() {
  return rc::gen::exec([] {
    return Hash128{*rc::gen::arbitrary<uint64_t>(), *rc::gen::arbitrary<uint64_t>()};
  });
}

// Any event, every optional field present or absent. `fence_id` decides the fence field, since
// in a log it must match the fence the event is written in.
rc::Gen<OwnedEvent> gen_event(Sizes sizes, std::optional<uint64_t> fence_id) {
  return rc::gen::exec([sizes, fence_id] {
    OwnedEvent e;
    e.event_id = *gen_id();
    e.entity = *gen_bytes(sizes == Sizes::Large ? Sizes::Large : Sizes::Small);
    e.scope = *gen_bytes(Sizes::Small);
    e.kind = *rc::gen::arbitrary<uint16_t>();
    e.lane = *rc::gen::arbitrary<uint32_t>();
    e.entity_clock = *rc::gen::arbitrary<uint64_t>();
    e.hlc_wall_ms = *rc::gen::arbitrary<uint64_t>();
    e.hlc_logical = *rc::gen::arbitrary<uint32_t>();
    e.correlation_id = *gen_id();
    e.causation_id = *gen_optional(gen_id());
    e.idempotency_key = *gen_optional(gen_bytes(Sizes::Small));
    e.idempotency_fingerprint = *gen_optional(gen_hash());
    e.fence_id = fence_id;
    e.metadata = *gen_optional(gen_bytes(sizes));
    e.payload = *gen_bytes(sizes);
    e.prev_hash = *gen_optional(gen_hash());
    e.format = *rc::gen::element(BodyFormat::Msgpack, BodyFormat::Compact);
    if (*rc::gen::arbitrary<bool>()) {  // an id as keel makes it, its high half the HLC
      e.hlc_wall_ms &= kIdHlcWallLimit - 1;
      e.hlc_logical &= (1u << kIdHlcLogicalBits) - 1;
      e.event_id.high = e.hlc_wall_ms << kIdHlcLogicalBits | e.hlc_logical;
    }
    if (*rc::gen::arbitrary<bool>()) e.correlation_id = e.event_id;  // the root of its correlation
    return e;
  });
}

// Uniform over [low, high) whatever the case's size (rapidcheck's inRange scales with it, which
// would put every early change at the first bytes of a frame).
template <class T>
rc::Gen<T> gen_uniform(T low, T high) {
  return rc::gen::resize(100, rc::gen::inRange<T>(low, high));
}

rc::Gen<std::byte> gen_xor_mask() {
  return rc::gen::map(gen_uniform(1, 256), [](int mask) { return static_cast<std::byte>(mask); });
}

rc::Gen<uint64_t> gen_fence_id() { return rc::gen::inRange<uint64_t>(1, UINT64_MAX); }

// ---- Writing logs ----

// One step of a writer's life.
struct Step {
  enum class Kind : uint8_t { Event, Batch, Sync, Flush, Fence } kind = Kind::Event;
  std::vector<OwnedEvent> events;
  uint64_t fence_id = 0;
  bool fence_as_batch = false;  // Fence: its events in one batch rather than one by one
  bool fence_committed = true;  // Fence: commit, else cancel
};

void showValue(const Step& s, std::ostream& os) {
  static const char* const kNames[] = {"Event", "Batch", "Sync", "Flush", "Fence"};
  os << kNames[static_cast<int>(s.kind)] << "(" << s.events.size() << " events)";
}

rc::Gen<std::vector<OwnedEvent>> gen_events(Sizes sizes, std::optional<uint64_t> fence_id,
                                            size_t max) {
  return rc::gen::exec([=] {
    size_t n = *rc::gen::inRange<size_t>(1, max + 1);
    return *rc::gen::container<std::vector<OwnedEvent>>(n, gen_event(sizes, fence_id));
  });
}

rc::Gen<Step> gen_step(Sizes sizes) {
  return rc::gen::exec([sizes] {
    Step step;
    step.kind = *rc::gen::weightedOneOf<Step::Kind>({
        {6, rc::gen::just(Step::Kind::Event)},
        {2, rc::gen::just(Step::Kind::Batch)},
        {2, rc::gen::just(Step::Kind::Sync)},
        {1, rc::gen::just(Step::Kind::Flush)},
        {1, rc::gen::just(Step::Kind::Fence)},
    });
    switch (step.kind) {
      case Step::Kind::Event:
        step.events = *gen_events(sizes, std::nullopt, 1);
        break;
      case Step::Kind::Batch:
        step.events = *gen_events(sizes, std::nullopt, 5);
        break;
      case Step::Kind::Fence:
        step.fence_id = *gen_fence_id();
        step.events = *gen_events(sizes, step.fence_id, 3);
        step.fence_as_batch = *rc::gen::arbitrary<bool>();
        step.fence_committed = *rc::gen::arbitrary<bool>();
        break;
      case Step::Kind::Sync:
      case Step::Kind::Flush:
        break;
    }
    return step;
  });
}

// A whole writer's life: the segment size, the steps, and how it ends.
struct Script {
  uint64_t segment_size = 4096;
  std::vector<Step> steps;
  std::optional<Step> open_fence;  // a fence begun and never ended, at the tail
  bool close = true;               // else only flushed: the preallocated zeros stay
};

rc::Gen<Script> gen_script(Sizes sizes, size_t max_steps) {
  return rc::gen::exec([=] {
    Script script;
    script.segment_size = *rc::gen::element<uint64_t>(4096, 4096, 4096, 8192, 16384, 65536);
    size_t n = *rc::gen::inRange<size_t>(0, max_steps + 1);
    script.steps = *rc::gen::container<std::vector<Step>>(n, gen_step(sizes));
    if (*rc::gen::inRange(0, 4) == 0) {
      Step fence;
      fence.kind = Step::Kind::Fence;
      fence.fence_id = *gen_fence_id();
      fence.events = *gen_events(sizes, fence.fence_id, 2);
      script.open_fence = fence;
    }
    script.close = *rc::gen::arbitrary<bool>();
    return script;
  });
}

// An event as the log holds it: its sequence and chained hash with it.
struct LoggedEvent {
  uint64_t sequence = 0;
  OwnedEvent event;
  Hash128 chained_hash;
  friend bool operator==(const LoggedEvent&, const LoggedEvent&) = default;
};

struct LoggedFence {
  uint64_t fence_id = 0;
  uint64_t first_sequence = 0;
  uint64_t end_sequence = 0;
  log::FenceState state = log::FenceState::Committed;
};

// What a script wrote (the model the read-back is compared with).
struct Written {
  std::vector<LoggedEvent> events;
  std::vector<LoggedFence> fences;
  uint64_t segment_count = 0;
  uint64_t payload_too_large_count = 0;
};

constexpr char kDirectory[] = "/store";

// Whether a record of `frame_size` bytes can never fit a segment (the writer's PayloadTooLarge).
bool never_fits(size_t frame_size, uint64_t segment_size) {
  return kSegmentHeaderSize + frame_size + log::kSealFrameMax > segment_size;
}

class ScriptWriter {
 public:
  ScriptWriter(log::SegmentWriter& writer, uint64_t segment_size, Written& written)
      : writer_(writer), segment_size_(segment_size), written_(written) {}

  void run(const Step& step) {
    switch (step.kind) {
      case Step::Kind::Event:
        append_each(step.events);
        break;
      case Step::Kind::Batch:
        append_batch(step.events);
        break;
      case Step::Kind::Sync:
        RC_ASSERT(writer_.sync().ok());
        break;
      case Step::Kind::Flush:
        RC_ASSERT(writer_.flush().ok());
        break;
      case Step::Kind::Fence:
        run_fence(step, step.fence_committed ? RecordType::FenceCommit : RecordType::FenceCancel);
        break;
    }
  }

  // Begins the fence and appends its events; ends it with `end` unless that is FenceBegin.
  void run_fence(const Step& step, RecordType end) {
    RC_ASSERT(writer_.append_system({RecordType::FenceBegin, step.fence_id}).ok());
    LoggedFence fence{step.fence_id, writer_.next_sequence(), 0, log::FenceState::OpenAtTail};
    if (step.fence_as_batch) {
      append_batch(step.events);
    } else {
      append_each(step.events);
    }
    fence.end_sequence = writer_.next_sequence();
    if (end != RecordType::FenceBegin) {
      RC_ASSERT(writer_.append_system({end, step.fence_id, CancelReason::Caller}).ok());
      fence.state =
          end == RecordType::FenceCommit ? log::FenceState::Committed : log::FenceState::Cancelled;
    }
    written_.fences.push_back(fence);
  }

 private:
  void append_each(const std::vector<OwnedEvent>& events) {
    for (const OwnedEvent& event : events) {
      std::vector<std::byte> scratch;
      size_t frame_size = append_event_frame(scratch, {}, 0, event.body(), nullptr);
      uint64_t sequence = writer_.next_sequence();
      Hash128 hash;
      Status appended = writer_.append_event(event.body(), &hash);
      if (!check_refusal(appended, frame_size)) continue;
      written_.events.push_back({sequence, event, hash});
    }
  }

  void append_batch(const std::vector<OwnedEvent>& events) {
    std::vector<EventBody> bodies;
    for (const OwnedEvent& event : events) bodies.push_back(event.body());
    std::vector<std::byte> scratch;
    size_t frame_size = append_batch_frame(scratch, {}, 0, bodies, nullptr);
    uint64_t sequence = writer_.next_sequence();
    std::vector<Hash128> hashes;
    Status appended = writer_.append_batch(bodies, &hashes);
    if (!check_refusal(appended, frame_size)) return;
    RC_ASSERT(hashes.size() == events.size());
    for (size_t i = 0; i < events.size(); ++i) {
      written_.events.push_back({sequence + i, events[i], hashes[i]});
    }
  }

  // The writer refuses a record exactly when it can never fit a segment. Returns whether the
  // record was appended.
  bool check_refusal(const Status& appended, size_t frame_size) {
    bool too_large = never_fits(frame_size, segment_size_);
    if (too_large) {
      RC_ASSERT(!appended.ok());
      RC_ASSERT(appended.error().is(ErrorCode::PayloadTooLarge));
      ++written_.payload_too_large_count;
      return false;
    }
    RC_ASSERT(appended.ok());
    return true;
  }

  log::SegmentWriter& writer_;
  uint64_t segment_size_;
  Written& written_;
};

// Writes the script's log into `fs` and returns what it wrote.
Written write_script(platform::MemoryFileSystem& fs, const Script& script) {
  log::LogOptions options;
  options.create_if_missing = true;
  options.writer.segment_size = script.segment_size;
  auto opened = log::Log::open(fs, kDirectory, options);
  RC_ASSERT(opened.ok());
  log::Log& log = **opened;
  Written written;
  ScriptWriter writer(*log.writer(), script.segment_size, written);
  for (const Step& step : script.steps) writer.run(step);
  if (script.open_fence) writer.run_fence(*script.open_fence, RecordType::FenceBegin);
  written.segment_count = log.writer()->active_segment_id();
  RC_ASSERT((script.close ? log.close() : log.writer()->flush()).ok());
  return written;
}

// ---- Reading logs back ----

struct ReadRecord {
  log::RecordPosition position;
  uint64_t size = 0;
  uint32_t event_count = 0;
};

struct ReadBack {
  std::optional<StoreError> error;
  std::vector<LoggedEvent> events;
  std::vector<ReadRecord> records;
  std::vector<log::FenceRange> fences;
  std::vector<log::RecoveryAction> actions;
  bool chained_hashes_match = true;  // every event's hash128(hashed bytes) == its chained hash
};

// Opens the store (read-only unless `writable`) and collects every event recovery delivers.
ReadBack read_log(platform::FileSystem& fs, bool writable) {
  ReadBack read;
  auto visit = [&](const log::RecordPosition& at, const DecodedFrame& frame) {
    ReadRecord record{at, frame.size, 0};
    if (!is_system_record(frame.header.type)) {
      const char* error = decode_record_events(frame, [&](uint32_t index, const EventBody& e) {
        read.chained_hashes_match &= hash128(e.hashed_bytes) == e.chained_hash;
        read.events.push_back({frame.header.sequence + index, OwnedEvent::from(e), e.chained_hash});
        ++record.event_count;
      });
      RC_ASSERT(error == nullptr);
    }
    read.records.push_back(record);
  };
  log::LogOptions options;
  options.read_only = !writable;
  options.writer.segment_size = 65536;
  auto opened = log::Log::open(fs, kDirectory, options, visit);
  if (!opened.ok()) {
    read.error = opened.error();
    return read;
  }
  read.fences = (*opened)->recovered().fences;
  read.actions = (*opened)->recovered().actions;
  if (writable) RC_ASSERT((*opened)->close().ok());
  return read;
}

bool same_events(const std::vector<LoggedEvent>& expected, const std::vector<LoggedEvent>& read) {
  return read == expected;
}

bool same_fences(const std::vector<LoggedFence>& expected,
                 const std::vector<log::FenceRange>& read) {
  return std::equal(expected.begin(), expected.end(), read.begin(), read.end(),
                    [](const LoggedFence& e, const log::FenceRange& r) {
                      return e.fence_id == r.fence_id && e.first_sequence == r.first_sequence &&
                             e.end_sequence == r.end_sequence && e.state == r.state;
                    });
}

// The id of the newest segment file (the active one, whose tail recovery may repair).
uint64_t newest_segment_id(platform::FileSystem& fs) {
  auto files = log::list_segment_files(fs, kDirectory);
  RC_ASSERT(files.ok());
  RC_ASSERT(!files->empty());
  return files->back().segment_id;
}

// Changes one byte of a segment file.
void change_byte(platform::MemoryFileSystem& fs, uint64_t segment_id, uint64_t offset,
                 std::byte mask) {
  std::string path = platform::join_path(kDirectory, log::segment_file_name(segment_id));
  std::vector<std::byte> bytes = fs.contents(path);
  bytes.at(offset) ^= mask;
  fs.set_contents(path, bytes);
}

// The bytes of every segment file, by id.
std::vector<std::vector<std::byte>> segment_bytes(platform::MemoryFileSystem& fs) {
  auto files = log::list_segment_files(fs, kDirectory);
  RC_ASSERT(files.ok());
  std::vector<std::vector<std::byte>> bytes;
  for (const log::SegmentFile& file : *files) bytes.push_back(fs.contents(file.path));
  return bytes;
}

// ---- (c) the event body codec ----

TEST_CASE("event bodies round-trip through the codec", "[prop][format]") {
  rc::prop("decode(encode(e)) == e, the hash covers the body before it, and nothing else", [] {
    OwnedEvent event = *gen_event(Sizes::Large, *gen_optional(gen_fence_id()));
    std::string prefix = *gen_bytes(Sizes::Small);
    std::vector<std::byte> out(reinterpret_cast<const std::byte*>(prefix.data()),
                               reinterpret_cast<const std::byte*>(prefix.data()) + prefix.size());
    Hash128 chained = encode_event_body(out, event.body());
    std::span<const std::byte> body = std::span<const std::byte>(out).subspan(prefix.size());

    MsgpackReader reader(body);
    EventBody decoded;
    RC_ASSERT(decode_event_body(reader, decoded) == nullptr);
    RC_ASSERT(reader.at_end());
    RC_ASSERT(OwnedEvent::from(decoded) == event);
    RC_ASSERT(decoded.chained_hash == chained);
    // The chained hash covers every body byte before it (not the caller's prefix), and the hash
    // itself is the last field: bin8 tag, length 16, 16 bytes (msgpack), or the 16 bytes alone.
    RC_ASSERT(decoded.hashed_bytes.data() == body.data());
    RC_ASSERT(decoded.hashed_bytes.size() + (event.format == BodyFormat::Msgpack ? 18 : 16) ==
              body.size());
    RC_ASSERT(decoded.stored_bytes.data() == body.data());
    RC_ASSERT(decoded.stored_bytes.size() == body.size());
    RC_ASSERT(hash128(decoded.hashed_bytes) == chained);
    RC_CLASSIFY(event.format == BodyFormat::Compact, "compact");
    RC_CLASSIFY(event.payload.size() > 0xffff, "bin32 payload");
    RC_CLASSIFY(event.entity.size() > 0xff, "str16+ entity");
  });
}

// Reads a bin of 16 bytes as (high, low), as the format stores ids and hashes.
std::optional<std::pair<uint64_t, uint64_t>> bin128_of(const msgpack::object& o) {
  if (o.type != msgpack::type::BIN || o.via.bin.size != 16) return std::nullopt;
  uint64_t high = 0;
  uint64_t low = 0;
  for (int i = 0; i < 8; ++i) high = (high << 8) | static_cast<uint8_t>(o.via.bin.ptr[i]);
  for (int i = 8; i < 16; ++i) low = (low << 8) | static_cast<uint8_t>(o.via.bin.ptr[i]);
  return std::pair{high, low};
}

template <class T>
bool same_128(const msgpack::object& o, const T& value) {
  auto v = bin128_of(o);
  return v && v->first == value.high && v->second == value.low;
}

template <class T>
bool same_optional_128(const msgpack::object& o, const std::optional<T>& value) {
  return value ? same_128(o, *value) : o.type == msgpack::type::NIL;
}

bool same_uint(const msgpack::object& o, uint64_t value) {
  return o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 == value;
}

bool same_str(const msgpack::object& o, std::string_view value) {
  return o.type == msgpack::type::STR && std::string_view(o.via.str.ptr, o.via.str.size) == value;
}

bool same_bin(const msgpack::object& o, std::string_view value) {
  return o.type == msgpack::type::BIN && std::string_view(o.via.bin.ptr, o.via.bin.size) == value;
}

bool same_optional_bin(const msgpack::object& o, const std::optional<std::string>& value) {
  return value ? same_bin(o, *value) : o.type == msgpack::type::NIL;
}

TEST_CASE("event bodies are standard msgpack", "[prop][format]") {
  rc::prop("msgpack-c reads the body as an array of 17 fields with the same values", [] {
    OwnedEvent e = *gen_event(Sizes::Large, *gen_optional(gen_fence_id()));
    e.format = BodyFormat::Msgpack;  // the version-1 form; the compact one is not msgpack
    std::vector<std::byte> bytes;
    Hash128 chained = encode_event_body(bytes, e.body());
    const char* data = reinterpret_cast<const char*>(bytes.data());
    size_t length = bytes.size();
    size_t offset = 0;
    // Limits capped by the input length (docs/ARCHITECTURE.md §11.1), as for any bytes read from
    // disk.
    msgpack::unpack_limit limit(length, length, length, length, length, 4);
    msgpack::object_handle handle = msgpack::unpack(data, length, offset, nullptr, nullptr, limit);
    RC_ASSERT(offset == length);
    const msgpack::object& o = handle.get();
    RC_ASSERT(o.type == msgpack::type::ARRAY);
    RC_ASSERT(o.via.array.size == 17u);
    const msgpack::object* f = o.via.array.ptr;
    RC_ASSERT(same_128(f[0], e.event_id));
    RC_ASSERT(same_str(f[1], e.entity));
    RC_ASSERT(same_str(f[2], e.scope));
    RC_ASSERT(same_uint(f[3], e.kind));
    RC_ASSERT(same_uint(f[4], e.lane));
    RC_ASSERT(same_uint(f[5], e.entity_clock));
    RC_ASSERT(same_uint(f[6], e.hlc_wall_ms));
    RC_ASSERT(same_uint(f[7], e.hlc_logical));
    RC_ASSERT(same_128(f[8], e.correlation_id));
    RC_ASSERT(same_optional_128(f[9], e.causation_id));
    RC_ASSERT(same_optional_bin(f[10], e.idempotency_key));
    RC_ASSERT(same_optional_128(f[11], e.idempotency_fingerprint));
    RC_ASSERT((e.fence_id ? same_uint(f[12], *e.fence_id) : f[12].type == msgpack::type::NIL));
    RC_ASSERT(same_optional_bin(f[13], e.metadata));
    RC_ASSERT(same_bin(f[14], e.payload));
    RC_ASSERT(same_optional_128(f[15], e.prev_hash));
    RC_ASSERT(same_128(f[16], chained));
  });
}

// ---- (a) logs read back exactly ----

TEST_CASE("a written log reads back exactly", "[prop][format][log]") {
  rc::prop("events, batches, fences and syncs across rotations read back field by field", [] {
    Script script = *gen_script(Sizes::Medium, 40);
    platform::MemoryFileSystem fs;
    Written written = write_script(fs, script);
    ReadBack read = read_log(fs, /*writable=*/false);
    RC_ASSERT(!read.error.has_value());
    RC_ASSERT(read.events.size() == written.events.size());
    RC_ASSERT(same_events(written.events, read.events));
    RC_ASSERT(read.chained_hashes_match);
    RC_ASSERT(same_fences(written.fences, read.fences));
    RC_CLASSIFY(written.segment_count > 1, "rotated");
    RC_CLASSIFY(written.payload_too_large_count > 0, "a record too large for a segment");
    RC_CLASSIFY(script.open_fence.has_value(), "fence open at the tail");
  });
}

// ---- (b) single-byte changes are detected ----

// One encoded record of any type, with the segment id it was encoded for.
struct EncodedRecord {
  std::vector<std::byte> bytes;
  uint64_t segment_id = 0;
};

rc::Gen<EncodedRecord> gen_encoded_record() {
  return rc::gen::exec([] {
    EncodedRecord record;
    record.segment_id = *rc::gen::inRange<uint64_t>(1, UINT64_MAX);
    FrameContext context{record.segment_id, *rc::gen::arbitrary<uint64_t>(),
                         *rc::gen::arbitrary<uint64_t>(),
                         *rc::gen::element(FrameForm::Padded, FrameForm::Compact)};
    uint64_t sequence = *rc::gen::arbitrary<uint64_t>();
    switch (*rc::gen::inRange(0, 3)) {
      case 0:
        append_event_frame(record.bytes, context, sequence,
                           (*gen_event(Sizes::Medium, std::nullopt)).body(), nullptr);
        break;
      case 1: {
        auto events = *gen_events(Sizes::Small, std::nullopt, 4);
        std::vector<EventBody> bodies;
        for (const OwnedEvent& e : events) bodies.push_back(e.body());
        append_batch_frame(record.bytes, context, sequence, bodies, nullptr);
        break;
      }
      default: {
        auto type = *rc::gen::element(RecordType::FenceBegin, RecordType::FenceCommit,
                                      RecordType::FenceCancel, RecordType::Seal);
        append_system_frame(
            record.bytes, context, sequence,
            {type, *gen_fence_id(), CancelReason::Recovery, *rc::gen::arbitrary<uint64_t>()});
        break;
      }
    }
    return record;
  });
}

// Where the body of `frame`, decoded from `bytes`, starts: the header's size (either form).
size_t header_size(const std::vector<std::byte>& bytes, const DecodedFrame& frame) {
  return static_cast<size_t>(frame.body.data() - bytes.data());
}

// An offset in the frame's header, body or padding, each region as likely as the others (a padded
// frame's padding is at most 7 bytes and not under the checksum: only the zero check guards it).
rc::Gen<size_t> gen_changed_offset(size_t header, const DecodedFrame& frame) {
  size_t body_end = header + frame.body.size();
  std::vector<rc::Gen<size_t>> regions = {gen_uniform<size_t>(0, header)};
  if (!frame.body.empty()) regions.push_back(gen_uniform<size_t>(header, body_end));
  if (body_end < frame.size) regions.push_back(gen_uniform<size_t>(body_end, frame.size));
  return rc::gen::exec([regions] { return *regions[*gen_uniform<size_t>(0, regions.size())]; });
}

TEST_CASE("any single-byte change in a frame is detected", "[prop][format]") {
  rc::prop("decode_frame refuses a frame with one byte changed, alone or followed by more", [] {
    EncodedRecord record = *gen_encoded_record();
    DecodedFrame frame;
    RC_ASSERT(decode_frame(record.bytes, record.segment_id, frame) == FrameDecode::Ok);
    RC_ASSERT(frame.size == record.bytes.size());
    const size_t header = header_size(record.bytes, frame);
    const size_t body_end = header + frame.body.size();
    size_t offset = *gen_changed_offset(header, frame);
    std::byte mask = *gen_xor_mask();
    std::vector<std::byte> changed = record.bytes;
    changed[offset] ^= mask;
    if (*rc::gen::arbitrary<bool>()) {
      // A valid frame after it, so a changed length can not end in "short frame" alone.
      changed.insert(changed.end(), record.bytes.begin(), record.bytes.end());
    }
    FrameDecode result = decode_frame(changed, record.segment_id, frame);
    RC_ASSERT(result != FrameDecode::Ok);
    RC_CLASSIFY(offset < header, "header byte");
    RC_CLASSIFY(offset >= header && offset < body_end, "body byte");
    RC_CLASSIFY(offset >= body_end, "padding byte");
    RC_CLASSIFY(header != kFrameHeaderSize, "compact frame");
  });
}

// The records before `damaged` (in log order), as their events.
std::vector<LoggedEvent> events_before(const ReadBack& original, size_t damaged) {
  size_t count = 0;
  for (size_t i = 0; i < damaged; ++i) count += original.records[i].event_count;
  return {original.events.begin(), original.events.begin() + static_cast<ptrdiff_t>(count)};
}

// A recovery that succeeds on a damaged log delivers exactly the records before the damage: never
// the damaged record, never one after it, never altered content.
void assert_exact_prefix(const ReadBack& read, const ReadBack& original, size_t damaged) {
  if (read.error) {
    // Damage below what END names as durable (a cleanly closed log) is DurableDataLost.
    RC_ASSERT(read.error->is(ErrorCode::Corruption) || read.error->is(ErrorCode::DurableDataLost));
    return;
  }
  RC_ASSERT(same_events(events_before(original, damaged), read.events));
}

TEST_CASE("recovery never delivers a changed byte", "[prop][format][log]") {
  rc::prop("one byte changed in any frame: recovery fails closed or keeps exactly what precedes",
           [] {
             Script script = *gen_script(Sizes::Small, 12);
             platform::MemoryFileSystem fs;
             write_script(fs, script);
             ReadBack original = read_log(fs, /*writable=*/false);
             RC_ASSERT(!original.error.has_value());
             RC_PRE(!original.records.empty());

             size_t damaged = *gen_uniform<size_t>(0, original.records.size());
             const ReadRecord& record = original.records[damaged];
             uint64_t offset = record.position.offset + *gen_uniform<uint64_t>(0, record.size);
             bool in_sealed_segment = record.position.segment_id != newest_segment_id(fs);
             change_byte(fs, record.position.segment_id, offset, *gen_xor_mask());

             ReadBack read_only = read_log(fs, /*writable=*/false);
             if (in_sealed_segment) RC_ASSERT(read_only.error.has_value());
             assert_exact_prefix(read_only, original, damaged);
             // A writable open takes the same decision, repairs, and the repaired log reads back
             // the same.
             std::vector<std::vector<std::byte>> damaged_bytes = segment_bytes(fs);
             ReadBack writable = read_log(fs, /*writable=*/true);
             RC_ASSERT(writable.error.has_value() == read_only.error.has_value());
             assert_exact_prefix(writable, original, damaged);
             if (writable.error) {
               RC_ASSERT(segment_bytes(fs) == damaged_bytes);  // failing closed touches nothing
             } else {
               ReadBack reopened = read_log(fs, /*writable=*/false);
               RC_ASSERT(!reopened.error.has_value());
               RC_ASSERT(same_events(read_only.events, reopened.events));
             }
             RC_CLASSIFY(read_only.error.has_value(), "fails closed");
             RC_CLASSIFY(!read_only.error.has_value(), "drops the damaged tail");
           });
}

// ---- Negative controls: the checks above can fail ----

// Recomputes the checksum of the frame at `offset` of a segment file, as a format without frame
// checksums would accept whatever bytes are there.
void reseal_frame(platform::MemoryFileSystem& fs, uint64_t segment_id, uint64_t offset) {
  std::string path = platform::join_path(kDirectory, log::segment_file_name(segment_id));
  std::vector<std::byte> bytes = fs.contents(path);
  test::reseal_frame(std::span(bytes).subspan(offset), segment_id);
  fs.set_contents(path, bytes);
}

TEST_CASE("control: a changed byte under a recomputed checksum is decoded", "[control][format]") {
  OwnedEvent event;
  event.entity = "order:1";
  event.payload = "payload";
  std::vector<std::byte> frame;
  append_event_frame(frame, {7, 1, 0}, 1, event.body(), nullptr);
  std::string_view text(reinterpret_cast<const char*>(frame.data()), frame.size());
  size_t payload_offset = text.find("payload");
  REQUIRE(payload_offset != std::string_view::npos);
  frame[payload_offset] ^= std::byte{0x20};  // 'p' -> 'P'
  DecodedFrame decoded;
  CHECK(decode_frame(frame, 7, decoded) == FrameDecode::BadChecksum);
  test::reseal_frame(frame, 7);
  REQUIRE(decode_frame(frame, 7, decoded) == FrameDecode::Ok);
  MsgpackReader reader(decoded.body);
  EventBody altered;
  REQUIRE(decode_event_body(reader, altered) == nullptr);
  CHECK(altered.payload == "Payload");
}

TEST_CASE("control: recovery delivers a change the checksum does not see", "[control][log]") {
  // Without the frame checksum the recovery property's comparison is what catches the change.
  platform::MemoryFileSystem fs;
  Script script;
  Step step;
  step.kind = Step::Kind::Event;
  for (int i = 0; i < 3; ++i) {
    OwnedEvent event;
    event.entity = "order:" + std::to_string(i);
    event.payload = "payload";
    step.events.push_back(event);
  }
  script.steps = {step};
  write_script(fs, script);
  ReadBack original = read_log(fs, /*writable=*/false);
  REQUIRE(original.events.size() == 3);
  const ReadRecord& last = original.records.back();
  std::vector<std::byte> bytes = fs.contents(
      platform::join_path(kDirectory, log::segment_file_name(last.position.segment_id)));
  std::string_view text(reinterpret_cast<const char*>(bytes.data()) + last.position.offset,
                        last.size);
  change_byte(fs, last.position.segment_id, last.position.offset + text.find("payload"),
              std::byte{0x20});
  reseal_frame(fs, last.position.segment_id, last.position.offset);
  ReadBack read = read_log(fs, /*writable=*/false);
  REQUIRE_FALSE(read.error.has_value());
  CHECK_FALSE(same_events(events_before(original, original.records.size() - 1), read.events));
  CHECK_FALSE(same_events(original.events, read.events));
  CHECK_FALSE(read.chained_hashes_match);  // the hash chain, checked by verify, would see it
}

}  // namespace
}  // namespace keel::format
