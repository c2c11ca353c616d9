// keel: queries over the visible events and the causal graph. docs/ARCHITECTURE.md §6.
//
// A Query is one predicate value (later reused by subscriptions and cursors): every field that is
// set must hold for an event to match. Answers come in pages, in sequence order either way, and see
// only visible, non-hidden events. They are evaluated on the in-memory indexes; only the page's
// events are read from the log (their frames are read and verified whole, and the payload is
// copied only when asked for).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "keel/coordinate.h"
#include "keel/event.h"
#include "keel/ids.h"

namespace keel {

enum class Order : uint8_t { Ascending, Descending };

// The most events one page (or one causal answer) may ask for.
inline constexpr size_t kQueryLimitMax = 1'000'000;

struct Query {
  // Entity: exact, or every entity starting with the prefix (not both). A lane narrows either to
  // one lane; without one every lane matches.
  std::optional<std::string> entity;
  std::optional<std::string> entity_prefix;
  std::optional<uint32_t> lane;
  // Entity clock range, inclusive: needs `entity` or `entity_prefix` (clocks count per stream).
  uint64_t clock_from = 1;
  uint64_t clock_to = UINT64_MAX;
  std::optional<std::string> scope;       // exact
  std::optional<EventKind> kind;          // exact kind
  std::optional<uint8_t> category;        // kind category (0..15)
  std::optional<EventId> correlation_id;  // the conversation: its root and every event in it
  uint64_t sequence_from = 1;             // global sequence range, inclusive
  uint64_t sequence_to = UINT64_MAX;
  std::optional<Hlc> hlc_from;  // HLC range, inclusive
  std::optional<Hlc> hlc_to;

  // The page: events after `after` (a global sequence, in `order`: above it ascending, below it
  // descending), at most `limit` (1 or more). Ascending, `after` is a cursor: when events after it
  // were removed by retention (after + 1 below the first retained sequence) it is CursorExpired.
  Order order = Order::Ascending;
  std::optional<uint64_t> after;
  size_t limit = 100;
  // Event::payload (and metadata) are filled only when set.
  bool with_payload = false;
};

struct QueryPage {
  std::vector<Event> events;
  // Pass as Query::after for the next page; nullopt when this page ended the answer.
  std::optional<uint64_t> next_after;
  // The visible watermark the page was read at: when the page ended the answer, no event up to it
  // matches beyond the page's (what a subscription's position moves to).
  uint64_t visible = 0;
};

// An event as the indexes know it, without reading the log: what causal answers are made of.
struct EventRef {
  uint64_t sequence = 0;
  EventId event_id;
  std::string entity;
  uint32_t lane = 0;
  uint64_t entity_clock = 0;
  EventKind kind;
  std::string scope;
  Hlc hlc;
  friend bool operator==(const EventRef&, const EventRef&) = default;
};

// ancestors(): the event, its cause, that one's cause, ... up to the root. When the root names a
// cause that is not in the store (or not visible), the walk ends there: `external_cause` is that
// id.
struct Ancestry {
  std::vector<EventRef> chain;  // chain[0] is the event asked about
  std::optional<EventId> external_cause;
};

// descendants(): everything the event caused, transitively, breadth-first (each level in sequence
// order), at most `limit`; `truncated` when more were left out.
struct Effects {
  std::vector<EventRef> events;
  bool truncated = false;
};

struct CausalEdge {
  EventId cause;
  EventId effect;
  friend bool operator==(const CausalEdge&, const CausalEdge&) = default;
};

// The causal DAG of a correlation: its events (sequence order), the causation edges between them,
// and the causes outside it (events of other correlations or outside the store) its events name.
struct CausalGraph {
  std::vector<EventRef> nodes;
  std::vector<CausalEdge> edges;
  std::vector<CausalEdge> outside_causes;  // cause not among the nodes
  bool truncated = false;                  // more than `limit` nodes
};

enum class CausalOrder : uint8_t { Before, After, Concurrent };

// happened_before(a, b): Before when a is a causal ancestor of b, After when b is one of a,
// otherwise Concurrent. `hlc_order` compares their HLCs (-1, 0, 1): information only, never the
// answer (clocks of unrelated events say nothing about cause).
struct CausalRelation {
  CausalOrder order = CausalOrder::Concurrent;
  int hlc_order = 0;
};

const char* causal_order_name(CausalOrder order);

}  // namespace keel
