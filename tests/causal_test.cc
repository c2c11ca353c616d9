// Causal queries (docs/ARCHITECTURE.md §6, include/keel/query.h) at the edges the random model test
// does not reach: a 10,000-hop causation chain, a 1,000-wide fan-out, external roots, concurrent
// events, a hand-built conversation, every argument error, events not yet visible, and a store
// whose bytes were edited to hold a causation cycle (reported as Corruption, never followed).
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "format/event_body.h"
#include "format/format_constants.h"
#include "format/frame.h"
#include "format/record.h"
#include "keel/keel.h"
#include "log/segment_files.h"
#include "platform/fault_file_system.h"
#include "platform/memory_file_system.h"
#include "test_support.h"

using namespace keel;
using keel::test::TempDir;

namespace {

const EventKind kCause = EventKind::make(1, 1);
const EventKind kEffect = EventKind::make(2, 7);
constexpr uint32_t kLanesMax = 4;

StoreOptions memory_options(platform::FileSystem& fs) {
  StoreOptions options;
  options.file_system = &fs;
  options.create_if_missing = true;
  options.lanes_max = kLanesMax;
  options.id_seed = 5;
  options.segment_size = 1 << 20;  // the long tests below rotate segments
  return options;
}

std::unique_ptr<Store> open_store(const std::string& directory, const StoreOptions& options) {
  auto store = Store::open(directory, options);
  if (!store.ok()) FAIL(store.error().to_string());
  return std::move(store).value();
}

AppendOptions caused_by(std::optional<EventId> cause, std::optional<EventId> correlation = {},
                        uint32_t lane = 0) {
  AppendOptions options;
  options.causation_id = cause;
  options.correlation_id = correlation;
  options.lane = lane;
  return options;
}

Receipt must_append(Store& store, const std::string& entity, EventKind kind,
                    const AppendOptions& options = {}, const std::string& scope = "") {
  auto receipt = store.append({entity, scope}, kind, "payload of " + entity, options);
  if (!receipt.ok()) FAIL(receipt.error().to_string());
  return *receipt;
}

std::vector<uint64_t> sequences_of(const std::vector<EventRef>& refs) {
  std::vector<uint64_t> out;
  for (const EventRef& r : refs) out.push_back(r.sequence);
  return out;
}

std::vector<uint64_t> sequences_of(const std::vector<Event>& events) {
  std::vector<uint64_t> out;
  for (const Event& e : events) out.push_back(e.sequence);
  return out;
}

// Every event of the query's answer (all pages).
std::vector<Event> query_all(Store& store, Query q) {
  std::vector<Event> all;
  for (;;) {
    auto page = store.query(q);
    if (!page.ok()) FAIL(page.error().to_string());
    all.insert(all.end(), page->events.begin(), page->events.end());
    if (!page->next_after) return all;
    q.after = page->next_after;
  }
}

// Removes the index image of the store at /store in `fs`, so that the next open rebuilds the
// indexes from the log.
void remove_index_image(platform::FileSystem& fs) {
  KEEL_REQUIRE_OK(fs.remove(std::string("/store/") + format::kIndexImageFileName));
}

// An id that no store makes (store ids start with the HLC wall milliseconds, far below 2^63).
const EventId kOutsideId{0x8000'0000'0000'00aaull, 0x1234'5678'9abc'def0ull};

}  // namespace

// ---- deep chains and wide fan-outs --------------------------------------------------------------

