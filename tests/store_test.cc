// Store API unit tests: every call's happy path and every Domain error path.
#include <sys/wait.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "format/byte_order.h"
#include "format/checksum.h"
#include "format/event_body.h"
#include "format/frame.h"
#include "keel/keel.h"
#include "log/log.h"
#include "log/segment_files.h"
#include "log/synced_point.h"
#include "platform/file_system.h"
#include "test_support.h"

using namespace keel;
using keel::test::TempDir;

namespace {

const EventKind kPlaced = EventKind::make(1, 1);
const EventKind kPaid = EventKind::make(1, 2);

StoreOptions create_options() {
  StoreOptions options;
  options.create_if_missing = true;
  options.segment_size = 8192;
  options.id_seed = 42;
  return options;
}

std::unique_ptr<Store> open_store(const std::string& dir, StoreOptions options = create_options()) {
  auto store = Store::open(dir, options);
  if (!store.ok()) FAIL(store.error().to_string());
  return std::move(store).value();
}

}  // namespace

TEST_CASE("append returns a receipt that reads back identically", "[store]") {
  TempDir dir;
  auto store = open_store(dir.path());
  AppendOptions options;
  options.metadata = "meta";
  auto receipt = store->append({"order:1", "billing"}, kPlaced, "payload-1", options);
  KEEL_REQUIRE_OK(receipt);
  CHECK(receipt->sequence == 1);
  CHECK(receipt->entity_clock == 1);
  CHECK(receipt->epoch == 1);
  auto event = store->read(1);
  KEEL_REQUIRE_OK(event);
  CHECK(event->receipt() == *receipt);
  CHECK(event->coordinate == Coordinate{"order:1", "billing"});
  CHECK(event->kind == kPlaced);
  CHECK(event->payload == "payload-1");
  CHECK(event->metadata == std::optional<std::string>("meta"));
  CHECK(event->correlation_id == receipt->event_id);  // a root starts its own conversation
  CHECK(!event->causation_id);
  CHECK(!event->prev_hash);
  auto by_id = store->get(receipt->event_id);
  KEEL_REQUIRE_OK(by_id);
  CHECK(by_id->sequence == 1);
}

TEST_CASE("clocks and chains are per (entity, lane)", "[store]") {
  TempDir dir;
  auto store = open_store(dir.path());
  auto a1 = store->append({"order:1", ""}, kPlaced, "a1");
  auto b1 = store->append({"order:2", ""}, kPlaced, "b1");
  AppendOptions lane1;
  lane1.lane = 1;
  auto a1_lane1 = store->append({"order:1", ""}, kPlaced, "a1 lane 1", lane1);
  auto a2 = store->append({"order:1", ""}, kPaid, "a2");
  KEEL_REQUIRE_OK(a2);
  CHECK(a1->entity_clock == 1);
  CHECK(b1->entity_clock == 1);
  CHECK(a1_lane1->entity_clock == 1);
  CHECK(a2->entity_clock == 2);
  auto events = store->entity_events("order:1", 0);
  KEEL_REQUIRE_OK(events);
  REQUIRE(events->size() == 2);
  CHECK((*events)[1].prev_hash == std::optional<Hash128>(a1->chained_hash));
  CHECK((*events)[1].payload == "a2");
  auto verified = store->verify();
  KEEL_REQUIRE_OK(verified);
  CHECK(verified->ok);
  CHECK(verified->events_checked == 4);
}

TEST_CASE("scope is a label: the entity's clock and chain run across scopes, queries match it",
          "[store]") {
  TempDir dir;
  auto store = open_store(dir.path());
  auto shop = store->append({"order:1", "shop"}, kPlaced, "in shop");
  auto none = store->append({"order:1", ""}, kPaid, "no scope");
  AppendOptions cas;
  cas.expected_clock = 2;  // the head across both scopes
  auto billing = store->append({"order:1", "billing"}, kPaid, "in billing", cas);
  KEEL_REQUIRE_OK(billing);
  CHECK(shop->entity_clock == 1);
  CHECK(none->entity_clock == 2);
  CHECK(billing->entity_clock == 3);
  auto events = store->entity_events("order:1", 0);
  KEEL_REQUIRE_OK(events);
  REQUIRE(events->size() == 3);
  CHECK((*events)[1].prev_hash == std::optional<Hash128>(shop->chained_hash));
  CHECK((*events)[2].prev_hash == std::optional<Hash128>(none->chained_hash));
  Query by_scope;
  by_scope.scope = "shop";
  auto page = store->query(by_scope);
  KEEL_REQUIRE_OK(page);
  REQUIRE(page->events.size() == 1);
  CHECK(page->events[0].sequence == shop->sequence);
  by_scope.scope = "";
  page = store->query(by_scope);
  KEEL_REQUIRE_OK(page);
  REQUIRE(page->events.size() == 1);  // exact: the empty scope is a scope
  CHECK(page->events[0].sequence == none->sequence);
}

TEST_CASE("a batch is one record with consecutive sequences and chains through its items",
          "[store]") {
  TempDir dir;
  auto store = open_store(dir.path());
  KEEL_REQUIRE_OK(store->append({"order:1", ""}, kPlaced, "before"));
  std::vector<BatchItem> items = {{{"order:1", ""}, kPaid, "paid", {}},
                                  {{"order:2", ""}, kPlaced, "other", {}},
                                  {{"order:1", ""}, kPaid, "shipped", {}}};
  auto receipts = store->append_batch(items);
  KEEL_REQUIRE_OK(receipts);
  REQUIRE(receipts->size() == 3);
  CHECK((*receipts)[0].sequence == 2);
  CHECK((*receipts)[2].sequence == 4);
  CHECK((*receipts)[0].entity_clock == 2);
  CHECK((*receipts)[2].entity_clock == 3);
  auto third = store->read(4);
  KEEL_REQUIRE_OK(third);
  CHECK(third->prev_hash == std::optional<Hash128>((*receipts)[0].chained_hash));
  auto verified = store->verify();
  KEEL_REQUIRE_OK(verified);
  CHECK(verified->ok);
}

