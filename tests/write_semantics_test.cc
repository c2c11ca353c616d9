// Write semantics at the commit point (issue #6, docs/ARCHITECTURE.md §7; include/keel/store.h,
// gate.h, options.h): per item validate → idempotency → CAS → gates → assign. Idempotency keys
// return the original receipt and write nothing, conflict on another fingerprint, replay batches
// whole or not at all, are kept for both windows (a simulated clock), and survive a clean reopen, a
// power loss (the FaultFileSystem; a negative control that ignores logged keys must be caught), an
// index image and the removal of their segments. CAS per (entity, lane), gates (head, denial,
// reentrancy, throws, order, stats), batch cause_item and item size limits. Every refusal leaves
// the log byte-identical.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "format/format_constants.h"
#include "keel/keel.h"
#include "platform/clock.h"
#include "platform/fault_file_system.h"
#include "platform/file_system.h"
#include "store/store_internals.h"
#include "test_support.h"

using namespace keel;
using keel::test::TempDir;
using platform::FaultFileSystem;

namespace {

const EventKind kKind = EventKind::make(1, 1);
const EventKind kOtherKind = EventKind::make(1, 2);
const std::string kFaultDir = "/store";

StoreOptions create_options() {
  StoreOptions options;
  options.create_if_missing = true;
  options.segment_size = 8192;
  options.id_seed = 606;
  return options;
}

StoreOptions fault_options(FaultFileSystem& fs) {
  StoreOptions options = create_options();
  options.file_system = &fs;
  // Only Durable appends and explicit syncs make anything durable: the crash has an unsynced tail.
  options.sync_interval = std::chrono::milliseconds(3'600'000);
  options.sync_bytes = 1ull << 40;
  return options;
}

std::unique_ptr<Store> open_store(const std::string& dir, const StoreOptions& options) {
  auto opened = Store::open(dir, options);
  if (!opened.ok()) FAIL("open: " << opened.error().to_string());
  return std::move(opened).value();
}

AppendOptions keyed(std::string key) {
  AppendOptions options;
  options.idempotency_key = std::move(key);
  return options;
}

AppendOptions expecting(uint64_t clock, uint32_t lane = 0) {
  AppendOptions options;
  options.expected_clock = clock;
  options.lane = lane;
  return options;
}

Receipt append_ok(Store& store, const Coordinate& coordinate, std::string_view payload,
                  const AppendOptions& options = {}, EventKind kind = kKind) {
  auto receipt = store.append(coordinate, kind, payload, options);
  if (!receipt.ok()) FAIL("append: " << receipt.error().to_string());
  return *receipt;
}

std::vector<Receipt> batch_ok(Store& store, const std::vector<BatchItem>& items) {
  auto receipts = store.append_batch(items);
  if (!receipts.ok()) FAIL("append_batch: " << receipts.error().to_string());
  return *receipts;
}

// The error of a call that must fail.
template <class T>
StoreError error_of(const Result<T>& result) {
  if (result.ok()) FAIL("expected an error, the call succeeded");
  return result.error();
}

// BatchItemFailed {index} whose cause has code `cause`.
void check_item_failed(const StoreError& error, uint64_t index, ErrorCode cause) {
  INFO(error.to_string());
  CHECK(error.is(ErrorCode::BatchItemFailed));
  CHECK(error.field_u64("index") == index);
  REQUIRE(error.cause() != nullptr);
  CHECK(error.cause()->is(cause));
}

BatchItem item(std::string entity, std::string payload, AppendOptions options = {}) {
  return BatchItem{{std::move(entity), ""}, kKind, std::move(payload), std::move(options)};
}

Gate allow_gate(std::string name, int* calls) {
  return Gate{std::move(name), [calls](const GateContext&) {
                ++*calls;
                return GateVerdict::allow();
              }};
}

Gate deny_gate(std::string name, std::string reason, int* calls = nullptr) {
  return Gate{std::move(name), [reason, calls](const GateContext&) {
                if (calls) ++*calls;
                return GateVerdict::deny(reason);
              }};
}

// The bytes of every file of a store, taken after a sync: equal before and after a refusal means
// the refusal wrote nothing (no frame, no padding, no rotation).
using Snapshot = std::vector<std::pair<std::string, std::vector<std::byte>>>;
Snapshot synced_snapshot(Store& store) {
  KEEL_REQUIRE_OK(store.sync());
  return test::snapshot_directory(store.directory());
}

// Runs `refusal` and checks it left the store's files and its next sequence as they were.
void check_writes_nothing(Store& store, const std::function<void()>& refusal) {
  Snapshot before = synced_snapshot(store);
  uint64_t next = store.stats().sequence_next;
  refusal();
  CHECK(store.stats().sequence_next == next);
  Snapshot after = synced_snapshot(store);
  REQUIRE(after.size() == before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    INFO("file " << before[i].first);
    CHECK(after[i].first == before[i].first);
    bool same_bytes = after[i].second == before[i].second;  // not expanded: 8 KiB each
    CHECK(same_bytes);
  }
}

}  // namespace

// ---- idempotency ----

TEST_CASE("a kept idempotency key returns the original receipt and writes nothing", "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  AppendOptions options = keyed("order-1");
  options.metadata = "meta";
  Receipt original = append_ok(*store, {"order:1", "shop"}, "placed", options);
  CHECK(store->stats().idempotency_keys == 1);
  CHECK(store->stats().idempotency_hits == 0);
  append_ok(*store, {"order:1", "shop"}, "other event");  // the head moves on

  check_writes_nothing(*store, [&] {
    Receipt again = append_ok(*store, {"order:1", "shop"}, "placed", options);
    CHECK(again == original);
  });
  CHECK(store->stats().idempotency_hits == 1);
  CHECK(store->stats().idempotency_keys == 1);
  // Through a one-item batch as well.
  check_writes_nothing(*store, [&] {
    std::vector<BatchItem> items{{{"order:1", "shop"}, kKind, "placed", options}};
    CHECK(batch_ok(*store, items) == std::vector<Receipt>{original});
  });
  CHECK(store->stats().idempotency_hits == 2);
  // The next new event takes the next sequence: the hits took none.
  Receipt next = append_ok(*store, {"order:1", "shop"}, "next");
  CHECK(next.sequence == 3);
  CHECK(next.entity_clock == 3);
}

