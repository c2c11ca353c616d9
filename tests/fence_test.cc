// Visibility fences (issue #6, docs/ARCHITECTURE.md §7, class Fence in include/keel/store.h):
// fenced appends are written but invisible to every read until commit(); CAS, gates and idempotency
// see them; every other append fails fast while the fence is open; commit() publishes them all at
// once; cancel(), dropping the handle, closing the store or a crash hides them for good, with every
// touched head reverted and their idempotency keys released. The crash tests run on the
// FaultFileSystem: a crash with the fence open (and a negative control that skips the fence
// records), a crash at each step of commit (all visible or none), and the periodic index image,
// which must never be cut inside a fence.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "format/format_constants.h"
#include "keel/keel.h"
#include "log/poisoned_logs.h"
#include "platform/fault_file_system.h"
#include "test_support.h"

using namespace keel;
using platform::FaultFileSystem;
using platform::FaultOp;

namespace {

const std::string kDir = "/store";
const EventKind kKind = EventKind::make(1, 1);

StoreOptions options_on(FaultFileSystem& fs) {
  StoreOptions options;
  options.file_system = &fs;
  options.create_if_missing = true;
  options.segment_size = 8192;  // fences span rotations in the longer runs
  options.id_seed = 61;
  return options;
}

std::unique_ptr<Store> open_on(const StoreOptions& options) {
  auto opened = Store::open(kDir, options);
  if (!opened.ok()) FAIL("open: " << opened.error().to_string());
  return std::move(opened).value();
}

std::unique_ptr<Fence> begin(Store& store) {
  auto fence = store.begin_fence();
  if (!fence.ok()) FAIL("begin_fence: " << fence.error().to_string());
  return std::move(fence).value();
}

AppendOptions on_lane(uint32_t lane, Durability durability = Durability::Durable) {
  AppendOptions options;
  options.lane = lane;
  options.durability = durability;
  return options;
}

// An appended event and where reads would look for it.
struct Written {
  Receipt receipt;
  Coordinate coordinate;
  uint32_t lane = 0;
  EventId correlation;
  std::optional<EventId> cause;
};

Written written(const Receipt& receipt, const Coordinate& coordinate,
                const AppendOptions& options) {
  return Written{receipt, coordinate, options.lane,
                 options.correlation_id.value_or(receipt.event_id), options.causation_id};
}

Written append_through(Fence& fence, const Coordinate& coordinate, std::string_view payload,
                       const AppendOptions& options = {}) {
  auto receipt = fence.append(coordinate, kKind, payload, options);
  if (!receipt.ok()) FAIL("fenced append: " << receipt.error().to_string());
  return written(*receipt, coordinate, options);
}

Receipt append_ok(Store& store, const Coordinate& coordinate, std::string_view payload,
                  const AppendOptions& options = {}) {
  auto receipt = store.append(coordinate, kKind, payload, options);
  if (!receipt.ok()) FAIL("append: " << receipt.error().to_string());
  return *receipt;
}

std::set<uint64_t> visible_sequences(Store& store) {
  std::set<uint64_t> out;
  KEEL_REQUIRE_OK(store.scan(1, UINT64_MAX, [&](const EventView& view) {
    out.insert(view.sequence);
    return true;
  }));
  return out;
}

bool has_sequence(const std::vector<Event>& events, uint64_t sequence) {
  return std::any_of(events.begin(), events.end(),
                     [&](const Event& e) { return e.sequence == sequence; });
}
bool has_sequence(const std::vector<EventRef>& refs, uint64_t sequence) {
  return std::any_of(refs.begin(), refs.end(),
                     [&](const EventRef& e) { return e.sequence == sequence; });
}

std::vector<Event> query_all(Store& store, Query query) {
  query.limit = 10'000;
  auto page = store.query(query);
  if (!page.ok()) FAIL("query: " << page.error().to_string());
  return page->events;
}

// No read of any kind shows `w` (the frontier is checked by the callers: after a cancel, visible
// may pass the hidden sequences).
void check_hidden(Store& store, const Written& w) {
  const uint64_t seq = w.receipt.sequence;
  INFO("hidden event: sequence " << seq << ", " << w.coordinate.entity << " lane " << w.lane);
  auto by_sequence = store.read(seq);
  CHECK((!by_sequence.ok() && by_sequence.error().is(ErrorCode::NotFound)));
  auto by_id = store.get(w.receipt.event_id);
  CHECK((!by_id.ok() && by_id.error().is(ErrorCode::NotFound)));
  CHECK(visible_sequences(store).count(seq) == 0);
  auto scanned = store.scan_events(seq, seq);
  KEEL_REQUIRE_OK(scanned);
  CHECK(scanned->empty());
  auto stream = store.entity_events(w.coordinate.entity, w.lane);
  KEEL_REQUIRE_OK(stream);
  CHECK(!has_sequence(*stream, seq));
  for (size_t i = 0; i < stream->size(); ++i) CHECK((*stream)[i].entity_clock == i + 1);
  bool streamed = false;
  KEEL_REQUIRE_OK(
      store.entity_stream(w.coordinate.entity, w.lane, 1, UINT64_MAX, [&](const EventView& v) {
        streamed |= v.sequence == seq;
        return true;
      }));
  CHECK(!streamed);
  Query by_entity;
  by_entity.entity = w.coordinate.entity;
  by_entity.lane = w.lane;
  CHECK(!has_sequence(query_all(store, by_entity), seq));
  CHECK(!has_sequence(query_all(store, Query{}), seq));
  Query by_correlation;
  by_correlation.correlation_id = w.correlation;
  CHECK(!has_sequence(query_all(store, by_correlation), seq));
  auto up = store.ancestors(w.receipt.event_id);
  CHECK((!up.ok() && up.error().is(ErrorCode::NotFound)));
  auto down = store.descendants(w.receipt.event_id);
  CHECK((!down.ok() || down->events.empty()));
  if (w.cause) {
    auto effects = store.descendants(*w.cause);
    if (effects.ok()) CHECK(!has_sequence(effects->events, seq));
  }
  auto graph = store.correlation_graph(w.correlation);
  KEEL_REQUIRE_OK(graph);
  CHECK(!has_sequence(graph->nodes, seq));
  for (const CausalEdge& edge : graph->edges) CHECK(edge.effect != w.receipt.event_id);
}

// Every read shows `w`, as its receipt said.
void check_visible(Store& store, const Written& w) {
  const uint64_t seq = w.receipt.sequence;
  INFO("visible event: sequence " << seq << ", " << w.coordinate.entity << " lane " << w.lane);
  auto by_sequence = store.read(seq);
  REQUIRE(by_sequence.ok());
  CHECK(by_sequence->receipt() == w.receipt);
  auto by_id = store.get(w.receipt.event_id);
  REQUIRE(by_id.ok());
  CHECK(by_id->sequence == seq);
  auto stream = store.entity_events(w.coordinate.entity, w.lane);
  KEEL_REQUIRE_OK(stream);
  CHECK(has_sequence(*stream, seq));
  Query by_entity;
  by_entity.entity = w.coordinate.entity;
  by_entity.lane = w.lane;
  CHECK(has_sequence(query_all(store, by_entity), seq));
  Query by_correlation;
  by_correlation.correlation_id = w.correlation;
  CHECK(has_sequence(query_all(store, by_correlation), seq));
  auto up = store.ancestors(w.receipt.event_id);
  KEEL_REQUIRE_OK(up);
  REQUIRE(!up->chain.empty());
  CHECK(up->chain[0].sequence == seq);
  if (w.cause) {
    auto effects = store.descendants(*w.cause);
    KEEL_REQUIRE_OK(effects);
    CHECK(has_sequence(effects->events, seq));
  }
  auto graph = store.correlation_graph(w.correlation);
  KEEL_REQUIRE_OK(graph);
  CHECK(has_sequence(graph->nodes, seq));
}

// The next unfenced append to (entity, lane) continues from `head` (nullopt: the stream has no
// visible event): its clock follows head's, and the event read back chains to head's hash.
void check_next_chains_to(Store& store, const Coordinate& coordinate, uint32_t lane,
                          const std::optional<Receipt>& head) {
  INFO("next append on " << coordinate.entity << " lane " << lane);
  Receipt next = append_ok(store, coordinate, "next", on_lane(lane));
  CHECK(next.entity_clock == (head ? head->entity_clock + 1 : 1));
  auto event = store.read(next.sequence);
  KEEL_REQUIRE_OK(event);
  if (head) {
    REQUIRE(event->prev_hash.has_value());
    CHECK(*event->prev_hash == head->chained_hash);
  } else {
    CHECK(!event->prev_hash.has_value());
  }
}

void check_verifies(Store& store) {
  auto report = store.verify();
  KEEL_REQUIRE_OK(report);
  INFO(report->problem);
  CHECK(report->ok);
}

void check_not_active(const StoreError& error) {
  INFO(error.to_string());
  CHECK(error.is(ErrorCode::FenceNotActive));
}

void check_fence_active(const StoreError& error, uint64_t fence_id) {
  INFO(error.to_string());
  CHECK(error.is(ErrorCode::VisibilityFenceActive));
  CHECK(error.error_class() == ErrorClass::Retryable);
  CHECK(error.field_u64("fence") == fence_id);
}

// Every method of a committed or cancelled fence is FenceNotActive.
void check_handle_dead(Fence& fence) {
  auto appended = fence.append({"dead", ""}, kKind, "x");
  REQUIRE(!appended.ok());
  check_not_active(appended.error());
  std::vector<BatchItem> items(1, BatchItem{{"dead", ""}, kKind, "x", {}});
  auto batch = fence.append_batch(items);
  REQUIRE(!batch.ok());
  check_not_active(batch.error());
  Status committed = fence.commit();
  REQUIRE(!committed.ok());
  check_not_active(committed.error());
  Status cancelled = fence.cancel();
  REQUIRE(!cancelled.ok());
  check_not_active(cancelled.error());
}

// A power loss ends the process too. The dead store's writer, poisoned by the crash, left this
// process a note to cut its log back to its last fdatasync at the next open (log/poisoned_logs.h);
// a new process would not have it, and with it a crash could never keep the unsynced commit record.
void forget_process(FaultFileSystem& fs) { (void)log::take_synced_end(fs, kDir); }

bool mentions(const std::vector<std::string>& lines, std::string_view word) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& line) { return line.find(word) != std::string::npos; });
}

}  // namespace