TEST_CASE("a 10,000-hop causation chain: ancestors walks it to the root, in order", "[causal]") {
  platform::MemoryFileSystem fs;
  const StoreOptions options = memory_options(fs);
  auto store = open_store("/store", options);
  constexpr size_t kHops = 10'000;
  std::vector<Receipt> chain{must_append(*store, "chain:0", kCause)};
  const EventId root = chain[0].event_id;
  for (size_t hop = 1; hop <= kHops; ++hop) {
    // Alternate entities and lanes: the chain crosses streams, as real causation does.
    chain.push_back(must_append(
        *store, "chain:" + std::to_string(hop % 3), kEffect,
        caused_by(chain.back().event_id, root, static_cast<uint32_t>(hop % kLanesMax))));
  }
  const EventId leaf = chain.back().event_id;

  auto check_chain = [&](Store& s) {
    auto ancestry = s.ancestors(leaf);
    KEEL_REQUIRE_OK(ancestry);
    REQUIRE(ancestry->chain.size() == kHops + 1);
    for (size_t k = 0; k <= kHops; ++k) {
      const Receipt& want = chain[kHops - k];
      const EventRef& got = ancestry->chain[k];
      REQUIRE(got.sequence == want.sequence);
      REQUIRE(got.event_id == want.event_id);
      REQUIRE(got.entity_clock == want.entity_clock);
      REQUIRE(got.hlc == want.hlc);
    }
    CHECK(ancestry->chain.back().event_id == root);
    CHECK_FALSE(ancestry->external_cause.has_value());  // the root names no cause

    auto relation = s.happened_before(root, leaf);
    KEEL_REQUIRE_OK(relation);
    CHECK(relation->order == CausalOrder::Before);
    CHECK(relation->hlc_order == -1);
    auto reverse = s.happened_before(leaf, root);
    KEEL_REQUIRE_OK(reverse);
    CHECK(reverse->order == CausalOrder::After);
    CHECK(reverse->hlc_order == 1);
  };
  check_chain(*store);

  SECTION("limit cuts the chain after that many events, and no external cause is claimed") {
    auto ten = store->ancestors(leaf, 10);
    KEEL_REQUIRE_OK(ten);
    REQUIRE(ten->chain.size() == 10);
    for (size_t k = 0; k < 10; ++k) CHECK(ten->chain[k].sequence == chain[kHops - k].sequence);
    CHECK_FALSE(ten->external_cause.has_value());
    auto exact = store->ancestors(leaf, kHops + 1);
    KEEL_REQUIRE_OK(exact);
    CHECK(exact->chain.size() == kHops + 1);
    auto one = store->ancestors(leaf, 1);
    KEEL_REQUIRE_OK(one);
    CHECK(sequences_of(one->chain) == std::vector<uint64_t>{chain.back().sequence});
  }
  SECTION("descendants of the root are the chain, one event per level") {
    auto effects = store->descendants(root);
    KEEL_REQUIRE_OK(effects);
    REQUIRE(effects->events.size() == kHops);
    for (size_t k = 0; k < kHops; ++k) {
      REQUIRE(effects->events[k].sequence == chain[k + 1].sequence);
    }
    CHECK_FALSE(effects->truncated);
    auto first = store->descendants(root, 100);
    KEEL_REQUIRE_OK(first);
    CHECK(first->events.size() == 100);
    CHECK(first->truncated);
  }
  SECTION("the whole chain is one conversation: 10,001 nodes and 10,000 edges") {
    auto graph = store->correlation_graph(root);
    KEEL_REQUIRE_OK(graph);
    REQUIRE(graph->nodes.size() == kHops + 1);
    REQUIRE(graph->edges.size() == kHops);
    for (size_t k = 0; k < kHops; ++k) {
      REQUIRE(graph->edges[k] == CausalEdge{chain[k].event_id, chain[k + 1].event_id});
    }
    CHECK(graph->outside_causes.empty());
    CHECK_FALSE(graph->truncated);
  }
  SECTION("after a reopen from the index image the same") {
    KEEL_REQUIRE_OK(store->close());
    auto reopened = open_store("/store", options);
    CHECK(reopened->stats().index_source == "image");
    check_chain(*reopened);
  }
  SECTION("after a reopen that rebuilds the indexes from the log the same") {
    KEEL_REQUIRE_OK(store->close());
    remove_index_image(fs);
    auto reopened = open_store("/store", options);
    CHECK(reopened->stats().index_source == "log");
    check_chain(*reopened);
  }
}

