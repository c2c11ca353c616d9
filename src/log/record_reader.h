// RecordReader: reads verified frames back from segment files with pread (never mmap: a read fault
// must become an error, not SIGBUS). Random access by (segment, offset) and sequential scans in
// large chunks. Keeps one read handle per segment, and a cache of recently read blocks for point
// reads (log/block_cache.h).
//
// Threads: read_frame may run on many threads at once, beside one scan_frames or reset() (the
// handles and the cache are behind the reader's own mutex; a reader keeps what it reads from alive
// while it decodes). scan_frames is for one thread at a time (the store serializes scans).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "format/frame.h"
#include "keel/result.h"
#include "log/block_cache.h"
#include "platform/file_system.h"

namespace keel::log {

// The bytes of one frame, kept alive by `owner` (a block of the cache, or a copy read for it), so
// they may be decoded after the reader's locks and the store's are released.
struct HeldFrame {
  BlockCache::Block owner;
  std::span<const std::byte> bytes;
};

// Where a frame is, and up to where its segment's bytes no longer change (they may be cached).
struct FrameSpot {
  uint64_t segment_id = 0;
  uint64_t offset = 0;
  uint64_t stable_end = 0;
};

// The bytes of many frames (hold_frames): frame i's in frames[i], kept alive by `owners`.
struct HeldFrames {
  std::vector<std::span<const std::byte>> frames;
  std::vector<BlockCache::Block> owners;
};

// A thread's position among the blocks: a read in the same block as the previous one needs neither
// the cache's lock nor a system call.
struct FrameBytes {
  BlockCache::Block block;
  uint64_t block_segment = 0;
  uint64_t block_index = 0;
  uint64_t generation = 0;  // the reader's reset() count when it was read
  HeldFrame last;           // what read_frame's `frame` views
};

class RecordReader {
 public:
  RecordReader(platform::FileSystem& fs, std::string directory, uint64_t cache_bytes = 0)
      : fs_(fs), directory_(std::move(directory)), cache_(cache_bytes) {}

  // Reads and verifies the frame at `offset` of segment `segment_id`; `frame` views into `bytes`,
  // valid until its next read. Bytes of the segment below `stable_end` no longer change and may
  // be served from and kept in the cache. A frame that fails its checksum is Corruption (checked
  // on every read, cached or not); a read failure Io.
  Status read_frame(uint64_t segment_id, uint64_t offset, uint64_t stable_end, FrameBytes& bytes,
                    format::DecodedFrame& frame);
  // The frame's bytes without decoding them (decode_frame verifies them; frame_error names a
  // failure as read_frame would). A read failure is Io.
  Status hold_frame(uint64_t segment_id, uint64_t offset, uint64_t stable_end, FrameBytes& bytes,
                    HeldFrame& held);
  StoreError frame_error(uint64_t segment_id, uint64_t offset, format::FrameDecode result) const;
  // The bytes of the frames at `spots` (in log order), undecoded. Frames of one segment within
  // kRunGapBytes of each other are read together, one read per run of up to kChunkBytes, without
  // the cache (as a scan reads); the others in one batch of reads (FileSystem::read_batch), also
  // without the cache. A read failure is Io.
  Status hold_frames(std::span<const FrameSpot> spots, HeldFrames& held);

  // Visits the verified frames of segment `segment_id` in [offset, min(end, file size)) in order,
  // reading about kChunkBytes at a time: visit(uint64_t offset, const format::DecodedFrame&)
  // returns whether to go on. A template, so the visitor is inlined into the loop over frames (a
  // std::function call per frame was a twentieth of a warm scan).
  template <class Visit>
  Status scan_frames(uint64_t segment_id, uint64_t offset, uint64_t end, Visit&& visit);

  // Drops every cached handle and block (after recovery changed files under a read-only store).
  // Reads under way keep theirs until they end.
  void reset() {
    std::lock_guard lock(mutex_);
    files_.clear();
    cache_.clear();
    generation_.fetch_add(1, std::memory_order_release);
  }

  static constexpr size_t kChunkBytes = 1 << 20;
  static constexpr size_t kFirstReadBytes = 512;
  static constexpr uint64_t kRunGapBytes = 4096;

 private:
  Result<std::shared_ptr<platform::File>> file(uint64_t segment_id);
  // The cached block, or the block read and cached; null when it cannot be cached.
  Result<BlockCache::Block> block(uint64_t segment_id, uint64_t block, uint64_t stable_end,
                                  platform::File& file);
  StoreError corrupt(uint64_t segment_id, uint64_t offset, std::string_view reason) const;
  // A scan's place in its segment: chunk_[0, filled) holds the bytes from `offset` on, the first
  // `consumed` of them visited.
  struct ScanState {
    uint64_t segment_id = 0;
    uint64_t offset = 0;
    uint64_t end = 0;
    size_t filled = 0;
    size_t consumed = 0;
    std::shared_ptr<platform::File> file;
  };
  Status scan_begin(uint64_t segment_id, uint64_t offset, uint64_t end, ScanState& scan);
  // Moves the unvisited bytes to the front of chunk_ and reads more; false once the scan is done.
  Result<bool> scan_fill(ScanState& scan);
  // After decode_frame failed at the scan's place: ok when the frame merely continues past the
  // chunk (which is grown to hold it), else the failure as an error.
  Status scan_frame_cut(const ScanState& scan, format::FrameDecode result);
  // hold_frames' frames at spots[which[...]], read in one batch.
  Status hold_isolated(std::span<const FrameSpot> spots, std::span<const size_t> which,
                       HeldFrames& held);

  platform::FileSystem& fs_;
  const std::string directory_;
  std::mutex mutex_;  // guards files_ and cache_
  absl::flat_hash_map<uint64_t, std::shared_ptr<platform::File>> files_;
  BlockCache cache_;
  std::atomic<uint64_t> generation_{1};  // bumped by reset(): a FrameBytes' block is stale
  std::vector<std::byte> chunk_;         // scan_frames'
};

template <class Visit>
Status RecordReader::scan_frames(uint64_t segment_id, uint64_t offset, uint64_t end,
                                 Visit&& visit) {
  ScanState scan;
  KEEL_TRY(scan_begin(segment_id, offset, end, scan));
  while (true) {
    KEEL_ASSIGN_OR_RETURN(bool more, scan_fill(scan));
    if (!more) return ok_status();
    while (scan.consumed < scan.filled) {
      format::DecodedFrame frame;
      auto result = format::decode_frame(
          std::span<const std::byte>(chunk_.data() + scan.consumed, scan.filled - scan.consumed),
          segment_id, frame);
      if (result != format::FrameDecode::Ok) {
        KEEL_TRY(scan_frame_cut(scan, result));
        break;
      }
      if (!visit(scan.offset + scan.consumed, std::as_const(frame))) return ok_status();
      scan.consumed += frame.size;
    }
  }
}

}  // namespace keel::log
