// Store: open, load (recovery -> index), close, stats, and the public facade.
#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <thread>

#include "format/format_constants.h"
#include "format/record.h"
#include "keel/coordinate.h"
#include "log/consumer_file.h"
#include "log/epoch_file.h"
#include "log/segment_files.h"
#include "store/store_impl.h"
#include "store/store_internals.h"

namespace keel {
namespace {

// No append the options allow may need a record the format cannot hold (a frame body is at most
// 64 MiB, segments/FORMAT.md 4.1): such a record would be acknowledged, then read back as a torn
// tail. The bound counts every variable field at its largest (format::event_record_body_bound).
Status check_record_limits(const StoreOptions& options) {
  auto too_large = [](const char* argument, std::string reason) {
    return StoreError(ErrorCode::InvalidArgument).with("argument", argument).with("reason", reason);
  };
  const uint64_t event_max = format::event_record_variable_bytes_max(1) - kEntityMaxBytes -
                             kScopeMaxBytes - kIdempotencyKeyBytesMax;
  const uint64_t carried = uint64_t{options.payload_bytes_max} + options.metadata_bytes_max;
  if (carried > event_max) {
    return too_large("payload_bytes_max",
                     "payload_bytes_max + metadata_bytes_max is " + std::to_string(carried) +
                         " bytes; one event carries at most " + std::to_string(event_max) +
                         " (a record body is at most 64 MiB)");
  }
  const uint64_t batch_max = format::event_record_variable_bytes_max(options.batch_items_max);
  if (batch_max == 0) {
    uint64_t items_max = (format::kFrameBodyMax - format::kBatchHeaderBytesMax - 1) /
                         format::kEventBodyFixedBytesMax;
    return too_large("batch_items_max", std::to_string(options.batch_items_max) +
                                            " events; at most " + std::to_string(items_max) +
                                            " fit one record (a record body is at most 64 MiB)");
  }
  if (options.batch_bytes_max > batch_max) {
    return too_large("batch_bytes_max", std::to_string(options.batch_bytes_max) +
                                            " bytes; a batch of batch_items_max " +
                                            std::to_string(options.batch_items_max) +
                                            " events carries at most " + std::to_string(batch_max) +
                                            " (a record body is at most 64 MiB)");
  }
  return ok_status();
}

}  // namespace

Store::Impl::Impl(const std::string& directory, const StoreOptions& options)
    : directory_(directory),
      options_(options),
      fs_(options.file_system ? *options.file_system : platform::posix_file_system()),
      clock_(options.clock ? *options.clock : platform::system_clock()),
      reader_(fs_, directory, options.read_cache_bytes),
      hlc_(clock_, static_cast<uint64_t>(options.hlc_jump_bound.count())),
      id_random_(options.id_seed != 0 ? options.id_seed
                                      : clock_.monotonic_ns() ^ reinterpret_cast<uintptr_t>(this) ^
                                            std::random_device{}()),
      marks_(options.visibility) {}

Result<std::unique_ptr<Store::Impl>> Store::Impl::open(const std::string& directory,
                                                       const StoreOptions& options) {
  auto invalid = [](const char* argument, const char* reason) {
    return StoreError(ErrorCode::InvalidArgument).with("argument", argument).with("reason", reason);
  };
  if (directory.empty()) return invalid("directory", "is empty");
  if (options.segment_size < log::kSegmentSizeMin || options.segment_size > UINT32_MAX) {
    return invalid("segment_size", "must be between 4096 bytes and 4 GiB");
  }
  if (options.lanes_max == 0) return invalid("lanes_max", "must be at least 1");
  if (options.batch_items_max == 0 || options.batch_items_max > format::kBatchEventsMax) {
    return invalid("batch_items_max", "must be between 1 and 1048576");
  }
  KEEL_TRY(check_record_limits(options));
  if (options.append_timeout.count() <= 0) return invalid("append_timeout", "must be positive");
  if (options.sync_interval.count() <= 0) return invalid("sync_interval", "must be positive");
  if (options.sync_bytes == 0) return invalid("sync_bytes", "must be positive");
  if (options.hlc_jump_bound.count() <= 0) return invalid("hlc_jump_bound", "must be positive");
  if (options.index_image_interval.count() < 0) {
    return invalid("index_image_interval", "must not be negative");
  }
  std::unique_ptr<Impl> impl(new Impl(directory, options));
  log::LogOptions log_options;
  log_options.create_if_missing = options.create_if_missing;
  log_options.read_only = options.read_only;
  log_options.writer.segment_size = options.segment_size;
  log_options.writer.skip_sync_for_test = options.unsafe_skip_fdatasync_for_test;
  KEEL_TRY(impl->load(log_options));
  // A fixed seed (tests) still gives each later writable open its own ids: a crash can take back
  // events whose ids a reopen within the same millisecond would otherwise issue again.
  if (options.id_seed != 0 && impl->epoch() > 1) {
    // splitmix64 of (seed, epoch): not linear, so no caller's own per-open seed can cancel it.
    auto mix = [](uint64_t x) {
      x += 0x9e3779b97f4a7c15ull;
      x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
      x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
      return x ^ (x >> 31);
    };
    impl->id_random_.seed(mix(options.id_seed ^ mix(impl->epoch())));
  }
  impl->pipeline_ = std::make_unique<writer::CommitPipeline>(
      impl->mutex_, impl->log_->writer(), impl->marks_,
      writer::PipelineOptions{options.visibility, options.sync_interval, options.sync_bytes});
  impl->pipeline_->start();
  if (impl->log_->writer() != nullptr && options.index_image_interval.count() > 0) {
    Impl* raw = impl.get();
    impl->image_thread_ = std::thread([raw] { raw->image_loop(); });
  }
  return impl;
}

// A read-only open beside a live writer reads the last segment while it grows, and a read that
// straddles a write can look like damage (zeros before a synced frame). Such a view is retried
// before it is believed; a writable open is never retried (nothing writes beside it).
Status Store::Impl::load(const log::LogOptions& log_options) {
  constexpr int kReadOnlyAttempts = 5;
  files_seen_.reset();
  if (log_options.read_only) {
    // Unseen (a missing directory: the load says so), the next refresh reloads.
    if (auto seen = see_files(); seen.ok()) files_seen_ = std::move(*seen);
  }
  for (int attempt = 1;; ++attempt) {
    Status loaded = load_once(log_options);
    if (loaded.ok() || !log_options.read_only || attempt == kReadOnlyAttempts ||
        loaded.error().error_class() != ErrorClass::FailClosed) {
      return loaded;
    }
    index_ = index::EventIndex();
    reader_.reset();
    marks_ = frontier::Watermarks(options_.visibility);
    std::this_thread::sleep_for(std::chrono::milliseconds(attempt));
  }
}

// Builds the index from the records recovery keeps. A fence's events wait until its end record:
// committed ones are added, cancelled ones (or a fence still open at the tail) stay hidden.
Status Store::Impl::load_once(log::LogOptions log_options, bool follow) {
  records_replayed_ = 0;
  bool rejected = false;
  if (follow) {
    // The index, the keys and the read tail go on; the log must continue where it ended.
    log_options.checkpoint = follow_from_;
    log_options.checkpoint_rejected = [&rejected](const std::string&) { rejected = true; };
  } else {
    index_source_ = "log";
    image_sequence_ = 0;
    image_on_disk_.reset();
    tail_ = ReadTail();
    shown_ = HlcPoint{};
    KEEL_ASSIGN_OR_RETURN(keys_through_, load_keys());
    if (keys_through_ != 0) {  // its keys were cut at a durable sequence: the log must hold it
      log_options.references.push_back(log::LogReference{
          platform::join_path(directory_, format::kIdempotencyFileName), keys_through_ + 1});
    }
    KEEL_TRY(restore_image(log_options, keys_through_));
  }
  follow_from_.reset();
  // Beside a live writer the prefix shown reaches at least what is known durable before the scan:
  // what the last load showed (follow), or the index image's point (written at a durable one).
  HlcPoint durable_floor = shown_;
  if (!follow && log_options.checkpoint) {
    durable_floor.global_sequence = log_options.checkpoint->next_sequence - 1;
    const uint64_t last = index_.last_visible_sequence();
    durable_floor.wall_ms = last != 0 ? index_.hlc_at(last).wall_ms : 0;
  }
  log_options.accept_data_loss = options_.accept_data_loss;
  log_options.before_loss_recorded = [this](const log::DataLoss& loss) {
    return drop_references_above(loss);
  };
  struct Pending {
    uint64_t sequence;
    index::EventLocation location;
    index::EventFacts facts;  // its scope points into `scope`
    std::string entity;
    std::string scope;
    uint32_t lane;
    std::optional<std::string> key;  // its idempotency key, fingerprint and receipt
    Hash128 fingerprint;
    uint64_t epoch;
  };
  std::vector<Pending> fenced;
  std::optional<StoreError> failure;
  // Only a log whose first segments were removed (a retention floor) starts above the index: the
  // events below the floor live on only in the index image, and it was not used.
  auto floor_without_image = [&] {
    return StoreError(ErrorCode::CorruptSidecar)
        .with("path", platform::join_path(directory_, format::kIndexImageFileName))
        .with("reason",
              "segments below the retention floor were removed and the index image "
              "that holds their events could not be used (" +
                  index_source_ + ")");
  };
  auto add = [&](const Pending& p, bool hidden) {
    if (failure) return;
    if (p.sequence != index_.next_sequence()) {
      failure = floor_without_image();
      return;
    }
    if (hidden) {
      index_.add_hidden(p.sequence);
      return;
    }
    index::EventFacts facts = p.facts;
    facts.scope = p.scope;
    auto corrupt = [&](std::string problem) {
      failure = StoreError(ErrorCode::Corruption)
                    .with("path", directory_)
                    .with("offset", p.sequence)
                    .with("reason", problem + " (offset is the sequence)")
                    .with("rule", "index build");
    };
    if (const char* problem =
            index_.add(p.sequence, p.location, facts, index_.stream_for(p.entity, p.lane))) {
      return corrupt(problem);
    }
    // Keys are rebuilt from the log: a crash loses none (the sidecar holds only those the log
    // may no longer have, and those the index image covers).
    if (p.key && p.sequence > keys_through_ && !options_.unsafe_ignore_logged_keys_for_test &&
        !keys_.add(
            *p.key, p.fingerprint,
            Receipt{facts.id, p.epoch, p.sequence, facts.clock, facts.hlc, facts.chained_hash})) {
      corrupt("idempotency key " + index::printable_key(*p.key) + " repeated or out of order");
    }
  };
  // Read-only opens beside a live writer see only its durable prefix: the frames of the last
  // segment that a later frame's durable_through claims were synced (tail_).
  auto visit = [&](const log::RecordPosition& position, const format::DecodedFrame& frame) {
    using format::RecordType;
    if (rejected) return;  // follow: the log no longer continues there, and it starts over
    ++records_replayed_;
    if (log_options.read_only) {
      if (position.segment_id != tail_.segment) {
        tail_.segment = position.segment_id;
        tail_.durable_through = 0;
        tail_.frames.clear();
      }
      const char* ignored;
      uint64_t events = format::is_system_record(frame.header.type)
                            ? 0
                            : format::record_event_count(frame, &ignored);
      tail_.durable_through = std::max(tail_.durable_through, frame.header.durable_through);
      tail_.frames.push_back(TailFrame{position.offset + frame.size, frame.header.sequence + events,
                                       tail_.last_wall_ms});
    }
    if (frame.header.type == RecordType::FenceCommit ||
        frame.header.type == RecordType::FenceCancel) {
      for (const Pending& p : fenced) add(p, frame.header.type == RecordType::FenceCancel);
      fenced.clear();
      return;
    }
    if (format::is_system_record(frame.header.type)) return;
    (void)format::decode_record_events(frame, [&](uint32_t i, const format::EventBody& e) {
      hlc_.observe(Hlc{e.hlc_wall_ms, e.hlc_logical});
      tail_.last_wall_ms = e.hlc_wall_ms;
      if (log_options.read_only) tail_.frames.back().wall_ms = e.hlc_wall_ms;
      marks_.note_lane(e.lane);
      Pending p{frame.header.sequence + i,
                index::EventLocation{static_cast<uint32_t>(position.segment_id),
                                     static_cast<uint32_t>(position.offset)},
                index::facts_of(e),
                std::string(e.entity),
                std::string(e.scope),
                e.lane,
                std::nullopt,
                e.idempotency_fingerprint.value_or(Hash128{}),
                frame.header.epoch};
      if (e.idempotency_key) p.key.emplace(*e.idempotency_key);
      if (e.fence_id) {
        fenced.push_back(std::move(p));
      } else {
        add(p, false);
      }
    });
  };
  KEEL_ASSIGN_OR_RETURN(log_, log::Log::open(fs_, directory_, log_options, visit));
  if (follow && (rejected || log_->epoch() != follow_epoch_)) {
    // Another writer since (it may have cut what was not durable), or the log's start moved.
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "follow")
        .with("reason", "the log does not continue where the last load ended");
  }
  for (const Pending& p : fenced) add(p, true);  // a fence open at the tail stays hidden
  if (failure) return *failure;
  const log::RecoveredLog& recovered = log_->recovered();
  first_retained_sequence_ = recovered.first_sequence;
  first_retained_segment_ =
      recovered.retention_floor ? recovered.retention_floor->first_segment_id : 1;
  removed_events_ = count_removed_events();
  if (first_retained_sequence_ > 1 && !recovered.checkpoint_used) return floor_without_image();
  // Keys naming events the log does not hold must not answer: only an accepted data loss leaves
  // any (the sidecar is cut at a durable sequence, which the log must reach otherwise).
  keys_.remove_from(recovered.next_sequence);
  keys_.expire(recovered.next_sequence, hlc_.physical_ms(), options_.idempotency_window_events,
               static_cast<uint64_t>(options_.idempotency_window.count()));
  if (recovered.checkpoint_used) {
    // What the tail's events did for the HLC and the lanes, the image's events do here.
    if (!follow) index_source_ = "image";
    for (uint32_t lane : index_.lanes()) marks_.note_lane(lane);
    if (uint64_t last = index_.last_visible_sequence(); last != 0) {
      Hlc hlc = index_.hlc_at(last);
      hlc_.observe(hlc);
      if (tail_.last_wall_ms == 0) tail_.last_wall_ms = hlc.wall_ms;
    }
  }
  // What this open shows: everything recovered, or a read-only open's durable prefix (below).
  HlcPoint shown{tail_.last_wall_ms, recovered.next_sequence - 1};
  if (log_options.read_only && !recovered.segments.empty() && !recovered.segments.back().sealed) {
    KEEL_ASSIGN_OR_RETURN(bool writer_live, writer_is_live());
    if (writer_live) {
      // Every segment before the last is sealed, so synced whole: the prefix reaches at least the
      // last segment's first sequence. Its own frames (if the visitor saw any: it may hold none
      // yet, and then tail_frames are an earlier segment's) add what their claims vouch for, and
      // so does the writer's SYNCED point (its newest frames have no later frame to claim them).
      const log::RecoveredSegment& last = recovered.segments.back();
      uint64_t durable_next = last.header.first_sequence;
      uint64_t durable_wall_ms = 0;  // unknown when the prefix ends before the last segment
      if (tail_.segment == last.header.segment_id) {
        uint64_t durable_through = tail_.durable_through;
        KEEL_ASSIGN_OR_RETURN(std::optional<log::SyncedPoint> synced,
                              log::read_synced_point(fs_, directory_));
        if (synced && synced->epoch == log_->epoch() &&
            synced->segment_id == last.header.segment_id) {
          durable_through = std::max(durable_through, synced->offset);
        }
        size_t vouched = 0;  // frames before the last vouched one are of no further use
        for (size_t i = 0; i < tail_.frames.size(); ++i) {
          if (tail_.frames[i].end <= durable_through) {
            durable_next = tail_.frames[i].next_sequence;
            durable_wall_ms = tail_.frames[i].wall_ms;
            vouched = i;
          }
        }
        tail_.frames.erase(tail_.frames.begin(), tail_.frames.begin() + vouched);
      }
      shown = HlcPoint{durable_wall_ms, durable_next - 1};
      if (recovered.checkpoint_used && shown.global_sequence < durable_floor.global_sequence) {
        shown = durable_floor;
      }
    }
  }
  shown_ = shown;
  // Every recovered event the store shows has reached every level (docs/ARCHITECTURE.md §4: checked
  // on load).
  marks_.bootstrap(shown);
  if (const log::SegmentWriter* writer = log_->writer()) {
    std::string problem = marks_.check();
    if (problem.empty() && (writer->sequence_durable() != shown.global_sequence ||
                            writer->next_sequence() != shown.global_sequence + 1)) {
      problem = "the writer continues at sequence " + std::to_string(writer->next_sequence()) +
                " after recovering " + std::to_string(shown.global_sequence);
    }
    if (!problem.empty())
      return StoreError(ErrorCode::InvariantViolation).with("invariant", problem);
    KEEL_TRY(restore_durable_consumers());
  } else if (!recovered.segments.empty() && recovered.open_fence() == nullptr) {
    // A read-only store follows on from the end of this log. Not from inside an open fence: its
    // end record would come without its begin (recovery refuses that), so the next refresh loads
    // again at once.
    const log::RecoveredSegment& last = recovered.segments.back();
    follow_from_ = log::Checkpoint{recovered.next_sequence, recovered.max_epoch,
                                   last.header.segment_id, last.data_end, last.last_frame_offset};
    follow_epoch_ = log_->epoch();
  }
  return ok_status();
}

