// The query model test: random stores (appends and batches over entities that share prefixes,
// lanes, scopes, kinds, conversations and causation links, some naming events outside the store,
// with reopens from the index image or the log between them) answer random Query values exactly as
// a brute-force filter of an in-memory model does, page by page in both orders, and answer
// ancestors, descendants, happened_before and correlation_graph as a brute-force walk over the
// model's causation links does. A second property keeps appending between the pages of an ascending
// query: the pages never repeat or skip an event.
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "format/format_constants.h"
#include "keel/keel.h"
#include "platform/memory_file_system.h"

using namespace keel;

namespace {

// Entities sharing prefixes ("order:1" is a prefix of "order:10" and "order:100", "order" of
// "orders:2"), so prefix queries must not stop at, or run past, a neighbouring entity.
const std::vector<std::string> kEntities = {"order:1", "order:10",  "orders:2",
                                            "user:1",  "order:100", "user:10"};
const std::vector<std::string> kQueryEntities = {"order:1",   "order:10", "orders:2", "user:1",
                                                 "order:100", "user:10",  "nobody:1"};
const std::vector<std::string> kPrefixes = {"",       "o",     "order",  "order:1", "order:10",
                                            "orders", "user:", "user:1", "zebra"};
const std::vector<std::string> kScopes = {"", "billing", "billing:eu", "ship"};
const std::vector<std::string> kQueryScopes = {"", "billing", "billing:eu", "ship", "nope"};
constexpr uint32_t kLanes = 4;

struct ModelEvent {
  Receipt receipt;
  std::string entity;
  std::string scope;
  uint32_t lane = 0;
  EventKind kind;
  EventId correlation_id;
  std::optional<EventId> causation_id;
  std::optional<std::string> metadata;
  std::string payload;
};

// Every appended event (all at Durable, so all visible), by sequence - 1.
struct Model {
  std::vector<ModelEvent> events;
  std::map<EventId, size_t> by_id;

