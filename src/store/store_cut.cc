// Export's cut (StoreInternals::cut_for_export): the store's files as of the durable sequence, taken
// in one step under the commit mutex, so that appends, retention and index images cannot move the
// store between its parts. The copying happens afterwards, outside the mutex (src/artifact/).
#include <chrono>

#include "format/segment_header.h"
#include "format/sidecar.h"
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
  uint64_t last_bytes = 0;
  if (marks_.sequence(Watermark::Durable) == 0) {
    // No event is durable: the store as created, its newest segment holding only its header.
    last_bytes = format::kSegmentHeaderSize;
    if (stable_end_of(last_segment) < last_bytes) return std::optional<StoreCut>();
  } else {
    KEEL_ASSIGN_OR_RETURN(std::optional<Image> image, image_at_durable());
    if (!image) return std::optional<StoreCut>();
    cut.sequence = image->sequence;
    last_segment = image->segment_id;
    last_bytes = image->end_offset;
    // As write_image writes them: the keys in a sidecar envelope, the index image as it is.
    cut.files.emplace_back(format::kIdempotencyFileName,
                           format::encode_sidecar(format::SidecarKind::Idempotency,
                                                  index::kIdempotencyVersion, image->keys));
    cut.files.emplace_back(format::kIndexImageFileName, std::move(image->index));
  }
  for (const char* name :
       {format::kEpochFileName, format::kRetentionFloorFileName, format::kLogEndFileName}) {
    const std::string path = platform::join_path(directory_, name);
    KEEL_ASSIGN_OR_RETURN(bool present, fs_.exists(path));
    if (!present) continue;
    KEEL_ASSIGN_OR_RETURN(auto file, fs_.open(path, platform::OpenMode::ReadOnly));
    KEEL_ASSIGN_OR_RETURN(std::vector<std::byte> bytes, platform::read_file(*file));
    cut.files.emplace_back(name, std::move(bytes));
  }
  for (uint64_t id = first_retained_segment_; id <= last_segment; ++id) {
    StoreCut::Segment segment;
    segment.name = log::segment_file_name(id);
    KEEL_ASSIGN_OR_RETURN(segment.file, fs_.open(platform::join_path(directory_, segment.name),
                                                 platform::OpenMode::ReadOnly));
    if (id == last_segment) {
      segment.bytes = last_bytes;
    } else {
      KEEL_ASSIGN_OR_RETURN(segment.bytes, segment.file->size());
    }
    cut.segments.push_back(std::move(segment));
  }
  cut.writer_blocked_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                            started)
          .count());
  return std::optional<StoreCut>(std::move(cut));
}

}  // namespace keel