TEST_CASE("everything survives a clean reopen and the epoch increments", "[store]") {
  TempDir dir;
  std::vector<Receipt> receipts;
  {
    auto store = open_store(dir.path());
    for (int i = 0; i < 200; ++i) {  // enough to rotate 8 KiB segments several times
      auto r = store->append({"order:" + std::to_string(i % 7), ""}, kPlaced,
                             std::string(50, static_cast<char>('a' + i % 26)));
      KEEL_REQUIRE_OK(r);
      receipts.push_back(*r);
    }
    KEEL_REQUIRE_OK(store->close());
  }
  auto store = open_store(dir.path());
  CHECK(store->epoch() == 2);
  CHECK(store->stats().segments > 2);
  auto events = store->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(events);
  REQUIRE(events->size() == receipts.size());
  for (size_t i = 0; i < receipts.size(); ++i) CHECK((*events)[i].receipt() == receipts[i]);
  auto next = store->append({"order:0", ""}, kPaid, "after reopen");
  KEEL_REQUIRE_OK(next);
  CHECK(next->sequence == 201);
  CHECK(next->epoch == 2);
  CHECK(next->entity_clock == 30);  // order:0 had 29 events (i % 7 == 0 for 0..199)
  auto verified = store->verify();
  KEEL_REQUIRE_OK(verified);
  CHECK(verified->ok);
}

TEST_CASE("scan honours its bounds and stops when the visitor says so", "[store]") {
  TempDir dir;
  auto store = open_store(dir.path());
  for (int i = 0; i < 20; ++i) KEEL_REQUIRE_OK(store->append({"e", ""}, kPlaced, std::to_string(i)));
  auto middle = store->scan_events(5, 9);
  KEEL_REQUIRE_OK(middle);
  REQUIRE(middle->size() == 5);
  CHECK(middle->front().sequence == 5);
  CHECK(middle->back().sequence == 9);
  auto limited = store->scan_events(1, UINT64_MAX, 3);
  KEEL_REQUIRE_OK(limited);
  CHECK(limited->size() == 3);
  auto empty = store->scan_events(30, 40);
  KEEL_REQUIRE_OK(empty);
  CHECK(empty->empty());
  auto clocks = store->entity_events("e", 0, 18, 100);
  KEEL_REQUIRE_OK(clocks);
  REQUIRE(clocks->size() == 3);
  CHECK(clocks->front().entity_clock == 18);
}

// A scan reads a segment about 1 MiB at a time (log::RecordReader::kChunkBytes): frames cut by a
// chunk's end and frames larger than a chunk (which grow it) come back whole, in scan and verify.
TEST_CASE("scan and verify read frames cut by their read chunks and frames larger than a chunk",
          "[store]") {
  TempDir dir;
  StoreOptions options = create_options();
  options.segment_size = 16ull << 20;
  options.payload_bytes_max = 3u << 20;
  auto store = open_store(dir.path(), options);
  std::vector<std::string> payloads;
  std::mt19937 rng(7);
  for (int i = 0; i < 40; ++i) {
    // Sizes from 3 bytes to 3 MiB, so that frame ends fall at many offsets of a chunk.
    size_t size = i % 7 == 3 ? (1u << 20) + 4096 * i + rng() % 4096 : 3 + rng() % 200'000;
    if (i == 20) size = 3u << 20;
    std::string payload(size, '\0');
    for (size_t j = 0; j < size; ++j) payload[j] = static_cast<char>('a' + (7 * i + j) % 26);
    KEEL_REQUIRE_OK(store->append({"e" + std::to_string(i % 3), ""}, kPlaced, payload));
    payloads.push_back(std::move(payload));
  }
  auto check_scan = [&](Store& s) {
    size_t seen = 0;
    KEEL_REQUIRE_OK(s.scan(1, UINT64_MAX, [&](const EventView& e) {
      REQUIRE(e.sequence == seen + 1);
      CHECK(e.payload == payloads[seen]);
      ++seen;
      return true;
    }));
    CHECK(seen == payloads.size());
    auto report = s.verify();
    KEEL_REQUIRE_OK(report);
    CHECK(report->ok);
    CHECK(report->events_checked == payloads.size());
  };
  check_scan(*store);
  store.reset();
  check_scan(*open_store(dir.path(), options));  // from disk, with a fresh reader
}

TEST_CASE("appends at Written are invisible under AfterDurable until synced", "[store]") {
  TempDir dir;
  auto store = open_store(dir.path());
  AppendOptions written;
  written.durability = Durability::Written;
  auto r = store->append({"e", ""}, kPlaced, "x", written);
  KEEL_REQUIRE_OK(r);
  CHECK(store->read(r->sequence).error().is(ErrorCode::NotFound));
  CHECK(store->get(r->event_id).error().is(ErrorCode::NotFound));
  KEEL_REQUIRE_OK(store->sync());
  KEEL_REQUIRE_OK(store->read(r->sequence));
}

TEST_CASE("appends at Written are visible at once under AfterWrite", "[store]") {
  TempDir dir;
  auto options = create_options();
  options.visibility = VisibilityPolicy::AfterWrite;
  auto store = open_store(dir.path(), options);
  AppendOptions written;
  written.durability = Durability::Written;
  auto r = store->append({"e", ""}, kPlaced, "x", written);
  KEEL_REQUIRE_OK(r);
  KEEL_REQUIRE_OK(store->read(r->sequence));
  AppendOptions accepted;
  accepted.durability = Durability::Accepted;
  auto a = store->append({"e", ""}, kPlaced, "y", accepted);
  KEEL_REQUIRE_OK(a);
  CHECK(store->read(a->sequence).error().is(ErrorCode::NotFound));  // still in the buffer
  KEEL_REQUIRE_OK(store->sync());
  KEEL_REQUIRE_OK(store->read(a->sequence));
}