// The durable consumers (include/keel/consumer.h) define applied across reopens: each counts at
// its committed cursor. One whose file is damaged counts at 0 (its position is unknown: nothing
// may assume it applied anything); one whose cursor is beyond the recovered log does not count
// (opening it is CursorAheadOfLog). Read errors fail the open (Io).
Status Store::Impl::restore_durable_consumers() {
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> names, log::list_consumers(fs_, directory_));
  std::vector<std::pair<std::string, uint64_t>> positions;
  for (const std::string& name : names) {
    auto cursor = log::read_consumer_cursor(fs_, directory_, name);
    if (!cursor.ok()) {
      if (cursor.error().code() != ErrorCode::CorruptSidecar &&
          cursor.error().code() != ErrorCode::UnsupportedVersion) {
        return std::move(cursor).error();
      }
      positions.emplace_back(name, 0);
    } else if (*cursor && (*cursor)->cursor <= sequence_visible()) {
      positions.emplace_back(name, (*cursor)->cursor);
    }
  }
  marks_.restore_consumers(positions);
  return ok_status();
}

Result<Store::Impl::FilesSeen> Store::Impl::see_files() {
  FilesSeen seen;
  KEEL_ASSIGN_OR_RETURN(seen.entries, fs_.list_directory(directory_));
  std::sort(seen.entries.begin(), seen.entries.end());
  KEEL_ASSIGN_OR_RETURN(seen.writer_live, writer_is_live());
  KEEL_ASSIGN_OR_RETURN(seen.epoch, log::read_epoch(fs_, directory_));
  KEEL_ASSIGN_OR_RETURN(seen.synced, log::read_synced_point(fs_, directory_));
  return seen;
}