TEST_CASE("a 1,000-wide fan-out: descendants go breadth-first, each level in sequence order",
          "[causal]") {
  platform::MemoryFileSystem fs;
  auto store = open_store("/store", memory_options(fs));
  const Receipt root = must_append(*store, "fan:root", kCause);
  must_append(*store, "fan:bystander", kCause);  // unrelated: in no answer below

  std::vector<Receipt> level1;
  std::map<size_t, std::vector<uint64_t>> children_of;  // level-1 index -> its effects' sequences
  std::vector<uint64_t> level2;
  auto first_level = [&](size_t from, size_t to) {
    std::vector<BatchItem> items;
    for (size_t i = from; i < to; ++i) {
      items.push_back(
          BatchItem{{"fan:" + std::to_string(i % 7), "one"},
                    kEffect,
                    "e",
                    caused_by(root.event_id, std::nullopt, static_cast<uint32_t>(i % 3))});
    }
    auto receipts = store->append_batch(items);
    KEEL_REQUIRE_OK(receipts);
    level1.insert(level1.end(), receipts->begin(), receipts->end());
  };
  // Second-level effects are appended in an order unrelated to their causes' order, so a walk
  // that lists each parent's children in turn (or newest first) differs from sequence order.
  auto second_level = [&](size_t count, size_t stride, size_t offset, size_t parents) {
    std::vector<BatchItem> items;
    std::vector<size_t> parent_of;
    for (size_t k = 0; k < count; ++k) {
      size_t parent = (k * stride + offset) % parents;
      parent_of.push_back(parent);
      items.push_back(
          BatchItem{{"fan:second", "two"}, kCause, "f", caused_by(level1[parent].event_id)});
    }
    auto receipts = store->append_batch(items);
    KEEL_REQUIRE_OK(receipts);
    for (size_t k = 0; k < count; ++k) {
      children_of[parent_of[k]].push_back((*receipts)[k].sequence);
      level2.push_back((*receipts)[k].sequence);
    }
  };
  first_level(0, 500);
  second_level(300, 37, 11, 500);
  first_level(500, 1000);  // later level-1 events have higher sequences than level-2 ones
  second_level(400, 13, 5, 1000);

  std::vector<uint64_t> expected;
  for (const Receipt& r : level1) expected.push_back(r.sequence);
  std::sort(expected.begin(), expected.end());
  std::sort(level2.begin(), level2.end());
  expected.insert(expected.end(), level2.begin(), level2.end());
  REQUIRE(expected.size() == 1700);
  REQUIRE_FALSE(std::is_sorted(expected.begin(), expected.end()));  // BFS is not sequence order

  auto all = store->descendants(root.event_id);
  KEEL_REQUIRE_OK(all);
  CHECK(sequences_of(all->events) == expected);
  CHECK_FALSE(all->truncated);
  CHECK(all->events[0].event_id == level1[0].event_id);
  CHECK(all->events[0].scope == "one");
  CHECK(all->events[0].kind == kEffect);
  CHECK(all->events[1000].scope == "two");

  for (size_t limit : {size_t{1}, size_t{1000}, size_t{1500}, size_t{1699}}) {
    auto some = store->descendants(root.event_id, limit);
    KEEL_REQUIRE_OK(some);
    CHECK(
        sequences_of(some->events) ==
        std::vector<uint64_t>(expected.begin(), expected.begin() + static_cast<ptrdiff_t>(limit)));
    CHECK(some->truncated);
  }
  for (size_t limit : {size_t{1700}, size_t{1701}}) {
    auto whole = store->descendants(root.event_id, limit);
    KEEL_REQUIRE_OK(whole);
    CHECK(whole->events.size() == 1700);
    CHECK_FALSE(whole->truncated);
  }

  // One level-1 event with several effects: exactly those, in sequence order.
  auto busiest = std::max_element(children_of.begin(), children_of.end(), [](auto& a, auto& b) {
    return a.second.size() < b.second.size();
  });
  REQUIRE(busiest->second.size() >= 2);
  auto children = store->descendants(level1[busiest->first].event_id);
  KEEL_REQUIRE_OK(children);
  std::vector<uint64_t> want = busiest->second;
  std::sort(want.begin(), want.end());
  CHECK(sequences_of(children->events) == want);

  // Siblings are concurrent; the root is before its grandchildren.
  auto siblings = store->happened_before(level1[3].event_id, level1[700].event_id);
  KEEL_REQUIRE_OK(siblings);
  CHECK(siblings->order == CausalOrder::Concurrent);
  auto grandchild = store->happened_before(root.event_id, level1[busiest->first].event_id);
  KEEL_REQUIRE_OK(grandchild);
  CHECK(grandchild->order == CausalOrder::Before);
  auto leaf_ancestry = store->ancestors(store->read(want.back())->event_id);
  KEEL_REQUIRE_OK(leaf_ancestry);
  CHECK(sequences_of(leaf_ancestry->chain) ==
        std::vector<uint64_t>{want.back(), level1[busiest->first].sequence, root.sequence});

  // The effect links restored from the index image, or rebuilt from the log, give the same walk.
  KEEL_REQUIRE_OK(store->close());
  for (const char* source : {"image", "log"}) {
    if (std::string(source) == "log") remove_index_image(fs);
    auto reopened = open_store("/store", memory_options(fs));
    CHECK(reopened->stats().index_source == source);
    auto again = reopened->descendants(root.event_id);
    KEEL_REQUIRE_OK(again);
    CHECK(sequences_of(again->events) == expected);
    KEEL_REQUIRE_OK(reopened->close());
  }
}

// ---- external causes, concurrency, conversations ------------------------------------------------

TEST_CASE("a chain whose root names a cause outside the store ends at that external cause",
          "[causal]") {
  platform::MemoryFileSystem fs;
  auto store = open_store("/store", memory_options(fs));
  const Receipt a = must_append(*store, "order:1", kCause, caused_by(kOutsideId));
  const Receipt b = must_append(*store, "order:1", kEffect, caused_by(a.event_id, a.event_id));
  const Receipt c = must_append(*store, "payment:1", kEffect, caused_by(b.event_id, a.event_id));
  // Another conversation, caused from inside this one.
  const Receipt d = must_append(*store, "mail:1", kEffect, caused_by(b.event_id));

  auto ancestry = store->ancestors(c.event_id);
  KEEL_REQUIRE_OK(ancestry);
  CHECK(sequences_of(ancestry->chain) == std::vector<uint64_t>{c.sequence, b.sequence, a.sequence});
  CHECK(ancestry->external_cause == std::optional<EventId>(kOutsideId));
  auto root_only = store->ancestors(a.event_id);
  KEEL_REQUIRE_OK(root_only);
  CHECK(sequences_of(root_only->chain) == std::vector<uint64_t>{a.sequence});
  CHECK(root_only->external_cause == std::optional<EventId>(kOutsideId));
  auto cut = store->ancestors(c.event_id, 2);  // the root is not reached: no cause to report
  KEEL_REQUIRE_OK(cut);
  CHECK(sequences_of(cut->chain) == std::vector<uint64_t>{c.sequence, b.sequence});
  CHECK_FALSE(cut->external_cause.has_value());

  auto graph = store->correlation_graph(a.event_id);
  KEEL_REQUIRE_OK(graph);
  CHECK(sequences_of(graph->nodes) == std::vector<uint64_t>{a.sequence, b.sequence, c.sequence});
  CHECK(graph->edges ==
        std::vector<CausalEdge>{{a.event_id, b.event_id}, {b.event_id, c.event_id}});
  CHECK(graph->outside_causes == std::vector<CausalEdge>{{kOutsideId, a.event_id}});
  // d's conversation is its own; its cause is in the store but outside that conversation.
  auto other = store->correlation_graph(d.event_id);
  KEEL_REQUIRE_OK(other);
  CHECK(sequences_of(other->nodes) == std::vector<uint64_t>{d.sequence});
  CHECK(other->edges.empty());
  CHECK(other->outside_causes == std::vector<CausalEdge>{{b.event_id, d.event_id}});
  // An external cause is no event: it has no effects to list and no conversation.
  CHECK(store->descendants(kOutsideId).error().is(ErrorCode::NotFound));
  auto none = store->correlation_graph(kOutsideId);
  KEEL_REQUIRE_OK(none);
  CHECK(none->nodes.empty());
  CHECK(none->outside_causes.empty());
}

