// Replication without a transport (include/keel/replication.h): a source's events copied through
// messages into a replica that then holds the same events, records, sequences, fences and hashes;
// messages delivered again; every refusal (a gap, tampered or non-canonical bytes, a replica
// written to by something else, a record cut short, hidden where the source shows events), each
// writing nothing.
#include <filesystem>
#include <map>

#include "format/checksum.h"
#include "format/format_constants.h"
#include "keel/keel.h"
#include "test_support.h"

namespace keel {
namespace {

using test::contains;
using test::TempDir;
constexpr EventKind kKind = EventKind::make(1, 1);

std::unique_ptr<Store> open_at(const std::string& dir) {
  StoreOptions options;
  options.create_if_missing = true;
  options.segment_size = 16384;  // rotations on the way
  auto store = Store::open(dir, options);
  if (!store.ok()) FAIL(store.error().to_string());
  return std::move(store).value();
}

// A source with single appends, batches, several entities and lanes, causes, metadata and keys.
void fill_source(Store& source, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    AppendOptions o;
    o.lane = static_cast<uint32_t>(r % 3);
    o.metadata = "{\"round\":" + std::to_string(r) + "}";
    if (r % 4 == 0) o.idempotency_key = "key-" + std::to_string(r);
    auto first = source.append({"order:" + std::to_string(r % 7), "billing"}, kKind,
                               "{\"n\":" + std::to_string(r) + "}", o);
    KEEL_REQUIRE_OK(first);
    std::vector<BatchItem> batch;
    for (int i = 0; i < 1 + r % 5; ++i) {
      BatchItem item{{"cart:" + std::to_string((r + i) % 5), ""},
                     kKind,
                     std::string(40 + i, static_cast<char>('a' + i)),
                     {}};
      item.options.causation_id = first->event_id;
      if (i > 0) item.options.cause_item = 0, item.options.causation_id.reset();
      batch.push_back(item);
    }
    KEEL_REQUIRE_OK(source.append_batch(batch));
  }
}

ReplicationHeaders headers_of(const ReplicationMessage& m) {
  static thread_local std::string sequence, record, fence_end, hidden;
  sequence = m.sequence_header();
  record = m.record_header();
  fence_end = m.fence_end_header().value_or("");
  hidden = m.hidden_header().value_or("");
  return ReplicationHeaders{sequence, record,
                            m.fence_end ? std::optional<std::string_view>(fence_end) : std::nullopt,
                            m.hidden ? std::optional<std::string_view>(hidden) : std::nullopt};
}

// Every message after `after`, as a transport hands it over: through its header values and body.
std::vector<ReplicationMessage> carried(Store& source, uint64_t after = 0) {
  std::vector<ReplicationMessage> read;
  for (;;) {
    auto n = read_replication_messages(source, after, 7, read);
    KEEL_REQUIRE_OK(n);
    if (*n == 0) break;
    after = read.back().sequence;
  }
  std::vector<ReplicationMessage> out;
  for (const ReplicationMessage& m : read) {
    auto decoded = decode_replication_message("test", m.sequence, headers_of(m), m.body);
    KEEL_REQUIRE_OK(decoded);
    CHECK(decoded->event_id == m.event_id);
    CHECK(decoded->chained_hash == m.chained_hash);
    out.push_back(std::move(decoded).value());
  }
  return out;
}

void apply_all(Replica& replica, const std::vector<ReplicationMessage>& messages) {
  for (const ReplicationMessage& m : messages) KEEL_REQUIRE_OK(replica.apply(m));
  KEEL_REQUIRE_OK(replica.sync());
}

// The visible events of a store, as comparable owned events minus the epoch (the writer's own).
std::vector<Event> events_of(Store& store) {
  auto events = store.scan_events(1, UINT64_MAX);
  if (!events.ok()) FAIL(events.error().to_string());
  for (Event& e : *events) e.epoch = 0;
  return std::move(events).value();
}

TEST_CASE("a replica fed the source's messages holds the same events, records and hashes",
          "[replication]") {
  TempDir dir;
  auto source = open_at(dir / "source");
  fill_source(*source, 60);
  auto messages = carried(*source);
  REQUIRE(messages.size() == source->stats().sequence_visible);

  auto replica_store = open_at(dir / "replica");
  Replica replica(*replica_store);
  apply_all(replica, messages);
  CHECK(replica.next_sequence() == source->stats().sequence_next);
  CHECK(events_of(*replica_store) == events_of(*source));
  auto verified = replica_store->verify();
  KEEL_REQUIRE_OK(verified);
  CHECK(verified->ok);
  CHECK(verified->events_checked == source->stats().sequence_visible);

  // The same records: the replica's messages name the same record boundaries.
  auto again = carried(*replica_store);
  REQUIRE(again.size() == messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    CHECK(again[i].record_header() == messages[i].record_header());
    CHECK(again[i].body == messages[i].body);
  }
  // It reopens as the same store (recovery accepts what it wrote), and entity streams agree.
  KEEL_REQUIRE_OK(replica_store->close());
  replica_store = open_at(dir / "replica");
  CHECK(events_of(*replica_store) == events_of(*source));
  auto a = source->entity_events("order:3", 1);
  auto b = replica_store->entity_events("order:3", 1);
  KEEL_REQUIRE_OK(a);
  KEEL_REQUIRE_OK(b);
  CHECK(a->size() == b->size());
}

// A store written in format version 1 (the committed golden store: msgpack bodies), continued by
// today's writer (compact bodies), replicates into a new store that keeps each body's form: the
// same bytes and so the same hashes, with a chain that crosses from one form to the other.
TEST_CASE("a replica of a version-1 store keeps each body's form and its hashes", "[replication]") {
  TempDir dir;
  std::filesystem::copy(KEEL_SOURCE_DIR "/segments/golden/store-v1", dir / "source",
                        std::filesystem::copy_options::recursive);
  auto source = open_at(dir / "source");
  const uint64_t golden_events = source->stats().sequence_next - 1;
  REQUIRE(golden_events == 35);
  // order:5 lane 0 is the golden's last chain: continue it in the new form.
  auto appended = source->append({"order:5", "golden"}, EventKind::make(2, 1), "{\"n\":99}");
  KEEL_REQUIRE_OK(appended);
  auto messages = carried(*source);
  REQUIRE(messages.size() == golden_events + 1);
  size_t msgpack = 0, compact = 0;
  for (const ReplicationMessage& m : messages) {
    if (m.hidden) continue;  // the golden's cancelled fence
    REQUIRE_FALSE(m.body.empty());
    const auto first = static_cast<uint8_t>(m.body[0]);
    (first == format::kCompactBodyTag ? compact : msgpack) += 1;
    CHECK((first == format::kCompactBodyTag) == (m.sequence > golden_events));
  }
  CHECK(msgpack == golden_events - 1);
  CHECK(compact == 1);

  auto replica_store = open_at(dir / "replica");
  Replica replica(*replica_store);
  apply_all(replica, messages);
  CHECK(events_of(*replica_store) == events_of(*source));
  auto again = carried(*replica_store);
  REQUIRE(again.size() == messages.size());
  for (size_t i = 0; i < messages.size(); ++i) CHECK(again[i].body == messages[i].body);
  auto last = replica_store->read(golden_events + 1);
  KEEL_REQUIRE_OK(last);
  CHECK(last->chained_hash == appended->chained_hash);
  auto verified = replica_store->verify();
  KEEL_REQUIRE_OK(verified);
  CHECK(verified->ok);
  CHECK(verified->events_checked == golden_events);  // the hidden one is not checked
}

TEST_CASE("a replica resumes, skips what it holds, and refuses a gap", "[replication]") {
  TempDir dir;
  auto source = open_at(dir / "source");
  fill_source(*source, 20);
  auto messages = carried(*source);
  auto replica_store = open_at(dir / "replica");
  {
    Replica replica(*replica_store);
    std::vector<ReplicationMessage> half(messages.begin(), messages.begin() + 30);
    apply_all(replica, half);
  }
  // A record cut short at 30 is held back, not half written.
  const uint64_t held = replica_store->stats().sequence_visible;
  CHECK(held <= 30);
  CHECK(held >= 25);

  Replica replica(*replica_store);
  CHECK(replica.next_sequence() == held + 1);
  // A gap: the next message after the one it needs.
  auto gap = replica.apply(messages[held + 1]);
  REQUIRE_FALSE(gap.ok());
  CHECK(gap.error().is(ErrorCode::ReplicaDiverged));
  // Delivered again from the start: the held ones are checked and skipped.
  apply_all(replica, messages);
  CHECK(events_of(*replica_store) == events_of(*source));

  // A message for a held sequence that names another event is divergence.
  ReplicationMessage other = messages[3];
  other.event_id = messages[4].event_id;
  auto differs = replica.apply(other);
  REQUIRE_FALSE(differs.ok());
  CHECK(differs.error().is(ErrorCode::ReplicaDiverged));
}

TEST_CASE("a replica that something else appended to is refused, writing nothing",
          "[replication]") {
  TempDir dir;
  auto source = open_at(dir / "source");
  fill_source(*source, 5);
  auto messages = carried(*source);
  auto replica_store = open_at(dir / "replica");
  KEEL_REQUIRE_OK(replica_store->append({"intruder", ""}, kKind, "x"));
  Replica replica(*replica_store);
  auto refused = replica.apply(messages[0]);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().is(ErrorCode::ReplicaDiverged));
  CHECK(replica_store->stats().sequence_next == 2);
}

