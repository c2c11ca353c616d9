// The append path: validate, assign clock / chain / ids, encode through the segment writer, index,
// accept into the frontier, then reach the requested durability through the commit pipeline.
#include <algorithm>
#include <chrono>

#include "absl/container/flat_hash_map.h"
#include "store/store_impl.h"

namespace keel {
namespace {

StoreError invalid(std::string_view argument, std::string reason) {
  return StoreError(ErrorCode::InvalidArgument).with("argument", argument).with("reason", reason);
}

StoreError too_large(std::string_view what, uint64_t size, uint64_t limit) {
  return StoreError(ErrorCode::PayloadTooLarge).with("what", what).with("size", size).with("limit", limit);
}

}  // namespace

Status Store::Impl::validate_item(const Coordinate& coordinate, EventKind kind,
                                  std::string_view payload, const AppendOptions& options,
                                  bool in_batch) const {
  KEEL_TRY(validate_coordinate(coordinate));
  if (kind.category() == 0) return invalid("kind", "category 0 is reserved for system records");
  if (options.lane >= options_.lanes_max) {
    return invalid("lane", "lane " + std::to_string(options.lane) + " is not below lanes_max " +
                               std::to_string(options_.lanes_max));
  }
  if (payload.size() > options_.payload_bytes_max) {
    return too_large("payload", payload.size(), options_.payload_bytes_max);
  }
  if (options.metadata && options.metadata->size() > options_.metadata_bytes_max) {
    return too_large("metadata", options.metadata->size(), options_.metadata_bytes_max);
  }
  if (options.timeout.count() < 0) return invalid("timeout", "is negative");
  if (options.idempotency_key) {
    if (options.idempotency_key->empty()) return invalid("idempotency_key", "is empty");
    if (options.idempotency_key->size() > kIdempotencyKeyBytesMax) {
      return invalid("idempotency_key", std::to_string(options.idempotency_key->size()) +
                                            " bytes exceed " +
                                            std::to_string(kIdempotencyKeyBytesMax));
    }
  }
  for (const Gate& gate : options.gates) {
    if (gate.name.empty() || !gate.check) return invalid("gates", "a gate needs a name and a check");
  }
  if (options.cause_item) {
    if (!in_batch) return invalid("cause_item", "only batch items may name an earlier item");
    if (options.causation_id) return invalid("cause_item", "set together with causation_id");
  }
  return ok_status();
}

Status Store::Impl::check_fence(uint64_t fence_id, std::string_view operation) const {
  if (fence_id == 0) {
    if (!fence_) return ok_status();
    if (log_->writer()->poisoned()) return log_->writer()->poisoned_error();
    return StoreError(ErrorCode::VisibilityFenceActive)
        .with("fence", fence_->id)
        .with("operation", operation);
  }
  if (fence_ && fence_->id == fence_id && !fence_->committing) return ok_status();
  return StoreError(ErrorCode::FenceNotActive)
      .with("fence", fence_id)
      .with("reason", fence_ && fence_->id == fence_id ? "it is committing"
                                                       : "it was committed or cancelled");
}

namespace {

StoreError key_conflict(std::string_view key, std::string reason) {
  return StoreError(ErrorCode::IdempotencyConflict)
      .with("key", index::printable_key(key))
      .with("reason", std::move(reason));
}

StoreError item_failed(size_t i, StoreError cause) {
  return StoreError(ErrorCode::BatchItemFailed)
      .with("index", uint64_t{i})
      .caused_by(std::move(cause));
}

}  // namespace

void Store::Impl::expire_keys(uint64_t now_ms) {
  keys_.expire(index_.next_sequence(), now_ms, options_.idempotency_window_events,
               static_cast<uint64_t>(options_.idempotency_window.count()));
}

Result<const index::KeyEntry*> Store::Impl::find_key(
    const index::IdempotencyIndex::HashedKey& key, const Hash128& fingerprint) {
  const index::KeyEntry* kept = keys_.find(key);
  if (kept != nullptr && kept->fingerprint != fingerprint) {
    return key_conflict(key.key, "the event at sequence " +
                                     std::to_string(kept->receipt.sequence) +
                                     " has this key with another coordinate, lane, kind, "
                                     "payload or metadata");
  }
  return kept;
}

EventId Store::Impl::next_event_id(const Hlc& hlc) {
  // Time-ordered: 48 bits of wall milliseconds, 16 bits of the logical counter, 64 random bits.
  return EventId{hlc.wall_ms << 16 | hlc.logical, id_random_()};
}

void Store::Impl::make_body(format::EventBody& body, const Coordinate& coordinate, EventKind kind,
                            std::string_view payload, const AppendOptions& options, uint64_t clock,
                            const std::optional<Hash128>& prev, uint64_t wall_ms) {
  Hlc hlc = hlc_.next_at(wall_ms);
  body.event_id = next_event_id(hlc);
  body.entity = coordinate.entity;
  body.scope = coordinate.scope;
  body.kind = kind.value;
  body.lane = options.lane;
  body.entity_clock = clock;
  body.hlc_wall_ms = hlc.wall_ms;
  body.hlc_logical = hlc.logical;
  body.correlation_id = options.correlation_id.value_or(body.event_id);
  body.causation_id = options.causation_id;
  if (options.metadata) body.metadata = *options.metadata;
  body.payload = payload;
  body.prev_hash = prev;
}

std::chrono::milliseconds Store::Impl::wait_timeout(std::chrono::milliseconds timeout) const {
  return timeout.count() == 0 ? options_.append_timeout : timeout;
}

// The writer refused the record before accepting it: nothing of it was written. A rotation on the
// way may still have synced earlier events (catch the frontier up) or poisoned the writer (then the
// refusal is FailClosed: WriterPoisoned naming the cause).
StoreError Store::Impl::refused(writer::Lock& lock, const HlcPoint& before, StoreError cause) {
  (void)pipeline_->after_append(lock, before);
  log::SegmentWriter& writer = *log_->writer();
  if (!writer.poisoned() || cause.is(ErrorCode::WriterPoisoned)) return cause;
  (void)pipeline_->fail_closed(ok_status());  // the rotation poisoned it: freeze the frontier
  return writer.poisoned_error();
}

Status Store::Impl::index_appended(uint64_t first_sequence,
                                   std::span<const format::EventBody> bodies,
                                   std::span<const Hash128> hashes,
                                   std::span<index::EntityStream* const> streams,
                                   const log::RecordPosition& position) {
  for (size_t i = 0; i < bodies.size(); ++i) {
    index::EventLocation location{static_cast<uint32_t>(position.segment_id),
                                  static_cast<uint32_t>(position.offset)};
    index::EventFacts facts = index::facts_of(bodies[i]);
    facts.chained_hash = hashes[i];
    if (const char* problem = index_.add(first_sequence + i, location, facts, *streams[i])) {
      return StoreError(ErrorCode::InvariantViolation).with("invariant", problem);
    }
  }
  return ok_status();
}

Result<Receipt> Store::Impl::append(const Coordinate& coordinate, EventKind kind,
                                    std::string_view payload, const AppendOptions& options,
                                    uint64_t fence_id) {
  writer::Lock lock(mutex_);
  index_.prefetch_stream({coordinate.entity, options.lane});
  KEEL_TRY(check_writable("append"));
  KEEL_TRY(check_fence(fence_id, "append"));
  KEEL_TRY(validate_item(coordinate, kind, payload, options, /*in_batch=*/false));
  ActiveCall active(*this);
  const std::string_view key =
      options.idempotency_key ? std::string_view(*options.idempotency_key) : std::string_view();
  const index::IdempotencyIndex::HashedKey hashed_key =
      key.empty() ? index::IdempotencyIndex::HashedKey() : keys_.prefetch(key);
  if (pipeline_->prepare_append(
          lock, format::event_record_bound(1, coordinate.entity.size() + coordinate.scope.size() +
                                                  payload.size() + key.size() +
                                                  (options.metadata ? options.metadata->size()
                                                                    : 0)))) {
    KEEL_TRY(check_writable("append"));  // closed, or a fence begun or ended, while it waited?
    KEEL_TRY(check_fence(fence_id, "append"));
  }
  // docs/ARCHITECTURE.md §7, in order: idempotency, CAS, gates, assign.
  const uint64_t wall_ms = hlc_.physical_ms();
  std::optional<Hash128> fingerprint;
  if (options.idempotency_key) {
    fingerprint = format::event_fingerprint(coordinate.entity, coordinate.scope, options.lane,
                                            kind.value, payload, options.metadata);
    expire_keys(wall_ms);
    KEEL_ASSIGN_OR_RETURN(const index::KeyEntry* kept, find_key(hashed_key, *fingerprint));
    if (kept != nullptr) {
      ++idempotency_hits_;
      Receipt original = kept->receipt;
      if (options.durability != Durability::Accepted) {
        KEEL_TRY(pipeline_->reach(lock, options.durability, original.sequence,
                                  wait_timeout(options.timeout)));
      }
      return original;
    }
  }
  index::EntityStream* stream = &index_.stream_for(coordinate.entity, options.lane);
  KEEL_TRY(check_cas(coordinate, options.lane, options, stream->clock()));
  if (has_gates(options)) {
    EntityHead head = head_of(*stream);
    KEEL_TRY(run_gates(GateContext{coordinate, options.lane, kind, payload, options.metadata, head,
                                   0, fence_id != 0},
                       options));
  }
  log::SegmentWriter& writer = *log_->writer();
  uint64_t clock = stream->clock() + 1;
  format::EventBody body;
  make_body(body, coordinate, kind, payload, options, clock, stream->head(), wall_ms);
  if (options.idempotency_key) {
    body.idempotency_key = key;
    body.idempotency_fingerprint = fingerprint;
  }
  if (fence_id != 0 && !options_.unsafe_skip_fence_records_for_test) body.fence_id = fence_id;
  uint64_t sequence = writer.next_sequence();
  HlcPoint before = marks_.point(Watermark::Accepted);
  Hash128 hash;
  if (Status appended = writer.append_event(body, &hash); !appended.ok()) {
    return refused(lock, before, std::move(appended).error());
  }
  if (fence_id != 0) save_head(*stream);
  KEEL_TRY(commit_accepted(lock, before, std::span(&body, 1), std::span(&hash, 1),
                           std::span(&stream, 1), sequence));
  Receipt receipt{body.event_id, log_->epoch(), sequence, clock,
                  Hlc{body.hlc_wall_ms, body.hlc_logical}, hash};
  if (options.idempotency_key && !keys_.add(hashed_key, *fingerprint, receipt)) {
    return pipeline_->fail_closed(StoreError(ErrorCode::InvariantViolation)
                                      .with("invariant", "idempotency key added out of order"))
        .error();
  }
  if (options.durability != Durability::Accepted) {
    KEEL_TRY(pipeline_->reach(lock, options.durability, sequence, wait_timeout(options.timeout)));
  }
  return receipt;  // reach() may have dropped the lock: nothing shared is touched after it
}

// The records are in the writer: index them, accept them into the frontier, and let the pipeline
// catch up. A failure here breaks the store's own bookkeeping: the writer is poisoned (fail closed).
Status Store::Impl::commit_accepted(writer::Lock& lock, const HlcPoint& before,
                                    std::span<const format::EventBody> bodies,
                                    std::span<const Hash128> hashes,
                                    std::span<index::EntityStream* const> streams,
                                    uint64_t first_sequence) {
  log::SegmentWriter& writer = *log_->writer();
  Status committed = index_appended(first_sequence, bodies, hashes, streams,
                                    writer.last_record_position());
  for (size_t i = 0; committed.ok() && i < bodies.size(); ++i) {
    committed = marks_.accept(bodies[i].lane, HlcPoint{bodies[i].hlc_wall_ms, first_sequence + i});
  }
  if (!committed.ok()) return pipeline_->fail_closed(std::move(committed));
  return pipeline_->after_append(lock, before);
}

// A batch with idempotency keys: each keyed item's fingerprint (into batch_scratch_), then either
// every item's key is kept (the original receipts, once they reach the batch's durability), or
// none is (nullopt: the batch is appended). A batch is replayed whole or not at all.
Result<std::optional<std::vector<Receipt>>> Store::Impl::replay_batch(
    writer::Lock& lock, std::span<const BatchItem> items, const BatchOptions& options) {
  std::vector<std::optional<Hash128>>& fingerprints = batch_scratch_.fingerprints;
  fingerprints.assign(items.size(), std::nullopt);
  std::vector<const index::KeyEntry*> kept(items.size(), nullptr);
  size_t hits = 0;
  size_t first_new = items.size();  // an item that is not a hit (unkeyed or a new key)
  absl::flat_hash_map<std::string_view, size_t> batch_keys;
  expire_keys(hlc_.physical_ms());  // once: the entries found below stay valid through the loop
  for (size_t i = 0; i < items.size(); ++i) {
    const AppendOptions& o = items[i].options;
    if (!o.idempotency_key) {
      if (first_new == items.size()) first_new = i;
      continue;
    }
    fingerprints[i] =
        format::event_fingerprint(items[i].coordinate.entity, items[i].coordinate.scope, o.lane,
                                  items[i].kind.value, items[i].payload, o.metadata);
    auto [earlier, fresh] = batch_keys.try_emplace(*o.idempotency_key, i);
    if (!fresh) {
      return item_failed(
          i, key_conflict(*o.idempotency_key, "item " + std::to_string(earlier->second) +
                                                  " of the same batch has this key"));
    }
    Result<const index::KeyEntry*> found =
        find_key(keys_.hashed(*o.idempotency_key), *fingerprints[i]);
    if (!found.ok()) return item_failed(i, std::move(found).error());
    kept[i] = *found;
    if (kept[i] != nullptr) {
      ++hits;
    } else if (first_new == items.size()) {
      first_new = i;
    }
  }
  if (hits == 0) return std::optional<std::vector<Receipt>>();
  size_t hit =
      std::find_if(kept.begin(), kept.end(), [](auto* k) { return k != nullptr; }) - kept.begin();
  if (hits < items.size()) {
    return key_conflict(
        *items[hit].options.idempotency_key,
        "item " + std::to_string(hit) + "'s key is kept (sequence " +
            std::to_string(kept[hit]->receipt.sequence) + ") but item " +
            std::to_string(first_new) +
            (items[first_new].options.idempotency_key ? "'s key is new" : " has no key") +
            ": a batch is replayed whole or not at all");
  }
  idempotency_hits_ += hits;
  std::vector<Receipt> originals;
  originals.reserve(items.size());
  uint64_t last = 0;
  for (const index::KeyEntry* k : kept) {
    originals.push_back(k->receipt);
    last = std::max(last, k->receipt.sequence);
  }
  if (options.durability != Durability::Accepted) {
    KEEL_TRY(pipeline_->reach(lock, options.durability, last, wait_timeout(options.timeout)));
  }
  return std::optional<std::vector<Receipt>>(std::move(originals));
}

Result<std::vector<Receipt>> Store::Impl::append_batch(std::span<const BatchItem> items,
                                                       const BatchOptions& options,
                                                       uint64_t fence_id) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_writable("append_batch"));
  KEEL_TRY(check_fence(fence_id, "append_batch"));
  if (items.empty()) return invalid("batch", "is empty");
  if (items.size() > options_.batch_items_max) {
    return invalid("batch", std::to_string(items.size()) + " items exceed batch_items_max " +
                                std::to_string(options_.batch_items_max));
  }
  if (options.timeout.count() < 0) return invalid("timeout", "is negative");
  bool any_key = false;
  uint64_t bytes = 0;
  uint64_t variable_bytes = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItem& item = items[i];
    auto item_too_large = [&](std::string_view what, uint64_t size, uint64_t limit) {
      return StoreError(ErrorCode::BatchItemTooLarge)
          .with("index", uint64_t{i})
          .with("what", what)
          .with("size", size)
          .with("limit", limit);
    };
    if (item.payload.size() > options_.payload_bytes_max) {
      return item_too_large("payload", item.payload.size(), options_.payload_bytes_max);
    }
    if (item.options.metadata && item.options.metadata->size() > options_.metadata_bytes_max) {
      return item_too_large("metadata", item.options.metadata->size(),
                            options_.metadata_bytes_max);
    }
    if (Status valid = validate_item(item.coordinate, item.kind, item.payload, item.options,
                                     /*in_batch=*/true);
        !valid.ok()) {
      return item_failed(i, valid.error());
    }
    if (item.options.cause_item && *item.options.cause_item >= i) {
      return item_failed(i, invalid("cause_item", "item " +
                                                      std::to_string(*item.options.cause_item) +
                                                      " is not an earlier item"));
    }
    any_key = any_key || item.options.idempotency_key.has_value();
    bytes += item.payload.size() + (item.options.metadata ? item.options.metadata->size() : 0);
    variable_bytes += item.coordinate.entity.size() + item.coordinate.scope.size() +
                      (item.options.idempotency_key ? item.options.idempotency_key->size() : 0);
  }
  // batch_bytes_max counts every variable byte of the record (StoreOptions): with
  // batch_items_max it bounds the record's size, checked against the format's limit at open.
  bytes += variable_bytes;
  if (bytes > options_.batch_bytes_max) return too_large("batch", bytes, options_.batch_bytes_max);
  ActiveCall active(*this);
  if (pipeline_->prepare_append(lock,
                                format::event_record_bound(items.size(), bytes))) {
    KEEL_TRY(check_writable("append_batch"));  // closed, or a fence begun or ended, meanwhile?
    KEEL_TRY(check_fence(fence_id, "append_batch"));
  }

  if (items.size() <= kBatchScratchItemsKept && batch_bodies_.capacity() > kBatchScratchItemsKept) {
    batch_bodies_ = {};  // a large batch's lists are not kept for small ones
    batch_scratch_ = {};
  }
  BatchScratch& scratch = batch_scratch_;

  // Idempotency: a batch is all new or all replayed (docs/ARCHITECTURE.md §7).
  const std::vector<std::optional<Hash128>>& fingerprints = scratch.fingerprints;
  if (any_key) {
    KEEL_ASSIGN_OR_RETURN(std::optional<std::vector<Receipt>> originals,
                          replay_batch(lock, items, options));
    if (originals) return *std::move(originals);
  }

  // Clocks and chains run through the batch: an item follows the previous item of its
  // (entity, lane) in the batch, or the stream's head. CAS and gates see those running heads.
  std::vector<index::EntityStream*>& streams = scratch.streams;
  streams.resize(items.size());
  {
    std::vector<index::StreamKey>& keys = scratch.keys;
    keys.clear();
    for (const BatchItem& item : items) keys.push_back({item.coordinate.entity, item.options.lane});
    index_.find_streams(keys.data(), keys.size(), streams.data());
  }
  // The last item of each stream so far in the batch (streams are nodes: their address is theirs).
  absl::flat_hash_map<const index::EntityStream*, int32_t>& last_item = scratch.last_item;
  last_item.clear();
  std::vector<int32_t>& chain_to = scratch.chain_to;
  chain_to.assign(items.size(), -1);
  batch_bodies_.clear();
  log::SegmentWriter& writer = *log_->writer();
  const uint64_t first = writer.next_sequence();
  uint64_t wall_ms = hlc_.physical_ms();
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItem& item = items[i];
    index::EntityStream*& stream = streams[i];
    if (stream == nullptr) stream = &index_.stream_for(item.coordinate.entity, item.options.lane);
    auto it = last_item.try_emplace(stream, -1).first;
    const int32_t previous = it->second;
    const uint64_t clock =
        previous < 0 ? stream->clock() : batch_bodies_[static_cast<size_t>(previous)].entity_clock;
    if (Status cas = check_cas(item.coordinate, item.options.lane, item.options, clock);
        !cas.ok()) {
      return item_failed(i, cas.error());
    }
    if (has_gates(item.options)) {
      EntityHead gate_head = head_of(*stream);
      if (previous >= 0) {
        const format::EventBody& b = batch_bodies_[static_cast<size_t>(previous)];
        gate_head = EntityHead{clock, first + static_cast<uint64_t>(previous), b.event_id,
                               EventKind{b.kind}};
      }
      if (Status passed = run_gates(GateContext{item.coordinate, item.options.lane, item.kind,
                                                item.payload, item.options.metadata, gate_head, i,
                                                fence_id != 0},
                                    item.options);
          !passed.ok()) {
        return item_failed(i, passed.error());
      }
    }
    chain_to[i] = previous;
    it->second = static_cast<int32_t>(i);
    format::EventBody& body = batch_bodies_.emplace_back();
    make_body(body, item.coordinate, item.kind, item.payload, item.options, clock + 1,
              previous < 0 ? stream->head() : std::nullopt, wall_ms);
    if (item.options.cause_item) {
      body.causation_id = batch_bodies_[*item.options.cause_item].event_id;
    }
    if (item.options.idempotency_key) {
      body.idempotency_key = *item.options.idempotency_key;
      body.idempotency_fingerprint = fingerprints[i];
    }
    if (fence_id != 0 && !options_.unsafe_skip_fence_records_for_test) body.fence_id = fence_id;
  }
  HlcPoint before = marks_.point(Watermark::Accepted);
  std::vector<Hash128>& hashes = scratch.hashes;
  hashes.clear();
  if (Status appended = writer.append_batch(batch_bodies_, chain_to, &hashes); !appended.ok()) {
    return refused(lock, before, std::move(appended).error());
  }
  if (fence_id != 0) {
    for (index::EntityStream* stream : streams) save_head(*stream);
  }
  KEEL_TRY(commit_accepted(lock, before, batch_bodies_, hashes, streams, first));
  // Receipts before reach(): it may release the mutex, and the next batch reuses batch_bodies_.
  std::vector<Receipt> receipts;
  receipts.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const format::EventBody& b = batch_bodies_[i];
    receipts.push_back(Receipt{b.event_id, log_->epoch(), first + i, b.entity_clock,
                               Hlc{b.hlc_wall_ms, b.hlc_logical}, hashes[i]});
    if (items[i].options.idempotency_key &&
        !keys_.add(*items[i].options.idempotency_key, *fingerprints[i], receipts.back())) {
      return pipeline_->fail_closed(StoreError(ErrorCode::InvariantViolation)
                                        .with("invariant", "idempotency key added out of order"))
          .error();
    }
  }
  if (options.durability != Durability::Accepted) {
    KEEL_TRY(pipeline_->reach(lock, options.durability, first + items.size() - 1,
                              wait_timeout(options.timeout)));
  }
  return receipts;  // reach() may have dropped the lock: nothing shared is touched after it
}

// Errors: WriterPoisoned when already poisoned; the fdatasync's own error (Io) when it fails now
// (the writer is then poisoned); WaitTimeout after append_timeout.
Status Store::Impl::sync() {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_writable("sync"));
  ActiveCall active(*this);
  log::SegmentWriter& writer = *log_->writer();
  if (writer.poisoned()) return writer.poisoned_error();
  uint64_t accepted = marks_.sequence(Watermark::Accepted);
  if (accepted <= marks_.sequence(Watermark::Durable)) return ok_status();
  Status reached = pipeline_->reach(lock, Durability::Durable, accepted,
                                    wait_timeout(std::chrono::milliseconds(0)));
  if (reached.ok() || !reached.error().cause()) return reached;
  return *reached.error().cause();  // not in doubt for a sync: report what failed
}

}  // namespace keel
