// Store: open, load (recovery -> index), close, stats, and the public facade.
#include <algorithm>
#include <chrono>
#include <thread>

#include "format/record.h"
#include "store/store_impl.h"

namespace keel {

Store::Impl::Impl(const std::string& directory, const StoreOptions& options)
    : directory_(directory),
      options_(options),
      fs_(options.file_system ? *options.file_system : platform::posix_file_system()),
      clock_(options.clock ? *options.clock : platform::system_clock()),
      reader_(fs_, directory),
      hlc_(clock_, static_cast<uint64_t>(options.hlc_jump_bound.count())),
      id_random_(options.id_seed != 0
                     ? options.id_seed
                     : clock_.monotonic_ns() ^ reinterpret_cast<uintptr_t>(this) ^
                           std::random_device{}()) {}

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
  if (options.append_timeout.count() <= 0) return invalid("append_timeout", "must be positive");
  std::unique_ptr<Impl> impl(new Impl(directory, options));
  log::LogOptions log_options;
  log_options.create_if_missing = options.create_if_missing;
  log_options.read_only = options.read_only;
  log_options.writer.segment_size = options.segment_size;
  log_options.writer.skip_sync_for_test = options.unsafe_skip_fdatasync_for_test;
  KEEL_TRY(impl->load(log_options));
  return impl;
}

// A read-only open beside a live writer reads the last segment while it grows, and a read that
// straddles a write can look like damage (zeros before a synced frame). Such a view is retried
// before it is believed; a writable open is never retried (nothing writes beside it).
Status Store::Impl::load(const log::LogOptions& log_options) {
  constexpr int kReadOnlyAttempts = 5;
  for (int attempt = 1;; ++attempt) {
    Status loaded = load_once(log_options);
    if (loaded.ok() || !log_options.read_only || attempt == kReadOnlyAttempts ||
        loaded.error().error_class() != ErrorClass::FailClosed) {
      return loaded;
    }
    index_ = index::EventIndex();
    reader_.reset();
    std::this_thread::sleep_for(std::chrono::milliseconds(attempt));
  }
}

// Builds the index from the records recovery keeps. A fence's events wait until its end record:
// committed ones are added, cancelled ones (or a fence still open at the tail) stay hidden.
Status Store::Impl::load_once(const log::LogOptions& log_options) {
  struct Pending {
    uint64_t sequence;
    index::EventLocation location;
    EventId id;
    std::string entity;
    uint32_t lane;
    uint64_t clock;
    Hash128 hash;
  };
  std::vector<Pending> fenced;
  std::optional<StoreError> failure;
  auto add = [&](const Pending& p, bool hidden) {
    if (failure) return;
    if (hidden) {
      index_.add_hidden(p.sequence);
      return;
    }
    if (const char* problem = index_.add(p.sequence, p.location, p.id,
                                         index_.stream_for(p.entity, p.lane), p.clock, p.hash)) {
      failure = StoreError(ErrorCode::Corruption)
                    .with("path", directory_)
                    .with("offset", p.sequence)
                    .with("reason", std::string(problem) + " (offset is the sequence)")
                    .with("rule", "index build");
    }
  };
  // Read-only opens beside a live writer see only its durable prefix: the frames of the last
  // segment that a later frame's durable_through claims were synced.
  uint64_t tail_segment = 0;
  uint64_t tail_durable_through = 0;
  std::vector<std::pair<uint64_t, uint64_t>> tail_frames;  // (frame end, sequence after it)
  auto visit = [&](const log::RecordPosition& position, const format::DecodedFrame& frame) {
    using format::RecordType;
    if (log_options.read_only) {
      if (position.segment_id != tail_segment) {
        tail_segment = position.segment_id;
        tail_durable_through = 0;
        tail_frames.clear();
      }
      const char* ignored;
      uint64_t events = format::is_system_record(frame.header.type)
                            ? 0
                            : format::record_event_count(frame, &ignored);
      tail_durable_through = std::max(tail_durable_through, frame.header.durable_through);
      tail_frames.emplace_back(position.offset + frame.size, frame.header.sequence + events);
    }
    if (frame.header.type == RecordType::FenceCommit || frame.header.type == RecordType::FenceCancel) {
      for (const Pending& p : fenced) add(p, frame.header.type == RecordType::FenceCancel);
      fenced.clear();
      return;
    }
    if (format::is_system_record(frame.header.type)) return;
    (void)format::decode_record_events(frame, [&](uint32_t i, const format::EventBody& e) {
      hlc_.observe(Hlc{e.hlc_wall_ms, e.hlc_logical});
      Pending p{frame.header.sequence + i,
                index::EventLocation{static_cast<uint32_t>(position.segment_id),
                                     static_cast<uint32_t>(position.offset), i},
                e.event_id, std::string(e.entity), e.lane, e.entity_clock, e.chained_hash};
      if (e.fence_id) {
        fenced.push_back(std::move(p));
      } else {
        add(p, false);
      }
    });
  };
  KEEL_ASSIGN_OR_RETURN(log_, log::Log::open(fs_, directory_, log_options, visit));
  for (const Pending& p : fenced) add(p, true);  // a fence open at the tail stays hidden
  if (failure) return *failure;
  const log::RecoveredLog& recovered = log_->recovered();
  sequence_visible_read_only_ = recovered.next_sequence - 1;
  if (log_options.read_only && !recovered.segments.empty() && !recovered.segments.back().sealed) {
    KEEL_ASSIGN_OR_RETURN(bool writer_live, writer_is_live());
    if (writer_live) {
      // Every segment before the last is sealed, so synced whole: the prefix reaches at least the
      // last segment's first sequence. Its own frames (if the visitor saw any: it may hold none
      // yet, and then tail_frames are an earlier segment's) add what their claims vouch for.
      const log::RecoveredSegment& last = recovered.segments.back();
      uint64_t durable_next = last.header.first_sequence;
      if (tail_segment == last.header.segment_id) {
        for (const auto& [end, next] : tail_frames) {
          if (end <= tail_durable_through) durable_next = next;
        }
      }
      sequence_visible_read_only_ = durable_next - 1;
    }
  }
  return ok_status();
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
    return StoreError(ErrorCode::ReadOnlyStore).with("path", directory_).with("operation", operation);
  }
  return ok_status();
}

