#include "log/log_end.h"

#include "format/byte_order.h"
#include "format/format_constants.h"
#include "log/sidecar_file.h"

namespace keel::log {

std::vector<std::byte> encode_log_end(const LogEnd& end) {
  std::vector<std::byte> out(kLogEndFixedBytes + end.losses.size() * kAcceptedLossBytes);
  std::byte* p = out.data();
  auto put = [&](uint64_t value) {
    format::store_u64(p, value);
    p += 8;
  };
  for (uint64_t v :
       {end.epoch, end.segment_id, end.offset, end.next_sequence, uint64_t{end.losses.size()}}) {
    put(v);
  }
  for (const AcceptedLoss& l : end.losses) {
    for (uint64_t v : {l.epoch, l.recovered_next_sequence, l.referenced_next_sequence, l.segment_id,
                       l.offset, l.bytes_dropped}) {
      put(v);
    }
  }
  return out;
}

const char* decode_log_end(std::span<const std::byte> payload, LogEnd& end) {
  if (payload.size() < kLogEndFixedBytes) return "shorter than its fixed fields";
  auto at = [&](size_t i) { return format::load_u64(payload.data() + 8 * i); };
  end = LogEnd{at(0), at(1), at(2), at(3), {}};
  const uint64_t count = at(4);
  if (count > (payload.size() - kLogEndFixedBytes) / kAcceptedLossBytes ||
      payload.size() != kLogEndFixedBytes + count * kAcceptedLossBytes) {
    return "its length does not match its count of losses";
  }
  if (end.epoch == 0 || end.segment_id == 0 || end.offset < format::kSegmentHeaderSize ||
      end.next_sequence == 0) {
    return "a zero epoch, segment id or sequence, or an offset inside the segment header";
  }
  for (uint64_t i = 0; i < count; ++i) {
    size_t f = 5 + 6 * i;
    AcceptedLoss l{at(f), at(f + 1), at(f + 2), at(f + 3), at(f + 4), at(f + 5)};
    if (l.epoch == 0 || l.epoch > end.epoch || l.recovered_next_sequence == 0 ||
        l.referenced_next_sequence <= l.recovered_next_sequence) {
      return "a loss with a zero or later epoch, or that lost no sequence";
    }
    end.losses.push_back(l);
  }
  return nullptr;
}

Result<std::optional<LogEnd>> read_log_end(platform::FileSystem& fs, const std::string& directory) {
  KEEL_ASSIGN_OR_RETURN(auto payload, read_sidecar(fs, directory, format::kLogEndFileName,
                                                   format::SidecarKind::LogEnd, kLogEndVersion));
  if (!payload) return std::optional<LogEnd>();
  LogEnd end;
  if (const char* problem = decode_log_end(*payload, end)) {
    return StoreError(ErrorCode::CorruptSidecar)
        .with("path", platform::join_path(directory, format::kLogEndFileName))
        .with("reason", problem);
  }
  return std::optional<LogEnd>(std::move(end));
}

Status write_log_end(platform::FileSystem& fs, const std::string& directory, const LogEnd& end) {
  return write_sidecar(fs, directory, format::kLogEndFileName, format::SidecarKind::LogEnd,
                       kLogEndVersion, encode_log_end(end));
}

std::string describe(const AcceptedLoss& loss) {
  return "epoch " + std::to_string(loss.epoch) + " accepted the loss of sequences " +
         std::to_string(loss.recovered_next_sequence) + " to " +
         std::to_string(loss.referenced_next_sequence - 1) + " (the log ended at sequence " +
         std::to_string(loss.recovered_next_sequence - 1) + ", segment " +
         std::to_string(loss.segment_id) + " offset " + std::to_string(loss.offset) + "; " +
         std::to_string(loss.bytes_dropped) + " bytes cut)";
}

}  // namespace keel::log