// A writer only appends to its last segment (or starts the next one, a new file): with the same
// files, writer and epoch and no byte after the recovered end, a reload would recover the same log
// and show the same prefix. Anything else (a sidecar replaced through its .tmp, a truncated tail,
// a new writer) reads again.
Result<bool> Store::Impl::files_changed() {
  if (!files_seen_ || log_->recovered().segments.empty()) return true;
  KEEL_ASSIGN_OR_RETURN(FilesSeen now, see_files());
  if (now.entries != files_seen_->entries || now.writer_live != files_seen_->writer_live ||
      now.epoch != files_seen_->epoch || now.synced != files_seen_->synced) {
    return true;
  }
  const log::RecoveredSegment& last = log_->recovered().segments.back();
  KEEL_ASSIGN_OR_RETURN(auto file, fs_.open(last.path, platform::OpenMode::ReadOnly));
  KEEL_ASSIGN_OR_RETURN(uint64_t size, file->size());
  if (size < last.data_end) return true;
  std::array<std::byte, format::kFrameHeaderSize> after{};
  const size_t want = static_cast<size_t>(std::min<uint64_t>(after.size(), size - last.data_end));
  KEEL_ASSIGN_OR_RETURN(size_t got, file->read_at(last.data_end, std::span(after.data(), want)));
  if (got != want) return true;
  return std::any_of(after.begin(), after.begin() + want,
                     [](std::byte b) { return b != std::byte{0}; });
}