TEST_CASE("every Domain error of append names what is wrong", "[store]") {
  TempDir dir;
  auto options = create_options();
  options.payload_bytes_max = 100;
  options.metadata_bytes_max = 10;
  options.lanes_max = 2;
  auto store = open_store(dir.path(), options);
  auto expect = [](const Result<Receipt>& r, ErrorCode code, const std::string& needle) {
    REQUIRE(!r.ok());
    INFO(r.error().to_string());
    CHECK(r.error().code() == code);
    CHECK(r.error().error_class() == ErrorClass::Domain);
    CHECK(r.error().message().find(needle) != std::string::npos);
  };
  expect(store->append({"", ""}, kPlaced, "x"), ErrorCode::InvalidCoordinate, "entity");
  expect(store->append({std::string("a\0b", 3), ""}, kPlaced, "x"), ErrorCode::InvalidCoordinate, "NUL");
  expect(store->append({"a\nb", ""}, kPlaced, "x"), ErrorCode::InvalidCoordinate, "control");
  expect(store->append({"../etc", ""}, kPlaced, "x"), ErrorCode::InvalidCoordinate, "traversal");
  expect(store->append({"/abs", ""}, kPlaced, "x"), ErrorCode::InvalidCoordinate, "'/'");
  expect(store->append({std::string(257, 'a'), ""}, kPlaced, "x"), ErrorCode::InvalidCoordinate, "256");
  expect(store->append({"a", "s/../t"}, kPlaced, "x"), ErrorCode::InvalidCoordinate, "scope");
  expect(store->append({"a", ""}, EventKind::make(0, 5), "x"), ErrorCode::InvalidArgument, "category 0");
  AppendOptions lane;
  lane.lane = 2;
  expect(store->append({"a", ""}, kPlaced, "x", lane), ErrorCode::InvalidArgument, "lanes_max 2");
  expect(store->append({"a", ""}, kPlaced, std::string(101, 'x')), ErrorCode::PayloadTooLarge, "101");
  AppendOptions metadata;
  metadata.metadata = std::string(11, 'm');
  expect(store->append({"a", ""}, kPlaced, "x", metadata), ErrorCode::PayloadTooLarge, "metadata");
  AppendOptions key;
  key.idempotency_key = "";
  expect(store->append({"a", ""}, kPlaced, "x", key), ErrorCode::InvalidArgument, "idempotency_key");
  key.idempotency_key = std::string(kIdempotencyKeyBytesMax + 1, 'k');
  expect(store->append({"a", ""}, kPlaced, "x", key), ErrorCode::InvalidArgument, "1025 bytes");
  AppendOptions cause;
  cause.cause_item = 0;
  expect(store->append({"a", ""}, kPlaced, "x", cause), ErrorCode::InvalidArgument, "batch items");
  AppendOptions gate;
  gate.gates.push_back(Gate{"", [](const GateContext&) { return GateVerdict::allow(); }});
  expect(store->append({"a", ""}, kPlaced, "x", gate), ErrorCode::InvalidArgument, "gate");
  // Nothing refused reached the log.
  CHECK(store->stats().sequence_next == 1);
  // A valid coordinate with dots that are not a traversal is fine.
  KEEL_REQUIRE_OK(store->append({"file..name", "a.b"}, kPlaced, "x"));
}

TEST_CASE("batch errors name the item and refuse the whole batch", "[store]") {
  TempDir dir;
  auto options = create_options();
  options.batch_items_max = 3;
  options.batch_bytes_max = 10;
  auto store = open_store(dir.path(), options);
  auto empty = store->append_batch({});
  CHECK(empty.error().is(ErrorCode::InvalidArgument));
  std::vector<BatchItem> bad = {{{"a", ""}, kPlaced, "x", {}}, {{"", ""}, kPlaced, "y", {}}};
  auto refused = store->append_batch(bad);
  REQUIRE(!refused.ok());
  CHECK(refused.error().is(ErrorCode::BatchItemFailed));
  CHECK(refused.error().field_u64("index") == 1u);
  CHECK(refused.error().error_class() == ErrorClass::Domain);  // inherited from the cause
  CHECK(refused.error().cause()->is(ErrorCode::InvalidCoordinate));
  std::vector<BatchItem> many(4, BatchItem{{"a", ""}, kPlaced, "x", {}});
  CHECK(store->append_batch(many).error().is(ErrorCode::InvalidArgument));
  std::vector<BatchItem> heavy = {{{"a", ""}, kPlaced, "0123456789", {}}, {{"a", ""}, kPlaced, "x", {}}};
  CHECK(store->append_batch(heavy).error().is(ErrorCode::PayloadTooLarge));
  CHECK(store->stats().sequence_next == 1);
}

TEST_CASE("reads of missing things are NotFound, and a closed store refuses calls", "[store]") {
  TempDir dir;
  auto store = open_store(dir.path());
  CHECK(store->read(0).error().is(ErrorCode::NotFound));
  CHECK(store->read(1).error().is(ErrorCode::NotFound));
  CHECK(store->get(EventId{1, 2}).error().is(ErrorCode::NotFound));
  KEEL_REQUIRE_OK(store->close());
  CHECK(store->append({"a", ""}, kPlaced, "x").error().is(ErrorCode::InvalidArgument));
  CHECK(store->close().error().is(ErrorCode::InvalidArgument));
}

TEST_CASE("open refuses bad options and a missing directory", "[store]") {
  TempDir dir;
  StoreOptions options;
  auto missing = Store::open(dir / "nope", options);
  CHECK(missing.error().is(ErrorCode::NotFound));
  options.create_if_missing = true;
  options.segment_size = 100;
  CHECK(Store::open(dir / "x", options).error().is(ErrorCode::InvalidArgument));
  options.segment_size = 8192;
  options.lanes_max = 0;
  CHECK(Store::open(dir / "x", options).error().is(ErrorCode::InvalidArgument));
}

AppendOptions written() {
  AppendOptions options;
  options.durability = Durability::Written;
  return options;
}

// The POSIX file system, counting the bytes read through it.
class ReadCountingFileSystem final : public platform::FileSystem {
 public:
  uint64_t bytes_read() const { return bytes_read_.load(); }
  Result<std::unique_ptr<platform::File>> open(const std::string& path,
                                               platform::OpenMode mode) override {
    KEEL_ASSIGN_OR_RETURN(auto file, base_.open(path, mode));
    return std::unique_ptr<platform::File>(new Counted(std::move(file), bytes_read_));
  }
  Status rename(const std::string& from, const std::string& to) override {
    return base_.rename(from, to);
  }
  Status remove(const std::string& path) override { return base_.remove(path); }
  Status remove_directory(const std::string& path) override {
    return base_.remove_directory(path);
  }
  Status sync_directory(const std::string& path) override { return base_.sync_directory(path); }
  Status create_directory(const std::string& path) override {
    return base_.create_directory(path);
  }
  Result<std::vector<std::string>> list_directory(const std::string& path) override {
    return base_.list_directory(path);
  }
  Result<bool> exists(const std::string& path) override { return base_.exists(path); }
  Result<platform::FileKind> file_kind(const std::string& path) override {
    return base_.file_kind(path);
  }
  Result<std::unique_ptr<platform::FileLock>> lock(const std::string& path,
                                                   platform::LockMode mode) override {
    return base_.lock(path, mode);
  }

