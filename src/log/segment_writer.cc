#include "log/segment_writer.h"

#include <algorithm>
#include <cassert>

#include "format/byte_order.h"
#include "format/segment_header.h"
#include "log/poisoned_logs.h"
#include "log/segment_files.h"

namespace keel::log {

Status check_segment_writer_options(const SegmentWriterOptions& options) {
  if (options.segment_size < kSegmentSizeMin) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "segment_size")
        .with("reason", "must be at least 4096 bytes");
  }
  return ok_status();
}

namespace {

// A crash between sealing a segment and trimming its preallocation leaves zeros after the seal;
// trim them before the next segment is created, so a sealed segment is exactly its data. Then
// fdatasync even when nothing was trimmed: what recovery read may exist only in the page cache (a
// killed process, or an earlier open in this process that trimmed and failed before its sync), and
// the next segment must not become durable on top of a sealed one that is not.
Status trim_sealed_segment(platform::FileSystem& fs, const RecoveredSegment& segment) {
  KEEL_ASSIGN_OR_RETURN(auto file, fs.open(segment.path, platform::OpenMode::ReadWrite));
  KEEL_ASSIGN_OR_RETURN(uint64_t size, file->size());
  if (size > segment.data_end) KEEL_TRY(file->truncate(segment.data_end));
  return file->sync_data();
}

}  // namespace

Result<std::unique_ptr<SegmentWriter>> SegmentWriter::open(platform::FileSystem& fs,
                                                           const std::string& directory,
                                                           const SegmentWriterOptions& options,
                                                           const RecoveredLog& recovered,
                                                           uint64_t epoch) {
  KEEL_TRY(check_segment_writer_options(options));
  std::unique_ptr<SegmentWriter> writer(new SegmentWriter(fs, directory, options, epoch));
  writer->next_sequence_ = recovered.next_sequence;
  writer->sequence_issued_ = recovered.next_sequence - 1;
  writer->sequence_written_ = recovered.next_sequence - 1;
  writer->sequence_durable_ = recovered.next_sequence - 1;
  if (recovered.segments.empty()) {
    KEEL_TRY(writer->create_segment(1, recovered.next_sequence));
  } else if (recovered.segments.back().sealed) {
    KEEL_TRY(trim_sealed_segment(fs, recovered.segments.back()));
    KEEL_TRY(writer->create_segment(recovered.segments.back().header.segment_id + 1,
                                    recovered.next_sequence));
  } else {
    KEEL_TRY(writer->continue_segment(recovered.segments.back()));
    // A segment an older format version created is sealed (in its own frame form) and the log
    // goes on in a new one: this build writes compact frames and bodies, which the builds that
    // read only older versions would take for damage. FORMAT.md 14.
    if (recovered.segments.back().header.format_version < format::kFormatVersion) {
      KEEL_TRY(writer->rotate());
    }
  }
  // What recovery kept is durable now (continue_segment synced it): followers may show it.
  KEEL_ASSIGN_OR_RETURN(writer->synced_point_,
                        fs.open(platform::join_path(directory, format::kSyncedPointFileName),
                                platform::OpenMode::CreateOrOpen));
  const auto point = encode_synced_point({epoch, writer->segment_id_, writer->durable_offset_});
  if (writer->synced_point_->write_at(0, point).ok()) {
    (void)writer->synced_point_->truncate(point.size());  // a longer file is not a point
  }
  return writer;
}

