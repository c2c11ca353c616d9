// keel: options for opening a store and for each append. docs/ARCHITECTURE.md §4.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "keel/gate.h"
#include "keel/ids.h"

namespace keel {

namespace platform {
class FileSystem;
class Clock;
}  // namespace platform

// How far an append has to get before it returns.
enum class Durability : uint8_t {
  Accepted,  // a sequence is assigned; bytes may still be in the store's buffer
  Written,   // bytes handed to the OS (survive a killed process, not a power loss)
  Durable,   // covered by a successful fdatasync (survive a power loss). The default.
};

// When events become readable.
enum class VisibilityPolicy : uint8_t {
  AfterDurable,  // no reader ever sees an event a crash could take back. The default.
  AfterWrite,    // readers see written events; a power loss may take back what they saw.
};

struct StoreOptions {
  bool create_if_missing = false;
  // Read-only opens coexist with the writer and see its durable prefix (refresh() to move on).
  bool read_only = false;
  VisibilityPolicy visibility = VisibilityPolicy::AfterDurable;
  uint64_t segment_size = 64ull << 20;     // rotation size and preallocation; >= 4096
  uint32_t lanes_max = 64;                 // lanes are 0 .. lanes_max-1
  // Record limits. One event or batch is one record on disk, whose body the format caps at 64 MiB
  // (segments/FORMAT.md 4.1). open() refuses (InvalidArgument naming the option and the bound)
  // limits that would let a record exceed it, counting every event at its largest (entity,
  // scope and idempotency key included, plus at most 256 bytes of fixed fields):
  //   payload_bytes_max + metadata_bytes_max <= 67,107,195 (64 MiB - 1,669), and
  //   batch_bytes_max <= 64 MiB - 5 - 256 x batch_items_max (so batch_items_max <= 262,143).
  uint32_t payload_bytes_max = 1u << 20;   // per event
  uint32_t metadata_bytes_max = 64u << 10; // per event
  uint32_t batch_items_max = 10'000;
  // Payload, metadata, entity, scope and idempotency key bytes of all items of a batch.
  uint64_t batch_bytes_max = 16ull << 20;
  std::chrono::milliseconds append_timeout{5'000};  // when AppendOptions::timeout is zero
  // The background sync: events appended at Accepted or Written are made durable (and visible
  // under AfterDurable) within sync_interval, or sooner once sync_bytes are waiting.
  std::chrono::milliseconds sync_interval{50};
  uint64_t sync_bytes = 1ull << 20;
  // The HLC adopts wall-clock moves up to this size; larger jumps are counted in frontier() and
  // not adopted (docs/ARCHITECTURE.md §4).
  std::chrono::milliseconds hlc_jump_bound{60'000};
  // Recently read 32 KiB blocks of segment files kept in memory for point reads (get, read, entity
  // streams, query pages); 0 disables the cache. Frames are verified on every read either way.
  uint64_t read_cache_bytes = 32ull << 20;
  // The index image (segments/FORMAT.md 8.4) an open restores instead of reading the whole log: a
  // clean close writes one; while the store runs, one is written every index_image_interval once
  // index_image_min_events more events are durable (zero interval: only at close). A crash then
  // reopens from the last image and reads only the log after it. Encoding an image holds appends
  // for about 30 ms per million events (stats().index_image_hold_us).
  std::chrono::milliseconds index_image_interval{300'000};
  uint64_t index_image_min_events = 100'000;
  // Idempotency keys (docs/ARCHITECTURE.md §7) are kept at least idempotency_window_events
  // sequences AND idempotency_window time after their event (both must pass before a key is
  // forgotten and may name a new event). They survive restarts and crashes (rebuilt from the log)
  // and the removal of their events (the IDEMPOTENCY sidecar, segments/FORMAT.md 8.7). Memory:
  // about 180 bytes per keyed event in the window (plus keys longer than 15 bytes): ~180 MB for 1M
  // keys. The key table, once 2 MiB or more, is advised for transparent huge pages (a hint; fewer
  // TLB misses).
  uint64_t idempotency_window_events = 1'000'000;
  std::chrono::milliseconds idempotency_window{3'600'000};

  // Durable data lost. A store records, beside its log, points it knows were durable: the end of
  // the log at every clean close (the END file), the index image's checkpoint and the sequence the
  // idempotency keys were saved at. An open whose recovered log ends before one of them (its last
  // segment removed, emptied or damaged) fails with DurableDataLost (FailClosed) naming both
  // sequences, and changes no file: those sequences must not be issued again. Set
  // accept_data_loss to go on without the missing events: a writable open then cuts the log at
  // its recovered end, cuts the idempotency keys and drops the index image to it, records the
  // loss in END (stats().data_losses, `keel verify`), and the new epoch issues the lost sequences
  // again (receipts carry the epoch, so a lost event's receipt is told apart). A damaged END is
  // set aside. A read-only open with it shows the log as it is and writes nothing.
  bool accept_data_loss = false;

  // Test seams (not owned; must outlive the store). Null selects the POSIX file system and the
  // system clock.
  platform::FileSystem* file_system = nullptr;
  platform::Clock* clock = nullptr;
  // Seeds event-id randomness; 0 draws a seed from the clock and the address space (tests set it
  // for reproducible ids).
  uint64_t id_seed = 0;
  // NEGATIVE CONTROL FOR TESTS ONLY: the writer skips every fdatasync yet reports the events
  // durable. The power-loss tests must catch a store opened with this set. Never set it otherwise.
  bool unsafe_skip_fdatasync_for_test = false;
  // NEGATIVE CONTROL FOR TESTS ONLY: an open does not rebuild idempotency keys from the log (only
  // the IDEMPOTENCY sidecar is read), so a duplicate after a crash is taken as new. The crash tests
  // of idempotency must catch a store opened with this set.
  bool unsafe_ignore_logged_keys_for_test = false;
  // NEGATIVE CONTROL FOR TESTS ONLY: fences write no FenceBegin / FenceCommit / FenceCancel records
  // (their events carry no fence id), so a crash with a fence open exposes its events. The fence
  // crash tests must catch a store opened with this set.
  bool unsafe_skip_fence_records_for_test = false;
  // NEGATIVE CONTROL FOR TESTS ONLY: a query (and so a subscription or consumer) resuming after a
  // cursor below the retention floor silently starts at the floor instead of failing with
  // CursorExpired. The retention tests of consumers must catch a store opened with this set.
  bool unsafe_clamp_expired_cursors_for_test = false;
};

// The longest idempotency key accepted (bytes).
inline constexpr size_t kIdempotencyKeyBytesMax = 1024;

struct AppendOptions {
  Durability durability = Durability::Durable;
  // How long the append may wait for its durability (and visibility) once its sequence is
  // assigned, counted from its first wait for another caller's write or fdatasync (its own cannot
  // be cut short). Zero: the store's append_timeout; negative: InvalidArgument. When it passes
  // first the append returns WriteInDoubt caused by WaitTimeout: the event may still become
  // durable.
  std::chrono::milliseconds timeout{0};
  uint32_t lane = 0;
  std::optional<EventId> correlation_id;  // default: the event's own id (a new conversation)
  std::optional<EventId> causation_id;    // the event that caused this one; may be external
  std::optional<std::string> metadata;    // opaque bytes (JSON text for the CLI)
  // Idempotency (docs/ARCHITECTURE.md §7): 1 to kIdempotencyKeyBytesMax bytes naming this append
  // store-wide. When an event with this key is kept (see StoreOptions::idempotency_window), the
  // append writes nothing and returns that event's receipt once it has reached this append's
  // durability; CAS and gates are skipped. The same key with another coordinate, lane, kind,
  // payload or metadata is IdempotencyConflict. Keys of a cancelled fence's events are released.
  std::optional<std::string> idempotency_key;
  // CAS: the clock of (entity, lane) the caller expects the head to have; 0 means "no event
  // yet". Otherwise SequenceMismatch {entity, lane, expected, actual}.
  std::optional<uint64_t> expected_clock;
  // Gates for this append only, checked after the store's registered gates (include/keel/gate.h).
  std::vector<Gate> gates;
  // Batch items only: the index of an earlier item of the same batch that caused this one; the
  // item's causation_id becomes that item's event id. InvalidArgument together with causation_id,
  // for an index not below the item's own, or outside a batch.
  std::optional<uint32_t> cause_item;
};

}  // namespace keel
