#include "log/record_reader.h"

#include <algorithm>
#include <cstring>

#include "format/byte_order.h"
#include "log/segment_files.h"

namespace keel::log {

Result<platform::File*> RecordReader::file(uint64_t segment_id) {
  auto it = files_.find(segment_id);
  if (it != files_.end()) return it->second.get();
  std::string path = platform::join_path(directory_, segment_file_name(segment_id));
  KEEL_ASSIGN_OR_RETURN(auto handle, fs_.open(path, platform::OpenMode::ReadOnly));
  platform::File* raw = handle.get();
  files_.emplace(segment_id, std::move(handle));
  return raw;
}

StoreError RecordReader::corrupt(uint64_t segment_id, uint64_t offset,
                                 std::string_view reason) const {
  return StoreError(ErrorCode::Corruption)
      .with("path", platform::join_path(directory_, segment_file_name(segment_id)))
      .with("offset", offset)
      .with("reason", reason)
      .with("rule", "read verification");
}

Status RecordReader::read_frame(uint64_t segment_id, uint64_t offset, uint64_t stable_end,
                                std::vector<std::byte>& buffer, format::DecodedFrame& frame) {
  KEEL_ASSIGN_OR_RETURN(platform::File * f, file(segment_id));
  const uint64_t block = offset / BlockCache::kBlockBytes;
  const uint64_t block_start = block * BlockCache::kBlockBytes;
  if (cache_.enabled() && block_start + BlockCache::kBlockBytes <= stable_end) {
    std::span<const std::byte> bytes = cache_.find(segment_id, block);
    if (bytes.empty()) {
      std::vector<std::byte> read(BlockCache::kBlockBytes);
      KEEL_ASSIGN_OR_RETURN(size_t got, f->read_at(block_start, read));
      read.resize(got);  // the end of a sealed segment
      bytes = cache_.insert(segment_id, block, std::move(read));
    }
    // A frame inside the block is decoded in place; one that runs past it is read on its own.
    const size_t at = offset - block_start;
    if (at + format::kFrameHeaderSize <= bytes.size()) {
      uint64_t total = format::align_frame(
          format::kFrameHeaderSize + format::load_u32(bytes.data() + at + format::kFrameBodyLengthOffset));
      if (at + total <= bytes.size()) {
        auto result = format::decode_frame(bytes.subspan(at), segment_id, frame);
        if (result != format::FrameDecode::Ok) {
          return corrupt(segment_id, offset, format::frame_decode_name(result));
        }
        return ok_status();
      }
    }
  }
  // One read covers a typical single-event frame (280 bytes for a 100-byte payload); a longer
  // one needs a second. Reading less than a page keeps the kernel's copy small.
  buffer.resize(kFirstReadBytes);
  KEEL_ASSIGN_OR_RETURN(size_t got, f->read_at(offset, buffer));
  if (got >= format::kFrameHeaderSize) {
    uint64_t total = format::align_frame(format::kFrameHeaderSize +
                                         format::load_u32(buffer.data() + format::kFrameBodyLengthOffset));
    if (total > got && total <= format::kFrameHeaderSize + format::kFrameBodyMax + 8) {
      buffer.resize(total);
      KEEL_ASSIGN_OR_RETURN(size_t more, f->read_at(offset + got, std::span(buffer).subspan(got)));
      got += more;
    }
  }
  auto result = format::decode_frame(std::span(buffer.data(), got), segment_id, frame);
  if (result != format::FrameDecode::Ok) {
    return corrupt(segment_id, offset, format::frame_decode_name(result));
  }
  return ok_status();
}

Status RecordReader::scan_frames(uint64_t segment_id, uint64_t offset, uint64_t end,
                                 const FrameVisitor& visit) {
  KEEL_ASSIGN_OR_RETURN(platform::File * f, file(segment_id));
  KEEL_ASSIGN_OR_RETURN(uint64_t file_size, f->size());
  end = std::min(end, file_size);
  size_t filled = 0;   // bytes of chunk_ holding data from `offset` on
  size_t consumed = 0; // bytes of those already visited
  while (offset + consumed < end) {
    if (consumed > 0) {  // keep the unvisited rest at the front
      std::memmove(chunk_.data(), chunk_.data() + consumed, filled - consumed);
      offset += consumed;
      filled -= consumed;
      consumed = 0;
    }
    size_t want = std::min<uint64_t>(std::max(kChunkBytes, chunk_.size()), end - offset);
    if (chunk_.size() < want) chunk_.resize(want);
    if (filled < want) {
      KEEL_ASSIGN_OR_RETURN(size_t got, f->read_at(offset + filled,
                                                   std::span(chunk_.data() + filled, want - filled)));
      if (got == 0) return corrupt(segment_id, offset + filled, "segment shorter than expected");
      filled += got;
    }
    while (consumed < filled) {
      format::DecodedFrame frame;
      auto bytes = std::span<const std::byte>(chunk_.data() + consumed, filled - consumed);
      auto result = format::decode_frame(bytes, segment_id, frame);
      if (result == format::FrameDecode::Truncated && offset + filled < end) {
        // The frame continues past the chunk: grow the chunk to hold it if needed.
        if (bytes.size() >= format::kFrameHeaderSize) {
          uint64_t total = format::align_frame(
              format::kFrameHeaderSize +
              format::load_u32(bytes.data() + format::kFrameBodyLengthOffset));
          if (chunk_.size() < total) chunk_.resize(total);
        }
        break;
      }
      if (result != format::FrameDecode::Ok) {
        return corrupt(segment_id, offset + consumed, format::frame_decode_name(result));
      }
      if (!visit(offset + consumed, frame)) return ok_status();
      consumed += frame.size;
    }
  }
  return ok_status();
}

}  // namespace keel::log
