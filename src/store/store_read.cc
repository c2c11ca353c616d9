// The read path: every read sees only visible, non-hidden events, read back from the segment files
// through verified frames.
#include "format/record.h"
#include "store/store_impl.h"

namespace keel {
namespace {

EventView to_view(const format::EventBody& b, uint64_t sequence, uint64_t epoch) {
  EventView v;
  v.sequence = sequence;
  v.epoch = epoch;
  v.event_id = b.event_id;
  v.entity = b.entity;
  v.scope = b.scope;
  v.kind = EventKind{b.kind};
  v.lane = b.lane;
  v.entity_clock = b.entity_clock;
  v.hlc = Hlc{b.hlc_wall_ms, b.hlc_logical};
  v.correlation_id = b.correlation_id;
  v.causation_id = b.causation_id;
  v.metadata = b.metadata;
  v.payload = b.payload;
  v.prev_hash = b.prev_hash;
  v.chained_hash = b.chained_hash;
  return v;
}

StoreError not_found(std::string key) {
  return StoreError(ErrorCode::NotFound).with("what", "visible event").with("key", key);
}

}  // namespace

uint64_t Store::Impl::sequence_visible() const { return marks_.sequence(Watermark::Visible); }

// Bytes that no longer change: all of a segment before the active one, the written part of the
// active one. A read-only store trusts only segments before the last it recovered (the writer may
// still be appending to that one).
uint64_t Store::Impl::stable_end_of(uint64_t segment_id) const {
  if (const log::SegmentWriter* writer = log_->writer()) {
    return segment_id < writer->active_segment_id() ? UINT64_MAX : writer->written_offset();
  }
  const auto& segments = log_->recovered().segments;
  return !segments.empty() && segment_id < segments.back().header.segment_id ? UINT64_MAX : 0;
}

Result<uint32_t> Store::Impl::visit_record(uint64_t first_sequence, uint64_t epoch,
                                           const format::DecodedFrame& frame, uint64_t from,
                                           uint64_t to, bool& keep_going,
                                           const EventVisitor& visit) {
  uint32_t events = 0;
  const char* problem = format::decode_record_events(
      frame, scan_body_, [&](uint32_t i, const format::EventBody& body) {
        events = i + 1;
        uint64_t sequence = first_sequence + i;
        if (!keep_going || sequence < from || sequence > to) return;
        if (!index_.visible_in_index(sequence)) return;  // hidden
        keep_going = visit(to_view(body, sequence, epoch));
      });
  if (problem != nullptr) {
    return StoreError(ErrorCode::Corruption)
        .with("path", directory_)
        .with("offset", first_sequence)
        .with("reason", std::string(problem) + " (offset is the record's first sequence)")
        .with("rule", "read verification");
  }
  return events;
}

std::optional<Store::Impl::FrameAt> Store::Impl::frame_at_locked(uint64_t sequence) const {
  if (sequence > sequence_visible() || sequence < first_retained_sequence_) return std::nullopt;
  std::optional<index::EventLocation> location = index_.locate(sequence);
  if (!location) return std::nullopt;
  return FrameAt{location->segment_id, location->frame_offset, stable_end_of(location->segment_id)};
}

Status Store::Impl::read_body_at(uint64_t sequence, const FrameAt& at, log::FrameBytes& bytes,
                                 const BodyVisitor& visit) {
  format::DecodedFrame frame;
  KEEL_TRY(reader_.read_frame(at.segment_id, at.offset, at.stable_end, bytes, frame));
  return visit_event_in(sequence, frame, visit);
}

Status Store::Impl::visit_event_in(uint64_t sequence, const format::DecodedFrame& frame,
                                   const BodyVisitor& visit) const {
  bool found = false;
  const char* problem =
      format::decode_record_events(frame, [&](uint32_t i, const format::EventBody& body) {
        if (frame.header.sequence + i != sequence) return;
        found = true;
        visit(body, frame.header.epoch);
      });
  if (problem != nullptr) {
    return read_corruption(sequence, std::string(problem) + " (offset is the sequence)");
  }
  if (!found) return read_corruption(sequence, "the indexed record does not hold this sequence");
  return ok_status();
}

StoreError Store::Impl::read_corruption(uint64_t sequence, std::string reason) const {
  return StoreError(ErrorCode::Corruption)
      .with("path", directory_)
      .with("offset", sequence)
      .with("reason", std::move(reason))
      .with("rule", "read verification");
}

EventView Store::Impl::view_of(const format::EventBody& body, uint64_t sequence, uint64_t epoch) {
  return to_view(body, sequence, epoch);
}

Status Store::Impl::read_at(uint64_t sequence, const FrameAt& at, log::FrameBytes& bytes,
                            const EventVisitor& visit) {
  return read_body_at(sequence, at, bytes, [&](const format::EventBody& body, uint64_t epoch) {
    visit(to_view(body, sequence, epoch));
  });
}

Status Store::Impl::read_body_locked(uint64_t sequence, const BodyVisitor& visit) {
  std::optional<FrameAt> at = frame_at_locked(sequence);
  if (!at) return not_found("sequence " + std::to_string(sequence));
  return read_body_at(sequence, *at, read_bytes_, visit);
}

Status Store::Impl::read_locked(uint64_t sequence, const EventVisitor& visit) {
  std::optional<FrameAt> at = frame_at_locked(sequence);
  if (!at) return not_found("sequence " + std::to_string(sequence));
  return read_at(sequence, *at, read_bytes_, visit);
}

Result<Event> Store::Impl::read(uint64_t sequence) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  Event event;
  KEEL_TRY(read_locked(sequence, [&](const EventView& view) {
    event = Event::from_view(view);
    return false;
  }));
  return event;
}