  size_t size() const { return events.size(); }
  // The position of the event's cause when the cause is an event of the store, else nullopt
  // (no cause, or one outside the store: an external cause).
  std::optional<size_t> cause_of(size_t i) const {
    const auto& cause = events[i].causation_id;
    if (!cause) return std::nullopt;
    auto it = by_id.find(*cause);
    if (it == by_id.end()) return std::nullopt;
    return it->second;
  }
  void add(ModelEvent e) {
    RC_ASSERT(e.receipt.sequence == events.size() + 1);
    by_id.emplace(e.receipt.event_id, events.size());
    events.push_back(std::move(e));
  }
};

StoreOptions options_on(platform::MemoryFileSystem& fs) {
  StoreOptions options;
  options.file_system = &fs;
  options.create_if_missing = true;
  options.segment_size = 8192;  // several segments: pages read frames across rotations
  options.lanes_max = kLanes;
  options.id_seed = 17;
  return options;
}

std::unique_ptr<Store> must_open(platform::MemoryFileSystem& fs, bool read_only = false) {
  StoreOptions options = options_on(fs);
  options.read_only = read_only;
  options.create_if_missing = !read_only;
  auto store = Store::open("/store", options);
  RC_ASSERT(store.ok());
  return std::move(store).value();
}

// Choices uniform over the whole range whatever rapidcheck's size (inRange scales the range down
// with the size, which would make every early case take the first branch); they still shrink
// towards `min`.
template <class T = int>
T uniform(T min, T max) {
  return *rc::gen::resize(100, rc::gen::inRange<T>(min, max));
}
bool coin() { return uniform(0, 2) == 1; }

std::string pick(const std::vector<std::string>& from) {
  return from[uniform<size_t>(0, from.size())];
}

// An id no store makes: store ids start with the HLC wall milliseconds, far below 2^63.
EventId random_outside_id() {
  auto any = rc::gen::resize(100, rc::gen::arbitrary<uint64_t>());
  return EventId{(1ull << 63) | *any, *any};
}

// An earlier event, often one of the last few (so causation chains grow deep).
size_t pick_earlier(const Model& model) {
  size_t n = model.size();
  if (coin()) return n - 1 - uniform<size_t>(0, std::min<size_t>(n, 3));
  return uniform<size_t>(0, n);
}

// A random item whose links name only events already in `model` (or ids outside the store).
BatchItem random_item(const Model& model, size_t serial) {
  BatchItem item;
  item.coordinate.entity = pick(kEntities);
  item.coordinate.scope = pick(kScopes);
  item.kind =
      EventKind::make(static_cast<uint8_t>(uniform(1, 4)), static_cast<uint16_t>(uniform(0, 3)));
  item.payload = "p" + std::to_string(serial) + std::string(uniform<size_t>(0, 24), 'x');
  item.options.lane = uniform<uint32_t>(0, kLanes);
  if (uniform(0, 4) == 0) item.options.metadata = "m" + std::to_string(serial);
  const bool any_earlier = model.size() > 0;
  switch (uniform(0, 11)) {  // the conversation
    case 0:
    case 1:
    case 2:
      if (any_earlier)
        item.options.correlation_id = model.events[pick_earlier(model)].receipt.event_id;
      break;
    case 3:
    case 4:
      if (any_earlier)
        item.options.correlation_id = model.events[pick_earlier(model)].correlation_id;
      break;
    case 5:
      item.options.correlation_id = random_outside_id();
      break;
    default:
      break;  // its own id: a new conversation
  }
  switch (uniform(0, 11)) {  // the cause
    case 0:
    case 1:
    case 2:
    case 3:
    case 4:
      if (any_earlier)
        item.options.causation_id = model.events[pick_earlier(model)].receipt.event_id;
      break;
    case 5:
    case 6:
      item.options.causation_id = random_outside_id();  // an external cause
      break;
    default:
      break;  // a root
  }
  return item;
}

ModelEvent model_event(const BatchItem& item, const Receipt& receipt) {
  return ModelEvent{receipt,
                    item.coordinate.entity,
                    item.coordinate.scope,
                    item.options.lane,
                    item.kind,
                    item.options.correlation_id.value_or(receipt.event_id),
                    item.options.causation_id,
                    item.options.metadata,
                    item.payload};
}

// Often an item that meets the query's entity, lane, scope, kind and conversation predicates
// (its ranges aside), so that appends between pages add events to the answer.
void lean_towards(BatchItem& item, const Query* q) {
  if (q == nullptr || coin()) return;
  if (q->entity && !q->entity->starts_with("nobody")) item.coordinate.entity = *q->entity;
  if (q->entity_prefix) {
    for (const std::string& entity : kEntities) {
      if (entity.starts_with(*q->entity_prefix)) item.coordinate.entity = entity;
    }
  }
  if (q->lane) item.options.lane = *q->lane;
  if (q->scope && *q->scope != "nope") item.coordinate.scope = *q->scope;
  if (q->kind && q->kind->category() != 4) item.kind = *q->kind;
  if (q->category && !q->kind && *q->category >= 1 && *q->category <= 3) {
    item.kind = EventKind::make(*q->category, item.kind.type());
  }
  if (q->correlation_id) item.options.correlation_id = *q->correlation_id;
}

// One append or one batch of 1..5 items (each at Durable, so visible on return).
void append_random(Store& store, Model& model, const Query* lean = nullptr) {
  if (uniform(0, 4) != 0) {
    BatchItem item = random_item(model, model.size());
    lean_towards(item, lean);
    auto receipt = store.append(item.coordinate, item.kind, item.payload, item.options);
    RC_ASSERT(receipt.ok());
    model.add(model_event(item, *receipt));
    return;
  }
  std::vector<BatchItem> items;
  const int count = uniform(1, 6);
  for (int i = 0; i < count; ++i) {
    items.push_back(random_item(model, model.size() + items.size()));
    lean_towards(items.back(), lean);
  }
  auto receipts = store.append_batch(items);
  RC_ASSERT(receipts.ok());
  RC_ASSERT(receipts->size() == items.size());
  for (size_t i = 0; i < items.size(); ++i) model.add(model_event(items[i], (*receipts)[i]));
}

// A clean close and reopen: the indexes come back from the index image written at close, or, with
// the image removed, are rebuilt from the log (an empty store writes no image). Later appends
// extend them either way.
std::unique_ptr<Store> reopen(platform::MemoryFileSystem& fs, std::unique_ptr<Store> store,
                              const Model& model) {
  RC_ASSERT(store->close().ok());
  const bool from_log = model.size() == 0 || coin();
  if (from_log && model.size() > 0) {
    RC_ASSERT(fs.remove(std::string("/store/") + format::kIndexImageFileName).ok());
  }
  store = must_open(fs);
  RC_ASSERT(store->stats().index_source == (from_log ? "log" : "image"));
  return store;
}

// A random store of up to ~200 events, with occasional reopens.
std::unique_ptr<Store> build_store(platform::MemoryFileSystem& fs, Model& model, int ops_max) {
  auto store = must_open(fs);
  const int ops = uniform(1, ops_max);
  for (int op = 0; op < ops; ++op) {
    if (uniform(0, 40) == 0) store = reopen(fs, std::move(store), model);
    append_random(*store, model);
  }
  if (uniform(0, 4) == 0) store = reopen(fs, std::move(store), model);
  return store;
}

// ---- the brute-force query ----------------------------------------------------------------------

// Whether `e` matches every predicate of q (the page fields aside).
bool matches(const ModelEvent& e, const Query& q) {
  if (q.entity && e.entity != *q.entity) return false;
  if (q.entity_prefix && !e.entity.starts_with(*q.entity_prefix)) return false;
  if (q.lane && e.lane != *q.lane) return false;
  if (e.receipt.entity_clock < q.clock_from || e.receipt.entity_clock > q.clock_to) return false;
  if (q.scope && e.scope != *q.scope) return false;
  if (q.kind && e.kind != *q.kind) return false;
  if (q.category && e.kind.category() != *q.category) return false;
  if (q.correlation_id && e.correlation_id != *q.correlation_id) return false;
  if (e.receipt.sequence < q.sequence_from || e.receipt.sequence > q.sequence_to) return false;
  if (q.hlc_from && e.receipt.hlc < *q.hlc_from) return false;
  if (q.hlc_to && *q.hlc_to < e.receipt.hlc) return false;
  return true;
}

// The whole answer to q (every page), as positions in the model, in q's order, after q.after.
std::vector<size_t> brute_force(const Model& model, const Query& q) {
  std::vector<size_t> found;
  for (size_t i = 0; i < model.size(); ++i) {
    const uint64_t sequence = model.events[i].receipt.sequence;
    if (q.after && q.order == Order::Ascending && sequence <= *q.after) continue;
    if (q.after && q.order == Order::Descending && sequence >= *q.after) continue;
    if (matches(model.events[i], q)) found.push_back(i);
  }
  if (q.order == Order::Descending) std::reverse(found.begin(), found.end());
  return found;
}

void check_event(const Event& got, const ModelEvent& want, bool with_payload) {
  RC_ASSERT(got.receipt() == want.receipt);
  RC_ASSERT(got.coordinate.entity == want.entity);
  RC_ASSERT(got.coordinate.scope == want.scope);
  RC_ASSERT(got.lane == want.lane);
  RC_ASSERT(got.kind == want.kind);
  RC_ASSERT(got.correlation_id == want.correlation_id);
  RC_ASSERT(got.causation_id == want.causation_id);
  if (with_payload) {
    RC_ASSERT(got.payload == want.payload);
    RC_ASSERT(got.metadata == want.metadata);
  } else {
    RC_ASSERT(got.payload.empty());
    RC_ASSERT(!got.metadata.has_value());
  }
}

// ---- random queries -----------------------------------------------------------------------------

// An HLC at, just below or just above a receipt's (a range bound that may fall between events).
Hlc hlc_near(const Model& model) {
  Hlc h = model.events[uniform<size_t>(0, model.size())].receipt.hlc;
  switch (uniform(0, 6)) {
    case 0:
      return Hlc{h.wall_ms, h.logical + 1};
    case 1:
      return h.logical > 0 ? Hlc{h.wall_ms, h.logical - 1} : Hlc{h.wall_ms - 1, UINT32_MAX};
    case 2:
      return Hlc{h.wall_ms + 1, 0};
    default:
      return h;
  }
}

// The predicate fields a random query may set.
enum class Field {
  Entity,
  Prefix,
  Clock,
  Lane,
  Scope,
  Kind,
  Category,
  Correlation,
  Sequence,
  HlcRange
};
constexpr int kFieldCount = 10;

// A query setting 0 to `fields_max` predicate fields chosen at random (so answers range from every
// event to none), with random page fields.
Query random_query(const Model& model, size_t fields_max) {
  Query q;
  const uint64_t n = model.size();
  std::vector<int> fields(kFieldCount);
  for (int f = 0; f < kFieldCount; ++f) fields[f] = f;
  for (int f = kFieldCount - 1; f > 0; --f) std::swap(fields[f], fields[uniform(0, f + 1)]);
  fields.resize(uniform<size_t>(0, fields_max + 1));
  auto chosen = [&](Field f) {
    return std::find(fields.begin(), fields.end(), static_cast<int>(f)) != fields.end();
  };
  if (chosen(Field::Entity)) {
    q.entity = pick(kQueryEntities);
  } else if (chosen(Field::Prefix) || chosen(Field::Clock)) {
    q.entity_prefix = pick(kPrefixes);  // a clock range needs an entity or a prefix
  }
  if (chosen(Field::Clock)) {
    q.clock_from = uniform<uint64_t>(0, 6);
    q.clock_to = coin() ? UINT64_MAX : q.clock_from + uniform<uint64_t>(0, 6);
  }
  if (chosen(Field::Lane)) q.lane = uniform<uint32_t>(0, kLanes);
  if (chosen(Field::Scope)) q.scope = pick(kQueryScopes);
  if (chosen(Field::Kind)) {  // mostly a kind the store holds (categories 1..3, types 0..2)
    q.kind = uniform(0, 8) == 0 ? EventKind::make(4, 3)
                                : EventKind::make(static_cast<uint8_t>(uniform(1, 4)),
                                                  static_cast<uint16_t>(uniform(0, 3)));
  }
  if (chosen(Field::Category)) {
    q.category = q.kind ? q.kind->category() : static_cast<uint8_t>(uniform(0, 5));
  }
  if (chosen(Field::Correlation) && n > 0) {
    const ModelEvent& e = model.events[uniform<size_t>(0, n)];
    switch (uniform(0, 8)) {
      case 0:
      case 1:
        q.correlation_id = e.receipt.event_id;  // a root, or an event of an older conversation
        break;
      case 2:
        q.correlation_id = random_outside_id();
        break;
      default:
        q.correlation_id = e.correlation_id;
        break;
    }
  }
  if (chosen(Field::Sequence)) {
    if (coin()) q.sequence_from = uniform<uint64_t>(0, n + 3);
    if (coin()) q.sequence_to = q.sequence_from + uniform<uint64_t>(0, n + 3);
  }
  if (chosen(Field::HlcRange) && n > 0) {
    if (coin()) q.hlc_from = hlc_near(model);
    if (coin()) q.hlc_to = hlc_near(model);
    if (q.hlc_from && q.hlc_to && *q.hlc_to < *q.hlc_from) std::swap(*q.hlc_from, *q.hlc_to);
  }
  q.order = coin() ? Order::Ascending : Order::Descending;
  if (uniform(0, 4) == 0) q.after = uniform<uint64_t>(0, n + 3);
  q.limit = uniform(0, 5) == 0 ? 1000 : uniform<size_t>(1, 12);
  q.with_payload = coin();
  return q;
}

std::string hlc_text(const Hlc& h) {
  return std::to_string(h.wall_ms) + "." + std::to_string(h.logical);
}

// The query's set fields, for the counterexample report.
std::string describe(const Query& q) {
  std::string out = q.order == Order::Ascending ? "ascending" : "descending";
  if (q.entity) out += " entity=" + *q.entity;
  if (q.entity_prefix) out += " entity_prefix=" + *q.entity_prefix;
  if (q.lane) out += " lane=" + std::to_string(*q.lane);
  if (q.clock_from != 1 || q.clock_to != UINT64_MAX) {
    out += " clocks=" + std::to_string(q.clock_from) + ".." + std::to_string(q.clock_to);
  }
  if (q.scope) out += " scope='" + *q.scope + "'";
  if (q.kind) out += " kind=" + std::to_string(q.kind->value);
  if (q.category) out += " category=" + std::to_string(*q.category);
  if (q.correlation_id) out += " correlation=" + q.correlation_id->to_hex();
  if (q.sequence_from != 1 || q.sequence_to != UINT64_MAX) {
    out += " sequences=" + std::to_string(q.sequence_from) + ".." + std::to_string(q.sequence_to);
  }
  if (q.hlc_from) out += " hlc_from=" + hlc_text(*q.hlc_from);
  if (q.hlc_to) out += " hlc_to=" + hlc_text(*q.hlc_to);
  if (q.after) out += " after=" + std::to_string(*q.after);
  out += " limit=" + std::to_string(q.limit);
  return out;
}

// Follows next_after page by page and checks every page against the brute-force answer: the pages
// concatenate to it exactly (no duplicate, no gap), every page but the last is full and ends at
// next_after, and next_after is nullopt exactly on the last page.
void check_paged_answer(Store& store, const Model& model, Query q) {
  const std::vector<size_t> expected = brute_force(model, q);
  // A counterexample prints every query of its case; the last one logged is the failing one.
  RC_LOG() << "query: " << describe(q) << "\nexpected sequences:";
  for (size_t i : expected) RC_LOG() << " " << model.events[i].receipt.sequence;
  RC_LOG() << "\n";
  size_t at = 0;
  for (size_t pages = 0;; ++pages) {
    RC_ASSERT(pages <= expected.size());  // each page but the last holds at least one event
    auto page = store.query(q);
    RC_ASSERT(page.ok());
    RC_ASSERT(page->events.size() <= q.limit);
    for (const Event& e : page->events) {
      RC_ASSERT(at < expected.size());
      check_event(e, model.events[expected[at]], q.with_payload);
      ++at;
    }
    const bool more = at < expected.size();
    RC_ASSERT(page->next_after.has_value() == more);
    if (!more) return;
    RC_ASSERT(page->events.size() == q.limit);
    RC_ASSERT(*page->next_after == page->events.back().receipt().sequence);
    q.after = page->next_after;
  }
}

// ---- the brute-force causal walks ---------------------------------------------------------------

EventRef ref_of(const ModelEvent& e) {
  return EventRef{e.receipt.sequence,
                  e.receipt.event_id,
                  e.entity,
                  e.lane,
                  e.receipt.entity_clock,
                  e.kind,
                  e.scope,
                  e.receipt.hlc};
}

void check_ancestors(Store& store, const Model& model, size_t i, size_t limit) {
  std::vector<EventRef> chain;
  std::optional<EventId> external;
  for (std::optional<size_t> at = i; at && chain.size() < limit; at = model.cause_of(*at)) {
    chain.push_back(ref_of(model.events[*at]));
    if (!model.cause_of(*at)) external = model.events[*at].causation_id;  // the root's cause
  }
  auto got = store.ancestors(model.events[i].receipt.event_id, limit);
  RC_ASSERT(got.ok());
  RC_ASSERT(got->chain == chain);
  RC_ASSERT(got->external_cause == external);
}

void check_descendants(Store& store, const Model& model, size_t i, size_t limit) {
  std::vector<std::vector<size_t>> effects(model.size());
  for (size_t j = 0; j < model.size(); ++j) {
    if (auto cause = model.cause_of(j)) effects[*cause].push_back(j);
  }
  std::vector<EventRef> all;  // breadth-first, each level in sequence order
  std::vector<size_t> level{i};
  while (!level.empty()) {
    std::vector<size_t> next;
    for (size_t parent : level) {
      next.insert(next.end(), effects[parent].begin(), effects[parent].end());
    }
    std::sort(next.begin(), next.end());
    for (size_t j : next) all.push_back(ref_of(model.events[j]));
    level = std::move(next);
  }
  auto got = store.descendants(model.events[i].receipt.event_id, limit);
  RC_ASSERT(got.ok());
  RC_ASSERT(got->truncated == (all.size() > limit));
  if (all.size() > limit) all.resize(limit);
  RC_ASSERT(got->events == all);
}

bool is_ancestor(const Model& model, size_t ancestor, size_t of) {
  for (auto at = model.cause_of(of); at; at = model.cause_of(*at)) {
    if (*at == ancestor) return true;
  }
  return false;
}

void check_happened_before(Store& store, const Model& model, size_t a, size_t b) {
  auto got =
      store.happened_before(model.events[a].receipt.event_id, model.events[b].receipt.event_id);
  if (a == b) {
    RC_ASSERT(!got.ok());
    RC_ASSERT(got.error().is(ErrorCode::InvalidArgument));
    return;
  }
  RC_ASSERT(got.ok());
  CausalOrder want = is_ancestor(model, a, b)   ? CausalOrder::Before
                     : is_ancestor(model, b, a) ? CausalOrder::After
                                                : CausalOrder::Concurrent;
  RC_ASSERT(got->order == want);
  const Hlc& ha = model.events[a].receipt.hlc;
  const Hlc& hb = model.events[b].receipt.hlc;
  RC_ASSERT(got->hlc_order == (ha < hb ? -1 : hb < ha ? 1 : 0));
}

void check_correlation_graph(Store& store, const Model& model, const EventId& correlation,
                             size_t limit) {
  std::vector<size_t> members;
  for (size_t i = 0; i < model.size(); ++i) {
    if (model.events[i].correlation_id == correlation) members.push_back(i);
  }
  CausalGraph want;
  want.truncated = members.size() > limit;
  if (want.truncated) members.resize(limit);
  for (size_t i : members) {
    const ModelEvent& e = model.events[i];
    want.nodes.push_back(ref_of(e));
    if (!e.causation_id) continue;
    std::optional<size_t> cause = model.cause_of(i);
    bool inside = cause && std::binary_search(members.begin(), members.end(), *cause);
    (inside ? want.edges : want.outside_causes)
        .push_back(CausalEdge{*e.causation_id, e.receipt.event_id});
  }
  auto got = store.correlation_graph(correlation, limit);
  RC_ASSERT(got.ok());
  RC_ASSERT(got->nodes == want.nodes);
  RC_ASSERT(got->edges == want.edges);
  RC_ASSERT(got->outside_causes == want.outside_causes);
  RC_ASSERT(got->truncated == want.truncated);
}

size_t random_limit(size_t n) { return uniform<size_t>(1, n + 3); }

}  // namespace