 private:
  class Counted final : public platform::File {
   public:
    Counted(std::unique_ptr<platform::File> file, std::atomic<uint64_t>& read)
        : file_(std::move(file)), read_(read) {}
    Result<size_t> read_at(uint64_t offset, std::span<std::byte> out) override {
      KEEL_ASSIGN_OR_RETURN(size_t got, file_->read_at(offset, out));
      read_ += got;
      return got;
    }
    Status write_at(uint64_t offset, std::span<const std::byte> data) override {
      return file_->write_at(offset, data);
    }
    Status sync_data() override { return file_->sync_data(); }
    Status truncate(uint64_t size) override { return file_->truncate(size); }
    Status allocate(uint64_t offset, uint64_t length) override {
      return file_->allocate(offset, length);
    }
    Result<uint64_t> size() override { return file_->size(); }
    const std::string& path() const override { return file_->path(); }

   private:
    std::unique_ptr<platform::File> file_;
    std::atomic<uint64_t>& read_;
  };
  platform::FileSystem& base_ = platform::posix_file_system();
  std::atomic<uint64_t> bytes_read_{0};
};

TEST_CASE(
    "a read-only store's refresh reads the log again only when the writer added to it, and "
    "then shows what it added",
    "[store][read-only]") {
  TempDir dir;
  StoreOptions small = create_options();
  small.segment_size = 64 << 10;  // several segments
  auto writer = open_store(dir.path(), small);
  for (int i = 0; i < 2000; ++i) {
    KEEL_REQUIRE_OK(writer->append({"order:" + std::to_string(i % 50), ""}, kPlaced,
                                   std::string(100, 'p'), written()));
  }
  KEEL_REQUIRE_OK(writer->sync());
  ReadCountingFileSystem counting;
  StoreOptions read_only;
  read_only.read_only = true;
  read_only.file_system = &counting;
  auto reader = Store::open(dir.path(), read_only);
  KEEL_REQUIRE_OK(reader);
  // Everything the writer synced (its SYNCED point vouches for its newest frames).
  const uint64_t shown = (*reader)->stats().sequence_visible;
  CHECK(shown == 2000);
  const uint64_t open_read = counting.bytes_read();
  REQUIRE(open_read > 200'000);  // the open read the log
  // Nothing new: each refresh reads EPOCH (40 bytes), SYNCED (56) and a frame header (40), not
  // the log.
  for (int i = 0; i < 10; ++i) {
    const uint64_t before = counting.bytes_read();
    KEEL_REQUIRE_OK((*reader)->refresh());
    CHECK(counting.bytes_read() - before <= 136);
    CHECK((*reader)->stats().sequence_visible == shown);
  }
  // The writer appends (Durable): the next refresh reads again and shows it.
  KEEL_REQUIRE_OK(writer->append({"order:1", ""}, kPlaced, "late"));
  KEEL_REQUIRE_OK(writer->append({"order:1", ""}, kPlaced, "later"));
  uint64_t before = counting.bytes_read();
  KEEL_REQUIRE_OK((*reader)->refresh());
  // It reads on from where the open ended: the last segment (64 KiB), not the whole log.
  CHECK(counting.bytes_read() - before > 136);
  CHECK(counting.bytes_read() - before < open_read / 2);
  CHECK((*reader)->stats().sequence_visible == 2002);
  // The writer goes away: everything it wrote is shown.
  KEEL_REQUIRE_OK(writer->close());
  KEEL_REQUIRE_OK((*reader)->refresh());
  CHECK((*reader)->stats().sequence_visible == 2002);
  before = counting.bytes_read();
  KEEL_REQUIRE_OK((*reader)->refresh());
  CHECK(counting.bytes_read() - before <= 136);
  // A new segment (rotation) reloads too.
  auto again = open_store(dir.path(), small);
  for (int i = 0; i < 1000; ++i) {
    KEEL_REQUIRE_OK(again->append({"order:2", ""}, kPlaced, std::string(100, 'q'), written()));
  }
  KEEL_REQUIRE_OK(again->sync());
  KEEL_REQUIRE_OK((*reader)->refresh());
  CHECK((*reader)->stats().sequence_visible == 3002);
}

// What a reader shows, for comparing two readers: its visible prefix, the retained floor, every
// event it scans (with payloads) and a few index answers (an entity stream, a kind).
struct ReaderView {
  uint64_t visible = 0;
  uint64_t first_retained = 0;
  uint64_t hidden = 0;
  std::vector<Event> events;
  std::vector<uint64_t> stream;
  std::vector<uint64_t> kind;
  friend bool operator==(const ReaderView&, const ReaderView&) = default;
};

// Up to sequence `to` (all it shows when UINT64_MAX).
ReaderView view_of(Store& reader, uint64_t to = UINT64_MAX) {
  ReaderView view;
  StoreStats stats = reader.stats();
  view.visible = std::min(stats.sequence_visible, to);
  view.first_retained = stats.first_retained_sequence;
  view.hidden = to == UINT64_MAX ? stats.hidden_events : 0;
  if (view.visible < view.first_retained) return view;
  auto events = reader.scan_events(view.first_retained, to);
  KEEL_REQUIRE_OK(events);
  view.events = std::move(*events);
  for (Query q : {Query{}, Query{}}) {
    std::vector<uint64_t>& out = view.stream.empty() ? view.stream : view.kind;
    if (&out == &view.stream) {
      q.entity = "order:3";
    } else {
      q.kind = EventKind::make(1, 2);
    }
    q.limit = kQueryLimitMax;
    q.after = view.first_retained - 1;
    q.sequence_to = to;
    auto page = reader.query(q);
    KEEL_REQUIRE_OK(page);
    for (const Event& e : page->events) out.push_back(e.sequence);
    if (out.empty()) out.push_back(0);  // marks it filled
  }
  return view;
}

TEST_CASE(
    "a read-only store that follows a writer with refresh shows what a fresh read-only open "
    "shows, through rotations, fences, retention and a new writer",
    "[store][read-only]") {
  TempDir dir;
  StoreOptions small = create_options();
  small.segment_size = 16 << 10;  // rotations every ~100 events
  StoreOptions read_only;
  read_only.read_only = true;
  std::mt19937_64 random(GENERATE(1u, 2u, 3u));
  auto writer = open_store(dir.path(), small);
  KEEL_REQUIRE_OK(writer->append({"order:0", ""}, kPlaced, "first"));
  auto follower = Store::open(dir.path(), read_only);
  KEEL_REQUIRE_OK(follower);
  uint64_t last_shown = 0;
  std::unique_ptr<Fence> open_fence;  // left open across a refresh, ended in the next round
  for (int round = 0; round < 60; ++round) {
    const int action = static_cast<int>(random() % 11);
    if (open_fence) {
      KEEL_REQUIRE_OK(random() % 2 == 0 ? open_fence->commit() : open_fence->cancel());
      open_fence.reset();
    }
    if (action == 10) {
      auto fence = writer->begin_fence();
      KEEL_REQUIRE_OK(fence);
      open_fence = std::move(*fence);
      KEEL_REQUIRE_OK(open_fence->append({"order:3", ""}, kPlaced, "fenced, open"));
      KEEL_REQUIRE_OK(open_fence->append({"order:4", ""}, kPlaced, "fenced, open"));
    } else if (action < 5) {  // appends, some Durable (a frame vouching for the ones before)
      const int n = 1 + static_cast<int>(random() % 40);
      for (int i = 0; i < n; ++i) {
        AppendOptions options = random() % 4 == 0 ? AppendOptions{} : written();
        KEEL_REQUIRE_OK(writer->append({"order:" + std::to_string(random() % 5), ""},
                                       EventKind::make(1, 1 + random() % 2),
                                       std::string(1 + random() % 150, 'x'), options));
      }
    } else if (action < 7) {  // a fence, committed or cancelled
      auto fence = writer->begin_fence();
      KEEL_REQUIRE_OK(fence);
      for (int i = 0; i < 3; ++i) {
        KEEL_REQUIRE_OK((*fence)->append({"order:3", ""}, kPlaced, "fenced"));
      }
      if (random() % 2 == 0) {
        KEEL_REQUIRE_OK((*fence)->commit());
      } else {
        KEEL_REQUIRE_OK((*fence)->cancel());
      }
    } else if (action == 7) {  // retention
      const uint64_t durable = writer->stats().sequence_durable;
      if (durable > 50) {
        auto retained = retain_from(*writer, durable - 40);
        // Refused when no index image can be cut there (the durable prefix ends in a fence).
        if (!retained.ok()) REQUIRE(retained.error().is(ErrorCode::InvalidArgument));
      }
    } else if (action == 8) {  // a new writer (a new epoch)
      KEEL_REQUIRE_OK(writer->close());
      writer = open_store(dir.path(), small);
    } else {
      KEEL_REQUIRE_OK(writer->sync());
    }
    KEEL_REQUIRE_OK((*follower)->refresh());
    auto fresh = Store::open(dir.path(), read_only);
    KEEL_REQUIRE_OK(fresh);
    INFO("round " << round << ", action " << action);
    // The follower shows a durable prefix, the one its frames and SYNCED vouch for; a fresh open
    // may know a longer one (an index image cut since at a later durable point). Up to the
    // follower's, both show the same.
    const uint64_t shown = (*follower)->stats().sequence_visible;
    REQUIRE(shown >= last_shown);  // visible never moves back
    REQUIRE(shown <= writer->stats().sequence_durable);
    last_shown = shown;
    REQUIRE(shown <= (*fresh)->stats().sequence_visible);
    REQUIRE(view_of(**follower, shown) == view_of(**fresh, shown));
  }
  // Everything synced: then both show the same, whole.
  if (open_fence) KEEL_REQUIRE_OK(open_fence->commit());
  KEEL_REQUIRE_OK(writer->sync());
  KEEL_REQUIRE_OK((*follower)->refresh());
  auto fresh = Store::open(dir.path(), read_only);
  KEEL_REQUIRE_OK(fresh);
  CHECK((*follower)->stats().sequence_visible == writer->stats().sequence_visible);
  CHECK(view_of(**follower) == view_of(**fresh));
}

TEST_CASE("a second writable open is StoreLocked, a read-only open works beside the writer",
          "[store]") {
  TempDir dir;
  auto store = open_store(dir.path());
  KEEL_REQUIRE_OK(store->append({"a", ""}, kPlaced, "1"));
  KEEL_REQUIRE_OK(store->append({"a", ""}, kPlaced, "2"));
  auto second = Store::open(dir.path(), create_options());
  REQUIRE(!second.ok());
  CHECK(second.error().is(ErrorCode::StoreLocked));
  CHECK(second.error().message().find(dir.path()) != std::string::npos);
  CHECK(second.error().message().find("writable") != std::string::npos);
  StoreOptions read_only;
  read_only.read_only = true;
  auto reader = Store::open(dir.path(), read_only);
  KEEL_REQUIRE_OK(reader);
  // Beside a live writer a reader sees its durable prefix: both Durable appends.
  CHECK((*reader)->stats().sequence_visible == 2);
  KEEL_REQUIRE_OK(store->append({"a", ""}, kPlaced, "3"));
  KEEL_REQUIRE_OK((*reader)->refresh());
  CHECK((*reader)->stats().sequence_visible == 3);
  CHECK((*reader)->append({"a", ""}, kPlaced, "x").error().is(ErrorCode::ReadOnlyStore));
  KEEL_REQUIRE_OK(store->close());
  KEEL_REQUIRE_OK((*reader)->refresh());
  CHECK((*reader)->stats().sequence_visible == 3);  // no writer: everything recovered
  auto events = (*reader)->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(events);
  CHECK(events->size() == 3);
}

TEST_CASE(
    "a read-only store beside a live writer shows the writer's newest group once it is synced "
    "(SYNCED), never a group not yet synced, and trusts SYNCED only from the live epoch",
    "[store][read-only]") {
  TempDir dir;
  StoreOptions lazy = create_options();
  lazy.sync_interval = std::chrono::hours(1);  // nothing syncs but the test's sync()
  lazy.sync_bytes = 1ull << 30;
  auto writer = open_store(dir.path(), lazy);
  for (int i = 0; i < 3; ++i) KEEL_REQUIRE_OK(writer->append({"a", ""}, kPlaced, "w", written()));
  StoreOptions read_only;
  read_only.read_only = true;
  auto reader = Store::open(dir.path(), read_only);
  KEEL_REQUIRE_OK(reader);
  CHECK((*reader)->stats().sequence_visible == 0);  // written, not synced: not shown
  // Synced, and no later frame: only SYNCED says so.
  KEEL_REQUIRE_OK(writer->sync());
  KEEL_REQUIRE_OK((*reader)->refresh());
  CHECK((*reader)->stats().sequence_visible == 3);
  for (int i = 0; i < 2; ++i) KEEL_REQUIRE_OK(writer->append({"a", ""}, kPlaced, "w", written()));
  KEEL_REQUIRE_OK((*reader)->refresh());
  CHECK((*reader)->stats().sequence_visible == 3);  // events 4 and 5 are not synced yet

  // SYNCED from another epoch (a writer before this one) is not believed, whatever it claims;
  // a damaged one neither. The same claim from the live epoch is (the control: without the epoch
  // check the stale claim would show the unsynced events).
  const std::string synced_path = dir.path() + "/" + format::kSyncedPointFileName;
  const log::SyncedPoint lie{writer->epoch(), 1, 1ull << 20};
  log::SyncedPoint stale = lie;
  stale.epoch -= 1;
  test::write_bytes(synced_path, 0, log::encode_synced_point(stale));
  auto fresh = Store::open(dir.path(), read_only);
  KEEL_REQUIRE_OK(fresh);
  CHECK((*fresh)->stats().sequence_visible == 3);
  KEEL_REQUIRE_OK((*reader)->refresh());
  CHECK((*reader)->stats().sequence_visible == 3);
  std::vector<std::byte> damaged = log::encode_synced_point(lie);
  damaged.back() ^= std::byte{1};
  test::write_bytes(synced_path, 0, damaged);
  fresh = Store::open(dir.path(), read_only);
  KEEL_REQUIRE_OK(fresh);
  CHECK((*fresh)->stats().sequence_visible == 3);
  test::write_bytes(synced_path, 0, log::encode_synced_point(lie));
  fresh = Store::open(dir.path(), read_only);
  KEEL_REQUIRE_OK(fresh);
  CHECK((*fresh)->stats().sequence_visible == 5);

  // The writer's next sync writes the truth again; its close leaves no live writer (then every
  // recovered event shows, SYNCED or not), and a writable open never reads SYNCED.
  KEEL_REQUIRE_OK(writer->sync());
  CHECK(log::read_synced_point(platform::posix_file_system(), dir.path())->value().offset <
        lie.offset);
  KEEL_REQUIRE_OK(writer->close());
  test::write_bytes(synced_path, 0, std::vector<std::byte>(100, std::byte{0xee}));
  writer = open_store(dir.path(), lazy);
  CHECK(writer->stats().sequence_visible == 5);
  // ... and rewrites it whole (a longer leftover cut), so followers of the new epoch believe it.
  KEEL_REQUIRE_OK(writer->append({"a", ""}, kPlaced, "w", written()));
  KEEL_REQUIRE_OK(writer->sync());
  KEEL_REQUIRE_OK((*reader)->refresh());
  CHECK((*reader)->stats().sequence_visible == 6);
}

TEST_CASE("verify reports the first broken chain link precisely", "[store]") {
  TempDir dir;
  {
    auto store = open_store(dir.path());
    for (int i = 0; i < 5; ++i) KEEL_REQUIRE_OK(store->append({"a", ""}, kPlaced, "p" + std::to_string(i)));
    KEEL_REQUIRE_OK(store->close());
  }
  auto store = open_store(dir.path());
  auto ok = store->verify();
  KEEL_REQUIRE_OK(ok);
  CHECK(ok->ok);
  CHECK(ok->events_checked == 5);
}

// ---- verify finds breaks that checksums cannot: frames written consistently, chains wrong ----


namespace {

// Appends to (entity "a", lane 0) through the log layer, bypassing the store's chaining, with the
// given clock and prev hash.
void append_raw(const std::string& dir, uint64_t clock, std::optional<Hash128> prev) {
  log::LogOptions options;
  auto log = log::Log::open(platform::posix_file_system(), dir, options);
  KEEL_REQUIRE_OK(log);
  format::EventBody e;
  e.event_id = EventId{UINT64_MAX - 10 + clock, 1};  // above every id the store made
  e.entity = "a";
  e.kind = kPlaced.value;
  e.entity_clock = clock;
  e.correlation_id = e.event_id;
  e.payload = "raw";
  e.prev_hash = prev;
  KEEL_REQUIRE_OK((*log)->writer()->append_event(e, nullptr));
  KEEL_REQUIRE_OK((*log)->close());
}

}  // namespace

TEST_CASE("verify reports a prev hash that does not chain, naming entity, lane and clock",
          "[store]") {
  TempDir dir;
  Receipt first;
  {
    auto store = open_store(dir.path());
    first = *store->append({"a", ""}, kPlaced, "one");
    KEEL_REQUIRE_OK(store->append({"b", ""}, kPlaced, "other"));
    KEEL_REQUIRE_OK(store->close());
  }
  append_raw(dir.path(), 2, Hash128{first.chained_hash.high, first.chained_hash.low ^ 1});
  auto store = open_store(dir.path());
  auto report = store->verify();
  KEEL_REQUIRE_OK(report);
  CHECK_FALSE(report->ok);
  CHECK(report->first_bad_sequence == 3);
  INFO(report->problem);
  CHECK(report->problem.find("prev hash of a lane 0 clock 2") != std::string::npos);
  CHECK(report->problem.find(first.chained_hash.to_hex()) != std::string::npos);
}

TEST_CASE("verify reports a first event that names a previous hash", "[store]") {
  TempDir dir;
  { auto store = open_store(dir.path()); KEEL_REQUIRE_OK(store->close()); }
  append_raw(dir.path(), 1, Hash128{1, 2});
  auto store = open_store(dir.path());
  auto report = store->verify();
  KEEL_REQUIRE_OK(report);
  CHECK_FALSE(report->ok);
  CHECK(report->first_bad_sequence == 1);
  CHECK(report->problem.find("first event of a lane 0 clock 1 names a previous hash") !=
        std::string::npos);
}

TEST_CASE("verify names the last good sequence and the offset of a frame that does not read back",
          "[store]") {
  TempDir dir;
  {
    auto store = open_store(dir.path());
    for (int i = 0; i < 5; ++i) KEEL_REQUIRE_OK(store->append({"a", ""}, kPlaced, "x"));
    KEEL_REQUIRE_OK(store->close());  // the index image covers all five: the open reads none
  }
  std::string path = dir / log::segment_file_name(1);
  auto bytes = test::read_bytes(path);
  uint64_t at = format::kSegmentHeaderSize;
  format::DecodedFrame frame;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(format::decode_frame(std::span(bytes).subspan(at), 1, frame) == format::FrameDecode::Ok);
    if (i < 2) at += frame.size;
  }
  // Event 3's body: a bad checksum.
  test::flip_byte(path, static_cast<uint64_t>(frame.body.data() - bytes.data()) + 2);
  StoreOptions options = create_options();
  options.read_only = true;
  auto store = open_store(dir.path(), options);
  auto report = store->verify();
  KEEL_REQUIRE_OK(report);
  CHECK_FALSE(report->ok);
  CHECK(report->first_bad_sequence == 3);
  INFO(report->problem);
  CHECK(report->problem.find("after sequence 2 (the last good one)") != std::string::npos);
  CHECK(report->problem.find("offset " + std::to_string(at)) != std::string::npos);
  CHECK(report->problem.find(log::segment_file_name(1)) != std::string::npos);
}