Status Store::Impl::refresh() {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  if (log_->writer() != nullptr) return ok_status();  // a writable store is always current
  // Re-run read-only recovery into a fresh index: simple and exactly as strict as open.
  index_ = index::EventIndex();
  reader_.reset();
  log::LogOptions log_options;
  log_options.read_only = true;
  return load(log_options);
}

Status Store::Impl::close() {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  closed_ = true;
  reader_.reset();
  return log_->close();
}

StoreStats Store::Impl::stats() const {
  std::lock_guard lock(mutex_);
  StoreStats s;
  if (!log_) return s;
  const log::RecoveredLog& recovered = log_->recovered();
  s.epoch = log_->epoch();
  s.events = index_.event_count();
  s.entities = index_.stream_count();
  s.sequence_visible = sequence_visible();
  if (const log::SegmentWriter* writer = log_->writer()) {
    s.segments = writer->active_segment_id();
    s.sequence_next = writer->next_sequence();
    s.sequence_written = writer->sequence_written();
    s.sequence_durable = writer->sequence_durable();
  } else {
    s.segments = recovered.segments.size();
    s.sequence_next = recovered.next_sequence;
    s.sequence_written = s.sequence_durable = recovered.next_sequence - 1;
  }
  for (const auto& segment : recovered.segments) s.bytes_on_disk += segment.data_end;
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
  return impl_->append(coordinate, kind, payload, options);
}
Result<std::vector<Receipt>> Store::append_batch(std::span<const BatchItem> items,
                                                 const BatchOptions& options) {
  return impl_->append_batch(items, options);
}
Status Store::sync() { return impl_->sync(); }
Result<Event> Store::get(const EventId& id) { return impl_->get(id); }
Result<Event> Store::read(uint64_t sequence) { return impl_->read(sequence); }
Status Store::scan(uint64_t from, uint64_t to, const EventVisitor& visit) {
  return impl_->scan(from, to, visit);
}
Status Store::entity_stream(std::string_view entity, uint32_t lane, uint64_t clock_from,
                            uint64_t clock_to, const EventVisitor& visit) {
  return impl_->entity_stream(entity, lane, clock_from, clock_to, visit);
}
Result<std::vector<Event>> Store::scan_events(uint64_t from, uint64_t to, size_t limit) {
  std::vector<Event> events;
  KEEL_TRY(impl_->scan(from, to, [&](const EventView& view) {
    events.push_back(Event::from_view(view));
    return events.size() < limit;
  }));
  return events;
}
Result<std::vector<Event>> Store::entity_events(std::string_view entity, uint32_t lane,
                                                uint64_t clock_from, uint64_t clock_to) {
  std::vector<Event> events;
  KEEL_TRY(impl_->entity_stream(entity, lane, clock_from, clock_to, [&](const EventView& view) {
    events.push_back(Event::from_view(view));
    return true;
  }));
  return events;
}
Result<VerifyReport> Store::verify(const ProgressCallback& progress) {
  return impl_->verify(progress);
}
Status Store::refresh() { return impl_->refresh(); }
Status Store::close() { return impl_->close(); }
StoreStats Store::stats() const { return impl_->stats(); }
uint64_t Store::epoch() const { return impl_->epoch(); }
const std::string& Store::directory() const { return impl_->directory(); }

}  // namespace keel