// Whether a writable open holds the store's lock (probed with a shared lock, never creating LOCK).
Result<bool> Store::Impl::writer_is_live() {
  std::string path = platform::join_path(directory_, format::kLockFileName);
  KEEL_ASSIGN_OR_RETURN(bool present, fs_.exists(path));
  if (!present) return false;
  KEEL_ASSIGN_OR_RETURN(auto probe, fs_.lock(path, platform::LockMode::Shared));
  return probe == nullptr;
}

Status Store::Impl::check_open() const {
  if (closed_) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "store")
        .with("reason", "the store is closed");
  }
  return ok_status();
}

Status Store::Impl::check_writable(std::string_view operation) const {
  KEEL_TRY(check_open());
  if (log_->writer() == nullptr) {
    return StoreError(ErrorCode::ReadOnlyStore)
        .with("path", directory_)
        .with("operation", operation);
  }
  return ok_status();
}

Status Store::Impl::refresh() {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  if (log_->writer() != nullptr) return ok_status();  // a writable store is always current
  KEEL_ASSIGN_OR_RETURN(bool changed, files_changed());
  if (!changed) return ok_status();
  std::unique_lock rereading(segments_in_use_);  // reads outside the mutex end first
  // The frontier restarts from the new prefix (consumers of a read-only store re-register).
  reader_.reset();
  marks_ = frontier::Watermarks(options_.visibility);
  log::LogOptions log_options;
  log_options.read_only = true;
  // Read on from where the last load ended when the log continues there; else re-run read-only
  // recovery into a fresh index, exactly as strict as open.
  if (follow_from_) {
    if (auto seen = see_files(); seen.ok()) {
      log_options.follow = true;
      if (load_once(log_options, /*follow=*/true).ok()) {
        files_seen_ = std::move(*seen);
        pipeline_->notify();
        return ok_status();
      }
      reader_.reset();
      marks_ = frontier::Watermarks(options_.visibility);
      log_options.follow = false;
    }
  }
  index_ = index::EventIndex();
  Status loaded = load(log_options);
  pipeline_->notify();
  return loaded;
}