TEST_CASE(
    "scan_events with limit 0, reversed ranges and entity_stream outside lanes_max are "
    "InvalidArgument",
    "[store]") {
  TempDir dir;
  auto store = open_store(dir.path());
  for (int i = 0; i < 3; ++i) KEEL_REQUIRE_OK(store->append({"a", ""}, kPlaced, "x"));
  auto none = store->scan_events(1, UINT64_MAX, 0);
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().is(ErrorCode::InvalidArgument));
  CHECK(none.error().field_string("argument") == "limit");
  auto one = store->scan_events(1, UINT64_MAX, 1);
  KEEL_REQUIRE_OK(one);
  CHECK(one->size() == 1);
  auto visit = [](const EventView&) { return true; };
  Status lane = store->entity_stream("a", create_options().lanes_max, 1, UINT64_MAX, visit);
  REQUIRE_FALSE(lane.ok());
  CHECK(lane.error().is(ErrorCode::InvalidArgument));
  CHECK(lane.error().field_string("argument") == "lane");
  Status reversed = store->entity_stream("a", 0, 3, 2, visit);
  REQUIRE_FALSE(reversed.ok());
  CHECK(reversed.error().is(ErrorCode::InvalidArgument));
  // A reversed sequence range is the caller's mistake, not an empty answer; a range past the end
  // is an empty answer.
  Status backwards = store->scan(3, 2, visit);
  REQUIRE_FALSE(backwards.ok());
  CHECK(backwards.error().is(ErrorCode::InvalidArgument));
  CHECK(backwards.error().field_string("argument") == "from");
  CHECK_THAT(backwards.error().message(), Catch::Contains("3 to 2 is reversed"));
  auto backwards_events = store->scan_events(2, 1);
  REQUIRE_FALSE(backwards_events.ok());
  CHECK(backwards_events.error().is(ErrorCode::InvalidArgument));
  auto past_end = store->scan_events(4, 10);
  KEEL_REQUIRE_OK(past_end);
  CHECK(past_end->empty());
  KEEL_REQUIRE_OK(store->scan(2, 2, visit));
}

