// The epoch file (segments/FORMAT.md "Epoch file"): a sidecar holding the u64 epoch of the last
// writable open. Each writable open persists epoch + 1 before writing anything else, so receipts
// (epoch, sequence, hash) from an epoch a crash took back can be told apart from the events that
// later hold the same sequence numbers. Authoritative: a damaged epoch file fails closed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::log {

inline constexpr uint32_t kEpochFileVersion = 1;

// The stored epoch, or nullopt when the file does not exist (a new store).
Result<std::optional<uint64_t>> read_epoch(platform::FileSystem& fs, const std::string& directory);
// Durably replaces the stored epoch.
Status write_epoch(platform::FileSystem& fs, const std::string& directory, uint64_t epoch);

}  // namespace keel::log
