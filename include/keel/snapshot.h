// keel: snapshot persistence. docs/ARCHITECTURE.md §8.
//
// A snapshot is a caller's state (a projection folded from events) saved under a name at the
// sequence of the last event it covers, so that after a restart the caller loads it and replays
// only the events after it. Many names may live in one store, each with its own snapshots.
//
// Save: the bytes are written to a content-addressed file (its name holds the sequence and the
// XXH3-128 of the bytes, so a save never overwrites another's) and fdatasync'd; then the name's
// pointer is replaced atomically (rename, directory fsync). The pointer only moves forward, and
// it is read again from disk at every save, never cached:
//   - a save below the published sequence is the outcome SupersededByNewer (nothing published,
//     not an error: a newer state is already there);
//   - saving again what is published (the same sequence and bytes) is AlreadyPublished;
//   - the same sequence with other bytes, or a `based_on` that is not the published sequence (the
//     caller's state was loaded from a snapshot that has been superseded since, or it started
//     empty while one is published), is StaleSequence {next, floor}: a stale or forged saver whose
//     state would regress or fork what was published.
// Saves of one store are serialized (only the writable open saves), so of two racing savers one
// publishes and the other gets one of those outcomes. A failed save (Io, NoSpace) published
// nothing or everything; saving the same again is safe.
//
// Load is three-way: found (bytes, sequence, hash, checked against the pointer), not found
// (nullopt: no pointer), or an error. A read that fails is an error (Io), never "not found"; a
// damaged pointer is CorruptSidecar and a pointer whose payload is missing or damaged is
// Corruption (both FailClosed); a snapshot whose sequence is above the recovered log (a crash or an
// accepted data loss took events it covers) is CursorAheadOfLog.
//
// Prune keeps the newest `keep` payloads of a name (the published one always among them) and
// removes the rest: older ones, and orphans a crash or a failed save left above the pointer.
//
// Retention (include/keel/retention.h) never removes events after a published snapshot's
// sequence, unless forced: replaying from the snapshot needs them.
//
// On disk: segments/FORMAT.md 8.11.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/ids.h"
#include "keel/result.h"
#include "keel/store.h"

namespace keel {

// The largest snapshot (4 GiB): a bigger save is PayloadTooLarge.
inline constexpr uint64_t kSnapshotBytesMax = 4ull << 30;

struct SnapshotInfo {
  std::string name;
  uint64_t sequence = 0;  // the last event the state covers (0: none)
  uint64_t size = 0;      // bytes
  Hash128 hash;           // XXH3-128 of the bytes
  uint64_t epoch = 0;     // the store epoch that published it
  friend bool operator==(const SnapshotInfo&, const SnapshotInfo&) = default;
};

struct Snapshot {
  SnapshotInfo info;
  std::string bytes;
};

enum class SaveOutcome {
  Published,          // the pointer now names this save
  AlreadyPublished,   // the same sequence and bytes were published: nothing written
  SupersededByNewer,  // a later sequence is published: nothing written
};
const char* save_outcome_name(SaveOutcome outcome);

struct SaveResult {
  SaveOutcome outcome = SaveOutcome::Published;
  SnapshotInfo published;  // what the pointer names after the call
};

struct SaveOptions {
  // The sequence of the snapshot the caller's state was loaded from (0: it started empty). When
  // set, the save is refused (StaleSequence) unless that is still the published sequence (none
  // published counts as 0). Unset: only the pointer's forward motion is checked.
  std::optional<uint64_t> based_on;
  // NEGATIVE CONTROL FOR TESTS ONLY: the pointer is written before the payload, so a crash between
  // them leaves a pointer to nothing. The crash tests of tests/snapshot_test.cc must catch it.
  bool unsafe_pointer_first_for_test = false;
};

// Saves `bytes` as snapshot `name` covering the events up to `sequence` (at most the store's
// durable sequence: a snapshot must not outlive the events it covers). Errors: InvalidArgument
// (name; sequence above durable), PayloadTooLarge, StaleSequence, ReadOnlyStore, CorruptSidecar
// (the pointer is damaged: nothing is saved over it), Io, NoSpace.
Result<SaveResult> save_snapshot(Store& store, std::string_view name, std::string_view bytes,
                                 uint64_t sequence, const SaveOptions& options = {});

struct LoadOptions {
  // NEGATIVE CONTROL FOR TESTS ONLY: a read that fails counts as "not found", the mistake that
  // lets a stale saver start over at sequence 0. tests/snapshot_test.cc must catch it.
  bool unsafe_read_errors_as_not_found_for_test = false;
};

// The published snapshot of `name`, or nullopt when none is. Errors: InvalidArgument (name),
// CorruptSidecar, Corruption, CursorAheadOfLog, Io.
Result<std::optional<Snapshot>> load_snapshot(Store& store, std::string_view name,
                                              const LoadOptions& options = {});

// One payload file of a name.
struct SnapshotPayload {
  uint64_t sequence = 0;
  Hash128 hash;
  uint64_t size = 0;       // the file's size
  bool published = false;  // the pointer names it
};

struct SnapshotListing {
  std::string name;
  std::optional<SnapshotInfo> published;  // nullopt: no pointer (only orphans), or it is damaged
  std::vector<SnapshotPayload> payloads;  // ascending sequence
  std::string problem;                    // non-empty when the pointer is damaged
};
// Every name with a pointer or a payload file, sorted. Errors: Io.
Result<std::vector<SnapshotListing>> list_snapshots(Store& store);

struct PruneResult {
  uint64_t kept = 0;
  uint64_t removed = 0;
  uint64_t bytes_removed = 0;
};
// Keeps the published payload of `name` and the newest `keep` - 1 below it; removes every other
// payload of that name (older ones, orphans above the pointer or beside it) and leftover temporary
// files. With no pointer every payload of the name is an orphan. Errors: InvalidArgument (name,
// keep 0), ReadOnlyStore, CorruptSidecar (a damaged pointer: nothing is removed), Io.
Result<PruneResult> prune_snapshots(Store& store, std::string_view name, size_t keep);

}  // namespace keel
