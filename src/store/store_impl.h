// Store::Impl: the store's state behind one commit mutex. Appends do their commit-point work under
// it (validate, assign clock, chain and sequence, encode, index) and then reach their durability
// through the commit pipeline (writer/commit_pipeline.h), which releases the mutex during group I/O
// and waits.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "format/event_body.h"
#include "frontier/hlc.h"
#include "frontier/watermarks.h"
#include "index/event_index.h"
#include "index/idempotency_index.h"
#include "keel/store.h"
#include "log/log.h"
#include "log/record_reader.h"
#include "log/sidecar_file.h"
#include "log/synced_point.h"
#include "platform/clock.h"
#include "platform/file_system.h"
#include "store/store_internals.h"
#include "writer/commit_pipeline.h"

namespace keel {

class Store::Impl {
 public:
  static Result<std::unique_ptr<Impl>> open(const std::string& directory,
                                            const StoreOptions& options);
  ~Impl();

  // fence_id: the fence the append is made through (Fence::append), 0 for none.
  Result<Receipt> append(const Coordinate& coordinate, EventKind kind, std::string_view payload,
                         const AppendOptions& options, uint64_t fence_id = 0);
  Result<std::vector<Receipt>> append_batch(std::span<const BatchItem> items,
                                            const BatchOptions& options, uint64_t fence_id = 0);
  // Write semantics (store_fence.cc, store_gates.cc).
  Status register_gate(Gate gate);
  Status unregister_gate(std::string_view name);
  Result<uint64_t> begin_fence();
  Status commit_fence(uint64_t fence_id);
  Status cancel_fence(uint64_t fence_id);
  Status cancel_fence_locked(writer::Lock& lock, uint64_t fence_id);
  // With the lock held and the stages ready for a system record (prepare_append): writes
  // FenceBegin(fence_id) and opens the fence.
  Status open_fence_locked(writer::Lock& lock, uint64_t fence_id);
  // Commit's work after its checks: the FenceCommit record, made durable (written under
  // AfterWrite), then the fence's events published at once.
  Status commit_fence_locked(writer::Lock& lock, uint64_t fence_id);
  // Retention's mechanism (store_retention.cc; StoreInternals documents them).
  Result<uint64_t> retain_from(uint64_t floor_sequence);
  // StoreInternals::wait_for_restored_image_sync.
  void wait_for_restored_image_sync();
  Result<std::vector<SegmentSpan>> segment_spans();
  // Export's cut (store_cut.cc; StoreInternals documents it).
  Result<std::optional<StoreCut>> cut_for_export();
  uint64_t now_wall_ms();
  // Replication's reads and writes (store_replica.cc; StoreInternals documents them).
  Result<size_t> read_stored(uint64_t from, size_t max_events, std::vector<ReplicationMessage>& out);
  Status append_stored(std::optional<uint64_t> fence_id, std::span<const StoredRecord> records);
  Status append_hidden(uint64_t first_sequence, uint64_t count);
  Status sync();
  Result<Event> get(const EventId& id);
  Result<Event> read(uint64_t sequence);
  Status scan(uint64_t from, uint64_t to, const EventVisitor& visit);
  Status entity_stream(std::string_view entity, uint32_t lane, uint64_t clock_from,
                       uint64_t clock_to, const EventVisitor& visit);
  Result<VerifyReport> verify(const ProgressCallback& progress);
  Result<VerifyReport> verify_entity(std::string_view entity, std::optional<uint32_t> lane);
  Result<QueryPage> query(const Query& query);
  // The same page without copies: `visit` sees each event (views valid during the call), with no
  // lock of the store held; the page's `events` stay empty (StoreInternals::query_views).
  using ViewSink = std::function<void(const EventView&)>;
  Result<QueryPage> query_views(const Query& query, const ViewSink& visit);
  Result<Ancestry> ancestors(const EventId& id, size_t limit);
  Result<Effects> descendants(const EventId& id, size_t limit);
  Result<CausalGraph> correlation_graph(const EventId& correlation_id, size_t limit);
  Result<CausalRelation> happened_before(const EventId& a, const EventId& b);
  Status refresh();
  Status close();
  StoreStats stats() const;
  Frontier frontier() const;
  Status wait_for(Watermark kind, std::optional<uint32_t> lane, uint64_t sequence,
                  std::chrono::milliseconds timeout);
  Status register_consumer(std::string_view name, uint64_t position);
  // StoreInternals::count_consumer.
  Status count_consumer(std::string_view name, uint64_t position, std::string_view reason);
  // Live subscriptions (StoreInternals documents them).
  uint64_t add_subscription(uint64_t position);
  void subscription_delivered(uint64_t id, uint64_t position);
  void remove_subscription(uint64_t id);
  Status consumer_applied(std::string_view name, uint64_t sequence);
  Status unregister_consumer(std::string_view name);
  Result<std::string> reset_applied(uint64_t sequence, std::string_view reason);
  uint64_t epoch() const { return log_ ? log_->epoch() : 0; }
  const std::string& directory() const { return directory_; }
  platform::FileSystem& file_system() { return fs_; }
  bool read_only() const { return options_.read_only; }

