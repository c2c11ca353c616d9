#include "writer/commit_pipeline.h"

#include <algorithm>
#include <string>

namespace keel::writer {
namespace {

// The longest a Durable leader gathers callers, however long the last fdatasync took.
constexpr std::chrono::milliseconds kGatherWindowMax{10};

uint64_t elapsed_ms(Deadline since) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - since).count());
}

StoreError wait_timeout(Watermark kind, uint64_t target, uint64_t waited_ms) {
  return StoreError(ErrorCode::WaitTimeout)
      .with("watermark", watermark_name(kind))
      .with("target", target)
      .with("waited_ms", waited_ms);
}

}  // namespace

CommitPipeline::CommitPipeline(std::mutex& mutex, log::SegmentWriter* writer,
                               frontier::Watermarks& marks, const PipelineOptions& options)
    : mutex_(mutex), writer_(writer), marks_(marks), options_(options) {}

CommitPipeline::~CommitPipeline() {
  if (background_thread_.joinable()) {
    Lock lock(mutex_);
    stop(lock);
  }
}

void CommitPipeline::start() {
  if (writer_ == nullptr || background_thread_.joinable()) return;
  stopping_ = false;
  background_thread_ = std::thread([this] { background_loop(); });
}

void CommitPipeline::stop(Lock& lock) {
  stopping_ = true;
  background_.notify_all();
  wake();
  if (background_thread_.joinable()) {
    lock.unlock();
    background_thread_.join();
    lock.lock();
  }
  while (writer_ != nullptr && (writing() || writer_->sync_in_flight())) wait_progress(lock);
}

bool CommitPipeline::prepare_append(Lock& lock, uint64_t record_bytes) {
  bool waited = false;
  while (!writer_->idle() && writer_->would_rotate(record_bytes)) {
    wait_progress(lock);
    waited = true;
  }
  return waited;
}

Status CommitPipeline::after_append(Lock& lock, const HlcPoint& before) {
  if (writer_->sequence_written() > marks_.sequence(Watermark::Written) ||
      writer_->sequence_durable() > marks_.sequence(Watermark::Durable)) {
    KEEL_TRY(catch_up(before, /*durable=*/true));  // an inline rotation wrote and synced
  }
  uint64_t unsynced = writer_->unsynced_bytes();
  if (unsynced == 0) return ok_status();
  if (!unsynced_since_) {
    unsynced_since_ = SteadyClock::now();
    background_.notify_one();
  } else if (unsynced >= options_.sync_bytes) {
    background_.notify_one();
    // Bound the memory of Accepted appends the background sync has not caught up with.
    if (writer_->pending_bytes() >= 4 * options_.sync_bytes && !writing()) {
      return lead_write(lock, /*sync_follows=*/false);
    }
  }
  return ok_status();
}

Status CommitPipeline::catch_up(const HlcPoint& at, bool durable) {
  // The writer's sequences reach `at` (a stage's or an inline rotation's end) or stay below the
  // watermarks; anything else means the bookkeeping lost track: fail closed.
  auto advance = [&](Watermark kind, uint64_t writer_sequence) -> Status {
    if (writer_sequence <= marks_.sequence(kind)) return ok_status();
    if (writer_sequence != at.global_sequence) {
      return StoreError(ErrorCode::InvariantViolation)
          .with("invariant", std::string(watermark_name(kind)) + " moved to " +
                                 std::to_string(writer_sequence) + ", expected " +
                                 std::to_string(at.global_sequence));
    }
    return marks_.advance(kind, at);
  };
  Status caught = advance(Watermark::Written, writer_->sequence_written());
  if (caught.ok() && durable) caught = advance(Watermark::Durable, writer_->sequence_durable());
  if (caught.ok()) caught = marks_.publish(policy_point());
  return fail_closed(std::move(caught));
}

Status CommitPipeline::republish() { return fail_closed(marks_.publish(policy_point())); }

const HlcPoint& CommitPipeline::policy_point() const {
  return marks_.point(options_.visibility == VisibilityPolicy::AfterDurable ? Watermark::Durable
                                                                            : Watermark::Written);
}

