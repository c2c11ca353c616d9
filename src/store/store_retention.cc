// The mechanism of retention (the policy, which floor and what holds it back, is the consumers
// layer's: src/consumers/retention.cc): removes the sealed segments below a floor after persisting
// what must outlive them (idempotency keys, docs/ARCHITECTURE.md §7; an index image; the retention
// floor, segments/FORMAT.md 8.6). The removed events stay in the in-memory indexes (their streams
// keep counting clocks from 1) and every read path starts at the floor.
#include "format/record.h"
#include "format/segment_header.h"
#include "log/segment_files.h"
#include "log/sidecar_file.h"
#include "store/store_impl.h"

namespace keel {

namespace {

StoreError invalid_floor(std::string reason) {
  return StoreError(ErrorCode::InvalidArgument)
      .with("argument", "floor_sequence")
      .with("reason", reason);
}

}  // namespace

// The retained segments, oldest first (the caller holds the lock).
Result<std::vector<SegmentSpan>> Store::Impl::segment_spans_locked() {
  KEEL_TRY(check_writable("retention"));
  const log::SegmentWriter& writer = *log_->writer();
  KEEL_ASSIGN_OR_RETURN(std::vector<log::SegmentFile> files,
                        log::list_segment_files(fs_, directory_));
  std::vector<SegmentSpan> spans;
  for (const log::SegmentFile& file : files) {
    if (file.segment_id < first_retained_segment_) continue;  // a removal's leftover
    if (file.segment_id > writer.active_segment_id()) break;
    KEEL_ASSIGN_OR_RETURN(auto handle, fs_.open(file.path, platform::OpenMode::ReadOnly));
    std::vector<std::byte> bytes(format::kSegmentHeaderSize);
    KEEL_ASSIGN_OR_RETURN(size_t got, handle->read_at(0, bytes));
    format::SegmentHeader header;
    if (got != bytes.size() ||
        format::decode_segment_header(bytes, header, nullptr) != format::HeaderDecode::Ok) {
      return StoreError(ErrorCode::Corruption)
          .with("path", file.path)
          .with("offset", uint64_t{0})
          .with("reason", "segment header unreadable")
          .with("rule", "retention");
    }
    const bool active = file.segment_id == writer.active_segment_id();
    uint64_t size = 0;  // the active segment's data, not its preallocated space
    if (active) {
      size = stable_end_of(file.segment_id);
    } else {
      KEEL_ASSIGN_OR_RETURN(size, handle->size());
    }
    spans.push_back(SegmentSpan{file.segment_id, header.first_sequence, 0, size, 0, active});
  }
  // A segment ends where the next begins; its newest event's wall time comes from the index.
  for (size_t i = 0; i < spans.size(); ++i) {
    uint64_t end = i + 1 < spans.size() ? spans[i + 1].first_sequence : index_.next_sequence();
    spans[i].last_sequence = end - 1;
    if (end - 1 >= spans[i].first_sequence) spans[i].last_wall_ms = index_.hlc_at(end - 1).wall_ms;
  }
  return spans;
}

Result<std::vector<SegmentSpan>> Store::Impl::segment_spans() {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_writable("retention"));
  return segment_spans_locked();
}

uint64_t Store::Impl::now_wall_ms() { return clock_.wall_ms(); }

Result<uint64_t> Store::Impl::retain_from(uint64_t floor_sequence) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_writable("retention"));
  log::SegmentWriter& writer = *log_->writer();
  if (writer.poisoned()) return writer.poisoned_error();
  if (fence_) return invalid_floor("a fence is open");
  const uint64_t durable = marks_.sequence(Watermark::Durable);
  if (floor_sequence > durable + 1) {
    return invalid_floor(std::to_string(floor_sequence) + " is above the durable sequence " +
                         std::to_string(durable) + " + 1");
  }
  // The new first segment: the last one that starts at or below the floor.
  KEEL_ASSIGN_OR_RETURN(std::vector<SegmentSpan> spans, segment_spans_locked());
  std::optional<log::RetentionFloor> cut;
  for (const SegmentSpan& span : spans) {
    if (span.first_sequence > floor_sequence) break;
    cut = log::RetentionFloor{span.segment_id, span.first_sequence};
  }
  if (!cut || cut->first_sequence <= first_retained_sequence_) return first_retained_sequence_;
  // Never inside a fence: recovery would meet fenced records without their FenceBegin. The first
  // record of the new first segment tells (FORMAT.md 6.4: every record inside a fence is fenced).
  {
    format::DecodedFrame frame;
    Status read = reader_.read_frame(cut->first_segment_id, format::kSegmentHeaderSize,
                                     stable_end_of(cut->first_segment_id), read_bytes_, frame);
    // Only the active segment may hold no frame yet.
    if (!read.ok() && cut->first_segment_id != writer.active_segment_id())
      return std::move(read).error();
    if (read.ok()) {
      bool fenced = frame.header.type == format::RecordType::FenceCommit ||
                    frame.header.type == format::RecordType::FenceCancel;
      if (!format::is_system_record(frame.header.type)) {
        (void)format::decode_record_events(frame, [&](uint32_t, const format::EventBody& body) {
          fenced |= body.fence_id.has_value();
        });
      }
      if (fenced) {
        return invalid_floor("segment " + std::to_string(cut->first_segment_id) +
                             " starts inside a fence");
      }
    }
  }
  // What must outlive the removed events, first: their idempotency keys and the indexes (an index
  // image through durable: the streams' clocks and heads, the ids; a log that starts at the floor
  // cannot rebuild them, so from now on an open needs this image or a later one).
  KEEL_ASSIGN_OR_RETURN(std::optional<Image> image, image_at_durable(lock));
  if (!image) {
    return invalid_floor(
        "no index image can be cut at the durable sequence now (its record is "
        "inside a fence); append and retry");
  }
  KEEL_TRY(write_image(*image));
  std::unique_lock removing(segments_in_use_);  // reads outside the mutex end first
  reader_.reset();                              // no handle on a removed file stays cached
  Status retained = log_->retain_from(*cut);
  if (!retained.ok() && !retained.error().is(ErrorCode::OperationInDoubt)) return retained.error();
  // The floor moved (RETAIN is durable), even when removing what is below it is in doubt.
  first_retained_sequence_ = cut->first_sequence;
  first_retained_segment_ = cut->first_segment_id;
  removed_events_ = count_removed_events();
  if (!retained.ok()) return retained.error();
  return first_retained_sequence_;
}

uint64_t Store::Impl::count_removed_events() const {
  uint64_t removed = 0;
  for (uint64_t s = 1; s < first_retained_sequence_ && s < index_.next_sequence(); ++s) {
    removed += index_.visible_in_index(s) ? 1 : 0;
  }
  return removed;
}

}  // namespace keel
