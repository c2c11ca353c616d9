// keel: retention. docs/ARCHITECTURE.md §8.
//
// Retention removes old sealed segments and moves the first retained sequence
// (StoreStats::first_retained_sequence) forward; it never moves back, and it survives crashes (the
// sidecar RETAIN is written before any segment is removed, segments/FORMAT.md 8.6). The segment
// being written is never removed, so a floor lands on a segment boundary at or below the one asked
// for: events at or above the asked sequence always stay.
//
// It never removes an event a durable consumer (include/keel/consumer.h) has not committed past,
// nor one after a published snapshot (include/keel/snapshot.h): the floor stays at or below the
// lowest committed cursor + 1 and each snapshot name's published sequence + 1, unless the caller
// forces it (those consumers then get CursorExpired and resync; a snapshot's tail is gone). What
// outlives removed events: their idempotency keys answer within the window
// (segments/FORMAT.md 8.7); reads, queries, entity streams and causal queries no longer return them
// (NotFound, or a walk that ends at an external cause); the entity streams keep counting clocks
// from where they were.
//
// Threads: retention takes the store's commit lock while it persists the floor and removes files;
// appends wait for it. A consumer created or reset backwards while retention runs may find itself
// expired.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "keel/result.h"
#include "keel/store.h"

namespace keel {

struct RetentionOptions {
  // Remove past the lowest durable consumer cursor and the published snapshots too.
  bool force = false;
};

// What a retention did.
struct RetentionResult {
  uint64_t first_retained_before = 1;
  uint64_t first_retained = 1;  // after
  uint64_t segments_removed = 0;
  uint64_t bytes_removed = 0;
  // The sequence asked for (retain_from) or that the policy chose; first_retained is at most this.
  uint64_t wanted = 1;
  // When a durable consumer or a snapshot held the floor lower than wanted: "consumer NAME at
  // cursor N", "snapshot NAME at sequence N".
  std::string held_by;
};

// Keeps every event from `sequence` on (and the rest of the segment it is in). `sequence` may be
// at most the durable sequence + 1. Errors: InvalidArgument (0, above durable + 1, a fence open, no
// index image can be cut now: append and retry), ReadOnlyStore, WriterPoisoned, OperationInDoubt
// (the floor moved but removing what is below it is in doubt: a reopen finishes it), Io, NoSpace.
Result<RetentionResult> retain_from(Store& store, uint64_t sequence,
                                    const RetentionOptions& options = {});

// A retention policy: each set bound removes the oldest sealed segments while it is exceeded.
struct RetentionPolicy {
  // Keep at most this many bytes of segment files (0: no bound); the active segment always stays,
  // so the store may stay above it by up to one segment.
  uint64_t max_bytes = 0;
  // Remove sealed segments whose newest event is older than this by the store's clock (0: no
  // bound).
  std::chrono::milliseconds max_age{0};
};

// Applies `policy` once (call it on a timer, or after appends). Errors as retain_from, and
// InvalidArgument for a negative max_age.
Result<RetentionResult> apply_retention(Store& store, const RetentionPolicy& policy,
                                        const RetentionOptions& options = {});

}  // namespace keel
