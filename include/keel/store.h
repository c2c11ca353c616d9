// keel: Store, the front door. docs/ARCHITECTURE.md §4 and §6.
//
// Threads: every method may be called from any thread. Appends meet at one commit point (a mutex)
// and share writes and fdatasyncs through leader-based group commit; the mutex is not held during
// that I/O, so reads (which take it briefly) and waits proceed while a group is written or synced.
// Read-only stores never write a byte.
//
// Durability and visibility (docs/ARCHITECTURE.md §4, include/keel/frontier.h): an append returns
// once its Durability level covers it. Under VisibilityPolicy::AfterDurable (the default) an event
// becomes visible to reads when it is durable; under AfterWrite when it is written.
// Read-your-writes holds exactly for appends that return at Durable, or at Written under
// AfterWrite: the event is then visible to every read of this store. Receipts of appends that
// returned at Accepted or Written are void if a crash or a poisoned writer comes before the event
// is durable; a background sync makes such events durable within StoreOptions::sync_interval (or
// sync_bytes) without another append.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keel/coordinate.h"
#include "keel/event.h"
#include "keel/frontier.h"
#include "keel/options.h"
#include "keel/query.h"
#include "keel/result.h"

namespace keel {

struct BatchItem {
  Coordinate coordinate;
  EventKind kind;
  std::string payload;
  // Per item: lane, correlation, causation or cause_item, metadata, idempotency key, expected
  // clock, gates. Durability and timeout are the batch's (BatchOptions).
  AppendOptions options;
};

struct BatchOptions {
  Durability durability = Durability::Durable;
  std::chrono::milliseconds timeout{0};
};

struct StoreStats {
  uint64_t epoch = 0;
  uint64_t events = 0;               // visible events
  uint64_t segments = 0;
  uint64_t sequence_next = 1;        // the sequence the next event gets
  uint64_t sequence_written = 0;
  uint64_t sequence_durable = 0;
  uint64_t sequence_visible = 0;
  uint64_t entities = 0;             // distinct (entity, lane) streams
  uint64_t bytes_on_disk = 0;        // segment data (excluding preallocation)
  uint64_t recovery_bytes_dropped = 0;
  uint64_t recovery_frames_dropped = 0;
  std::vector<std::string> recovery_actions;  // "TornTail at segment-...:4096 (123 bytes)", ...
  // Every data loss accepted in this store's history (StoreOptions::accept_data_loss), oldest
  // first: "epoch 4 accepted the loss of sequences 8 to 10 (...)".
  std::vector<std::string> data_losses;
  std::vector<std::string> frontier_log;      // explicit applied resets, oldest first
  uint64_t commit_groups = 0;                 // groups written since open
  uint64_t commit_syncs = 0;                  // of which fdatasync'd
  uint64_t index_bytes = 0;                   // heap held by the in-memory indexes (estimate)
  // How the open built the indexes: "image" (the index image written at the last close, plus
  // the log after it), "log" (no image: every record recovered), or "log (image not used:
  // REASON)" when an image was there but damaged, older, or not matching the log.
  std::string index_source;
  uint64_t records_replayed = 0;              // log records the open read into the indexes
  uint64_t index_images_written = 0;          // written since open (periodic ones made durable)
  std::string index_image_error;              // the last failed image write, if any (retried at
                                              // the next interval)
  uint64_t index_image_hold_us = 0;           // how long the last image held appends (encoding)
  // Write semantics (docs/ARCHITECTURE.md §7), since open unless said otherwise.
  uint64_t idempotency_keys = 0;       // keys kept now (within the window)
  uint64_t idempotency_hits = 0;       // appends answered with an earlier receipt
  uint64_t gates_evaluated = 0;        // gate checks run
  uint64_t gate_denials = 0;
  uint64_t gate_time_ns = 0;           // total time spent inside gates
  uint64_t fences_committed = 0;
  uint64_t fences_cancelled = 0;
  uint64_t hidden_events = 0;          // events of cancelled fences in the store (all time)
  uint64_t first_retained_sequence = 1;
};

// What verify() checked and the first break it found, if any.
struct VerifyReport {
  uint64_t events_checked = 0;
  uint64_t frames_checked = 0;
  bool ok = true;
  // When !ok: the first sequence that did not verify (for a frame that does not read back, the one
  // after the last good sequence; `problem` names both, the segment and the offset).
  uint64_t first_bad_sequence = 0;
  std::string problem;              // when !ok: what broke, naming entity, lane, clock and hashes
  // What this open's recovery cut from the end of the log (a torn tail, an unsynced region and
  // the valid frames in it), or, for a read-only open, would cut: bytes the files hold that the
  // store does not show. Empty after a clean close. Not counted in `ok` (the frames kept verify).
  std::vector<std::string> recovery_dropped;
  // The data losses accepted in this store's history (StoreStats::data_losses).
  std::vector<std::string> data_losses;
};

// Called with (events done, events total) while verify() runs.
using ProgressCallback = std::function<void(uint64_t done, uint64_t total)>;

// Returns false to stop a scan early.
using EventVisitor = std::function<bool(const EventView&)>;

class Fence;

class Store {
 public:
  // Opens (or with create_if_missing creates) the store in `directory`. A directory that is
  // missing or holds no store (no EPOCH and no segment file) is NotFound {what, key: directory}
  // unless a writable open with create_if_missing makes one there; a read-only open never creates.
  // One writable open per directory, in this process or any other: a second one gets StoreLocked
  // naming the path, the mode and the holder (its pid, where the system tells). Read-only opens
  // never lock and may run beside the writer. Recovery runs first (segments/FORMAT.md); what it
  // repaired is in stats().recovery_actions. Errors: NotFound, StoreLocked, Corruption and
  // the other FailClosed codes (HiddenRangesCorrupt when the log's fence records are out of place,
  // so which events are hidden cannot be told), UnsupportedVersion, Io, NoSpace, InvalidArgument
  // (options).
  static Result<std::unique_ptr<Store>> open(const std::string& directory,
                                             const StoreOptions& options);

