// Replication's part of the store (StoreInternals::read_stored, append_stored, append_hidden):
// visible events as their records hold them, and the writes of records copied from another store,
// checked so that the copy holds the same events with the same sequences, clocks, chains, hashes
// and fences.
#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "format/checksum.h"
#include "format/msgpack_reader.h"
#include "format/record.h"
#include "store/store_impl.h"

namespace keel {
namespace {

// A system record is one frame of at most this many bytes (FORMAT.md 6.4).
constexpr uint64_t kSystemRecordBytesMax = 64;

StoreError invalid_body(uint64_t sequence, std::string reason) {
  return StoreError(ErrorCode::MessageInvalid)
      .with("position", sequence)
      .with("stream", "record")
      .with("reason", std::move(reason));
}

StoreError diverged(uint64_t sequence, std::string reason) {
  return StoreError(ErrorCode::ReplicaDiverged)
      .with("what", "replica")
      .with("sequence", sequence)
      .with("reason", std::move(reason));
}

// The body exactly as stored, in its form (a replica keeps the form: the hash covers the bytes).
void stored_body(const format::EventBody& body, std::string& out) {
  out.assign(reinterpret_cast<const char*>(body.stored_bytes.data()), body.stored_bytes.size());
}

}  // namespace

Result<size_t> Store::Impl::read_stored(uint64_t from, size_t max_events,
                                        std::vector<ReplicationMessage>& out) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  if (from == 0) from = 1;
  if (from < first_retained_sequence_) {
    return StoreError(ErrorCode::CursorExpired)
        .with("cursor", from - 1)
        .with("first_retained", first_retained_sequence_);
  }
  const uint64_t visible = sequence_visible();
  const size_t start = out.size();
  uint64_t sequence = from;
  // One record (or one run of hidden sequences) at a time; `peek` reads the record after the
  // last one taken only to tell whether a fence ends there.
  auto next_record = [&](bool peek) -> Status {
    std::optional<FrameAt> at = frame_at_locked(sequence);
    if (!at) {  // hidden: a cancelled fence's event
      // A fence's events are all visible or all hidden: a visible fenced event right before a
      // hidden run ends its (committed) fence.
      if (out.size() > start && out.back().fence != 0) out.back().fence_end = true;
      uint64_t end = sequence;
      while (end <= visible && !index_.visible_in_index(end)) ++end;
      if (peek) return ok_status();
      ReplicationMessage& gap = out.emplace_back();
      gap.sequence = gap.record_first = sequence;
      gap.record_events =
          static_cast<uint32_t>(std::min<uint64_t>(end - sequence, format::kBatchEventsMax));
      gap.hidden = true;
      sequence += gap.record_events;
      return ok_status();
    }
    format::DecodedFrame frame;
    KEEL_TRY(reader_.read_frame(at->segment_id, at->offset, at->stable_end, read_bytes_, frame));
    const uint64_t first = frame.header.sequence;
    const size_t taken = out.size();
    uint32_t count = 0;
    std::optional<uint64_t> fence;
    const char* problem =
        format::decode_record_events(frame, [&](uint32_t i, const format::EventBody& body) {
          ++count;
          fence = body.fence_id;
          const uint64_t s = first + i;
          if (peek || s < sequence || s > visible) return;
          ReplicationMessage& e = out.emplace_back();
          e.sequence = s;
          e.record_first = first;
          e.event_id = body.event_id;
          e.chained_hash = body.chained_hash;
          e.wall_ms = body.hlc_wall_ms;
          e.fence = body.fence_id.value_or(0);
          stored_body(body, e.body);
        });
    if (problem != nullptr) {
      return read_corruption(sequence, std::string(problem) + " (offset is the sequence)");
    }
    if (first + count <= sequence) {
      return read_corruption(sequence, "the indexed record does not hold this sequence");
    }
    // The event before this record ends its fence when this record is not of the same fence.
    if (taken > start && out[taken - 1].fence != 0 && fence.value_or(0) != out[taken - 1].fence) {
      out[taken - 1].fence_end = true;
    }
    if (peek) return ok_status();
    for (size_t i = taken; i < out.size(); ++i) out[i].record_events = count;
    sequence = first + count;
    return ok_status();
  };
  while (sequence <= visible && out.size() - start < max_events) KEEL_TRY(next_record(false));
  if (out.size() > start && out.back().fence != 0 && !out.back().fence_end) {
    // A committed fence is visible all at once: at the visible end it ends; else look ahead.
    if (sequence > visible) {
      out.back().fence_end = true;
    } else {
      KEEL_TRY(next_record(true));
      if (!index_.visible_in_index(sequence)) out.back().fence_end = true;
    }
  }
  return out.size() - start;
}

