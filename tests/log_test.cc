// Log::open, the log layer's front door (src/log/log.h): the epoch file, the writer lock, read-only
// opens beside a writer, and a missing or damaged store. Byte edits go through the platform seam.
#include "log/log.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "format/event_body.h"
#include "format/format_constants.h"
#include "format/segment_header.h"
#include "format/sidecar.h"
#include "log/epoch_file.h"
#include "log/segment_files.h"
#include "test_support.h"

namespace keel::log {
namespace {

platform::FileSystem& posix() { return platform::posix_file_system(); }

class Events {
 public:
  format::EventBody make() {
    ++count_;
    format::EventBody e;
    e.event_id = EventId{0x10c, count_};
    e.entity = "cart:3";
    e.scope = "log";
    e.kind = 0x3001;
    e.entity_clock = count_;
    e.correlation_id = e.event_id;
    e.payload = "payload";
    return e;
  }

 private:
  uint64_t count_ = 0;
};

LogOptions writable() {
  LogOptions options;
  options.create_if_missing = true;
  options.writer.segment_size = 4096;
  return options;
}

LogOptions read_only() {
  LogOptions options;
  options.read_only = true;
  return options;
}

std::unique_ptr<Log> open_ok(const std::string& dir, const LogOptions& options,
                             std::vector<uint64_t>* sequences = nullptr) {
  RecordVisitor visit;
  if (sequences != nullptr) {
    visit = [sequences](const RecordPosition&, const format::DecodedFrame& frame) {
      sequences->push_back(frame.header.sequence);
    };
  }
  auto opened = Log::open(posix(), dir, options, visit);
  if (!opened.ok()) FAIL(opened.error().to_string());
  return std::move(opened).value();
}

uint64_t stored_epoch(const std::string& dir) {
  auto epoch = read_epoch(posix(), dir);
  REQUIRE(epoch.ok());
  REQUIRE(epoch->has_value());
  return **epoch;
}

void append(Log& log, Events& events, int count) {
  for (int i = 0; i < count; ++i)
    KEEL_REQUIRE_OK(log.writer()->append_event(events.make(), nullptr));
}

// A store with one segment of three synced events, closed.
void make_store(const std::string& dir) {
  Events events;
  auto log = open_ok(dir, writable());
  append(*log, events, 3);
  KEEL_REQUIRE_OK(log->close());
}

// Both a read-only and a writable open fail with `code`, class FailClosed, and change no file.
void require_fails_closed(const std::string& dir, ErrorCode code) {
  auto before = test::snapshot_directory(dir);
  for (const LogOptions& options : {read_only(), writable()}) {
    INFO((options.read_only ? "read-only open" : "writable open"));
    auto opened = Log::open(posix(), dir, options);
    REQUIRE_FALSE(opened.ok());
    INFO(opened.error().to_string());
    CHECK(opened.error().code() == code);
    CHECK(opened.error().error_class() == ErrorClass::FailClosed);
    CHECK(opened.error().field_string("path") == platform::join_path(dir, format::kEpochFileName));
    CHECK((test::snapshot_directory(dir) == before));
  }
}

TEST_CASE("Each writable open persists epoch + 1, read-only opens leave it", "[log]") {
  test::TempDir dir;
  Events events;
  {
    auto log = open_ok(dir.path(), writable());
    CHECK(log->epoch() == 1);
    CHECK(stored_epoch(dir.path()) == 1);
    CHECK(log->writer()->epoch() == 1);
    append(*log, events, 1);
    KEEL_REQUIRE_OK(log->close());
  }
  {
    // A crashed open (dropped without close) has persisted its epoch all the same.
    auto log = open_ok(dir.path(), writable());
    CHECK(log->epoch() == 2);
    append(*log, events, 1);
    KEEL_REQUIRE_OK(log->writer()->sync());
  }
  CHECK(stored_epoch(dir.path()) == 2);
  auto before = test::snapshot_directory(dir.path());
  for (int i = 0; i < 2; ++i) {
    auto log = open_ok(dir.path(), read_only());
    CHECK(log->epoch() == 2);
    CHECK(log->writer() == nullptr);
    CHECK(log->recovered().max_epoch == 2);
  }
  CHECK((test::snapshot_directory(dir.path()) == before));
  CHECK(stored_epoch(dir.path()) == 2);
  auto log = open_ok(dir.path(), writable());
  CHECK(log->epoch() == 3);
  CHECK(stored_epoch(dir.path()) == 3);
  // The segment keeps the epoch that created it; frames carry the epoch that wrote them.
  auto header_bytes = test::read_bytes(dir / segment_file_name(1));
  format::SegmentHeader header;
  REQUIRE(format::decode_segment_header(header_bytes, header, nullptr) == format::HeaderDecode::Ok);
  CHECK(header.epoch == 1);
  CHECK(log->recovered().max_epoch == 2);
}

TEST_CASE("A missing EPOCH beside existing segments is CorruptSidecar", "[log]") {
  test::TempDir dir;
  make_store(dir.path());
  KEEL_REQUIRE_OK(posix().remove(dir / format::kEpochFileName));
  require_fails_closed(dir.path(), ErrorCode::CorruptSidecar);
}

TEST_CASE("A damaged EPOCH fails closed", "[log]") {
  test::TempDir dir;
  make_store(dir.path());
  std::string epoch_path = dir / format::kEpochFileName;
  ErrorCode code = ErrorCode::CorruptSidecar;
  SECTION("a flipped payload byte") {
    test::flip_byte(epoch_path, format::kSidecarHeaderSize, 0x01);
  }
  SECTION("a flipped checksum byte") { test::flip_byte(epoch_path, 8); }
  SECTION("cut short") { test::truncate_file(epoch_path, format::kSidecarHeaderSize + 4); }
  SECTION("empty") { test::truncate_file(epoch_path, 0); }
  SECTION("a sidecar of another kind") {
    std::byte payload[8] = {};
    auto bytes = format::encode_sidecar(format::SidecarKind::Cursor, kEpochFileVersion, payload);
    test::truncate_file(epoch_path, 0);
    test::write_bytes(epoch_path, 0, bytes);
  }
  SECTION("a newer version") {
    std::byte payload[8] = {std::byte{1}};
    auto bytes = format::encode_sidecar(format::SidecarKind::Epoch, kEpochFileVersion + 1, payload);
    test::truncate_file(epoch_path, 0);
    test::write_bytes(epoch_path, 0, bytes);
    code = ErrorCode::UnsupportedVersion;
  }
  require_fails_closed(dir.path(), code);
}

TEST_CASE("A missing store directory is NotFound unless create_if_missing", "[log]") {
  test::TempDir dir;
  std::string store = dir / "absent";
  LogOptions options = writable();
  options.create_if_missing = false;
  for (const LogOptions& o : {options, read_only()}) {
    auto opened = Log::open(posix(), store, o);
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.error().code() == ErrorCode::NotFound);
    CHECK(opened.error().field_string("key") == store);
    CHECK_FALSE(*posix().exists(store));
  }
  auto created = open_ok(store, writable());
  CHECK(*posix().exists(platform::join_path(store, format::kEpochFileName)));
}

TEST_CASE("A directory that holds no store is NotFound unless a writable open creates one",
          "[log]") {
  test::TempDir dir;
  std::ofstream(dir / "notes.txt") << "not a store";
  const auto before = test::snapshot_directory(dir.path());
  LogOptions options = writable();
  options.create_if_missing = false;
  for (const LogOptions& o : {options, read_only()}) {
    auto opened = Log::open(posix(), dir.path(), o);
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.error().code() == ErrorCode::NotFound);
    CHECK(opened.error().field_string("key") == dir.path());
    CHECK_THAT(opened.error().message(), Catch::Contains("keel store"));
    CHECK((test::snapshot_directory(dir.path()) == before));  // nothing created: no LOCK, no EPOCH
  }
  auto created = open_ok(dir.path(), writable());  // create_if_missing
  KEEL_REQUIRE_OK(created->close());
  CHECK(Log::open(posix(), dir.path(), read_only()).ok());
  CHECK(Log::open(posix(), dir.path(), options).ok());
}

