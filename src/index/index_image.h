// The index image (segments/FORMAT.md §8.4): the EventIndex as one checksummed file, written at
// close, so that an open restores the index in bulk and recovers only the log after it.
//
//   0  8  magic "KEELINDX"      16  4  version          24  8  body_length
//   8  8  checksum: XXH3-64 of  20  4  reserved, zero   32 32  reserved, zero
//         bytes [16, 64 + body_length)                  64  n  body (sections, FORMAT.md)
//
// decode_image checks the envelope, then every count against the bytes left before it allocates,
// then that the sections agree with each other (every stream's sequences, links pointing back,
// numbers in range): damaged bytes give a reason, never a crash or a huge allocation.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "index/event_index.h"
#include "log/recovery.h"
#include "platform/file_system.h"

namespace keel::index {

// Written: version 3. Read: versions 1 to 3 (segments/FORMAT.md 8.4); an image of another version
// is not used (older) or fails the open (newer).
inline constexpr uint32_t kImageVersion = 3;
inline constexpr uint32_t kOldestImageVersion = 1;
inline constexpr uint64_t kImageHeaderSize = 64;

// The image's checkpoint (log/recovery.h) says where the log continues after what it covers.
using ImageCheckpoint = log::Checkpoint;

enum class ImageDecode : uint8_t { Ok, Damaged, OlderVersion, NewerVersion };

// An encoded image, in huge-page memory as the columns it copies (index/column.h): tens of
// megabytes written once, where each first touch of a normal page is a fault.
using ImageBytes = Column<std::byte>;

// The index as it was at checkpoint.next_sequence - 1 (at most index.next_sequence() - 1): events
// above it are left out, links to them moved back. `hash_at(sequence)` gives the chained hash of an
// event at or below the cut that was its stream's head then (the index keeps only current heads).
ImageBytes encode_image(const EventIndex& index, const ImageCheckpoint& checkpoint,
                        const std::function<Hash128(uint64_t)>& hash_at);
// The same bytes, written to `file` (empty) as they are encoded, through a 256 KiB buffer: the
// image is never held in memory whole. `writeback`: each piece's writeback is started as it is
// written. Errors: the first failed write or read-back (the checksum is computed over the file).
Status write_image_file(platform::File& file, const EventIndex& index,
                        const ImageCheckpoint& checkpoint,
                        const std::function<Hash128(uint64_t)>& hash_at, bool writeback);

// Restores `index` and `checkpoint` from `bytes`. Anything but Ok leaves `reason` saying why and
// `index` unspecified (the caller discards it).
ImageDecode decode_image(std::span<const std::byte> bytes, EventIndex& index,
                         ImageCheckpoint& checkpoint, std::string& reason);
// The same, reading `file` front to back without holding it in memory. A failed read is the read's
// error (Io), never Damaged: bytes the disk could not return are not known to be damaged.
Result<ImageDecode> decode_image_file(platform::File& file, EventIndex& index,
                                      ImageCheckpoint& checkpoint, std::string& reason);

}  // namespace keel::index
