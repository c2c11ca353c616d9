// Visibility fences (docs/ARCHITECTURE.md §7): one at a time, store-wide. The fence's events are
// written and indexed (so CAS, gates and idempotency see them) while the watermarks hold visible
// below them; commit lifts the hold once the commit record is durable (written under AfterWrite);
// cancel hides them: they stay on disk behind a FenceCancel record, the indexes keep only their
// sequences, and every touched head reverts. A crash with the fence open is a cancel (recovery
// writes the record).
#include "format/record.h"
#include "store/store_impl.h"

namespace keel {

namespace {

// A system record is one frame of at most this many bytes (FORMAT.md 6.4).
constexpr uint64_t kSystemRecordBytesMax = 64;

StoreError not_active(uint64_t fence_id, std::string_view reason) {
  return StoreError(ErrorCode::FenceNotActive).with("fence", fence_id).with("reason", reason);
}

}  // namespace

Result<uint64_t> Store::Impl::begin_fence() {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_writable("begin_fence"));
  ActiveCall active(*this);
  for (;;) {
    if (log_->writer()->poisoned()) return log_->writer()->poisoned_error();
    if (fence_) {
      return StoreError(ErrorCode::VisibilityFenceActive)
          .with("fence", fence_->id)
          .with("operation", "begin_fence");
    }
    if (!pipeline_->prepare_append(lock, kSystemRecordBytesMax)) break;
    KEEL_TRY(check_writable("begin_fence"));  // closed while it waited?
  }
  // Unique in the store: epochs grow with every writable open.
  const uint64_t id = (log_->epoch() << 20) + ++fences_begun_;
  KEEL_TRY(open_fence_locked(lock, id));
  return id;
}

Status Store::Impl::open_fence_locked(writer::Lock& lock, uint64_t fence_id) {
  log::SegmentWriter& writer = *log_->writer();
  HlcPoint before = marks_.point(Watermark::Accepted);
  if (!options_.unsafe_skip_fence_records_for_test) {
    if (Status begun =
            writer.append_system(format::SystemRecord{format::RecordType::FenceBegin, fence_id});
        !begun.ok()) {
      return refused(lock, before, std::move(begun).error());
    }
  }
  KEEL_TRY(pipeline_->after_append(lock, before));
  marks_.hold_visible(marks_.point(Watermark::Accepted));
  fence_ = OpenFence{fence_id, writer.next_sequence(), false, {}};
  return ok_status();
}

void Store::Impl::save_head(index::EntityStream& stream) {
  fence_->saved_heads.try_emplace(&stream, stream.head_hash);
}

Status Store::Impl::commit_fence(uint64_t fence_id) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_TRY(check_fence(fence_id, "commit"));
  ActiveCall active(*this);
  return commit_fence_locked(lock, fence_id);
}

Status Store::Impl::commit_fence_locked(writer::Lock& lock, uint64_t fence_id) {
  while (pipeline_->prepare_append(lock, kSystemRecordBytesMax)) {
    KEEL_TRY(check_open());
    KEEL_TRY(check_fence(fence_id, "commit"));
  }
  log::SegmentWriter& writer = *log_->writer();
  if (writer.poisoned()) return writer.poisoned_error();
  const uint64_t last = index_.next_sequence() - 1;
  HlcPoint before = marks_.point(Watermark::Accepted);
  if (!options_.unsafe_skip_fence_records_for_test) {
    if (Status written =
            writer.append_system(format::SystemRecord{format::RecordType::FenceCommit, fence_id});
        !written.ok()) {
      return refused(lock, before, std::move(written).error());  // the fence stays open
    }
  }
  fence_->committing = true;
  Status flushed = pipeline_->after_append(lock, before);
  if (flushed.ok()) {
    flushed = pipeline_->flush(lock, options_.visibility == VisibilityPolicy::AfterDurable);
  }
  if (!flushed.ok()) {
    // In doubt: the record may be on disk. This process never shows the fence (the writer is
    // poisoned, the hold stays); reopen tells whether it committed.
    return StoreError(ErrorCode::WriteInDoubt)
        .with("operation", "fence commit")
        .with("sequence", last)
        .caused_by(std::move(flushed).error());
  }
  fence_.reset();
  ++fences_committed_;
  marks_.release_visible();
  return pipeline_->republish();
}

void Store::Impl::hide_fence_events() {
  const uint64_t first = fence_->first_sequence;
  const uint64_t end = index_.next_sequence();
  index_.truncate(first);
  for (uint64_t s = first; s < end; ++s) index_.add_hidden(s);
  for (auto& [stream, hash] : fence_->saved_heads) stream->head_hash = hash;
  keys_.remove_from(first);
}

Status Store::Impl::cancel_fence(uint64_t fence_id) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_TRY(check_fence(fence_id, "cancel"));
  ActiveCall active(*this);
  return cancel_fence_locked(lock, fence_id);
}

Status Store::Impl::cancel_fence_locked(writer::Lock& lock, uint64_t fence_id) {
  while (pipeline_->prepare_append(lock, kSystemRecordBytesMax)) {
    KEEL_TRY(check_fence(fence_id, "cancel"));
  }
  log::SegmentWriter& writer = *log_->writer();
  Status recorded = ok_status();
  if (!writer.poisoned() && !options_.unsafe_skip_fence_records_for_test) {
    HlcPoint before = marks_.point(Watermark::Accepted);
    recorded = writer.append_system(format::SystemRecord{format::RecordType::FenceCancel, fence_id,
                                                         format::CancelReason::Caller});
    if (recorded.ok()) {
      recorded = pipeline_->after_append(lock, before);
    } else {
      // Without its cancel record the fence is open on disk: nothing may follow it (recovery would
      // find events after an open fence). Fail closed; reopen cancels it (FORMAT.md row 11).
      recorded = pipeline_->fail_closed(std::move(recorded));
    }
  }
  // The fence is cancelled in memory either way: a crash now hides its events too.
  hide_fence_events();
  fence_.reset();
  ++fences_cancelled_;
  marks_.release_visible();
  Status published = pipeline_->republish();
  return recorded.ok() ? published : recorded;
}

// ---- the public handle ----

Fence::~Fence() {
  if (open_) (void)cancel();
}

Result<Receipt> Fence::append(const Coordinate& coordinate, EventKind kind,
                              std::string_view payload, const AppendOptions& options) {
  KEEL_TRY(check_not_in_gate(store_, "Fence::append"));
  if (!open_) return not_active(id_, "it was committed or cancelled");
  return store_->append(coordinate, kind, payload, options, id_);
}

Result<std::vector<Receipt>> Fence::append_batch(std::span<const BatchItem> items,
                                                 const BatchOptions& options) {
  KEEL_TRY(check_not_in_gate(store_, "Fence::append_batch"));
  if (!open_) return not_active(id_, "it was committed or cancelled");
  return store_->append_batch(items, options, id_);
}

Status Fence::commit() {
  KEEL_TRY(check_not_in_gate(store_, "Fence::commit"));
  if (!open_) return not_active(id_, "it was committed or cancelled");
  Status committed = store_->commit_fence(id_);
  // Once its record is written the fence is no longer open, committed or in doubt.
  if (committed.ok() || committed.error().is(ErrorCode::WriteInDoubt) ||
      committed.error().is(ErrorCode::FenceNotActive)) {
    open_ = false;
  }
  return committed;
}

Status Fence::cancel() {
  KEEL_TRY(check_not_in_gate(store_, "Fence::cancel"));
  if (!open_) return not_active(id_, "it was committed or cancelled");
  open_ = false;
  return store_->cancel_fence(id_);
}

}  // namespace keel
