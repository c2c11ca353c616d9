// verify(): re-reads every frame of every segment and checks checksums, chained hashes and every
// (entity, lane) chain. Hidden events (cancelled fences) are skipped, as docs/ARCHITECTURE.md §7
// says.
#include "absl/container/flat_hash_map.h"
#include "format/checksum.h"
#include "format/record.h"
#include "store/store_impl.h"

namespace keel {
namespace {

struct ChainHead {
  uint64_t clock = 0;
  Hash128 hash;
};

std::string describe(const format::EventBody& b) {
  return std::string(b.entity) + " lane " + std::to_string(b.lane) + " clock " +
         std::to_string(b.entity_clock);
}

// What is wrong with `b` given its chain's head, or an empty string. `after_floor`: its previous
// event is below the retention floor (removed), so the chain is checked from it on.
std::string check_event(const format::EventBody& b, const ChainHead* head, bool after_floor) {
  if (format::hash128(b.hashed_bytes) != b.chained_hash) {
    return "chained hash of " + describe(b) + " does not match its bytes (stored " +
           b.chained_hash.to_hex() + ", computed " + format::hash128(b.hashed_bytes).to_hex() + ")";
  }
  if (!head && after_floor) return {};
  uint64_t expected_clock = head ? head->clock + 1 : 1;
  if (b.entity_clock != expected_clock) {
    return "clock of " + describe(b) + " does not follow the previous event (expected " +
           std::to_string(expected_clock) + ")";
  }
  if (!head && b.prev_hash) return "first event of " + describe(b) + " names a previous hash";
  if (head && (!b.prev_hash || *b.prev_hash != head->hash)) {
    return "prev hash of " + describe(b) + " is not the chained hash " + head->hash.to_hex() +
           " of the previous event";
  }
  return {};
}

// What is wrong with the cause `b` names, or an empty string: a cause that is a later event (only a
// damaged store has one: a causation cycle or a forward link), or an index that disagrees with
// the log about it (an index image older than an edit of the log).
std::string check_cause(const index::EventIndex& index, uint64_t sequence,
                        const format::EventBody& b) {
  uint64_t indexed = index.cause_of(sequence);
  std::optional<EventId> external = index.external_cause_of(sequence);
  if (!b.causation_id) {
    return indexed == 0 && !external ? std::string()
                                     : "the index names a cause the event does not have";
  }
  std::optional<uint64_t> found = index.find(*b.causation_id);
  if (found && *found >= sequence) {
    return "the cause " + b.causation_id->to_hex() + " is the later sequence " +
           std::to_string(*found) + " (a causation cycle or forward link)";
  }
  bool agrees = found ? indexed == *found : (indexed == 0 && external == b.causation_id);
  if (!agrees) return "the index disagrees with the log about the cause " + b.causation_id->to_hex();
  return {};
}

}  // namespace

Result<VerifyReport> Store::Impl::verify_entity(std::string_view entity,
                                                std::optional<uint32_t> lane) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_TRY(validate_coordinate(entity, ""));
  if (lane && *lane >= options_.lanes_max) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "lane")
        .with("reason", "is not below lanes_max (" + std::to_string(options_.lanes_max) + ")");
  }
  std::vector<const index::EntityStream*> streams;
  if (lane) {
    if (const index::EntityStream* stream = index_.stream(entity, *lane)) streams.push_back(stream);
  } else {
    streams = index_.streams_of(entity);
  }
  VerifyReport report;
  const uint64_t visible = sequence_visible();
  for (const index::EntityStream* stream : streams) {
    std::optional<ChainHead> head;
    bool after_floor = false;
    for (uint64_t sequence : stream->sequences) {
      if (sequence > visible) break;
      if (sequence < first_retained_sequence_) {
        after_floor = true;  // removed below the retention floor
        continue;
      }
      std::string broken;
      KEEL_TRY(read_body_locked(sequence, [&](const format::EventBody& b, uint64_t) {
        broken = check_event(b, head ? &*head : nullptr, after_floor);
        if (broken.empty()) broken = check_cause(index_, sequence, b);
        head = ChainHead{b.entity_clock, b.chained_hash};
      }));
      ++report.events_checked;
      ++report.frames_checked;
      if (!broken.empty()) {
        report.ok = false;
        report.first_bad_sequence = sequence;
        report.problem = "sequence " + std::to_string(sequence) + ": " + broken;
        return report;
      }
    }
  }
  return report;
}