TEST_CASE("an event that does not continue its chain in the replica is refused", "[replication]") {
  TempDir dir;
  auto a = open_at(dir / "a");
  auto b = open_at(dir / "b");
  // Two sources whose first events are on the same entity: b's second event continues b's chain.
  KEEL_REQUIRE_OK(a->append({"order:1", ""}, kKind, "a1"));
  KEEL_REQUIRE_OK(b->append({"order:1", ""}, kKind, "b1"));
  KEEL_REQUIRE_OK(b->append({"order:1", ""}, kKind, "b2"));
  auto from_a = carried(*a);
  auto from_b = carried(*b);
  auto replica_store = open_at(dir / "replica");
  Replica replica(*replica_store);
  KEEL_REQUIRE_OK(replica.apply(from_a[0]));
  auto refused = replica.apply(from_b[1]);  // sequence 2, clock 2, but prev = b1's hash
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().is(ErrorCode::ReplicaDiverged));
  CHECK(contains(refused.error().message(), "another prev hash"));
  CHECK(replica_store->stats().sequence_next == 2);
}

TEST_CASE("tampered, non-canonical and malformed messages are refused as MessageInvalid",
          "[replication]") {
  TempDir dir;
  auto source = open_at(dir / "source");
  KEEL_REQUIRE_OK(source->append({"order:1", ""}, kKind, "payload"));
  auto messages = carried(*source);
  const ReplicationMessage& m = messages[0];
  auto refused = [&](std::optional<std::string_view> sequence,
                     std::optional<std::string_view> record, std::string_view body) {
    auto decoded = decode_replication_message("s", 9, {sequence, record, {}, {}}, body);
    REQUIRE_FALSE(decoded.ok());
    CHECK(decoded.error().is(ErrorCode::MessageInvalid));
    return decoded.error().message();
  };
  CHECK(contains(refused(std::nullopt, "1/1", m.body), "no Keel-Sequence"));
  CHECK(contains(refused("1", std::nullopt, m.body), "no Keel-Record"));
  CHECK(contains(refused("0", "1/1", m.body), "Keel-Sequence"));
  CHECK(contains(refused("1x", "1/1", m.body), "Keel-Sequence"));
  CHECK(contains(refused("1", "1-1", m.body), "Keel-Record"));
  CHECK(contains(refused("1", "1/0", m.body), "Keel-Record"));
  CHECK(contains(refused("3", "1/2", m.body), "not in its record"));
  std::string tampered = m.body;
  tampered[tampered.find("payload")] = 'P';
  CHECK(contains(refused("1", "1/1", tampered), "chained hash"));
  CHECK(contains(refused("1", "1/1", m.body + "x"), "bytes after"));
  CHECK(contains(refused("1", "1/1", m.body.substr(0, 20)), "body"));

  // Decodes and its hash matches, but it is not keel's canonical encoding: the lane (0, which keel
  // writes as the one varint byte 00 at offset 20 of a compact body) as the two bytes 80 00, with
  // the chained hash (the last 16 bytes) recomputed over the new bytes. A replica must refuse it:
  // its own re-encoding would hash differently from the source's.
  auto replica_store = open_at(dir / "replica");
  Replica replica(*replica_store);
  {
    std::string wide = m.body;
    REQUIRE(wide.size() > 40);
    REQUIRE(static_cast<uint8_t>(wide[0]) == format::kCompactBodyTag);
    REQUIRE(wide[20] == '\0');
    wide.replace(20, 1, std::string("\x80\x00", 2));
    std::span<const std::byte> hashed(reinterpret_cast<const std::byte*>(wide.data()),
                                      wide.size() - 16);
    Hash128 h = format::hash128(hashed);
    for (int i = 0; i < 8; ++i) {
      wide[wide.size() - 16 + i] = static_cast<char>(h.high >> (56 - 8 * i));
      wide[wide.size() - 8 + i] = static_cast<char>(h.low >> (56 - 8 * i));
    }
    auto decoded = decode_replication_message("s", 1, {"1", "1/1", {}, {}}, wide);
    KEEL_REQUIRE_OK(decoded);  // well formed, hash matches
    auto written = replica.apply(*decoded);
    REQUIRE_FALSE(written.ok());
    CHECK(written.error().is(ErrorCode::MessageInvalid));
    CHECK(contains(written.error().message(), "canonical"));
    CHECK(replica_store->stats().sequence_next == 1);
  }
  Replica fresh(*replica_store);
  // A record whose messages disagree: first of "1/2" then a lone "2/1".
  ReplicationMessage first = m;
  first.record_events = 2;
  KEEL_REQUIRE_OK(fresh.apply(first));
  CHECK(fresh.pending() == 1);
  ReplicationMessage lone = m;
  lone.sequence = 2;
  lone.record_first = 2;
  auto disagree = fresh.apply(lone);
  REQUIRE_FALSE(disagree.ok());
  CHECK(disagree.error().is(ErrorCode::MessageInvalid));
  CHECK(replica_store->stats().sequence_next == 1);
}