  // Closes if close() was not called; errors are then lost (call close() to see them).
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Appends one event to (coordinate, lane): assigns the next global sequence and the next entity
  // clock of (entity, lane), chains it to the previous event of (entity, lane), and returns once
  // options.durability is reached. Read-your-writes: when the append returns at Durable (or at
  // Written under VisibilityPolicy::AfterWrite) the event is visible to every read.
  // At the commit point, in this order (docs/ARCHITECTURE.md §7): validate; idempotency (a kept key
  // returns the original receipt, skipping CAS and gates); CAS (expected_clock); gates (the
  // registered ones, then options.gates); assign. A refusal writes nothing. Errors:
  // InvalidCoordinate, InvalidArgument (kind category 0, lane >= lanes_max, negative timeout, empty
  // or too long idempotency key, cause_item), PayloadTooLarge, IdempotencyConflict,
  // SequenceMismatch, GateDenied, GateFailed, GateReentrant, VisibilityFenceActive (Retryable: a
  // fence is open; append through it or retry after it ends), ReadOnlyStore,
  // WriterPoisoned (FailClosed: refused, never written), NoSpace (Retryable: nothing written),
  // WriteInDoubt (Indeterminate: the sequence was assigned, then the write or fdatasync failed, or
  // the timeout passed first (cause WaitTimeout); after a crash the event is whole or absent, and
  // this process never makes it visible under AfterDurable unless it becomes durable).
  Result<Receipt> append(const Coordinate& coordinate, EventKind kind, std::string_view payload,
                         const AppendOptions& options = {});

  // Appends all items as one record: all or none, visible at once, consecutive sequences. Each
  // item goes through the same checks as append(), against the heads its earlier items leave.
  // Idempotency: when every keyed item's key is kept (and no item is unkeyed), the original
  // receipts are returned; when only some are, IdempotencyConflict.
  // Errors as append(), wrapped in BatchItemFailed {index} when one item is at fault (an item
  // above payload_bytes_max + metadata_bytes_max is BatchItemTooLarge {index, size, limit}); an
  // empty batch or one above batch_items_max / batch_bytes_max is InvalidArgument / PayloadTooLarge.
  Result<std::vector<Receipt>> append_batch(std::span<const BatchItem> items,
                                            const BatchOptions& options = {});

  // ---- write semantics (docs/ARCHITECTURE.md §7) ----
  // Registers a gate every later append must pass: InvalidArgument for an empty name, a name
  // taken, or an empty check.
  Status register_gate(Gate gate);
  // NotFound for an unknown name.
  Status unregister_gate(std::string_view name);
  // Opens the store's one visibility fence (see Fence). VisibilityFenceActive (Retryable) while
  // another fence is open; ReadOnlyStore; WriterPoisoned.
  Result<std::unique_ptr<Fence>> begin_fence();

