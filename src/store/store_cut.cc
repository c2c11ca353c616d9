// Export's cut (StoreInternals::cut_for_export): the store's files as of the durable sequence, opened
// in one step under the commit mutex, so that appends, retention and index images cannot move the
// store between its parts. The copying happens afterwards, outside the mutex (src/artifact/).
#include <chrono>

#include "format/segment_header.h"
#include "log/segment_files.h"
#include "store/store_impl.h"

namespace keel {

Result<std::optional<StoreCut>> Store::Impl::cut_for_export() {
  writer::Lock lock(mutex_);
  const auto started = std::chrono::steady_clock::now();  // appends wait from here
  KEEL_TRY(check_writable("export"));
  log::SegmentWriter& writer = *log_->writer();
  if (writer.poisoned()) return writer.poisoned_error();
  StoreCut cut;
  cut.epoch = log_->epoch();
  uint64_t last_segment = writer.active_segment_id();
  uint64_t last_bytes = format::kSegmentHeaderSize;  // nothing durable: the header only
  if (marks_.sequence(Watermark::Durable) == 0) {
    if (stable_end_of(last_segment) < last_bytes) return std::optional<StoreCut>();
  } else {
    KEEL_ASSIGN_OR_RETURN(std::optional<log::Checkpoint> checkpoint, durable_checkpoint());
    if (!checkpoint) return std::optional<StoreCut>();
    cut.sequence = checkpoint->next_sequence - 1;
    last_segment = checkpoint->resume_segment_id;
    last_bytes = checkpoint->resume_offset;
  }
  // The image files as the last image (background, or retention's) left them. Retention writes
  // under this mutex; the background thread writes outside it, keys first, then INDEX: opening
  // INDEX first means the keys opened after are at least as new, the order an open accepts (a
  // crash between the two leaves the same). Both were cut at or below the durable sequence.
  // EPOCH, RETAIN and END change only under this mutex (or at open and close).
  for (const char* name : {format::kIndexImageFileName, format::kIdempotencyFileName,
                           format::kEpochFileName, format::kRetentionFloorFileName,
                           format::kLogEndFileName}) {
    const std::string path = platform::join_path(directory_, name);
    KEEL_ASSIGN_OR_RETURN(bool present, fs_.exists(path));
    if (!present) continue;
    StoreCut::File file{name, nullptr, 0};
    KEEL_ASSIGN_OR_RETURN(file.file, fs_.open(path, platform::OpenMode::ReadOnly));
    KEEL_ASSIGN_OR_RETURN(file.bytes, file.file->size());
    cut.files.push_back(std::move(file));
  }
  for (uint64_t id = first_retained_segment_; id <= last_segment; ++id) {
    StoreCut::File segment{log::segment_file_name(id), nullptr, last_bytes};
    KEEL_ASSIGN_OR_RETURN(segment.file, fs_.open(platform::join_path(directory_, segment.name),
                                                 platform::OpenMode::ReadOnly));
    if (id != last_segment) {
      KEEL_ASSIGN_OR_RETURN(segment.bytes, segment.file->size());
    }
    cut.files.push_back(std::move(segment));
  }
  cut.writer_blocked_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                            started)
          .count());
  return std::optional<StoreCut>(std::move(cut));
}

}  // namespace keel