TEST_CASE("fenced appends are invisible to every read until commit publishes them all at once",
          "[fence]") {
  FaultFileSystem fs;
  auto store = open_on(options_on(fs));
  const Coordinate order{"order:1", "shop"};
  Receipt root = append_ok(*store, order, "placed");
  auto fence = begin(*store);
  CHECK(store->stats().sequence_next == 2);  // the fence's begin takes no sequence

  std::vector<Written> fenced;
  AppendOptions caused;
  caused.causation_id = root.event_id;
  caused.correlation_id = root.event_id;
  fenced.push_back(append_through(*fence, order, "paid", caused));
  CHECK(fenced.back().receipt.entity_clock == 2);
  fenced.push_back(append_through(*fence, {"order:new", "shop"}, "a stream born in the fence"));
  std::vector<BatchItem> items;
  items.push_back(BatchItem{order, kKind, "lane 1", on_lane(1)});
  items.push_back(BatchItem{order, kKind, "shipped", {}});
  items[1].options.cause_item = 0;
  items[1].options.correlation_id = root.event_id;
  auto batch = fence->append_batch(items);
  KEEL_REQUIRE_OK(batch);
  fenced.push_back(written((*batch)[0], order, items[0].options));
  fenced.push_back(Written{(*batch)[1], order, 0, root.event_id, (*batch)[0].event_id});
  // Clocks continue from the fence's own writes.
  CHECK((*batch)[0].entity_clock == 1);
  CHECK((*batch)[1].entity_clock == 3);

  // CAS sees the fence's writes.
  AppendOptions stale;
  stale.expected_clock = 2;
  auto mismatch = fence->append(order, kKind, "stale", stale);
  REQUIRE(!mismatch.ok());
  CHECK(mismatch.error().is(ErrorCode::SequenceMismatch));
  CHECK(mismatch.error().field_u64("actual") == 3u);
  AppendOptions current;
  current.expected_clock = 3;
  fenced.push_back(append_through(*fence, order, "cas", current));
  CHECK(fenced.back().receipt.entity_clock == 4);

  // Gates see the fenced head.
  EntityHead seen;
  bool seen_fenced = false;
  AppendOptions gated;
  gated.gates.push_back(Gate{"probe", [&](const GateContext& context) {
                               seen = context.head;
                               seen_fenced = context.fenced;
                               return GateVerdict::allow();
                             }});
  fenced.push_back(append_through(*fence, order, "gated", gated));
  CHECK(seen.clock == 4);
  CHECK(seen.sequence == fenced[4].receipt.sequence);
  CHECK(seen.event_id == std::optional<EventId>(fenced[4].receipt.event_id));
  CHECK(seen_fenced);

  // Idempotency: a fenced duplicate gets the fenced original.
  AppendOptions keyed;
  keyed.idempotency_key = "fenced-key";
  fenced.push_back(append_through(*fence, {"order:k", ""}, "once", keyed));
  auto duplicate = fence->append({"order:k", ""}, kKind, "once", keyed);
  KEEL_REQUIRE_OK(duplicate);
  CHECK(*duplicate == fenced.back().receipt);
  CHECK(store->stats().idempotency_hits == 1);

  // Everything else fails fast and writes nothing; a key of the fence is not answered outside it.
  const uint64_t next_before = store->stats().sequence_next;
  auto started = std::chrono::steady_clock::now();
  auto outside = store->append({"order:2", ""}, kKind, "outside");
  REQUIRE(!outside.ok());
  check_fence_active(outside.error(), fence->id());
  auto outside_key = store->append({"order:k", ""}, kKind, "once", keyed);
  REQUIRE(!outside_key.ok());
  check_fence_active(outside_key.error(), fence->id());
  std::vector<BatchItem> outside_items(2, BatchItem{{"order:2", ""}, kKind, "outside", {}});
  auto outside_batch = store->append_batch(outside_items);
  REQUIRE(!outside_batch.ok());
  check_fence_active(outside_batch.error(), fence->id());
  auto second = store->begin_fence();
  REQUIRE(!second.ok());
  check_fence_active(second.error(), fence->id());
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));  // no waiting
  CHECK(store->stats().sequence_next == next_before);

  // Invisible to every read; the visible watermark and the counts hold below the fence.
  for (const Written& w : fenced) check_hidden(*store, w);
  CHECK(store->frontier()[Watermark::Visible].global_sequence == root.sequence);
  CHECK(store->stats().sequence_visible == root.sequence);
  CHECK(store->stats().events == 1);  // StoreStats::events: "visible events"
  CHECK(store->stats().sequence_durable >= fenced.back().receipt.sequence);  // written, durable
  auto descendants = store->descendants(root.event_id);
  KEEL_REQUIRE_OK(descendants);
  CHECK(descendants->events.empty());

  // Commit: all visible at once, to reads right after it returns.
  KEEL_REQUIRE_OK(fence->commit());
  for (const Written& w : fenced) check_visible(*store, w);
  CHECK(store->frontier()[Watermark::Visible].global_sequence >= fenced.back().receipt.sequence);
  CHECK(store->stats().events == 1 + fenced.size());
  CHECK(store->stats().fences_committed == 1);
  CHECK(store->stats().fences_cancelled == 0);
  CHECK(store->stats().hidden_events == 0);
  check_handle_dead(*fence);

  // Unfenced appends work again and chain to the fence's events; the committed key still answers.
  check_next_chains_to(*store, order, 0, fenced[5].receipt);
  check_next_chains_to(*store, order, 1, fenced[2].receipt);
  auto again = store->append({"order:k", ""}, kKind, "once", keyed);
  KEEL_REQUIRE_OK(again);
  CHECK(*again == fenced[6].receipt);
  auto another = store->begin_fence();  // the store's one fence is free again
  KEEL_REQUIRE_OK(another);
  KEEL_REQUIRE_OK((*another)->cancel());
  check_verifies(*store);
}