TEST_CASE("verify reports a chained hash that does not match its bytes", "[store]") {
  TempDir dir;
  {
    auto store = open_store(dir.path());
    for (int i = 0; i < 3; ++i) KEEL_REQUIRE_OK(store->append({"a", ""}, kPlaced, "x"));
    KEEL_REQUIRE_OK(store->close());
  }
  // Change the stored chained hash of event 2 and re-seal its frame's checksum, so only the chain
  // check can notice.
  std::string path = dir / log::segment_file_name(1);
  auto bytes = test::read_bytes(path);
  uint64_t at = format::kSegmentHeaderSize;
  format::DecodedFrame frame;
  for (int i = 0; i < 2; ++i) {
    REQUIRE(format::decode_frame(std::span(bytes).subspan(at), 1, frame) == format::FrameDecode::Ok);
    if (i == 0) at += frame.size;
  }
  const uint64_t body_end =
      static_cast<uint64_t>(frame.body.data() - bytes.data()) + frame.body.size();
  bytes[body_end - 1] ^= std::byte{0x40};  // the last byte of the chained hash
  uint64_t sum = format::checksum64(
      std::span<const std::byte>(bytes).subspan(at + 8, body_end - at - 8), 1);
  format::store_u64(bytes.data() + at, sum);
  test::write_bytes(path, 0, bytes);
  auto store = open_store(dir.path());
  auto report = store->verify();
  KEEL_REQUIRE_OK(report);
  CHECK_FALSE(report->ok);
  CHECK(report->first_bad_sequence == 2);
  CHECK(report->problem.find("chained hash of a lane 0 clock 2 does not match its bytes") !=
        std::string::npos);
}