TEST_CASE("random queries answer exactly as a brute-force filter of the model, page by page",
          "[prop][query]") {
  rc::prop("every Query field over random stores, both orders, every page", [] {
    platform::MemoryFileSystem fs;
    Model model;
    auto writer = build_store(fs, model, 130);
    // Sometimes a read-only open answers (its index is built from the log alone): after the writer
    // closed it sees every event; beside the writer, the durable prefix the log proves so far.
    std::unique_ptr<Store> reader;
    Model seen_by_reader;
    const int who = uniform(0, 8);
    if (who == 0) RC_ASSERT(writer->close().ok());
    if (who <= 1) {
      reader = must_open(fs, true);
      const uint64_t seen = reader->stats().sequence_visible;
      if (who == 0) RC_ASSERT(seen == model.size());
      RC_ASSERT(seen <= model.size());
      for (size_t i = 0; i < seen; ++i) seen_by_reader.add(model.events[i]);
    }
    Store& store = reader ? *reader : *writer;
    const Model& view = reader ? seen_by_reader : model;
    for (int round = 0; round < 25; ++round) {
      Query q = random_query(model, 4);
      check_paged_answer(store, view, q);
      q.order = q.order == Order::Ascending ? Order::Descending : Order::Ascending;
      check_paged_answer(store, view, q);
    }
  });
}

