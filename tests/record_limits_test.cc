// Record limits: a frame body is at most 64 MiB (segments/FORMAT.md 4.1). Options that would let an
// append need a larger record are refused at open, at the edge of the bound; the largest record
// the options allow is acknowledged AND read back after a reopen (an acknowledged record the format
// cannot hold would be taken for a torn tail and dropped).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "format/record.h"
#include "keel/keel.h"
#include "test_support.h"

namespace keel {
namespace {

using test::TempDir;

constexpr EventKind kKind = EventKind::make(1, 1);
// payload_bytes_max + metadata_bytes_max at most (include/keel/options.h).
constexpr uint64_t kEventBytesMax = (64u << 20) - 1669;
// batch_bytes_max at most, for batch_items_max = items.
constexpr uint64_t batch_bytes_limit(uint64_t items) { return (64u << 20) - 5 - 256 * items; }

StoreOptions big_options() {
  StoreOptions options;
  options.create_if_missing = true;
  options.segment_size = 160ull << 20;  // room for the largest record
  return options;
}

void expect_refused(const TempDir& dir, const StoreOptions& options, const std::string& argument) {
  auto opened = Store::open(dir / "store", options);
  REQUIRE(!opened.ok());
  CHECK(opened.error().is(ErrorCode::InvalidArgument));
  CHECK(opened.error().field_string("argument") == argument);
  CHECK(opened.error().message().find("64 MiB") != std::string::npos);
}

void expect_opens(const TempDir& dir, const StoreOptions& options) {
  auto opened = Store::open(dir / "store", options);
  if (!opened.ok()) FAIL(opened.error().to_string());
  KEEL_REQUIRE_OK((*opened)->close());
}

TEST_CASE("the bounds match the format's own bound on a record", "[limits]") {
  CHECK(format::event_record_variable_bytes_max(1) - kEntityMaxBytes - kScopeMaxBytes -
            kIdempotencyKeyBytesMax ==
        kEventBytesMax);
  CHECK(format::event_record_variable_bytes_max(1000) == batch_bytes_limit(1000));
  CHECK(format::event_record_variable_bytes_max(262'143) == 251);
  CHECK(format::event_record_variable_bytes_max(262'144) == 0);
}

TEST_CASE("open refuses per-event limits a record cannot hold, at the edge", "[limits]") {
  TempDir dir;
  StoreOptions options = big_options();
  options.metadata_bytes_max = 1000;
  options.payload_bytes_max = static_cast<uint32_t>(kEventBytesMax - 1000 - 1);
  expect_opens(dir, options);
  options.payload_bytes_max += 1;  // exactly the bound
  expect_opens(dir, options);
  options.payload_bytes_max += 1;
  expect_refused(dir, options, "payload_bytes_max");
  // The reports: 200 MiB payloads with 1 GiB segments, and 4 GiB payloads.
  options.payload_bytes_max = 200u << 20;
  options.segment_size = 1ull << 30;
  expect_refused(dir, options, "payload_bytes_max");
  options.payload_bytes_max = UINT32_MAX;
  options.metadata_bytes_max = UINT32_MAX;
  expect_refused(dir, options, "payload_bytes_max");
}

TEST_CASE("open refuses batch limits a record cannot hold, at the edge", "[limits]") {
  TempDir dir;
  StoreOptions options = big_options();
  options.batch_items_max = 1000;
  options.batch_bytes_max = batch_bytes_limit(1000) - 1;
  expect_opens(dir, options);
  options.batch_bytes_max += 1;
  expect_opens(dir, options);
  options.batch_bytes_max += 1;
  expect_refused(dir, options, "batch_bytes_max");
  // A million events cannot share one record, whatever their size (the report).
  options.batch_items_max = 1'048'576;
  options.batch_bytes_max = 1ull << 30;
  expect_refused(dir, options, "batch_items_max");
  options.batch_items_max = 262'144;
  options.batch_bytes_max = 0;
  expect_refused(dir, options, "batch_items_max");
  options.batch_items_max = 262'143;
  options.batch_bytes_max = 251;
  expect_opens(dir, options);
  options.batch_bytes_max = 252;
  expect_refused(dir, options, "batch_bytes_max");
}

TEST_CASE("batch_bytes_max counts entity, scope and key bytes too", "[limits]") {
  TempDir dir;
  StoreOptions options = big_options();
  options.batch_bytes_max = 20;
  auto store = Store::open(dir / "store", options);
  KEEL_REQUIRE_OK(store);
  std::vector<BatchItem> items(2, BatchItem{{"entity", "scope"}, kKind, "p", {}});  // 12 x 2 = 24
  auto refused = (*store)->append_batch(items);
  REQUIRE(!refused.ok());
  CHECK(refused.error().is(ErrorCode::PayloadTooLarge));
  CHECK(refused.error().field_u64("size") == 24u);
  items.pop_back();
  KEEL_REQUIRE_OK((*store)->append_batch(items));
}

// Every variable field at its largest: the worst case the options allow.
Coordinate widest_coordinate(char fill) {
  return {std::string(kEntityMaxBytes, fill), std::string(kScopeMaxBytes, 's')};
}
AppendOptions widest_options(char fill, uint32_t metadata_bytes) {
  AppendOptions options;
  options.idempotency_key = std::string(kIdempotencyKeyBytesMax, fill);
  options.metadata = std::string(metadata_bytes, 'm');
  options.causation_id = EventId{7, 7};
  options.lane = 63;
  return options;
}

TEST_CASE("the largest event the options allow is acknowledged and survives a reopen", "[limits]") {
  TempDir dir;
  StoreOptions options = big_options();
  options.metadata_bytes_max = 64u << 10;
  options.payload_bytes_max = static_cast<uint32_t>(kEventBytesMax - options.metadata_bytes_max);
  const std::string payload(options.payload_bytes_max, 'p');
  {
    auto store = Store::open(dir / "store", options);
    KEEL_REQUIRE_OK(store);
    auto receipt = (*store)->append(widest_coordinate('e'), kKind, payload,
                                    widest_options('k', options.metadata_bytes_max));
    KEEL_REQUIRE_OK(receipt);
    KEEL_REQUIRE_OK((*store)->close());
  }
  std::remove((dir / "store/INDEX").c_str());  // recover from the log itself
  auto store = Store::open(dir / "store", options);
  KEEL_REQUIRE_OK(store);
  CHECK((*store)->stats().recovery_actions.empty());
  auto event = (*store)->read(1);
  KEEL_REQUIRE_OK(event);
  CHECK(event->payload == payload);
}

TEST_CASE("the largest batch the options allow is acknowledged and survives a reopen", "[limits]") {
  TempDir dir;
  StoreOptions options = big_options();
  options.batch_items_max = 1000;
  options.batch_bytes_max = batch_bytes_limit(1000);
  options.payload_bytes_max = 1u << 20;
  options.metadata_bytes_max = 1000;
  // 1000 widest items whose variable bytes add up to exactly batch_bytes_max.
  const uint64_t fixed_per_item = kEntityMaxBytes + kScopeMaxBytes + kIdempotencyKeyBytesMax + 1000;
  const uint64_t payload_total = options.batch_bytes_max - 1000 * fixed_per_item;
  std::vector<std::string> payloads(1000, std::string(payload_total / 1000, 'p'));
  payloads.back().append(payload_total % 1000, 'q');
  std::vector<BatchItem> items;
  for (size_t i = 0; i < payloads.size(); ++i) {
    char fill = static_cast<char>('A' + i % 26);
    AppendOptions item_options = widest_options(fill, 1000);
    item_options.idempotency_key->replace(0, 8, std::to_string(10'000'000 + i));
    item_options.causation_id.reset();
    items.push_back(BatchItem{widest_coordinate(fill), kKind, payloads[i], item_options});
  }
  {
    auto store = Store::open(dir / "store", options);
    KEEL_REQUIRE_OK(store);
    KEEL_REQUIRE_OK((*store)->append_batch(items));
    KEEL_REQUIRE_OK((*store)->close());
  }
  std::remove((dir / "store/INDEX").c_str());
  auto store = Store::open(dir / "store", options);
  KEEL_REQUIRE_OK(store);
  CHECK((*store)->stats().recovery_actions.empty());
  CHECK((*store)->stats().events == 1000);
  auto last = (*store)->read(1000);
  KEEL_REQUIRE_OK(last);
  CHECK(last->payload == payloads.back());
}

}  // namespace
}  // namespace keel