TEST_CASE("under AfterWrite a fence holds written events invisible until commit too", "[fence]") {
  FaultFileSystem fs;
  StoreOptions options = options_on(fs);
  options.visibility = VisibilityPolicy::AfterWrite;
  auto store = open_on(options);
  Receipt before = append_ok(*store, {"acct:1", ""}, "before", on_lane(0, Durability::Written));
  auto fence = begin(*store);
  std::vector<Written> fenced;
  fenced.push_back(append_through(*fence, {"acct:1", ""}, "f1", on_lane(0, Durability::Written)));
  fenced.push_back(append_through(*fence, {"acct:2", ""}, "f2", on_lane(0, Durability::Accepted)));
  KEEL_REQUIRE_OK(store->sync());  // durable, still not visible
  for (const Written& w : fenced) check_hidden(*store, w);
  CHECK(store->frontier()[Watermark::Visible].global_sequence == before.sequence);
  KEEL_REQUIRE_OK(fence->commit());
  for (const Written& w : fenced) check_visible(*store, w);
}

TEST_CASE("cancel hides the fence's events for good, reverts every touched head, releases keys",
          "[fence]") {
  FaultFileSystem fs;
  auto store = open_on(options_on(fs));
  const Coordinate account{"acct:1", ""};
  const Coordinate fresh{"fresh:1", ""};
  Receipt a1 = append_ok(*store, account, "a1");
  Receipt a2 = append_ok(*store, account, "a2");
  Receipt b1 = append_ok(*store, account, "b1", on_lane(1));

  auto fence = begin(*store);
  std::vector<Written> fenced;
  AppendOptions caused;
  caused.causation_id = a1.event_id;
  caused.correlation_id = a1.event_id;  // a1 is a root: its own conversation
  fenced.push_back(append_through(*fence, account, "f1", caused));
  fenced.push_back(append_through(*fence, account, "f2"));
  std::vector<BatchItem> items;
  items.push_back(BatchItem{account, kKind, "f3 lane 1", on_lane(1)});
  items.push_back(BatchItem{fresh, kKind, "keyed", {}});
  items[1].options.idempotency_key = "cancel-key";
  auto batch = fence->append_batch(items);
  KEEL_REQUIRE_OK(batch);
  fenced.push_back(written((*batch)[0], account, items[0].options));
  fenced.push_back(written((*batch)[1], fresh, items[1].options));
  const uint64_t last_hidden = fenced.back().receipt.sequence;

  KEEL_REQUIRE_OK(fence->cancel());
  for (const Written& w : fenced) check_hidden(*store, w);
  StoreStats stats = store->stats();
  CHECK(stats.hidden_events == fenced.size());
  CHECK(stats.fences_cancelled == 1);
  CHECK(stats.fences_committed == 0);
  CHECK(stats.events == 3);
  check_verifies(*store);
  auto entity_report = store->verify_entity(account.entity);
  KEEL_REQUIRE_OK(entity_report);
  CHECK(entity_report->ok);
  check_handle_dead(*fence);

  // Heads revert to the last visible event of each touched (entity, lane); sequences are not
  // reused.
  check_next_chains_to(*store, account, 0, a2);
  check_next_chains_to(*store, account, 1, b1);
  CHECK(store->stats().sequence_next > last_hidden + 2);
  // The cancelled key is released: the same append is a new event (a kept key would answer with
  // the hidden receipt), in a stream that starts again at clock 1.
  const uint64_t hits = store->stats().idempotency_hits;
  AppendOptions keyed;
  keyed.idempotency_key = "cancel-key";
  auto reused = store->append(fresh, kKind, "keyed", keyed);
  KEEL_REQUIRE_OK(reused);
  CHECK(reused->sequence > last_hidden);
  CHECK(reused->event_id != fenced.back().receipt.event_id);
  CHECK(reused->entity_clock == 1);
  CHECK(store->stats().idempotency_hits == hits);
  auto reread = store->read(reused->sequence);
  KEEL_REQUIRE_OK(reread);
  CHECK(!reread->prev_hash.has_value());
  // From now on the key is kept again.
  auto duplicate = store->append(fresh, kKind, "keyed", keyed);
  KEEL_REQUIRE_OK(duplicate);
  CHECK(*duplicate == *reused);

  // Still hidden after later appends; the store still verifies.
  for (const Written& w : fenced) check_hidden(*store, w);
  check_verifies(*store);
  CHECK(store->stats().hidden_events == fenced.size());
}

