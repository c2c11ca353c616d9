// Subscriptions (include/keel/consumer.h): each batch is a query page after the position; with
// nothing new it waits on the visible watermark.
#include <algorithm>
#include <thread>

#include "consumers/invalid_argument.h"
#include "keel/consumer.h"
#include "store/store_internals.h"

namespace keel {

namespace {

// How often a subscription on a read-only store looks for what the writer made durable.
constexpr std::chrono::milliseconds kReadOnlyPoll{20};

using consumers::invalid_argument;

}  // namespace

Subscription::Subscription(Store& store, Query filter, uint64_t after,
                           const SubscriptionOptions& options)
    : store_(store),
      read_only_(StoreInternals::read_only(store)),
      query_(std::move(filter)),
      position_(after) {
  query_.limit = options.batch_max;
  query_.with_payload = options.with_payload;
  id_ = StoreInternals::add_subscription(store_, after);
}

Subscription::~Subscription() { StoreInternals::remove_subscription(store_, id_); }

Result<std::unique_ptr<Subscription>> Subscription::open(Store& store, Query filter, uint64_t after,
                                                         const SubscriptionOptions& options) {
  if (options.batch_max == 0 || options.batch_max > kQueryLimitMax) {
    return invalid_argument("batch_max", "must be between 1 and 1000000");
  }
  if (filter.order != Order::Ascending) {
    return invalid_argument("filter.order", "a subscription reads in ascending sequence order");
  }
  if (filter.after) {
    return invalid_argument("filter.after", "pass the position as the subscription's `after`");
  }
  if (after == UINT64_MAX)
    return invalid_argument("after", "no sequence follows 18446744073709551615");
  std::unique_ptr<Subscription> subscription(
      new Subscription(store, std::move(filter), after, options));
  // The store checks the filter and the position (CursorExpired) as it would for a page.
  Query probe = subscription->query_;
  probe.after = after;
  probe.limit = 1;
  probe.with_payload = false;
  KEEL_TRY(store.query(probe));
  return subscription;
}

// Moves the position up to `to` and tells the watermarks (only when it moved: waiting subscribers
// loop here, and the report takes the store's lock).
void Subscription::advance(uint64_t to) {
  if (to <= position_) return;
  position_ = to;
  StoreInternals::subscription_delivered(store_, id_, position_);
}

Result<size_t> Subscription::next(std::chrono::milliseconds timeout, const Visit& visit) {
  if (timeout.count() < 0) return invalid_argument("timeout", "must not be negative");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    Query page_query = query_;
    page_query.after = position_;
    size_t seen = 0;
    uint64_t last = 0;
    KEEL_ASSIGN_OR_RETURN(
        QueryPage page, StoreInternals::query_views(store_, page_query, [&](const EventView& view) {
          if (query_.with_payload) {
            visit(view);
          } else {  // copied (200 bytes) only to drop them
            EventView bare = view;
            bare.payload = {};
            bare.metadata.reset();
            visit(bare);
          }
          ++seen;
          last = view.sequence;
        }));
    if (seen > 0) {
      // A cut page stops at its last event; a page that ended the answer covers all it read.
      advance(page.next_after ? last : std::max(last, page.visible));
      return seen;
    }
    advance(page.visible);
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return size_t{0};
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    if (read_only_) {
      // Nothing in this process moves a read-only store's visible: poll the writer's progress.
      std::this_thread::sleep_for(std::min(left, kReadOnlyPoll));
      KEEL_TRY(store_.refresh());
      continue;
    }
    Status waited = store_.wait_for(Watermark::Visible, position_ + 1, left);
    if (!waited.ok()) {
      if (waited.error().code() == ErrorCode::WaitTimeout) return size_t{0};
      return std::move(waited).error();
    }
  }
}

Result<std::vector<Event>> Subscription::next(std::chrono::milliseconds timeout) {
  std::vector<Event> events;
  events.reserve(std::min<size_t>(query_.limit, 1024));
  KEEL_TRY(next(timeout, [&](const EventView& view) { events.push_back(Event::from_view(view)); }));
  return events;
}

Result<size_t> Subscription::next(std::chrono::milliseconds timeout, std::vector<Event>& batch) {
  size_t filled = 0;
  auto seen = next(timeout, [&](const EventView& view) {
    if (filled == batch.size()) {
      if (spare_.empty()) {
        batch.emplace_back();
      } else {
        batch.push_back(std::move(spare_.back()));
        spare_.pop_back();
      }
    }
    batch[filled++].assign(view);
  });
  if (!seen.ok()) filled = 0;  // nothing delivered: the position did not move
  // The Events past this batch keep their buffers for the next one (at most one batch of them).
  while (batch.size() > filled && spare_.size() < query_.limit) {
    spare_.push_back(std::move(batch.back()));
    batch.pop_back();
  }
  batch.resize(filled);
  return seen;
}

// ---- Subscriber ----

namespace {
constexpr std::chrono::milliseconds kStopPoll{50};
}

Subscriber::Subscriber(std::unique_ptr<Subscription> subscription, Deliver deliver)
    : subscription_(std::move(subscription)), deliver_(std::move(deliver)) {
  delivered_ = subscription_->position();
}

Result<std::unique_ptr<Subscriber>> Subscriber::start(Store& store, Query filter, uint64_t after,
                                                      Deliver deliver,
                                                      const SubscriptionOptions& options) {
  if (!deliver) return invalid_argument("deliver", "is empty");
  KEEL_ASSIGN_OR_RETURN(auto subscription,
                        Subscription::open(store, std::move(filter), after, options));
  std::unique_ptr<Subscriber> subscriber(
      new Subscriber(std::move(subscription), std::move(deliver)));
  subscriber->thread_ = std::thread([raw = subscriber.get()] { raw->run(); });
  return subscriber;
}

void Subscriber::run() {
  while (!stopping_.load()) {
    auto seen = subscription_->next(kStopPoll, batch_);
    if (!seen.ok()) {
      ended_ = std::move(seen).error();
      break;
    }
    if (*seen > 0) {
      Status delivered = deliver_(batch_);
      if (!delivered.ok()) {
        ended_ = std::move(delivered);
        break;
      }
    }
    delivered_ = subscription_->position();
  }
  running_ = false;
}

Status Subscriber::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  return ended_;
}

Subscriber::~Subscriber() { (void)stop(); }

}  // namespace keel
