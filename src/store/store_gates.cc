// CAS and gates at the commit point (docs/ARCHITECTURE.md §7): the checks an append passes after
// its idempotency lookup and before its sequence is assigned. Both run under the commit lock,
// against the running head of the item's (entity, lane).
#include <chrono>
#include <exception>

#include "store/store_impl.h"

namespace keel {

GateScope& gate_scope() {
  thread_local GateScope scope;
  return scope;
}

Status check_not_in_gate(const Store::Impl* store, const char* operation) {
  GateScope& scope = gate_scope();
  if (scope.store != store) return ok_status();
  if (scope.reentered == nullptr) scope.reentered = operation;
  return StoreError(ErrorCode::GateReentrant)
      .with("gate", "(running)")
      .with("operation", operation);
}

Status Store::Impl::check_cas(const Coordinate& coordinate, uint32_t lane,
                              const AppendOptions& options, uint64_t clock) const {
  if (!options.expected_clock || *options.expected_clock == clock) return ok_status();
  return StoreError(ErrorCode::SequenceMismatch)
      .with("entity", coordinate.entity)
      .with("lane", lane)
      .with("expected", *options.expected_clock)
      .with("actual", clock);
}

EntityHead Store::Impl::head_of(const index::EntityStream& stream) const {
  if (stream.sequences.empty()) return EntityHead{};
  uint64_t sequence = stream.sequences.back();
  return EntityHead{stream.clock(), sequence, index_.id_at(sequence),
                    EventKind{index_.kind_at(sequence)}};
}

// Runs the registered gates, then the append's own. A gate is timed; a throw or a call back into
// this store fails the append (nothing is written either way).
Status Store::Impl::run_gates(const GateContext& context, const AppendOptions& options) {
  auto run = [&](const Gate& gate) -> Status {
    GateScope& scope = gate_scope();
    const GateScope outer = scope;  // a gate of another store may be running on this thread
    scope = GateScope{this, nullptr};
    auto started = std::chrono::steady_clock::now();
    GateVerdict verdict;
    std::optional<std::string> failure;
    try {
      verdict = gate.check(context);
    } catch (const std::exception& e) {
      failure = std::string("threw: ") + e.what();
    } catch (...) {
      failure = "threw an exception that is not a std::exception";
    }
    gate_time_ns_ += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                               std::chrono::steady_clock::now() - started)
                                               .count());
    ++gates_evaluated_;
    const char* reentered = scope.reentered;
    scope = outer;
    if (reentered != nullptr) {
      return StoreError(ErrorCode::GateReentrant)
          .with("gate", gate.name)
          .with("operation", reentered);
    }
    if (failure)
      return StoreError(ErrorCode::GateFailed).with("gate", gate.name).with("reason", *failure);
    if (!verdict.allowed) {
      ++gate_denials_;
      return StoreError(ErrorCode::GateDenied)
          .with("gate", gate.name)
          .with("reason", verdict.reason);
    }
    return ok_status();
  };
  for (const Gate& gate : gates_) KEEL_TRY(run(gate));
  for (const Gate& gate : options.gates) KEEL_TRY(run(gate));
  return ok_status();
}

Status Store::Impl::register_gate(Gate gate) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_writable("register_gate"));
  auto invalid = [](std::string reason) {
    return StoreError(ErrorCode::InvalidArgument).with("argument", "gate").with("reason", reason);
  };
  if (gate.name.empty()) return invalid("the name is empty");
  if (!gate.check) return invalid("gate " + gate.name + " has no check");
  for (const Gate& g : gates_) {
    if (g.name == gate.name) return invalid("a gate named " + gate.name + " is registered");
  }
  gates_.push_back(std::move(gate));
  return ok_status();
}

Status Store::Impl::unregister_gate(std::string_view name) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_open());
  for (auto it = gates_.begin(); it != gates_.end(); ++it) {
    if (it->name == name) {
      gates_.erase(it);
      return ok_status();
    }
  }
  return StoreError(ErrorCode::NotFound).with("what", "gate").with("key", name);
}

}  // namespace keel