TEST_CASE("destroying a Fence without commit cancels it", "[fence]") {
  FaultFileSystem fs;
  auto store = open_on(options_on(fs));
  const Coordinate account{"acct:1", ""};
  Receipt a1 = append_ok(*store, account, "a1");
  std::vector<Written> fenced;
  {
    auto fence = begin(*store);
    fenced.push_back(append_through(*fence, account, "f1"));
    fenced.push_back(append_through(*fence, account, "f2"));
  }
  for (const Written& w : fenced) check_hidden(*store, w);
  CHECK(store->stats().fences_cancelled == 1);
  CHECK(store->stats().hidden_events == 2);
  check_next_chains_to(*store, account, 0, a1);  // also: unfenced appends are allowed again
  check_verifies(*store);
}

TEST_CASE(
    "after a clean reopen committed fences are visible, cancelled ones and one left open at "
    "close() hidden, heads as before",
    "[fence]") {
  FaultFileSystem fs;
  StoreOptions options = options_on(fs);
  const Coordinate account{"acct:1", ""};
  const Coordinate only_c{"c-only", ""};
  std::vector<Written> committed;
  std::vector<Written> hidden;
  Receipt tail;
  {
    auto store = open_on(options);
    append_ok(*store, account, "a1");
    auto a = begin(*store);
    committed.push_back(append_through(*a, account, "A lane 0"));
    committed.push_back(append_through(*a, account, "A lane 1", on_lane(1)));
    KEEL_REQUIRE_OK(a->commit());
    auto b = begin(*store);
    AppendOptions keyed;
    keyed.idempotency_key = "b-key";
    hidden.push_back(append_through(*b, account, "B", keyed));
    KEEL_REQUIRE_OK(b->cancel());
    tail = append_ok(*store, account, "tail");  // chains to A's lane-0 event
    CHECK(tail.entity_clock == 3);
    auto c = begin(*store);
    hidden.push_back(append_through(*c, account, "C"));
    hidden.push_back(append_through(*c, only_c, "C only"));
    KEEL_REQUIRE_OK(store->close());  // cancels C
    CHECK(store->stats().fences_cancelled == 2);
    c.reset();  // after close(): its cancel is refused and ignored
  }
  auto store = open_on(options);
  INFO("index_source: " << store->stats().index_source);
  CHECK(!mentions(store->stats().recovery_actions, "OpenFenceAtTail"));  // close wrote the cancel
  for (const Written& w : committed) check_visible(*store, w);
  for (const Written& w : hidden) check_hidden(*store, w);
  CHECK(store->stats().hidden_events == hidden.size());
  CHECK(store->stats().events == 1 + committed.size() + 1);
  check_verifies(*store);
  check_next_chains_to(*store, account, 0, tail);
  check_next_chains_to(*store, account, 1, committed[1].receipt);
  check_next_chains_to(*store, only_c, 0, std::nullopt);
  AppendOptions keyed;
  keyed.idempotency_key = "b-key";
  auto reused = store->append(account, kKind, "B", keyed);  // released across the reopen too
  KEEL_REQUIRE_OK(reused);
  CHECK(reused->sequence > hidden.back().receipt.sequence);
  CHECK(reused->event_id != hidden[0].receipt.event_id);
}

