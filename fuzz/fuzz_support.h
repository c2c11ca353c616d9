// Helpers shared by the fuzz targets: an invariant check that stops the run (libFuzzer then saves
// the input as a crash), event comparison, and the cross-check of our msgpack bytes with msgpack-c.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <msgpack.hpp>
#include <span>
#include <vector>

#include "format/event_body.h"
#include "format/format_constants.h"

namespace keel::fuzz {

// Aborts with `what` when `condition` is false. A failed invariant is a finding, like a crash.
inline void check(bool condition, const char* what) {
  if (condition) return;
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
  std::abort();
}

inline bool same_event(const format::EventBody& a, const format::EventBody& b) {
  return a.format == b.format && a.event_id == b.event_id && a.entity == b.entity &&
         a.scope == b.scope && a.kind == b.kind && a.lane == b.lane &&
         a.entity_clock == b.entity_clock && a.hlc_wall_ms == b.hlc_wall_ms &&
         a.hlc_logical == b.hlc_logical && a.correlation_id == b.correlation_id &&
         a.causation_id == b.causation_id && a.idempotency_key == b.idempotency_key &&
         a.idempotency_fingerprint == b.idempotency_fingerprint && a.fence_id == b.fence_id &&
         a.metadata == b.metadata && a.payload == b.payload && a.prev_hash == b.prev_hash;
}

// Re-encodes a decoded event and decodes it again: every field must survive (the reader and the
// writer agree on the schema, whatever non-minimal encodings the input used).
inline void check_reencode(const format::EventBody& event) {
  std::vector<std::byte> bytes;
  format::encode_event_body(bytes, event);
  format::MsgpackReader reader(bytes);
  format::EventBody again;
  check(format::decode_event_body(reader, again) == nullptr, "re-encoded event does not decode");
  check(reader.at_end(), "re-encoded event leaves trailing bytes");
  check(same_event(event, again), "re-encoded event decodes to different fields");
}

// Whatever our reader accepts as a msgpack event body must be standard msgpack: msgpack-c (limits
// capped by the input length, so hostile bytes cannot make it allocate) parses it as one array of
// 17. A compact body must start with its tag (which msgpack never uses).
inline void check_body_form(const format::EventBody& event) {
  std::span<const std::byte> body = event.stored_bytes;
  check(!body.empty() && body.data() == event.hashed_bytes.data() &&
            body.size() ==
                event.hashed_bytes.size() + (event.format == format::BodyFormat::Msgpack ? 18 : 16),
        "the stored bytes are not the hashed bytes and the chained hash");
  if (event.format == format::BodyFormat::Compact) {
    check(static_cast<uint8_t>(body[0]) == format::kCompactBodyTag,
          "a compact body without its tag");
    return;
  }
  const char* data = reinterpret_cast<const char*>(body.data());
  size_t length = body.size();
  size_t offset = 0;
  msgpack::unpack_limit limit(length, length, length, length, length, 4);
  try {
    msgpack::object_handle handle = msgpack::unpack(data, length, offset, nullptr, nullptr, limit);
    const msgpack::object& object = handle.get();
    check(object.type == msgpack::type::ARRAY && object.via.array.size == 17,
          "msgpack-c does not see an array of 17 fields");
    check(offset == length, "msgpack-c consumed a different length than our reader");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "msgpack-c: %s\n", e.what());
    check(false, "msgpack-c rejects bytes our reader accepted as an event body");
  }
}

}  // namespace keel::fuzz