// What the frames alone cannot show: what recovery cut from the log's end at this open (or, read
// only, would cut), and the data losses accepted in the store's history.
void Store::Impl::note_recovery(VerifyReport& report) const {
  const log::RecoveredLog& recovered = log_->recovered();
  for (const log::RecoveryAction& action : recovered.actions) {
    if (action.bytes_dropped == 0 && action.frames_dropped == 0) continue;
    report.recovery_dropped.push_back(
        std::string(log::recovery_row(action.rule).name) + ": " +
        std::to_string(action.bytes_dropped) + " bytes from " + action.path + " offset " +
        std::to_string(action.offset) + ", " + std::to_string(action.frames_dropped) +
        " valid frames among them" + (action.applied ? "" : " (not cut: read-only open)"));
  }
  if (recovered.data_loss) {
    report.recovery_dropped.push_back(
        "durable data missing: " + recovered.data_loss->reference.name + " names sequence " +
        std::to_string(recovered.data_loss->reference.next_sequence - 1) +
        ", the log ends at " + std::to_string(recovered.data_loss->recovered_next_sequence - 1) +
        " (accepted at this open)");
  }
  if (log_->log_end()) {
    for (const log::AcceptedLoss& loss : log_->log_end()->losses) {
      report.data_losses.push_back(log::describe(loss));
    }
  }
}

Result<VerifyReport> Store::Impl::verify(const ProgressCallback& progress) {
  writer::Lock lock(mutex_);
  KEEL_TRY(check_open());
  ActiveCall active(*this);
  log::SegmentWriter* writer = log_->writer();
  if (writer != nullptr) {
    // Everything accepted is written first (a group of its own), so it can be read back.
    uint64_t accepted = marks_.sequence(Watermark::Accepted);
    if (accepted > marks_.sequence(Watermark::Written)) {
      KEEL_TRY(pipeline_->reach(lock, Durability::Written, accepted,
                                wait_timeout(std::chrono::milliseconds(0))));
      if (!lock.owns_lock()) lock.lock();
    }
  }
  // Read no further than what was written: a later group may be in flight meanwhile.
  uint64_t last = writer ? marks_.sequence(Watermark::Written)
                         : log_->recovered().next_sequence - 1;
  uint64_t written_end = writer ? writer->written_offset() : UINT64_MAX;
  uint64_t last_segment = writer ? writer->active_segment_id()
                                 : log_->recovered().segments.empty()
                                       ? 0
                                       : log_->recovered().segments.back().header.segment_id;
  VerifyReport report;
  note_recovery(report);
  if (last == 0) return report;
  absl::flat_hash_map<std::string, ChainHead> heads;
  std::string key;
  auto check_frame = [&](const format::DecodedFrame& frame) {
    const char* problem = format::decode_record_events(
        frame, [&](uint32_t i, const format::EventBody& b) {
          uint64_t sequence = frame.header.sequence + i;
          if (!report.ok || sequence > last || !index_.visible_in_index(sequence)) return;
          key.assign(b.entity).push_back('\0');
          key += std::to_string(b.lane);
          auto it = heads.find(key);
          bool after_floor = false;
          if (it == heads.end() && b.entity_clock > 1 && first_retained_sequence_ > 1) {
            const index::EntityStream* stream = index_.stream(b.entity, b.lane);
            after_floor = stream != nullptr && stream->clock() >= b.entity_clock &&
                          stream->sequences[b.entity_clock - 2] < first_retained_sequence_;
          }
          std::string broken =
              check_event(b, it == heads.end() ? nullptr : &it->second, after_floor);
          if (broken.empty()) broken = check_cause(index_, sequence, b);
          ++report.events_checked;
          if (!broken.empty()) {
            report.ok = false;
            report.first_bad_sequence = sequence;
            report.problem = "sequence " + std::to_string(sequence) + ": " + broken;
            return;
          }
          heads[key] = ChainHead{b.entity_clock, b.chained_hash};
        });
    if (problem != nullptr && report.ok) {
      report.ok = false;
      report.first_bad_sequence = frame.header.sequence;
      report.problem = "record at sequence " + std::to_string(frame.header.sequence) + ": " + problem;
    }
  };
  uint64_t last_good = first_retained_sequence_ - 1;  // the last sequence read back whole
  for (uint64_t segment_id = first_retained_segment_; segment_id <= last_segment && report.ok;
       ++segment_id) {
    bool done = false;
    Status scanned = reader_.scan_frames(
        segment_id, format::kSegmentHeaderSize,
        segment_id == last_segment ? written_end : UINT64_MAX,
        [&](uint64_t, const format::DecodedFrame& frame) {
          ++report.frames_checked;
          if (frame.header.type == format::RecordType::Seal) return false;
          if (format::is_system_record(frame.header.type)) return true;
          check_frame(frame);
          const char* ignored;
          uint64_t end = frame.header.sequence + format::record_event_count(frame, &ignored);
          if (report.ok) last_good = end - 1;
          if (progress) progress(end - 1, last);
          done = end > last;
          return report.ok && !done;
        });
    if (!scanned.ok()) {
      if (scanned.error().error_class() != ErrorClass::FailClosed) return std::move(scanned).error();
      // A frame that does not read back: what follows the last good sequence is unverified.
      report.ok = false;
      report.first_bad_sequence = last_good + 1;
      report.problem = "the frame after sequence " + std::to_string(last_good) + " (the last good " +
                       "one) does not read back: " + scanned.error().message();
    }
    if (done) break;
  }
  return report;
}

}  // namespace keel