TEST_CASE(
    "an open from the index image shows committed fences and hides cancelled ones, as the "
    "log does",
    "[fence]") {
  FaultFileSystem fs;
  StoreOptions options = options_on(fs);
  const Coordinate account{"acct:1", ""};
  std::vector<Written> committed;
  std::vector<Written> hidden;
  Receipt last;
  {
    auto store = open_on(options);
    append_ok(*store, account, "a1");
    auto a = begin(*store);
    committed.push_back(append_through(*a, account, "A"));
    committed.push_back(append_through(*a, {"a-only", ""}, "A only", on_lane(2)));
    KEEL_REQUIRE_OK(a->commit());
    auto b = begin(*store);
    AppendOptions keyed;
    keyed.idempotency_key = "b-key";
    hidden.push_back(append_through(*b, account, "B", keyed));
    hidden.push_back(append_through(*b, {"b-only", ""}, "B only"));
    hidden.push_back(append_through(*b, {"b-only-2", ""}, "B only"));
    KEEL_REQUIRE_OK(b->cancel());
    // An unfenced record last, so the image's checkpoint can follow the fences (FORMAT.md 8.4).
    last = append_ok(*store, {"other", ""}, "last");
    KEEL_REQUIRE_OK(store->close());
    CHECK(store->stats().index_images_written >= 1);
  }
  auto check = [&](Store& store) {
    for (const Written& w : committed) check_visible(store, w);
    for (const Written& w : hidden) check_hidden(store, w);
    CHECK(store.stats().hidden_events == hidden.size());
    check_verifies(store);
  };
  {
    auto store = open_on(options);
    CHECK(store->stats().index_source == "image");
    check(*store);
    check_next_chains_to(*store, account, 0, committed[0].receipt);
    check_next_chains_to(*store, {"b-only", ""}, 0, std::nullopt);
    AppendOptions keyed;
    keyed.idempotency_key = "b-key";
    auto reused = store->append(account, kKind, "B", keyed);
    KEEL_REQUIRE_OK(reused);
    CHECK(reused->sequence > last.sequence);
    KEEL_REQUIRE_OK(store->close());
  }
  // The same store without its image: recovery from the log agrees.
  KEEL_REQUIRE_OK(fs.remove(kDir + "/" + format::kIndexImageFileName));
  auto store = open_on(options);
  CHECK(store->stats().index_source.rfind("log", 0) == 0);
  check(*store);
  check_next_chains_to(*store, {"b-only-2", ""}, 0, std::nullopt);
  check_next_chains_to(*store, {"a-only", ""}, 2, committed[1].receipt);
}

// ---- crashes ----

namespace {

// What a reopen after a crash with a fence open shows.
struct OpenFenceCrash {
  size_t fenced = 0;
  size_t fenced_visible = 0;
  bool pre_fence_visible = true;
  bool recovered_cancel = false;  // a recovery action names OpenFenceAtTail
  uint64_t hidden_events = 0;
  bool verified = false;
  // The next append to the touched stream chains to its last pre-fence event (clock and hash).
  bool chains_to_visible = false;
  bool fresh_stream_starts_over = false;
  std::string detail;

  // The guarantee of a crash with a fence open (docs/ARCHITECTURE.md §7).
  bool holds() const {
    return fenced_visible == 0 && pre_fence_visible && chains_to_visible &&
           fresh_stream_starts_over && verified;
  }
};

OpenFenceCrash crash_with_fence_open(uint64_t seed, bool skip_fence_records) {
  FaultFileSystem fs;
  StoreOptions options = options_on(fs);
  options.unsafe_skip_fence_records_for_test = skip_fence_records;
  std::mt19937_64 rng(seed);
  const Coordinate account{"acct:1", ""};
  const Coordinate fresh{"acct:fresh", ""};
  OpenFenceCrash out;
  std::vector<Receipt> pre;
  std::vector<Receipt> fenced;
  {
    auto store = open_on(options);
    for (uint64_t i = 0, n = 1 + rng() % 4; i < n; ++i) {
      pre.push_back(append_ok(*store, account, std::string(rng() % 500, 'p')));
    }
    auto fence = begin(*store);
    for (uint64_t i = 0, n = 1 + rng() % 6; i < n; ++i) {
      const Coordinate& where = i == 0 || rng() % 2 ? account : fresh;
      if (rng() % 3 == 0) {
        std::vector<BatchItem> items(1 + rng() % 3,
                                     BatchItem{where, kKind, std::string(rng() % 900, 'b'), {}});
        auto batch = fence->append_batch(items);
        if (!batch.ok()) FAIL(batch.error().to_string());
        fenced.insert(fenced.end(), batch->begin(), batch->end());
      } else {
        fenced.push_back(append_through(*fence, where, std::string(rng() % 900, 'f')).receipt);
      }
    }
    fs.crash(seed);
  }  // the fence's cancel and the close after the crash reach no disk
  forget_process(fs);
  auto store = open_on(options);
  out.fenced = fenced.size();
  std::set<uint64_t> visible = visible_sequences(*store);
  for (const Receipt& r : fenced) out.fenced_visible += visible.count(r.sequence);
  for (const Receipt& r : pre) out.pre_fence_visible &= visible.count(r.sequence) == 1;
  out.recovered_cancel = mentions(store->stats().recovery_actions, "OpenFenceAtTail");
  out.hidden_events = store->stats().hidden_events;
  auto report = store->verify();
  out.verified = report.ok() && report->ok;
  for (const std::string& action : store->stats().recovery_actions) out.detail += action + "; ";
  Receipt next = append_ok(*store, account, "next");
  auto reread = store->read(next.sequence);
  out.chains_to_visible = reread.ok() && next.entity_clock == pre.back().entity_clock + 1 &&
                          reread->prev_hash == std::optional<Hash128>(pre.back().chained_hash);
  Receipt first = append_ok(*store, fresh, "first");
  auto first_read = store->read(first.sequence);
  out.fresh_stream_starts_over =
      first_read.ok() && first.entity_clock == 1 && !first_read->prev_hash.has_value();
  return out;
}

}  // namespace