  // Makes every appended event durable (and visible under AfterDurable). Errors: WriterPoisoned
  // (FailClosed), WriteInDoubt when the fdatasync fails, ReadOnlyStore.
  Status sync();

  // Reads one visible event. NotFound when there is no such visible event.
  Result<Event> get(const EventId& id);
  Result<Event> read(uint64_t sequence);

  // Visits the visible events with sequence in [from, to] in order; the view is valid during the
  // call only. Stops early when visit returns false. from > to is InvalidArgument (as query and
  // entity_stream refuse reversed ranges); a range past the visible end is empty.
  Status scan(uint64_t from, uint64_t to, const EventVisitor& visit);
  // The visible events of (entity, lane) with entity clock in [clock_from, clock_to], in clock order.
  // InvalidCoordinate for a bad entity; InvalidArgument for a lane >= lanes_max or a reversed range.
  Status entity_stream(std::string_view entity, uint32_t lane, uint64_t clock_from,
                       uint64_t clock_to, const EventVisitor& visit);
  // Convenience: the same as vectors of owned events (at most `limit`, which must be at least 1:
  // 0 is InvalidArgument).
  Result<std::vector<Event>> scan_events(uint64_t from, uint64_t to, size_t limit = SIZE_MAX);
  Result<std::vector<Event>> entity_events(std::string_view entity, uint32_t lane,
                                           uint64_t clock_from = 1,
                                           uint64_t clock_to = UINT64_MAX);

  // ---- queries and causal queries (include/keel/query.h) ----
  // One page of the visible events matching `query`. Errors: InvalidCoordinate for an invalid
  // entity; InvalidArgument naming the field (entity and entity_prefix both set, a clock range without an entity, a reversed
  // range, a category above 15 or disagreeing with kind, a lane >= lanes_max, limit 0 or above
  // kQueryLimitMax, an ascending `after` of UINT64_MAX), CursorExpired {cursor, first_retained}
  // when an ascending page resumes after a cursor below the retention floor (events after it were
  // removed: resuming at first_retained == after + 1 is sound), Corruption or Io when a page's
  // frame cannot be read.
  Result<QueryPage> query(const Query& query);
  // The causes of event `id`, from it up to its root (at most `limit` events): NotFound when `id` is
  // not a visible event; Corruption when a cause in the chain names a later event (a causation
  // cycle or forward link: only a damaged store holds one; it is reported, never followed). The
  // walk follows the indexes: after an open from the index image, an edit of the log bytes it
  // covers is not seen here but by verify(), which re-reads every frame.
  Result<Ancestry> ancestors(const EventId& id, size_t limit = SIZE_MAX);
  // What event `id` caused, transitively, breadth-first, at most `limit` (>= 1) events.
  Result<Effects> descendants(const EventId& id, size_t limit = kQueryLimitMax);
  // The causal DAG of a correlation (at most `limit` nodes). An unknown correlation has no nodes.
  Result<CausalGraph> correlation_graph(const EventId& correlation_id,
                                        size_t limit = kQueryLimitMax);
  // Before / After / Concurrent by causal ancestry (NotFound for an unknown id; InvalidArgument
  // when a and b are the same event).
  Result<CausalRelation> happened_before(const EventId& a, const EventId& b);

  // Re-reads every frame, checks every checksum, every chained hash and every (entity, lane) chain
  // (prev = the previous event's chained hash, clocks dense from 1), and that no cause names a
  // later event. Returns a report with the first break; an error only when the check itself could
  // not run (Io).
  Result<VerifyReport> verify(const ProgressCallback& progress = {});
  // The same for the chains of one entity (one lane, or every lane when none is given).
  Result<VerifyReport> verify_entity(std::string_view entity,
                                     std::optional<uint32_t> lane = std::nullopt);

  // Read-only stores: picks up what the writer made durable since open (or the last refresh).
  // When the store's files show nothing new (the same files, writer, epoch and synced point, no
  // byte after the log's recovered end) it reads nothing more (tens of us); otherwise it reads on
  // from where the last load ended (milliseconds for a hundred new events), or loads again as open
  // does when the log does not continue there (a new writer, retention past that point). A no-op
  // on a writable store.
  Status refresh();

