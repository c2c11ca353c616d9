#include "format/record.h"

#include <cassert>

#include "format/msgpack_writer.h"

namespace keel::format {

size_t append_event_frame(std::vector<std::byte>& out, const FrameContext& context,
                          uint64_t sequence, const EventBody& event, Hash128* chained_hash) {
  FrameStart start = begin_frame(out, context.header(RecordType::Event, sequence), context.form);
  Hash128 hash = encode_event_body(out, event);
  if (chained_hash != nullptr) *chained_hash = hash;
  return finish_frame(out, start, context.segment_id);
}

namespace {

// The one batch encoder: `event_at(i, hashes)` gives item i, seeing the hashes of items before it.
template <class EventAt>
size_t encode_batch_frame(std::vector<std::byte>& out, const FrameContext& context,
                          uint64_t first_sequence, size_t count, EventAt event_at,
                          std::vector<Hash128>* chained_hashes) {
  // The decoder refuses an empty or oversized batch: such a frame would read as damage.
  assert(count != 0 && count <= kBatchEventsMax);
  std::vector<Hash128> local;
  std::vector<Hash128>& hashes = chained_hashes != nullptr ? *chained_hashes : local;
  size_t first_hash = hashes.size();
  FrameStart start =
      begin_frame(out, context.header(RecordType::Batch, first_sequence), context.form);
  MsgpackWriter(out).array_header(static_cast<uint32_t>(count));
  for (size_t i = 0; i < count; ++i) {
    std::span<const Hash128> before(hashes.data() + first_hash, i);
    hashes.push_back(encode_event_body(out, event_at(i, before)));
  }
  return finish_frame(out, start, context.segment_id);
}

}  // namespace

size_t append_batch_frame(std::vector<std::byte>& out, const FrameContext& context,
                          uint64_t first_sequence, std::span<const EventBody> events,
                          std::vector<Hash128>* chained_hashes) {
  return encode_batch_frame(
      out, context, first_sequence, events.size(),
      [&](size_t i, std::span<const Hash128>) -> const EventBody& { return events[i]; },
      chained_hashes);
}

size_t append_batch_frame(std::vector<std::byte>& out, const FrameContext& context,
                          uint64_t first_sequence, std::span<EventBody> events,
                          std::span<const int32_t> chain_to, std::vector<Hash128>* chained_hashes) {
  assert(chain_to.empty() || chain_to.size() == events.size());
  return encode_batch_frame(
      out, context, first_sequence, events.size(),
      [&](size_t i, std::span<const Hash128> before) -> const EventBody& {
        if (!chain_to.empty() && chain_to[i] >= 0) {
          assert(static_cast<size_t>(chain_to[i]) < i);
          events[i].prev_hash = before[static_cast<size_t>(chain_to[i])];
        }
        return events[i];
      },
      chained_hashes);
}

size_t append_system_frame(std::vector<std::byte>& out, const FrameContext& context,
                           uint64_t next_sequence, const SystemRecord& record) {
  FrameStart start = begin_frame(out, context.header(record.type, next_sequence), context.form);
  MsgpackWriter w(out);
  switch (record.type) {
    case RecordType::FenceBegin:
    case RecordType::FenceCommit:
      assert(record.fence_id != 0 && "fence id 0 would not decode");
      w.array_header(1);
      w.uint(record.fence_id);
      break;
    case RecordType::FenceCancel:
      assert(record.fence_id != 0 && "fence id 0 would not decode");
      w.array_header(2);
      w.uint(record.fence_id);
      w.uint(static_cast<uint8_t>(record.cancel_reason));
      break;
    case RecordType::Seal:
      w.array_header(1);
      w.uint(record.event_count);
      break;
    case RecordType::Event:
    case RecordType::Batch:
      assert(false && "not a system record");
      break;
  }
  return finish_frame(out, start, context.segment_id);
}

uint32_t record_event_count(const DecodedFrame& frame, const char** error) {
  *error = nullptr;
  if (frame.header.type == RecordType::Event) return 1;
  if (frame.header.type != RecordType::Batch) {
    *error = "not an event record";
    return 0;
  }
  MsgpackReader reader(frame.body);
  auto n = reader.array_header();
  if (!n || *n == 0 || *n > kBatchEventsMax) {
    *error = "bad batch event count";
    return 0;
  }
  return *n;
}

const char* decode_system_record(const DecodedFrame& frame, SystemRecord& record) {
  MsgpackReader r(frame.body);
  record = SystemRecord{};
  record.type = frame.header.type;
  auto fields = r.array_header();
  if (!fields) return "system record body is not an array";
  switch (frame.header.type) {
    case RecordType::FenceBegin:
    case RecordType::FenceCommit: {
      auto id = fields == 1u ? r.uint() : std::nullopt;
      if (!id || *id == 0) return "bad fence record";
      record.fence_id = *id;
      break;
    }
    case RecordType::FenceCancel: {
      auto id = fields == 2u ? r.uint() : std::nullopt;
      auto reason = id ? r.uint() : std::nullopt;
      if (!id || *id == 0 || !reason || (*reason != 1 && *reason != 2)) {
        return "bad fence cancel record";
      }
      record.fence_id = *id;
      record.cancel_reason = static_cast<CancelReason>(*reason);
      break;
    }
    case RecordType::Seal: {
      auto count = fields == 1u ? r.uint() : std::nullopt;
      if (!count) return "bad seal record";
      record.event_count = *count;
      break;
    }
    case RecordType::Event:
    case RecordType::Batch:
      return "not a system record";
  }
  if (!r.at_end()) return "trailing bytes after the system record body";
  return nullptr;
}

}  // namespace keel::format