TEST_CASE(
    "a crash with a fence open: its durable events stay hidden, recovery cancels the fence, "
    "the next append chains to the last visible event",
    "[fence][crash]") {
  for (uint64_t seed = 1; seed <= 25; ++seed) {
    OpenFenceCrash run = crash_with_fence_open(seed, false);
    INFO("seed " << seed << ": " << run.fenced_visible << " of " << run.fenced
                 << " fenced events visible; recovery: " << run.detail);
    CHECK(run.fenced_visible == 0);
    CHECK(run.pre_fence_visible);
    CHECK(run.recovered_cancel);
    CHECK(run.hidden_events == run.fenced);  // Durable: every fenced event is on disk, hidden
    CHECK(run.verified);
    CHECK(run.chains_to_visible);
    CHECK(run.fresh_stream_starts_over);
    CHECK(run.holds());
  }
}

TEST_CASE(
    "negative control: without fence records a crash exposes the fenced events, and the "
    "crash test catches it",
    "[fence][crash]") {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    OpenFenceCrash run = crash_with_fence_open(seed, true);
    INFO("seed " << seed << ": " << run.fenced_visible << " of " << run.fenced
                 << " fenced events visible");
    CHECK(run.fenced_visible == run.fenced);
    CHECK(!run.chains_to_visible);
    CHECK(!run.holds());
  }
}

namespace {

// Where the power fails around a commit.
enum class CommitStep {
  BeforeCommit,      // the fence is open
  SyncStalled,       // the commit record is written, its fdatasync has not returned
  SyncFailed,        // that fdatasync failed (EIO): commit() is WriteInDoubt; then the crash
  SyncFailedReopen,  // the same, then a reopen in the same process, without a crash
  AfterCommit,       // commit() returned
};

const char* step_name(CommitStep step) {
  switch (step) {
    case CommitStep::BeforeCommit:
      return "before commit";
    case CommitStep::SyncStalled:
      return "commit's sync stalled";
    case CommitStep::SyncFailed:
      return "commit's sync failed";
    case CommitStep::SyncFailedReopen:
      return "commit's sync failed, no crash";
    case CommitStep::AfterCommit:
      return "after commit";
  }
  return "?";
}

struct CommitCrash {
  size_t fenced = 0;
  size_t fenced_visible = 0;   // after the reopen
  bool receipts_match = true;  // every visible fenced event is the one its receipt names
  bool pre_fence_visible = true;
  bool hidden_in_process = true;  // before the crash, while commit had not succeeded
  bool commit_ok = false;
  std::optional<StoreError> commit_error;
  std::optional<StoreError> append_after_doubt;  // SyncFailed*: Store::append after commit()
  std::optional<StoreError> begin_after_doubt;   // SyncFailed*: Store::begin_fence after commit()
  bool verified = false;
  bool chains = false;  // the next append follows the last visible event
  std::string detail;

  bool all_or_none() const { return fenced_visible == 0 || fenced_visible == fenced; }
};

// Nothing of the fence is readable (its first sequence is `first`).
bool none_visible(Store& store, const std::vector<Receipt>& fenced) {
  if (store.frontier()[Watermark::Visible].global_sequence >= fenced.front().sequence) return false;
  for (const Receipt& r : fenced) {
    if (store.read(r.sequence).ok() || store.get(r.event_id).ok()) return false;
  }
  return true;
}

CommitCrash crash_around_commit(uint64_t seed, CommitStep step) {
  FaultFileSystem fs;
  StoreOptions options = options_on(fs);
  const bool eio = step == CommitStep::SyncFailed || step == CommitStep::SyncFailedReopen;
  // No rotation when the failed sync must be the commit record's own (a seal syncs too).
  if (eio) options.segment_size = 1 << 20;
  std::mt19937_64 rng(seed * 7919 + static_cast<uint64_t>(step));
  const Coordinate account{"acct:1", ""};
  const Coordinate other{"acct:2", ""};
  const Durability levels[] = {Durability::Accepted, Durability::Written, Durability::Durable};
  CommitCrash out;
  std::vector<Receipt> pre;
  std::vector<Receipt> fenced;
  std::optional<Receipt> account_head;  // the last fenced event of (acct:1, lane 0)
  {
    auto store = open_on(options);
    pre.push_back(append_ok(*store, account, "pre 1"));
    pre.push_back(append_ok(*store, other, "pre 2", on_lane(1)));
    auto fence = begin(*store);
    for (uint64_t i = 0, n = 2 + rng() % 8; i < n; ++i) {
      const Durability durability = levels[rng() % 3];
      const bool to_account = i == 0 || rng() % 2;
      const Coordinate& where = to_account ? account : other;
      const uint32_t lane = to_account ? 0 : 1;
      if (rng() % 3 == 0) {
        std::vector<BatchItem> items(
            1 + rng() % 3, BatchItem{where, kKind, std::string(rng() % 600, 'b'), on_lane(lane)});
        auto batch = fence->append_batch(items, BatchOptions{durability, {}});
        if (!batch.ok()) FAIL(batch.error().to_string());
        fenced.insert(fenced.end(), batch->begin(), batch->end());
      } else {
        fenced.push_back(
            append_through(*fence, where, std::string(rng() % 600, 'f'), on_lane(lane, durability))
                .receipt);
      }
      if (to_account) account_head = fenced.back();
    }
    out.fenced = fenced.size();
    // With every fenced event durable first, the only unsynced bytes at the commit are its record.
    if (eio || step == CommitStep::SyncStalled || rng() % 2) KEEL_REQUIRE_OK(store->sync());
    switch (step) {
      case CommitStep::BeforeCommit:
        out.hidden_in_process = none_visible(*store, fenced);
        fs.crash(seed);
        break;
      case CommitStep::SyncStalled: {
        fs.stall_syncs(true);
        Status committed;
        std::thread committer([&] { committed = fence->commit(); });
        bool stalled = fs.wait_for_stalled_sync(std::chrono::seconds(10));
        out.hidden_in_process = stalled && none_visible(*store, fenced);
        fs.crash(seed);  // releases the stalled sync: it fails
        committer.join();
        out.commit_ok = committed.ok();
        if (!committed.ok()) out.commit_error = committed.error();
        break;
      }
      case CommitStep::SyncFailed:
      case CommitStep::SyncFailedReopen: {
        fs.fail_nth(FaultOp::SyncData, 1);
        Status committed = fence->commit();
        out.commit_ok = committed.ok();
        if (!committed.ok()) out.commit_error = committed.error();
        fs.clear_faults();
        // In doubt: this process never shows the fence, nor accepts other appends' bytes.
        out.hidden_in_process = none_visible(*store, fenced);
        // The writer is poisoned; no fence is open for the caller (the handle is spent).
        auto append = store->append(other, kKind, "refused");
        if (!append.ok()) out.append_after_doubt = append.error();
        auto again = store->begin_fence();
        if (!again.ok()) out.begin_after_doubt = again.error();
        if (step == CommitStep::SyncFailed) fs.crash(seed);  // else the process lives on
        break;
      }
      case CommitStep::AfterCommit: {
        Status committed = fence->commit();
        out.commit_ok = committed.ok();
        if (!committed.ok()) out.commit_error = committed.error();
        fs.crash(seed);
        break;
      }
    }
  }
  if (step != CommitStep::SyncFailedReopen) forget_process(fs);
  auto store = open_on(options);
  std::set<uint64_t> visible = visible_sequences(*store);
  for (const Receipt& r : fenced) {
    if (visible.count(r.sequence) == 0) continue;
    ++out.fenced_visible;
    auto event = store->read(r.sequence);
    out.receipts_match &= event.ok() && event->receipt() == r;
  }
  for (const Receipt& r : pre) out.pre_fence_visible &= visible.count(r.sequence) == 1;
  for (const std::string& action : store->stats().recovery_actions) out.detail += action + "; ";
  auto report = store->verify();
  out.verified = report.ok() && report->ok;
  const Receipt& head =
      out.fenced_visible == out.fenced && account_head ? *account_head : pre.front();
  Receipt next = append_ok(*store, account, "next");
  auto reread = store->read(next.sequence);
  out.chains = reread.ok() && next.entity_clock == head.entity_clock + 1 &&
               reread->prev_hash == std::optional<Hash128>(head.chained_hash);
  return out;
}

}  // namespace