TEST_CASE("the same key with another payload/coordinate/lane/kind/metadata conflicts", "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  AppendOptions options = keyed("k");
  options.metadata = "m";
  Receipt original = append_ok(*store, {"e", "s"}, "p", options);

  struct Variant {
    const char* what;
    Coordinate coordinate;
    EventKind kind;
    std::string payload;
    uint32_t lane;
    std::optional<std::string> metadata;
  };
  const std::vector<Variant> variants{
      {"payload", {"e", "s"}, kKind, "p2", 0, "m"},
      {"entity", {"e2", "s"}, kKind, "p", 0, "m"},
      {"scope", {"e", "s2"}, kKind, "p", 0, "m"},
      {"lane", {"e", "s"}, kKind, "p", 1, "m"},
      {"kind", {"e", "s"}, kOtherKind, "p", 0, "m"},
      {"metadata", {"e", "s"}, kKind, "p", 0, "m2"},
      {"no metadata", {"e", "s"}, kKind, "p", 0, std::nullopt},
  };
  for (const Variant& v : variants) {
    INFO("differs in " << v.what);
    AppendOptions changed = keyed("k");
    changed.lane = v.lane;
    changed.metadata = v.metadata;
    check_writes_nothing(*store, [&] {
      StoreError error = error_of(store->append(v.coordinate, v.kind, v.payload, changed));
      CHECK(error.is(ErrorCode::IdempotencyConflict));
      CHECK(error.error_class() == ErrorClass::Domain);
      CHECK(error.field_string("key") == "\"k\"");
      // The same conflict as a batch item names the item.
      std::vector<BatchItem> items{item("x", "fresh"), {v.coordinate, v.kind, v.payload, changed}};
      check_item_failed(error_of(store->append_batch(items)), 1, ErrorCode::IdempotencyConflict);
    });
  }
  CHECK(store->stats().idempotency_hits == 0);
  // The key still names the original.
  CHECK(append_ok(*store, {"e", "s"}, "p", options) == original);
}

TEST_CASE("an idempotency hit skips CAS and gates, validation still comes first", "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  int registered_calls = 0;
  KEEL_REQUIRE_OK(store->register_gate(allow_gate("counting", &registered_calls)));
  AppendOptions options = keyed("once");
  options.expected_clock = 0;
  Receipt original = append_ok(*store, {"acct", ""}, "debit", options);
  REQUIRE(registered_calls == 1);
  append_ok(*store, {"acct", ""}, "later");  // now expected_clock 0 is wrong
  REQUIRE(registered_calls == 2);
  KEEL_REQUIRE_OK(store->unregister_gate("counting"));
  int denied_calls = 0;
  KEEL_REQUIRE_OK(store->register_gate(deny_gate("closed", "account closed", &denied_calls)));
  int own_calls = 0;
  options.gates.push_back(deny_gate("own", "no", &own_calls));
  // Without a key the same append is refused by CAS (and would be by the gates).
  AppendOptions unkeyed = options;
  unkeyed.idempotency_key.reset();
  CHECK(error_of(store->append({"acct", ""}, kKind, "debit", unkeyed))
            .is(ErrorCode::SequenceMismatch));
  uint64_t evaluated = store->stats().gates_evaluated;
  uint64_t denials = store->stats().gate_denials;
  check_writes_nothing(*store, [&] {
    CHECK(append_ok(*store, {"acct", ""}, "debit", options) == original);
    std::vector<BatchItem> items{{{"acct", ""}, kKind, "debit", options}};
    CHECK(batch_ok(*store, items) == std::vector<Receipt>{original});
  });
  CHECK(denied_calls == 0);
  CHECK(own_calls == 0);
  CHECK(store->stats().gates_evaluated == evaluated);
  CHECK(store->stats().gate_denials == denials);
  // Validation precedes the lookup: a negative timeout is refused even for a kept key.
  AppendOptions bad = options;
  bad.timeout = std::chrono::milliseconds(-1);
  StoreError invalid = error_of(store->append({"acct", ""}, kKind, "debit", bad));
  CHECK(invalid.is(ErrorCode::InvalidArgument));
  CHECK(invalid.field_string("argument") == "timeout");
}

TEST_CASE("a batch is replayed whole or not at all", "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  std::vector<BatchItem> items{item("a", "1", keyed("b1")), item("b", "2", keyed("b2")),
                               item("a", "3", keyed("b3"))};
  std::vector<Receipt> original = batch_ok(*store, items);
  Receipt single = append_ok(*store, {"c", ""}, "4", keyed("s1"));
  CHECK(store->stats().idempotency_keys == 4);

  SECTION("every key kept: the original receipts, nothing written") {
    check_writes_nothing(*store, [&] { CHECK(batch_ok(*store, items) == original); });
    CHECK(store->stats().idempotency_hits == 3);
    // Keys kept from different appends replay together, in the new batch's order.
    std::vector<BatchItem> mixed{items[2], item("c", "4", keyed("s1")), items[0]};
    check_writes_nothing(*store, [&] {
      CHECK(batch_ok(*store, mixed) == std::vector<Receipt>{original[2], single, original[0]});
    });
    // Single appends of a batch's items hit too.
    CHECK(append_ok(*store, {"b", ""}, "2", keyed("b2")) == original[1]);
  }
  SECTION("some keys kept, one new: IdempotencyConflict, nothing written, the new key unused") {
    std::vector<BatchItem> partial{items[0], item("d", "5", keyed("new"))};
    check_writes_nothing(*store, [&] {
      StoreError error = error_of(store->append_batch(partial));
      CHECK(error.is(ErrorCode::IdempotencyConflict));
      CHECK(error.error_class() == ErrorClass::Domain);
    });
    CHECK(store->stats().idempotency_keys == 4);
    Receipt fresh = append_ok(*store, {"d", ""}, "5", keyed("new"));
    CHECK(fresh.sequence == single.sequence + 1);
  }
  SECTION("a new key before a kept one conflicts the same way") {
    std::vector<BatchItem> partial{item("d", "5", keyed("new")), items[1]};
    check_writes_nothing(*store, [&] {
      CHECK(error_of(store->append_batch(partial)).is(ErrorCode::IdempotencyConflict));
    });
  }
  SECTION("an unkeyed item beside kept keys: IdempotencyConflict") {
    std::vector<BatchItem> partial{items[0], item("d", "unkeyed"), items[1]};
    check_writes_nothing(*store, [&] {
      CHECK(error_of(store->append_batch(partial)).is(ErrorCode::IdempotencyConflict));
    });
  }
  SECTION("the same key twice in one batch: BatchItemFailed at the second") {
    std::vector<BatchItem> twice{item("d", "x", keyed("dup")), item("e", "y"),
                                 item("d", "x", keyed("dup"))};
    check_writes_nothing(*store, [&] {
      check_item_failed(error_of(store->append_batch(twice)), 2, ErrorCode::IdempotencyConflict);
    });
    // Even when both carry a kept key with its own fingerprint.
    std::vector<BatchItem> kept_twice{items[0], items[0]};
    check_writes_nothing(*store, [&] {
      check_item_failed(error_of(store->append_batch(kept_twice)), 1,
                        ErrorCode::IdempotencyConflict);
    });
    CHECK(store->stats().idempotency_keys == 4);
  }
}

