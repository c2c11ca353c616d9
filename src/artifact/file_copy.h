// Copying files into an artifact or out of one, hashing what is copied (src/artifact/): the bytes
// hashed are the bytes written, so a manifest entry vouches for the copy, not for the source.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "keel/artifact.h"
#include "keel/ids.h"
#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::artifact {

// Counts bytes and files for a TransferProgressFn, calling it at most every 8 MiB and at the end.
class ProgressMeter {
 public:
  ProgressMeter(const TransferProgressFn& report, uint64_t bytes_total, uint64_t files_total);
  void copied(uint64_t bytes);
  void file_done();
  void finish();

 private:
  const TransferProgressFn& report_;
  TransferProgress state_;
  uint64_t reported_at_ = 0;
};

struct Copied {
  uint64_t size = 0;  // bytes copied: fewer than asked when the source ended first
  Hash128 hash;       // XXH3-128 of them
};

// Copies the first `bytes` bytes of `from` into the new file `to` (it must not exist), then
// fdatasyncs it. Io, NoSpace.
Result<Copied> copy_prefix(platform::FileSystem& fs, platform::File& from, const std::string& to,
                           uint64_t bytes, ProgressMeter& meter);

// Writes `bytes` into the new file `to` and fdatasyncs it. Io, NoSpace.
Result<Hash128> write_new_file(platform::FileSystem& fs, const std::string& to,
                               std::span<const std::byte> bytes, ProgressMeter& meter);

// The destination of an export or an import: true when `path` is an empty directory, false when
// it is missing (its parent must be a directory). DestinationExists otherwise; Io.
Result<bool> check_destination(platform::FileSystem& fs, const std::string& path);

// After a failure, best effort: removes `names` from `directory`, then the directory itself when
// `and_directory`. What cannot be removed stays (the failure being reported is the one that
// matters).
void remove_written(platform::FileSystem& fs, const std::string& directory,
                    const std::vector<std::string>& names, bool and_directory);

// The whole-number milliseconds since `started` (steady clock).
uint64_t elapsed_ms_since(std::chrono::steady_clock::time_point started);

}  // namespace keel::artifact
