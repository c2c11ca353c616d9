// keel demo: a small but real order flow. Three orders go placed -> paid -> shipped; each step is
// caused by the previous one and shares the order's correlation id. Then the store is closed,
// reopened, listed and verified, to show that everything survived.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/json_codec.h"
#include "keel/keel.h"

namespace keel::cli {
namespace {

const EventKind kPlaced = EventKind::make(1, 1);
const EventKind kPaid = EventKind::make(1, 2);
const EventKind kShipped = EventKind::make(1, 3);

const char* kind_name(EventKind kind) {
  if (kind == kPlaced) return "placed";
  if (kind == kPaid) return "paid";
  if (kind == kShipped) return "shipped";
  return "?";
}

std::string short_id(const EventId& id) { return id.to_hex().substr(20); }

void print_event(const EventView& e) {
  std::printf("  #%-3llu %-11s %-8s clock %llu  id ..%s  %s%s  %s\n",
              static_cast<unsigned long long>(e.sequence), std::string(e.entity).c_str(),
              kind_name(e.kind), static_cast<unsigned long long>(e.entity_clock),
              short_id(e.event_id).c_str(), e.causation_id ? "caused by .." : "root",
              e.causation_id ? short_id(*e.causation_id).c_str() : "",
              std::string(e.payload).c_str());
}

}  // namespace

int run_demo(const ParsedArgs& args) {
  const std::string& dir = args.positional[0];
  StoreOptions options;
  options.create_if_missing = true;
  auto opened = Store::open(dir, options);
  if (!opened.ok()) return fail("demo", opened.error());
  auto store = std::move(opened).value();
  if (store->stats().sequence_next != 1) {
    return usage_error("demo", dir + " already holds a store; give a new directory");
  }
  std::printf("keel demo: new store at %s (epoch %llu)\n\n", dir.c_str(),
              static_cast<unsigned long long>(store->epoch()));
  struct Step {
    EventKind kind;
    const char* payload;
  };
  const std::vector<std::pair<std::string, std::vector<Step>>> orders = {
      {"order:1001", {{kPlaced, R"({"customer":"ada","total":42.5})"}, {kPaid, R"({"method":"card"})"}, {kShipped, R"({"carrier":"dhl"})"}}},
      {"order:1002", {{kPlaced, R"({"customer":"bob","total":7})"}, {kPaid, R"({"method":"cash"})"}}},
      {"order:1003", {{kPlaced, R"({"customer":"cy","total":19.99})"}, {kPaid, R"({"method":"card"})"}, {kShipped, R"({"carrier":"ups"})"}}},
  };
  // Interleave the orders, as a shop would: step 0 of each, then step 1, ...
  std::vector<std::optional<Receipt>> last(orders.size());
  std::printf("appending (Durable: each receipt is on disk when printed):\n");
  for (size_t step = 0; step < 3; ++step) {
    for (size_t o = 0; o < orders.size(); ++o) {
      if (step >= orders[o].second.size()) continue;
      AppendOptions append;
      if (last[o]) {
        append.causation_id = last[o]->event_id;
        append.correlation_id = store->get(last[o]->event_id)->correlation_id;
      }
      const Step& s = orders[o].second[step];
      auto receipt = store->append({orders[o].first, "shop"}, s.kind, s.payload, append);
      if (!receipt.ok()) return fail("demo", receipt.error());
      std::printf("  %-11s %-8s -> sequence %llu, clock %llu, hash %s\n", orders[o].first.c_str(),
                  kind_name(s.kind), static_cast<unsigned long long>(receipt->sequence),
                  static_cast<unsigned long long>(receipt->entity_clock),
                  receipt->chained_hash.to_hex().substr(0, 12).c_str());
      last[o] = *receipt;
    }
  }
  if (Status closed = store->close(); !closed.ok()) return fail("demo", closed.error());
  store.reset();

  std::printf("\nclosed; reopening read-only:\n");
  StoreOptions read_only;
  read_only.read_only = true;
  opened = Store::open(dir, read_only);
  if (!opened.ok()) return fail("demo", opened.error());
  store = std::move(opened).value();
  Status listed = store->scan(1, UINT64_MAX, [](const EventView& e) {
    print_event(e);
    return true;
  });
  if (!listed.ok()) return fail("demo", listed.error());
  std::printf("\norder:1001's stream, following its hash chain:\n");
  Status streamed = store->entity_stream("order:1001", 0, 1, UINT64_MAX, [](const EventView& e) {
    print_event(e);
    return true;
  });
  if (!streamed.ok()) return fail("demo", streamed.error());
  auto report = store->verify();
  if (!report.ok()) return fail("demo", report.error());
  StoreStats stats = store->stats();
  std::printf("\nverify: %s (%llu events, %llu entity streams, %llu bytes on disk, epoch %llu)\n",
              report->ok ? "ok" : report->problem.c_str(),
              static_cast<unsigned long long>(report->events_checked),
              static_cast<unsigned long long>(stats.entities),
              static_cast<unsigned long long>(stats.bytes_on_disk),
              static_cast<unsigned long long>(stats.epoch));
  std::printf("try: build/tools/keel scan %s | build/tools/keel stats %s\n", dir.c_str(), dir.c_str());
  return report->ok ? 0 : 1;
}

}  // namespace keel::cli
