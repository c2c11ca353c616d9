// The on-disk constants of keel, one place. Every number here is specified, byte by byte, in
// segments/FORMAT.md; a change here is a change of format and needs a version bump and new goldens.
#pragma once

#include <cstddef>
#include <cstdint>

#include "keel/version.h"

namespace keel::format {

// ---- Segment files (FORMAT.md "Segment header") ----
inline constexpr char kSegmentMagic[8] = {'K', 'E', 'E', 'L', 'S', 'E', 'G', '\0'};
inline constexpr uint32_t kFormatVersion = keel::kFormatVersion;  // declared in the public API
inline constexpr size_t kSegmentHeaderSize = 64;
inline constexpr size_t kSegmentHeaderChecksumOffset = 56;  // XXH3-64 of bytes [0, 56)
inline constexpr char kSegmentFilePrefix[] = "segment-";
inline constexpr char kSegmentFileSuffix[] = ".keel";
inline constexpr size_t kSegmentIdDigits = 20;  // segment-00000000000000000001.keel

// ---- Frames (FORMAT.md "Frames") ----
// The padded form (format versions 1 and 2): a fixed header, every frame padded to a multiple of 8.
inline constexpr size_t kFrameHeaderSize = 40;
inline constexpr size_t kFrameAlignment = 8;
inline constexpr size_t kFrameChecksumOffset = 0;
inline constexpr size_t kFrameBodyLengthOffset = 8;
inline constexpr size_t kFrameRecordTypeOffset = 12;
inline constexpr size_t kFrameFlagsOffset = 13;
inline constexpr size_t kFrameReservedOffset = 14;
inline constexpr size_t kFrameSequenceOffset = 16;
inline constexpr size_t kFrameDurableThroughOffset = 24;
inline constexpr size_t kFrameEpochOffset = 32;
// The checksum covers bytes [kFrameChecksumCoverageStart, header + body), seeded with the segment
// id: length, type, flags, reserved, sequence, durable_through, epoch, body, and (by the seed) the
// segment id.
inline constexpr size_t kFrameChecksumCoverageStart = 8;
// A frame body is at most 64 MiB; anything larger is a bad length.
inline constexpr uint32_t kFrameBodyMax = 64u << 20;
// The compact form (format version 3): flags byte 1, a widths byte, then the sequence,
// durable_through and epoch in as many bytes as the widths byte says; no padding (FORMAT.md 4.1.2).
inline constexpr uint32_t kCompactFramesVersion = 3;
inline constexpr uint8_t kFrameFlagCompact = 1;
inline constexpr size_t kCompactFrameWidthsOffset = 14;
inline constexpr size_t kCompactFrameFixedSize = 15;  // checksum, body_length, type, flags, widths
// The largest header of either form: the padded one (the compact one takes 18 to 39 bytes).
inline constexpr size_t kFrameHeaderMax = 40;

enum class RecordType : uint8_t {
  // 0 is never a record: a zero-filled region can not decode as a frame.
  Event = 1,        // one event; sequence = the event's global sequence
  Batch = 2,        // N events with sequences [sequence, sequence + N)
  FenceBegin = 3,   // system record: takes no sequence; sequence = the next one to be assigned
  FenceCommit = 4,  // system record
  FenceCancel = 5,  // system record
  Seal = 6,         // system record: the last record of a sealed segment
};
inline constexpr uint8_t kRecordTypeMax = 6;

inline constexpr bool is_system_record(RecordType type) {
  return type != RecordType::Event && type != RecordType::Batch;
}

// ---- Event body (FORMAT.md "Event body") ----
// The msgpack form (format version 1) is an array of this many fields.
inline constexpr uint32_t kEventBodyFieldCount = 17;
// The compact form (format version 2) starts with this byte, which msgpack never uses, then a
// flags byte: each bit says an optional field is stored.
inline constexpr uint8_t kCompactBodyTag = 0xc1;
inline constexpr uint8_t kCompactHasCausation = 1 << 0;
inline constexpr uint8_t kCompactHasIdempotencyKey = 1 << 1;
inline constexpr uint8_t kCompactHasFingerprint = 1 << 2;
inline constexpr uint8_t kCompactHasFence = 1 << 3;
inline constexpr uint8_t kCompactHasMetadata = 1 << 4;
inline constexpr uint8_t kCompactHasPrevHash = 1 << 5;
inline constexpr uint8_t kCompactHasCorrelation = 1 << 6;  // else the correlation is the event id
inline constexpr uint8_t kCompactHasHlc = 1 << 7;          // else the HLC is read from the event id
// The event id's high 64 bits hold the HLC when its wall time fits 48 bits and its logical counter
// 16: high = wall_ms << 16 | logical (how keel makes ids).
inline constexpr unsigned kIdHlcLogicalBits = 16;
inline constexpr uint64_t kIdHlcWallLimit = uint64_t{1} << 48;
// An upper bound on a body's bytes besides its entity, scope, payload, metadata and idempotency
// key: every other field at its widest encoding (176 bytes in the msgpack form, 205 in the
// compact one), with room to spare.
inline constexpr uint64_t kEventBodyFixedBytesMax = 256;
inline constexpr uint32_t kBatchEventsMax = 1u << 20;

// ---- Sidecars (FORMAT.md "Sidecar envelope") ----
inline constexpr char kSidecarMagic[8] = {'K', 'E', 'E', 'L', 'S', 'I', 'D', 'E'};
inline constexpr size_t kSidecarHeaderSize = 32;
inline constexpr uint32_t kSidecarPayloadMax = 256u << 20;
enum class SidecarKind : uint32_t {
  Epoch = 1,
  IndexCheckpoint = 2,
  Idempotency = 3,
  HiddenRanges = 4,
  Cursor = 5,
  SnapshotPointer = 6,
  RetentionFloor = 7,  // RETAIN: the first retained segment (FORMAT.md 8.6)
  LogEnd = 8,          // END: a durable point of the log, and the losses accepted (FORMAT.md 8.8)
  SyncedPoint = 9,     // SYNCED: where a live writer's last fdatasync reached (FORMAT.md 8.10)
};
inline constexpr char kEpochFileName[] = "EPOCH";
inline constexpr char kLockFileName[] = "LOCK";
inline constexpr char kIndexImageFileName[] = "INDEX";
inline constexpr char kIdempotencyFileName[] = "IDEMPOTENCY";
inline constexpr char kRetentionFloorFileName[] = "RETAIN";
inline constexpr char kLogEndFileName[] = "END";
inline constexpr char kSyncedPointFileName[] = "SYNCED";
inline constexpr char kTempSuffix[] = ".tmp";

static_assert(kSegmentHeaderSize % kFrameAlignment == 0, "first frame must be aligned");
static_assert(kFrameHeaderSize % kFrameAlignment == 0, "frame header keeps alignment");
static_assert(kSegmentHeaderChecksumOffset + 8 == kSegmentHeaderSize);
static_assert(kFrameEpochOffset + 8 == kFrameHeaderSize);
static_assert(kFrameChecksumCoverageStart == kFrameChecksumOffset + 8);
static_assert(kCompactFrameWidthsOffset == kFrameFlagsOffset + 1);
static_assert(kCompactFrameFixedSize == kCompactFrameWidthsOffset + 1);
static_assert(kFrameHeaderMax >= kFrameHeaderSize &&
              kFrameHeaderMax >= kCompactFrameFixedSize + 24);

inline constexpr uint64_t align_frame(uint64_t n) {
  return (n + kFrameAlignment - 1) & ~uint64_t{kFrameAlignment - 1};
}

}  // namespace keel::format
