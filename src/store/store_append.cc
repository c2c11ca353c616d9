// The append path: validate, assign clock / chain / ids, encode through the segment writer, index,
// accept into the frontier, then reach the requested durability through the commit pipeline.
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
                                  std::string_view payload, const AppendOptions& options) const {
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
  // Refused, never silently ignored, until the write-semantics release honours them.
  if (options.idempotency_key) {
    return StoreError(ErrorCode::NotSupported)
        .with("feature", "idempotency_key")
        .with("reason", "idempotent appends are not implemented yet; the key would be ignored");
  }
  if (options.expected_clock) {
    return StoreError(ErrorCode::NotSupported)
        .with("feature", "expected_clock")
        .with("reason", "compare-and-set appends are not implemented yet; the check would be skipped");
  }
  return ok_status();
}

EventId Store::Impl::next_event_id(const Hlc& hlc) {
  // Time-ordered: 48 bits of wall milliseconds, 16 bits of the logical counter, 64 random bits.
  return EventId{hlc.wall_ms << 16 | hlc.logical, id_random_()};
}

format::EventBody Store::Impl::make_body(const Coordinate& coordinate, EventKind kind,
                                         std::string_view payload, const AppendOptions& options,
                                         uint64_t clock, const std::optional<Hash128>& prev,
                                         uint64_t wall_ms) {
  format::EventBody body;
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
  return body;
}

writer::Deadline Store::Impl::deadline_after(std::chrono::milliseconds timeout) const {
  return writer::SteadyClock::now() + (timeout.count() == 0 ? options_.append_timeout : timeout);
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
                                    std::string_view payload, const AppendOptions& options) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_writable("append"));
  KEEL_TRY(validate_item(coordinate, kind, payload, options));
  ActiveCall active(*this);
  if (pipeline_->prepare_append(
          lock, format::event_record_bound(1, coordinate.entity.size() + coordinate.scope.size() +
                                                  payload.size() +
                                                  (options.metadata ? options.metadata->size()
                                                                    : 0)))) {
    KEEL_TRY(check_writable("append"));  // closed while it waited?
  }
  log::SegmentWriter& writer = *log_->writer();
  index::EntityStream* stream = &index_.stream_for(coordinate.entity, options.lane);
  uint64_t clock = stream->clock() + 1;
  format::EventBody body =
      make_body(coordinate, kind, payload, options, clock, stream->head(), hlc_.physical_ms());
  uint64_t sequence = writer.next_sequence();
  HlcPoint before = marks_.point(Watermark::Accepted);
  Hash128 hash;
  if (Status appended = writer.append_event(body, &hash); !appended.ok()) {
    return refused(lock, before, std::move(appended).error());
  }
  KEEL_TRY(commit_accepted(lock, before, std::span(&body, 1), std::span(&hash, 1),
                           std::span(&stream, 1), sequence));
  Receipt receipt{body.event_id, log_->epoch(), sequence, clock,
                  Hlc{body.hlc_wall_ms, body.hlc_logical}, hash};
  if (options.durability != Durability::Accepted) {
    KEEL_TRY(pipeline_->reach(lock, options.durability, sequence, deadline_after(options.timeout)));
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

Result<std::vector<Receipt>> Store::Impl::append_batch(std::span<const BatchItem> items,
                                                       const BatchOptions& options) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_writable("append_batch"));
  if (items.empty()) return invalid("batch", "is empty");
  if (items.size() > options_.batch_items_max) {
    return invalid("batch", std::to_string(items.size()) + " items exceed batch_items_max " +
                                std::to_string(options_.batch_items_max));
  }
  if (options.timeout.count() < 0) return invalid("timeout", "is negative");
  uint64_t bytes = 0;
  uint64_t variable_bytes = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItem& item = items[i];
    if (Status valid = validate_item(item.coordinate, item.kind, item.payload, item.options);
        !valid.ok()) {
      return StoreError(ErrorCode::BatchItemFailed).with("index", uint64_t{i}).caused_by(valid.error());
    }
    bytes += item.payload.size() + (item.options.metadata ? item.options.metadata->size() : 0);
    variable_bytes += item.coordinate.entity.size() + item.coordinate.scope.size();
  }
  if (bytes > options_.batch_bytes_max) return too_large("batch", bytes, options_.batch_bytes_max);
  ActiveCall active(*this);
  if (pipeline_->prepare_append(lock,
                                format::event_record_bound(items.size(), bytes + variable_bytes))) {
    KEEL_TRY(check_writable("append_batch"));  // closed while it waited?
  }

  // Clocks and chains run through the batch: an item follows the previous item of its
  // (entity, lane) in the batch, or the stream's head.
  struct Head {
    index::EntityStream* stream;
    uint64_t clock;
    int32_t item;
  };
  absl::flat_hash_map<std::pair<std::string_view, uint32_t>, Head> heads;
  heads.reserve(items.size());
  std::vector<int32_t> chain_to(items.size(), -1);
  std::vector<index::EntityStream*> streams(items.size());
  batch_bodies_.clear();
  uint64_t wall_ms = hlc_.physical_ms();
  for (size_t i = 0; i < items.size(); ++i) {
    const BatchItem& item = items[i];
    auto [it, inserted] = heads.try_emplace(
        std::pair<std::string_view, uint32_t>(item.coordinate.entity, item.options.lane),
        Head{nullptr, 0, -1});
    Head& head = it->second;
    std::optional<Hash128> prev;
    if (inserted) {
      head.stream = &index_.stream_for(item.coordinate.entity, item.options.lane);
      head.clock = head.stream->clock();
      prev = head.stream->head();
    }
    streams[i] = head.stream;
    chain_to[i] = head.item;
    head.item = static_cast<int32_t>(i);
    batch_bodies_.push_back(make_body(item.coordinate, item.kind, item.payload, item.options,
                                      ++head.clock, prev, wall_ms));
  }
  log::SegmentWriter& writer = *log_->writer();
  uint64_t first = writer.next_sequence();
  HlcPoint before = marks_.point(Watermark::Accepted);
  std::vector<Hash128> hashes;
  hashes.reserve(items.size());
  if (Status appended = writer.append_batch(batch_bodies_, chain_to, &hashes); !appended.ok()) {
    return refused(lock, before, std::move(appended).error());
  }
  KEEL_TRY(commit_accepted(lock, before, batch_bodies_, hashes, streams, first));
  // Receipts before reach(): it may release the mutex, and the next batch reuses batch_bodies_.
  std::vector<Receipt> receipts;
  receipts.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const format::EventBody& b = batch_bodies_[i];
    receipts.push_back(Receipt{b.event_id, log_->epoch(), first + i, b.entity_clock,
                               Hlc{b.hlc_wall_ms, b.hlc_logical}, hashes[i]});
  }
  if (options.durability != Durability::Accepted) {
    KEEL_TRY(pipeline_->reach(lock, options.durability, first + items.size() - 1,
                              deadline_after(options.timeout)));
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
                                    deadline_after(std::chrono::milliseconds(0)));
  if (reached.ok() || !reached.error().cause()) return reached;
  return *reached.error().cause();  // not in doubt for a sync: report what failed
}

}  // namespace keel