Status Store::Impl::check_copied(std::span<const StoredRecord> records,
                                 std::optional<uint64_t> fence_id, std::vector<CopiedRecord>& out) {
  struct Head {
    uint64_t clock;
    std::optional<Hash128> hash;
  };
  absl::flat_hash_map<std::pair<std::string_view, uint32_t>, Head> heads;
  std::vector<std::byte> canonical;
  Hlc last = hlc_.last();
  uint64_t sequence = log_->writer()->next_sequence();
  for (const StoredRecord& record : records) {
    if (record.first_sequence != sequence) {
      return diverged(record.first_sequence,
                      "the replica's next sequence is " + std::to_string(sequence));
    }
    if (record.bodies.empty() || record.bodies.size() > options_.batch_items_max) {
      return invalid_body(sequence, "a record of " + std::to_string(record.bodies.size()) +
                                        " events (this store takes 1 to " +
                                        std::to_string(options_.batch_items_max) + ")");
    }
    CopiedRecord& copied = out.emplace_back();
    copied.first_sequence = sequence;
    for (std::string_view text : record.bodies) {
      std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(text.data()),
                                       text.size());
      format::MsgpackReader reader(bytes);
      format::EventBody& body = copied.bodies.emplace_back();
      if (const char* problem = format::decode_event_body(reader, body)) {
        return invalid_body(sequence, problem);
      }
      if (!reader.at_end()) return invalid_body(sequence, "bytes after the event body");
      if (format::hash128(body.hashed_bytes) != body.chained_hash) {
        return invalid_body(sequence, "the chained hash does not match the body's bytes");
      }
      if (Status valid = validate_coordinate(body.entity, body.scope); !valid.ok()) {
        return invalid_body(sequence, "its coordinate: " + valid.error().message());
      }
      if (EventKind{body.kind}.category() == 0) {
        return invalid_body(sequence, "kind category 0 is reserved for system records");
      }
      if (body.fence_id != fence_id) {
        return invalid_body(sequence, body.fence_id
                                          ? "an event of fence " + std::to_string(*body.fence_id) +
                                                " outside its fence's copy"
                                          : "an unfenced event inside a fence's copy");
      }
      if (body.lane >= options_.lanes_max) {
        return StoreError(ErrorCode::InvalidArgument)
            .with("argument", "lanes_max")
            .with("reason", "event " + std::to_string(sequence) + " is on lane " +
                                std::to_string(body.lane) + ", not below this store's lanes_max " +
                                std::to_string(options_.lanes_max));
      }
      const Hlc hlc{body.hlc_wall_ms, body.hlc_logical};
      if (!(hlc > last)) {
        return invalid_body(sequence, "its HLC does not follow the previous event's");
      }
      last = hlc;
      if (index_.find(body.event_id)) {
        return diverged(sequence,
                        "event id " + body.event_id.to_hex() + " is already in the replica");
      }
      canonical.clear();
      format::encode_event_body(canonical, body);
      if (!std::equal(canonical.begin(), canonical.end(), bytes.begin(), bytes.end())) {
        return invalid_body(sequence, "the body is not in keel's canonical encoding");
      }
      auto [it, inserted] = heads.try_emplace(
          std::pair<std::string_view, uint32_t>(body.entity, body.lane), Head{0, std::nullopt});
      index::EntityStream* stream = &index_.stream_for(body.entity, body.lane);
      if (inserted) it->second = Head{stream->clock(), stream->head()};
      Head& head = it->second;
      if (body.entity_clock != head.clock + 1 || body.prev_hash != head.hash) {
        return diverged(sequence,
                        "the event does not continue " + std::string(body.entity) + " lane " +
                            std::to_string(body.lane) + " (its clock " +
                            std::to_string(body.entity_clock) + ", the replica's head clock " +
                            std::to_string(head.clock) +
                            (body.entity_clock == head.clock + 1 ? ": another prev hash)" : ")"));
      }
      head = Head{body.entity_clock, body.chained_hash};
      copied.streams.push_back(stream);
      ++sequence;
    }
  }
  return ok_status();
}