 private:
  Impl(const std::string& directory, const StoreOptions& options);

  // Open: recovery feeds every record to the index builder.
  Status load(const log::LogOptions& log_options);
  // `follow`: a read-only store's refresh continues the index from where the last load ended
  // (follow_from_) instead of building it again; it fails when the log no longer continues there.
  Status load_once(log::LogOptions log_options, bool follow = false);
  Status restore_durable_consumers();
  Result<std::vector<SegmentSpan>> segment_spans_locked();
  // The index image (store_image.cc): restores index_ and sets the log's checkpoint when the image
  // is there, whole and matches the log; written at close.
  // `keys_through`: the sequence the IDEMPOTENCY sidecar covers (the image is used only when it
  // covers no later event: the keys it holds are not replayed).
  Status restore_image(log::LogOptions& log_options, uint64_t keys_through);
  // The IDEMPOTENCY sidecar into keys_; returns the sequence it covers (0 without one). Derived
  // while the log holds every event (damage: rebuilt from the log), authoritative once segments
  // were removed below a retention floor (damage: CorruptSidecar, FailClosed).
  Result<uint64_t> load_keys();
  // StoreOptions::accept_data_loss: cuts the references the recovered log does not reach.
  Status drop_references_above(const log::DataLoss& loss);
  // verify(): what recovery dropped at this open, and the losses on record.
  void note_recovery(VerifyReport& report) const;
  // An image of the index at the durable watermark, written to INDEX.tmp, and the idempotency
  // keys cut at the same sequence; write_image() puts them in place (keys first).
  struct Image {
    std::vector<std::byte> keys;
    uint64_t sequence = 0;  // the durable sequence both were cut at
  };
  // With the lock held: where the log can be cut at the durable watermark (none when nothing is
  // durable, the writer is poisoned, or the durable prefix ends inside a fence).
  Result<std::optional<log::Checkpoint>> durable_checkpoint();
  // With the lock held: the image at the durable watermark, its index written to INDEX.tmp (none
  // when nothing is durable, the writer is poisoned, or the durable prefix ends inside a fence).
  // Waits while the image thread is putting its image in place (image_in_place_).
  Result<std::optional<Image>> image_at_durable(writer::Lock& lock);
  // The keys durably, then INDEX.tmp over INDEX as `index` says (close hands it to the kernel: a
  // cache).
  Status write_image(const Image& image, log::Replace index = log::Replace::Durable);
  Status sync_restored_image();
  void image_loop();
  void stop_image_thread(writer::Lock& lock);
  Result<bool> writer_is_live();
  // What a read-only load saw of the store's files before it read them: refresh() reloads only
  // when they changed, so a follower polling an idle store does not re-read its log.
  struct FilesSeen {
    std::vector<std::string> entries;  // the directory's names, sorted
    bool writer_live = false;
    std::optional<uint64_t> epoch;  // EPOCH's: a new writer (one may follow another unseen)
    std::optional<log::SyncedPoint> synced;  // SYNCED's: the writer's newest frames now durable
  };
  Result<FilesSeen> see_files();
  // Whether a load now could show anything the last one did not: another set of files, a writer
  // that came or went, another epoch, another SYNCED point, or bytes after the last segment's
  // recovered end (a frame begun).
  Result<bool> files_changed();
  std::optional<FilesSeen> files_seen_;
  // A read-only load's view of the last segment, kept so that a follow() goes on from it: the
  // frames of the last segment not yet vouched durable (a writer is live) and the largest
  // durable_through its frames claim.
  struct TailFrame {
    uint64_t end;            // the frame's end offset
    uint64_t next_sequence;  // the sequence after its events
    uint64_t wall_ms;        // the HLC wall time of its last event
  };
  struct ReadTail {
    uint64_t segment = 0;
    uint64_t durable_through = 0;
    std::vector<TailFrame> frames;
    uint64_t last_wall_ms = 0;  // of the last recovered event
  };
  ReadTail tail_;
  HlcPoint shown_;  // what the last load showed
  // Where the last read-only load's log ended (nullopt: follow() cannot go on from it, e.g. a
  // fence was open there), and the epoch it was written in.
  std::optional<log::Checkpoint> follow_from_;
  uint64_t follow_epoch_ = 0;
  Status check_open() const;
  Status check_writable(std::string_view operation) const;