Status SegmentWriter::create_segment(uint64_t segment_id, uint64_t first_sequence) {
  std::string path = platform::join_path(directory_, segment_file_name(segment_id));
  KEEL_ASSIGN_OR_RETURN(auto file, fs_.open(path, platform::OpenMode::CreateNew));
  // Preallocate first: running out of space surfaces here, before any frame byte is written.
  // A crash before the header is synced leaves a zero-filled newest segment (NewestSegmentEmpty).
  if (Status allocated = file->allocate(0, options_.segment_size); !allocated.ok()) {
    file.reset();
    (void)fs_.remove(path);  // best effort; a leftover zero file is NewestSegmentEmpty
    (void)fs_.sync_directory(directory_);
    return allocated;
  }
  // Frames are small and written forward into the reserved space: copies into a shared mapping
  // cost a fraction of a pwrite each (docs/DECISIONS.md, 2026-12-07).
  file->map_for_writes(options_.segment_size);
  auto header = format::encode_segment_header({segment_id, epoch_, first_sequence});
  KEEL_TRY(file->write_at(0, header));
  KEEL_TRY(file->sync_data());
  KEEL_TRY(fs_.sync_directory(directory_));
  file_ = std::move(file);
  segment_id_ = segment_id;
  frame_form_ = format::frame_form_of(format::kFormatVersion);
  segment_event_count_ = 0;
  last_record_ = RecordPosition{segment_id, 0};  // none yet
  issued_offset_ = written_offset_ = durable_offset_ = format::kSegmentHeaderSize;
  return ok_status();
}

Status SegmentWriter::continue_segment(const RecoveredSegment& segment) {
  KEEL_ASSIGN_OR_RETURN(file_, fs_.open(segment.path, platform::OpenMode::ReadWrite));
  segment_id_ = segment.header.segment_id;
  frame_form_ = format::frame_form_of(segment.header.format_version);
  segment_event_count_ = segment.event_count;
  last_record_ = RecordPosition{segment_id_, segment.last_frame_offset};
  issued_offset_ = written_offset_ = segment.data_end;
  if (segment.data_end < options_.segment_size) {
    KEEL_TRY(file_->allocate(segment.data_end, options_.segment_size - segment.data_end));
    file_->map_for_writes(options_.segment_size);
  }
  // What recovery kept may still be only in the page cache (a killed process): make it durable
  // before any new frame claims it is.
  KEEL_TRY(file_->sync_data());
  durable_offset_ = segment.data_end;
  return ok_status();
}

StoreError SegmentWriter::poisoned_error() const {
  assert(poison_);
  return StoreError(ErrorCode::WriterPoisoned)
      .with("operation", poison_->field_string("operation").value_or("write"))
      .caused_by(*poison_);
}

Status SegmentWriter::check_usable() const {
  assert(!closed_);
  if (poison_) return poisoned_error();
  return ok_status();
}

StoreError SegmentWriter::poison(StoreError cause) {
  if (!poison_) {
    poison_ = cause;
    remember_synced_end(fs_, directory_, SyncedEnd{segment_id_, durable_offset_});
  }
  return cause;
}

bool SegmentWriter::would_rotate(uint64_t record_bytes) const {
  return issued_offset_ + pending_.size() + record_bytes + kSealFrameMax > options_.segment_size;
}

template <class Encode>
Status SegmentWriter::append_record(uint32_t event_count, Encode encode) {
  KEEL_TRY(check_usable());
  if (!file_) KEEL_TRY(start_next_segment());  // a rotation that ran out of space, retried
  size_t mark = pending_.size();
  size_t frame_size = encode(pending_, context(), next_sequence_);
  // The body's length as stored is exact below 4 GiB; a larger body makes a frame above any
  // frame with a body the format holds.
  const uint64_t body_length =
      frame_size > format::kFrameHeaderMax + format::kFrameBodyMax + format::kFrameAlignment
          ? frame_size
          : format::load_u32(pending_.data() + mark + format::kFrameBodyLengthOffset);
  if (body_length > format::kFrameBodyMax) {
    // The format cannot hold it (FORMAT.md 4.1): a reader would take it for a torn tail.
    pending_.resize(mark);
    return StoreError(ErrorCode::PayloadTooLarge)
        .with("what", "record body")
        .with("size", body_length)
        .with("limit", uint64_t{format::kFrameBodyMax});
  }
  if (issued_offset_ + pending_.size() + kSealFrameMax > options_.segment_size) {
    pending_.resize(mark);
    if (format::kSegmentHeaderSize + frame_size + kSealFrameMax > options_.segment_size) {
      return StoreError(ErrorCode::PayloadTooLarge)
          .with("what", "record")
          .with("size", uint64_t{frame_size})
          .with("limit", options_.segment_size - format::kSegmentHeaderSize - kSealFrameMax);
    }
    if (!idle()) {
      return StoreError(ErrorCode::InvariantViolation)
          .with("invariant", "a rotation needs the write and sync stages idle (would_rotate)");
    }
    KEEL_TRY(rotate());
    mark = pending_.size();
    encode(pending_, context(), next_sequence_);
  }
  last_record_ = RecordPosition{segment_id_, issued_offset_ + mark};
  next_sequence_ += event_count;
  segment_event_count_ += event_count;
  return ok_status();
}