TEST_CASE("committed and cancelled fences reach the replica as the source has them",
          "[replication]") {
  TempDir dir;
  auto source = open_at(dir / "source");
  auto replica_store = open_at(dir / "replica");
  Replica replica(*replica_store);
  uint64_t after = 0;
  // Messages read at every step, so that reads end inside fences too.
  auto copy_new = [&](size_t max_events) {
    std::vector<ReplicationMessage> read;
    for (;;) {
      auto n = read_replication_messages(*source, after, max_events, read);
      KEEL_REQUIRE_OK(n);
      if (*n == 0) break;
      const ReplicationMessage& last = read.back();
      after = last.sequence + (last.hidden ? last.record_events - 1 : 0);
    }
    for (const ReplicationMessage& m : read) {
      auto decoded = decode_replication_message("test", m.sequence, headers_of(m), m.body);
      KEEL_REQUIRE_OK(decoded);
      KEEL_REQUIRE_OK(replica.apply(*decoded));
    }
    KEEL_REQUIRE_OK(replica.sync());
  };
  KEEL_REQUIRE_OK(source->append({"order:1", ""}, kKind, "before"));
  {  // committed: a single append and a batch, visible at once
    auto fence = source->begin_fence();
    KEEL_REQUIRE_OK(fence);
    KEEL_REQUIRE_OK((*fence)->append({"order:1", ""}, kKind, "fenced"));
    std::vector<BatchItem> batch(3, BatchItem{{"order:2", ""}, kKind, "fenced batch", {}});
    KEEL_REQUIRE_OK((*fence)->append_batch(batch));
    KEEL_REQUIRE_OK((*fence)->commit());
  }
  {  // cancelled: hidden; the next event of order:1 takes the same clock
    auto fence = source->begin_fence();
    KEEL_REQUIRE_OK(fence);
    KEEL_REQUIRE_OK((*fence)->append({"order:1", ""}, kKind, "cancelled"));
    KEEL_REQUIRE_OK((*fence)->append({"order:3", ""}, kKind, "cancelled"));
    KEEL_REQUIRE_OK((*fence)->cancel());
  }
  KEEL_REQUIRE_OK(source->append({"order:1", ""}, kKind, "after"));
  {  // committed, right after another committed one
    for (int f = 0; f < 2; ++f) {
      auto fence = source->begin_fence();
      KEEL_REQUIRE_OK(fence);
      KEEL_REQUIRE_OK((*fence)->append({"order:4", ""}, kKind, "f" + std::to_string(f)));
      KEEL_REQUIRE_OK((*fence)->commit());
    }
  }
  copy_new(2);  // reads of 2 events: they end inside the first fence
  CHECK(replica_store->stats().sequence_next == source->stats().sequence_next);
  CHECK(events_of(*replica_store) == events_of(*source));
  CHECK(replica_store->stats().hidden_events == 2);
  {  // a cancelled fence at the end
    auto fence = source->begin_fence();
    KEEL_REQUIRE_OK(fence);
    KEEL_REQUIRE_OK((*fence)->append({"order:5", ""}, kKind, "cancelled at the end"));
    KEEL_REQUIRE_OK((*fence)->cancel());
  }
  KEEL_REQUIRE_OK(source->append({"order:5", ""}, kKind, "last"));
  copy_new(100);
  CHECK(events_of(*replica_store) == events_of(*source));
  auto verified = replica_store->verify();
  KEEL_REQUIRE_OK(verified);
  CHECK(verified->ok);
  // The replica reopens as the same store (its fences are on disk as the source's are).
  KEEL_REQUIRE_OK(replica_store->close());
  replica_store = open_at(dir / "replica");
  CHECK(events_of(*replica_store) == events_of(*source));
  CHECK(replica_store->stats().sequence_next == source->stats().sequence_next);
}

