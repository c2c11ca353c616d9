#include "format/event_body.h"

#include <cassert>
#include <limits>

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

}  // namespace

Hash128 encode_event_body(std::vector<std::byte>& out, const EventBody& e) {
  // Fence id 0 is "no fence" on disk: the decoder refuses it, so writing it would make the
  // record unreadable (recovery would take it for damage).
  assert((!e.fence_id || *e.fence_id != 0) && "fence id 0 would not decode");
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

const char* decode_event_body(MsgpackReader& r, EventBody& e) {
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
  return nullptr;
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
