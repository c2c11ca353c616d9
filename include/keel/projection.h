// keel: projections. docs/ARCHITECTURE.md §8.
//
// A Projection folds the events matching a filter into the caller's state (bytes), and keeps that
// state as the snapshot of its name (include/keel/snapshot.h) so that a restart replays only the
// events after it. open() loads the published snapshot (or starts empty, at sequence 0) and
// resumes after its sequence; run() folds what arrives; every `save_every_events` events or
// `save_every` of time (and at save()) it publishes the state at its position and then commits
// the durable consumer of the same name (include/keel/consumer.h) there, so the store's `applied`
// watermark and retention see how far the projection is. The snapshot comes first: after a crash
// between the two, open() finds the consumer behind the snapshot and moves it up (or, for a
// consumer ahead of the snapshot, back: the state of the events after the snapshot is not kept).
// Loading the snapshot and replaying the tail gives the state a replay from the first event gives
// (tests/prop/projection_prop.cc).
//
// A projection named N owns snapshot N and durable consumer N. Saves pass `based_on` (the
// sequence its state was loaded from or last saved at), so a second projection of the same name
// that saved meanwhile makes this one's save StaleSequence, never a regression.
//
// Threads: one thread at a time per Projection; it must not outlive its Store.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "keel/consumer.h"
#include "keel/event.h"
#include "keel/query.h"
#include "keel/result.h"
#include "keel/snapshot.h"
#include "keel/store.h"

namespace keel {

struct ProjectionOptions {
  // Publish the state after this many folded events (0: not by count).
  uint64_t save_every_events = 0;
  // Publish the state when this long passed since the last save (0: not by time). A save costs two
  // fdatasyncs and two directory syncs (and a commit of the consumer, one more): by time, a
  // projection catching up on millions of events saves a few times, not once per N events.
  std::chrono::milliseconds save_every{1'000};
  // The batches run() reads (with_payload is always on).
  SubscriptionOptions subscription;
};

class Projection {
 public:
  // Folds one event into the state. An error stops the projection: run() and save() return it
  // from then on, and nothing after the last save is published (reopen to start again from it).
  using Fold = std::function<Status(std::string& state, const EventView& event)>;

  // Opens projection `name` (a snapshot and consumer name) over the events matching `filter` (as
  // Subscription::open takes it) on a writable store. Errors: InvalidArgument (name, filter,
  // options), ReadOnlyStore, and load_snapshot's and DurableConsumer::open's errors
  // (CorruptSidecar, Corruption, CursorAheadOfLog, CursorExpired when events after the snapshot
  // were removed, Io).
  static Result<std::unique_ptr<Projection>> open(Store& store, std::string_view name, Query filter,
                                                  Fold fold, const ProjectionOptions& options = {});

  // Folds the events that arrive within `timeout` (what is visible now at once; 0 does not wait):
  // one batch. Saves when a bound of the options is reached. Returns how many events it folded.
  Result<size_t> run(std::chrono::milliseconds timeout);
  // Publishes the state at position() (after waiting for it to be durable) and commits the
  // consumer there; nothing to do when that is already saved. Errors: the fold's, StaleSequence
  // (another saver of this name published since), save_snapshot's and commit's errors.
  Status save();

  const std::string& name() const { return name_; }
  const std::string& state() const { return state_; }
  // Every matching event up to here is folded into state().
  uint64_t position() const { return consumer_->position(); }
  // The sequence of the last published snapshot (0: none).
  uint64_t saved_sequence() const { return saved_; }

 private:
  Projection(Store& store, std::string name, Fold fold, const ProjectionOptions& options);
  Store& store_;
  std::string name_;
  Fold fold_;
  ProjectionOptions options_;
  std::unique_ptr<DurableConsumer> consumer_;
  std::string state_;
  uint64_t saved_ = 0;
  uint64_t folded_since_save_ = 0;
  std::chrono::steady_clock::time_point saved_at_;
  std::optional<StoreError> failed_;
};

}  // namespace keel
