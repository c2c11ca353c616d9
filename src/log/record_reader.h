// RecordReader: reads verified frames back from segment files with pread (never mmap: a read fault
// must become an error, not SIGBUS). Random access by (segment, offset) and sequential scans in
// large chunks. Keeps one read handle per segment.
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
#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::log {

class RecordReader {
 public:
  RecordReader(platform::FileSystem& fs, std::string directory)
      : fs_(fs), directory_(std::move(directory)) {}

  // Reads and verifies the frame at `offset` of segment `segment_id` into `buffer`; `frame` views
  // into it. A frame that fails its checksum is Corruption; a read failure Io.
  Status read_frame(uint64_t segment_id, uint64_t offset, std::vector<std::byte>& buffer,
                    format::DecodedFrame& frame);

  // Visits the verified frames of segment `segment_id` in [offset, min(end, file size)) in order,
  // reading about kChunkBytes at a time. Stops early when visit returns false.
  using FrameVisitor = std::function<bool(uint64_t offset, const format::DecodedFrame&)>;
  Status scan_frames(uint64_t segment_id, uint64_t offset, uint64_t end, const FrameVisitor& visit);

  // Drops every cached handle (after recovery changed files under a read-only store).
  void reset() { files_.clear(); }

  static constexpr size_t kChunkBytes = 1 << 20;
  static constexpr size_t kFirstReadBytes = 512;

 private:
  Result<platform::File*> file(uint64_t segment_id);
  StoreError corrupt(uint64_t segment_id, uint64_t offset, std::string_view reason) const;

  platform::FileSystem& fs_;
  std::string directory_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<platform::File>> files_;
  std::vector<std::byte> chunk_;
};

}  // namespace keel::log
