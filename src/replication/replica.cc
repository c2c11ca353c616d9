// Replication without a transport (include/keel/replication.h): messages read from a source store,
// parsed from received bytes, and written into a replica one whole source record at a time.
#include <charconv>

#include "format/checksum.h"
#include "format/event_body.h"
#include "format/format_constants.h"
#include "format/msgpack_reader.h"
#include "keel/replication.h"
#include "store/store_internals.h"

namespace keel {
namespace {

std::optional<uint64_t> parse_u64(std::string_view text) {
  uint64_t value = 0;
  if (text.empty() || text.size() > 20) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace

Result<ReplicationMessage> decode_replication_message(std::string_view stream, uint64_t position,
                                                      std::optional<std::string_view> sequence,
                                                      std::optional<std::string_view> record,
                                                      std::string_view body) {
  auto refuse = [&](std::string reason) {
    return StoreError(ErrorCode::MessageInvalid)
        .with("position", position)
        .with("stream", stream)
        .with("reason", std::move(reason));
  };
  ReplicationMessage m;
  if (!sequence) return refuse("no Keel-Sequence header");
  if (!record) return refuse("no Keel-Record header");
  std::optional<uint64_t> s = parse_u64(*sequence);
  if (!s || *s == 0) return refuse("Keel-Sequence is not a sequence (1 to 2^64-1)");
  const size_t slash = record->find('/');
  std::optional<uint64_t> first =
      slash == std::string_view::npos ? std::nullopt : parse_u64(record->substr(0, slash));
  std::optional<uint64_t> count =
      slash == std::string_view::npos ? std::nullopt : parse_u64(record->substr(slash + 1));
  if (!first || !count || *first == 0 || *count == 0 || *count > format::kBatchEventsMax) {
    return refuse("Keel-Record is not FIRST/COUNT (a sequence, then 1 to " +
                  std::to_string(format::kBatchEventsMax) + " events)");
  }
  if (*s < *first || *s - *first >= *count) {
    return refuse("Keel-Sequence " + std::to_string(*s) + " is not in its record " +
                  std::string(*record));
  }
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(body.data()), body.size());
  format::MsgpackReader reader(bytes);
  format::EventBody decoded;
  if (const char* problem = format::decode_event_body(reader, decoded)) {
    return refuse(std::string("its body: ") + problem);
  }
  if (!reader.at_end()) return refuse("bytes after the event body");
  if (format::hash128(decoded.hashed_bytes) != decoded.chained_hash) {
    return refuse("the chained hash does not match the body's bytes");
  }
  m.sequence = *s;
  m.record_first = *first;
  m.record_events = static_cast<uint32_t>(*count);
  m.event_id = decoded.event_id;
  m.chained_hash = decoded.chained_hash;
  m.wall_ms = decoded.hlc_wall_ms;
  m.body.assign(body);
  return m;
}

Result<size_t> read_replication_messages(Store& source, uint64_t after, size_t max_events,
                                         std::vector<ReplicationMessage>& out) {
  if (max_events == 0 || after == UINT64_MAX) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", max_events == 0 ? "max_events" : "after")
        .with("reason", max_events == 0 ? "is 0" : "is the last sequence there is");
  }
  return StoreInternals::read_stored(source, after + 1, max_events, out);
}

Replica::Replica(Store& store) : store_(store), next_(store.stats().sequence_next) {}

Result<size_t> Replica::apply(const ReplicationMessage& m) {
  const uint64_t next = next_;
  const uint64_t expected = next + pending_.size();
  auto diverged = [&](std::string reason) {
    return StoreError(ErrorCode::ReplicaDiverged)
        .with("what", "replica")
        .with("sequence", m.sequence)
        .with("reason", std::move(reason));
  };
  if (m.sequence < next) {
    // Held already: it must be the same event.
    Result<Event> held = store_.read(m.sequence);
    if (!held.ok() && held.error().is(ErrorCode::NotFound) &&
        m.sequence > store_.stats().sequence_visible) {
      KEEL_TRY(store_.sync());  // written by this replica, not yet durable
      held = store_.read(m.sequence);
    }
    if (!held.ok()) {
      if (held.error().is(ErrorCode::NotFound)) {
        return diverged("the replica holds no visible event there (sync it first)");
      }
      return held.error();
    }
    if (held->event_id != m.event_id || held->chained_hash != m.chained_hash) {
      return diverged("the replica holds event " + held->event_id.to_hex() +
                      " there, the message " + m.event_id.to_hex());
    }
    return size_t{0};
  }
  if (m.sequence < expected) {
    const ReplicationMessage& p = pending_[m.sequence - next];
    if (p.event_id != m.event_id || p.chained_hash != m.chained_hash) {
      return diverged("two messages for one sequence differ");
    }
    return size_t{0};
  }
  if (m.sequence > expected) {
    return diverged("the replica needs sequence " + std::to_string(expected) +
                    " first: the messages skip " + std::to_string(m.sequence - expected));
  }
  if (pending_.empty() ? m.record_first != m.sequence
                       : (m.record_first != pending_.front().record_first ||
                          m.record_events != pending_.front().record_events)) {
    return StoreError(ErrorCode::MessageInvalid)
        .with("position", m.sequence)
        .with("stream", "replica")
        .with("reason", "record " + m.record_header() + " does not continue the record " +
                            (pending_.empty() ? std::string("that ended before it")
                                              : pending_.front().record_header() + " under way"));
  }
  pending_.push_back(m);
  if (pending_.size() < m.record_events) return size_t{0};
  std::vector<std::string_view> bodies;
  bodies.reserve(pending_.size());
  for (const ReplicationMessage& p : pending_) bodies.push_back(p.body);
  Status written = StoreInternals::append_stored(store_, pending_.front().sequence, bodies);
  const size_t count = pending_.size();
  pending_.clear();
  if (!written.ok()) return written.error();
  next_ += count;
  return count;
}

}  // namespace keel
