// The index image (index/index_image.h, segments/FORMAT.md §8.4): written atomically at close,
// restored at a writable open when it is whole and matches the log; otherwise the log is
// recovered in full and stats().index_source says why the image was not used.
#include <chrono>

#include "format/record.h"
#include "index/index_image.h"
#include "log/sidecar_file.h"
#include "store/store_impl.h"

namespace keel {

Result<uint64_t> Store::Impl::load_keys() {
  keys_ = index::IdempotencyIndex();
  KEEL_ASSIGN_OR_RETURN(std::optional<log::RetentionFloor> floor,
                        log::read_retention_floor(fs_, directory_));
  const std::string path = platform::join_path(directory_, format::kIdempotencyFileName);
  auto payload = log::read_sidecar(fs_, directory_, format::kIdempotencyFileName,
                                   format::SidecarKind::Idempotency, index::kIdempotencyVersion);
  if (!payload.ok()) {
    if (floor || !payload.error().is(ErrorCode::CorruptSidecar)) return std::move(payload).error();
    index_source_ = "log (idempotency sidecar rebuilt: " + payload.error().message() + ")";
    return uint64_t{0};
  }
  if (!*payload) {
    if (floor) {
      return StoreError(ErrorCode::CorruptSidecar)
          .with("path", path)
          .with("reason", "missing, while segments below the retention floor are gone");
    }
    return uint64_t{0};
  }
  auto decoded = index::IdempotencyIndex::decode(**payload, path);
  if (!decoded.ok()) {
    if (floor) return std::move(decoded).error();
    index_source_ = "log (idempotency sidecar rebuilt: " + decoded.error().message() + ")";
    return uint64_t{0};
  }
  keys_ = std::move(decoded->first);
  return decoded->second;
}

Status Store::Impl::restore_image(log::LogOptions& log_options, uint64_t keys_through) {
  auto not_used = [&](const std::string& reason) {
    index_source_ = "log (image not used: " + reason + ")";
    return ok_status();
  };
  const std::string path = platform::join_path(directory_, format::kIndexImageFileName);
  KEEL_ASSIGN_OR_RETURN(bool present, fs_.exists(path));
  if (!present) return ok_status();
  // One rule for every sidecar: a file that cannot be read is the read's error (Io, or
  // PermissionDenied), never taken for a damaged or missing one.
  KEEL_ASSIGN_OR_RETURN(auto file, fs_.open(path, platform::OpenMode::ReadOnly));
  index::EventIndex image;
  log::Checkpoint checkpoint;
  std::string reason;
  KEEL_ASSIGN_OR_RETURN(index::ImageDecode decoded,
                        index::decode_image_file(*file, image, checkpoint, reason));
  switch (decoded) {
    case index::ImageDecode::Ok:
      break;
    case index::ImageDecode::NewerVersion:
      return StoreError(ErrorCode::UnsupportedVersion)
          .with("path", path)
          .with("found", reason)
          .with("supported", uint64_t{index::kImageVersion})
          .with("rule", "index image");
    case index::ImageDecode::OlderVersion:
    case index::ImageDecode::Damaged:
      return not_used(reason);
  }
  // It was cut at a durable sequence: the log must hold it (recovery fails closed otherwise). Its
  // resume point is checked by recovery (a mismatch rejects the image, a cache); the sequence is
  // what must never be issued again.
  log_options.references.push_back(log::LogReference{path, checkpoint.next_sequence});
  // The image and the log agree on the last event it holds: same place, same chained hash (an
  // image from a lost epoch, or of another log, names bytes that are not there).
  if (uint64_t last = image.last_visible_sequence(); last != 0) {
    index::EventLocation at = *image.locate(last);
    log::FrameBytes buffer;
    format::DecodedFrame frame;
    // Its own reader, dropped before recovery: reader_ keeps handles, and recovery may delete or
    // truncate the segment read here (a newest segment it recreates would be read stale).
    log::RecordReader reader(fs_, directory_);
    if (!reader.read_frame(at.segment_id, at.frame_offset, 0, buffer, frame).ok()) {
      return not_used("its last event, sequence " + std::to_string(last) + ", is not in the log");
    }
    bool same = false;
    const char* problem =
        format::decode_record_events(frame, [&](uint32_t i, const format::EventBody& body) {
          if (frame.header.sequence + i == last) {
            same = body.chained_hash == image.stream_at(last).head_hash;
          }
        });
    if (problem != nullptr || !same) {
      return not_used("it disagrees with the log on the chained hash of sequence " +
                      std::to_string(last));
    }
  }
  if (checkpoint.next_sequence - 1 > keys_through) {
    return not_used("the idempotency keys are saved only through sequence " +
                    std::to_string(keys_through));
  }
  // A clean close hands its image to the kernel without waiting for the disk (close()). A writable
  // open that uses it has it made durable, so that a crash after that replays only what follows
  // it: by the image thread, first thing (image_loop), or here when there is none.
  if (!log_options.read_only) {
    if (options_.index_image_interval.count() > 0) {
      restored_image_unsynced_ = true;
    } else {
      KEEL_TRY(sync_restored_image());
    }
  }
  index_ = std::move(image);
  image_sequence_ = checkpoint.next_sequence - 1;  // no new image until enough events follow it
  image_on_disk_.emplace(index_.next_sequence(), index_.event_count());
  log_options.checkpoint = checkpoint;
  log_options.checkpoint_rejected = [this](const std::string& why) {
    index_ = index::EventIndex();
    image_sequence_ = 0;
    image_on_disk_.reset();
    restored_image_unsynced_ = false;
    index_source_ = "log (image not used: the log does not match it: " + why + ")";
  };
  return ok_status();
}

// An accepted data loss (StoreOptions::accept_data_loss), before END records it: what names
// events above the recovered end is cut back to it, so the next open finds it consistent. The
// idempotency keys are written again at the recovered end; an index image above it (a cache) is
// removed.
Status Store::Impl::drop_references_above(const log::DataLoss& loss) {
  const std::string keys_path = platform::join_path(directory_, format::kIdempotencyFileName);
  const std::string image_path = platform::join_path(directory_, format::kIndexImageFileName);
  image_on_disk_.reset();  // the INDEX may go: close writes a new one
  restored_image_unsynced_ = false;
  for (const log::LogReference& reference : loss.not_reached) {
    if (reference.name == keys_path) {
      keys_.remove_from(loss.recovered_next_sequence);
      KEEL_TRY(log::write_sidecar(fs_, directory_, format::kIdempotencyFileName,
                                  format::SidecarKind::Idempotency, index::kIdempotencyVersion,
                                  keys_.encode(loss.recovered_next_sequence - 1)));
    } else if (reference.name == image_path) {
      KEEL_TRY(fs_.remove(image_path));
      KEEL_TRY(fs_.sync_directory(directory_));
    }
  }
  return ok_status();
}

Result<std::optional<log::Checkpoint>> Store::Impl::durable_checkpoint() {
  log::SegmentWriter* writer = log_->writer();
  const uint64_t durable = marks_.sequence(Watermark::Durable);
  if (writer == nullptr || writer->poisoned() || durable == 0 ||
      durable >= index_.next_sequence()) {
    return std::optional<log::Checkpoint>();
  }
  // The end of the record holding the last durable event (durable moves by whole records, so that
  // event ends its record). A checkpoint must not fall inside a fence (FORMAT.md 8.4): when the
  // last durable event is hidden (a cancelled fence) or fenced (its fence's end record comes after
  // it), there is none until a later unfenced record.
  std::optional<index::EventLocation> at = index_.locate(durable);
  if (!at) return std::optional<log::Checkpoint>();
  format::DecodedFrame frame;
  KEEL_TRY(reader_.read_frame(at->segment_id, at->frame_offset, stable_end_of(at->segment_id),
                              read_bytes_, frame));
  const char* count_error = nullptr;
  uint64_t events = format::record_event_count(frame, &count_error);
  if (count_error != nullptr || frame.header.sequence + events != durable + 1) {
    return StoreError(ErrorCode::InvariantViolation)
        .with("invariant",
              "durable sequence " + std::to_string(durable) + " does not end its record");
  }
  bool fenced = false;
  (void)format::decode_record_events(
      frame, [&](uint32_t, const format::EventBody& body) { fenced |= body.fence_id.has_value(); });
  if (fenced) return std::optional<log::Checkpoint>();
  // Frames' epochs never decrease along the log: the last covered frame's is the largest covered.
  return std::optional<log::Checkpoint>(log::Checkpoint{
      durable + 1, frame.header.epoch, at->segment_id, at->frame_offset + frame.size,
      at->frame_offset});
}

Result<std::optional<Store::Impl::Image>> Store::Impl::image_at_durable(writer::Lock& lock) {
  image_wake_.wait(lock, [&] { return !image_in_place_; });
  KEEL_ASSIGN_OR_RETURN(std::optional<log::Checkpoint> cut, durable_checkpoint());
  if (!cut) return std::optional<Image>();
  const log::Checkpoint& checkpoint = *cut;
  const uint64_t durable = checkpoint.next_sequence - 1;
  std::optional<StoreError> failure;
  auto hash_at = [&](uint64_t sequence) {
    Hash128 hash;
    Status read = read_body_locked(
        sequence, [&](const format::EventBody& body, uint64_t) { hash = body.chained_hash; });
    if (!read.ok() && !failure) failure = std::move(read).error();
    return hash;
  };
  auto started = std::chrono::steady_clock::now();
  const std::string temp =
      platform::join_path(directory_, format::kIndexImageFileName) + format::kTempSuffix;
  Status written = [&]() -> Status {
    KEEL_ASSIGN_OR_RETURN(auto file, fs_.open(temp, platform::OpenMode::CreateOrOpen));
    KEEL_TRY(file->truncate(0));
    return index::write_image_file(*file, index_, checkpoint, hash_at, /*writeback=*/true);
  }();
  keys_.expire(index_.next_sequence(), hlc_.physical_ms(), options_.idempotency_window_events,
               static_cast<uint64_t>(options_.idempotency_window.count()));
  image_hold_us_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::steady_clock::now() - started)
                                             .count());
  if (failure) return *failure;
  if (!written.ok()) {
    std::lock_guard image_lock(image_mutex_);
    image_error_ = written.error().to_string();
    return written.error();
  }
  return std::optional<Image>(Image{keys_.encode(durable), durable});
}

