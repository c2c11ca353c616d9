// orders: a small program that embeds keel. It keeps the events of an order in a store, reads them
// back, retries a payment safely, folds the orders into a total kept as a snapshot, and exits 1
// with keel's error on the first failure. Run it twice on the same directory: the second run
// resumes where the first stopped.
//
//   orders [DIRECTORY]   (default ./orders-store)
#include <chrono>
#include <cstdio>
#include <string>

#include "keel/keel.h"

namespace {

int fail(const char* what, const keel::StoreError& error) {
  std::fprintf(stderr, "orders: %s: %s\n", what, error.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string directory = argc > 1 ? argv[1] : "./orders-store";
  keel::StoreOptions options;
  options.create_if_missing = true;
  auto store = keel::Store::open(directory, options);   // Result<std::unique_ptr<Store>>
  if (!store.ok()) return fail("open", store.error());  // e.g. StoreLocked: another process has it

  // An append returns once its event is durable (Durability::Durable, the default: fdatasync'd,
  // shared by concurrent callers). Payloads are bytes; JSON text is the CLI's convention.
  const keel::Coordinate order{"order:42", "shop"};
  auto placed = (*store)->append(order, keel::EventKind::make(1, 1), R"({"total": 30})");
  if (!placed.ok()) return fail("append", placed.error());

  // A weaker level returns sooner; the background sync makes it durable within
  // StoreOptions::sync_interval, and wait_for() waits for that when it matters.
  keel::AppendOptions fast;
  fast.durability = keel::Durability::Written;
  auto noted = (*store)->append(order, keel::EventKind::make(1, 2), R"({"note": "gift"})", fast);
  if (!noted.ok()) return fail("append", noted.error());
  auto durable =
      (*store)->wait_for(keel::Watermark::Durable, noted->sequence, std::chrono::seconds(1));
  if (!durable.ok()) return fail("wait_for", durable.error());

  // The order's stream, in entity-clock order: views valid during the callback only.
  uint64_t clock = 0;
  auto read =
      (*store)->entity_stream(order.entity, 0, 1, UINT64_MAX, [&](const keel::EventView& e) {
        clock = e.entity_clock;
        return true;  // false stops the read
      });
  if (!read.ok()) return fail("entity_stream", read.error());

  // A payment retried with the same key returns the first receipt and writes nothing again; the
  // expected clock refuses it (SequenceMismatch) if another writer moved the order meanwhile.
  keel::AppendOptions pay;
  pay.idempotency_key = "payment-7f3a";
  pay.expected_clock = clock;
  auto paid = (*store)->append(order, keel::EventKind::make(1, 3), R"({"paid": 30})", pay);
  if (!paid.ok() && !paid.error().is(keel::ErrorCode::SequenceMismatch)) {
    return fail("append (paid)", paid.error());
  }

  // A projection: the number of events of every order, folded from the log and kept as snapshot
  // "order-events"; a later run replays only the events after it.
  std::string counted;
  size_t folded = 0;
  {
    keel::Query orders;
    orders.entity_prefix = "order:";
    auto projection = keel::Projection::open(
        **store, "order-events", orders, [](std::string& state, const keel::EventView&) {
          state = std::to_string((state.empty() ? 0 : std::stoull(state)) + 1);
          return keel::ok_status();
        });
    if (!projection.ok()) return fail("projection", projection.error());
    auto run = (*projection)->run(std::chrono::milliseconds(0));  // what is visible now
    if (!run.ok()) return fail("projection run", run.error());
    auto saved = (*projection)->save();
    if (!saved.ok()) return fail("projection save", saved.error());
    counted = (*projection)->state();
    folded = *run;
  }

  // Every event of the store, checked: checksums, chained hashes, entity chains, causes.
  auto report = (*store)->verify();
  if (!report.ok()) return fail("verify", report.error());
  if (!report->ok) {
    std::fprintf(stderr, "orders: verify: %s\n", report->problem.c_str());
    return 1;
  }

  std::printf(
      "order:42 was at clock %llu before the payment; %s order events folded, %zu this run\n",
      static_cast<unsigned long long>(clock), counted.c_str(), folded);
  auto closed = (*store)->close();  // a clean close makes the next open fast
  if (!closed.ok()) return fail("close", closed.error());
  return 0;
}
