// One rule for read errors on every file beside the log: a sidecar the disk cannot read back is the
// read's error (Io, Retryable, naming the path), never taken for a damaged one (CorruptSidecar,
// FailClosed) or a missing one, whether or not a retention floor makes it authoritative. And a
// retention whose RETAIN was written but whose removals could not be made durable is in doubt
// (OperationInDoubt, Indeterminate), not a plain Io: the floor moved.
#include <catch2/catch.hpp>
#include <string>

#include "format/format_constants.h"
#include "keel/keel.h"
#include "platform/fault_file_system.h"
#include "test_support.h"

namespace keel {
namespace {

constexpr char kDir[] = "/store";
constexpr EventKind kKind = EventKind::make(1, 1);

StoreOptions options_on(platform::FaultFileSystem& fs) {
  StoreOptions options;
  options.create_if_missing = true;
  options.file_system = &fs;
  options.segment_size = 4096;
  options.id_seed = 3;
  return options;
}

// A closed store with every sidecar: EPOCH, END, INDEX, IDEMPOTENCY and, with `floor`, RETAIN.
void write_store(platform::FaultFileSystem& fs, bool floor) {
  auto store = Store::open(kDir, options_on(fs));
  KEEL_REQUIRE_OK(store);
  for (int i = 0; i < 60; ++i) {
    AppendOptions keyed;
    keyed.idempotency_key = "key-" + std::to_string(i);
    KEEL_REQUIRE_OK((*store)->append({"e", ""}, kKind, std::string(100, 'p'), keyed));
  }
  if (floor) KEEL_REQUIRE_OK(retain_first(**store, 30));
  KEEL_REQUIRE_OK((*store)->close());
}

TEST_CASE("a sidecar the disk cannot read is Io naming it, with or without a retention floor",
          "[sidecar]") {
  const bool floor = GENERATE(false, true);
  const char* name = GENERATE(format::kEpochFileName, format::kLogEndFileName,
                              format::kIndexImageFileName, format::kIdempotencyFileName,
                              format::kRetentionFloorFileName);
  platform::FaultFileSystem fs;
  write_store(fs, floor);
  const std::string path = std::string(kDir) + "/" + name;
  if (!fs.exists(path).value()) {
    REQUIRE(std::string(name) == format::kRetentionFloorFileName);  // only without a floor
    return;
  }
  fs.fail_reads_of(path);
  for (bool read_only : {false, true}) {
    INFO(name << (floor ? " with a floor, " : " without a floor, ")
              << (read_only ? "read-only" : "writable"));
    StoreOptions options = options_on(fs);
    options.read_only = read_only;
    auto opened = Store::open(kDir, options);
    REQUIRE_FALSE(opened.ok());
    INFO(opened.error().to_string());
    CHECK(opened.error().is(ErrorCode::Io));
    CHECK(opened.error().error_class() == ErrorClass::Retryable);
    CHECK(opened.error().field_string("path") == path);
  }
  fs.clear_faults();  // the disk reads again: nothing was rebuilt or changed meanwhile
  auto reopened = Store::open(kDir, options_on(fs));
  KEEL_REQUIRE_OK(reopened);
  CHECK((*reopened)->stats().sequence_next == 61);
}

TEST_CASE("retention whose removal cannot be synced is OperationInDoubt, the floor holds",
          "[sidecar]") {
  platform::FaultFileSystem fs;
  auto store = Store::open(kDir, options_on(fs));
  KEEL_REQUIRE_OK(store);
  for (int i = 0; i < 60; ++i) {
    KEEL_REQUIRE_OK((*store)->append({"e", ""}, kKind, std::string(100, 'p')));
  }
  // The directory syncs of a retention: IDEMPOTENCY, INDEX, RETAIN, then the removals'.
  fs.fail_nth(platform::FaultOp::SyncDirectory, 4);
  auto removed = retain_first(**store, 30);
  REQUIRE_FALSE(removed.ok());
  INFO(removed.error().to_string());
  CHECK(removed.error().is(ErrorCode::OperationInDoubt));
  CHECK(removed.error().error_class() == ErrorClass::Indeterminate);
  REQUIRE(removed.error().cause() != nullptr);
  CHECK(removed.error().cause()->is(ErrorCode::Io));
  // The floor moved: reads below it are NotFound, not errors of missing files.
  const uint64_t first = (*store)->stats().first_retained_sequence;
  CHECK(first > 1);
  CHECK((*store)->read(first - 1).error().is(ErrorCode::NotFound));
  KEEL_REQUIRE_OK((*store)->read(first));
  KEEL_REQUIRE_OK((*store)->close());
  auto reopened = Store::open(kDir, options_on(fs));
  KEEL_REQUIRE_OK(reopened);
  CHECK((*reopened)->stats().first_retained_sequence == first);
  CHECK((*reopened)->stats().sequence_next == 61);
}

// A segment the disk cannot read makes an entity stream Io naming it (its reads go in a batch),
// never a shorter stream.
TEST_CASE("an entity stream whose segment cannot be read is Io, not fewer events", "[store]") {
  platform::FaultFileSystem fs;
  write_store(fs, false);
  auto store = Store::open(kDir, options_on(fs));
  KEEL_REQUIRE_OK(store);
  size_t seen = 0;
  KEEL_REQUIRE_OK((*store)->entity_stream("e", 0, 1, UINT64_MAX, [&](const EventView&) {
    ++seen;
    return true;
  }));
  REQUIRE(seen == 60);
  auto names = fs.list_directory(kDir);
  KEEL_REQUIRE_OK(names);
  std::string segment;
  for (const std::string& name : *names) {
    if (name.starts_with("segment-")) segment = std::string(kDir) + "/" + name;
  }
  REQUIRE_FALSE(segment.empty());
  fs.fail_reads_of(segment);
  seen = 0;
  Status read = (*store)->entity_stream("e", 0, 1, UINT64_MAX, [&](const EventView&) {
    ++seen;
    return true;
  });
  REQUIRE_FALSE(read.ok());
  INFO(read.error().to_string());
  CHECK(read.error().is(ErrorCode::Io));
  CHECK(read.error().field_string("path") == segment);
  CHECK(seen == 0);
}

}  // namespace
}  // namespace keel