TEST_CASE("events with no causal path are concurrent, with their HLC order as information",
          "[causal]") {
  platform::MemoryFileSystem fs;
  auto store = open_store("/store", memory_options(fs));
  const Receipt p = must_append(*store, "left", kCause);
  const Receipt q = must_append(*store, "right", kCause);
  const Receipt p_child = must_append(*store, "left", kEffect, caused_by(p.event_id));
  const Receipt q_child = must_append(*store, "right", kEffect, caused_by(q.event_id));
  const Receipt shared_cause = must_append(*store, "both", kEffect, caused_by(kOutsideId));
  const Receipt also_outside = must_append(*store, "both", kEffect, caused_by(kOutsideId));
  REQUIRE(p.hlc < q.hlc);
  REQUIRE(p_child.hlc < q_child.hlc);

  auto expect_concurrent = [&](const Receipt& x, const Receipt& y) {
    auto relation = store->happened_before(x.event_id, y.event_id);
    KEEL_REQUIRE_OK(relation);
    CHECK(relation->order == CausalOrder::Concurrent);
    CHECK(relation->hlc_order == (x.hlc < y.hlc ? -1 : (y.hlc < x.hlc ? 1 : 0)));
  };
  expect_concurrent(p, q);
  expect_concurrent(q, p);
  expect_concurrent(p, q_child);  // earlier in sequence and HLC, yet not a cause
  expect_concurrent(q_child, p_child);
  expect_concurrent(q, p_child);
  expect_concurrent(shared_cause, also_outside);  // the same external cause is no causal path
  CHECK(store->happened_before(q.event_id, p.event_id)->hlc_order == 1);
  CHECK(store->happened_before(p.event_id, q.event_id)->hlc_order == -1);

  auto before = store->happened_before(q.event_id, q_child.event_id);
  KEEL_REQUIRE_OK(before);
  CHECK(before->order == CausalOrder::Before);
  CHECK(before->hlc_order == -1);
  CHECK(std::string(causal_order_name(CausalOrder::Before)) == "before");
  CHECK(std::string(causal_order_name(CausalOrder::After)) == "after");
  CHECK(std::string(causal_order_name(CausalOrder::Concurrent)) == "concurrent");
}

TEST_CASE("correlation_graph of a hand-built conversation lists its exact nodes and edges",
          "[causal]") {
  platform::MemoryFileSystem fs;
  auto store = open_store("/store", memory_options(fs));
  const Receipt placed = must_append(*store, "order:9", kCause, {}, "shop");
  const EventId conversation = placed.event_id;
  const Receipt paid =
      must_append(*store, "payment:9", kEffect, caused_by(placed.event_id, conversation));
  const Receipt unrelated = must_append(*store, "stock:1", kCause);  // its own conversation
  const Receipt reserved =
      must_append(*store, "stock:1", kEffect, caused_by(placed.event_id, conversation, 1));
  const Receipt shipped =
      must_append(*store, "order:9", kEffect, caused_by(paid.event_id, conversation));
  // In the conversation, caused by an event of another conversation.
  const Receipt restocked =
      must_append(*store, "stock:1", kEffect, caused_by(unrelated.event_id, conversation));
  // In the conversation, caused from outside the store.
  const Receipt refunded =
      must_append(*store, "payment:9", kEffect, caused_by(kOutsideId, conversation));
  // In the conversation, with no cause at all.
  const Receipt noted =
      must_append(*store, "note:1", kCause, caused_by(std::nullopt, conversation));
  // Caused by a member, but in another conversation: not a node.
  must_append(*store, "mail:9", kEffect, caused_by(shipped.event_id));

  auto graph = store->correlation_graph(conversation);
  KEEL_REQUIRE_OK(graph);
  CHECK(sequences_of(graph->nodes) ==
        std::vector<uint64_t>{placed.sequence, paid.sequence, reserved.sequence, shipped.sequence,
                              restocked.sequence, refunded.sequence, noted.sequence});
  CHECK(graph->edges == std::vector<CausalEdge>{{placed.event_id, paid.event_id},
                                                {placed.event_id, reserved.event_id},
                                                {paid.event_id, shipped.event_id}});
  CHECK(graph->outside_causes == std::vector<CausalEdge>{{unrelated.event_id, restocked.event_id},
                                                         {kOutsideId, refunded.event_id}});
  CHECK_FALSE(graph->truncated);
  const EventRef& first = graph->nodes[0];
  CHECK(first ==
        EventRef{placed.sequence, placed.event_id, "order:9", 0, 1, kCause, "shop", placed.hlc});
  CHECK(graph->nodes[2].lane == 1);

  SECTION("limit keeps the first nodes and only the edges among them") {
    auto cut = store->correlation_graph(conversation, 3);
    KEEL_REQUIRE_OK(cut);
    CHECK(sequences_of(cut->nodes) ==
          std::vector<uint64_t>{placed.sequence, paid.sequence, reserved.sequence});
    CHECK(cut->edges == std::vector<CausalEdge>{{placed.event_id, paid.event_id},
                                                {placed.event_id, reserved.event_id}});
    CHECK(cut->outside_causes.empty());
    CHECK(cut->truncated);
  }
  SECTION("a query by correlation returns the same events") {
    Query q;
    q.correlation_id = conversation;
    q.limit = 2;
    CHECK(sequences_of(query_all(*store, q)) == sequences_of(graph->nodes));
  }
  SECTION("an unknown correlation has no nodes") {
    auto empty = store->correlation_graph(EventId{1, 2});
    KEEL_REQUIRE_OK(empty);
    CHECK(empty->nodes.empty());
    CHECK(empty->edges.empty());
    CHECK_FALSE(empty->truncated);
  }
}

