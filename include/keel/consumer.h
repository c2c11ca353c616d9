// keel: consumers. docs/ARCHITECTURE.md §8.
//
// A Subscription delivers the visible, non-hidden events matching a filter, after a position, in
// sequence order, with no gap and no duplicate. Catching up and following live are one read: each
// batch is a query page after the position (the indexes pick the matching sequences, the log gives
// their frames), and when nothing new is visible it waits on the visible watermark. There is no
// hand-off between a catch-up reader and a live queue to get wrong, and a subscriber's memory is
// one batch however far behind it is. Events of a fence appear when it commits, all at once; a
// cancelled fence's never. The store's `emitted` watermark is what every live subscription has been
// handed (at least; it never moves back, and follows visible when there is none). On a read-only
// store (beside a writer in another process) next() polls with Store::refresh() every 20 ms instead
// of waiting.
//
// A DurableConsumer is a named subscription whose cursor is kept in the store directory (sidecar
// CONSUMER.<name>, segments/FORMAT.md 8.9). Cursor-after-apply: the caller applies what next()
// delivered, then commit(cursor [, state]) records that every matching event up to `cursor` was
// applied, together with the caller's own state bytes, in one atomic file replace (a crash leaves
// the previous pair or the new one, never a cursor without its state). After a crash the consumer
// resumes after its last committed cursor: events applied but not committed are delivered again,
// so applying must be idempotent or keyed by sequence (the state can hold the cursor it matches).
// Durable consumers define the store's `applied` watermark (include/keel/frontier.h) across
// reopens: applied is the lowest committed cursor.
//
// Retention may remove old events (StoreStats::first_retained_sequence). Resuming after a cursor
// whose next event was removed is CursorExpired {cursor, first_retained}: at open, and at the next
// delivery of a subscription the floor overtook. It is never clamped. The consumer then resyncs:
// rebuild its state from a snapshot (or from nothing), knowing the history before first_retained
// is gone, and moves its cursor to first_retained - 1 with DurableConsumer::reset.
//
// Threads: a Subscription or DurableConsumer is used by one thread at a time; many may run on one
// store. They must not outlive their Store.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "keel/event.h"
#include "keel/query.h"
#include "keel/result.h"
#include "keel/store.h"

namespace keel {

struct SubscriptionOptions {
  size_t batch_max = 256;    // at most this many events per next() (1 .. kQueryLimitMax)
  bool with_payload = true;  // fill Event::payload and metadata
};

class Subscription {
 public:
  // The events matching `filter` with sequence above `after` (0: from the first). The filter's
  // page fields must be left alone (order ascending, no `after`; limit and with_payload are
  // ignored: see SubscriptionOptions). Errors: InvalidArgument (filter as Store::query refuses it,
  // a page field set, batch_max out of range, after == UINT64_MAX), CursorExpired when events after
  // `after` were removed.
  static Result<std::unique_ptr<Subscription>> open(Store& store, Query filter, uint64_t after,
                                                    const SubscriptionOptions& options = {});
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // The next matching events in sequence order: 1 to batch_max of them, waiting up to `timeout`
  // for the first; an empty batch when the timeout passed first. Errors: CursorExpired when the
  // retention floor overtook the position; WriterPoisoned (the store can make nothing more
  // visible); the read errors of Store::query.
  Result<std::vector<Event>> next(std::chrono::milliseconds timeout);
  // The same without copying the events: `visit` sees each event of the batch in order, as a view
  // valid during the call, with no lock of the store held (it may call into the store). Returns
  // how many it saw: 0 when the timeout passed first.
  using Visit = std::function<void(const EventView&)>;
  Result<size_t> next(std::chrono::milliseconds timeout, const Visit& visit);
  // The same into `batch` (replaced by the batch; empty when the timeout passed first), reusing
  // the Events the caller passes back and those the subscription kept from earlier batches: a
  // reader that passes the same vector each time copies bytes without allocating. Returns its size.
  Result<size_t> next(std::chrono::milliseconds timeout, std::vector<Event>& batch);