Status CommitPipeline::fail_closed(Status failure) {
  if (!failure.ok()) writer_->poison_with(failure.error());
  if (writer_->poisoned()) marks_.poison();
  wake();
  return failure;
}

// Wakes the appenders whose level was reached (or all, once poisoned), plus the lowest waiting
// Durable and Written appender so each stage that is now free gets a leader; the others sleep on.
// Everything else (waits, the background sync, stop, rotation) waits on progress_.
void CommitPipeline::wake() {
  const bool poisoned = writer_ != nullptr && writer_->poisoned();
  Waiter* next_durable = nullptr;
  Waiter* next_written = nullptr;
  released_.clear();
  for (size_t i = 0; i < waiters_.size();) {
    Waiter* w = waiters_[i];
    bool reached = !poisoned && marks_.sequence(w->mark) >= w->sequence;
    if (reached || poisoned) {  // poisoned: everyone wakes to report it
      w->reached = reached;
      if (gather_timer_ == w) gather_timer_ = nullptr;
      waiters_[i] = waiters_.back();
      waiters_.pop_back();
      released_.push_back(w);
      continue;
    }
    Waiter*& next = w->mark == Watermark::Durable ? next_durable : next_written;
    if (next == nullptr || w->sequence < next->sequence) next = w;
    ++i;
  }
  // The released waiters wake one another, each the next two of a binary tree, so the caller
  // (holding the mutex) makes one futex wake instead of one per waiter.
  for (size_t i = 0; i < released_.size(); ++i) {
    for (size_t k = 0; k < 2; ++k) {
      const size_t child = 2 * i + 1 + k;
      released_[i]->relay[k] = child < released_.size() ? released_[child] : nullptr;
    }
  }
  if (!released_.empty()) released_[0]->woken.signal();
  // A write leader that syncs next leads that sync itself: a Durable waiter woken now would find
  // it in flight and sleep again.
  if (sync_follows_write_) next_durable = nullptr;
  for (Waiter* w : {next_durable, next_written}) {
    if (w == nullptr) continue;
    if (gather_timer_ == w) gather_timer_ = nullptr;
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), w));
    w->woken.signal();
  }
  for (MarkWaiter* w : mark_waiters_) {
    if (poisoned || stopping_ || mark_of(*w) >= w->sequence) w->woken.notify_one();
  }
  if (progress_waiters_ > 0) progress_.notify_all();
}

void CommitPipeline::wait_progress(Lock& lock) {
  ++progress_waiters_;
  progress_.wait(lock);
  --progress_waiters_;
}

std::cv_status CommitPipeline::wait_progress_until(Lock& lock, Deadline deadline) {
  ++progress_waiters_;
  std::cv_status status = progress_.wait_until(lock, deadline);
  --progress_waiters_;
  return status;
}

Status CommitPipeline::lead_write(Lock& lock, bool sync_follows) {
  write_leader_ = true;
  HlcPoint at = marks_.point(Watermark::Accepted);
  Status begun = writer_->begin_write(write_group_, sync_follows);
  if (!begun.ok()) {
    write_leader_ = false;
    return fail_closed(std::move(begun));
  }
  sync_follows_write_ = sync_follows;
  lock.unlock();
  Status written = log::SegmentWriter::run_write(write_group_);
  lock.lock();
  write_leader_ = false;
  ++groups_;
  Status ended = writer_->end_write(write_group_, std::move(written));
  Status caught = ended.ok() ? catch_up(at, /*durable=*/false) : fail_closed(std::move(ended));
  sync_follows_write_ = false;
  return caught;
}

Status CommitPipeline::lead_sync(Lock& lock) {
  HlcPoint at = marks_.point(Watermark::Written);  // the ticket covers what is written now
  gather_until_.reset();                           // a gathering ends with the fdatasync it fed
  Status begun = writer_->begin_sync(sync_ticket_);
  if (!begun.ok()) return fail_closed(std::move(begun));
  lock.unlock();
  const Deadline started = SteadyClock::now();
  Status synced = log::SegmentWriter::run_sync(sync_ticket_);
  const auto took = SteadyClock::now() - started;
  lock.lock();
  ++synced_groups_;
  // What the next Durable leader gathers (reach()): the callers waiting now, on this fdatasync or
  // the next, and this one; for at most as long as this fdatasync took.
  durable_callers_ = durable_waiters() + 1;
  gather_window_ = std::min<SteadyClock::duration>(took, kGatherWindowMax);
  Status ended = writer_->end_sync(sync_ticket_, std::move(synced));
  if (!ended.ok()) return fail_closed(std::move(ended));
  unsynced_since_.reset();
  if (writer_->unsynced_bytes() > 0) unsynced_since_ = SteadyClock::now();
  return catch_up(at, /*durable=*/true);
}