// New calls are refused from here on; calls in flight finish first (a final group makes every
// accepted event durable, so appends waiting for it return), then the background sync stops and
// the log closes. A poisoned store reports its poison.
Status Store::Impl::close() {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_open());
  // An open fence is cancelled (docs/ARCHITECTURE.md §7): its events stay hidden.
  Status cancelled;
  if (fence_ && !fence_->committing && log_->writer() != nullptr) {
    ActiveCall active(*this);
    cancelled = cancel_fence_locked(lock, fence_->id);
  }
  closed_ = true;
  Status synced;
  if (log_->writer() != nullptr && !log_->writer()->poisoned()) {
    uint64_t accepted = marks_.sequence(Watermark::Accepted);
    if (accepted > marks_.sequence(Watermark::Durable)) {
      synced = pipeline_->reach(lock, Durability::Durable, accepted, std::chrono::hours(24 * 365));
      if (!lock.owns_lock()) lock.lock();
    }
  }
  pipeline_->stop(lock);  // wakes waiters: waits on a closing store end
  stop_image_thread(lock);
  while (active_calls_.load() != 0) {  // ActiveCall: polled
    lock.unlock();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    lock.lock();
  }
  // The index image of everything, durable by now unless poisoned (then none: the image would
  // claim events the log may not keep), unless the INDEX on disk holds these indexes already (an
  // open from it that appended nothing and hid nothing: rewriting it took 416 ms at 1M events).
  std::optional<Image> image;
  Status imaged = ok_status();
  const bool image_current =
      image_on_disk_ && *image_on_disk_ == std::pair(index_.next_sequence(), index_.event_count());
  if (synced.ok() && log_->writer() != nullptr && !image_current &&
      marks_.sequence(Watermark::Durable) + 1 == index_.next_sequence()) {
    auto encoded = image_at_durable(lock);
    if (encoded.ok()) {
      image = std::move(*encoded);
    } else {
      imaged = std::move(encoded).error();
    }
  }
  reader_.reset();
  Status closed = log_->close();
  if (!synced.ok()) return synced;  // the in-doubt events first
  if (!cancelled.ok()) return cancelled;
  // The INDEX without waiting for the disk: it is a cache (FORMAT.md 8.4), and the fdatasync of its
  // megabytes was most of a close. The log, END and the keys are durable before it.
  if (closed.ok() && image) return write_image(*image, log::Replace::Cached);
  if (closed.ok()) return imaged;  // INDEX.tmp could not be written
  return closed;
}

void Store::Impl::stop_image_thread(writer::Lock& lock) {
  if (!image_thread_.joinable()) return;
  image_stopping_ = true;
  image_wake_.notify_all();
  lock.unlock();
  image_thread_.join();
  lock.lock();
}

Store::Impl::~Impl() {
  if (image_thread_.joinable()) {
    writer::Lock lock(mutex_);
    stop_image_thread(lock);
  }
}

