// Replication's part of the store (StoreInternals::read_stored, append_stored): visible events as
// their records hold them, and the write of a record copied from another store, checked so that
// the copy holds the same events with the same sequences, clocks, chains and hashes.
#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "format/checksum.h"
#include "format/msgpack_reader.h"
#include "format/msgpack_writer.h"
#include "format/record.h"
#include "store/store_impl.h"

namespace keel {
namespace {

StoreError unsupported(uint64_t sequence, std::string_view what) {
  return StoreError(ErrorCode::NotSupported)
      .with("feature", "replicating " + std::string(what))
      .with("reason", "sequence " + std::to_string(sequence) +
                          " is one; replication does not carry fences yet");
}

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

// The body as stored up to field 16, then field 16 in its canonical form (bin8 of 16 bytes).
void stored_body(const format::EventBody& body, std::string& out) {
  std::vector<std::byte> field;
  format::MsgpackWriter(field).bin128(body.chained_hash.high, body.chained_hash.low);
  out.assign(reinterpret_cast<const char*>(body.hashed_bytes.data()), body.hashed_bytes.size());
  out.append(reinterpret_cast<const char*>(field.data()), field.size());
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
  size_t added = 0;
  uint64_t sequence = from;
  while (sequence <= visible && added < max_events) {
    std::optional<FrameAt> at = frame_at_locked(sequence);
    if (!at) return unsupported(sequence, "a store with cancelled fences (hidden events)");
    format::DecodedFrame frame;
    KEEL_TRY(reader_.read_frame(at->segment_id, at->offset, at->stable_end, read_bytes_, frame));
    const uint64_t first = frame.header.sequence;
    const size_t start = out.size();
    std::optional<StoreError> failed;
    uint32_t count = 0;
    const char* problem =
        format::decode_record_events(frame, [&](uint32_t i, const format::EventBody& body) {
          ++count;
          const uint64_t s = first + i;
          if (s < sequence || s > visible || failed) return;
          if (body.fence_id) {
            failed = unsupported(s, "events written inside a fence");
            return;
          }
          ReplicationMessage& e = out.emplace_back();
          e.sequence = s;
          e.record_first = first;
          e.event_id = body.event_id;
          e.chained_hash = body.chained_hash;
          e.wall_ms = body.hlc_wall_ms;
          stored_body(body, e.body);
        });
    if (problem != nullptr) {
      return read_corruption(sequence, std::string(problem) + " (offset is the sequence)");
    }
    if (failed) return *failed;
    if (first + count <= sequence) {
      return read_corruption(sequence, "the indexed record does not hold this sequence");
    }
    for (size_t i = start; i < out.size(); ++i) out[i].record_events = count;
    added += out.size() - start;
    sequence = first + count;
  }
  return added;
}

Status Store::Impl::append_stored(uint64_t first_sequence,
                                  std::span<const std::string_view> bodies) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_writable("append_stored"));
  if (bodies.empty()) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "bodies")
        .with("reason", "a record holds at least one event");
  }
  if (fence_) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "store")
        .with("reason", "fence " + std::to_string(fence_->id) + " is open");
  }
  ActiveCall active(*this);
  uint64_t total_bytes = 0;
  for (std::string_view b : bodies) total_bytes += b.size();
  while (pipeline_->prepare_append(lock, format::event_record_bound(bodies.size(), total_bytes))) {
    KEEL_TRY(check_writable("append_stored"));
  }
  log::SegmentWriter& writer = *log_->writer();
  if (writer.poisoned()) return writer.poisoned_error();
  if (writer.next_sequence() != first_sequence) {
    return diverged(first_sequence,
                    "the replica's next sequence is " + std::to_string(writer.next_sequence()));
  }
  // Decode and check every event before anything is written: a refusal writes nothing.
  batch_bodies_.clear();
  std::vector<index::EntityStream*> streams;
  streams.reserve(bodies.size());
  struct Head {
    uint64_t clock;
    std::optional<Hash128> hash;
  };
  absl::flat_hash_map<std::pair<std::string_view, uint32_t>, Head> heads;
  std::vector<std::byte> canonical;
  Hlc last = hlc_.last();
  for (size_t i = 0; i < bodies.size(); ++i) {
    const uint64_t sequence = first_sequence + i;
    std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(bodies[i].data()),
                                     bodies[i].size());
    format::MsgpackReader reader(bytes);
    format::EventBody& body = batch_bodies_.emplace_back();
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
    if (body.fence_id) return unsupported(sequence, "events written inside a fence");
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
    streams.push_back(stream);
  }
  HlcPoint before = marks_.point(Watermark::Accepted);
  std::vector<Hash128> hashes;
  Status appended = ok_status();
  if (bodies.size() == 1) {
    hashes.resize(1);
    appended = writer.append_event(batch_bodies_[0], &hashes[0]);
  } else {
    appended = writer.append_batch(batch_bodies_, {}, &hashes);
  }
  if (!appended.ok()) return refused(lock, before, std::move(appended).error());
  for (size_t i = 0; i < hashes.size(); ++i) {
    hlc_.observe(Hlc{batch_bodies_[i].hlc_wall_ms, batch_bodies_[i].hlc_logical});
  }
  KEEL_TRY(commit_accepted(lock, before, batch_bodies_, hashes, streams, first_sequence));
  for (size_t i = 0; i < hashes.size(); ++i) {
    const format::EventBody& b = batch_bodies_[i];
    if (!b.idempotency_key || !b.idempotency_fingerprint) continue;
    // The source kept the key unique within its window; a key the replica still holds from
    // earlier (its window counts differently) is replaced by the newer event's.
    keys_.add(*b.idempotency_key, *b.idempotency_fingerprint,
              Receipt{b.event_id, log_->epoch(), first_sequence + i, b.entity_clock,
                      Hlc{b.hlc_wall_ms, b.hlc_logical}, hashes[i]});
  }
  return ok_status();
}

}  // namespace keel
