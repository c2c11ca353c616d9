// Records: the framed things a segment holds (segments/FORMAT.md "Records").
//
//   Event        body = one event body
//   Batch        body = msgpack array header N (1..2^20) followed by N event bodies
//   FenceBegin   body = [fence_id]                 fence_id > 0
//   FenceCommit  body = [fence_id]
//   FenceCancel  body = [fence_id, reason]         reason: 1 caller, 2 recovery
//   Seal         body = [event_count]              events in the sealed segment
//
// Event and Batch frames carry the sequence of their (first) event. System records take no
// sequence: their frame carries the next sequence to be assigned.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "format/event_body.h"
#include "format/frame.h"

namespace keel::format {

// Where the frames being encoded go: the segment id seeds the checksum; durable_through is the
// segment offset the last successful fdatasync covered when the group is written; the form is the
// segment's (frame_form_of its format version).
struct FrameContext {
  uint64_t segment_id = 0;
  uint64_t epoch = 0;
  uint64_t durable_through = 0;
  FrameForm form = FrameForm::Compact;

  FrameHeader header(RecordType type, uint64_t sequence) const {
    return FrameHeader{type, sequence, durable_through, epoch};
  }
};

enum class CancelReason : uint8_t { Caller = 1, Recovery = 2 };

struct SystemRecord {
  RecordType type = RecordType::Seal;
  uint64_t fence_id = 0;                         // FenceBegin / FenceCommit / FenceCancel
  CancelReason cancel_reason = CancelReason::Caller;  // FenceCancel
  uint64_t event_count = 0;                      // Seal
};

// Each appends one whole frame to `out` and returns its size (a padded frame needs out.size() to
// be a multiple of 8).
size_t append_event_frame(std::vector<std::byte>& out, const FrameContext& context,
                          uint64_t sequence, const EventBody& event, Hash128* chained_hash);
// `chained_hashes`, if given, receives one hash per event.
size_t append_batch_frame(std::vector<std::byte>& out, const FrameContext& context,
                          uint64_t first_sequence, std::span<const EventBody> events,
                          std::vector<Hash128>* chained_hashes);
// The same, linking events inside the batch: for each i with chain_to[i] >= 0, events[i].prev_hash
// is set to the chained hash of events[chain_to[i]] (an earlier item) before events[i] is encoded.
// chain_to is empty (no links) or has one entry per event.
size_t append_batch_frame(std::vector<std::byte>& out, const FrameContext& context,
                          uint64_t first_sequence, std::span<EventBody> events,
                          std::span<const int32_t> chain_to, std::vector<Hash128>* chained_hashes);
size_t append_system_frame(std::vector<std::byte>& out, const FrameContext& context,
                           uint64_t next_sequence, const SystemRecord& record);

// An upper bound on the frame size of an Event or Batch record holding `events` events whose
// entity, scope, payload, metadata and idempotency key total `variable_bytes` (every other body
// field is fixed-size; tests/frame_test.cc pins the bound against the encoder). Lets the commit
// point know before encoding whether a record may rotate the segment.
inline constexpr uint64_t kBatchHeaderBytesMax = 5;  // msgpack array32 header
// The same bound on the record's body alone (what kFrameBodyMax limits).
inline constexpr uint64_t event_record_body_bound(uint64_t events, uint64_t variable_bytes) {
  return kBatchHeaderBytesMax + events * kEventBodyFixedBytesMax + variable_bytes;
}
inline constexpr uint64_t event_record_bound(uint64_t events, uint64_t variable_bytes) {
  return kFrameHeaderMax + kFrameAlignment + event_record_body_bound(events, variable_bytes);
}
// The most variable bytes `events` events may carry so that their record's body surely fits a
// frame (kFrameBodyMax); 0 when not even events without variable bytes fit. Store options are
// checked against it at open, so no append the options allow can exceed the format.
inline constexpr uint64_t event_record_variable_bytes_max(uint64_t events) {
  uint64_t fixed = event_record_body_bound(events, 0);
  return fixed >= kFrameBodyMax ? 0 : kFrameBodyMax - fixed;
}

// The number of events a decoded Event/Batch frame holds, reading only the batch's array header;
// 0 with *error set if the body is malformed.
uint32_t record_event_count(const DecodedFrame& frame, const char** error);

// Decodes every event of an Event or Batch frame, calling visit(index, const EventBody&) for each.
// Returns nullptr on success, else what was wrong (the body must be consumed exactly).
template <class Visit>
const char* decode_record_events(const DecodedFrame& frame, Visit&& visit);
// The same, decoding into `event` (a reader of many records keeps one, rather than construct and
// zero a body per record: about 8% of a scan of 1M events, measured).
template <class Visit>
const char* decode_record_events(const DecodedFrame& frame, EventBody& event, Visit&& visit);

// Decodes a system record's body. Returns nullptr on success, else what was wrong.
const char* decode_system_record(const DecodedFrame& frame, SystemRecord& record);

// ---- implementation of the template ----
template <class Visit>
const char* decode_record_events(const DecodedFrame& frame, Visit&& visit) {
  EventBody event;
  return decode_record_events(frame, event, visit);
}

template <class Visit>
const char* decode_record_events(const DecodedFrame& frame, EventBody& event, Visit&& visit) {
  MsgpackReader reader(frame.body);
  uint32_t count = 1;
  if (frame.header.type == RecordType::Batch) {
    auto n = reader.array_header();
    if (!n || *n == 0 || *n > kBatchEventsMax) return "bad batch event count";
    count = *n;
  } else if (frame.header.type != RecordType::Event) {
    return "not an event record";
  }
  for (uint32_t i = 0; i < count; ++i) {
    if (const char* error = decode_event_body(reader, event)) return error;
    visit(i, event);
  }
  if (!reader.at_end()) return "trailing bytes after the record body";
  return nullptr;
}

}  // namespace keel::format
