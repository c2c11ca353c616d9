// The recovery decision table (docs/ARCHITECTURE.md §5, segments/FORMAT.md "Recovery"), as data.
// Recovery (recovery.cc) names the row of every decision it takes; tests/recovery_test.cc tests
// each row by name; FORMAT.md prints the same table.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace keel::log {

enum class RecoveryRule : uint8_t {
  CleanEnd,
  SegmentChainGap,
  BadSegmentHeader,
  FutureFormatVersion,
  SealedSegmentDamage,
  NewestSegmentEmpty,
  TornTail,
  ZeroFilledTail,
  DamageBeforeDurableFrame,
  UnsyncedTornRegion,
  OpenFenceAtTail,
  OpenFenceFollowedByRecords,
  BelowRetentionFloor,
  DurableEndNotReached,
};

enum class RecoveryOutcome : uint8_t {
  Open,              // nothing to repair
  FailClosed,        // a FailClosed error (Corruption or the row's own code); no file is touched
  DeleteSegment,     // delete the file, fsync the directory
  TruncateTail,      // truncate at the last good frame, fsync
  WriteFenceCancel,  // append a FenceCancel(recovery) record; the fence's events stay hidden
};

struct RecoveryRow {
  RecoveryRule rule;
  std::string_view name;
  std::string_view found;
  std::string_view where;
  RecoveryOutcome outcome;
};

inline constexpr RecoveryRow kRecoveryTable[] = {
    {RecoveryRule::CleanEnd, "CleanEnd", "clean end of data", "last segment",
     RecoveryOutcome::Open},
    {RecoveryRule::SegmentChainGap, "SegmentChainGap",
     "gap in segment ids or first sequences, or a header naming another segment; a first segment "
     "other than segment 1 (or, with RETAIN, the floor's segment and first sequence)",
     "any", RecoveryOutcome::FailClosed},
    {RecoveryRule::BadSegmentHeader, "BadSegmentHeader",
     "bad magic, header checksum or header field (or a zero header followed by data)", "any",
     RecoveryOutcome::FailClosed},
    {RecoveryRule::FutureFormatVersion, "FutureFormatVersion",
     "a format version newer than this build", "any", RecoveryOutcome::FailClosed},
    {RecoveryRule::SealedSegmentDamage, "SealedSegmentDamage",
     "any damage, or no seal record", "sealed segment (every segment but the last)",
     RecoveryOutcome::FailClosed},
    {RecoveryRule::NewestSegmentEmpty, "NewestSegmentEmpty",
     "missing, short or zero header and no frames",
     "newest segment (crash right after creating it), unless RETAIN names it",
     RecoveryOutcome::DeleteSegment},
    {RecoveryRule::TornTail, "TornTail",
     "short frame, bad length, bad checksum, or wrong segment/epoch/sequence, and no valid frame "
     "after it",
     "last segment", RecoveryOutcome::TruncateTail},
    {RecoveryRule::ZeroFilledTail, "ZeroFilledTail", "zero-filled region to the end",
     "last segment", RecoveryOutcome::Open},
    {RecoveryRule::DamageBeforeDurableFrame, "DamageBeforeDurableFrame",
     "damage followed by valid frames, one of which has durable_through beyond the damage",
     "last segment", RecoveryOutcome::FailClosed},
    {RecoveryRule::UnsyncedTornRegion, "UnsyncedTornRegion",
     "damage followed by valid frames, none claiming durability past the damage", "last segment",
     RecoveryOutcome::TruncateTail},
    {RecoveryRule::OpenFenceAtTail, "OpenFenceAtTail",
     "fence begun and never ended, at the tail", "last segment",
     RecoveryOutcome::WriteFenceCancel},
    {RecoveryRule::OpenFenceFollowedByRecords, "OpenFenceFollowedByRecords",
     "fence begun and never ended, followed by other records; or any fence record out of "
     "place (an end without its begin, a fenced event outside its fence, a begin inside an open "
     "fence)",
     "any", RecoveryOutcome::FailClosed},
    {RecoveryRule::BelowRetentionFloor, "BelowRetentionFloor",
     "a segment with an id below the retention floor (a crash after RETAIN was written and "
     "before the segment was removed)",
     "below the retention floor; recovery ignores it", RecoveryOutcome::DeleteSegment},
    {RecoveryRule::DurableEndNotReached, "DurableEndNotReached",
     "the log ends before a point persisted state names as durable (END, an index image's "
     "checkpoint, the idempotency keys' covered_through): its last segment removed, emptied, or "
     "damaged or cut below that point",
     "end of the log", RecoveryOutcome::FailClosed},
};

inline constexpr size_t kRecoveryRuleCount = sizeof(kRecoveryTable) / sizeof(kRecoveryTable[0]);

inline constexpr const RecoveryRow& recovery_row(RecoveryRule rule) {
  return kRecoveryTable[static_cast<size_t>(rule)];
}

// The table is indexed by rule: row i describes RecoveryRule(i).
inline constexpr bool recovery_table_is_indexed() {
  for (size_t i = 0; i < kRecoveryRuleCount; ++i) {
    if (static_cast<size_t>(kRecoveryTable[i].rule) != i) return false;
  }
  return true;
}
static_assert(recovery_table_is_indexed());
static_assert(kRecoveryRuleCount == static_cast<size_t>(RecoveryRule::DurableEndNotReached) + 1);

}  // namespace keel::log