// The bytes of the retained segments: the sealed ones' file sizes (each read once, when it is
// first seen sealed; the ones recovered sealed are known from recovery) and the active one's data.
uint64_t Store::Impl::segment_bytes_locked() const {
  const log::SegmentWriter& writer = *log_->writer();
  if (!sizes_loaded_) {  // first call: what recovery saw
    sizes_loaded_ = true;
    for (const auto& segment : log_->recovered().segments) {
      if (segment.header.segment_id < writer.active_segment_id()) {
        sealed_bytes_[segment.header.segment_id] = segment.data_end;
      }
    }
    sized_through_ = std::max<uint64_t>(1, first_retained_segment_) - 1;
    if (!sealed_bytes_.empty())
      sized_through_ = std::max(sized_through_, sealed_bytes_.rbegin()->first);
  }
  for (uint64_t id = sized_through_ + 1; id < writer.active_segment_id(); ++id) {
    auto file = fs_.open(platform::join_path(directory_, log::segment_file_name(id)),
                         platform::OpenMode::ReadOnly);
    auto size = file.ok() ? (*file)->size() : Result<uint64_t>(std::move(file).error());
    sealed_bytes_[id] = size.ok() ? *size : 0;  // unreadable: counted as nothing, not guessed
    sized_through_ = id;
  }
  sealed_bytes_.erase(sealed_bytes_.begin(), sealed_bytes_.lower_bound(first_retained_segment_));
  uint64_t total = stable_end_of(writer.active_segment_id());
  for (const auto& [id, bytes] : sealed_bytes_) total += bytes;
  return total;
}

StoreStats Store::Impl::stats() const {
  std::lock_guard lock(mutex_);
  StoreStats s;
  if (!log_) return s;
  const log::RecoveredLog& recovered = log_->recovered();
  s.epoch = log_->epoch();
  // Visible events: not those above visible (unsynced, or in an open fence) nor those removed.
  uint64_t above_visible = 0;
  for (uint64_t q = marks_.sequence(Watermark::Visible) + 1; q < index_.next_sequence(); ++q) {
    above_visible += index_.visible_in_index(q) ? 1 : 0;
  }
  s.events = index_.event_count() - removed_events_ - above_visible;
  s.entities = index_.stream_count();
  s.index_bytes = index_.memory_bytes();
  s.index_source = index_source_;
  s.records_replayed = records_replayed_;
  s.index_image_hold_us = image_hold_us_;
  {
    std::lock_guard image_lock(image_mutex_);
    s.index_images_written = images_written_;
    s.index_image_error = image_error_;
  }
  s.sequence_visible = marks_.sequence(Watermark::Visible);
  s.sequence_written = marks_.sequence(Watermark::Written);
  s.sequence_durable = marks_.sequence(Watermark::Durable);
  s.sequence_next = marks_.sequence(Watermark::Accepted) + 1;
  if (const log::SegmentWriter* writer = log_->writer()) {
    s.segments = writer->active_segment_id() - first_retained_segment_ + 1;
    s.bytes_on_disk = segment_bytes_locked();
  } else {
    for (const auto& segment : recovered.segments) s.bytes_on_disk += segment.data_end;
    s.segments = recovered.segments.size();
    s.sequence_next = recovered.next_sequence;
  }
  s.frontier_log = frontier_log_;
  s.idempotency_keys = keys_.size();
  s.idempotency_hits = idempotency_hits_;
  s.gates_evaluated = gates_evaluated_;
  s.gate_denials = gate_denials_;
  s.gate_time_ns = gate_time_ns_;
  s.fences_committed = fences_committed_;
  s.fences_cancelled = fences_cancelled_;
  s.first_retained_sequence = first_retained_sequence_;
  // Every slot of the index is an indexed event (removed below a floor included) or a hidden one.
  s.hidden_events = index_.next_sequence() - 1 - index_.event_count();
  if (pipeline_) {
    s.commit_groups = pipeline_->groups();
    s.commit_syncs = pipeline_->synced_groups();
  }
  for (const std::string& cut : log_->poison_truncations()) {
    s.recovery_actions.push_back("PoisonedWriterReopen: " + cut);
  }
  if (recovered.data_loss) {
    s.recovery_actions.push_back(
        std::string(log::recovery_row(log::RecoveryRule::DurableEndNotReached).name) +
        " accepted: " + recovered.data_loss->reference.name + " named sequence " +
        std::to_string(recovered.data_loss->reference.next_sequence - 1) + "; " +
        recovered.data_loss->found + (log_->writer() ? "" : " [not recorded: read-only]"));
  }
  if (!log_->end_set_aside().empty()) {
    s.recovery_actions.push_back("damaged END set aside: " + log_->end_set_aside());
  }
  if (log_->log_end()) {
    for (const log::AcceptedLoss& loss : log_->log_end()->losses) {
      s.data_losses.push_back(log::describe(loss));
    }
  }
  for (const auto& action : recovered.actions) {
    s.recovery_bytes_dropped += action.bytes_dropped;
    s.recovery_frames_dropped += action.frames_dropped;
    s.recovery_actions.push_back(std::string(log::recovery_row(action.rule).name) + " at " +
                                 action.path + ":" + std::to_string(action.offset) + " (" +
                                 std::to_string(action.bytes_dropped) + " bytes, " +
                                 std::to_string(action.frames_dropped) + " frames dropped)" +
                                 (action.applied ? "" : " [not applied: read-only]"));
  }
  return s;
}

Frontier Store::Impl::frontier() const {
  std::lock_guard lock(mutex_);
  Frontier f;
  marks_.snapshot(f);
  f.hlc = hlc_.status();
  return f;
}

Status Store::Impl::wait_for(Watermark kind, std::optional<uint32_t> lane, uint64_t sequence,
                             std::chrono::milliseconds timeout) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_open());
  if (lane && *lane >= options_.lanes_max) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "lane")
        .with("reason", "lane " + std::to_string(*lane) + " is not below lanes_max " +
                            std::to_string(options_.lanes_max));
  }
  ActiveCall active(*this);
  return pipeline_->wait_for(lock, kind, lane, sequence, timeout);
}

