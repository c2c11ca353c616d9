// FaultFileSystem (src/platform/fault_file_system.h): each injected fault fires exactly at the
// armed call, reads see the page cache, and crash() leaves what a power loss leaves: synced bytes
// intact, unsynced pages dropped / kept / zeroed, unsynced directory changes and sizes undone; a
// stalled sync blocks only its caller until released.
#include "platform/fault_file_system.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "test_support.h"

namespace keel::platform {
namespace {

const std::string kDir = "/disk";

// The errno field, stored as a signed integer like PosixFileSystem stores it.
std::optional<int64_t> errno_of(const StoreError& error) {
  const auto* value = error.field("errno");
  if (value == nullptr) return std::nullopt;
  if (const auto* number = std::get_if<int64_t>(value)) return *number;
  return std::nullopt;
}

std::vector<std::byte> filled(size_t size, uint8_t value) {
  return std::vector<std::byte>(size, std::byte{value});
}

std::unique_ptr<File> open_ok(FaultFileSystem& fs, const std::string& path,
                              OpenMode mode = OpenMode::CreateOrOpen) {
  auto opened = fs.open(path, mode);
  if (!opened.ok()) FAIL(opened.error().to_string());
  return std::move(opened).value();
}

void require_eio(const Status& status, std::string_view operation) {
  REQUIRE_FALSE(status.ok());
  CHECK(status.error().is(ErrorCode::Io));
  CHECK(errno_of(status.error()) == int64_t{EIO});
  CHECK(status.error().field_string("operation") == std::string(operation));
  CHECK(status.error().field_string("path").has_value());
  CHECK(status.error().field_string("detail").has_value());
}

// A file of `pages` pages of `value`, synced, with its directory entry synced.
std::unique_ptr<File> synced_file(FaultFileSystem& fs, const std::string& path, size_t pages,
                                  uint8_t value) {
  auto file = open_ok(fs, path);
  KEEL_REQUIRE_OK(file->write_at(0, filled(pages * kFaultPageSize, value)));
  KEEL_REQUIRE_OK(file->sync_data());
  KEEL_REQUIRE_OK(fs.sync_directory(kDir));
  return file;
}

// Runs file.sync_data() on a thread of its own; join() returns its status. Destroyed unjoined (a
// failed REQUIRE), it releases the stall first so the test ends instead of hanging.
class SyncThread {
 public:
  SyncThread(FaultFileSystem& fs, File& file)
      : fs_(fs), thread_([this, &file] {
          status_ = file.sync_data();
          returned_ = true;
        }) {}
  ~SyncThread() {
    if (!thread_.joinable()) return;
    fs_.stall_syncs(false);
    thread_.join();
  }
  bool returned() const { return returned_; }
  Status join() {
    thread_.join();
    return status_;
  }

