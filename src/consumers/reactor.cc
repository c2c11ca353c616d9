// Reactors (include/keel/reactor.h): react, append the reactions with derived keys, commit.
#include "keel/reactor.h"

#include "consumers/invalid_argument.h"

namespace keel {

Reactor::Reactor(Store& store, std::unique_ptr<DurableConsumer> consumer, React react, bool keys)
    : store_(store), consumer_(std::move(consumer)), react_(std::move(react)), keys_(keys) {}

Result<std::unique_ptr<Reactor>> Reactor::open(Store& store, std::string_view name, Query filter,
                                               React react, const ReactorOptions& options) {
  if (!react) {
    return consumers::invalid_argument("react", "is empty");
  }
  KEEL_ASSIGN_OR_RETURN(auto consumer,
                        DurableConsumer::open(store, name, std::move(filter), options.consumer));
  return std::unique_ptr<Reactor>(new Reactor(store, std::move(consumer), std::move(react),
                                              !options.unsafe_skip_idempotency_keys_for_test));
}

std::string Reactor::idempotency_key(std::string_view name, const EventId& source, size_t index) {
  return "reactor/" + std::string(name) + "/" + source.to_hex() + "/" + std::to_string(index);
}

Result<size_t> Reactor::run_once(std::chrono::milliseconds timeout) {
  KEEL_ASSIGN_OR_RETURN(std::vector<Event> sources, consumer_->next(timeout));
  uint64_t applied = consumer_->cursor();
  Status failed = ok_status();
  size_t handled = 0;
  for (const Event& source : sources) {
    auto reactions = react_(source);
    if (!reactions.ok()) {
      failed = std::move(reactions).error();
      break;
    }
    std::vector<BatchItem> items;
    items.reserve(reactions->size());
    for (size_t i = 0; i < reactions->size(); ++i) {
      Reaction& r = (*reactions)[i];
      if (r.options.causation_id || r.options.cause_item || r.options.idempotency_key) {
        failed = consumers::invalid_argument(
            "reaction options", "causation_id, cause_item and idempotency_key are the reactor's");
        break;
      }
      BatchItem item{std::move(r.coordinate), r.kind, std::move(r.payload), std::move(r.options)};
      item.options.causation_id = source.event_id;
      if (keys_)
        item.options.idempotency_key = idempotency_key(consumer_->name(), source.event_id, i);
      items.push_back(std::move(item));
    }
    if (!failed.ok()) break;
    if (!items.empty()) {
      auto appended = store_.append_batch(items);
      if (!appended.ok()) {
        failed = std::move(appended).error();
        break;
      }
    }
    applied = source.sequence;
    ++handled;
  }
  // Commit what was reacted to: all of the batch (and the non-matching events the position moved
  // past) when every source succeeded, else up to the last source that did.
  uint64_t cursor = failed.ok() ? consumer_->position() : applied;
  Status committed = cursor > consumer_->cursor() ? consumer_->commit(cursor) : ok_status();
  if (!failed.ok() || !committed.ok()) {
    consumer_->rewind();  // what is not committed comes again (its reactions answer by key)
    return failed.ok() ? committed.error() : failed.error();
  }
  return handled;
}

}  // namespace keel