TEST_CASE("a committing fence is all visible or none after a crash at every step of the commit",
          "[fence][crash]") {
  const CommitStep steps[] = {CommitStep::BeforeCommit, CommitStep::SyncStalled,
                              CommitStep::SyncFailed, CommitStep::SyncFailedReopen,
                              CommitStep::AfterCommit};
  for (CommitStep step : steps) {
    size_t all = 0;
    size_t none = 0;
    for (uint64_t seed = 1; seed <= 30; ++seed) {
      CommitCrash run = crash_around_commit(seed, step);
      INFO(step_name(step) << ", seed " << seed << ": " << run.fenced_visible << " of "
                           << run.fenced << " fenced events visible; commit: "
                           << (run.commit_ok      ? "ok"
                               : run.commit_error ? run.commit_error->to_string()
                                                  : "not called")
                           << "; recovery: " << run.detail);
      CHECK(run.all_or_none());
      CHECK(run.receipts_match);
      CHECK(run.pre_fence_visible);
      CHECK(run.hidden_in_process);
      CHECK(run.verified);
      CHECK(run.chains);
      (run.fenced_visible == 0 ? none : all) += 1;
      switch (step) {
        case CommitStep::BeforeCommit:
          CHECK(run.fenced_visible == 0);
          break;
        case CommitStep::SyncStalled:
          CHECK(!run.commit_ok);
          break;
        case CommitStep::SyncFailed:
        case CommitStep::SyncFailedReopen: {
          REQUIRE(run.commit_error.has_value());
          CHECK(run.commit_error->is(ErrorCode::WriteInDoubt));
          CHECK(run.commit_error->error_class() == ErrorClass::Indeterminate);
          // Then FailClosed, not Retryable: retrying cannot help a poisoned writer.
          REQUIRE(run.append_after_doubt.has_value());
          CHECK(run.append_after_doubt->is(ErrorCode::WriterPoisoned));
          REQUIRE(run.begin_after_doubt.has_value());
          INFO("begin_fence after the in-doubt commit: " << run.begin_after_doubt->to_string());
          if (seed == 1) CHECK(run.begin_after_doubt->is(ErrorCode::WriterPoisoned));  // once
          // A reopen in the same process cuts the log to the last fdatasync (FORMAT.md,
          // "Poisoning"): the in-doubt fence stays hidden in this process for good.
          if (step == CommitStep::SyncFailedReopen) CHECK(run.fenced_visible == 0);
          break;
        }
        case CommitStep::AfterCommit:
          CHECK(run.commit_ok);
          CHECK(run.fenced_visible == run.fenced);
          break;
      }
    }
    // The crash really lands between the record's write and its sync: both outcomes occur.
    if (step == CommitStep::SyncStalled || step == CommitStep::SyncFailed) {
      INFO(step_name(step) << ": " << all << " runs all visible, " << none << " none");
      CHECK(all > 0);
      CHECK(none > 0);
    }
  }
}

TEST_CASE(
    "the periodic index image is never cut inside an open fence: a crash reopens to exactly "
    "the pre-fence events",
    "[fence][crash]") {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    INFO("seed " << seed);
    FaultFileSystem fs;
    StoreOptions options = options_on(fs);
    options.index_image_interval = std::chrono::milliseconds(5);
    options.index_image_min_events = 1;
    const Coordinate account{"acct:1", ""};
    std::set<uint64_t> pre;
    std::vector<Receipt> fenced;
    {
      auto store = open_on(options);
      for (int i = 0; i < 5; ++i) pre.insert(append_ok(*store, account, "pre").sequence);
      // Wait for an image of every pre-fence event: images come one per interval while events
      // do, so the count must be non-zero and then stay put for 20 intervals.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      uint64_t images_before = 0;
      auto settled_at = std::chrono::steady_clock::now();
      while (std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        const uint64_t images = store->stats().index_images_written;
        if (images != images_before) {
          images_before = images;
          settled_at = std::chrono::steady_clock::now();
        } else if (images > 0 &&
                   std::chrono::steady_clock::now() - settled_at > std::chrono::milliseconds(100)) {
          break;
        }
      }
      REQUIRE(images_before > 0);
      auto fence = begin(*store);
      for (int i = 0; i < 20; ++i) {
        fenced.push_back(
            append_through(*fence, i % 2 ? account : Coordinate{"fresh", ""}, "fenced").receipt);
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      // Durable moved by 20 fenced events over many intervals: no image may be cut there.
      CHECK(store->stats().index_images_written == images_before);
      CHECK(store->stats().index_image_error.empty());
      fs.crash(seed);
    }
    forget_process(fs);
    auto reopened = Store::open(kDir, options);
    REQUIRE(reopened.ok());  // not Corruption: no checkpoint inside the fence
    auto& store = **reopened;
    INFO("index_source: " << store.stats().index_source);
    CHECK(store.stats().index_source == "image");  // the pre-fence image was used
    CHECK(visible_sequences(store) == pre);
    CHECK(store.stats().hidden_events == fenced.size());
    CHECK(mentions(store.stats().recovery_actions, "OpenFenceAtTail"));
    check_verifies(store);
    auto refenced = store.entity_events("fresh", 0);
    KEEL_REQUIRE_OK(refenced);
    CHECK(refenced->empty());
  }
}