  // Every matching event at or below position() has been delivered, and none above it: it moves
  // past the last delivered event, and past events that do not match once they are visible.
  uint64_t position() const { return position_; }
  // Moves the position: the next batch starts after `after` (events delivered again when it moves
  // back). A position below the retention floor is CursorExpired at the next delivery.
  void seek(uint64_t after) {
    if (after > position_) {
      advance(after);  // skipped events count as handed out (the emitted watermark)
    } else {
      position_ = after;
    }
  }

 private:
  Subscription(Store& store, Query filter, uint64_t after, const SubscriptionOptions& options);
  void advance(uint64_t to);
  Store& store_;
  uint64_t id_ = 0;  // its registration: live subscriptions define the emitted watermark
  bool read_only_;   // then next() polls with Store::refresh() (a writer in another process)
  Query query_;
  uint64_t position_;
  std::vector<Event> spare_;  // Events a shorter batch left over, reused by the next (one batch)
};

// A Subscription on a thread it owns: `deliver` is called with each batch, in order, until stop(),
// an error of the subscription, or a non-ok Status from `deliver` (which ends it: the batch counts
// as not delivered).
class Subscriber {
 public:
  using Deliver = std::function<Status(const std::vector<Event>&)>;
  // Errors as Subscription::open; InvalidArgument for an empty `deliver`.
  static Result<std::unique_ptr<Subscriber>> start(Store& store, Query filter, uint64_t after,
                                                   Deliver deliver,
                                                   const SubscriptionOptions& options = {});
  ~Subscriber();  // stop()
  Subscriber(const Subscriber&) = delete;
  Subscriber& operator=(const Subscriber&) = delete;

  // Stops the thread (after the batch being delivered, or within 50 ms when waiting) and returns
  // what ended it: ok when stop() did, else the subscription's or deliver's error.
  Status stop();
  // The position of the last batch delivered whole.
  uint64_t position() const { return delivered_.load(); }
  // False once the thread ended (an error, or stop()).
  bool running() const { return running_.load(); }

 private:
  Subscriber(std::unique_ptr<Subscription> subscription, Deliver deliver);
  void run();
  std::unique_ptr<Subscription> subscription_;
  Deliver deliver_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> running_{true};
  std::atomic<uint64_t> delivered_{0};
  std::vector<Event> batch_;  // reused from batch to batch
  Status ended_;
  std::thread thread_;
};

struct ConsumerOptions {
  SubscriptionOptions subscription;
  // commit() waits this long for the store to make the cursor durable (it is at once under
  // VisibilityPolicy::AfterDurable: what was delivered is durable).
  std::chrono::milliseconds commit_timeout{5'000};
  // NEGATIVE CONTROL FOR TESTS ONLY: next() commits the position as it delivers, before the caller
  // applied anything (cursor-at-receipt). The cursor-after-apply tests must catch it.
  bool unsafe_commit_at_receipt_for_test = false;
};

class DurableConsumer {
 public:
  // Opens consumer `name` (1 to 64 bytes of A-Z a-z 0-9 _ . -, not starting with a dot) on a
  // writable store, creating it with cursor 0 (every matching event to come, from the first) when
  // it does not exist (in a store whose retention removed events that is CursorExpired and
  // nothing is created: create it with reset(), at first_retained - 1 or at the visible sequence).
  // It resumes after its committed cursor. Its filter is kept in its file: a later open must pass
  // a filter matching the same events (the same fields set to the same values), since its cursor
  // only vouches for events of that filter. To change the filter, rebuild its state for the new
  // one and reset() it: the next open records the filter it passes. Errors: InvalidArgument (name,
  // filter as Subscription::open or not the recorded one, already open in this process),
  // ReadOnlyStore, CorruptSidecar
  // (its file is damaged: remove() it and start again), CursorAheadOfLog {consumer, cursor,
  // recovered} (its cursor names events the recovered log does not hold: a crash or an accepted
  // data loss took them), CursorExpired (events after its cursor were removed), Io.
  static Result<std::unique_ptr<DurableConsumer>> open(Store& store, std::string_view name,
                                                       Query filter,
                                                       const ConsumerOptions& options = {});
  ~DurableConsumer();
  DurableConsumer(const DurableConsumer&) = delete;
  DurableConsumer& operator=(const DurableConsumer&) = delete;