TEST_CASE("A second writable open is StoreLocked until the first closes", "[log]") {
  test::TempDir dir;
  auto first = open_ok(dir.path(), writable());
  auto before = test::snapshot_directory(dir.path());
  auto second = Log::open(posix(), dir.path(), writable());
  REQUIRE_FALSE(second.ok());
  const StoreError& error = second.error();
  CHECK(error.code() == ErrorCode::StoreLocked);
  CHECK(error.error_class() == ErrorClass::Domain);
  CHECK(error.field_string("path") == dir.path());
  CHECK(error.field_string("mode") == "writable");
  CHECK_THAT(error.message(), Catch::Contains(dir.path()) && Catch::Contains("writable"));
  // It names the holder (Linux tells through /proc/locks): here, this process.
  CHECK(error.field_string("holder") == "this process, pid " + std::to_string(::getpid()));
  // The refused open wrote nothing: the epoch is still the first open's.
  CHECK((test::snapshot_directory(dir.path()) == before));
  CHECK(stored_epoch(dir.path()) == 1);

  SECTION("after close()") { KEEL_REQUIRE_OK(first->close()); }
  SECTION("after the first is dropped without close (a crash)") { first.reset(); }
  auto third = open_ok(dir.path(), writable());
  CHECK(third->epoch() == 2);
}