TEST_CASE("keys are kept for both windows (events and time), then forgotten", "[write]") {
  TempDir dir;
  platform::ManualClock clock(1'700'000'000'000);
  StoreOptions options = create_options();
  options.clock = &clock;
  options.idempotency_window_events = 5;
  options.idempotency_window = std::chrono::milliseconds(1000);
  auto store = open_store(dir.path(), options);

  Receipt k = append_ok(*store, {"e", ""}, "k", keyed("k"));               // sequence 1
  for (int i = 0; i < 4; ++i) append_ok(*store, {"other", ""}, "filler");  // 2..5
  clock.advance_ms(1000);
  // At both windows' edge (5 sequences, 1000 ms): kept.
  CHECK(append_ok(*store, {"e", ""}, "k", keyed("k")) == k);
  // Time is past, the events window holds it.
  clock.advance_ms(1);
  CHECK(append_ok(*store, {"e", ""}, "k", keyed("k")) == k);
  CHECK(error_of(store->append({"e", ""}, kKind, "changed", keyed("k")))
            .is(ErrorCode::IdempotencyConflict));

  // A second key: the events window is past, the time window holds it.
  Receipt t = append_ok(*store, {"e", ""}, "t", keyed("t"));                // sequence 6
  for (int i = 0; i < 10; ++i) append_ok(*store, {"other", ""}, "filler");  // 7..16
  clock.advance_ms(1000);
  CHECK(append_ok(*store, {"e", ""}, "t", keyed("t")) == t);
  CHECK(store->stats().idempotency_keys == 1);  // "k" is past both and went with the lookup

  // Both windows past: the key is new and names a new event; any payload may reuse it.
  clock.advance_ms(1);
  uint64_t next = store->stats().sequence_next;
  Receipt t2 = append_ok(*store, {"e", ""}, "t with another payload", keyed("t"));
  CHECK(t2.sequence == next);
  CHECK(t2.event_id != t.event_id);
  Receipt k2 = append_ok(*store, {"e", ""}, "k", keyed("k"));
  CHECK(k2.sequence == next + 1);
  CHECK(k2 != k);
  // The new events are what the keys name now.
  CHECK(append_ok(*store, {"e", ""}, "k", keyed("k")) == k2);
  CHECK(store->stats().idempotency_keys == 2);
}

TEST_CASE("the windows hold across a reopen", "[write]") {
  TempDir dir;
  platform::ManualClock clock(1'700'000'000'000);
  StoreOptions options = create_options();
  options.clock = &clock;
  options.idempotency_window_events = 5;
  options.idempotency_window = std::chrono::milliseconds(1000);
  Receipt k;
  {
    auto store = open_store(dir.path(), options);
    k = append_ok(*store, {"e", ""}, "k", keyed("k"));
    for (int i = 0; i < 8; ++i) append_ok(*store, {"other", ""}, "filler");
    KEEL_REQUIRE_OK(store->close());
  }
  {
    // The events window is past, the time window is not: still kept.
    auto store = open_store(dir.path(), options);
    CHECK(store->stats().idempotency_keys == 1);
    CHECK(append_ok(*store, {"e", ""}, "k", keyed("k")) == k);
    KEEL_REQUIRE_OK(store->close());
  }
  clock.advance_ms(1001);
  auto store = open_store(dir.path(), options);
  CHECK(store->stats().idempotency_keys == 0);  // forgotten at open
  Receipt again = append_ok(*store, {"e", ""}, "k", keyed("k"));
  CHECK(again.sequence == 10);
  CHECK(again != k);
}

TEST_CASE("keys survive a clean close and reopen with the original epoch", "[write]") {
  TempDir dir;
  Receipt original;
  Receipt batched;
  uint64_t first_epoch = 0;
  {
    auto store = open_store(dir.path(), create_options());
    first_epoch = store->epoch();
    original = append_ok(*store, {"e", ""}, "p", keyed("k1"));
    batched = batch_ok(*store, {item("f", "q", keyed("k2"))})[0];
    KEEL_REQUIRE_OK(store->close());
  }
  auto store = open_store(dir.path(), create_options());
  CHECK(store->epoch() > first_epoch);
  check_writes_nothing(*store, [&] {
    Receipt again = append_ok(*store, {"e", ""}, "p", keyed("k1"));
    CHECK(again == original);
    CHECK(again.epoch == first_epoch);
    CHECK(batch_ok(*store, {item("f", "q", keyed("k2"))})[0] == batched);
    CHECK(error_of(store->append({"e", ""}, kKind, "p2", keyed("k1")))
              .is(ErrorCode::IdempotencyConflict));
  });
  Receipt fresh = append_ok(*store, {"e", ""}, "p", keyed("k3"));
  CHECK(fresh.epoch == store->epoch());
}

namespace {

// A keyed append and the receipt it got.
struct KeptKey {
  std::string key;
  std::string entity;
  std::string payload;
  Receipt receipt;
};

Receipt append_again(Store& store, const KeptKey& kept) {
  return append_ok(store, {kept.entity, ""}, kept.payload, keyed(kept.key));
}

// Keyed Durable appends (single and batched), then unsynced appends for the crash to tear.
std::vector<KeptKey> append_durable_keys(Store& store, const std::string& prefix) {
  std::vector<KeptKey> kept;
  for (int i = 0; i < 12; ++i) {
    KeptKey k{prefix + std::to_string(i),
              "e" + std::to_string(i % 3),
              "payload " + std::to_string(i),
              {}};
    k.receipt = append_again(store, k);
    kept.push_back(k);
  }
  std::vector<BatchItem> items;
  for (int i = 0; i < 3; ++i) {
    KeptKey k{prefix + "-batch-" + std::to_string(i), "e" + std::to_string(i), "batched", {}};
    items.push_back(item(k.entity, k.payload, keyed(k.key)));
    kept.push_back(k);
  }
  std::vector<Receipt> receipts = batch_ok(store, items);
  for (int i = 0; i < 3; ++i) kept[12 + i].receipt = receipts[i];
  AppendOptions unsynced;
  unsynced.durability = Durability::Written;
  for (int i = 0; i < 20; ++i) append_ok(store, {"tail", ""}, std::string(300, 't'), unsynced);
  return kept;
}

}  // namespace

TEST_CASE("keys of Durable appends survive a power loss, ignoring logged keys is caught",
          "[write]") {
  for (uint64_t seed : {1u, 2u, 3u}) {
    INFO("seed " << seed);
    for (bool control : {false, true}) {
      INFO((control ? "negative control: logged keys ignored" : "keys rebuilt from the log"));
      FaultFileSystem fs;
      auto store = open_store(kFaultDir, fault_options(fs));
      auto kept = append_durable_keys(*store, "key");
      fs.crash(seed);
      store.reset();
      StoreOptions reopen = fault_options(fs);
      reopen.unsafe_ignore_logged_keys_for_test = control;
      auto reopened = open_store(kFaultDir, reopen);
      int hits = 0;
      int appended_anew = 0;
      for (const KeptKey& k : kept) {
        INFO("key " << k.key);
        uint64_t next = reopened->stats().sequence_next;
        Receipt again = append_again(*reopened, k);
        if (again == k.receipt) {
          ++hits;
          CHECK(reopened->stats().sequence_next == next);
        } else {
          CHECK(again.sequence == next);
          ++appended_anew;
        }
      }
      if (!control) {
        CHECK(hits == static_cast<int>(kept.size()));
      } else {
        // The control's store takes every duplicate as new: the check above would catch it.
        CHECK(appended_anew == static_cast<int>(kept.size()));
      }
    }
  }
}