Status SegmentWriter::append_event(const format::EventBody& event, Hash128* chained_hash) {
  return append_record(1, [&](std::vector<std::byte>& out, const format::FrameContext& c,
                              uint64_t sequence) {
    return format::append_event_frame(out, c, sequence, event, chained_hash);
  });
}

template <class Encode>
Status SegmentWriter::append_batch_record(size_t count, std::vector<Hash128>* chained_hashes,
                                          Encode encode) {
  if (count == 0 || count > format::kBatchEventsMax) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "batch")
        .with("reason", "a batch holds 1 to 1048576 events");
  }
  return append_record(static_cast<uint32_t>(count),
                       [&](std::vector<std::byte>& out, const format::FrameContext& c,
                           uint64_t sequence) {
                         if (chained_hashes != nullptr) chained_hashes->clear();
                         return encode(out, c, sequence);
                       });
}

Status SegmentWriter::append_batch(std::span<const format::EventBody> events,
                                   std::vector<Hash128>* chained_hashes) {
  return append_batch_record(events.size(), chained_hashes,
                             [&](std::vector<std::byte>& out, const format::FrameContext& c,
                                 uint64_t sequence) {
                               return format::append_batch_frame(out, c, sequence, events,
                                                                 chained_hashes);
                             });
}

Status SegmentWriter::append_batch(std::span<format::EventBody> events,
                                   std::span<const int32_t> chain_to,
                                   std::vector<Hash128>* chained_hashes) {
  return append_batch_record(events.size(), chained_hashes,
                             [&](std::vector<std::byte>& out, const format::FrameContext& c,
                                 uint64_t sequence) {
                               return format::append_batch_frame(out, c, sequence, events,
                                                                 chain_to, chained_hashes);
                             });
}

Status SegmentWriter::append_system(const format::SystemRecord& record) {
  assert(record.type != format::RecordType::Seal && "the writer seals segments itself");
  return append_record(0, [&](std::vector<std::byte>& out, const format::FrameContext& c,
                              uint64_t sequence) {
    return format::append_system_frame(out, c, sequence, record);
  });
}

Status SegmentWriter::begin_write(WriteGroup& group, bool sync_follows) {
  KEEL_TRY(check_usable());
  if (write_in_flight_) {
    return StoreError(ErrorCode::InvariantViolation).with("invariant", "one write in flight");
  }
  group.file = file_.get();
  group.offset = issued_offset_;
  group.bytes.clear();
  group.bytes.swap(pending_);
  pending_.swap(spare_);
  pending_.clear();
  issued_offset_ += group.bytes.size();
  sequence_issued_ = next_sequence_ - 1;
  group.last_sequence = sequence_issued_;
  group.sync_follows = sync_follows;
  write_in_flight_ = true;
  return ok_status();
}

Status SegmentWriter::run_write(WriteGroup& group) {
  if (group.file == nullptr || group.bytes.empty()) return ok_status();
  if (!group.sync_follows) return group.file->write_mapped(group.offset, group.bytes);
  return group.file->write_at(group.offset, group.bytes);
}