TEST_CASE("A read-only open beside the writer sees the synced prefix", "[log]") {
  test::TempDir dir;
  Events events;
  auto writer = open_ok(dir.path(), writable());
  append(*writer, events, 3);
  KEEL_REQUIRE_OK(writer->writer()->sync());
  append(*writer, events, 2);  // pending: not yet handed to the OS
  {
    std::vector<uint64_t> sequences;
    auto reader = open_ok(dir.path(), read_only(), &sequences);
    CHECK(reader->epoch() == writer->epoch());
    CHECK(reader->recovered().next_sequence == 4);
    CHECK(reader->recovered().tail_rule == RecoveryRule::ZeroFilledTail);
    CHECK(reader->recovered().actions.empty());
    CHECK(sequences == std::vector<uint64_t>{1, 2, 3});
  }
  KEEL_REQUIRE_OK(writer->writer()->sync());
  std::vector<uint64_t> sequences;
  auto reader = open_ok(dir.path(), read_only(), &sequences);
  CHECK(reader->recovered().next_sequence == 6);
  CHECK(sequences == std::vector<uint64_t>{1, 2, 3, 4, 5});
  // The writer is unaffected by its readers.
  append(*writer, events, 1);
  KEEL_REQUIRE_OK(writer->close());
  CHECK(open_ok(dir.path(), read_only())->recovered().next_sequence == 7);
}

TEST_CASE("Two threads racing a writable open: exactly one wins, the other is StoreLocked",
          "[concurrency]") {
  for (int round = 0; round < 8; ++round) {
    test::TempDir dir;
    std::optional<Result<std::unique_ptr<Log>>> results[2];
    std::latch start(2);
    auto race = [&](int i) {
      start.arrive_and_wait();
      results[i].emplace(Log::open(posix(), dir.path(), writable()));
    };
    std::thread a(race, 0);
    std::thread b(race, 1);
    a.join();
    b.join();
    int winners = 0;
    for (auto& result : results) {
      REQUIRE(result.has_value());
      if (result->ok()) {
        ++winners;
        CHECK(result->value()->epoch() == 1);
      } else {
        INFO(result->error().to_string());
        CHECK(result->error().code() == ErrorCode::StoreLocked);
      }
    }
    CHECK(winners == 1);
  }
}

}  // namespace
}  // namespace keel::log