TEST_CASE("keys from before and after an index image survive a power loss", "[write]") {
  for (bool control : {false, true}) {
    INFO((control ? "negative control: logged keys ignored" : "keys rebuilt from the log"));
    FaultFileSystem fs;
    std::vector<KeptKey> before;
    {
      auto store = open_store(kFaultDir, fault_options(fs));
      before = append_durable_keys(*store, "pre");
      KEEL_REQUIRE_OK(store->close());  // writes the index image and the IDEMPOTENCY sidecar
    }
    REQUIRE(fs.durable_contents(kFaultDir + "/" + format::kIdempotencyFileName).has_value());
    auto store = open_store(kFaultDir, fault_options(fs));
    REQUIRE(store->stats().index_source == "image");
    // close hands the image to the kernel; the open that uses it has it made durable
    StoreInternals::wait_for_restored_image_sync(*store);
    REQUIRE(fs.durable_contents(kFaultDir + "/" + format::kIndexImageFileName).has_value());
    auto after = append_durable_keys(*store, "post");
    fs.crash(17);
    store.reset();
    StoreOptions reopen = fault_options(fs);
    reopen.unsafe_ignore_logged_keys_for_test = control;
    auto reopened = open_store(kFaultDir, reopen);
    CHECK(reopened->stats().index_source == "image");
    for (const KeptKey& k : before) {
      INFO("key " << k.key << " (before the image)");
      CHECK(append_again(*reopened, k) == k.receipt);
    }
    for (const KeptKey& k : after) {
      INFO("key " << k.key << " (after the image)");
      uint64_t next = reopened->stats().sequence_next;
      Receipt again = append_again(*reopened, k);
      if (!control) {
        CHECK(again == k.receipt);
      } else {
        CHECK(again.sequence == next);  // the control forgets them: caught
      }
    }
  }
}

namespace {

// Keyed events over several 4 KiB segments; returns their receipts and payloads by key.
struct KeyedLog {
  std::vector<std::string> keys;
  std::vector<Receipt> receipts;
};

StoreOptions small_segments() {
  StoreOptions options = create_options();
  options.segment_size = 4096;
  return options;
}

KeyedLog append_keyed_segments(Store& store, int count, int first = 0) {
  KeyedLog log;
  for (int i = first; i < first + count; ++i) {
    std::string key = "r" + std::to_string(i);
    log.keys.push_back(key);
    log.receipts.push_back(append_ok(store, {"e", ""}, key + std::string(300, '.'), keyed(key)));
  }
  return log;
}

void check_duplicates_hit(Store& store, const KeyedLog& log) {
  check_writes_nothing(store, [&] {
    for (size_t i = 0; i < log.keys.size(); ++i) {
      INFO("key " << log.keys[i]);
      CHECK(append_ok(store, {"e", ""}, log.keys[i] + std::string(300, '.'), keyed(log.keys[i])) ==
            log.receipts[i]);
    }
  });
}

}  // namespace

TEST_CASE("keys outlive their removed segments across a reopen", "[write]") {
  TempDir dir;
  KeyedLog log;
  uint64_t first_retained = 0;
  {
    auto store = open_store(dir.path(), small_segments());
    log = append_keyed_segments(*store, 60);
    REQUIRE(store->stats().segments >= 4);
    auto removed = retain_first(*store, 40);
    KEEL_REQUIRE_OK(removed);
    first_retained = *removed;
    REQUIRE(first_retained > 1);
    REQUIRE(first_retained <= 40);
    CHECK(store->stats().first_retained_sequence == first_retained);
    // The removed events are no longer counted (hidden_events must not wrap below zero).
    CHECK(store->stats().events == log.receipts.size() - (first_retained - 1));
    CHECK(store->stats().hidden_events == 0);
    check_duplicates_hit(*store, log);
    // A removed key still conflicts on another payload.
    CHECK(error_of(store->append({"e", ""}, kKind, "changed", keyed("r0")))
              .is(ErrorCode::IdempotencyConflict));
    KEEL_REQUIRE_OK(store->close());
  }
  auto store = open_store(dir.path(), small_segments());
  CHECK(store->stats().first_retained_sequence == first_retained);
  check_duplicates_hit(*store, log);
  // get() of a removed event is NotFound; of a retained one, the event.
  {
    std::vector<std::string> wrong;
    for (size_t i = 0; i < log.receipts.size(); ++i) {
      auto got = store->get(log.receipts[i].event_id);
      bool removed = log.receipts[i].sequence < first_retained;
      if (removed && (got.ok() || !got.error().is(ErrorCode::NotFound))) {
        wrong.push_back("sequence " + std::to_string(log.receipts[i].sequence) + ": " +
                        (got.ok() ? "found" : got.error().to_string()));
      } else if (!removed && (!got.ok() || got->receipt() != log.receipts[i])) {
        wrong.push_back("sequence " + std::to_string(log.receipts[i].sequence) +
                        ": not as appended");
      }
    }
    INFO(wrong.size() << " wrong, the first: " << (wrong.empty() ? "" : wrong.front()));
    CHECK(wrong.empty());
  }
  // Reads see the retained events only.
  {
    StoreError read = error_of(store->read(1));
    INFO(read.to_string());
    CHECK(read.is(ErrorCode::NotFound));
  }
  auto events = store->scan_events(1, UINT64_MAX);
  if (!events.ok()) FAIL_CHECK(events.error().to_string());
  if (events.ok()) {
    REQUIRE_FALSE(events->empty());
    CHECK(events->front().sequence == first_retained);
    CHECK(events->size() == log.receipts.size() - (first_retained - 1));
  }
  CHECK(store->stats().events == log.receipts.size() - (first_retained - 1));
  CHECK(store->stats().hidden_events == 0);
  auto report = store->verify();
  if (!report.ok()) FAIL_CHECK("verify: " << report.error().to_string());
  if (report.ok()) CHECK(report->ok);
  // And after a second reopen, from the sidecar the close rewrote.
  KEEL_REQUIRE_OK(store->close());
  store = open_store(dir.path(), small_segments());
  check_duplicates_hit(*store, log);
}

TEST_CASE("keys outlive their removed segments across a power loss", "[write]") {
  FaultFileSystem fs;
  StoreOptions options = fault_options(fs);
  options.segment_size = 4096;
  auto store = open_store(kFaultDir, options);
  KeyedLog log = append_keyed_segments(*store, 50);
  auto removed = retain_first(*store, 30);
  KEEL_REQUIRE_OK(removed);
  REQUIRE(*removed > 1);
  KeyedLog later = append_keyed_segments(*store, 10, 50);
  fs.crash(5);
  store.reset();
  auto reopened = open_store(kFaultDir, options);
  CHECK(reopened->stats().first_retained_sequence == *removed);
  for (const KeyedLog* part : {&log, &later}) {
    for (size_t i = 0; i < part->keys.size(); ++i) {
      INFO("key " << part->keys[i]);
      CHECK(append_ok(*reopened, {"e", ""}, part->keys[i] + std::string(300, '.'),
                      keyed(part->keys[i])) == part->receipts[i]);
    }
  }
}