  // Append path (store_append.cc).
  Status validate_item(const Coordinate& coordinate, EventKind kind, std::string_view payload,
                       const AppendOptions& options, bool in_batch) const;
  // VisibilityFenceActive / FenceNotActive for an append made through `fence_id` (0: none).
  Status check_fence(uint64_t fence_id, std::string_view operation) const;
  // The idempotency lookup of one keyed item: the kept entry (null when the key is new), or
  // IdempotencyConflict when the key is kept with another fingerprint.
  Result<const index::KeyEntry*> find_key(const index::IdempotencyIndex::HashedKey& key,
                                          const Hash128& fingerprint);
  // Forgets the keys past both windows (StoreOptions::idempotency_window*).
  void expire_keys(uint64_t now_ms);
  // CAS and gates for one item against the head of its (entity, lane) (store_gates.cc).
  Status check_cas(const Coordinate& coordinate, uint32_t lane, const AppendOptions& options,
                   uint64_t clock) const;
  Status run_gates(const GateContext& context, const AppendOptions& options);
  bool has_gates(const AppendOptions& options) const {
    return !gates_.empty() || !options.gates.empty();
  }
  EntityHead head_of(const index::EntityStream& stream) const;
  // Before a fenced append changes a stream's head: remember it, so cancel can restore it.
  void save_head(index::EntityStream& stream);
  // Cancel's work on the indexes: the fence's events become hidden, heads and keys revert.
  void hide_fence_events();
  // Fills a body (default-constructed: the fields an append may not set stay empty) for the next
  // event of a stream whose head is at `clock` - 1 with hash `prev`.
  void make_body(format::EventBody& body, const Coordinate& coordinate, EventKind kind,
                 std::string_view payload, const AppendOptions& options, uint64_t clock,
                 const std::optional<Hash128>& prev, uint64_t wall_ms);
  Result<std::optional<std::vector<Receipt>>> replay_batch(writer::Lock& lock,
                                                           std::span<const BatchItem> items,
                                                           const BatchOptions& options);
  // Calls in flight that may release the mutex (appends, syncs, waits): close() waits for them,
  // polling (an append may end without the mutex, CommitPipeline::reach, so a notify could slip
  // between close's check and its wait; and a notify per append would cost every append).
  struct ActiveCall {
    explicit ActiveCall(Impl& impl) : impl_(impl) { impl_.active_calls_.fetch_add(1); }
    ~ActiveCall() { impl_.active_calls_.fetch_sub(1); }
    Impl& impl_;
  };
  Status commit_accepted(writer::Lock& lock, const HlcPoint& before,
                         std::span<const format::EventBody> bodies, std::span<const Hash128> hashes,
                         std::span<index::EntityStream* const> streams, uint64_t first_sequence);
  // AppendOptions::timeout resolved: zero is the store's append_timeout.
  std::chrono::milliseconds wait_timeout(std::chrono::milliseconds timeout) const;
  // The writer refused a record (nothing was accepted): classify and catch the frontier up.
  StoreError refused(writer::Lock& lock, const HlcPoint& before, StoreError cause);
  Status index_appended(uint64_t first_sequence, std::span<const format::EventBody> bodies,
                        std::span<const Hash128> hashes,
                        std::span<index::EntityStream* const> streams,
                        const log::RecordPosition& position);
  EventId next_event_id(const Hlc& hlc);

