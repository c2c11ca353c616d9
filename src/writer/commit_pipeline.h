// CommitPipeline: group commit, publication, waits and the background sync (docs/ARCHITECTURE.md
// §4).
//
// Leader-based group commit (chosen by measurement: docs/DECISIONS.md). Appends encode their
// records into the segment writer's pending buffer under the store's commit mutex. The log has two
// stages, each run by whichever caller needs it and finds it free (the leader), with the mutex
// released during the I/O: a write stage (every pending record, one write) and a sync stage (one
// fdatasync covering everything written when it starts). A caller that needs its events written
// leads a write if none is in flight; one that needs them durable then leads a sync if none is in
// flight. Otherwise it waits; when a stage ends, the first waiter to wake leads the next one,
// carrying everything appended meanwhile. A write may run while the previous fdatasync does, so
// Written appends never wait for an fdatasync (a Durable caller does not start a write then: it
// needs the next fdatasync anyway, and waiting lets that group carry more). A lone caller pays one
// write + one fdatasync and no thread hand-off; N concurrent callers share each fdatasync.
//
// Waiters sleep on their own futex (platform/wake_flag.h), without the mutex: a stage's end wakes
// only the callers whose level it reached (they return without retaking the mutex) and the lowest
// waiter of each level, who leads the next stage.
//
// Gathering: when an fdatasync ends, the callers it released append again while the next group
// is synced, so with N Durable callers each group held about N/2 events. The next Durable leader
// therefore waits until as many Durable callers wait as the last fdatasync found (the released
// ones coming back): a caller that would lead a write waits instead, and the one that completes
// the count leads (no hand-off). The gathering ends when nobody has come for as long as that
// fdatasync took (each arrival keeps it open; 10 ms at most in all): one waiter keeps that clock
// and, one such window later, leads if nobody did (so that when the count is reached, the keeper
// is released by the fdatasync it waited for instead of waking during it). Groups hold about N. A
// lone caller never waits: the last fdatasync found only it. (Measured before waiters slept in the
// kernel, the same wait did not pay: docs/DECISIONS.md.)
//
// Publication is separate from groups: after every change of written or durable, visible moves to
// the policy's watermark (durable under AfterDurable, written under AfterWrite), then emitted and,
// with no consumer registered, applied. The background sync thread runs a sync group when
// unsynced events are sync_interval old or sync_bytes are waiting, so events appended at Accepted
// or Written become durable (and visible under AfterDurable) within that bound without a later
// caller.
//
// Poisoning: a failed group poisons the writer (log/segment_writer.h) and freezes durable in the
// watermarks; callers waiting on it get WriteInDoubt, later waits on frozen watermarks fail at
// once.
//
// Threads: the store's commit mutex guards the pipeline, the writer and the watermarks. Every
// method takes the caller's lock on that mutex and may release it while it waits or does I/O; on
// return the lock is held again, except after reach() (see there). The background thread takes the
// same mutex.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "frontier/watermarks.h"
#include "keel/options.h"
#include "keel/result.h"
#include "log/segment_writer.h"
#include "platform/wake_flag.h"

namespace keel::writer {

using Lock = std::unique_lock<std::mutex>;
// Waits use the steady clock: a condition variable can only wait on a real clock. The HLC and
// timestamps read platform::Clock (the simulated clock of tests).
using SteadyClock = std::chrono::steady_clock;
using Deadline = SteadyClock::time_point;

struct PipelineOptions {
  VisibilityPolicy visibility = VisibilityPolicy::AfterDurable;
  std::chrono::milliseconds sync_interval{50};
  uint64_t sync_bytes = 1ull << 20;
};

class CommitPipeline {
 public:
  // `writer` is null for a read-only store (waits only). Nothing runs until start().
  CommitPipeline(std::mutex& mutex, log::SegmentWriter* writer, frontier::Watermarks& marks,
                 const PipelineOptions& options);
  ~CommitPipeline();
  CommitPipeline(const CommitPipeline&) = delete;
  CommitPipeline& operator=(const CommitPipeline&) = delete;

  // Starts the background sync thread (writable stores).
  void start();
  // Stops the background thread and waits until both stages are idle. Afterwards the writer may
  // be used inline (close).
  void stop(Lock& lock);

  // Before an append of a record of at most `record_bytes`: waits while a stage in flight would
  // have to end before the record could rotate the segment. Call it before reading any state
  // the append depends on (stream heads). Returns whether it waited (released the lock).
  bool prepare_append(Lock& lock, uint64_t record_bytes);
  // After the writer took records: `before` is the accepted point before them. Catches the
  // watermarks up with what the writer did inline (a rotation syncs everything before the record)
  // and wakes the background sync when unsynced bytes appear or pile up.
  Status after_append(Lock& lock, const HlcPoint& before);

  // Brings every event up to `sequence` to `level` (docs/ARCHITECTURE.md §4). Accepted returns at
  // once. Errors, all after the sequence was assigned: WriteInDoubt (Indeterminate) caused by the
  // poison cause, or by WaitTimeout when `timeout` passed since the caller first had to wait for
  // another caller's stage (a caller that leads every stage it needs reads no clock: its own write
  // and fdatasync cannot be cut short anyway). Unlike the other methods it may return WITHOUT the
  // lock (after sleeping until another caller's stage reached the level): check lock.owns_lock()
  // before touching shared state.
  Status reach(Lock& lock, Durability level, uint64_t sequence, std::chrono::milliseconds timeout);