TEST_CASE("after segments are removed an open needs the index image: without it, fail closed",
          "[write]") {
  TempDir dir;
  KeyedLog log;
  uint64_t first_retained = 0;
  {
    auto store = open_store(dir.path(), small_segments());
    log = append_keyed_segments(*store, 40);
    auto removed = retain_first(*store, 25);
    KEEL_REQUIRE_OK(removed);
    first_retained = *removed;
    REQUIRE(first_retained > 1);
    KEEL_REQUIRE_OK(store->close());
  }
  {
    // With the image: the streams of the removed events continue.
    auto store = open_store(dir.path(), small_segments());
    CHECK(store->stats().index_source == "image");
    CHECK(store->stats().first_retained_sequence == first_retained);
    check_duplicates_hit(*store, log);
    CHECK(append_ok(*store, {"e", ""}, "next").entity_clock ==
          log.receipts.back().entity_clock + 1);
    auto report = store->verify();
    KEEL_REQUIRE_OK(report);
    CHECK(report->ok);
    KEEL_REQUIRE_OK(store->close());
  }
  // Without it the log from the floor cannot rebuild those streams (docs/DECISIONS.md): the open
  // fails closed, naming INDEX, and changes nothing.
  KEEL_REQUIRE_OK(platform::posix_file_system().remove(dir / format::kIndexImageFileName));
  auto before = test::snapshot_directory(dir.path());
  auto reopened = Store::open(dir.path(), small_segments());
  REQUIRE(!reopened.ok());
  CHECK(reopened.error().is(ErrorCode::CorruptSidecar));
  CHECK(reopened.error().error_class() == ErrorClass::FailClosed);
  CHECK(reopened.error().message().find("INDEX") != std::string::npos);
  auto after = test::snapshot_directory(dir.path());
  CHECK(before.size() == after.size());
}

TEST_CASE("a damaged IDEMPOTENCY file fails closed once segments are gone and is rebuilt otherwise",
          "[write]") {
  TempDir dir;
  const std::string sidecar = dir / format::kIdempotencyFileName;
  KeyedLog log;
  {
    auto store = open_store(dir.path(), small_segments());
    log = append_keyed_segments(*store, 40);
    KEEL_REQUIRE_OK(store->close());
  }
  REQUIRE(test::file_size(sidecar) > 16);

  // Nothing removed: the keys are rebuilt from the log.
  test::flip_byte(sidecar, test::file_size(sidecar) / 2);
  {
    auto store = open_store(dir.path(), small_segments());
    INFO(store->stats().index_source);
    CHECK(store->stats().index_source != "image");  // the keys the image needs are rebuilt
    check_duplicates_hit(*store, log);
    auto removed = retain_first(*store, 25);
    KEEL_REQUIRE_OK(removed);
    REQUIRE(*removed > 1);
    KEEL_REQUIRE_OK(store->close());
  }
  // Segments removed: the sidecar is the only record of their keys, so damage fails closed.
  auto intact = test::read_bytes(sidecar);
  test::flip_byte(sidecar, test::file_size(sidecar) / 2);
  {
    StoreError error = error_of(Store::open(dir.path(), small_segments()));
    CHECK(error.is(ErrorCode::CorruptSidecar));
    CHECK(error.error_class() == ErrorClass::FailClosed);
  }
  // A truncated one too.
  test::write_bytes(sidecar, 0, intact);
  test::truncate_file(sidecar, intact.size() - 3);
  CHECK(error_of(Store::open(dir.path(), small_segments())).is(ErrorCode::CorruptSidecar));
  // Restored, the store opens and the removed events' keys hit.
  test::write_bytes(sidecar, 0, intact);
  auto store = open_store(dir.path(), small_segments());
  check_duplicates_hit(*store, log);
}

// ---- CAS ----

TEST_CASE("CAS: expected_clock per entity and lane with 0 for a new stream", "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  Receipt first = append_ok(*store, {"acct", ""}, "open", expecting(0));
  CHECK(first.entity_clock == 1);
  check_writes_nothing(*store, [&] {
    StoreError error = error_of(store->append({"acct", ""}, kKind, "stale", expecting(0)));
    CHECK(error.is(ErrorCode::SequenceMismatch));
    CHECK(error.error_class() == ErrorClass::Domain);
    CHECK(error.field_string("entity") == "acct");
    CHECK(error.field_u64("lane") == 0u);
    CHECK(error.field_u64("expected") == 0u);
    CHECK(error.field_u64("actual") == 1u);
    StoreError ahead = error_of(store->append({"acct", ""}, kKind, "ahead", expecting(2)));
    CHECK(ahead.field_u64("expected") == 2u);
    CHECK(ahead.field_u64("actual") == 1u);
    // A new stream has clock 0.
    StoreError fresh = error_of(store->append({"new", ""}, kKind, "x", expecting(1)));
    CHECK(fresh.field_string("entity") == "new");
    CHECK(fresh.field_u64("actual") == 0u);
  });
  CHECK(append_ok(*store, {"acct", ""}, "deposit", expecting(1)).entity_clock == 2);
  // Lanes are independent streams.
  CHECK(append_ok(*store, {"acct", ""}, "lane 3", expecting(0, 3)).entity_clock == 1);
  StoreError lane = error_of(store->append({"acct", ""}, kKind, "x", expecting(2, 3)));
  CHECK(lane.field_u64("lane") == 3u);
  CHECK(lane.field_u64("actual") == 1u);
  CHECK(append_ok(*store, {"acct", ""}, "deposit", expecting(2)).entity_clock == 3);
  // Other entities too.
  CHECK(append_ok(*store, {"acct2", ""}, "open", expecting(0)).entity_clock == 1);
}

TEST_CASE("CAS holds across a reopen", "[write]") {
  TempDir dir;
  {
    auto store = open_store(dir.path(), create_options());
    append_ok(*store, {"acct", ""}, "a");
    append_ok(*store, {"acct", ""}, "b");
    append_ok(*store, {"acct", ""}, "c", expecting(0, 1));
    KEEL_REQUIRE_OK(store->close());
  }
  auto store = open_store(dir.path(), create_options());
  StoreError error = error_of(store->append({"acct", ""}, kKind, "x", expecting(0)));
  CHECK(error.field_u64("actual") == 2u);
  CHECK(error_of(store->append({"acct", ""}, kKind, "x", expecting(0, 1))).field_u64("actual") ==
        1u);
  CHECK(append_ok(*store, {"acct", ""}, "d", expecting(2)).entity_clock == 3);
  CHECK(append_ok(*store, {"acct", ""}, "e", expecting(1, 1)).entity_clock == 2);
}

