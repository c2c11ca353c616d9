// The event body codec (segments/FORMAT.md "Event body"). A body has one of two forms, told
// apart by its first byte:
//
// - compact (format version 2, written by this build): the tag byte 0xc1 (never a msgpack type
//   byte), a flags byte naming the optional fields present, then the fields in a fixed order with
//   varint lengths (FORMAT.md 6.1.1);
// - msgpack (format version 1): one msgpack array of 17 fields, in this order:
//
//   0 event_id      bin16          9  causation_id   bin16 | nil
//   1 entity        str           10  idem_key       bin | nil
//   2 scope         str           11  idem_fp        bin16 | nil
//   3 kind          uint (u16)    12  fence_id       uint (>0) | nil
//   4 lane          uint (u32)    13  metadata       bin | nil
//   5 entity_clock  uint (u64)    14  payload        bin
//   6 hlc_wall_ms   uint (u64)    15  prev_hash      bin16 | nil (first event of its chain)
//   7 hlc_logical   uint (u32)    16  chained_hash   bin16 = XXH3-128 of every body byte before it
//   8 correlation   bin16
//
// The global sequence is not in the body: it is the frame's (plus the index within a batch).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "format/msgpack_reader.h"
#include "keel/ids.h"

namespace keel::format {

// The two body forms (FORMAT.md 6.1.1 and 6.1.2).
enum class BodyFormat : uint8_t {
  Msgpack = 1,  // format version 1: a 17-field msgpack array
  Compact = 2,  // format version 2: tag, flags, fixed-order fields
};

// A decoded or to-be-encoded event. String views point into the decoded buffer (or, to encode,
// into the caller's storage) and live as long as it does.
struct EventBody {
  EventId event_id;
  std::string_view entity;
  std::string_view scope;
  uint16_t kind = 0;
  uint32_t lane = 0;
  uint64_t entity_clock = 0;
  uint64_t hlc_wall_ms = 0;
  uint32_t hlc_logical = 0;
  EventId correlation_id;
  std::optional<EventId> causation_id;
  std::optional<std::string_view> idempotency_key;
  std::optional<Hash128> idempotency_fingerprint;
  std::optional<uint64_t> fence_id;
  std::optional<std::string_view> metadata;
  std::string_view payload;
  std::optional<Hash128> prev_hash;
  Hash128 chained_hash;  // computed by encode; read by decode
  // The form encode writes and decode found. Bodies are hashed as stored, so a body copied from
  // another store (replication) keeps its form: re-encoding it in the other would change its hash.
  BodyFormat format = BodyFormat::Compact;
  // Decode only: the bytes the chained hash covers (the body up to the chained hash), and the
  // whole body as stored.
  std::span<const std::byte> hashed_bytes;
  std::span<const std::byte> stored_bytes;
};

// Appends the body to `out` in `event.format`, computes the chained hash over it, and returns
// that hash. The `chained_hash` and `hashed_bytes` members of `event` are ignored.
Hash128 encode_event_body(std::vector<std::byte>& out, const EventBody& event);

// Decodes one body of either form at the reader's position into `event`, setting its format.
// Returns nullptr on success, else a static description of the first thing wrong. Does not check
// the chained hash (verify does: hash128(hashed_bytes) == chained_hash).
const char* decode_event_body(MsgpackReader& reader, EventBody& event);

// The idempotency fingerprint: XXH3-128 of coordinate, lane, kind, payload and metadata.
Hash128 event_fingerprint(std::string_view entity, std::string_view scope, uint32_t lane,
                          uint16_t kind, std::string_view payload,
                          std::optional<std::string_view> metadata);

}  // namespace keel::format