TEST_CASE("appends between the pages of an ascending query never cause a gap or a duplicate",
          "[prop][query]") {
  rc::prop("the pages equal the brute-force answer over the store as the last page saw it", [] {
    platform::MemoryFileSystem fs;
    Model model;
    auto store = build_store(fs, model, 60);
    Query q = random_query(model, 2);
    q.order = Order::Ascending;
    q.limit = uniform<size_t>(1, 4);
    if (uniform(0, 4) != 0) {  // mostly no upper bound, so that later events can join the answer
      q.sequence_to = UINT64_MAX;
      q.hlc_to.reset();
    }
    const std::vector<size_t> at_first_page = brute_force(model, q);
    std::vector<uint64_t> seen;
    int appends_left = uniform(0, 40);
    size_t events_at_last_call = 0;
    Query paged = q;
    for (;;) {
      events_at_last_call = model.size();
      auto page = store->query(paged);
      RC_ASSERT(page.ok());
      RC_ASSERT(page->events.size() <= q.limit);
      for (const Event& e : page->events) {
        RC_ASSERT(e.sequence <= model.size());
        check_event(e, model.events[e.sequence - 1], q.with_payload);
        seen.push_back(e.sequence);
      }
      if (!page->next_after) break;
      RC_ASSERT(page->events.size() == q.limit);
      paged.after = page->next_after;
      for (int k = uniform(1, 4); k > 0 && appends_left > 0; --k, --appends_left) {
        append_random(*store, model, &q);
      }
    }
    // Exactly the answer over the events that existed at the last call: ascending, no duplicate,
    // no gap. It starts with the whole answer as of the first page; only newer events follow.
    Model as_last_seen;
    for (size_t i = 0; i < events_at_last_call; ++i) as_last_seen.add(model.events[i]);
    std::vector<uint64_t> want;
    for (size_t i : brute_force(as_last_seen, q)) want.push_back(model.events[i].receipt.sequence);
    RC_ASSERT(seen == want);
    RC_ASSERT(seen.size() >= at_first_page.size());
    for (size_t k = 0; k < at_first_page.size(); ++k) {
      RC_ASSERT(seen[k] == model.events[at_first_page[k]].receipt.sequence);
    }
  });
}