Status CommitPipeline::reach(Lock& lock, Durability level, uint64_t sequence,
                             std::chrono::milliseconds timeout) {
  if (level == Durability::Accepted) return ok_status();
  const Watermark mark = level == Durability::Durable ? Watermark::Durable : Watermark::Written;
  const bool durable = level == Durability::Durable;
  std::optional<Deadline> deadline;  // set at the first wait: the fast path reads no clock
  Status reached;
  for (;;) {
    if (marks_.sequence(mark) >= sequence) break;
    if (writer_->poisoned()) {
      reached = StoreError(ErrorCode::WriteInDoubt)
                    .with("operation", durable ? "write and fdatasync" : "write")
                    .with("sequence", sequence)
                    .caused_by(*writer_->poison_cause());
      break;
    }
    // A failed stage poisons the writer; the next turn reports it. A Durable caller does not
    // write while an fdatasync runs: it would need the next fdatasync anyway, and waiting lets
    // that one group carry everything appended meanwhile.
    bool gathers = false;  // this caller would lead a write, but waits for the others first
    if (marks_.sequence(Watermark::Written) < sequence) {
      if (!writing() && !(durable && writer_->sync_in_flight())) {
        gathers = durable && gathering();
        if (!gathers) {
          (void)lead_write(lock, /*sync_follows=*/durable);
          continue;
        }
      }
    } else if (!writer_->sync_in_flight()) {
      (void)lead_sync(lock);
      continue;
    }
    // Sleep without the mutex: wake() removes the waiter before it signals, so a caller whose level
    // was reached returns without retaking the mutex (64 callers retaking it after every
    // fdatasync cost more than the fdatasync).
    Waiter waiter{mark, sequence};
    waiters_.push_back(&waiter);
    // One gathering caller keeps the gathering's clock: it wakes one window after the gathering's
    // end and leads if nobody did. (Waking at the end itself, it woke in the middle of the
    // fdatasync that the caller completing the count led, once per group, only to sleep again.)
    if (!deadline) deadline = SteadyClock::now() + timeout;
    Deadline wait_deadline = *deadline;
    if (gathers && gather_timer_ == nullptr) {
      gather_timer_ = &waiter;
      wait_deadline = std::min(*deadline, *gather_until_ + gather_window_);
    }
    lock.unlock();
    if (!waiter.woken.wait_until(wait_deadline)) {
      lock.lock();
      auto it = std::find(waiters_.begin(), waiters_.end(), &waiter);
      if (it != waiters_.end()) {
        waiters_.erase(it);
        const bool kept_clock = gather_timer_ == &waiter;
        if (kept_clock) gather_timer_ = nullptr;
        if (marks_.sequence(mark) < sequence && !writer_->poisoned() &&
            SteadyClock::now() >= *deadline) {
          reached =
              StoreError(ErrorCode::WriteInDoubt)
                  .with("operation", std::string("wait for ") + std::string(watermark_name(mark)))
                  .with("sequence", sequence)
                  .caused_by(wait_timeout(mark, sequence, elapsed_ms(*deadline - timeout)));
          if (kept_clock) wake();  // another gathering waiter takes the clock
          break;
        }
        continue;  // reached, poisoned or the gathering's end: the next turn says which
      }
      // wake() took the waiter just after the deadline; its signal may come from another waiter
      // (the relay), which must find it alive.
      lock.unlock();
      (void)waiter.woken.wait_until(Deadline::max());
    }
    for (Waiter* next : waiter.relay) {
      if (next != nullptr) next->woken.signal();
    }
    if (waiter.reached) return ok_status();  // returns without the lock
    lock.lock();  // woken to lead a stage (or poisoned, or past the deadline: the loop says which)
  }
  return reached;
}