Status Store::Impl::write_copied(writer::Lock& lock, CopiedRecord& record, bool fenced) {
  log::SegmentWriter& writer = *log_->writer();
  HlcPoint before = marks_.point(Watermark::Accepted);
  std::vector<Hash128> hashes;
  Status appended = ok_status();
  if (record.bodies.size() == 1) {
    hashes.resize(1);
    appended = writer.append_event(record.bodies[0], &hashes[0]);
  } else {
    appended = writer.append_batch(record.bodies, {}, &hashes);
  }
  if (!appended.ok()) return refused(lock, before, std::move(appended).error());
  for (const format::EventBody& b : record.bodies) hlc_.observe(Hlc{b.hlc_wall_ms, b.hlc_logical});
  if (fenced) {
    for (index::EntityStream* stream : record.streams) save_head(*stream);
  }
  KEEL_TRY(
      commit_accepted(lock, before, record.bodies, hashes, record.streams, record.first_sequence));
  for (size_t i = 0; i < hashes.size(); ++i) {
    const format::EventBody& b = record.bodies[i];
    if (!b.idempotency_key || !b.idempotency_fingerprint) continue;
    // The source kept the key unique within its window; a key the replica still holds from
    // earlier (its window counts differently) is replaced by the newer event's.
    (void)keys_.add(*b.idempotency_key, *b.idempotency_fingerprint,
                    Receipt{b.event_id, log_->epoch(), record.first_sequence + i, b.entity_clock,
                            Hlc{b.hlc_wall_ms, b.hlc_logical}, hashes[i]});
  }
  return ok_status();
}

Status Store::Impl::ready_to_copy(writer::Lock& lock, uint64_t bytes, std::string_view operation) {
  while (pipeline_->prepare_append(lock, bytes)) KEEL_TRY(check_writable(operation));
  if (fence_) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "store")
        .with("reason", "fence " + std::to_string(fence_->id) + " is open");
  }
  if (log_->writer()->poisoned()) return log_->writer()->poisoned_error();
  return ok_status();
}

Status Store::Impl::append_stored(std::optional<uint64_t> fence_id,
                                  std::span<const StoredRecord> records) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_writable("append_stored"));
  if (records.empty()) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "records")
        .with("reason", "there are none");
  }
  ActiveCall active(*this);
  // Wait for the stages before reading the heads the checks use (as an append does).
  uint64_t first_bytes = 0;
  for (std::string_view b : records.front().bodies) first_bytes += b.size();
  KEEL_TRY(ready_to_copy(
      lock,
      fence_id ? kSystemRecordBytesMax
               : format::event_record_bound(records.front().bodies.size(), first_bytes),
      "append_stored"));
  // Decode and check every event before anything is written: a refusal writes nothing.
  std::vector<CopiedRecord> copied;
  KEEL_TRY(check_copied(records, fence_id, copied));
  if (!fence_id) return write_copied(lock, copied.front(), /*fenced=*/false);

  // A committed fence of the source: its begin, its records and its commit, written as the source
  // wrote them, and visible all at once. From the begin on, the open fence turns other appends
  // away (VisibilityFenceActive); a failure of its records leaves the fence open on disk, so the
  // writer is poisoned (fail closed) and a reopen cancels it (FORMAT.md row 11); a commit record
  // the writer refuses (no space) leaves it open, as Fence::commit does, and later copies are
  // refused until the reopen.
  KEEL_TRY(open_fence_locked(lock, *fence_id));
  auto fail = [&](StoreError error) { return pipeline_->fail_closed(std::move(error)); };
  for (size_t i = 0; i < copied.size(); ++i) {
    uint64_t bytes = 0;
    for (std::string_view b : records[i].bodies) bytes += b.size();
    while (pipeline_->prepare_append(lock,
                                     format::event_record_bound(records[i].bodies.size(), bytes))) {
    }
    if (Status written = write_copied(lock, copied[i], /*fenced=*/true); !written.ok()) {
      return fail(std::move(written).error());
    }
  }
  return commit_fence_locked(lock, *fence_id);
}