TEST_CASE("CAS inside a batch sees the earlier items, a failing item fails the batch", "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  append_ok(*store, {"a", ""}, "first");  // a at clock 1
  std::vector<BatchItem> items{item("a", "2", expecting(1)), item("b", "1", expecting(0)),
                               item("a", "3", expecting(2)), item("a", "lane", expecting(0, 1))};
  std::vector<Receipt> receipts = batch_ok(*store, items);
  CHECK(receipts[2].entity_clock == 3);
  CHECK(receipts[3].entity_clock == 1);

  check_writes_nothing(*store, [&] {
    // Item 1 expects the head before the batch, but item 0 moved it.
    std::vector<BatchItem> stale{item("a", "4", expecting(3)), item("a", "5", expecting(3))};
    StoreError error = error_of(store->append_batch(stale));
    check_item_failed(error, 1, ErrorCode::SequenceMismatch);
    CHECK(error.cause()->field_string("entity") == "a");
    CHECK(error.cause()->field_u64("lane") == 0u);
    CHECK(error.cause()->field_u64("expected") == 3u);
    CHECK(error.cause()->field_u64("actual") == 4u);
    // The last item fails: the good ones before it are not written either.
    std::vector<BatchItem> last_bad{item("c", "1", expecting(0)), item("a", "4", expecting(3)),
                                    item("b", "2", expecting(5))};
    check_item_failed(error_of(store->append_batch(last_bad)), 2, ErrorCode::SequenceMismatch);
  });
  std::vector<BatchItem> ok{item("a", "4", expecting(3)), item("a", "5", expecting(4))};
  CHECK(batch_ok(*store, ok)[1].entity_clock == 5);
}

// ---- gates ----

namespace {

struct SeenHead {
  uint64_t item_index;
  std::string entity;
  uint32_t lane;
  std::string payload;
  EntityHead head;
  bool fenced;
};

Gate recording_gate(std::vector<SeenHead>* seen) {
  return Gate{"recorder", [seen](const GateContext& c) {
                seen->push_back(SeenHead{c.item_index, c.coordinate.entity, c.lane,
                                         std::string(c.payload), c.head, c.fenced});
                return GateVerdict::allow();
              }};
}

void check_head(const EntityHead& head, const Receipt& receipt, EventKind kind) {
  CHECK(head.clock == receipt.entity_clock);
  CHECK(head.sequence == receipt.sequence);
  CHECK(head.event_id == std::optional<EventId>(receipt.event_id));
  CHECK(head.kind == std::optional<EventKind>(kind));
}

void check_empty_head(const EntityHead& head) {
  CHECK(head.clock == 0);
  CHECK(head.sequence == 0);
  CHECK_FALSE(head.event_id.has_value());
  CHECK_FALSE(head.kind.has_value());
}

}  // namespace

TEST_CASE("gates see the head: empty for a new stream and the previous item inside a batch",
          "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  std::vector<SeenHead> seen;
  KEEL_REQUIRE_OK(store->register_gate(recording_gate(&seen)));
  Receipt first = append_ok(*store, {"a", ""}, "first", {}, kOtherKind);
  REQUIRE(seen.size() == 1);
  check_empty_head(seen[0].head);
  CHECK(seen[0].item_index == 0);
  CHECK_FALSE(seen[0].fenced);
  Receipt second = append_ok(*store, {"a", ""}, "second");
  REQUIRE(seen.size() == 2);
  check_head(seen[1].head, first, kOtherKind);

  seen.clear();
  AppendOptions lane1;
  lane1.lane = 1;
  std::vector<BatchItem> items{{{"a", ""}, kOtherKind, "i0", {}},
                               item("b", "i1"),
                               item("a", "i2"),
                               item("a", "i3"),
                               item("a", "i4 lane 1", lane1)};
  std::vector<Receipt> receipts = batch_ok(*store, items);
  REQUIRE(seen.size() == items.size());
  for (size_t i = 0; i < seen.size(); ++i) {
    CHECK(seen[i].item_index == i);
    CHECK(seen[i].payload == items[i].payload);
  }
  check_head(seen[0].head, second, kKind);            // the stream's head before the batch
  check_empty_head(seen[1].head);                     // b is new
  check_head(seen[2].head, receipts[0], kOtherKind);  // item 0, not item 1 of another stream
  check_head(seen[3].head, receipts[2], kKind);
  CHECK(seen[4].lane == 1);
  check_empty_head(seen[4].head);  // lane 1 of a is its own stream
}

TEST_CASE("a denying gate is GateDenied and writes nothing, registered gates run first",
          "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  std::vector<std::string> order;
  auto named = [&order](std::string name, bool allow) {
    return Gate{name, [&order, name, allow](const GateContext&) {
                  order.push_back(name);
                  return allow ? GateVerdict::allow() : GateVerdict::deny(name + " says no");
                }};
  };
  KEEL_REQUIRE_OK(store->register_gate(named("r1", true)));
  KEEL_REQUIRE_OK(store->register_gate(named("r2", true)));
  AppendOptions own;
  own.gates = {named("p1", true), named("p2", true)};
  append_ok(*store, {"a", ""}, "x", own);
  CHECK(order == std::vector<std::string>{"r1", "r2", "p1", "p2"});

  order.clear();
  own.gates = {named("p1", true), named("deny", false), named("p3", true)};
  uint64_t denials = store->stats().gate_denials;
  check_writes_nothing(*store, [&] {
    StoreError error = error_of(store->append({"a", ""}, kKind, "y", own));
    CHECK(error.is(ErrorCode::GateDenied));
    CHECK(error.error_class() == ErrorClass::Domain);
    CHECK(error.field_string("gate") == "deny");
    CHECK(error.field_string("reason") == "deny says no");
    std::vector<BatchItem> items{item("b", "ok"), item("a", "y", own)};
    StoreError batch = error_of(store->append_batch(items));
    check_item_failed(batch, 1, ErrorCode::GateDenied);
    CHECK(batch.cause()->field_string("gate") == "deny");
  });
  CHECK(store->stats().gate_denials == denials + 2);
  // The denial stops the gates after it.
  CHECK(std::count(order.begin(), order.end(), "p3") == 0);

  // A registered gate that denies stops the append's own gates; unregistering it lets appends by.
  KEEL_REQUIRE_OK(store->register_gate(named("r3", false)));
  order.clear();
  own.gates = {named("p1", true)};
  CHECK(error_of(store->append({"a", ""}, kKind, "z", own)).field_string("gate") == "r3");
  CHECK(order == std::vector<std::string>{"r1", "r2", "r3"});
  KEEL_REQUIRE_OK(store->unregister_gate("r3"));
  append_ok(*store, {"a", ""}, "z", own);
  CHECK(error_of(store->unregister_gate("r3")).is(ErrorCode::NotFound));
}