Status Store::Impl::register_consumer(std::string_view name, uint64_t position) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_TRY(marks_.register_consumer(name, position));
  pipeline_->notify();
  return ok_status();
}

// One step under the mutex: between a separate reset_applied and register_consumer, applied
// follows visible again (no consumer counted) and the registration is refused.
Status Store::Impl::count_consumer(std::string_view name, uint64_t position,
                                   std::string_view reason) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  (void)marks_.unregister_consumer(name);  // NotFound when it was not counted
  if (position < marks_.sequence(Watermark::Applied)) {
    KEEL_ASSIGN_OR_RETURN(std::string line, marks_.reset_applied(position, reason));
    frontier_log_.push_back(line);
  }
  KEEL_TRY(marks_.register_consumer(name, position));
  pipeline_->notify();
  return ok_status();
}

uint64_t Store::Impl::add_subscription(uint64_t position) {
  std::lock_guard lock(mutex_);
  return marks_.add_subscription(position);
}

void Store::Impl::subscription_delivered(uint64_t id, uint64_t position) {
  std::lock_guard lock(mutex_);
  marks_.subscription_delivered(id, position);
  if (check_open().ok()) pipeline_->notify();  // after close() the pipeline has no writer
}

void Store::Impl::remove_subscription(uint64_t id) {
  std::lock_guard lock(mutex_);
  marks_.remove_subscription(id);
  if (check_open().ok()) pipeline_->notify();  // a subscription may outlive close()
}

Status Store::Impl::consumer_applied(std::string_view name, uint64_t sequence) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_TRY(marks_.consumer_applied(name, sequence));
  pipeline_->notify();
  return ok_status();
}

Status Store::Impl::unregister_consumer(std::string_view name) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_TRY(marks_.unregister_consumer(name));
  pipeline_->notify();
  return ok_status();
}

Result<std::string> Store::Impl::reset_applied(uint64_t sequence, std::string_view reason) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_ASSIGN_OR_RETURN(std::string line, marks_.reset_applied(sequence, reason));
  frontier_log_.push_back(line);
  pipeline_->notify();
  return line;
}

// ---- the facade ----

Store::Store(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Store::~Store() {
  if (impl_) (void)impl_->close();
}

Result<std::unique_ptr<Store>> Store::open(const std::string& directory,
                                           const StoreOptions& options) {
  KEEL_ASSIGN_OR_RETURN(auto impl, Impl::open(directory, options));
  return std::unique_ptr<Store>(new Store(std::move(impl)));
}

Result<Receipt> Store::append(const Coordinate& coordinate, EventKind kind,
                              std::string_view payload, const AppendOptions& options) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "append"));
  return impl_->append(coordinate, kind, payload, options);
}
Result<std::vector<Receipt>> Store::append_batch(std::span<const BatchItem> items,
                                                 const BatchOptions& options) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "append_batch"));
  return impl_->append_batch(items, options);
}
Status Store::sync() {
  KEEL_TRY(check_not_in_gate(impl_.get(), "sync"));
  return impl_->sync();
}
Result<Event> Store::get(const EventId& id) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "get"));
  return impl_->get(id);
}
Result<Event> Store::read(uint64_t sequence) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "read"));
  return impl_->read(sequence);
}
Status Store::scan(uint64_t from, uint64_t to, const EventVisitor& visit) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "scan"));
  return impl_->scan(from, to, visit);
}
Status Store::entity_stream(std::string_view entity, uint32_t lane, uint64_t clock_from,
                            uint64_t clock_to, const EventVisitor& visit) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "entity_stream"));
  return impl_->entity_stream(entity, lane, clock_from, clock_to, visit);
}
Result<std::vector<Event>> Store::scan_events(uint64_t from, uint64_t to, size_t limit) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "scan_events"));
  if (limit == 0) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "limit")
        .with("reason", "must be at least 1");
  }
  std::vector<Event> events;
  KEEL_TRY(impl_->scan(from, to, [&](const EventView& view) {
    events.push_back(Event::from_view(view));
    return events.size() < limit;
  }));
  return events;
}
Result<std::vector<Event>> Store::entity_events(std::string_view entity, uint32_t lane,
                                                uint64_t clock_from, uint64_t clock_to) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "entity_events"));
  std::vector<Event> events;
  KEEL_TRY(impl_->entity_stream(entity, lane, clock_from, clock_to, [&](const EventView& view) {
    events.push_back(Event::from_view(view));
    return true;
  }));
  return events;
}
Result<VerifyReport> Store::verify(const ProgressCallback& progress) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "verify"));
  return impl_->verify(progress);
}
Result<VerifyReport> Store::verify_entity(std::string_view entity, std::optional<uint32_t> lane) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "verify_entity"));
  return impl_->verify_entity(entity, lane);
}
Result<QueryPage> Store::query(const Query& query) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "query"));
  return impl_->query(query);
}
Result<Ancestry> Store::ancestors(const EventId& id, size_t limit) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "ancestors"));
  return impl_->ancestors(id, limit);
}
Result<Effects> Store::descendants(const EventId& id, size_t limit) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "descendants"));
  return impl_->descendants(id, limit);
}
Result<CausalGraph> Store::correlation_graph(const EventId& correlation_id, size_t limit) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "correlation_graph"));
  return impl_->correlation_graph(correlation_id, limit);
}
Result<CausalRelation> Store::happened_before(const EventId& a, const EventId& b) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "happened_before"));
  return impl_->happened_before(a, b);
}
Status Store::refresh() {
  KEEL_TRY(check_not_in_gate(impl_.get(), "refresh"));
  return impl_->refresh();
}
Status Store::close() {
  KEEL_TRY(check_not_in_gate(impl_.get(), "close"));
  return impl_->close();
}
// stats() and frontier() cannot report an error: from a gate they return empty values, and the
// gate's append fails with GateReentrant.
StoreStats Store::stats() const {
  if (!check_not_in_gate(impl_.get(), "stats").ok()) return StoreStats{};
  return impl_->stats();
}
Frontier Store::frontier() const {
  if (!check_not_in_gate(impl_.get(), "frontier").ok()) return Frontier{};
  return impl_->frontier();
}
Status Store::wait_for(Watermark kind, uint64_t sequence, std::chrono::milliseconds timeout) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "wait_for"));
  return impl_->wait_for(kind, std::nullopt, sequence, timeout);
}
Status Store::wait_for_lane(Watermark kind, uint32_t lane, uint64_t sequence,
                            std::chrono::milliseconds timeout) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "wait_for_lane"));
  return impl_->wait_for(kind, lane, sequence, timeout);
}
Status Store::register_consumer(std::string_view name, uint64_t position) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "register_consumer"));
  return impl_->register_consumer(name, position);
}
Status Store::consumer_applied(std::string_view name, uint64_t sequence) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "consumer_applied"));
  return impl_->consumer_applied(name, sequence);
}
Status Store::unregister_consumer(std::string_view name) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "unregister_consumer"));
  return impl_->unregister_consumer(name);
}
Result<std::string> Store::reset_applied(uint64_t sequence, std::string_view reason) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "reset_applied"));
  return impl_->reset_applied(sequence, reason);
}
uint64_t Store::epoch() const { return impl_->epoch(); }
const std::string& Store::directory() const { return impl_->directory(); }

