#include "format/event_body.h"

#include <cassert>
#include <cstring>
#include <limits>

#include "format/byte_order.h"
#include "format/checksum.h"
#include "format/format_constants.h"
#include "format/msgpack_writer.h"

namespace keel::format {
namespace {

void write_id(MsgpackWriter& w, const EventId& id) { w.bin128(id.high, id.low); }
void write_hash(MsgpackWriter& w, const Hash128& h) { w.bin128(h.high, h.low); }

template <class T, class F>
void write_optional(MsgpackWriter& w, const std::optional<T>& value, F write) {
  if (value) {
    write(*value);
  } else {
    w.nil();
  }
}

bool read_id(MsgpackReader& r, EventId& id) { return r.bin128(id.high, id.low); }
bool read_hash(MsgpackReader& r, Hash128& h) { return r.bin128(h.high, h.low); }

template <class T>
bool read_uint_max(MsgpackReader& r, T& out) {
  auto v = r.uint();
  if (!v || *v > std::numeric_limits<T>::max()) return false;
  out = static_cast<T>(*v);
  return true;
}

// Reads nil (leaving `out` empty) or a value with `read`.
template <class T, class F>
bool read_optional(MsgpackReader& r, std::optional<T>& out, F read) {
  if (r.nil()) {
    out.reset();
    return true;
  }
  T value{};
  if (!read(value)) return false;
  out = value;
  return true;
}

// ---- The msgpack form (FORMAT.md 6.1.2) ----

Hash128 encode_msgpack_body(std::vector<std::byte>& out, const EventBody& e) {
  size_t start = out.size();
  MsgpackWriter w(out);
  // Every fixed-size field at its widest, plus the variable ones: one grow for the whole body.
  w.reserve(kEventBodyFixedBytesMax + e.entity.size() + e.scope.size() +
            (e.idempotency_key ? e.idempotency_key->size() : 0) +
            (e.metadata ? e.metadata->size() : 0) + e.payload.size());
  w.array_header(kEventBodyFieldCount);
  write_id(w, e.event_id);
  w.str(e.entity);
  w.str(e.scope);
  w.uint(e.kind);
  w.uint(e.lane);
  w.uint(e.entity_clock);
  w.uint(e.hlc_wall_ms);
  w.uint(e.hlc_logical);
  write_id(w, e.correlation_id);
  write_optional(w, e.causation_id, [&](const EventId& id) { write_id(w, id); });
  write_optional(w, e.idempotency_key, [&](std::string_view k) { w.bin(k); });
  write_optional(w, e.idempotency_fingerprint, [&](const Hash128& h) { write_hash(w, h); });
  write_optional(w, e.fence_id, [&](uint64_t id) { w.uint(id); });
  write_optional(w, e.metadata, [&](std::string_view m) { w.bin(m); });
  w.bin(e.payload);
  write_optional(w, e.prev_hash, [&](const Hash128& h) { write_hash(w, h); });
  Hash128 chained = hash128(std::span<const std::byte>(out.data() + start, w.end() - start));
  write_hash(w, chained);
  return chained;
}

const char* decode_msgpack_body(MsgpackReader& r, EventBody& e) {
  size_t start = r.position();
  auto fields = r.array_header();
  if (!fields || *fields != kEventBodyFieldCount) return "event body is not an array of 17 fields";
  if (!read_id(r, e.event_id)) return "bad event_id";
  auto entity = r.str();
  if (!entity) return "bad entity";
  e.entity = *entity;
  auto scope = r.str();
  if (!scope) return "bad scope";
  e.scope = *scope;
  if (!read_uint_max(r, e.kind)) return "bad kind";
  if (!read_uint_max(r, e.lane)) return "bad lane";
  if (!read_uint_max(r, e.entity_clock)) return "bad entity_clock";
  if (!read_uint_max(r, e.hlc_wall_ms)) return "bad hlc_wall_ms";
  if (!read_uint_max(r, e.hlc_logical)) return "bad hlc_logical";
  if (!read_id(r, e.correlation_id)) return "bad correlation_id";
  if (!read_optional(r, e.causation_id, [&](EventId& id) { return read_id(r, id); })) {
    return "bad causation_id";
  }
  auto read_bin = [&](std::string_view& s) {
    auto b = r.bin();
    if (b) s = *b;
    return b.has_value();
  };
  if (!read_optional(r, e.idempotency_key, read_bin)) return "bad idempotency_key";
  if (!read_optional(r, e.idempotency_fingerprint, [&](Hash128& h) { return read_hash(r, h); })) {
    return "bad idempotency_fingerprint";
  }
  if (!read_optional(r, e.fence_id, [&](uint64_t& id) { return read_uint_max(r, id) && id != 0; })) {
    return "bad fence_id";
  }
  if (!read_optional(r, e.metadata, read_bin)) return "bad metadata";
  if (!read_bin(e.payload)) return "bad payload";
  if (!read_optional(r, e.prev_hash, [&](Hash128& h) { return read_hash(r, h); })) {
    return "bad prev_hash";
  }
  size_t hashed_end = r.position();
  if (!read_hash(r, e.chained_hash)) return "bad chained_hash";
  e.hashed_bytes = r.consumed(start, hashed_end);
  e.stored_bytes = r.consumed(start, r.position());
  e.format = BodyFormat::Msgpack;
  return nullptr;
}

// ---- The compact form (FORMAT.md 6.1.1) ----

// Writes forward into space the caller reserved.
class CompactOut {
 public:
  explicit CompactOut(std::byte* p) : p_(p) {}
  std::byte* position() const { return p_; }
  void byte(uint8_t v) { *p_++ = std::byte{v}; }
  void u16(uint16_t v) {
    store_u16(p_, v);
    p_ += 2;
  }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      byte(static_cast<uint8_t>(v) | 0x80);
      v >>= 7;
    }
    byte(static_cast<uint8_t>(v));
  }
  void u128(uint64_t high, uint64_t low) {  // big-endian, as the msgpack form's bin16
    store_u64(p_, __builtin_bswap64(high));
    store_u64(p_ + 8, __builtin_bswap64(low));
    p_ += 16;
  }
  void bytes(std::string_view s) {
    varint(s.size());
    if (!s.empty()) std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }

 private:
  std::byte* p_;
};

// Reads forward, checking every length against the bytes left. Forced inline: out of line, the
// calls and returns were a third of decoding a compact body.
class CompactIn {
 public:
  explicit CompactIn(std::span<const std::byte> bytes)
      : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}
  const std::byte* position() const { return p_; }
  [[gnu::always_inline]] bool byte(uint8_t& v) {
    if (p_ == end_) return false;
    v = static_cast<uint8_t>(*p_++);
    return true;
  }
  [[gnu::always_inline]] bool u16(uint16_t& v) {
    if (end_ - p_ < 2) return false;
    v = load_u16(p_);
    p_ += 2;
    return true;
  }
  // Unsigned LEB128 of at most 64 bits (ten bytes, the tenth at most 1).
  [[gnu::always_inline]] bool varint(uint64_t& v) {
    if (p_ != end_ && static_cast<uint8_t>(*p_) < 0x80) {  // most lanes, clocks and lengths
      v = static_cast<uint8_t>(*p_++);
      return true;
    }
    v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const auto b = static_cast<uint8_t>(*p_++);
      if (shift == 63 && b > 1) return false;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  template <class T>
  [[gnu::always_inline]] bool varint_max(T& out) {
    uint64_t v;
    if (!varint(v) || v > std::numeric_limits<T>::max()) return false;
    out = static_cast<T>(v);
    return true;
  }
  [[gnu::always_inline]] bool u128(uint64_t& high, uint64_t& low) {
    if (end_ - p_ < 16) return false;
    high = __builtin_bswap64(load_u64(p_));
    low = __builtin_bswap64(load_u64(p_ + 8));
    p_ += 16;
    return true;
  }
  [[gnu::always_inline]] bool bytes(std::string_view& s) {
    uint64_t n;
    if (!varint(n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    s = std::string_view(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }

 private:
  const std::byte* p_;
  const std::byte* end_;
};

// Whether the event id carries the HLC (wall_ms << 16 | logical in its high half).
bool hlc_in_id(const EventBody& e) {
  return e.hlc_wall_ms < kIdHlcWallLimit && e.hlc_logical < (1u << kIdHlcLogicalBits) &&
         e.event_id.high == (e.hlc_wall_ms << kIdHlcLogicalBits | e.hlc_logical);
}

Hash128 encode_compact_body(std::vector<std::byte>& out, const EventBody& e) {
  const size_t start = out.size();
  // Every fixed-size field at its widest, plus the variable ones: one grow, trimmed at the end.
  out.resize(start + kEventBodyFixedBytesMax + e.entity.size() + e.scope.size() +
             (e.idempotency_key ? e.idempotency_key->size() : 0) +
             (e.metadata ? e.metadata->size() : 0) + e.payload.size());
  const bool hlc_stored = !hlc_in_id(e);
  const bool correlation_stored = e.correlation_id != e.event_id;
  uint8_t flags = 0;
  if (e.causation_id) flags |= kCompactHasCausation;
  if (e.idempotency_key) flags |= kCompactHasIdempotencyKey;
  if (e.idempotency_fingerprint) flags |= kCompactHasFingerprint;
  if (e.fence_id) flags |= kCompactHasFence;
  if (e.metadata) flags |= kCompactHasMetadata;
  if (e.prev_hash) flags |= kCompactHasPrevHash;
  if (correlation_stored) flags |= kCompactHasCorrelation;
  if (hlc_stored) flags |= kCompactHasHlc;
  CompactOut w(out.data() + start);
  w.byte(kCompactBodyTag);
  w.byte(flags);
  w.u128(e.event_id.high, e.event_id.low);
  w.u16(e.kind);
  w.varint(e.lane);
  w.varint(e.entity_clock);
  if (hlc_stored) {
    w.varint(e.hlc_wall_ms);
    w.varint(e.hlc_logical);
  }
  if (correlation_stored) w.u128(e.correlation_id.high, e.correlation_id.low);
  if (e.causation_id) w.u128(e.causation_id->high, e.causation_id->low);
  w.bytes(e.entity);
  w.bytes(e.scope);
  if (e.idempotency_key) w.bytes(*e.idempotency_key);
  if (e.idempotency_fingerprint) {
    w.u128(e.idempotency_fingerprint->high, e.idempotency_fingerprint->low);
  }
  if (e.fence_id) w.varint(*e.fence_id);
  if (e.metadata) w.bytes(*e.metadata);
  w.bytes(e.payload);
  if (e.prev_hash) w.u128(e.prev_hash->high, e.prev_hash->low);
  const Hash128 chained =
      hash128(std::span<const std::byte>(out.data() + start, w.position() - (out.data() + start)));
  w.u128(chained.high, chained.low);
  out.resize(static_cast<size_t>(w.position() - out.data()));
  return chained;
}

const char* decode_compact_body(MsgpackReader& r, EventBody& e) {
  CompactIn in(r.rest());
  const std::byte* start = in.position();
  uint8_t tag = 0, flags = 0;
  if (!in.byte(tag) || tag != kCompactBodyTag) return "not a compact event body";
  if (!in.byte(flags)) return "bad flags";
  // The id stays in registers for the fields it implies: copying it back out of `e` right after
  // storing it in two halves stalled the load on the stores (a third of a warm scan's decode).
  uint64_t id_high = 0, id_low = 0;
  if (!in.u128(id_high, id_low)) return "bad event_id";
  e.event_id = EventId{id_high, id_low};
  if (!in.u16(e.kind)) return "bad kind";
  if (!in.varint_max(e.lane)) return "bad lane";
  if (!in.varint(e.entity_clock)) return "bad entity_clock";
  if (flags & kCompactHasHlc) {
    if (!in.varint(e.hlc_wall_ms)) return "bad hlc_wall_ms";
    if (!in.varint_max(e.hlc_logical)) return "bad hlc_logical";
  } else {
    e.hlc_wall_ms = id_high >> kIdHlcLogicalBits;
    e.hlc_logical = static_cast<uint32_t>(id_high & ((1u << kIdHlcLogicalBits) - 1));
  }
  if (flags & kCompactHasCorrelation) {
    if (!in.u128(e.correlation_id.high, e.correlation_id.low)) return "bad correlation_id";
  } else {
    e.correlation_id = EventId{id_high, id_low};
  }
  // Each optional field: read when its flag is set, else cleared (the body may be reused).
  if (flags & kCompactHasCausation) {
    EventId id;
    if (!in.u128(id.high, id.low)) return "bad causation_id";
    e.causation_id = id;
  } else {
    e.causation_id.reset();
  }
  if (!in.bytes(e.entity)) return "bad entity";
  if (!in.bytes(e.scope)) return "bad scope";
  if (flags & kCompactHasIdempotencyKey) {
    std::string_view key;
    if (!in.bytes(key)) return "bad idempotency_key";
    e.idempotency_key = key;
  } else {
    e.idempotency_key.reset();
  }
  if (flags & kCompactHasFingerprint) {
    Hash128 fingerprint;
    if (!in.u128(fingerprint.high, fingerprint.low)) return "bad idempotency_fingerprint";
    e.idempotency_fingerprint = fingerprint;
  } else {
    e.idempotency_fingerprint.reset();
  }
  if (flags & kCompactHasFence) {
    uint64_t fence = 0;
    if (!in.varint(fence) || fence == 0) return "bad fence_id";
    e.fence_id = fence;
  } else {
    e.fence_id.reset();
  }
  if (flags & kCompactHasMetadata) {
    std::string_view metadata;
    if (!in.bytes(metadata)) return "bad metadata";
    e.metadata = metadata;
  } else {
    e.metadata.reset();
  }
  if (!in.bytes(e.payload)) return "bad payload";
  if (flags & kCompactHasPrevHash) {
    Hash128 prev;
    if (!in.u128(prev.high, prev.low)) return "bad prev_hash";
    e.prev_hash = prev;
  } else {
    e.prev_hash.reset();
  }
  const std::byte* hashed_end = in.position();
  if (!in.u128(e.chained_hash.high, e.chained_hash.low)) return "bad chained_hash";
  e.hashed_bytes = std::span<const std::byte>(start, static_cast<size_t>(hashed_end - start));
  e.stored_bytes = std::span<const std::byte>(start, static_cast<size_t>(in.position() - start));
  e.format = BodyFormat::Compact;
  r.skip(static_cast<size_t>(in.position() - start));
  return nullptr;
}

}  // namespace

Hash128 encode_event_body(std::vector<std::byte>& out, const EventBody& e) {
  // Fence id 0 is "no fence" on disk: the decoder refuses it, so writing it would make the
  // record unreadable (recovery would take it for damage).
  assert((!e.fence_id || *e.fence_id != 0) && "fence id 0 would not decode");
  return e.format == BodyFormat::Msgpack ? encode_msgpack_body(out, e)
                                         : encode_compact_body(out, e);
}

const char* decode_event_body(MsgpackReader& r, EventBody& e) {
  return r.peek_byte() == kCompactBodyTag ? decode_compact_body(r, e) : decode_msgpack_body(r, e);
}

Hash128 event_fingerprint(std::string_view entity, std::string_view scope, uint32_t lane,
                          uint16_t kind, std::string_view payload,
                          std::optional<std::string_view> metadata) {
  // Reused per thread: an idempotent append computes one per item, and an allocation each time
  // cost more than the hash.
  thread_local std::vector<std::byte> bytes;
  bytes.clear();
  MsgpackWriter w(bytes);
  w.array_header(6);
  w.str(entity);
  w.str(scope);
  w.uint(lane);
  w.uint(kind);
  w.bin(payload);
  write_optional(w, metadata, [&](std::string_view m) { w.bin(m); });
  Hash128 fingerprint = hash128(bytes);
  if (bytes.capacity() > (1u << 16)) std::vector<std::byte>().swap(bytes);  // keep it small
  return fingerprint;
}

}  // namespace keel::format