// ---- argument errors ----------------------------------------------------------------------------

TEST_CASE("query refuses invalid arguments with InvalidArgument naming the field",
          "[causal][query]") {
  platform::MemoryFileSystem fs;
  auto store = open_store("/store", memory_options(fs));
  const Receipt one = must_append(*store, "order:1", kCause);

  struct Bad {
    const char* what;
    Query query;
    const char* argument;
  };
  std::vector<Bad> bad;
  auto add = [&](const char* what, const char* argument, auto edit) {
    Query q;
    edit(q);
    bad.push_back(Bad{what, q, argument});
  };
  add("entity and entity_prefix both set", "entity", [](Query& q) {
    q.entity = "order:1";
    q.entity_prefix = "order";
  });
  add("clock_from without an entity", "clock_from", [](Query& q) { q.clock_from = 2; });
  add("clock_to without an entity", "clock_from", [](Query& q) { q.clock_to = 5; });
  add("reversed clock range", "clock_from", [](Query& q) {
    q.entity = "order:1";
    q.clock_from = 3;
    q.clock_to = 2;
  });
  add("reversed sequence range", "sequence_from", [](Query& q) {
    q.sequence_from = 10;
    q.sequence_to = 9;
  });
  add("reversed HLC range", "hlc_from", [&](Query& q) {
    q.hlc_from = Hlc{one.hlc.wall_ms, one.hlc.logical + 1};
    q.hlc_to = one.hlc;
  });
  add("category above 15", "category", [](Query& q) { q.category = 16; });
  add("category disagreeing with kind", "category", [](Query& q) {
    q.kind = EventKind::make(1, 1);
    q.category = 2;
  });
  add("entity_prefix with a NUL byte", "entity_prefix",
      [](Query& q) { q.entity_prefix = std::string("order\0", 6); });
  add("entity_prefix longer than an entity may be", "entity_prefix",
      [](Query& q) { q.entity_prefix = std::string(kEntityMaxBytes + 1, 'o'); });
  add("lane at lanes_max", "lane", [](Query& q) { q.lane = kLanesMax; });
  add("limit 0", "limit", [](Query& q) { q.limit = 0; });
  add("limit above kQueryLimitMax", "limit", [](Query& q) { q.limit = kQueryLimitMax + 1; });

  for (const Bad& b : bad) {
    INFO(b.what);
    auto page = store->query(b.query);
    REQUIRE_FALSE(page.ok());
    CHECK(page.error().is(ErrorCode::InvalidArgument));
    CHECK(page.error().field_string("argument") == std::optional<std::string>(b.argument));
  }
  // An invalid entity is refused as a Domain error naming the entity (the coordinate check's
  // InvalidCoordinate, as for appends and verify_entity).
  for (const std::string& entity : {std::string(), std::string("a\0b", 3), std::string("../x")}) {
    Query q;
    q.entity = entity;
    auto page = store->query(q);
    REQUIRE_FALSE(page.ok());
    CHECK(page.error().error_class() == ErrorClass::Domain);
    CHECK(page.error().field_string("component") == std::optional<std::string>("entity"));
  }

  // The boundaries themselves are valid.
  std::vector<std::pair<const char*, Query>> good;
  auto add_good = [&](const char* what, auto edit) {
    Query q;
    edit(q);
    good.emplace_back(what, q);
  };
  add_good("clock range with a prefix", [](Query& q) {
    q.entity_prefix = "order";
    q.clock_from = 1;
    q.clock_to = 1;
  });
  add_good("one-point ranges", [&](Query& q) {
    q.sequence_from = q.sequence_to = one.sequence;
    q.hlc_from = q.hlc_to = one.hlc;
  });
  add_good("category 15", [](Query& q) { q.category = 15; });
  add_good("kind and its own category", [](Query& q) {
    q.kind = kCause;
    q.category = kCause.category();
  });
  add_good("the last lane", [](Query& q) { q.lane = kLanesMax - 1; });
  add_good("limit kQueryLimitMax", [](Query& q) { q.limit = kQueryLimitMax; });
  for (const auto& [what, q] : good) {
    INFO(what);
    KEEL_REQUIRE_OK(store->query(q));
  }
}