 private:
  FaultFileSystem& fs_;
  std::atomic<bool> returned_{false};
  Status status_;
  std::thread thread_;  // last: it starts once the members it writes exist
};

constexpr std::chrono::seconds kStallWait{10};

TEST_CASE("FaultFileSystem: EIO fires at the n-th call of each kind, not before", "[fault]") {
  FaultFileSystem fs;
  KEEL_REQUIRE_OK(fs.create_directory(kDir));
  auto file = open_ok(fs, kDir + "/a");
  auto byte = filled(1, 7);

  SECTION("write") {
    fs.fail_nth(FaultOp::Write, 3);
    KEEL_REQUIRE_OK(file->write_at(0, byte));
    KEEL_REQUIRE_OK(file->write_at(1, byte));
    Status third = file->write_at(2, byte);
    require_eio(third, "pwrite");
    CHECK(third.error().field_u64("written") == 0u);
    CHECK(fs.contents(kDir + "/a").size() == 2);  // the failed write changed nothing
    KEEL_REQUIRE_OK(file->write_at(2, byte));     // only the third
  }
  SECTION("sync_data") {
    KEEL_REQUIRE_OK(fs.sync_directory(kDir));
    fs.fail_nth(FaultOp::SyncData, 2);
    KEEL_REQUIRE_OK(file->sync_data());
    KEEL_REQUIRE_OK(file->write_at(0, byte));
    require_eio(file->sync_data(), "fdatasync");
    CHECK(fs.durable_contents(kDir + "/a") == std::vector<std::byte>());  // nothing reached disk
    KEEL_REQUIRE_OK(file->sync_data());
  }
  SECTION("rename") {
    KEEL_REQUIRE_OK(file->write_at(0, byte));
    fs.fail_nth(FaultOp::Rename, 2);
    KEEL_REQUIRE_OK(fs.rename(kDir + "/a", kDir + "/b"));
    Status second = fs.rename(kDir + "/b", kDir + "/c");
    require_eio(second, "rename");
    CHECK(*fs.exists(kDir + "/b"));
    CHECK_FALSE(*fs.exists(kDir + "/c"));
    KEEL_REQUIRE_OK(fs.rename(kDir + "/b", kDir + "/c"));
  }
  SECTION("sync_directory") {
    fs.fail_nth(FaultOp::SyncDirectory, 1);
    require_eio(fs.sync_directory(kDir), "fsync directory");
    CHECK_FALSE(fs.durable_contents(kDir + "/a").has_value());  // the create is still not durable
    KEEL_REQUIRE_OK(fs.sync_directory(kDir));
    CHECK(fs.durable_contents(kDir + "/a").has_value());
  }
  SECTION("every call from the n-th on") {
    fs.fail_from_nth(FaultOp::SyncData, 2);
    KEEL_REQUIRE_OK(file->sync_data());
    for (int i = 0; i < 5; ++i) require_eio(file->sync_data(), "fdatasync");
    fs.clear_faults();
    KEEL_REQUIRE_OK(file->sync_data());
  }
  SECTION("n counts from arming, per kind") {
    KEEL_REQUIRE_OK(file->write_at(0, byte));
    KEEL_REQUIRE_OK(file->write_at(0, byte));
    uint64_t writes_before = fs.calls(FaultOp::Write);
    fs.fail_nth(FaultOp::Write, 1);
    KEEL_REQUIRE_OK(file->sync_data());  // another kind does not advance the write count
    require_eio(file->write_at(0, byte), "pwrite");
    CHECK(fs.calls(FaultOp::Write) == writes_before + 1);
  }
}

TEST_CASE("FaultFileSystem: a short write writes a prefix and reports it", "[fault]") {
  FaultFileSystem fs;
  KEEL_REQUIRE_OK(fs.create_directory(kDir));
  auto file = open_ok(fs, kDir + "/a");
  fs.short_write(2, 3);
  KEEL_REQUIRE_OK(file->write_at(0, filled(8, 1)));
  Status shorted = file->write_at(8, filled(8, 2));
  require_eio(shorted, "pwrite");
  CHECK(shorted.error().field_u64("written") == 3u);
  auto bytes = fs.contents(kDir + "/a");
  REQUIRE(bytes.size() == 11);
  CHECK(bytes[10] == std::byte{2});
  KEEL_REQUIRE_OK(file->write_at(11, filled(5, 2)));  // only the second write was short
  CHECK(fs.contents(kDir + "/a") == [] {
    auto expected = filled(16, 2);
    std::fill(expected.begin(), expected.begin() + 8, std::byte{1});
    return expected;
  }());
}

TEST_CASE("FaultFileSystem: NoSpace once more than the limit would be written", "[fault]") {
  FaultFileSystem fs;
  KEEL_REQUIRE_OK(fs.create_directory(kDir));
  auto file = open_ok(fs, kDir + "/a");
  fs.limit_space(100);
  KEEL_REQUIRE_OK(file->write_at(0, filled(60, 1)));
  KEEL_REQUIRE_OK(file->write_at(60, filled(40, 1)));  // exactly the limit: fine
  Status full = file->write_at(100, filled(1, 1));
  REQUIRE_FALSE(full.ok());
  CHECK(full.error().is(ErrorCode::NoSpace));
  CHECK(errno_of(full.error()) == int64_t{ENOSPC});
  CHECK(full.error().field_string("operation") == std::string("pwrite"));
  CHECK(fs.contents(kDir + "/a").size() == 100);
  Status allocated = file->allocate(0, 200);
  REQUIRE_FALSE(allocated.ok());
  CHECK(allocated.error().is(ErrorCode::NoSpace));
  KEEL_REQUIRE_OK(file->allocate(0, 100));  // reserves nothing new
  fs.clear_faults();
  KEEL_REQUIRE_OK(file->allocate(0, 200));
}

TEST_CASE("FaultFileSystem: reads see the page cache, the disk only what was synced", "[fault]") {
  FaultFileSystem fs;
  KEEL_REQUIRE_OK(fs.create_directory(kDir));
  auto file = synced_file(fs, kDir + "/a", 1, 1);
  KEEL_REQUIRE_OK(file->write_at(0, filled(4, 9)));
  std::vector<std::byte> out(4);
  REQUIRE(*file->read_at(0, out) == 4);
  CHECK(out == filled(4, 9));
  CHECK(fs.durable_contents(kDir + "/a") == filled(kFaultPageSize, 1));
}

TEST_CASE("FaultFileSystem: crash keeps synced bytes, each unsynced page has one fate", "[fault]") {
  constexpr size_t kPages = 16;
  constexpr size_t kHalf = kFaultPageSize / 2;
  uint64_t dropped = 0, kept = 0, zeroed = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    FaultFileSystem fs;
    KEEL_REQUIRE_OK(fs.create_directory(kDir));
    auto stable = synced_file(fs, kDir + "/stable", 2, 5);
    auto file = synced_file(fs, kDir + "/a", kPages, 1);
    // Unsynced: the second half of every page; the first halves stay as synced.
    for (size_t page = 0; page < kPages; ++page) {
      KEEL_REQUIRE_OK(file->write_at(page * kFaultPageSize + kHalf, filled(kHalf, 2)));
    }
    CrashReport report = fs.crash(seed);
    CHECK(report.pages_dropped + report.pages_kept + report.pages_zeroed == kPages);

    CHECK(fs.contents(kDir + "/stable") == filled(2 * kFaultPageSize, 5));
    auto bytes = fs.contents(kDir + "/a");
    REQUIRE(bytes.size() == kPages * kFaultPageSize);
    for (size_t page = 0; page < kPages; ++page) {
      auto start = bytes.begin() + static_cast<std::ptrdiff_t>(page * kFaultPageSize);
      CHECK(std::vector<std::byte>(start, start + kHalf) == filled(kHalf, 1));  // synced: intact
      std::vector<std::byte> unsynced(start + kHalf, start + kFaultPageSize);
      if (unsynced == filled(kHalf, 1)) {
        ++dropped;
      } else if (unsynced == filled(kHalf, 2)) {
        ++kept;
      } else {
        REQUIRE(unsynced == filled(kHalf, 0));  // nothing but the three fates, whole pages
        ++zeroed;
      }
    }
  }
  CHECK(dropped > 0);
  CHECK(kept > 0);
  CHECK(zeroed > 0);
}

TEST_CASE("FaultFileSystem: crash undoes unsynced directory changes and sizes", "[fault]") {
  FaultFileSystem fs;
  KEEL_REQUIRE_OK(fs.create_directory(kDir));

  SECTION("an unsynced create disappears, even with its data synced") {
    auto file = open_ok(fs, kDir + "/new");
    KEEL_REQUIRE_OK(file->write_at(0, filled(10, 1)));
    KEEL_REQUIRE_OK(file->sync_data());
    fs.crash(1);
    CHECK_FALSE(*fs.exists(kDir + "/new"));
    CHECK(fs.list_directory(kDir)->empty());
  }
  SECTION("a synced create survives") {
    synced_file(fs, kDir + "/new", 1, 3);
    fs.crash(1);
    CHECK(fs.contents(kDir + "/new") == filled(kFaultPageSize, 3));
  }
  SECTION("an unsynced rename is undone; a synced one survives") {
    synced_file(fs, kDir + "/a", 1, 3);
    synced_file(fs, kDir + "/b", 1, 4);
    KEEL_REQUIRE_OK(fs.rename(kDir + "/a", kDir + "/c"));
    FaultFileSystem other;  // the same history with the rename synced
    KEEL_REQUIRE_OK(other.create_directory(kDir));
    synced_file(other, kDir + "/a", 1, 3);
    KEEL_REQUIRE_OK(other.rename(kDir + "/a", kDir + "/c"));
    KEEL_REQUIRE_OK(other.sync_directory(kDir));

    fs.crash(1);
    other.crash(1);
    CHECK(fs.contents(kDir + "/a") == filled(kFaultPageSize, 3));
    CHECK_FALSE(*fs.exists(kDir + "/c"));
    CHECK(other.contents(kDir + "/c") == filled(kFaultPageSize, 3));
    CHECK_FALSE(*other.exists(kDir + "/a"));
  }
  SECTION("an unsynced remove is undone") {
    synced_file(fs, kDir + "/a", 1, 3);
    KEEL_REQUIRE_OK(fs.remove(kDir + "/a"));
    fs.crash(1);
    CHECK(fs.contents(kDir + "/a") == filled(kFaultPageSize, 3));
  }
  SECTION("a truncate without sync is undone; with sync_data it survives") {
    auto file = synced_file(fs, kDir + "/a", 2, 3);
    auto synced = synced_file(fs, kDir + "/b", 2, 3);
    KEEL_REQUIRE_OK(file->truncate(100));
    KEEL_REQUIRE_OK(synced->truncate(100));
    KEEL_REQUIRE_OK(synced->sync_data());
    fs.crash(1);
    CHECK(fs.contents(kDir + "/a") == filled(2 * kFaultPageSize, 3));
    CHECK(fs.contents(kDir + "/b") == filled(100, 3));
  }
  SECTION("an unsynced growth is lost") {
    auto file = synced_file(fs, kDir + "/a", 1, 3);
    KEEL_REQUIRE_OK(file->allocate(0, 3 * kFaultPageSize));
    KEEL_REQUIRE_OK(file->write_at(kFaultPageSize, filled(10, 1)));
    fs.crash(1);
    CHECK(fs.contents(kDir + "/a") == filled(kFaultPageSize, 3));
  }
}

TEST_CASE("FaultFileSystem: after a crash old handles are void and locks released", "[fault]") {
  FaultFileSystem fs;
  KEEL_REQUIRE_OK(fs.create_directory(kDir));
  auto file = synced_file(fs, kDir + "/a", 1, 3);
  auto held = fs.lock(kDir + "/LOCK", LockMode::Exclusive);
  REQUIRE(held.ok());
  REQUIRE(*held != nullptr);
  REQUIRE(*fs.lock(kDir + "/LOCK", LockMode::Shared) == nullptr);
  fs.fail_nth(FaultOp::SyncData, 1);

  fs.crash(1);
  require_eio(file->write_at(0, filled(1, 9)), "pwrite");
  CHECK(fs.contents(kDir + "/a") == filled(kFaultPageSize, 3));
  auto again = fs.lock(kDir + "/LOCK", LockMode::Exclusive);
  REQUIRE(again.ok());
  CHECK(*again != nullptr);
  held->reset();  // the pre-crash lock's release must not free the new holder's lock
  CHECK(*fs.lock(kDir + "/LOCK", LockMode::Shared) == nullptr);
  auto reopened = open_ok(fs, kDir + "/a", OpenMode::ReadWrite);
  KEEL_REQUIRE_OK(reopened->sync_data());  // faults were disarmed by the crash
}

TEST_CASE("FaultFileSystem: shared between threads", "[fault][concurrency]") {
  FaultFileSystem fs;
  KEEL_REQUIRE_OK(fs.create_directory(kDir));
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&fs, t] {
      auto file = fs.open(kDir + "/f" + std::to_string(t), OpenMode::CreateOrOpen);
      if (!file.ok()) return;
      std::vector<std::byte> out(64);
      for (uint64_t i = 0; i < 200; ++i) {
        (void)(*file)->write_at(i * 64, filled(64, static_cast<uint8_t>(t + 1)));
        if (i % 10 == 0) (void)(*file)->sync_data();
        (void)(*file)->read_at(i * 64, out);
      }
    });
  }
  for (int i = 0; i < 100; ++i) {
    (void)fs.sync_directory(kDir);
    (void)fs.list_directory(kDir);
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < 3; ++t) {
    CHECK(fs.contents(kDir + "/f" + std::to_string(t)) ==
          filled(200 * 64, static_cast<uint8_t>(t + 1)));
  }
  fs.crash(1);
  for (int t = 0; t < 3; ++t) {
    // Synced every 10th write: at least the first 191 writes' bytes are on the disk.
    auto bytes = fs.contents(kDir + "/f" + std::to_string(t));
    if (bytes.empty()) continue;  // the create's entry was not synced by the directory thread
    REQUIRE(bytes.size() >= 191 * 64);
    CHECK(std::vector<std::byte>(bytes.begin(), bytes.begin() + 191 * 64) ==
          filled(191 * 64, static_cast<uint8_t>(t + 1)));
  }
}