Status Store::Impl::append_hidden(uint64_t first_sequence, uint64_t count) {
  // Placeholders for a cancelled fence's events of the source: written inside a fence of this
  // store that is then cancelled, they take the sequences and are hidden, as the source's are.
  // Their HLCs step from the previous event's by the least the clock allows, so they stay below
  // the source's next event (whose hidden predecessors stepped at least as far). A crash in the
  // middle leaves a fence the reopen cancels: hidden all the same.
  writer::Lock lock(mutex_);
  KEEL_TRY(check_writable("append_hidden"));
  if (count == 0) {
    return StoreError(ErrorCode::InvalidArgument).with("argument", "count").with("reason", "is 0");
  }
  ActiveCall active(*this);
  KEEL_TRY(ready_to_copy(lock, kSystemRecordBytesMax, "append_hidden"));
  log::SegmentWriter& writer = *log_->writer();
  if (writer.next_sequence() != first_sequence) {
    return diverged(first_sequence,
                    "the replica's next sequence is " + std::to_string(writer.next_sequence()));
  }
  const uint64_t id = (log_->epoch() << 20) + ++fences_begun_;
  KEEL_TRY(open_fence_locked(lock, id));
  auto fail = [&](StoreError error) { return pipeline_->fail_closed(std::move(error)); };
  Hlc hlc = hlc_.last();
  for (uint64_t done = 0; done < count;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(count - done, 4096));
    while (pipeline_->prepare_append(lock, format::event_record_bound(n, n * 16))) {
    }
    index::EntityStream* stream = &index_.stream_for("keel.hidden", 0);
    save_head(*stream);
    batch_bodies_.clear();
    std::vector<int32_t> chain_to(n);
    for (size_t i = 0; i < n; ++i) {
      hlc = hlc.logical + 1 < frontier::HlcClock::kLogicalMax ? Hlc{hlc.wall_ms, hlc.logical + 1}
                                                              : Hlc{hlc.wall_ms + 1, 0};
      format::EventBody& body = batch_bodies_.emplace_back();
      body.event_id = next_event_id(hlc);
      body.entity = "keel.hidden";
      body.kind = EventKind::make(15, 4095).value;
      body.entity_clock = stream->clock() + 1 + i;
      body.hlc_wall_ms = hlc.wall_ms;
      body.hlc_logical = hlc.logical;
      body.correlation_id = body.event_id;
      body.prev_hash = i == 0 ? stream->head() : std::nullopt;
      body.fence_id = id;
      chain_to[i] = static_cast<int32_t>(i) - 1;
    }
    const uint64_t first = writer.next_sequence();
    const HlcPoint before = marks_.point(Watermark::Accepted);
    std::vector<Hash128> hashes;
    if (Status appended = writer.append_batch(batch_bodies_, chain_to, &hashes); !appended.ok()) {
      return fail(std::move(appended).error());
    }
    hlc_.observe(hlc);
    std::vector<index::EntityStream*> streams(n, stream);
    KEEL_TRY(commit_accepted(lock, before, batch_bodies_, hashes, streams, first));
    done += n;
  }
  return cancel_fence_locked(lock, id);
}

}  // namespace keel
