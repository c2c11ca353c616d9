// RecordReader: reads verified frames back from segment files with pread (never mmap: a read fault
// must become an error, not SIGBUS). Random access by (segment, offset) and sequential scans in
// large chunks. Keeps one read handle per segment, and a cache of recently read blocks for point
// reads (log/block_cache.h).
//
// Threads: not thread-safe; the store serializes access.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "format/frame.h"
#include "log/block_cache.h"
#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::log {

class RecordReader {
 public:
  RecordReader(platform::FileSystem& fs, std::string directory, uint64_t cache_bytes = 0)
      : fs_(fs), directory_(std::move(directory)), cache_(cache_bytes) {}

  // Reads and verifies the frame at `offset` of segment `segment_id`; `frame` views into `buffer`
  // or into the block cache, valid until the next read. Bytes of the segment below `stable_end`
  // no longer change and may be served from and kept in the cache. A frame that fails its
  // checksum is Corruption (checked on every read, cached or not); a read failure Io.
  Status read_frame(uint64_t segment_id, uint64_t offset, uint64_t stable_end,
                    std::vector<std::byte>& buffer, format::DecodedFrame& frame);

  // Visits the verified frames of segment `segment_id` in [offset, min(end, file size)) in order,
  // reading about kChunkBytes at a time. Stops early when visit returns false.
  using FrameVisitor = std::function<bool(uint64_t offset, const format::DecodedFrame&)>;
  Status scan_frames(uint64_t segment_id, uint64_t offset, uint64_t end, const FrameVisitor& visit);

  // Drops every cached handle and block (after recovery changed files under a read-only store).
  void reset() {
    files_.clear();
    cache_.clear();
  }
  const BlockCache& cache() const { return cache_; }

  static constexpr size_t kChunkBytes = 1 << 20;
  static constexpr size_t kFirstReadBytes = 512;

 private:
  Result<platform::File*> file(uint64_t segment_id);
  StoreError corrupt(uint64_t segment_id, uint64_t offset, std::string_view reason) const;

  platform::FileSystem& fs_;
  std::string directory_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<platform::File>> files_;
  std::vector<std::byte> chunk_;
  BlockCache cache_;
};

}  // namespace keel::log