TEST_CASE("another process opening the store for writing gets StoreLocked", "[store]") {
  TempDir dir;
  auto store = open_store(dir.path());
  KEEL_REQUIRE_OK(store->append({"a", ""}, kPlaced, "x"));
  std::string command = std::string(KEEL_CLI) + " append " + dir.path() + " a 1 2>" +
                        (dir / "err.txt") + " >/dev/null";
  int status = std::system(command.c_str());
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  std::string err(reinterpret_cast<const char*>(test::read_bytes(dir / "err.txt").data()),
                  test::read_bytes(dir / "err.txt").size());
  CHECK(err.find("StoreLocked") != std::string::npos);
  CHECK(err.find(dir.path()) != std::string::npos);
  // A read-only process beside the writer works.
  std::string reader = std::string(KEEL_CLI) + " scan " + dir.path() + " >/dev/null 2>&1";
  CHECK(std::system(reader.c_str()) == 0);
  KEEL_REQUIRE_OK(store->close());
  CHECK(std::system(command.c_str()) == 0);  // the lock went with the writer
}

TEST_CASE("a read-only open right after a rotation sees every event of the sealed segments",
          "[store]") {
  // Regression (found by the concurrency test under CI load): the new segment held no frame yet,
  // and the prefix computation used the previous segment's durable_through claims, hiding that
  // sealed (so synced) segment's unvouched last events.
  TempDir dir;
  { auto store = open_store(dir.path()); KEEL_REQUIRE_OK(store->close()); }
  log::LogOptions options;
  options.writer.segment_size = 8192;
  auto log = log::Log::open(platform::posix_file_system(), dir.path(), options);
  KEEL_REQUIRE_OK(log);
  log::SegmentWriter& writer = *(*log)->writer();
  std::string payload(100, 'x');
  uint64_t clock = 0;
  auto event = [&]() {
    format::EventBody e;
    ++clock;
    e.event_id = EventId{clock, 1};
    e.entity = "a";
    e.kind = kPlaced.value;
    e.entity_clock = clock;
    e.correlation_id = e.event_id;
    e.payload = payload;
    return e;
  };
  // Event 1 synced (vouched for by the frames after it), then written-not-synced events until the
  // next append rotates: the seal's sync makes them durable, but no frame says so.
  KEEL_REQUIRE_OK(writer.append_event(event(), nullptr));
  KEEL_REQUIRE_OK(writer.sync());
  while (true) {
    KEEL_REQUIRE_OK(writer.append_event(event(), nullptr));
    if (writer.active_segment_id() != 1) break;  // this one went to segment 2, still buffered
    KEEL_REQUIRE_OK(writer.flush());
  }
  REQUIRE(writer.pending_bytes() > 0);
  StoreOptions read_only;
  read_only.read_only = true;
  auto reader = Store::open(dir.path(), read_only);  // beside the live writer
  KEEL_REQUIRE_OK(reader);
  CHECK((*reader)->stats().sequence_visible == clock - 1);
}