Result<Event> Store::Impl::get(const EventId& id) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  std::optional<uint64_t> sequence = index_.find(id);
  if (!sequence || *sequence > sequence_visible() || *sequence < first_retained_sequence_) {
    return not_found(id.to_hex());
  }
  Event event;
  KEEL_TRY(read_locked(*sequence, [&](const EventView& view) {
    event = Event::from_view(view);
    return false;
  }));
  return event;
}

Status Store::Impl::scan(uint64_t from, uint64_t to, const EventVisitor& visit) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  if (from > to) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "from")
        .with("reason", "the sequence range " + std::to_string(from) + " to " + std::to_string(to) +
                            " is reversed");
  }
  to = std::min(to, sequence_visible());
  from = std::max<uint64_t>(from, first_retained_sequence_);
  while (from <= to && !index_.visible_in_index(from)) ++from;  // skip hidden events
  if (from > to) return ok_status();
  std::optional<index::EventLocation> start = index_.locate(from);
  uint64_t segment_id = start->segment_id;
  uint64_t offset = start->frame_offset;
  bool keep_going = true;
  // Segments end with their Seal record; the scan stops after `to`, which is written.
  while (keep_going) {
    bool next_segment = false;
    KEEL_TRY(reader_.scan_frames(
        segment_id, offset, UINT64_MAX, [&](uint64_t, const format::DecodedFrame& frame) {
          if (frame.header.sequence > to) {
            keep_going = false;
          } else if (frame.header.type == format::RecordType::Seal) {
            next_segment = true;
          } else if (!format::is_system_record(frame.header.type)) {
            Result<uint32_t> events = visit_record(frame.header.sequence, frame.header.epoch, frame,
                                                   from, to, keep_going, visit);
            if (!events.ok()) {
              scan_error_ = std::move(events).error();
              keep_going = false;
            } else if (frame.header.sequence + *events > to) {
              // Stop at the record holding `to`: bytes after it may not be written yet.
              keep_going = false;
            }
          }
          return keep_going && !next_segment;
        }));
    if (scan_error_) {
      StoreError error = std::move(*scan_error_);
      scan_error_.reset();
      return error;
    }
    if (keep_going && !next_segment) {
      return StoreError(ErrorCode::Corruption)
          .with("path", directory_)
          .with("offset", to)
          .with("reason", "segment " + std::to_string(segment_id) +
                              " ended without a seal before the scan reached this sequence")
          .with("rule", "read verification");
    }
    if (!next_segment) break;
    ++segment_id;
    offset = format::kSegmentHeaderSize;
  }
  return ok_status();
}

Status Store::Impl::entity_stream(std::string_view entity, uint32_t lane, uint64_t clock_from,
                                  uint64_t clock_to, const EventVisitor& visit) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_TRY(validate_coordinate(entity, ""));
  if (lane >= options_.lanes_max) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "lane")
        .with("reason", "lane " + std::to_string(lane) + " is not below lanes_max " +
                            std::to_string(options_.lanes_max));
  }
  if (clock_from > clock_to) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "clock_from")
        .with("reason", "the clock range " + std::to_string(clock_from) + " to " +
                            std::to_string(clock_to) + " is reversed");
  }
  const index::EntityStream* stream = index_.stream(entity, lane);
  if (stream == nullptr) return ok_status();
  // The frames of up to kStreamWindow events are read in one batch (FileSystem::read_batch), then
  // decoded and visited in clock order: a visitor that stops early costs at most a window's reads.
  constexpr size_t kStreamWindow = 128;
  const uint64_t visible = sequence_visible();
  const uint64_t last = std::min(clock_to, stream->clock());
  std::vector<uint64_t> sequences;
  std::vector<FrameAt> frames;
  log::HeldFrames held;
  bool keep_going = true;
  bool past_visible = false;
  for (uint64_t clock = std::max<uint64_t>(clock_from, 1);
       keep_going && !past_visible && clock <= last;) {
    sequences.clear();
    frames.clear();
    for (; clock <= last && sequences.size() < kStreamWindow; ++clock) {
      const uint64_t sequence = stream->sequences[clock - 1];
      if (sequence > visible) {
        past_visible = true;
        break;
      }
      if (sequence < first_retained_sequence_) continue;  // removed below the retention floor
      std::optional<FrameAt> at = frame_at_locked(sequence);
      if (!at) return not_found("sequence " + std::to_string(sequence));
      sequences.push_back(sequence);
      frames.push_back(*at);
    }
    KEEL_TRY(reader_.hold_frames(frames, held));
    for (size_t i = 0; keep_going && i < sequences.size(); ++i) {
      format::DecodedFrame frame;
      auto decoded = format::decode_frame(held.frames[i], frames[i].segment_id, frame);
      if (decoded != format::FrameDecode::Ok) {
        return reader_.frame_error(frames[i].segment_id, frames[i].offset, decoded);
      }
      KEEL_TRY(
          visit_event_in(sequences[i], frame, [&](const format::EventBody& body, uint64_t epoch) {
            keep_going = visit(to_view(body, sequences[i], epoch));
          }));
    }
  }
  return ok_status();
}

}  // namespace keel