TEST_CASE("register_gate refuses duplicate and empty names and an empty check", "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  int calls = 0;
  KEEL_REQUIRE_OK(store->register_gate(allow_gate("g", &calls)));
  CHECK(error_of(store->register_gate(allow_gate("g", &calls))).is(ErrorCode::InvalidArgument));
  CHECK(error_of(store->register_gate(allow_gate("", &calls))).is(ErrorCode::InvalidArgument));
  CHECK(error_of(store->register_gate(Gate{"empty", {}})).is(ErrorCode::InvalidArgument));
  append_ok(*store, {"a", ""}, "x");
  CHECK(calls == 1);  // "g" once, not twice
  // An append's own gate without a name or check is refused before anything runs.
  AppendOptions bad;
  bad.gates.push_back(Gate{"", [](const GateContext&) { return GateVerdict::allow(); }});
  CHECK(error_of(store->append({"a", ""}, kKind, "y", bad)).is(ErrorCode::InvalidArgument));
  CHECK(calls == 1);
}

TEST_CASE("a gate that calls into its store is GateReentrant naming the gate and the call",
          "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  Receipt first = append_ok(*store, {"a", ""}, "first");
  TempDir other_dir;
  auto other = open_store(other_dir.path(), create_options());

  struct Call {
    const char* operation;
    std::function<void(Store&)> call;
  };
  const std::vector<Call> calls{
      {"append",
       [](Store& s) {
         (void)s.append({"z", ""}, kKind, "inner");
       }},
      {"append_batch", [](Store& s) { (void)s.append_batch(std::vector{item("z", "inner")}); }},
      {"get", [&](Store& s) { (void)s.get(first.event_id); }},
      {"read", [](Store& s) { (void)s.read(1); }},
      {"stats", [](Store& s) { (void)s.stats(); }},
      {"frontier", [](Store& s) { (void)s.frontier(); }},
      {"sync", [](Store& s) { (void)s.sync(); }},
      {"scan_events", [](Store& s) { (void)s.scan_events(1, 10); }},
      {"verify", [](Store& s) { (void)s.verify(); }},
      {"register_gate",
       [](Store& s) {
         (void)s.register_gate(
             Gate{"inner", [](const GateContext&) { return GateVerdict::allow(); }});
       }},
      {"begin_fence", [](Store& s) { (void)s.begin_fence(); }},
      {"close", [](Store& s) { (void)s.close(); }},
  };
  for (const Call& c : calls) {
    INFO("operation " << c.operation);
    AppendOptions options;
    options.gates.push_back(Gate{"nosy", [&](const GateContext&) {
                                   c.call(*store);
                                   return GateVerdict::allow();
                                 }});
    check_writes_nothing(*store, [&] {
      StoreError error = error_of(store->append({"a", ""}, kKind, "gated", options));
      CHECK(error.is(ErrorCode::GateReentrant));
      CHECK(error.field_string("gate") == "nosy");
      CHECK(error.field_string("operation") == c.operation);
      StoreError batch = error_of(store->append_batch(std::vector{item("a", "gated", options)}));
      check_item_failed(batch, 0, ErrorCode::GateReentrant);
      CHECK(batch.cause()->field_string("operation") == c.operation);
    });
  }
  // The store works on (close from the gate did not close it) and the scope was left.
  CHECK(store->stats().sequence_next == 2);
  append_ok(*store, {"a", ""}, "after");
  CHECK(store->read(2).ok());
  // Another store is not this one: a gate may use it.
  AppendOptions options;
  options.gates.push_back(
      Gate{"audit", [&](const GateContext& c) {
             auto r = other->append({"audit", ""}, kKind, std::string(c.payload));
             return r.ok() ? GateVerdict::allow() : GateVerdict::deny("audit");
           }});
  append_ok(*store, {"a", ""}, "audited", options);
  CHECK(other->stats().sequence_next == 2);
}

TEST_CASE("a gate that throws is GateFailed with what()", "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  append_ok(*store, {"a", ""}, "first");
  AppendOptions options;
  options.gates.push_back(Gate{"fragile", [](const GateContext&) -> GateVerdict {
                                 throw std::runtime_error("limit table missing");
                               }});
  AppendOptions odd;
  odd.gates.push_back(Gate{"odd", [](const GateContext&) -> GateVerdict { throw 42; }});
  check_writes_nothing(*store, [&] {
    StoreError error = error_of(store->append({"a", ""}, kKind, "x", options));
    CHECK(error.is(ErrorCode::GateFailed));
    CHECK(error.field_string("gate") == "fragile");
    REQUIRE(error.field_string("reason").has_value());
    CHECK(error.field_string("reason")->find("limit table missing") != std::string::npos);
    StoreError batch =
        error_of(store->append_batch(std::vector{item("b", "y"), item("a", "x", options)}));
    check_item_failed(batch, 1, ErrorCode::GateFailed);
    StoreError thrown = error_of(store->append({"a", ""}, kKind, "x", odd));
    CHECK(thrown.is(ErrorCode::GateFailed));
    CHECK(thrown.field_string("gate") == "odd");
  });
  append_ok(*store, {"a", ""}, "after");
}

TEST_CASE("gate stats count evaluations and denials and the time spent inside gates", "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  StoreStats before = store->stats();
  CHECK(before.gates_evaluated == 0);
  CHECK(before.gate_time_ns == 0);
  KEEL_REQUIRE_OK(store->register_gate(Gate{"slow", [](const GateContext&) {
                                              std::this_thread::sleep_for(
                                                  std::chrono::milliseconds(1));
                                              return GateVerdict::allow();
                                            }}));
  AppendOptions own;
  own.gates.push_back(deny_gate("no", "never"));
  append_ok(*store, {"a", ""}, "x");
  CHECK(error_of(store->append({"a", ""}, kKind, "y", own)).is(ErrorCode::GateDenied));
  append_ok(*store, {"a", ""}, "z");  // an append without gates of its own
  StoreStats after = store->stats();
  CHECK(after.gates_evaluated == 4);  // slow, slow + no, slow
  CHECK(after.gate_denials == 1);
  CHECK(after.gate_time_ns >= 3'000'000);  // three sleeps of 1 ms
}

TEST_CASE("order at the commit point: CAS before gates", "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  int calls = 0;
  AppendOptions options = expecting(5);
  options.gates.push_back(deny_gate("never", "no", &calls));
  CHECK(error_of(store->append({"a", ""}, kKind, "x", options)).is(ErrorCode::SequenceMismatch));
  CHECK(calls == 0);
  CHECK(store->stats().gates_evaluated == 0);
  std::vector<BatchItem> items{item("a", "x", options)};
  check_item_failed(error_of(store->append_batch(items)), 0, ErrorCode::SequenceMismatch);
  CHECK(calls == 0);
  options.expected_clock = 0;
  CHECK(error_of(store->append({"a", ""}, kKind, "x", options)).is(ErrorCode::GateDenied));
  CHECK(calls == 1);
}

// ---- batches ----

