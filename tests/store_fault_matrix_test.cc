// The fault matrix of the durability issue: EIO on fdatasync during a single append, a batch, a
// rotation and close; a short write; ENOSPC mid-group. Each scenario asserts the error class, that
// the writer is poisoned with durable frozen (and still frozen once the file system works again),
// and what a power loss + reopen contains, over several crash seeds: every acknowledged-durable
// receipt present with the same chained hash; in-doubt appends whole or absent; refused appends
// absent; receipts at Accepted/Written (void by contract) whole-or-absent with their hash.
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "keel/keel.h"
#include "platform/fault_file_system.h"
#include "test_support.h"

using namespace keel;

namespace {

const EventKind kKind = EventKind::make(1, 1);

StoreOptions options_on(platform::FaultFileSystem& fs, uint64_t segment_size) {
  StoreOptions options;
  options.file_system = &fs;
  options.create_if_missing = true;
  options.segment_size = segment_size;
  options.id_seed = 5;
  options.sync_interval = std::chrono::hours(1);  // no background sync between the steps
  return options;
}

// What the workload did, by payload (every payload is unique).
struct Ledger {
  std::map<std::string, Receipt> durable;      // acknowledged at Durable
  std::map<std::string, Receipt> weak;         // acknowledged at Accepted/Written: void if lost
  std::vector<std::vector<std::string>> in_doubt;  // each group whole or absent
  std::set<std::string> refused;
  int next = 0;

  std::string payload(const char* tag) { return std::string(tag) + "-" + std::to_string(next++); }

  // Appends one event and files the outcome.
  Status append(Store& store, Durability durability, const char* tag = "event",
                size_t padding = 0) {
    std::string p = payload(tag) + std::string(padding, '.');
    AppendOptions options;
    options.durability = durability;
    auto r = store.append({"entity-" + std::to_string(next % 3), ""}, kKind, p, options);
    file(r.ok() ? Status() : Status(r.error()), {p});
    if (r.ok()) (durability == Durability::Durable ? durable : weak).emplace(p, *r);
    return r.ok() ? ok_status() : Status(r.error());
  }

  Status batch(Store& store, int n) {
    std::vector<BatchItem> items;
    std::vector<std::string> payloads;
    for (int i = 0; i < n; ++i) {
      payloads.push_back(payload("batch"));
      items.push_back(BatchItem{{"entity-b", ""}, kKind, payloads.back(), {}});
    }
    auto r = store.append_batch(items);
    file(r.ok() ? Status() : Status(r.error()), payloads);
    if (r.ok()) {
      for (int i = 0; i < n; ++i) durable.emplace(payloads[i], (*r)[i]);
    }
    return r.ok() ? ok_status() : Status(r.error());
  }

  void file(const Status& status, const std::vector<std::string>& payloads) {
    if (status.ok()) return;
    if (status.error().error_class() == ErrorClass::Indeterminate) {
      in_doubt.push_back(payloads);
    } else {
      refused.insert(payloads.begin(), payloads.end());
    }
  }

