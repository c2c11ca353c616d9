// Durable consumers (include/keel/consumer.h): a Subscription whose cursor and state live in the
// sidecar CONSUMER.<name> (log/consumer_file.h, segments/FORMAT.md 8.9), and which the store counts
// in `applied` (restored at every writable open, Store::Impl::restore_durable_consumers).
#include <mutex>
#include <set>
#include <utility>

#include "consumers/filter_text.h"
#include "consumers/invalid_argument.h"
#include "keel/consumer.h"
#include "log/consumer_file.h"
#include "store/store_internals.h"

namespace keel {

namespace {

using consumers::invalid_argument;

// The consumers open in this process: one handle per (store, name), so two handles cannot commit
// over each other.
class OpenConsumers {
 public:
  bool claim(const Store* store, const std::string& name) {
    std::lock_guard lock(mutex_);
    return open_.emplace(store, name).second;
  }
  bool is_open(const Store* store, const std::string& name) {
    std::lock_guard lock(mutex_);
    return open_.contains({store, name});
  }
  void release(const Store* store, const std::string& name) {
    std::lock_guard lock(mutex_);
    open_.erase({store, name});
  }

 private:
  std::mutex mutex_;
  std::set<std::pair<const Store*, std::string>> open_;
};

OpenConsumers& open_consumers() {
  static OpenConsumers* consumers = new OpenConsumers();  // never destroyed (no exit-order trap)
  return *consumers;
}

Status check_writable(Store& store, std::string_view name, const char* operation) {
  if (const char* problem = log::check_consumer_name(name))
    return invalid_argument("name", problem);
  if (StoreInternals::read_only(store)) {
    return StoreError(ErrorCode::ReadOnlyStore)
        .with("path", store.directory())
        .with("operation", operation);
  }
  return ok_status();
}

// Counts consumer `name` at `cursor` in applied. A cursor below applied lowers it: that is the
// explicit, logged reset (Store::reset_applied), never a silent one.
Status count_in_applied(Store& store, const std::string& name, uint64_t cursor) {
  return StoreInternals::count_consumer(
      store, name, cursor, "durable consumer " + name + " set to cursor " + std::to_string(cursor));
}

uint64_t visible_of(Store& store) { return store.frontier()[Watermark::Visible].global_sequence; }

}  // namespace

DurableConsumer::DurableConsumer(Store& store, std::string name, const ConsumerOptions& options)
    : store_(store), name_(std::move(name)), options_(options) {}

DurableConsumer::~DurableConsumer() { open_consumers().release(&store_, name_); }

Result<std::unique_ptr<DurableConsumer>> DurableConsumer::open(Store& store, std::string_view name,
                                                               Query filter,
                                                               const ConsumerOptions& options) {
  KEEL_TRY(check_writable(store, name, "open consumer"));
  if (options.commit_timeout.count() < 0)
    return invalid_argument("commit_timeout", "must not be negative");
  std::string owned(name);
  if (!open_consumers().claim(&store, owned)) {
    return invalid_argument("name", "consumer " + owned + " is already open in this process");
  }
  // From here the handle owns the claim: its destructor releases it on every error path.
  std::unique_ptr<DurableConsumer> consumer(new DurableConsumer(store, owned, options));
  consumer->filter_ = consumers::filter_text(filter);
  platform::FileSystem& fs = StoreInternals::file_system(store);
  KEEL_ASSIGN_OR_RETURN(auto file, log::read_consumer_cursor(fs, store.directory(), owned));
  if (file) {
    const uint64_t visible = visible_of(store);
    if (file->cursor > visible) {
      return StoreError(ErrorCode::CursorAheadOfLog)
          .with("consumer", "consumer " + owned)
          .with("cursor", file->cursor)
          .with("recovered", visible);
    }
    // Its cursor says which events matching its filter were applied: under another filter the
    // events that match only the new one would be skipped, never applied.
    if (file->filter && *file->filter != consumer->filter_) {
      return invalid_argument("filter",
                              "consumer " + owned + " committed its cursor under the filter " +
                                  *file->filter + ", this open passes " + consumer->filter_ +
                                  " (to change it, rebuild its state and reset() it)");
    }
    consumer->cursor_ = file->cursor;
    consumer->state_ = std::move(file->state);
  }
  KEEL_ASSIGN_OR_RETURN(
      consumer->subscription_,
      Subscription::open(store, std::move(filter), consumer->cursor_, options.subscription));
  if (!file) {  // created only once it can start (not expired, the filter valid)
    KEEL_TRY(log::write_consumer_cursor(
        fs, store.directory(),
        log::ConsumerCursor{owned, store.epoch(), 0, {}, consumer->filter_}));
    KEEL_TRY(count_in_applied(store, owned, 0));
  } else if (!file->filter) {  // its first open since reset() (or since a version 1 file)
    file->state = consumer->state_;
    file->filter = consumer->filter_;
    KEEL_TRY(log::write_consumer_cursor(fs, store.directory(), *file));
  }
  return consumer;
}

Result<std::vector<Event>> DurableConsumer::next(std::chrono::milliseconds timeout) {
  KEEL_ASSIGN_OR_RETURN(std::vector<Event> batch, subscription_->next(timeout));
  if (options_.unsafe_commit_at_receipt_for_test && position() > cursor_) {
    KEEL_TRY(commit_locked(position(), state_));  // the negative control: before any apply
  }
  return batch;
}

Result<size_t> DurableConsumer::next(std::chrono::milliseconds timeout, const Visit& visit) {
  KEEL_ASSIGN_OR_RETURN(size_t seen, subscription_->next(timeout, visit));
  if (options_.unsafe_commit_at_receipt_for_test && position() > cursor_) {
    KEEL_TRY(commit_locked(position(), state_));  // the negative control: before any apply
  }
  return seen;
}

Status DurableConsumer::commit(uint64_t cursor) { return commit_locked(cursor, state_); }

Status DurableConsumer::commit(uint64_t cursor, std::string_view state) {
  return commit_locked(cursor, state);
}

Status DurableConsumer::deliver_through(uint64_t sequence) {
  if (filter_ != consumers::filter_text(Query{})) {
    return invalid_argument("filter", "deliver_through is for a consumer of every event");
  }
  if (sequence < position() || sequence > visible_of(store_)) {
    return invalid_argument("sequence", std::to_string(sequence) + " is not between the position " +
                                            std::to_string(position()) +
                                            " and the visible sequence");
  }
  subscription_->seek(sequence);
  return ok_status();
}

Status DurableConsumer::commit_locked(uint64_t cursor, std::string_view state) {
  if (cursor < cursor_) {
    return invalid_argument("cursor", std::to_string(cursor) + " is below the committed cursor " +
                                          std::to_string(cursor_));
  }
  if (cursor > position()) {
    return invalid_argument("cursor", std::to_string(cursor) + " is beyond what was delivered (" +
                                          std::to_string(position()) + ")");
  }
  // Nothing persisted may name a sequence a crash could take back (docs/ARCHITECTURE.md §4).
  KEEL_TRY(store_.wait_for(Watermark::Durable, cursor, options_.commit_timeout));
  log::ConsumerCursor file{name_, store_.epoch(), cursor, std::string(state), filter_};
  KEEL_TRY(
      log::write_consumer_cursor(StoreInternals::file_system(store_), store_.directory(), file));
  cursor_ = cursor;
  state_ = std::move(file.state);
  if (!store_.consumer_applied(name_, cursor).ok()) {
    KEEL_TRY(count_in_applied(store_, name_, cursor));  // someone unregistered it by hand
  }
  return ok_status();
}

Status DurableConsumer::remove(Store& store, std::string_view name) {
  KEEL_TRY(check_writable(store, name, "remove consumer"));
  std::string owned(name);
  if (open_consumers().is_open(&store, owned)) {
    return invalid_argument("name", "consumer " + owned + " is open in this process");
  }
  KEEL_TRY(
      log::remove_consumer_cursor(StoreInternals::file_system(store), store.directory(), owned));
  (void)store.unregister_consumer(owned);  // NotFound when it was not counted
  return ok_status();
}

Status DurableConsumer::reset(Store& store, std::string_view name, uint64_t cursor,
                              std::string_view state) {
  KEEL_TRY(check_writable(store, name, "reset consumer"));
  std::string owned(name);
  if (open_consumers().is_open(&store, owned)) {
    return invalid_argument("name", "consumer " + owned + " is open in this process");
  }
  if (uint64_t visible = visible_of(store); cursor > visible) {
    return invalid_argument(
        "cursor", std::to_string(cursor) + " is above visible " + std::to_string(visible));
  }
  KEEL_TRY(store.wait_for(Watermark::Durable, cursor, std::chrono::milliseconds(5'000)));
  KEEL_TRY(log::write_consumer_cursor(
      StoreInternals::file_system(store), store.directory(),
      log::ConsumerCursor{owned, store.epoch(), cursor, std::string(state), std::nullopt}));
  return count_in_applied(store, owned, cursor);
}

Result<std::vector<ConsumerInfo>> list_consumers(Store& store) {
  platform::FileSystem& fs = StoreInternals::file_system(store);
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> names, log::list_consumers(fs, store.directory()));
  std::vector<ConsumerInfo> out;
  for (const std::string& name : names) {
    ConsumerInfo info;
    info.name = name;
    auto file = log::read_consumer_cursor(fs, store.directory(), name);
    if (!file.ok()) {
      if (file.error().error_class() != ErrorClass::FailClosed) return std::move(file).error();
      info.problem = file.error().to_string();
    } else if (*file) {
      info.cursor = (*file)->cursor;
      info.epoch = (*file)->epoch;
      info.state_bytes = (*file)->state.size();
      info.filter = (*file)->filter.value_or("");
    } else {
      continue;  // removed since it was listed
    }
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace keel
