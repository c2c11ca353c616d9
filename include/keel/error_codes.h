// keel: the StoreError codes, one X-macro list (docs/ARCHITECTURE.md §9).
//
// Each row: X(Code, HandlingClass, "message template")
//   HandlingClass is Domain, Retryable, Indeterminate, FailClosed, or InheritFromCause (a wrapper
//   whose class is its cause's class, e.g. a failed batch item).
//   The message template names the error's structured fields as {field}; StoreError::message()
//   substitutes them. tests/error_contract_test.cc pins every row (class, fields, cause) and a
//   static_assert ties that table to kErrorCodeCount, so a new code cannot land unclassified.
#pragma once

#define KEEL_ERROR_CODES(X)                                                                       \
  /* Domain: the request is wrong for the current state. */                                       \
  X(InvalidArgument, Domain, "invalid argument {argument}: {reason}")                              \
  X(InvalidCoordinate, Domain, "invalid coordinate {component}: {reason}")                         \
  X(NotFound, Domain, "{what} not found: {key}")                                                   \
  X(StoreLocked, Domain, "store {path} is locked: {mode} open refused, held by {holder}")          \
  X(ReadOnlyStore, Domain, "store {path} is open read-only: {operation} refused")                  \
  X(NotSupported, Domain, "{feature} is not supported: {reason}")                                  \
  X(PayloadTooLarge, Domain, "{what} of {size} bytes exceeds the limit of {limit} bytes")          \
  X(SequenceMismatch, Domain,                                                                      \
    "CAS failed for {entity} lane {lane}: expected clock {expected}, actual {actual}")             \
  X(IdempotencyConflict, Domain, "idempotency key {key} conflicts: {reason}")                      \
  X(GateDenied, Domain, "gate {gate} denied the append: {reason}")                                 \
  X(GateReentrant, Domain, "gate {gate} called back into the store ({operation})")                 \
  X(GateFailed, Domain, "gate {gate} failed: {reason}")                                            \
  X(FenceNotActive, Domain, "fence {fence} is not active: {reason}")                              \
  X(PermissionDenied, Domain,                                                                     \
    "{operation} on {path} was refused: {detail} (errno {errno}); it needs {needed}")             \
  X(BatchItemTooLarge, Domain,                                                                     \
    "batch item {index}: {what} of {size} bytes exceeds the limit of {limit} bytes")               \
  X(CursorExpired, Domain,                                                                         \
    "cursor {cursor} expired: the first retained sequence is {first_retained}, so events after "   \
    "the cursor were removed; resync from a snapshot or from the first retained sequence")         \
  X(StaleSequence, Domain,                                                                         \
    "snapshot {name}: the save at sequence {next} is stale: {reason} (published: sequence "         \
    "{floor})")                                                                                    \
  X(DestinationExists, Domain,                                                                     \
    "destination {path} is refused: {reason}; name a missing or empty directory")                  \
  /* Retryable: it did not happen and may succeed later. */                                        \
  X(Io, Retryable, "I/O error in {operation} on {path}: {detail} (errno {errno})")                 \
  X(NoSpace, Retryable, "no space left for {operation} on {path} ({bytes} bytes)")                 \
  X(WaitTimeout, Retryable,                                                                        \
    "wait for {watermark} to reach sequence {target} timed out after {waited_ms}ms")               \
  X(VisibilityFenceActive, Retryable, "visibility fence {fence} is active: {operation} refused")   \
  X(ServerUnavailable, Retryable, "{server}: {operation} failed: {detail}")                        \
  /* Indeterminate: it may have happened. */                                                       \
  X(WriteInDoubt, Indeterminate,                                                                   \
    "append in doubt: {operation} failed after sequence {sequence} was assigned")                  \
  X(OperationInDoubt, Indeterminate, "{operation} may have taken effect: {reason}")                \
  /* FailClosed: data or environment can no longer be trusted. */                                  \
  X(Corruption, FailClosed, "corruption in {path} at offset {offset}: {reason} (rule {rule})")    \
  X(SegmentChainBroken, FailClosed, "segment chain broken at {path}: {reason} (rule {rule})")   \
  X(HiddenRangesCorrupt, FailClosed,                                                              \
    "hidden ranges unknown: fence records in {path} at offset {offset} out of place: {reason} "    \
    "(rule {rule})")                                                                               \
  X(CorruptSidecar, FailClosed, "corrupt sidecar {path}: {reason}")                                \
  X(DurableDataLost, FailClosed,                                                                  \
    "{reference} names sequence {referenced}, but the recovered log ends at sequence "             \
    "{recovered} ({found}): durable events are missing; open with accept_data_loss to go on "      \
    "without them (rule {rule})")                                                                  \
  X(CursorAheadOfLog, FailClosed,                                                                 \
    "{consumer} committed cursor {cursor}, beyond the recovered log's last sequence "              \
    "{recovered}: a crash or an accepted data loss took events it applied")                        \
  X(ArtifactInvalid, FailClosed, "artifact {path} is refused: {reason}")                           \
  X(ReplicaDiverged, FailClosed, "{what} diverged at sequence {sequence}: {reason}")               \
  X(MessageInvalid, FailClosed, "message {position} of stream {stream} is refused: {reason}")      \
  X(UnsupportedVersion, FailClosed,                                                                \
    "{path} has format version {found}, newer than the supported {supported}")                     \
  X(WriterPoisoned, FailClosed, "writer poisoned by an earlier failure in {operation}; reopen")     \
  X(InvariantViolation, FailClosed, "invariant violation: {invariant}")                            \
  /* Wrappers: the class is the cause's class. */                                                  \
  X(BatchItemFailed, InheritFromCause, "batch failed at item {index}")