TEST_CASE("FaultFileSystem: a stalled sync blocks its caller only, until released",
          "[fault][concurrency]") {
  FaultFileSystem fs;
  KEEL_REQUIRE_OK(fs.create_directory(kDir));
  auto file = synced_file(fs, kDir + "/a", 1, 1);
  KEEL_REQUIRE_OK(file->write_at(0, filled(kFaultPageSize, 2)));
  fs.stall_syncs(true);
  SyncThread syncer(fs, *file);
  REQUIRE(fs.wait_for_stalled_sync(kStallWait));
  CHECK(fs.stalled_syncs() == 1);
  CHECK_FALSE(syncer.returned());

  SECTION("meanwhile other calls work; released, it applies the sync") {
    // This thread reads and writes, on the stalled file and on another one: the stall holds no
    // lock. Nothing of the stalled sync has reached the disk.
    std::vector<std::byte> out(4);
    REQUIRE(*file->read_at(0, out) == 4);
    CHECK(out == filled(4, 2));
    KEEL_REQUIRE_OK(file->write_at(kFaultPageSize, filled(8, 4)));
    auto other = open_ok(fs, kDir + "/b");
    KEEL_REQUIRE_OK(other->write_at(0, filled(10, 3)));
    CHECK(fs.list_directory(kDir)->size() == 2);
    CHECK(fs.durable_contents(kDir + "/a") == filled(kFaultPageSize, 1));
    CHECK_FALSE(syncer.returned());
    CHECK(fs.stalled_syncs() == 1);

    fs.stall_syncs(false);
    KEEL_REQUIRE_OK(syncer.join());
    CHECK(fs.stalled_syncs() == 0);
    // Released, it synced the file as it is now, the write made during the stall included.
    auto expected = filled(kFaultPageSize + 8, 4);
    std::fill(expected.begin(), expected.begin() + kFaultPageSize, std::byte{2});
    CHECK(fs.durable_contents(kDir + "/a") == expected);
    fs.crash(1);
    CHECK(fs.contents(kDir + "/a") == expected);
    KEEL_REQUIRE_OK(open_ok(fs, kDir + "/a")->sync_data());  // the crash left the stall off
  }
  SECTION("a fault armed while it waits fires when it proceeds") {
    uint64_t syncs_before = fs.calls(FaultOp::SyncData);
    fs.fail_nth(FaultOp::SyncData, 1);
    fs.stall_syncs(false);
    require_eio(syncer.join(), "fdatasync");
    CHECK(fs.calls(FaultOp::SyncData) == syncs_before + 1);
    CHECK(fs.durable_contents(kDir + "/a") == filled(kFaultPageSize, 1));
  }
  SECTION("crash() releases it onto a void handle") {
    fs.crash(1);
    require_eio(syncer.join(), "fdatasync");
    CHECK(fs.stalled_syncs() == 0);
  }
}

TEST_CASE("FaultFileSystem: wait_for_stalled_sync times out when nothing stalls", "[fault]") {
  FaultFileSystem fs;
  KEEL_REQUIRE_OK(fs.create_directory(kDir));
  CHECK_FALSE(fs.wait_for_stalled_sync(std::chrono::milliseconds(1)));
  fs.stall_syncs(true);
  CHECK_FALSE(fs.wait_for_stalled_sync(std::chrono::milliseconds(1)));  // on, but no caller
  fs.stall_syncs(false);
  KEEL_REQUIRE_OK(open_ok(fs, kDir + "/a")->sync_data());  // off again: returns at once
}

}  // namespace
}  // namespace keel::platform