TEST_CASE("causal queries refuse unknown ids, bad limits and a relation of an event to itself",
          "[causal]") {
  platform::MemoryFileSystem fs;
  auto store = open_store("/store", memory_options(fs));
  const EventId a = must_append(*store, "order:1", kCause).event_id;
  const EventId unknown{a.high, a.low + 1};

  CHECK(store->ancestors(unknown).error().is(ErrorCode::NotFound));
  CHECK(store->descendants(unknown).error().is(ErrorCode::NotFound));
  CHECK(store->happened_before(a, unknown).error().is(ErrorCode::NotFound));
  CHECK(store->happened_before(unknown, a).error().is(ErrorCode::NotFound));
  CHECK(store->ancestors(unknown).error().field_string("key") == unknown.to_hex());

  auto self = store->happened_before(a, a);
  REQUIRE_FALSE(self.ok());
  CHECK(self.error().is(ErrorCode::InvalidArgument));

  CHECK(store->ancestors(a, 0).error().is(ErrorCode::InvalidArgument));
  CHECK(store->descendants(a, 0).error().is(ErrorCode::InvalidArgument));
  CHECK(store->descendants(a, kQueryLimitMax + 1).error().is(ErrorCode::InvalidArgument));
  CHECK(store->correlation_graph(a, 0).error().is(ErrorCode::InvalidArgument));
  CHECK(store->correlation_graph(a, kQueryLimitMax + 1).error().is(ErrorCode::InvalidArgument));
  KEEL_REQUIRE_OK(store->descendants(a, kQueryLimitMax));
  KEEL_REQUIRE_OK(store->correlation_graph(a, kQueryLimitMax));
}

// ---- visibility ---------------------------------------------------------------------------------

TEST_CASE("an event written but not yet visible appears in no query or causal answer",
          "[causal][durability]") {
  platform::FaultFileSystem fs;
  StoreOptions options = memory_options(fs);
  options.sync_interval = std::chrono::hours(1);  // no background sync: only the test syncs
  auto store = open_store("/store", options);
  const Receipt root = must_append(*store, "order:1", kCause, {}, "shop");
  // A failing check below must not leave the store's close blocked on a stalled sync.
  struct ReleaseStall {
    platform::FaultFileSystem& fs;
    ~ReleaseStall() { fs.stall_syncs(false); }
  } release_stall{fs};

  // Under AfterDurable (the default) an append that returns at Written is not visible yet; the
  // stalled fdatasync keeps any sync from making it durable meanwhile.
  fs.stall_syncs(true);
  AppendOptions written = caused_by(root.event_id, root.event_id);
  written.durability = Durability::Written;
  const Receipt pending = must_append(*store, "order:1", kEffect, written, "shop");
  REQUIRE(store->frontier()[Watermark::Written].global_sequence == pending.sequence);
  REQUIRE(store->stats().sequence_visible == root.sequence);

  std::vector<Query> queries(8);
  queries[0].entity = "order:1";
  queries[1].entity_prefix = "order";
  queries[2].correlation_id = root.event_id;
  queries[3].scope = "shop";
  queries[4].kind = kEffect;
  queries[5].sequence_from = pending.sequence;
  queries[6].order = Order::Descending;
  queries[7].hlc_from = pending.hlc;
  auto answers = [&] {
    std::vector<std::vector<uint64_t>> out;
    for (const Query& q : queries) out.push_back(sequences_of(query_all(*store, q)));
    return out;
  };
  const std::vector<uint64_t> just_root{root.sequence};
  const std::vector<uint64_t> nothing;
  CHECK(answers() == std::vector<std::vector<uint64_t>>{just_root, just_root, just_root, just_root,
                                                        nothing, nothing, just_root, nothing});
  CHECK(store->ancestors(pending.event_id).error().is(ErrorCode::NotFound));
  CHECK(store->descendants(pending.event_id).error().is(ErrorCode::NotFound));
  CHECK(store->happened_before(root.event_id, pending.event_id).error().is(ErrorCode::NotFound));
  auto effects = store->descendants(root.event_id);
  KEEL_REQUIRE_OK(effects);
  CHECK(effects->events.empty());
  auto graph = store->correlation_graph(root.event_id);
  KEEL_REQUIRE_OK(graph);
  CHECK(sequences_of(graph->nodes) == just_root);
  CHECK(graph->edges.empty());
  auto checked = store->verify_entity("order:1");
  KEEL_REQUIRE_OK(checked);
  CHECK(checked->events_checked == 1);

  // Once durable, every one of those answers includes it: the checks above could see it.
  fs.stall_syncs(false);
  KEEL_REQUIRE_OK(store->sync());
  REQUIRE(store->stats().sequence_visible == pending.sequence);
  const std::vector<uint64_t> both{root.sequence, pending.sequence};
  const std::vector<uint64_t> just_pending{pending.sequence};
  CHECK(answers() == std::vector<std::vector<uint64_t>>{
                         both, both, both, both, just_pending, just_pending,
                         std::vector<uint64_t>{pending.sequence, root.sequence}, just_pending});
  KEEL_REQUIRE_OK(store->ancestors(pending.event_id));
  CHECK(sequences_of(store->descendants(root.event_id)->events) == just_pending);
  CHECK(store->correlation_graph(root.event_id)->edges ==
        std::vector<CausalEdge>{{root.event_id, pending.event_id}});
  CHECK(store->happened_before(root.event_id, pending.event_id)->order == CausalOrder::Before);
  CHECK(store->verify_entity("order:1")->events_checked == 2);
}