TEST_CASE(
    "a replica whose sequences are hidden where the source shows events is ReplicaDiverged "
    "naming the resync",
    "[replication]") {
  // The state a power loss leaves when it cuts the write of a fence's copy short: the reopen
  // cancels the fence, so the replica holds those sequences hidden.
  TempDir dir;
  auto source = open_at(dir / "source");
  KEEL_REQUIRE_OK(source->append({"order:1", ""}, kKind, "before"));
  {
    auto fence = source->begin_fence();
    KEEL_REQUIRE_OK(fence);
    KEEL_REQUIRE_OK((*fence)->append({"order:1", ""}, kKind, "fenced"));
    KEEL_REQUIRE_OK((*fence)->commit());
  }
  auto messages = carried(*source);
  REQUIRE(messages.size() == 2);
  CHECK(messages[1].fence_end);
  auto replica_store = open_at(dir / "replica");
  {
    Replica replica(*replica_store);
    KEEL_REQUIRE_OK(replica.apply(messages[0]));
    KEEL_REQUIRE_OK(replica.sync());
  }
  {
    auto cut = replica_store->begin_fence();
    KEEL_REQUIRE_OK(cut);
    KEEL_REQUIRE_OK((*cut)->append({"order:1", ""}, kKind, "cut short"));
    KEEL_REQUIRE_OK((*cut)->cancel());
  }
  Replica replica(*replica_store);
  auto refused = replica.apply(messages[1]);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().is(ErrorCode::ReplicaDiverged));
  CHECK(contains(refused.error().message(), "resync it from an export"));
}

}  // namespace
}  // namespace keel
