// Projections (include/keel/projection.h): a durable consumer folding into a state that is kept
// as the snapshot of the same name.
#include "keel/projection.h"

#include <utility>

#include "consumers/invalid_argument.h"

namespace keel {

namespace {

using consumers::invalid_argument;

// How long save() waits for the events it covers to be durable (under the default visibility
// policy they already are).
constexpr std::chrono::milliseconds kDurableWait{5'000};

// Errors of DurableConsumer::open that the snapshot settles: the consumer's cursor is only a
// copy of the projection's position, and the snapshot is where that position is kept.
bool snapshot_settles(const StoreError& error) {
  return error.is(ErrorCode::CursorAheadOfLog) || error.is(ErrorCode::CorruptSidecar) ||
         error.is(ErrorCode::CursorExpired);
}

}  // namespace

Projection::Projection(Store& store, std::string name, Fold fold, const ProjectionOptions& options)
    : store_(store),
      name_(std::move(name)),
      fold_(std::move(fold)),
      options_(options),
      saved_at_(std::chrono::steady_clock::now()) {}

Result<std::unique_ptr<Projection>> Projection::open(Store& store, std::string_view name,
                                                     Query filter, Fold fold,
                                                     const ProjectionOptions& options) {
  if (!fold) return invalid_argument("fold", "is empty");
  if (options.save_every.count() < 0) {
    return invalid_argument("save_every", "must not be negative");
  }
  KEEL_ASSIGN_OR_RETURN(std::optional<Snapshot> snapshot, load_snapshot(store, name));
  std::unique_ptr<Projection> projection(
      new Projection(store, std::string(name), std::move(fold), options));
  if (snapshot) {
    projection->state_ = std::move(snapshot->bytes);
    projection->saved_ = snapshot->info.sequence;
  }
  ConsumerOptions consumer_options;
  consumer_options.subscription = options.subscription;
  consumer_options.subscription.with_payload = true;
  auto consumer = DurableConsumer::open(store, name, filter, consumer_options);
  // The consumer resumes where the snapshot is: a crash between a save and the commit after it
  // leaves the consumer behind (it moves up); one ahead of the snapshot moves back, since the
  // state of the events after the snapshot was not kept.
  const bool agrees = consumer.ok() && (*consumer)->cursor() == projection->saved_;
  if (!agrees) {
    if (!consumer.ok() && !snapshot_settles(consumer.error())) return std::move(consumer).error();
    consumer = Result<std::unique_ptr<DurableConsumer>>(nullptr);  // releases it, to reset it
    KEEL_TRY(DurableConsumer::reset(store, name, projection->saved_, ""));
    consumer = DurableConsumer::open(store, name, filter, consumer_options);
    if (!consumer.ok()) return std::move(consumer).error();
  }
  projection->consumer_ = std::move(*consumer);
  return projection;
}

Result<size_t> Projection::run(std::chrono::milliseconds timeout) {
  if (failed_) return *failed_;
  size_t folded = 0;
  KEEL_TRY(consumer_->next(timeout, [&](const EventView& event) {
    if (failed_) return;
    Status applied = fold_(state_, event);
    if (!applied.ok()) {
      failed_ = std::move(applied).error();
      return;
    }
    ++folded;
  }));
  if (failed_) return *failed_;
  folded_since_save_ += folded;
  const bool by_count =
      options_.save_every_events > 0 && folded_since_save_ >= options_.save_every_events;
  const bool by_time = options_.save_every.count() > 0 &&
                       std::chrono::steady_clock::now() - saved_at_ >= options_.save_every;
  if (by_count || by_time) KEEL_TRY(save());
  return folded;
}

Status Projection::save() {
  if (failed_) return *failed_;
  const uint64_t at = consumer_->position();
  saved_at_ = std::chrono::steady_clock::now();
  if (at == saved_) return ok_status();
  KEEL_TRY(store_.wait_for(Watermark::Durable, at, kDurableWait));
  SaveOptions save_options;
  save_options.based_on = saved_;
  KEEL_ASSIGN_OR_RETURN(SaveResult saved, save_snapshot(store_, name_, state_, at, save_options));
  // Based on the published sequence and above it: published, or StaleSequence before this.
  if (saved.outcome != SaveOutcome::Published) {
    return StoreError(ErrorCode::InvariantViolation)
        .with("invariant", "a save above the snapshot it is based on is published (got " +
                               std::string(save_outcome_name(saved.outcome)) + ")");
  }
  saved_ = at;
  folded_since_save_ = 0;
  return consumer_->commit(at);
}

}  // namespace keel