  // Replication (store_replica.cc): copied records decoded and checked against the running heads
  // (nothing written), then written one by one.
  struct CopiedRecord {
    uint64_t first_sequence = 0;
    std::vector<format::EventBody> bodies;
    std::vector<index::EntityStream*> streams;
  };
  Status check_copied(std::span<const StoredRecord> records, std::optional<uint64_t> fence_id,
                      std::vector<CopiedRecord>& out);
  Status write_copied(writer::Lock& lock, CopiedRecord& record, bool fenced);
  // Before a copy: waits for the stages (a record of at most `bytes`), then refuses a closed or
  // poisoned store or an open fence.
  Status ready_to_copy(writer::Lock& lock, uint64_t bytes, std::string_view operation);

  // Read path (store_read.cc).
  uint64_t sequence_visible() const;
  uint64_t stable_end_of(uint64_t segment_id) const;
  Status read_locked(uint64_t sequence, const EventVisitor& visit);
  // The same with the decoded body (for checks that need its hashed bytes).
  using BodyVisitor = std::function<void(const format::EventBody&, uint64_t epoch)>;
  Status read_body_locked(uint64_t sequence, const BodyVisitor& visit);
  // Where a visible event's frame is, as the index says under mutex_.
  using FrameAt = log::FrameSpot;
  std::optional<FrameAt> frame_at_locked(uint64_t sequence) const;
  // Reads event `sequence` from its frame: touches no index, so it may run without mutex_ while
  // segments_in_use_ is held shared.
  Status read_body_at(uint64_t sequence, const FrameAt& at, log::FrameBytes& bytes,
                      const BodyVisitor& visit);
  Status read_at(uint64_t sequence, const FrameAt& at, log::FrameBytes& bytes,
                 const EventVisitor& visit);
  // Visits event `sequence` of the record in `frame`; Corruption when the record does not hold it.
  Status visit_event_in(uint64_t sequence, const format::DecodedFrame& frame,
                        const BodyVisitor& visit) const;
  static EventView view_of(const format::EventBody& body, uint64_t sequence, uint64_t epoch);
  // Corruption found reading event `sequence` back (offset: the sequence).
  StoreError read_corruption(uint64_t sequence, std::string reason) const;
  // Queries (store_query.cc): the visible event `id`'s sequence, and an event as the index has it.
  Result<uint64_t> visible_sequence_of(const EventId& id) const;
  EventRef ref_at(uint64_t sequence) const;
  // Visits the events of one record in [from, to] and not hidden; returns how many it holds.
  Result<uint32_t> visit_record(uint64_t first_sequence, uint64_t epoch,
                                const format::DecodedFrame& frame, uint64_t from, uint64_t to,
                                bool& keep_going, const EventVisitor& visit);