Status SegmentWriter::end_write(WriteGroup& group, Status outcome) {
  write_in_flight_ = false;
  spare_.swap(group.bytes);
  if (!outcome.ok()) return poison(std::move(outcome).error());
  if (group.file == nullptr || poison_) return ok_status();
  written_offset_ = group.offset + spare_.size();
  sequence_written_ = group.last_sequence;
  return ok_status();
}

Status SegmentWriter::begin_sync(SyncTicket& ticket) {
  KEEL_TRY(check_usable());
  if (sync_in_flight_) {
    return StoreError(ErrorCode::InvariantViolation).with("invariant", "one fdatasync in flight");
  }
  ticket.file = file_.get();
  ticket.offset = written_offset_;
  ticket.last_sequence = sequence_written_;
  ticket.skip_sync_for_test = options_.skip_sync_for_test;
  ticket.synced_point = synced_point_.get();
  ticket.point = SyncedPoint{epoch_, segment_id_, written_offset_};
  sync_in_flight_ = true;
  return ok_status();
}

Status SegmentWriter::run_sync(SyncTicket& ticket) {
  if (ticket.file == nullptr || ticket.skip_sync_for_test) return ok_status();
  KEEL_TRY(ticket.file->sync_data());
  // Advisory (log/synced_point.h): a failed write leaves followers to the frames' own claims.
  if (ticket.synced_point != nullptr) {
    (void)ticket.synced_point->write_at(0, encode_synced_point(ticket.point));
  }
  return ok_status();
}

Status SegmentWriter::end_sync(SyncTicket& ticket, Status outcome) {
  sync_in_flight_ = false;
  if (!outcome.ok()) return poison(std::move(outcome).error());
  if (ticket.file == nullptr) return ok_status();
  if (poison_) return *poison_;  // frozen (fsyncgate): never believe a later fdatasync
  durable_offset_ = std::max(durable_offset_, ticket.offset);
  sequence_durable_ = std::max(sequence_durable_, ticket.last_sequence);
  return ok_status();
}

Status SegmentWriter::flush() {
  KEEL_TRY(check_usable());
  if (pending_.empty()) return ok_status();
  WriteGroup group;
  KEEL_TRY(begin_write(group));
  return end_write(group, run_write(group));
}

Status SegmentWriter::sync() {
  KEEL_TRY(flush());
  SyncTicket ticket;
  KEEL_TRY(begin_sync(ticket));
  return end_sync(ticket, run_sync(ticket));
}

Status SegmentWriter::rotate() {
  format::append_system_frame(pending_, context(), next_sequence_,
                              format::SystemRecord{format::RecordType::Seal, 0,
                                                   format::CancelReason::Caller,
                                                   segment_event_count_});
  KEEL_TRY(sync());
  if (Status truncated = file_->truncate(written_offset_); !truncated.ok()) {
    return poison(std::move(truncated).error());
  }
  if (Status synced = file_->sync_data(); !synced.ok()) return poison(std::move(synced).error());
  file_.reset();
  return start_next_segment();
}

Status SegmentWriter::start_next_segment() {
  Status created = create_segment(segment_id_ + 1, next_sequence_);
  // NoSpace is raised by the preallocation before anything is written: retryable, no poison.
  if (!created.ok() && !created.error().is(ErrorCode::NoSpace)) {
    return poison(std::move(created).error());
  }
  return created;
}

Status SegmentWriter::close() {
  KEEL_TRY(sync());
  closed_ = true;
  if (!file_) return ok_status();
  if (Status truncated = file_->truncate(written_offset_); !truncated.ok()) {
    return poison(std::move(truncated).error());
  }
  if (Status synced = file_->sync_data(); !synced.ok()) return poison(std::move(synced).error());
  file_.reset();
  return ok_status();
}

}  // namespace keel::log