TEST_CASE("causal answers equal brute-force walks over the model's causation links",
          "[prop][causal]") {
  rc::prop("ancestors, descendants, happened_before and correlation_graph", [] {
    platform::MemoryFileSystem fs;
    Model model;
    auto store = build_store(fs, model, 130);
    const size_t n = model.size();
    for (size_t i = 0; i < n; ++i) {
      check_ancestors(*store, model, i, SIZE_MAX);
      check_descendants(*store, model, i, kQueryLimitMax);
    }
    for (int round = 0; round < 20; ++round) {
      const size_t i = uniform<size_t>(0, n);
      check_ancestors(*store, model, i, random_limit(8));
      check_descendants(*store, model, i, random_limit(8));
      check_happened_before(*store, model, i, uniform<size_t>(0, n));
    }
    // Pairs along a causation chain, where Before / After is the answer.
    for (size_t i = 0; i < n; ++i) {
      if (auto cause = model.cause_of(i)) {
        if (auto grand = model.cause_of(*cause)) check_happened_before(*store, model, *grand, i);
        check_happened_before(*store, model, i, *cause);
      }
    }
    std::set<EventId> correlations;
    for (const ModelEvent& e : model.events) correlations.insert(e.correlation_id);
    for (const EventId& correlation : correlations) {
      check_correlation_graph(*store, model, correlation, kQueryLimitMax);
      check_correlation_graph(*store, model, correlation, random_limit(4));
    }
    // Ids the store does not hold: no conversation; NotFound for the walks.
    const EventId unknown = random_outside_id();
    check_correlation_graph(*store, model, unknown, kQueryLimitMax);
    RC_ASSERT(store->ancestors(unknown).error().is(ErrorCode::NotFound));
    RC_ASSERT(store->descendants(unknown).error().is(ErrorCode::NotFound));
    const EventId& known = model.events[0].receipt.event_id;
    RC_ASSERT(store->happened_before(known, unknown).error().is(ErrorCode::NotFound));
    RC_ASSERT(store->happened_before(unknown, known).error().is(ErrorCode::NotFound));
  });
}