// The keys first: an INDEX newer than IDEMPOTENCY would not be used (restore_image).
Status Store::Impl::write_image(const Image& image, log::Replace index) {
  Status written =
      log::write_sidecar(fs_, directory_, format::kIdempotencyFileName,
                         format::SidecarKind::Idempotency, index::kIdempotencyVersion, image.keys);
  if (written.ok()) {
    written = log::commit_replace(fs_, directory_, format::kIndexImageFileName, index);
  }
  std::lock_guard lock(image_mutex_);
  if (written.ok()) {
    // Counted when written; a periodic one (durable) bounds what an open after a crash replays.
    ++images_written_;
  } else {
    image_error_ = written.error().to_string();
  }
  return written;
}

// The INDEX a writable open restored, made durable (restore_image). A failure is kept in
// stats().index_image_error: the image is a cache, and a crash before the next image replays more.
Status Store::Impl::sync_restored_image() {
  const std::string path = platform::join_path(directory_, format::kIndexImageFileName);
  Status synced = [&]() -> Status {
    KEEL_ASSIGN_OR_RETURN(auto file, fs_.open(path, platform::OpenMode::ReadOnly));
    KEEL_TRY(file->sync_data());
    return fs_.sync_directory(directory_);
  }();
  if (!synced.ok()) {
    std::lock_guard lock(image_mutex_);
    image_error_ = synced.error().to_string();
  }
  return synced;
}