TEST_CASE(
    "lane views: a fence on lane 1 holds lane 1's visible view below its events, after "
    "cancel the lane view passes them while reads still hide them",
    "[fence]") {
  FaultFileSystem fs;
  auto store = open_on(options_on(fs));
  const Coordinate account{"acct:1", ""};
  Receipt lane0 = append_ok(*store, account, "lane 0");
  Receipt lane1 = append_ok(*store, account, "lane 1", on_lane(1));
  auto fence = begin(*store);
  std::vector<Written> fenced;
  fenced.push_back(append_through(*fence, account, "fenced 1", on_lane(1)));
  fenced.push_back(append_through(*fence, account, "fenced 2", on_lane(1)));
  const uint64_t first = fenced.front().receipt.sequence;
  const uint64_t last = fenced.back().receipt.sequence;

  auto lane_view = [&](uint32_t lane) {
    Frontier frontier = store->frontier();
    for (const LaneFrontier& view : frontier.lanes) {
      if (view.lane == lane) return view.sequences;
    }
    FAIL("no lane view for lane " << lane);
    return WatermarkSequences{};
  };
  WatermarkSequences one = lane_view(1);
  WatermarkSequences zero = lane_view(0);
  INFO("lane 1 visible " << one[Watermark::Visible] << " durable " << one[Watermark::Durable]
                         << "; lane 0 visible " << zero[Watermark::Visible] << " durable "
                         << zero[Watermark::Durable] << "; global visible "
                         << store->frontier()[Watermark::Visible].global_sequence);
  CHECK(one[Watermark::Durable] >= last);  // durable, not visible
  CHECK(one[Watermark::Visible] < first);
  CHECK(one[Watermark::Visible] >= lane1.sequence);
  CHECK(store->frontier()[Watermark::Visible].global_sequence == lane1.sequence);
  // Observed: lane 0 is not held. Nothing of lane 0 is pending, so its view reads accepted (above
  // the fenced events and the global visible watermark), as frontier.h allows: every lane-0 event
  // at or below it is visible. The hold shows only in the global value.
  CHECK(zero[Watermark::Visible] == last);
  CHECK(zero[Watermark::Visible] > store->frontier()[Watermark::Visible].global_sequence);
  CHECK(store->read(lane0.sequence).ok());
  Status waited = store->wait_for_lane(Watermark::Visible, 1, first, std::chrono::milliseconds(20));
  REQUIRE(!waited.ok());
  CHECK(waited.error().is(ErrorCode::WaitTimeout));

  KEEL_REQUIRE_OK(fence->cancel());
  KEEL_REQUIRE_OK(
      store->wait_for_lane(Watermark::Visible, 1, last, std::chrono::milliseconds(1000)));
  KEEL_REQUIRE_OK(store->wait_for(Watermark::Visible, last, std::chrono::milliseconds(1000)));
  CHECK(lane_view(1)[Watermark::Visible] >= last);
  for (const Written& w : fenced) check_hidden(*store, w);
  check_next_chains_to(*store, account, 1, lane1);
}

TEST_CASE(
    "another thread's unfenced appends get VisibilityFenceActive during a fence and succeed "
    "after commit",
    "[fence][concurrency]") {
  FaultFileSystem fs;
  auto store = open_on(options_on(fs));
  append_ok(*store, {"acct:1", ""}, "before");
  auto fence = begin(*store);
  std::vector<Written> fenced;
  fenced.push_back(append_through(*fence, {"acct:1", ""}, "fenced 1"));

  std::atomic<int> refusals{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> finished{false};  // set after success or unexpected is written
  std::optional<Receipt> success;
  std::string unexpected;  // Catch assertions are not thread-safe: the main thread checks
  std::thread other([&] {
    while (!stop.load()) {
      auto appended = store->append({"other", ""}, kKind, "outside");
      if (appended.ok()) {
        success = *appended;
        finished = true;
        return;
      }
      if (!appended.error().is(ErrorCode::VisibilityFenceActive) ||
          appended.error().error_class() != ErrorClass::Retryable) {
        unexpected = appended.error().to_string();
        finished = true;
        return;
      }
      ++refusals;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (refusals.load() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Fenced appends go on while the other thread is refused.
  for (int i = 0; i < 5; ++i) fenced.push_back(append_through(*fence, {"acct:1", ""}, "fenced"));
  const int refused_before_commit = refusals.load();
  Status committed = fence->commit();
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!finished.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop = true;
  other.join();
  KEEL_REQUIRE_OK(committed);
  INFO(unexpected);
  CHECK(unexpected.empty());
  CHECK(refused_before_commit >= 3);
  REQUIRE(success.has_value());
  // The fence is one contiguous range and the refusals took no sequence.
  for (size_t i = 1; i < fenced.size(); ++i) {
    CHECK(fenced[i].receipt.sequence == fenced[i - 1].receipt.sequence + 1);
  }
  CHECK(success->sequence == fenced.back().receipt.sequence + 1);
  for (const Written& w : fenced) check_visible(*store, w);
  auto read = store->read(success->sequence);
  KEEL_REQUIRE_OK(read);
  CHECK(read->receipt() == *success);
}
