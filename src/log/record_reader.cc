#include "log/record_reader.h"

#include <algorithm>
#include <cstring>

#include "format/byte_order.h"
#include "log/segment_files.h"

namespace keel::log {

namespace {

// The size of the frame at the start of `bytes` as its header gives it, 0 when `bytes` do not hold
// a plausible header (decode_frame verifies what the header claims).
uint64_t frame_size(std::span<const std::byte> bytes) {
  format::FrameHeader header;
  uint64_t size = 0;
  (void)format::decode_frame_header(bytes, header, size);
  return size;
}

// The frame starting at `at` of `in` by its header's length, or empty when `in` does not hold all
// of it.
std::span<const std::byte> frame_within(std::span<const std::byte> in, size_t at) {
  if (at >= in.size()) return {};
  const uint64_t total = frame_size(in.subspan(at));
  if (total == 0 || at + total > in.size()) return {};
  return in.subspan(at, total);
}

}  // namespace

Result<std::shared_ptr<platform::File>> RecordReader::file(uint64_t segment_id) {
  {
    std::lock_guard lock(mutex_);
    auto it = files_.find(segment_id);
    if (it != files_.end()) return it->second;
  }
  // Opened without the lock (two threads may both open it; the first kept wins).
  std::string path = platform::join_path(directory_, segment_file_name(segment_id));
  KEEL_ASSIGN_OR_RETURN(std::unique_ptr<platform::File> handle,
                        fs_.open(path, platform::OpenMode::ReadOnly));
  std::lock_guard lock(mutex_);
  auto [it, added] = files_.try_emplace(segment_id, std::move(handle));
  return it->second;
}

StoreError RecordReader::corrupt(uint64_t segment_id, uint64_t offset,
                                 std::string_view reason) const {
  return StoreError(ErrorCode::Corruption)
      .with("path", platform::join_path(directory_, segment_file_name(segment_id)))
      .with("offset", offset)
      .with("reason", reason)
      .with("rule", "read verification");
}

StoreError RecordReader::frame_error(uint64_t segment_id, uint64_t offset,
                                     format::FrameDecode result) const {
  return corrupt(segment_id, offset, format::frame_decode_name(result));
}

Result<BlockCache::Block> RecordReader::block(uint64_t segment_id, uint64_t block,
                                              uint64_t stable_end, platform::File& f) {
  const uint64_t block_start = block * BlockCache::kBlockBytes;
  if (!cache_.enabled() || block_start + BlockCache::kBlockBytes > stable_end) {
    return BlockCache::Block();
  }
  {
    std::lock_guard lock(mutex_);
    if (BlockCache::Block cached = cache_.find(segment_id, block)) return cached;
  }
  // Read without the lock: other threads' reads go on meanwhile.
  auto read = std::make_shared<BlockCache::Bytes>(BlockCache::kBlockBytes);
  KEEL_ASSIGN_OR_RETURN(size_t got, f.read_at(block_start, read->span()));
  read->size = got;  // the end of a sealed segment
  std::lock_guard lock(mutex_);
  return cache_.insert(segment_id, block, std::move(read));
}

Status RecordReader::hold_frame(uint64_t segment_id, uint64_t offset, uint64_t stable_end,
                                FrameBytes& bytes, HeldFrame& held) {
  const uint64_t block_index = offset / BlockCache::kBlockBytes;
  const uint64_t generation = generation_.load(std::memory_order_acquire);
  std::shared_ptr<platform::File> f;
  if (!bytes.block || bytes.block_segment != segment_id || bytes.block_index != block_index ||
      bytes.generation != generation) {
    KEEL_ASSIGN_OR_RETURN(f, file(segment_id));
    KEEL_ASSIGN_OR_RETURN(bytes.block, block(segment_id, block_index, stable_end, *f));
    bytes.block_segment = segment_id;
    bytes.block_index = block_index;
    bytes.generation = generation;
  }
  if (bytes.block) {
    // A frame inside the block is held in place; one that runs past it is read on its own.
    auto in = frame_within(bytes.block->span(), offset - block_index * BlockCache::kBlockBytes);
    if (!in.empty()) {
      held = HeldFrame{bytes.block, in};
      return ok_status();
    }
  }
  if (!f) {
    KEEL_ASSIGN_OR_RETURN(f, file(segment_id));
  }
  // One read covers a typical single-event frame (about 190 bytes for a 100-byte payload); a longer
  // one needs a second. Reading less than a page keeps the kernel's copy small.
  auto copy = std::make_shared<BlockCache::Bytes>(kFirstReadBytes);
  KEEL_ASSIGN_OR_RETURN(size_t got, f->read_at(offset, copy->span()));
  {
    const uint64_t total = frame_size(copy->span().first(got));
    if (total > got) {
      auto whole = std::make_shared<BlockCache::Bytes>(total);
      std::memcpy(whole->data.get(), copy->data.get(), got);
      KEEL_ASSIGN_OR_RETURN(size_t more, f->read_at(offset + got, whole->span().subspan(got)));
      got += more;
      copy = std::move(whole);
    }
  }
  copy->size = got;
  held = HeldFrame{copy, copy->span()};
  return ok_status();
}

Status RecordReader::hold_frames(std::span<const FrameSpot> spots, HeldFrames& held) {
  held.frames.assign(spots.size(), {});
  held.owners.clear();
  std::vector<size_t> isolated;
  size_t i = 0;
  while (i < spots.size()) {
    const FrameSpot& first = spots[i];
    size_t end = i + 1;
    while (end < spots.size() && spots[end].segment_id == first.segment_id &&
           spots[end].offset >= spots[end - 1].offset &&  // equal: events of one batch
           spots[end].offset - spots[end - 1].offset <= kRunGapBytes &&
           spots[end].offset - first.offset + kFirstReadBytes <= kChunkBytes) {
      ++end;
    }
    if (end - i == 1) {  // an isolated frame: read with the others, below
      isolated.push_back(i++);
      continue;
    }
    // A run: one read from the first frame to a typical frame's length past the last.
    KEEL_ASSIGN_OR_RETURN(std::shared_ptr<platform::File> f, file(first.segment_id));
    auto run =
        std::make_shared<BlockCache::Bytes>(spots[end - 1].offset - first.offset + kFirstReadBytes);
    KEEL_ASSIGN_OR_RETURN(size_t got, f->read_at(first.offset, run->span()));
    run->size = got;
    held.owners.push_back(run);
    for (size_t k = i; k < end; ++k) {
      held.frames[k] = frame_within(run->span(), spots[k].offset - first.offset);
      if (held.frames[k].empty()) isolated.push_back(k);  // longer than the run holds, or cut short
    }
    i = end;
  }
  return hold_isolated(spots, isolated, held);
}

// The frames in one batch of reads (FileSystem::read_batch: one system call where the kernel
// allows), kFirstReadBytes at each, not through the cache: a frame read among many is rarely read
// again soon, and caching its block cost more (a 4 KiB copy, an allocation and an eviction) than
// it saved (1M-event store: 271 us per 101-event stream with the cache, 146 us without; a store
// that fits the cache: 127 us and 124 us). A frame longer than that goes the point read's way.
Status RecordReader::hold_isolated(std::span<const FrameSpot> spots, std::span<const size_t> which,
                                   HeldFrames& held) {
  if (which.empty()) return ok_status();
  std::vector<std::shared_ptr<platform::File>> files;  // alive until the batch is read
  // One buffer for the whole batch, kFirstReadBytes per read (an allocation per frame cost 8% of
  // a 100-event entity stream).
  auto buffer = std::make_shared<BlockCache::Bytes>(which.size() * kFirstReadBytes);
  std::vector<platform::ReadRequest> reads;
  for (size_t r = 0; r < which.size(); ++r) {
    KEEL_ASSIGN_OR_RETURN(std::shared_ptr<platform::File> f, file(spots[which[r]].segment_id));
    reads.push_back(
        platform::ReadRequest{f.get(), spots[which[r]].offset,
                              buffer->span().subspan(r * kFirstReadBytes, kFirstReadBytes)});
    files.push_back(std::move(f));
  }
  fs_.read_batch(reads);
  held.owners.push_back(buffer);
  FrameBytes cursor;
  for (size_t r = 0; r < reads.size(); ++r) {
    KEEL_ASSIGN_OR_RETURN(size_t got, std::move(reads[r].got));
    const FrameSpot& spot = spots[which[r]];
    held.frames[which[r]] = frame_within(reads[r].out.first(got), 0);
    if (held.frames[which[r]].empty()) {  // longer than was read
      HeldFrame one;
      KEEL_TRY(hold_frame(spot.segment_id, spot.offset, spot.stable_end, cursor, one));
      held.frames[which[r]] = one.bytes;
      held.owners.push_back(std::move(one.owner));
    }
  }
  return ok_status();
}

Status RecordReader::read_frame(uint64_t segment_id, uint64_t offset, uint64_t stable_end,
                                FrameBytes& bytes, format::DecodedFrame& frame) {
  KEEL_TRY(hold_frame(segment_id, offset, stable_end, bytes, bytes.last));
  auto result = format::decode_frame(bytes.last.bytes, segment_id, frame);
  if (result != format::FrameDecode::Ok) return frame_error(segment_id, offset, result);
  return ok_status();
}

Status RecordReader::scan_begin(uint64_t segment_id, uint64_t offset, uint64_t end,
                                ScanState& scan) {
  KEEL_ASSIGN_OR_RETURN(scan.file, file(segment_id));
  KEEL_ASSIGN_OR_RETURN(uint64_t file_size, scan.file->size());
  scan.segment_id = segment_id;
  scan.offset = offset;
  scan.end = std::min(end, file_size);
  return ok_status();
}

Result<bool> RecordReader::scan_fill(ScanState& scan) {
  if (scan.offset + scan.consumed >= scan.end) return false;
  if (scan.consumed > 0) {  // keep the unvisited rest at the front
    std::memmove(chunk_.data(), chunk_.data() + scan.consumed, scan.filled - scan.consumed);
    scan.offset += scan.consumed;
    scan.filled -= scan.consumed;
    scan.consumed = 0;
  }
  size_t want = std::min<uint64_t>(std::max(kChunkBytes, chunk_.size()), scan.end - scan.offset);
  if (chunk_.size() < want) chunk_.resize(want);
  if (scan.filled < want) {
    KEEL_ASSIGN_OR_RETURN(
        size_t got, scan.file->read_at(scan.offset + scan.filled,
                                       std::span(chunk_.data() + scan.filled, want - scan.filled)));
    if (got == 0) {
      return corrupt(scan.segment_id, scan.offset + scan.filled, "segment shorter than expected");
    }
    scan.filled += got;
  }
  return true;
}

Status RecordReader::scan_frame_cut(const ScanState& scan, format::FrameDecode result) {
  auto bytes =
      std::span<const std::byte>(chunk_.data() + scan.consumed, scan.filled - scan.consumed);
  if (result == format::FrameDecode::Truncated && scan.offset + scan.filled < scan.end) {
    // The frame continues past the chunk: grow the chunk to hold it if needed.
    if (const uint64_t total = frame_size(bytes); chunk_.size() < total) chunk_.resize(total);
    return ok_status();
  }
  return corrupt(scan.segment_id, scan.offset + scan.consumed, format::frame_decode_name(result));
}

}  // namespace keel::log