  const std::string& name() const { return name_; }
  // The last committed cursor and the state committed with it.
  uint64_t cursor() const { return cursor_; }
  const std::string& state() const { return state_; }
  // As Subscription::next, after the last delivered position (the committed cursor at open).
  Result<std::vector<Event>> next(std::chrono::milliseconds timeout);
  // The same without copying the events: `visit` sees each event of the batch in order, as a view
  // valid during the call, with no lock of the store held (it may call into the store). Returns
  // how many it saw: 0 when the timeout passed first.
  using Visit = std::function<void(const EventView&)>;
  Result<size_t> next(std::chrono::milliseconds timeout, const Visit& visit);
  // Delivered through: commit(position()) once everything next() returned is applied.
  uint64_t position() const { return subscription_->position(); }
  // Delivers again everything after the committed cursor (after an apply failed part-way).
  void rewind() { subscription_->seek(cursor_); }
  // For a consumer that reads its events by other means (replication reads them as stored:
  // include/keel/replication.h): counts every event up to `sequence` as delivered, as next()
  // would, so commit() may name it. InvalidArgument when its filter is not the one matching every
  // event (Query{}), or `sequence` is below position() or above the visible sequence.
  Status deliver_through(uint64_t sequence);

  // Records that every matching event up to `cursor` was applied: durable when it returns.
  // `cursor` lies between the committed cursor and position() (equal to the committed one only to
  // replace the state). The state bytes (at most 16 MiB) are committed with it; the first form
  // keeps the committed state. A failure changes nothing on disk or here: the file keeps the
  // previous pair, and the next commit covers both. Errors: InvalidArgument, PayloadTooLarge,
  // WaitTimeout (not durable within commit_timeout), WriterPoisoned, Io, NoSpace.
  Status commit(uint64_t cursor);
  Status commit(uint64_t cursor, std::string_view state);

  // Removes consumer `name`: its file, and its part in applied. InvalidArgument while it is open
  // in this process; absent is fine. Io.
  static Status remove(Store& store, std::string_view name);
  // Sets consumer `name`'s cursor and state (creating it when absent), durably: the resync after
  // CursorExpired (cursor = first_retained - 1, the state rebuilt from a snapshot), a new
  // consumer that starts now (cursor = the visible sequence), or a change of filter. It clears the
  // recorded filter: the next open records the one it passes. Moving a cursor back lowers applied
  // through Store::reset_applied (logged). InvalidArgument while it is open in this process, or a
  // cursor above visible; ReadOnlyStore; PayloadTooLarge; Io, NoSpace.
  static Status reset(Store& store, std::string_view name, uint64_t cursor, std::string_view state);

 private:
  DurableConsumer(Store& store, std::string name, const ConsumerOptions& options);
  Status commit_locked(uint64_t cursor, std::string_view state);
  Store& store_;
  std::string name_;
  std::string filter_;  // its canonical text, kept in its file
  ConsumerOptions options_;
  uint64_t cursor_ = 0;
  std::string state_;
  std::unique_ptr<Subscription> subscription_;
};

// What `keel consumers` shows: every durable consumer of a store, from its file.
struct ConsumerInfo {
  std::string name;
  uint64_t cursor = 0;
  uint64_t epoch = 0;  // the store epoch that committed it
  uint64_t state_bytes = 0;
  std::string filter;   // its filter as canonical JSON; empty when none is recorded (after reset)
  std::string problem;  // non-empty when the file is damaged (cursor then unknown)
};
// Errors: Io.
Result<std::vector<ConsumerInfo>> list_consumers(Store& store);

}  // namespace keel