  mutable std::mutex mutex_;
  std::string directory_;
  StoreOptions options_;
  platform::FileSystem& fs_;
  platform::Clock& clock_;
  std::unique_ptr<log::Log> log_;
  index::EventIndex index_;
  log::RecordReader reader_;
  frontier::HlcClock hlc_;
  std::mt19937_64 id_random_;
  frontier::Watermarks marks_;
  std::unique_ptr<writer::CommitPipeline> pipeline_;
  std::atomic<uint32_t> active_calls_{0};
  std::vector<std::string> frontier_log_;  // explicit applied resets
  bool closed_ = false;
  log::FrameBytes read_bytes_;  // the reads made under mutex_
  // Held shared by reads made outside mutex_ (query pages); retention and refresh take it
  // exclusively, with mutex_ held, before they drop or remove segment files.
  std::shared_mutex segments_in_use_;
  std::vector<format::EventBody> batch_bodies_;  // reused by append_batch
  // append_batch's other per-item lists, kept between batches for their capacity (up to
  // kBatchScratchItemsKept items; a larger batch's are released by the next smaller one).
  static constexpr size_t kBatchScratchItemsKept = 4096;
  struct BatchScratch {
    std::vector<std::optional<Hash128>> fingerprints;  // of keyed items (replay_batch)
    std::vector<index::StreamKey> keys;
    std::vector<index::EntityStream*> streams;
    absl::flat_hash_map<const index::EntityStream*, int32_t> last_item;
    std::vector<int32_t> chain_to;
    std::vector<Hash128> hashes;
  };
  BatchScratch batch_scratch_;
  std::optional<StoreError> scan_error_;         // carries an error out of a frame visitor
  format::EventBody scan_body_;                  // scan decodes into it (under mutex_)
  std::string index_source_ = "log";
  uint64_t records_replayed_ = 0;
  // Index images (store_image.cc): the periodic writer thread and what it did.
  std::thread image_thread_;
  std::condition_variable image_wake_;
  bool image_stopping_ = false;
  // The image thread's INDEX.tmp is being put in place without the lock: no other image may
  // start writing INDEX.tmp (retention waits on image_wake_).
  bool image_in_place_ = false;
  uint64_t image_sequence_ = 0;     // the last image's last sequence
  // The indexes the INDEX on disk holds, as (next_sequence, event_count), when they are this
  // open's (restored from it, nothing replayed after): close then need not write it again.
  std::optional<std::pair<uint64_t, uint64_t>> image_on_disk_;
  uint64_t image_hold_us_ = 0;      // the last image's encoding time (under mutex_)
  // The INDEX this open restored is not known durable yet: the image thread syncs it (under
  // mutex_).
  bool restored_image_unsynced_ = false;
  mutable std::mutex image_mutex_;  // guards the two below (written outside mutex_)
  uint64_t images_written_ = 0;
  std::string image_error_;

  // Write semantics (docs/ARCHITECTURE.md §7), under mutex_.
  index::IdempotencyIndex keys_;
  uint64_t keys_through_ = 0;  // load: the sequence the IDEMPOTENCY sidecar covered
  uint64_t idempotency_hits_ = 0;
  std::vector<Gate> gates_;
  uint64_t gates_evaluated_ = 0;
  uint64_t gate_denials_ = 0;
  uint64_t gate_time_ns_ = 0;
  struct OpenFence {
    uint64_t id = 0;
    uint64_t first_sequence = 0;  // its events are [first_sequence, the index's next sequence)
    bool committing = false;      // the commit record is written; its flush is under way
    // The heads of the streams its events touched, as they were before the fence.
    absl::flat_hash_map<index::EntityStream*, Hash128> saved_heads;
  };
  std::optional<OpenFence> fence_;
  uint64_t fences_begun_ = 0;  // since open: numbers this open's fence ids
  uint64_t fences_committed_ = 0;
  uint64_t fences_cancelled_ = 0;
  // The retention floor (store_retention.cc): events below it are gone from the log but stay in
  // the indexes (streams keep their clocks); every read path starts at it.
  uint64_t first_retained_sequence_ = 1;
  uint64_t first_retained_segment_ = 1;
  // stats().bytes_on_disk: the sealed retained segments' sizes, filled as segments are sealed.
  uint64_t segment_bytes_locked() const;
  mutable std::map<uint64_t, uint64_t> sealed_bytes_;
  mutable uint64_t sized_through_ = 0;  // every sealed segment id up to it has an entry
  mutable bool sizes_loaded_ = false;
  uint64_t removed_events_ = 0;  // indexed events below the floor (not counted as events)
  // The indexed events below the first retained sequence.
  uint64_t count_removed_events() const;
};

// Gates run under the commit lock: a call back into the same store from a gate (on the gate's
// thread) would deadlock, so every entry point asks first (store.cc).
struct GateScope {
  const Store::Impl* store = nullptr;  // the store whose gate runs on this thread
  const char* reentered = nullptr;     // the first operation the gate called, if any
};
GateScope& gate_scope();
// GateReentrant when called from a gate of `store` (the gate's append then fails too).
Status check_not_in_gate(const Store::Impl* store, const char* operation);

}  // namespace keel