  // The oracle, on a store reopened after the power loss.
  void check(Store& store) const {
    auto events = store.scan_events(1, UINT64_MAX);
    KEEL_REQUIRE_OK(events);
    std::map<std::string, Event> found;
    for (const Event& e : *events) found.emplace(e.payload, e);
    for (const auto& [payload, receipt] : durable) {
      INFO("acknowledged durable: " << payload);
      auto it = found.find(payload);
      REQUIRE(it != found.end());
      CHECK(it->second.receipt() == receipt);
    }
    for (const auto& [payload, receipt] : weak) {
      auto it = found.find(payload);
      if (it != found.end()) CHECK(it->second.receipt() == receipt);
    }
    for (const auto& group : in_doubt) {
      size_t present = 0;
      for (const std::string& p : group) present += found.count(p);
      INFO("in doubt: " << group.front() << " (" << group.size() << " events)");
      CHECK((present == 0 || present == group.size()));
    }
    for (const std::string& p : refused) {
      INFO("refused: " << p);
      CHECK(found.count(p) == 0);
    }
    auto report = store.verify();
    KEEL_REQUIRE_OK(report);
    CHECK(report->ok);
  }
};

struct Scenario {
  const char* name;
  uint64_t segment_size;
  // Runs the workload up to and including the failing step; returns the failing step's status.
  std::function<Status(platform::FaultFileSystem&, Store&, Ledger&)> run;
  ErrorClass expected_class;
  ErrorCode expected_root;  // the root cause's code
};

Status fill_until_error(Store& store, Ledger& ledger, Durability durability, size_t padding) {
  for (int i = 0; i < 10'000; ++i) {
    Status s = ledger.append(store, durability, "fill", padding);
    if (!s.ok()) return s;
  }
  FAIL("the fault never fired");
  return ok_status();
}

std::vector<Scenario> scenarios() {
  return {
      {"EIO on the fdatasync of a single append", 1 << 16,
       [](platform::FaultFileSystem& fs, Store& store, Ledger& ledger) {
         fs.fail_nth(platform::FaultOp::SyncData, 1);
         return ledger.append(store, Durability::Durable, "single");
       },
       ErrorClass::Indeterminate, ErrorCode::Io},
      {"EIO on the fdatasync of a batch", 1 << 16,
       [](platform::FaultFileSystem& fs, Store& store, Ledger& ledger) {
         fs.fail_nth(platform::FaultOp::SyncData, 1);
         return ledger.batch(store, 4);
       },
       ErrorClass::Indeterminate, ErrorCode::Io},
      {"EIO on the fdatasync of a rotation (written events ride in it)", 8192,
       [](platform::FaultFileSystem& fs, Store& store, Ledger& ledger) {
         fs.fail_nth(platform::FaultOp::SyncData, 1);
         // Written appends are not synced, so the first fdatasync is the rotation's seal group.
         Status s = fill_until_error(store, ledger, Durability::Written, 300);
         // The rotating append itself was refused before it was accepted.
         CHECK(s.error().is(ErrorCode::WriterPoisoned));
         return s;
       },
       ErrorClass::FailClosed, ErrorCode::Io},
      {"EIO on the fdatasync of close", 1 << 16,
       [](platform::FaultFileSystem& fs, Store& store, Ledger& ledger) {
         KEEL_REQUIRE_OK(ledger.append(store, Durability::Written, "weak"));
         KEEL_REQUIRE_OK(ledger.append(store, Durability::Accepted, "weak"));
         fs.fail_nth(platform::FaultOp::SyncData, 1);
         return store.close();
       },
       ErrorClass::Indeterminate, ErrorCode::Io},
      {"a short write of a group", 1 << 16,
       [](platform::FaultFileSystem& fs, Store& store, Ledger& ledger) {
         fs.short_write(1, 100);
         return ledger.append(store, Durability::Durable, "torn", 400);
       },
       ErrorClass::Indeterminate, ErrorCode::Io},
      {"ENOSPC on a group's write (mid-segment)", 1 << 16,
       [](platform::FaultFileSystem& fs, Store& store, Ledger& ledger) {
         // Room for about 3 KiB more writes; the segment has far more.
         fs.limit_space(3000);
         Status s = fill_until_error(store, ledger, Durability::Durable, 200);
         CHECK(store.stats().segments == 1);  // mid-segment, not at a rotation
         return s;
       },
       ErrorClass::Indeterminate, ErrorCode::NoSpace},
  };
}

}  // namespace

TEST_CASE("fault matrix: error class, frozen durable, and what a power loss leaves", "[fault]") {
  for (const Scenario& scenario : scenarios()) {
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      INFO(scenario.name << ", crash seed " << seed);
      platform::FaultFileSystem fs;
      Ledger ledger;
      auto opened = Store::open("/store", options_on(fs, scenario.segment_size));
      KEEL_REQUIRE_OK(opened);
      Store& store = **opened;
      for (int i = 0; i < 5; ++i) KEEL_REQUIRE_OK(ledger.append(store, Durability::Durable));
      KEEL_REQUIRE_OK(ledger.batch(store, 3));
      KEEL_REQUIRE_OK(ledger.append(store, Durability::Written, "weak"));
      uint64_t durable_before = store.frontier()[Watermark::Durable].global_sequence;

      Status failed = scenario.run(fs, store, ledger);
      REQUIRE_FALSE(failed.ok());
      INFO(failed.error().to_string());
      CHECK(failed.error().error_class() == scenario.expected_class);
      CHECK(failed.error().root_cause().code() == scenario.expected_root);

      // Poisoned, durable frozen, and still frozen once the file system works again.
      Frontier f = store.frontier();
      CHECK(f.poisoned);
      uint64_t durable = f[Watermark::Durable].global_sequence;
      CHECK(durable >= durable_before);
      CHECK(durable < f[Watermark::Accepted].global_sequence);
      fs.clear_faults();
      if (std::string(scenario.name).find("close") == std::string::npos) {
        CHECK(store.append({"late", ""}, kKind, "late").error().is(ErrorCode::WriterPoisoned));
        CHECK(store.sync().error().is(ErrorCode::WriterPoisoned));
        CHECK(store.frontier()[Watermark::Durable].global_sequence == durable);
        ledger.refused.insert("late");
      }

      fs.crash(seed);
      opened->reset();
      auto reopened = Store::open("/store", options_on(fs, scenario.segment_size));
      KEEL_REQUIRE_OK(reopened);
      ledger.check(**reopened);
    }
  }
}
