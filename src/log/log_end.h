// The log end (segments/FORMAT.md 8.8): the sidecar END names a point of the log that was durable
// when it was written (at every clean close, and at an open that accepted a data loss), and keeps
// the record of every data loss an operator accepted. Recovery must reach that point: a log that
// ends before it lost durable data (a last segment removed, emptied or damaged), which fails the
// open closed (DurableDataLost) instead of passing for a torn tail whose sequences are issued
// again.
//
// Authoritative, as EPOCH and RETAIN are: a damaged END fails closed (CorruptSidecar), a newer one
// is UnsupportedVersion. A store without END (new, or written by a build before it) has no such
// evidence; recovery then relies on the frames' durable_through and the other references.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::log {

inline constexpr uint32_t kLogEndVersion = 1;
inline constexpr size_t kLogEndFixedBytes = 40;  // epoch, segment id, offset, next sequence, count
inline constexpr size_t kAcceptedLossBytes = 48;

// A loss an open with accept_data_loss accepted: the log ended before what was persisted named.
struct AcceptedLoss {
  uint64_t epoch = 0;                     // the epoch of the open that accepted it
  uint64_t recovered_next_sequence = 1;   // the log ended before it: these numbers were reissued
  uint64_t referenced_next_sequence = 1;  // 1 + the last sequence a persisted reference named
  uint64_t segment_id = 0;                // where the recovered log ended
  uint64_t offset = 0;
  uint64_t bytes_dropped = 0;  // non-zero bytes recovery cut at that open
  friend bool operator==(const AcceptedLoss&, const AcceptedLoss&) = default;
};

struct LogEnd {
  uint64_t epoch = 0;       // the epoch of the open that wrote it
  uint64_t segment_id = 0;  // every byte of the log before (segment_id, offset) was durable
  uint64_t offset = 0;
  uint64_t next_sequence = 1;        // and every event before next_sequence
  std::vector<AcceptedLoss> losses;  // oldest first
  friend bool operator==(const LogEnd&, const LogEnd&) = default;
};

std::vector<std::byte> encode_log_end(const LogEnd& end);
// Decodes END's payload (the envelope checked); nullptr on success, else what is wrong.
const char* decode_log_end(std::span<const std::byte> payload, LogEnd& end);

// END in `directory`, or nullopt when there is none. Errors: CorruptSidecar, UnsupportedVersion,
// Io.
Result<std::optional<LogEnd>> read_log_end(platform::FileSystem& fs, const std::string& directory);
// Durably replaces END (atomic, log/sidecar_file.h). Io, NoSpace.
Status write_log_end(platform::FileSystem& fs, const std::string& directory, const LogEnd& end);

// "epoch 3 accepted the loss of sequences 8 to 10 (the log ended at sequence 7, segment 2 offset
// 4096; 1234 bytes cut)": for stats and verify.
std::string describe(const AcceptedLoss& loss);

}  // namespace keel::log