void Store::Impl::wait_for_restored_image_sync() {
  writer::Lock lock(mutex_);
  image_wake_.wait(lock, [&] { return !restored_image_unsynced_; });
}

// Every index_image_interval, an image of the durable prefix when enough events came since the last
// one: a crash then reopens from it and replays only what came after. Encoding holds the commit
// mutex (appends wait meanwhile); writing the file does not.
void Store::Impl::image_loop() {
  writer::Lock lock(mutex_);
  if (restored_image_unsynced_) {
    lock.unlock();
    (void)sync_restored_image();  // a failure is kept in stats().index_image_error
    lock.lock();
    restored_image_unsynced_ = false;
    image_wake_.notify_all();  // StoreInternals::wait_for_restored_image_sync
  }
  while (!image_stopping_) {
    image_wake_.wait_for(lock, options_.index_image_interval, [&] { return image_stopping_; });
    if (image_stopping_) break;
    if (marks_.sequence(Watermark::Durable) < image_sequence_ + options_.index_image_min_events) {
      continue;
    }
    auto image = image_at_durable(lock);
    if (!image.ok() || !*image) continue;
    image_in_place_ = true;
    lock.unlock();
    Status written = write_image(**image);
    lock.lock();
    image_in_place_ = false;
    image_wake_.notify_all();
    // A failed write is not an image: the next try comes at the next interval, not after another
    // index_image_min_events, so the bound on what an open must replay still holds.
    if (written.ok()) image_sequence_ = std::max(image_sequence_, (*image)->sequence);
  }
}

}  // namespace keel