  // Writes every pending record (system records included) and, when `durable`, makes everything
  // written durable with an fdatasync that starts after the write: unlike reach(), which goes by
  // sequence, it covers records that take no sequence (a fence's commit record). Returns with the
  // lock held. Errors: WriterPoisoned when poisoned before; the failed stage's error (the writer is
  // then poisoned).
  Status flush(Lock& lock, bool durable);
  // Publishes the policy's watermark again (after a visibility hold was lifted).
  Status republish();

  // Waits until watermark `kind` (the lane view when `lane` is set) is at or above `sequence`.
  // WaitTimeout {watermark, target, waited_ms} after the full timeout; WriterPoisoned at once when
  // the writer is poisoned and the target is above a watermark that can no longer move.
  Status wait_for(Lock& lock, Watermark kind, std::optional<uint32_t> lane, uint64_t sequence,
                  std::chrono::milliseconds timeout);

  // Wakes the waiters after a watermark changed outside the pipeline (consumers, refresh).
  void notify() { wake(); }
  // Fail closed: a failure (if any) poisons the writer (the first cause is kept); a poisoned
  // writer freezes the frontier; waiters wake to see it. Returns `failure`.
  Status fail_closed(Status failure);

  uint64_t groups() const { return groups_; }
  uint64_t synced_groups() const { return synced_groups_; }

 private:
  // Each leads one stage (the lock is released during its I/O). A failure poisons the writer.
  // `sync_follows`: the leader (or the background sync) syncs right after this write.
  Status lead_write(Lock& lock, bool sync_follows);
  Status lead_sync(Lock& lock);
  // Whether a write leader is at work.
  bool writing() const { return write_leader_ || writer_->write_in_flight(); }
  // Moves written (and durable) to the writer's, given that the writer's sequences are `at` or
  // less, then publishes. An impossible state poisons the writer (fail closed).
  Status catch_up(const HlcPoint& at, bool durable);
  // The watermark visible follows under the policy (durable or written).
  const HlcPoint& policy_point() const;
  void wake();
  // Durable waiters in the list.
  uint32_t durable_waiters() const;
  // Whether a Durable caller about to lead a write waits instead for the callers the last
  // fdatasync released: fewer Durable callers wait (with it) than that fdatasync found, and the
  // gathering (begun by the first such caller) saw an arrival within that fdatasync's duration
  // and is younger than 10 ms. Opens or extends the gathering.
  bool gathering();
  void wait_progress(Lock& lock);
  std::cv_status wait_progress_until(Lock& lock, Deadline deadline);
  bool frozen(Watermark kind, uint64_t sequence) const;
  void background_loop();

  std::mutex& mutex_;
  log::SegmentWriter* writer_;
  frontier::Watermarks& marks_;
  PipelineOptions options_;

  // An appender waiting in reach(), woken by wake() only when its level is reached or a stage it
  // may lead is free: no thundering herd of every appender at every stage's end.
  struct Waiter {
    Waiter(Watermark m, uint64_t s) : mark(m), sequence(s) {}
    Watermark mark;
    uint64_t sequence;
    bool reached = false;  // set by wake() (under the store mutex) before it signals
    platform::WakeFlag woken;
    Waiter* relay[2] = {nullptr, nullptr};  // set by wake(): signalled by this one once woken
  };
  std::vector<Waiter*> waiters_;
  std::vector<Waiter*> released_;  // wake()'s list, kept between calls
  // A wait_for() caller (subscriptions waiting for visible, consumers, tests), woken by wake() only
  // when its watermark reached the target, the writer is poisoned or the pipeline stops: a
  // Written append moves written, and must not wake every subscriber waiting for visible.
  struct MarkWaiter {
    Watermark kind;
    std::optional<uint32_t> lane;
    uint64_t sequence;
    std::condition_variable woken;
  };
  uint64_t mark_of(const MarkWaiter& w) const {
    return w.lane ? marks_.lane_sequence(*w.lane, w.kind) : marks_.sequence(w.kind);
  }
  std::vector<MarkWaiter*> mark_waiters_;
  std::condition_variable progress_;    // a stage ended or a watermark moved (everything else)
  uint32_t progress_waiters_ = 0;       // notified only when someone waits (hot path)
  std::condition_variable background_;  // unsynced bytes appeared / piled up, or stop
  log::SegmentWriter::WriteGroup write_group_;  // the write in flight
  log::SegmentWriter::SyncTicket sync_ticket_;  // the fdatasync in flight
  bool write_leader_ = false;                   // between begin_write and end_write
  bool sync_follows_write_ = false;             // that write's leader syncs right after it
  std::optional<Deadline> gather_until_;        // the gathering's end, while one is under way
  Deadline gather_started_{};                   // and its start
  // The waiter keeping the gathering's clock; always one in waiters_ (whoever takes it off the
  // list clears this), or null.
  Waiter* gather_timer_ = nullptr;
  uint32_t durable_callers_ = 1;                // Durable callers at the last fdatasync's end
  SteadyClock::duration gather_window_{};       // that fdatasync's duration, at most 10 ms
  std::optional<Deadline> unsynced_since_;
  bool stopping_ = false;
  std::thread background_thread_;
  uint64_t groups_ = 0;
  uint64_t synced_groups_ = 0;
};

}  // namespace keel::writer
