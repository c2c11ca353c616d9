// keel: gates, caller-defined predicates an append must pass at the commit point.
// docs/ARCHITECTURE.md §7.
//
// A gate sees the (entity, lane)'s head as the commit point has it (earlier items of the same
// batch and the open fence's own events included) and the event about to be written, and allows
// or denies it. Gates run after validation, the idempotency lookup and the CAS check, under the
// store's commit lock, atomically with the append: no other append can move the head between the
// check and the write. A denial is GateDenied {gate, reason} and writes nothing.
//
// Contract for a gate: pure and quick. It must not call into the store it guards (any call from
// inside a gate, on any thread-local path, makes the append fail with GateReentrant), must not
// block, and must not keep the references it is given. A gate that throws makes the append fail
// with GateFailed {gate, reason} (the exception's what()); nothing is written either way. The time
// spent in gates is measured and reported in StoreStats (gate_time_ns, gates_evaluated).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "keel/coordinate.h"
#include "keel/ids.h"

namespace keel {

// The head of an (entity, lane) stream at the commit point.
struct EntityHead {
  uint64_t clock = 0;               // 0: the stream has no event yet
  uint64_t sequence = 0;            // the head event's global sequence (0 when clock is 0)
  std::optional<EventId> event_id;  // the head event's id
  std::optional<EventKind> kind;    // the head event's kind
};

// What a gate is asked about.
struct GateContext {
  const Coordinate& coordinate;
  uint32_t lane;
  EventKind kind;
  std::string_view payload;
  std::optional<std::string_view> metadata;
  const EntityHead& head;
  uint64_t item_index;  // the item's index in its batch (0 for a single append)
  bool fenced;          // appended inside a visibility fence
};

// A gate's answer.
struct GateVerdict {
  bool allowed = true;
  std::string reason;  // why it was denied (reported in GateDenied)
  static GateVerdict allow() { return GateVerdict{true, {}}; }
  static GateVerdict deny(std::string reason) { return GateVerdict{false, std::move(reason)}; }
};

using GateCheck = std::function<GateVerdict(const GateContext&)>;

// A named gate: the name is what GateDenied, GateFailed and GateReentrant report.
struct Gate {
  std::string name;
  GateCheck check;
};

}  // namespace keel