Status Store::register_gate(Gate gate) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "register_gate"));
  return impl_->register_gate(std::move(gate));
}
Status Store::unregister_gate(std::string_view name) {
  KEEL_TRY(check_not_in_gate(impl_.get(), "unregister_gate"));
  return impl_->unregister_gate(name);
}
Result<std::unique_ptr<Fence>> Store::begin_fence() {
  KEEL_TRY(check_not_in_gate(impl_.get(), "begin_fence"));
  KEEL_ASSIGN_OR_RETURN(uint64_t id, impl_->begin_fence());
  return std::unique_ptr<Fence>(new Fence(impl_.get(), id));
}

platform::FileSystem& StoreInternals::file_system(Store& store) {
  return store.impl_->file_system();
}
bool StoreInternals::read_only(const Store& store) { return store.impl_->read_only(); }
Result<std::vector<SegmentSpan>> StoreInternals::segment_spans(Store& store) {
  KEEL_TRY(check_not_in_gate(store.impl_.get(), "retention"));
  return store.impl_->segment_spans();
}
Result<std::optional<StoreCut>> StoreInternals::cut_for_export(Store& store) {
  KEEL_TRY(check_not_in_gate(store.impl_.get(), "export"));
  return store.impl_->cut_for_export();
}
Result<uint64_t> StoreInternals::retain_from(Store& store, uint64_t floor_sequence) {
  KEEL_TRY(check_not_in_gate(store.impl_.get(), "retention"));
  return store.impl_->retain_from(floor_sequence);
}
void StoreInternals::wait_for_restored_image_sync(Store& store) {
  store.impl_->wait_for_restored_image_sync();
}
uint64_t StoreInternals::now_wall_ms(Store& store) { return store.impl_->now_wall_ms(); }
Status StoreInternals::count_consumer(Store& store, std::string_view name, uint64_t position,
                                      std::string_view reason) {
  KEEL_TRY(check_not_in_gate(store.impl_.get(), "register_consumer"));
  return store.impl_->count_consumer(name, position, reason);
}
Result<QueryPage> StoreInternals::query_views(Store& store, const Query& query,
                                              const std::function<void(const EventView&)>& visit) {
  KEEL_TRY(check_not_in_gate(store.impl_.get(), "query"));
  return store.impl_->query_views(query, visit);
}
Result<size_t> StoreInternals::read_stored(Store& store, uint64_t from, size_t max_events,
                                           std::vector<ReplicationMessage>& out) {
  return store.impl_->read_stored(from, max_events, out);
}
Status StoreInternals::append_stored(Store& store, std::optional<uint64_t> fence_id,
                                     std::span<const StoredRecord> records) {
  return store.impl_->append_stored(fence_id, records);
}
Status StoreInternals::append_hidden(Store& store, uint64_t first_sequence, uint64_t count) {
  return store.impl_->append_hidden(first_sequence, count);
}
uint64_t StoreInternals::add_subscription(Store& store, uint64_t position) {
  return store.impl_->add_subscription(position);
}
void StoreInternals::subscription_delivered(Store& store, uint64_t id, uint64_t position) {
  store.impl_->subscription_delivered(id, position);
}
void StoreInternals::remove_subscription(Store& store, uint64_t id) {
  store.impl_->remove_subscription(id);
}

}  // namespace keel