  // Syncs, trims the active segment, writes the index image (a cache, handed to the kernel without
  // waiting for the disk: after a power loss right after close, the next open may replay the log
  // instead; the writable open that uses the image has it made durable in the background) and
  // releases the lock. Later calls fail with InvalidArgument.
  Status close();

  StoreStats stats() const;
  uint64_t epoch() const;

  // ---- the frontier (include/keel/frontier.h) ----
  // The six watermarks globally and per lane, the signed visible - durable gap, the HLC's jump
  // counters, and whether the writer is poisoned.
  Frontier frontier() const;
  // Waits until watermark `kind` reaches `sequence` (satisfied at equality), at most `timeout`.
  // Errors: WaitTimeout {watermark, target, waited_ms} after the full timeout (Retryable);
  // WriterPoisoned at once when the writer is poisoned and the target is above a watermark that can
  // no longer move; InvalidArgument for a negative timeout or a closed store.
  Status wait_for(Watermark kind, uint64_t sequence, std::chrono::milliseconds timeout);
  // The same on the lane view of `lane` (InvalidArgument when lane >= lanes_max).
  Status wait_for_lane(Watermark kind, uint32_t lane, uint64_t sequence,
                       std::chrono::milliseconds timeout);

  // ---- consumers: they define `applied` (docs/ARCHITECTURE.md §4) ----
  // applied = max(previous, min over registered consumers' positions); with none registered it
  // follows visible. Registration is in memory (durable cursors arrive with the consumers issue).
  // Registers `name` at `position` (the last sequence it has applied): InvalidArgument when the
  // name is empty or taken, or position is below applied or above visible.
  Status register_consumer(std::string_view name, uint64_t position);
  // The consumer applied every event up to `sequence` (monotone, at most visible).
  Status consumer_applied(std::string_view name, uint64_t sequence);
  Status unregister_consumer(std::string_view name);
  // The one way to lower applied: sets it (and consumers above it) to `sequence`. Returns the log
  // line it recorded (also in stats().frontier_log).
  Result<std::string> reset_applied(uint64_t sequence, std::string_view reason);
  const std::string& directory() const;

  class Impl;

 private:
  friend struct StoreInternals;  // src/store/store_internals.h: the layers above (consumers)
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A visibility fence (docs/ARCHITECTURE.md §7): appends through it are written (and made durable at
// their Durability) but stay invisible; CAS, gates and idempotency see them. While it is open every
// append not made through it fails fast with VisibilityFenceActive (Retryable), so the fence's
// events are one contiguous range. commit() makes them visible all at once; cancel(), destroying
// the fence without commit(), closing the store, or a crash with the fence open hides them forever
// (a hidden range: no read, query or verify sees them) and reverts every touched (entity, lane)
// head to its last visible event; their idempotency keys are released.
//
// A Fence must not outlive its Store (like a LevelDB iterator); any thread may use it, several
// at once.
class Fence {
 public:
  ~Fence();  // cancels an open fence (errors are lost: call cancel() to see them)
  Fence(const Fence&) = delete;
  Fence& operator=(const Fence&) = delete;

  uint64_t id() const { return id_; }
  // As Store::append / append_batch, inside the fence. A fenced append returns once its
  // durability is reached; its event is not visible until commit(). FenceNotActive after
  // commit() or cancel().
  Result<Receipt> append(const Coordinate& coordinate, EventKind kind, std::string_view payload,
                         const AppendOptions& options = {});
  Result<std::vector<Receipt>> append_batch(std::span<const BatchItem> items,
                                            const BatchOptions& options = {});
  // Writes the commit record and makes it durable (written under AfterWrite), then publishes every
  // event of the fence at once. After a crash the fence is all visible (the commit record
  // survived) or all hidden. Errors: FenceNotActive; WriteInDoubt when the write or fdatasync of
  // the commit record fails (the writer is then poisoned; reopen tells which).
  Status commit();
  // Writes the cancel record: the fence's events are hidden for good. FenceNotActive when it is no
  // longer open.
  Status cancel();

 private:
  friend class Store;
  Fence(Store::Impl* store, uint64_t id) : store_(store), id_(id) {}
  Store::Impl* store_;
  uint64_t id_;
  std::atomic<bool> open_{true};  // the store checks the fence again under its lock
};

}  // namespace keel
