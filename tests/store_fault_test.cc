// Store-level fault tests on the fault-injecting file system: what the public API returns when a
// write or an fdatasync fails, that the writer stays poisoned, that durable (and so visibility under
// AfterDurable) freezes, and what a power loss after the failure leaves.
#include <catch2/catch.hpp>
#include <string>

#include "keel/keel.h"
#include "platform/fault_file_system.h"
#include "test_support.h"

using namespace keel;

namespace {

const EventKind kKind = EventKind::make(1, 1);

StoreOptions fault_options(platform::FaultFileSystem& fs) {
  StoreOptions options;
  options.file_system = &fs;
  options.create_if_missing = true;
  options.segment_size = 8192;
  options.id_seed = 3;
  return options;
}

}  // namespace

TEST_CASE("EIO on fdatasync during an append: in doubt, then poisoned, durable freezes", "[fault]") {
  platform::FaultFileSystem fs;
  auto opened = Store::open("/store", fault_options(fs));
  KEEL_REQUIRE_OK(opened);
  auto& store = **opened;
  auto first = store.append({"a", ""}, kKind, "durable");
  KEEL_REQUIRE_OK(first);
  fs.fail_nth(platform::FaultOp::SyncData, 1);
  auto doubtful = store.append({"a", ""}, kKind, "in doubt");
  REQUIRE(!doubtful.ok());
  INFO(doubtful.error().to_string());
  CHECK(doubtful.error().is(ErrorCode::WriteInDoubt));
  CHECK(doubtful.error().error_class() == ErrorClass::Indeterminate);
  CHECK(doubtful.error().field_u64("sequence") == 2u);
  CHECK(doubtful.error().root_cause().field_string("operation") == "fdatasync");
  // Poisoned: every later append fails at once, FailClosed, naming the original cause, even though
  // the file system works again; nothing more becomes durable or visible.
  fs.clear_faults();
  auto refused = store.append({"a", ""}, kKind, "refused");
  REQUIRE(!refused.ok());
  CHECK(refused.error().is(ErrorCode::WriterPoisoned));
  CHECK(refused.error().error_class() == ErrorClass::FailClosed);
  CHECK(refused.error().root_cause().field_string("operation") == "fdatasync");
  CHECK(store.sync().error().is(ErrorCode::WriterPoisoned));
  CHECK(store.stats().sequence_durable == 1);
  CHECK(store.stats().sequence_visible == 1);
  CHECK(store.read(2).error().is(ErrorCode::NotFound));  // in doubt: never visible here
  // A power loss, then reopen: the acknowledged event is there with its hash; the in-doubt one is
  // whole or absent; the refused one is absent.
  fs.crash(7);
  opened->reset();
  auto reopened = Store::open("/store", fault_options(fs));
  KEEL_REQUIRE_OK(reopened);
  auto events = (*reopened)->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(events);
  REQUIRE(!events->empty());
  CHECK((*events)[0].receipt() == *first);
  CHECK(events->size() <= 2);
  if (events->size() == 2) CHECK((*events)[1].payload == "in doubt");
  auto report = (*reopened)->verify();
  KEEL_REQUIRE_OK(report);
  CHECK(report->ok);
}

TEST_CASE("EIO on the write of a batch: in doubt as a whole, refused batches leave nothing",
          "[fault]") {
  platform::FaultFileSystem fs;
  auto opened = Store::open("/store", fault_options(fs));
  KEEL_REQUIRE_OK(opened);
  auto& store = **opened;
  KEEL_REQUIRE_OK(store.append({"a", ""}, kKind, "before"));
  std::vector<BatchItem> items(3, BatchItem{{"a", ""}, kKind, "batched", {}});
  fs.fail_nth(platform::FaultOp::Write, 1);
  auto batch = store.append_batch(items);
  REQUIRE(!batch.ok());
  CHECK(batch.error().is(ErrorCode::WriteInDoubt));
  CHECK(batch.error().error_class() == ErrorClass::Indeterminate);
  CHECK(batch.error().field_u64("sequence") == 4u);  // the batch's last sequence
  fs.clear_faults();
  CHECK(store.append_batch(items).error().is(ErrorCode::WriterPoisoned));
  CHECK(store.stats().sequence_visible == 1);
  fs.crash(11);
  opened->reset();
  auto reopened = Store::open("/store", fault_options(fs));
  KEEL_REQUIRE_OK(reopened);
  auto events = (*reopened)->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(events);
  // The failed write handed nothing to the file: only the first event exists.
  REQUIRE(events->size() == 1);
  CHECK((*events)[0].payload == "before");
}

TEST_CASE("ENOSPC at a rotation's preallocation is NoSpace, Retryable, and does not poison",
          "[fault]") {
  platform::FaultFileSystem fs;
  auto opened = Store::open("/store", fault_options(fs));
  KEEL_REQUIRE_OK(opened);
  auto& store = **opened;
  // Room for the first segment's preallocation and its writes, not for a second segment.
  fs.limit_space(8192 + 4096);
  std::string payload(200, 'p');
  Result<Receipt> last = store.append({"a", ""}, kKind, payload);
  int appended = 0;
  while (last.ok() && appended < 200) {
    ++appended;
    last = store.append({"a", ""}, kKind, payload);
  }
  REQUIRE(!last.ok());
  INFO(last.error().to_string());
  CHECK(last.error().is(ErrorCode::NoSpace));
  CHECK(last.error().error_class() == ErrorClass::Retryable);
  uint64_t visible = store.stats().sequence_visible;
  CHECK(visible == static_cast<uint64_t>(appended));
  // Space comes back: the same append succeeds, with the next sequence (nothing was written).
  fs.clear_faults();
  auto retried = store.append({"a", ""}, kKind, payload);
  KEEL_REQUIRE_OK(retried);
  CHECK(retried->sequence == visible + 1);
  auto report = store.verify();
  KEEL_REQUIRE_OK(report);
  CHECK(report->ok);
  // A power loss then: every acknowledged append (all were Durable) is there, the refused one
  // took no sequence.
  fs.crash(5);
  opened->reset();
  auto reopened = Store::open("/store", fault_options(fs));
  KEEL_REQUIRE_OK(reopened);
  auto events = (*reopened)->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(events);
  REQUIRE(events->size() == static_cast<size_t>(appended) + 1);
  CHECK(events->back().receipt() == *retried);
}