Status CommitPipeline::flush(Lock& lock, bool durable) {
  for (;;) {
    if (writer_->poisoned()) return writer_->poisoned_error();
    if (writing() || (durable && writer_->sync_in_flight())) {
      // A sync in flight may have started before the last write: wait for it and sync again.
      wait_progress(lock);
    } else if (writer_->pending_bytes() > 0) {
      KEEL_TRY(lead_write(lock, /*sync_follows=*/durable));
    } else if (!durable || writer_->unsynced_bytes() == 0) {
      return ok_status();
    } else {
      KEEL_TRY(lead_sync(lock));
    }
  }
}

uint32_t CommitPipeline::durable_waiters() const {
  uint32_t n = 0;
  for (const Waiter* w : waiters_) n += w->mark == Watermark::Durable;
  return n;
}

bool CommitPipeline::gathering() {
  if (durable_waiters() + 1 >= durable_callers_) return false;  // everyone is here
  const Deadline now = SteadyClock::now();
  if (!gather_until_) {
    gather_started_ = now;
  } else if (now >= *gather_until_) {
    return false;  // nobody came for a whole window
  }
  // Each arrival keeps the gathering open for another window (many callers on few cores take
  // longer than one fdatasync to come back), never beyond kGatherWindowMax from its start.
  gather_until_ = std::min(now + gather_window_, gather_started_ + kGatherWindowMax);
  return now < *gather_until_;
}

// After poisoning nothing is appended, written or synced again: every watermark but applied is
// frozen, and applied cannot pass visible.
bool CommitPipeline::frozen(Watermark kind, uint64_t sequence) const {
  if (!marks_.poisoned()) return false;
  if (kind == Watermark::Applied) return sequence > marks_.sequence(Watermark::Visible);
  return true;
}

Status CommitPipeline::wait_for(Lock& lock, Watermark kind, std::optional<uint32_t> lane,
                                uint64_t sequence, std::chrono::milliseconds timeout) {
  if (timeout.count() < 0) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "timeout")
        .with("reason", "is negative");
  }
  Deadline started = SteadyClock::now();
  Deadline deadline = started + timeout;
  MarkWaiter self{kind, lane, sequence, {}};
  mark_waiters_.push_back(&self);
  struct Unlist {  // on every return, with the lock held
    std::vector<MarkWaiter*>& list;
    MarkWaiter* self;
    ~Unlist() { list.erase(std::find(list.begin(), list.end(), self)); }
  } unlist{mark_waiters_, &self};
  for (;;) {
    if (mark_of(self) >= sequence) return ok_status();
    if (stopping_) {
      return StoreError(ErrorCode::InvalidArgument)
          .with("argument", "store")
          .with("reason", "the store closed during the wait");
    }
    if (frozen(kind, sequence)) return writer_->poisoned_error();  // frozen: a writer poisoned
    if (self.woken.wait_until(lock, deadline) == std::cv_status::timeout) {
      if (mark_of(self) >= sequence) return ok_status();
      return wait_timeout(kind, sequence, elapsed_ms(started));
    }
  }
}

// Writes what is pending and syncs what is written once the oldest unsynced event is
// sync_interval old or sync_bytes are unsynced.
void CommitPipeline::background_loop() {
  Lock lock(mutex_);
  while (!stopping_) {
    if (writer_->poisoned() || !unsynced_since_) {
      background_.wait(lock);
      continue;
    }
    Deadline due = *unsynced_since_ + options_.sync_interval;
    if (writer_->unsynced_bytes() < options_.sync_bytes && SteadyClock::now() < due) {
      background_.wait_until(lock, due);
      continue;
    }
    if (writer_->pending_bytes() > 0 && !writing()) {
      (void)lead_write(lock, /*sync_follows=*/true);
    } else if (writer_->pending_bytes() == 0 && !writer_->sync_in_flight() && !writing()) {
      if (writer_->unsynced_bytes() > 0) {
        (void)lead_sync(lock);
      } else {
        unsynced_since_.reset();
      }
    } else {
      wait_progress(lock);
    }
  }
}

}  // namespace keel::writer