// With a fixed id seed (tests), each later writable open still draws other ids: a crash can take
// back events whose ids a reopen in the same millisecond would otherwise issue again.
TEST_CASE("a fixed id seed gives each writable open its own ids", "[store]") {
  TempDir dir;
  auto options = create_options();
  options.id_seed = 5;
  std::vector<uint64_t> random_parts;
  for (int open = 0; open < 3; ++open) {
    auto store = open_store(dir.path(), options);
    auto receipt = store->append({"a", ""}, kPlaced, "x");
    KEEL_REQUIRE_OK(receipt);
    random_parts.push_back(receipt->event_id.low);
    KEEL_REQUIRE_OK(store->close());
  }
  CHECK(random_parts[0] != random_parts[1]);
  CHECK(random_parts[1] != random_parts[2]);
  CHECK(random_parts[0] != random_parts[2]);
}

// entity_stream reads its frames in batches (a window of 128 events, one read_batch each): the
// events must be exactly what point reads give, in clock order, for payloads shorter and longer
// than a batch's first read (512 bytes), across segments, windows and early stops.
TEST_CASE("entity_stream in batches gives what point reads give, across windows and segments",
          "[store]") {
  TempDir dir;
  StoreOptions options = create_options();
  options.segment_size = 1 << 20;
  auto store = open_store(dir.path(), options);
  std::mt19937_64 rng(7);
  const size_t sizes[] = {0, 10, 300, 480, 511, 600, 5000, 70000};
  std::vector<uint64_t> mine;  // sequences of entity "a"
  AppendOptions written;
  written.durability = Durability::Written;
  for (int i = 0; i < 700; ++i) {
    const bool a = rng() % 3 == 0;
    std::string payload(sizes[rng() % std::size(sizes)], static_cast<char>('a' + i % 26));
    if (rng() % 5 == 0) {  // a batch: entity "a" twice in one frame, among others
      std::vector<BatchItem> batch(3);
      batch[0] = {{"a", ""}, kPlaced, payload, {}};
      batch[1] = {{"b", ""}, kPlaced, "x", {}};
      batch[2] = {{"a", ""}, kPaid, payload + "!", {}};
      auto receipts = store->append_batch(batch);
      KEEL_REQUIRE_OK(receipts);
      mine.push_back((*receipts)[0].sequence);
      mine.push_back((*receipts)[2].sequence);
      continue;
    }
    auto receipt = store->append({a ? "a" : "other", ""}, kPlaced, payload, written);
    KEEL_REQUIRE_OK(receipt);
    if (a) mine.push_back(receipt->sequence);
  }
  KEEL_REQUIRE_OK(store->sync());
  REQUIRE(mine.size() > 300);  // more than two windows
  REQUIRE(store->stats().segments > 3);
  for (bool reopened : {false, true}) {
    if (reopened) {
      KEEL_REQUIRE_OK(store->close());
      store = open_store(dir.path(), options);
    }
    INFO((reopened ? "after reopen" : "while writing"));
    std::vector<Event> streamed;
    KEEL_REQUIRE_OK(store->entity_stream("a", 0, 1, UINT64_MAX, [&](const EventView& e) {
      streamed.push_back(Event::from_view(e));
      return true;
    }));
    REQUIRE(streamed.size() == mine.size());
    for (size_t i = 0; i < mine.size(); ++i) {
      auto point = store->read(mine[i]);
      KEEL_REQUIRE_OK(point);
      CHECK(streamed[i] == *point);
      CHECK(streamed[i].entity_clock == i + 1);
    }
    // Early stops, inside the first window and in a later one; a range starting mid-window.
    for (size_t stop : {size_t{1}, size_t{5}, size_t{200}}) {
      size_t seen = 0;
      KEEL_REQUIRE_OK(store->entity_stream("a", 0, 1, UINT64_MAX,
                                           [&](const EventView&) { return ++seen < stop; }));
      CHECK(seen == stop);
    }
    std::vector<uint64_t> clocks;
    KEEL_REQUIRE_OK(store->entity_stream("a", 0, 100, 250, [&](const EventView& e) {
      clocks.push_back(e.entity_clock);
      return true;
    }));
    REQUIRE(clocks.size() == 151);
    CHECK(clocks.front() == 100);
    CHECK(clocks.back() == 250);
  }
}
