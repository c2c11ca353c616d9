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
                                                      const ReplicationHeaders& headers,
                                                      std::string_view body) {
  auto refuse = [&](std::string reason) {
    return StoreError(ErrorCode::MessageInvalid)
        .with("position", position)
        .with("stream", stream)
        .with("reason", std::move(reason));
  };
  ReplicationMessage m;
  if (!headers.sequence) return refuse("no Keel-Sequence header");
  if (!headers.record) return refuse("no Keel-Record header");
  std::optional<uint64_t> s = parse_u64(*headers.sequence);
  if (!s || *s == 0) return refuse("Keel-Sequence is not a sequence (1 to 2^64-1)");
  const std::string_view record = *headers.record;
  const size_t slash = record.find('/');
  std::optional<uint64_t> first =
      slash == std::string_view::npos ? std::nullopt : parse_u64(record.substr(0, slash));
  std::optional<uint64_t> count =
      slash == std::string_view::npos ? std::nullopt : parse_u64(record.substr(slash + 1));
  if (!first || !count || *first == 0 || *count == 0 || *count > format::kBatchEventsMax ||
      *first > UINT64_MAX - *count) {
    return refuse("Keel-Record is not FIRST/COUNT (a sequence, then 1 to " +
                  std::to_string(format::kBatchEventsMax) + " events)");
  }
  if (*s < *first || *s - *first >= *count) {
    return refuse("Keel-Sequence " + std::to_string(*s) + " is not in its record " +
                  std::string(record));
  }
  m.sequence = *s;
  m.record_first = *first;
  m.record_events = static_cast<uint32_t>(*count);
  if (headers.hidden) {
    std::optional<uint64_t> hidden = parse_u64(*headers.hidden);
    if (!hidden || *hidden != *count || *first != *s) {
      return refuse("Keel-Hidden is not the run Keel-Record names");
    }
    if (!body.empty() || headers.fence_end) {
      return refuse("a run of hidden sequences with a body or a fence end");
    }
    m.hidden = true;
    return m;
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
  if (headers.fence_end) {
    std::optional<uint64_t> fence = parse_u64(*headers.fence_end);
    if (!fence || fence != decoded.fence_id) return refuse("Keel-Fence-End is not its fence");
    if (*s != *first + *count - 1) return refuse("Keel-Fence-End on an event inside its record");
    m.fence_end = true;
  }
  m.event_id = decoded.event_id;
  m.chained_hash = decoded.chained_hash;
  m.wall_ms = decoded.hlc_wall_ms;
  m.fence = decoded.fence_id.value_or(0);
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

namespace {

std::vector<std::string_view> bodies_of(const std::vector<ReplicationMessage>& record) {
  std::vector<std::string_view> bodies;
  bodies.reserve(record.size());
  for (const ReplicationMessage& m : record) bodies.push_back(m.body);
  return bodies;
}

}  // namespace

Status Replica::write_fence() {
  std::vector<StoredRecord> records;
  records.reserve(fence_.size());
  for (const auto& record : fence_) {
    records.push_back(StoredRecord{record.front().sequence, bodies_of(record)});
  }
  const uint64_t fence = fence_.front().front().fence;
  Status written = StoreInternals::append_stored(store_, fence, records);
  if (written.ok()) next_ += fence_events_;
  fence_.clear();
  fence_events_ = 0;
  fence_bytes_ = 0;
  return written;
}

Result<size_t> Replica::apply(ReplicationMessage m) {
  const uint64_t sequence = m.sequence;  // for the errors below, also after m is moved
  const uint64_t next = next_;
  const uint64_t expected = next_sequence();
  auto diverged = [&](std::string reason) {
    return StoreError(ErrorCode::ReplicaDiverged)
        .with("what", "replica")
        .with("sequence", sequence)
        .with("reason", std::move(reason));
  };
  auto invalid = [&](std::string reason) {
    return StoreError(ErrorCode::MessageInvalid)
        .with("position", sequence)
        .with("stream", "replica")
        .with("reason", std::move(reason));
  };
  if (m.sequence < next) {
    if (m.hidden) {
      // Held already as hidden (their placeholders cannot be compared); a run the replica holds
      // only in part (a crash in the middle of taking it) is taken on from where it stopped.
      const uint64_t end = m.sequence + m.record_events;
      if (store_.read(m.sequence).ok()) {
        return diverged("the replica holds an event where the source's sequences are hidden");
      }
      if (end <= next) return size_t{0};
      KEEL_TRY(StoreInternals::append_hidden(store_, next, end - next));
      next_ = end;
      return static_cast<size_t>(end - next);
    }
    // Held already: it must be the same event.
    Result<Event> held = store_.read(m.sequence);
    if (!held.ok() && held.error().is(ErrorCode::NotFound) &&
        m.sequence > store_.stats().sequence_visible) {
      KEEL_TRY(store_.sync());  // written by this replica, not yet durable
      held = store_.read(m.sequence);
    }
    if (!held.ok()) {
      if (held.error().is(ErrorCode::NotFound)) {
        return diverged(
            "the replica holds no visible event there (hidden, e.g. a fence a power "
            "loss cut short, which the reopen cancelled): resync it from an export");
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
    // Held in memory (its record or fence is under way): it must be the same message again.
    const ReplicationMessage* p = nullptr;
    uint64_t at = next;
    for (const auto& record : fence_) {
      if (m.sequence < at + record.size()) {
        p = &record[m.sequence - at];
        break;
      }
      at += record.size();
    }
    if (p == nullptr) p = &pending_[m.sequence - at];
    if (p->event_id != m.event_id || p->chained_hash != m.chained_hash) {
      return diverged("two messages for one sequence differ");
    }
    return size_t{0};
  }
  if (m.sequence > expected) {
    return diverged("the replica needs sequence " + std::to_string(expected) +
                    " first: the messages skip " + std::to_string(m.sequence - expected));
  }
  const uint64_t open_fence = fence_.empty() ? 0 : fence_.front().front().fence;
  if (m.hidden) {
    if (!pending_.empty() || open_fence != 0) {
      return invalid("hidden sequences inside a record or a fence under way");
    }
    KEEL_TRY(StoreInternals::append_hidden(store_, m.sequence, m.record_events));
    next_ += m.record_events;
    return static_cast<size_t>(m.record_events);
  }
  if (pending_.empty() ? m.record_first != m.sequence
                       : (m.record_first != pending_.front().record_first ||
                          m.record_events != pending_.front().record_events ||
                          m.fence != pending_.front().fence)) {
    return invalid("record " + m.record_header() + " does not continue the record " +
                   (pending_.empty() ? std::string("that ended before it")
                                     : pending_.front().record_header() + " under way"));
  }
  if (open_fence != 0 && m.fence != open_fence) {
    return invalid("fence " + std::to_string(open_fence) + " did not end before sequence " +
                   std::to_string(m.sequence));
  }
  const bool fence_end = m.fence_end;
  const uint64_t fence = m.fence;
  const uint32_t record_events = m.record_events;
  pending_.push_back(std::move(m));
  if (pending_.size() < record_events) {
    if (fence_end) return invalid("a fence's end inside a record");
    return size_t{0};
  }
  const size_t count = pending_.size();
  if (fence == 0) {
    std::vector<std::string_view> bodies = bodies_of(pending_);
    StoredRecord record{pending_.front().sequence, std::move(bodies)};
    Status written = StoreInternals::append_stored(store_, std::nullopt, std::span(&record, 1));
    pending_.clear();
    if (!written.ok()) return written.error();
    next_ += count;
    return count;
  }
  for (const ReplicationMessage& p : pending_) fence_bytes_ += p.body.size();
  fence_events_ += count;
  fence_.push_back(std::move(pending_));
  pending_.clear();
  if (fence_bytes_ > kFenceCopyBytesMax) {
    fence_.clear();
    fence_events_ = fence_bytes_ = 0;
    return StoreError(ErrorCode::NotSupported)
        .with("feature", "replicating a fence of more than " + std::to_string(kFenceCopyBytesMax) +
                             " bytes of events")
        .with("reason", "the replica writes a fence whole, from memory");
  }
  if (!fence_end) return size_t{0};
  const uint64_t events = fence_events_;
  KEEL_TRY(write_fence());
  return static_cast<size_t>(events);
}

}  // namespace keel