// ---- verify_entity and a damaged store ----------------------------------------------------------

TEST_CASE("verify_entity checks every lane of one entity, or the one lane given",
          "[causal][verify]") {
  platform::MemoryFileSystem fs;
  auto store = open_store("/store", memory_options(fs));
  const std::map<uint32_t, int> per_lane{{0, 3}, {1, 2}, {2, 1}};
  for (const auto& [lane, count] : per_lane) {
    for (int i = 0; i < count; ++i) must_append(*store, "order:1", kCause, caused_by({}, {}, lane));
  }
  for (int i = 0; i < 4; ++i) must_append(*store, "order:10", kCause);  // shares the prefix
  std::vector<BatchItem> batch{{{"order:1", ""}, kEffect, "b", caused_by({}, {}, 1)},
                               {{"user:1", ""}, kEffect, "b", {}}};
  KEEL_REQUIRE_OK(store->append_batch(batch));

  auto whole = store->verify_entity("order:1");
  KEEL_REQUIRE_OK(whole);
  CHECK(whole->ok);
  CHECK(whole->events_checked == 7);
  auto lane1 = store->verify_entity("order:1", 1);
  KEEL_REQUIRE_OK(lane1);
  CHECK(lane1->ok);
  CHECK(lane1->events_checked == 3);
  auto lane2 = store->verify_entity("order:1", 2);
  KEEL_REQUIRE_OK(lane2);
  CHECK(lane2->events_checked == 1);
  auto empty_lane = store->verify_entity("order:1", 3);
  KEEL_REQUIRE_OK(empty_lane);
  CHECK(empty_lane->ok);
  CHECK(empty_lane->events_checked == 0);
  CHECK(store->verify_entity("order:10")->events_checked == 4);
  CHECK(store->verify_entity("order")->events_checked == 0);  // an entity, not a prefix
  CHECK(store->verify_entity("order:1", kLanesMax).error().is(ErrorCode::InvalidArgument));
}

namespace {

// Rewrites, in place, the causation of the Event frame holding `sequence` in segment `segment_id`:
// the body is re-encoded with `cause` (its chained hash recomputed) and framed with the same
// header (its checksum recomputed), so the frame is valid and only its meaning is damaged. The
// causation field must already hold a 16-byte id, so the frame keeps its length.
void rewrite_causation(const std::string& path, uint64_t segment_id, uint64_t sequence,
                       const EventId& cause) {
  const std::vector<std::byte> bytes = test::read_bytes(path);
  for (uint64_t at = format::kSegmentHeaderSize; at < bytes.size();) {
    format::DecodedFrame frame;
    if (format::decode_frame(std::span(bytes).subspan(at), segment_id, frame) !=
        format::FrameDecode::Ok) {
      break;
    }
    if (frame.header.type == format::RecordType::Event && frame.header.sequence == sequence) {
      format::EventBody body;  // its views point into `bytes`
      REQUIRE(format::decode_record_events(
                  frame, [&](uint32_t, const format::EventBody& b) { body = b; }) == nullptr);
      REQUIRE(body.causation_id.has_value());
      body.causation_id = cause;
      std::vector<std::byte> rewritten;
      format::append_event_frame(
          rewritten,
          format::FrameContext{segment_id, frame.header.epoch, frame.header.durable_through},
          sequence, body, nullptr);
      REQUIRE(rewritten.size() == frame.size);
      test::write_bytes(path, at, rewritten);
      return;
    }
    at += frame.size;
  }
  FAIL("no Event frame holds sequence " << sequence);
}

}  // namespace