TEST_CASE("cause_item makes an earlier item of the batch the cause", "[write]") {
  TempDir dir;
  auto store = open_store(dir.path(), create_options());
  Receipt outside = append_ok(*store, {"x", ""}, "outside");
  AppendOptions caused_by_0;
  caused_by_0.cause_item = 0;
  AppendOptions caused_by_1;
  caused_by_1.cause_item = 1;
  AppendOptions external;
  external.causation_id = outside.event_id;
  std::vector<BatchItem> items{item("a", "root"), item("b", "effect", caused_by_0),
                               item("a", "effect of effect", caused_by_1),
                               item("c", "external", external)};
  std::vector<Receipt> receipts = batch_ok(*store, items);
  auto event = [&](size_t i) {
    auto got = store->get(receipts[i].event_id);
    if (!got.ok()) FAIL(got.error().to_string());
    return *got;
  };
  CHECK_FALSE(event(0).causation_id.has_value());
  CHECK(event(1).causation_id == std::optional<EventId>(receipts[0].event_id));
  CHECK(event(2).causation_id == std::optional<EventId>(receipts[1].event_id));
  CHECK(event(3).causation_id == std::optional<EventId>(outside.event_id));

  check_writes_nothing(*store, [&] {
    AppendOptions own;
    own.cause_item = 1;
    StoreError self =
        error_of(store->append_batch(std::vector{item("a", "0"), item("a", "1", own)}));
    check_item_failed(self, 1, ErrorCode::InvalidArgument);
    CHECK(self.cause()->field_string("argument") == "cause_item");
    AppendOptions later;
    later.cause_item = 2;
    check_item_failed(error_of(store->append_batch(
                          std::vector{item("a", "0"), item("a", "1", later), item("a", "2")})),
                      1, ErrorCode::InvalidArgument);
    AppendOptions both = caused_by_0;
    both.causation_id = outside.event_id;
    StoreError together =
        error_of(store->append_batch(std::vector{item("a", "0"), item("a", "1", both)}));
    check_item_failed(together, 1, ErrorCode::InvalidArgument);
    CHECK(together.cause()->field_string("argument") == "cause_item");
    // Outside a batch there is no earlier item.
    CHECK(
        error_of(store->append({"a", ""}, kKind, "1", caused_by_0)).is(ErrorCode::InvalidArgument));
  });
}

TEST_CASE("an item above the size limits is BatchItemTooLarge naming it", "[write]") {
  TempDir dir;
  StoreOptions options = create_options();
  options.payload_bytes_max = 128;
  options.metadata_bytes_max = 64;
  auto store = open_store(dir.path(), options);
  append_ok(*store, {"a", ""}, "first");
  check_writes_nothing(*store, [&] {
    std::vector<BatchItem> items{item("a", std::string(128, 'p')), item("a", "ok"),
                                 item("a", std::string(129, 'p'))};
    StoreError error = error_of(store->append_batch(items));
    CHECK(error.is(ErrorCode::BatchItemTooLarge));
    CHECK(error.error_class() == ErrorClass::Domain);
    CHECK(error.field_u64("index") == 2u);
    CHECK(error.field_string("what") == "payload");
    CHECK(error.field_u64("size") == 129u);
    CHECK(error.field_u64("limit") == 128u);
    AppendOptions meta;
    meta.metadata = std::string(65, 'm');
    std::vector<BatchItem> with_metadata{item("a", "ok"), item("a", "ok", meta)};
    StoreError metadata = error_of(store->append_batch(with_metadata));
    CHECK(metadata.is(ErrorCode::BatchItemTooLarge));
    CHECK(metadata.field_u64("index") == 1u);
    CHECK(metadata.field_string("what") == "metadata");
    CHECK(metadata.field_u64("size") == 65u);
    CHECK(metadata.field_u64("limit") == 64u);
  });
  // At the limits exactly, the batch goes in.
  AppendOptions meta;
  meta.metadata = std::string(64, 'm');
  batch_ok(*store, {item("a", std::string(128, 'p'), meta)});
}

// ---- every refusal together ----

TEST_CASE("every refusal leaves the log byte-identical and the next open uses the image",
          "[write]") {
  TempDir dir;
  std::vector<Receipt> written;
  {
    auto store = open_store(dir.path(), create_options());
    written.push_back(append_ok(*store, {"a", ""}, "one", keyed("k")));
    written.push_back(append_ok(*store, {"a", ""}, "two"));
    AppendOptions denied;
    denied.gates.push_back(deny_gate("no", "never"));
    AppendOptions reentrant;
    reentrant.gates.push_back(Gate{"nosy", [&](const GateContext&) {
                                     (void)store->stats();
                                     return GateVerdict::allow();
                                   }});
    AppendOptions thrower;
    thrower.gates.push_back(Gate{
        "throws", [](const GateContext&) -> GateVerdict { throw std::runtime_error("boom"); }});
    // Refusals on streams that have no event yet, too: they must not leave an empty stream behind.
    const std::vector<std::pair<const char*, std::function<bool()>>> refusals{
        {"CAS",
         [&] {
           return !store->append({"a", ""}, kKind, "x", expecting(0)).ok();
         }},
        {"CAS new",
         [&] {
           return !store->append({"new1", ""}, kKind, "x", expecting(3)).ok();
         }},
        {"gate",
         [&] {
           return !store->append({"new2", ""}, kKind, "x", denied).ok();
         }},
        {"reentrant",
         [&] {
           return !store->append({"new3", ""}, kKind, "x", reentrant).ok();
         }},
        {"throws",
         [&] {
           return !store->append({"a", ""}, kKind, "x", thrower).ok();
         }},
        {"conflict",
         [&] {
           return !store->append({"a", ""}, kKind, "other", keyed("k")).ok();
         }},
        {"batch CAS",
         [&] {
           return !store->append_batch(std::vector{item("new4", "x"), item("a", "y", expecting(7))})
                       .ok();
         }},
        {"batch gate",
         [&] {
           return !store->append_batch(std::vector{item("new5", "x"), item("new6", "y", denied)})
                       .ok();
         }},
        {"batch conflict",
         [&] {
           return !store->append_batch(std::vector{item("new7", "x", keyed("k")), item("a", "y")})
                       .ok();
         }},
        {"batch partial replay",
         [&] {
           return !store->append_batch(std::vector{item("a", "one", keyed("k")), item("new8", "y")})
                       .ok();
         }},
    };
    for (const auto& [what, refuse] : refusals) {
      INFO("refusal " << what);
      check_writes_nothing(*store, [&] { CHECK(refuse()); });
    }
    CHECK(store->stats().entities == 1);
    CHECK(store->stats().events == 2);
    KEEL_REQUIRE_OK(store->close());
  }
  auto store = open_store(dir.path(), create_options());
  CHECK(store->stats().index_source == "image");
  CHECK(store->stats().entities == 1);
  auto events = store->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(events);
  REQUIRE(events->size() == 2);
  CHECK((*events)[0].receipt() == written[0]);
  CHECK((*events)[1].receipt() == written[1]);
  auto report = store->verify();
  KEEL_REQUIRE_OK(report);
  CHECK(report->ok);
  // The refused appends took no clock either.
  CHECK(append_ok(*store, {"new1", ""}, "x", expecting(0)).entity_clock == 1);
  CHECK(append_ok(*store, {"a", ""}, "three", expecting(2)).entity_clock == 3);
}
