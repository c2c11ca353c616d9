// keel: reactors. docs/ARCHITECTURE.md §8.
//
// A Reactor is a durable consumer (include/keel/consumer.h) that answers source events with new
// events: for each source its `react` function returns the reactions, which the reactor appends as
// one batch with causation = the source event and an idempotency key derived from (reactor name,
// source event id, index), then commits its cursor past the source. A crash anywhere in between
// replays at most the batch since the last commit, and the replayed appends return the original
// receipts: exactly one set of reactions per source event. That holds while the keys are kept
// (StoreOptions::idempotency_window and idempotency_window_events): a reactor stopped for longer
// than the window may react twice to the sources after its cursor, so keep the window above the
// longest outage, or keep reactors running.
//
// `react` must be deterministic for a given source (a replay must produce the same reactions, or
// the append is IdempotencyConflict, which stops the reactor) and must not call into the store.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "keel/consumer.h"
#include "keel/event.h"
#include "keel/options.h"
#include "keel/query.h"
#include "keel/result.h"
#include "keel/store.h"

namespace keel {

struct Reaction {
  Coordinate coordinate;
  EventKind kind;
  std::string payload;
  // lane, metadata, correlation and gates as for any append; causation_id, cause_item and
  // idempotency_key are the reactor's (InvalidArgument when set).
  AppendOptions options;
};

struct ReactorOptions {
  ConsumerOptions consumer;
  // NEGATIVE CONTROL FOR TESTS ONLY: reactions are appended without the derived idempotency keys,
  // so a replay after a crash reacts again. The reactor crash tests must catch it.
  bool unsafe_skip_idempotency_keys_for_test = false;
};

class Reactor {
 public:
  using React = std::function<Result<std::vector<Reaction>>(const Event& source)>;

  // Opens the durable consumer `name` with `filter` (DurableConsumer::open's errors) and reacts
  // with `react`. Source events need payloads only when react reads them
  // (options.consumer.subscription.with_payload, on by default).
  static Result<std::unique_ptr<Reactor>> open(Store& store, std::string_view name, Query filter,
                                               React react, const ReactorOptions& options = {});

  // Reacts to the next batch of source events (waiting up to `timeout` for the first), then
  // commits. Returns how many source events it handled (0 at the timeout). Errors: those of
  // DurableConsumer::next and commit, of the batch append (the reactor's cursor then stays before
  // the source that failed), and of `react` (likewise).
  Result<size_t> run_once(std::chrono::milliseconds timeout);

  DurableConsumer& consumer() { return *consumer_; }
  // "reactor/<name>/<source event id hex>/<index>"
  static std::string idempotency_key(std::string_view name, const EventId& source, size_t index);

 private:
  Reactor(Store& store, std::unique_ptr<DurableConsumer> consumer, React react, bool keys);
  Store& store_;
  std::unique_ptr<DurableConsumer> consumer_;
  React react_;
  bool keys_;
};

}  // namespace keel