TEST_CASE("a hand-edited causation cycle is reported as Corruption, never followed",
          "[causal][verify]") {
  TempDir dir;
  StoreOptions options;
  options.create_if_missing = true;
  options.lanes_max = kLanesMax;
  options.id_seed = 3;
  Receipt a;
  Receipt b;
  uint64_t a_lane_0_events = 0;
  {
    auto store = open_store(dir.path(), options);
    must_append(*store, "order:7", kCause);  // lane 0 of A's entity: stays healthy
    a_lane_0_events = 1;
    // A names an external cause, so its causation field already holds a 16-byte id.
    a = must_append(*store, "order:7", kCause, caused_by(kOutsideId, std::nullopt, 1));
    b = must_append(*store, "payment:7", kEffect, caused_by(a.event_id, a.event_id));
    must_append(*store, "mail:7", kEffect, caused_by(b.event_id, a.event_id));
    KEEL_REQUIRE_OK(store->close());
  }
  // A's cause becomes B (a later event): B -> A -> B is a cycle.
  rewrite_causation(dir / log::segment_file_name(1), 1, a.sequence, b.event_id);

  // verify() and verify_entity() read the log: they report the forward link whichever way the
  // indexes were loaded.
  auto expect_verify_reports = [&](Store& store) {
    auto report = store.verify();
    KEEL_REQUIRE_OK(report);
    CHECK_FALSE(report->ok);
    CHECK(report->first_bad_sequence == a.sequence);
    CHECK_THAT(report->problem, Catch::Contains("later sequence " + std::to_string(b.sequence)));
    auto entity = store.verify_entity("order:7");
    KEEL_REQUIRE_OK(entity);
    CHECK_FALSE(entity->ok);
    CHECK(entity->first_bad_sequence == a.sequence);
    CHECK_THAT(entity->problem, Catch::Contains("later sequence"));
    auto lane1 = store.verify_entity("order:7", 1);
    KEEL_REQUIRE_OK(lane1);
    CHECK_FALSE(lane1->ok);
    CHECK(lane1->first_bad_sequence == a.sequence);
    auto lane0 = store.verify_entity("order:7", 0);  // the damaged event is not on lane 0
    KEEL_REQUIRE_OK(lane0);
    CHECK(lane0->ok);
    CHECK(lane0->events_checked == a_lane_0_events);
    auto effect_entity = store.verify_entity("payment:7");  // B's cause is an earlier event
    KEEL_REQUIRE_OK(effect_entity);
    CHECK(effect_entity->ok);
  };

  SECTION("indexes rebuilt from the log: causal walks report the link and never follow it") {
    std::filesystem::remove(dir / format::kIndexImageFileName);
    auto store = open_store(dir.path(), options);  // every frame is valid: recovery accepts it
    REQUIRE(store->stats().index_source == "log");
    auto read_back = store->get(a.event_id);
    KEEL_REQUIRE_OK(read_back);
    REQUIRE(read_back->causation_id == std::optional<EventId>(b.event_id));

    for (const EventId& start : {b.event_id, a.event_id}) {
      auto ancestry = store->ancestors(start);
      REQUIRE_FALSE(ancestry.ok());
      const StoreError& error = ancestry.error();
      CHECK(error.is(ErrorCode::Corruption));
      CHECK(error.field_u64("offset") == std::optional<uint64_t>(a.sequence));
      const std::string reason = error.field_string("reason").value_or("");
      CHECK_THAT(reason, Catch::Contains("the cause of sequence " + std::to_string(a.sequence)));
      CHECK_THAT(reason, Catch::Contains("later sequence " + std::to_string(b.sequence)));
    }
    // Every other walk ends.
    auto effects = store->descendants(a.event_id);
    KEEL_REQUIRE_OK(effects);
    CHECK(sequences_of(effects->events) == std::vector<uint64_t>{b.sequence, b.sequence + 1});
    auto from_b = store->descendants(b.event_id);
    KEEL_REQUIRE_OK(from_b);
    CHECK(sequences_of(from_b->events) == std::vector<uint64_t>{b.sequence + 1});
    auto relation = store->happened_before(a.event_id, b.event_id);
    KEEL_REQUIRE_OK(relation);
    CHECK(relation->order == CausalOrder::Before);
    KEEL_REQUIRE_OK(store->happened_before(b.event_id, a.event_id));
    auto graph = store->correlation_graph(a.event_id);
    KEEL_REQUIRE_OK(graph);
    CHECK(graph->nodes.size() == 3);  // A (the root of its conversation), B and the mail event

    expect_verify_reports(*store);
  }
  SECTION("indexes restored from an image taken before the edit: verify still finds it") {
    // The image is trusted at open (segments/FORMAT.md 9.4: damage before its checkpoint is found
    // by verify, not at open), so the walks answer from the indexes as they were; they end.
    auto store = open_store(dir.path(), options);
    REQUIRE(store->stats().index_source == "image");
    for (const EventId& start : {b.event_id, a.event_id}) {
      auto ancestry = store->ancestors(start);
      CHECK((ancestry.ok() || ancestry.error().is(ErrorCode::Corruption)));
    }
    KEEL_REQUIRE_OK(store->descendants(a.event_id));
    KEEL_REQUIRE_OK(store->happened_before(b.event_id, a.event_id));
    expect_verify_reports(*store);
  }
}
