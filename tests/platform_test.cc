// The platform seam (src/platform/file_system.h): PosixFileSystem and MemoryFileSystem must behave
// the same, because tests, fuzzers and the fault-injecting file system stand in for the real one.
// Every case runs against both.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "platform/file_system.h"
#include "platform/memory_file_system.h"
#include "platform/read_ring.h"
#include "test_support.h"

using keel::ErrorCode;
using keel::StoreError;
using keel::platform::File;
using keel::platform::FileLock;
using keel::platform::FileSystem;
using keel::platform::LockMode;
using keel::platform::OpenMode;

namespace {

struct PosixEnvironment {
  keel::test::TempDir dir;
  FileSystem& fs = keel::platform::posix_file_system();
  std::string root = dir.path();
  std::string path(const std::string& name) const { return keel::platform::join_path(root, name); }
};

struct MemoryEnvironment {
  keel::platform::MemoryFileSystem memory;
  FileSystem& fs = memory;
  std::string root = "/store";
  MemoryEnvironment() {
    if (!memory.create_directory(root).ok()) throw std::runtime_error("create_directory failed");
  }
  std::string path(const std::string& name) const { return keel::platform::join_path(root, name); }
};

std::vector<std::byte> bytes_of(std::string_view text) {
  std::vector<std::byte> out;
  for (char c : text) out.push_back(static_cast<std::byte>(c));
  return out;
}

std::vector<std::byte> zeros(size_t n) { return std::vector<std::byte>(n, std::byte{0}); }

std::optional<int64_t> errno_of(const StoreError& error) {
  const auto* value = error.field("errno");
  if (value == nullptr) return std::nullopt;
  if (const auto* i = std::get_if<int64_t>(value)) return *i;
  if (const auto* u = std::get_if<uint64_t>(value)) return static_cast<int64_t>(*u);
  return std::nullopt;
}

// Requires `status` to be an Io error with `expected_errno` naming `path`.
template <class R>
void require_io_error(const R& result, int expected_errno, const std::string& path) {
  REQUIRE_FALSE(result.ok());
  const StoreError& error = result.error();
  INFO(error.to_string());
  CHECK(error.code() == ErrorCode::Io);
  CHECK(errno_of(error) == int64_t{expected_errno});
  CHECK(error.field_string("path") == path);
}

std::unique_ptr<File> open_file(FileSystem& fs, const std::string& path, OpenMode mode) {
  auto file = fs.open(path, mode);
  if (!file.ok()) FAIL(file.error().to_string());
  return std::move(file).value();
}

// A new file of `length` bytes, allocated and mapped for writes, as the writer's active segment.
std::unique_ptr<File> mapped_segment(FileSystem& fs, const std::string& path, uint64_t length) {
  auto file = open_file(fs, path, OpenMode::CreateNew);
  KEEL_REQUIRE_OK(file->allocate(0, length));
  file->map_for_writes(length);
  return file;
}

// The i-th of a run of writes shaped like the segment writer's: small frames (through the mapping,
// where there is one) and every 97th a 24 KiB group (pwrite).
std::vector<std::byte> writer_frame(int i) {
  const size_t size = i % 97 == 96 ? 24 << 10 : 64 + static_cast<size_t>(i % 7) * 40;
  std::vector<std::byte> frame(size);
  for (size_t k = 0; k < size; ++k) frame[k] = static_cast<std::byte>(i * 31 + k);
  return frame;
}

void write(File& file, uint64_t offset, const std::vector<std::byte>& data) {
  KEEL_REQUIRE_OK(file.write_at(offset, data));
}

std::vector<std::byte> read_all(File& file) {
  auto bytes = keel::platform::read_file(file);
  if (!bytes.ok()) FAIL(bytes.error().to_string());
  return std::move(bytes).value();
}

uint64_t size_of(File& file) {
  auto size = file.size();
  if (!size.ok()) FAIL(size.error().to_string());
  return *size;
}

void create_with(FileSystem& fs, const std::string& path, std::string_view content) {
  auto file = open_file(fs, path, OpenMode::CreateNew);
  write(*file, 0, bytes_of(content));
}

std::vector<std::string> sorted_names(FileSystem& fs, const std::string& directory) {
  auto names = fs.list_directory(directory);
  if (!names.ok()) FAIL(names.error().to_string());
  std::vector<std::string> sorted = *names;
  std::sort(sorted.begin(), sorted.end());
  return sorted;
}

}  // namespace

TEMPLATE_TEST_CASE("open: ReadOnly and ReadWrite need an existing file (Io, ENOENT)", "[platform]",
                   PosixEnvironment, MemoryEnvironment) {
  TestType env;
  std::string missing = env.path("missing");
  require_io_error(env.fs.open(missing, OpenMode::ReadOnly), ENOENT, missing);
  require_io_error(env.fs.open(missing, OpenMode::ReadWrite), ENOENT, missing);
  CHECK_FALSE(*env.fs.exists(missing));  // a failed open creates nothing
}

TEMPLATE_TEST_CASE("open: CreateNew creates an empty file, and refuses an existing one (EEXIST)",
                   "[platform]", PosixEnvironment, MemoryEnvironment) {
  TestType env;
  std::string path = env.path("new");
  {
    auto file = open_file(env.fs, path, OpenMode::CreateNew);
    CHECK(size_of(*file) == 0);
    CHECK(file->path() == path);
    write(*file, 0, bytes_of("first"));
  }
  CHECK(*env.fs.exists(path));
  require_io_error(env.fs.open(path, OpenMode::CreateNew), EEXIST, path);
  auto again = open_file(env.fs, path, OpenMode::ReadOnly);
  CHECK(read_all(*again) == bytes_of("first"));  // the refused open did not truncate it
}

TEMPLATE_TEST_CASE("open: CreateOrOpen creates a missing file and keeps an existing one",
                   "[platform]", PosixEnvironment, MemoryEnvironment) {
  TestType env;
  std::string path = env.path("file");
  {
    auto created = open_file(env.fs, path, OpenMode::CreateOrOpen);
    CHECK(size_of(*created) == 0);
    write(*created, 0, bytes_of("kept"));
  }
  auto reopened = open_file(env.fs, path, OpenMode::CreateOrOpen);
  CHECK(read_all(*reopened) == bytes_of("kept"));
  auto read_write = open_file(env.fs, path, OpenMode::ReadWrite);
  CHECK(read_all(*read_write) == bytes_of("kept"));
}

TEMPLATE_TEST_CASE("write_at and read_at work at offsets, a gap reads as zeros", "[platform]",
                   PosixEnvironment, MemoryEnvironment) {
  TestType env;
  auto file = open_file(env.fs, env.path("data"), OpenMode::CreateNew);
  write(*file, 0, bytes_of("hello"));
  write(*file, 100, bytes_of("world"));
  write(*file, 1, bytes_of("EL"));  // overwrite in place
  CHECK(size_of(*file) == 105);

  std::vector<std::byte> middle(4);
  auto n = file->read_at(1, middle);
  REQUIRE(n.ok());
  CHECK(*n == 4);
  CHECK(middle == bytes_of("ELlo"));

  std::vector<std::byte> gap(95, std::byte{0x55});
  n = file->read_at(5, gap);
  REQUIRE(n.ok());
  CHECK(*n == 95);
  CHECK(gap == zeros(95));

  auto all = read_all(*file);
  REQUIRE(all.size() == 105);
  CHECK(std::vector<std::byte>(all.begin() + 100, all.end()) == bytes_of("world"));

  // Another handle on the same file sees the writes.
  auto other = open_file(env.fs, env.path("data"), OpenMode::ReadOnly);
  CHECK(read_all(*other) == all);
}

TEMPLATE_TEST_CASE("read_at is short at the end of the file and empty past it", "[platform]",
                   PosixEnvironment, MemoryEnvironment) {
  TestType env;
  auto file = open_file(env.fs, env.path("data"), OpenMode::CreateNew);
  write(*file, 0, bytes_of("0123456789"));
  std::vector<std::byte> out(8, std::byte{0x55});
  auto n = file->read_at(6, out);
  REQUIRE(n.ok());
  CHECK(*n == 4);
  CHECK(std::vector<std::byte>(out.begin(), out.begin() + 4) == bytes_of("6789"));
  CHECK(out[4] == std::byte{0x55});  // nothing written past what was read
  n = file->read_at(10, out);
  REQUIRE(n.ok());
  CHECK(*n == 0);
  n = file->read_at(1000, out);
  REQUIRE(n.ok());
  CHECK(*n == 0);
}

TEMPLATE_TEST_CASE("truncate shrinks, and grows with zeros", "[platform]", PosixEnvironment,
                   MemoryEnvironment) {
  TestType env;
  auto file = open_file(env.fs, env.path("data"), OpenMode::CreateNew);
  write(*file, 0, bytes_of("0123456789"));
  KEEL_REQUIRE_OK(file->truncate(3));
  CHECK(size_of(*file) == 3);
  CHECK(read_all(*file) == bytes_of("012"));
  KEEL_REQUIRE_OK(file->truncate(8));
  CHECK(size_of(*file) == 8);
  // The bytes cut off earlier do not come back.
  auto expected = bytes_of("012");
  expected.resize(8, std::byte{0});
  CHECK(read_all(*file) == expected);
  KEEL_REQUIRE_OK(file->truncate(0));
  CHECK(size_of(*file) == 0);
}

TEMPLATE_TEST_CASE("allocate extends the size with zeros and never shrinks or changes data",
                   "[platform]", PosixEnvironment, MemoryEnvironment) {
  TestType env;
  auto file = open_file(env.fs, env.path("segment"), OpenMode::CreateNew);
  write(*file, 0, bytes_of("head"));
  KEEL_REQUIRE_OK(file->allocate(0, 4096));
  CHECK(size_of(*file) == 4096);
  auto expected = bytes_of("head");
  expected.resize(4096, std::byte{0});
  CHECK(read_all(*file) == expected);

  KEEL_REQUIRE_OK(file->allocate(0, 16));  // inside the file: nothing changes
  CHECK(size_of(*file) == 4096);
  KEEL_REQUIRE_OK(file->allocate(8192, 100));  // past the end: the size reaches its end
  CHECK(size_of(*file) == 8292);
  expected.resize(8292, std::byte{0});
  CHECK(read_all(*file) == expected);
}

TEMPLATE_TEST_CASE("write_mapped reads back as write_at does, across syncs and a truncate",
                   "[platform]", PosixEnvironment, MemoryEnvironment) {
  TestType env;
  constexpr uint64_t kLength = 1 << 20;
  auto file = mapped_segment(env.fs, env.path("segment"), kLength);
  // Forward writes as the segment writer makes them (writer_frame), some with write_at, and syncs
  // between them; past 256 KiB, so that written pages are dropped from the mapping on the way.
  std::vector<std::byte> expected(kLength, std::byte{0});
  uint64_t end = 0;
  for (int i = 0; end < 600 << 10; ++i) {
    const std::vector<std::byte> frame = writer_frame(i);
    if (i % 11 == 10) {
      write(*file, end, frame);
    } else {
      KEEL_REQUIRE_OK(file->write_mapped(end, frame));
    }
    std::copy(frame.begin(), frame.end(), expected.begin() + static_cast<std::ptrdiff_t>(end));
    end += frame.size();
    if (i % 500 == 499) KEEL_REQUIRE_OK(file->sync_data());
  }
  auto other = open_file(env.fs, env.path("segment"), OpenMode::ReadOnly);
  CHECK(read_all(*other) == expected);
  KEEL_REQUIRE_OK(file->truncate(end));  // as the writer trims a sealed segment
  KEEL_REQUIRE_OK(file->write_mapped(end, bytes_of("tail")));  // no mapping now: pwrite
  expected.resize(end);
  for (std::byte b : bytes_of("tail")) expected.push_back(b);
  KEEL_REQUIRE_OK(file->sync_data());
  file.reset();  // the mapping goes; the page cache keeps every byte
  CHECK(read_all(*other) == expected);
  CHECK(size_of(*other) == end + 4);
}

namespace {
// Whether /proc/self/maps lists a mapping of `path`.
bool mapped_in_this_process(const std::string& path) {
  std::ifstream in("/proc/self/maps");
  std::stringstream maps;
  maps << in.rdbuf();
  return maps.str().find(" " + path + "\n") != std::string::npos;
}
}  // namespace

TEST_CASE("map_for_writes maps the file until truncate, and write_mapped falls back to pwrite "
          "where a page cannot be populated",
          "[platform]") {
  PosixEnvironment env;
  constexpr uint64_t kLength = 64 << 10;
  const std::string path = env.path("segment");
  auto file = open_file(env.fs, path, OpenMode::CreateNew);
  KEEL_REQUIRE_OK(file->allocate(0, kLength));
  file->map_for_writes(kLength + 4096);  // longer than the file: no mapping
  CHECK_FALSE(mapped_in_this_process(path));
  file->map_for_writes(kLength);
  CHECK(mapped_in_this_process(path));
  KEEL_REQUIRE_OK(file->write_mapped(0, bytes_of("frame")));
  // Something else shrinks the file under the mapping: a plain store to a mapped page it no
  // longer has would raise SIGBUS. A write to a page not yet populated (the first write made
  // 32 KiB ahead writable) finds that the kernel cannot populate it, drops the mapping and
  // writes with pwrite, as keel did before it mapped segments (the file grows to hold it).
  auto other = open_file(env.fs, path, OpenMode::ReadWrite);
  KEEL_REQUIRE_OK(other->truncate(0));
  KEEL_REQUIRE_OK(file->write_mapped(48 << 10, bytes_of("next frame")));
  CHECK_FALSE(mapped_in_this_process(path));
  CHECK(size_of(*other) == (48 << 10) + 10);
  std::vector<std::byte> got(10);
  REQUIRE(other->read_at(48 << 10, got).ok());
  CHECK(got == bytes_of("next frame"));
  KEEL_REQUIRE_OK(file->truncate(0));
  KEEL_REQUIRE_OK(file->write_mapped(0, bytes_of("again")));  // pwrite
  CHECK(read_all(*other) == bytes_of("again"));
}

namespace {
// The resident bytes of this process's mapping of `path` (/proc/self/smaps); nullopt: not mapped.
std::optional<uint64_t> resident_bytes_of_mapping(const std::string& path) {
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool in_mapping = false;
  while (std::getline(in, line)) {
    const bool header = !line.empty() && line.find(':') > line.find(' ');
    if (header) in_mapping = line.size() > path.size() && line.ends_with(" " + path);
    if (in_mapping && line.starts_with("Rss:")) {
      return std::stoull(line.substr(4)) * 1024;  // "Rss:     120 kB"
    }
  }
  return std::nullopt;
}
}  // namespace

TEST_CASE("sync_data first drops the pages the writer is done with from the mapping",
          "[platform]") {
  // A writeback write-protects every dirty page still mapped, a TLB shootdown each; the pages
  // below the last write's end are finished, so sync_data unmaps them first (they stay in the
  // page cache). What stays mapped: the last partial page and the pages populated ahead.
  PosixEnvironment env;
  const std::string path = env.path("segment");
  auto file = mapped_segment(env.fs, path, 1 << 20);
  std::vector<std::byte> frame(200, std::byte{7});
  uint64_t end = 0;
  while (end < (200 << 10)) {  // below the writer's own release step (256 KiB)
    KEEL_REQUIRE_OK(file->write_mapped(end, frame));
    end += frame.size();
  }
  const std::optional<uint64_t> before = resident_bytes_of_mapping(path);
  if (!before) {  // a kernel without MADV_POPULATE_WRITE (before 5.14): every write was a pwrite
    WARN("the kernel refused to populate the mapping: nothing to check");
    return;
  }
  CHECK(*before >= (200 << 10));
  KEEL_REQUIRE_OK(file->sync_data());
  const std::optional<uint64_t> after = resident_bytes_of_mapping(path);
  REQUIRE(after.has_value());
  CHECK(*after <= (32 << 10) + 8192);  // kPopulateAhead and the pages around the end
  // And the bytes are all there, read through another handle.
  auto other = open_file(env.fs, path, OpenMode::ReadOnly);
  std::vector<std::byte> got(end);
  REQUIRE(other->read_at(0, got).ok());
  CHECK(std::all_of(got.begin(), got.end(), [](std::byte b) { return b == std::byte{7}; }));
}

TEST_CASE("write_mapped on one thread and sync_data on another keep every byte",
          "[platform][concurrency]") {
  // The segment writer's shape: one thread writes small frames forward (through the mapping) and
  // larger groups (pwrite), the background sync runs sync_data beside it, which drops finished
  // pages from the mapping, and the writer finally truncates (unmapping) while syncs may go on.
  PosixEnvironment env;
  auto file = mapped_segment(env.fs, env.path("segment"), 4 << 20);
  std::vector<std::byte> expected;
  std::atomic<bool> done{false};
  std::atomic<int> syncs{0};
  std::thread syncer([&] {
    while (!done.load()) {
      if (file->sync_data().ok()) syncs.fetch_add(1);
    }
  });
  uint64_t end = 0;
  for (int i = 0; end + (24 << 10) < (3 << 20); ++i) {
    const std::vector<std::byte> frame = writer_frame(i);
    KEEL_REQUIRE_OK(file->write_mapped(end, frame));
    expected.insert(expected.end(), frame.begin(), frame.end());
    end += frame.size();
  }
  KEEL_REQUIRE_OK(file->truncate(end));
  done.store(true);
  syncer.join();
  CHECK(syncs.load() > 0);
  KEEL_REQUIRE_OK(file->sync_data());
  auto other = open_file(env.fs, env.path("segment"), OpenMode::ReadOnly);
  CHECK(read_all(*other) == expected);
}

TEMPLATE_TEST_CASE("list_directory names every entry once, without . and ..", "[platform]",
                   PosixEnvironment, MemoryEnvironment) {
  TestType env;
  CHECK(sorted_names(env.fs, env.root).empty());
  create_with(env.fs, env.path("b"), "2");
  create_with(env.fs, env.path("a"), "1");
  create_with(env.fs, env.path("segment-00000000000000000001.keel"), "3");
  CHECK(sorted_names(env.fs, env.root) ==
        std::vector<std::string>{"a", "b", "segment-00000000000000000001.keel"});
  std::string missing = env.path("no-such-directory");
  require_io_error(env.fs.list_directory(missing), ENOENT, missing);
}

TEMPLATE_TEST_CASE("rename moves a file and replaces the target", "[platform]", PosixEnvironment,
                   MemoryEnvironment) {
  TestType env;
  create_with(env.fs, env.path("from"), "new content");
  create_with(env.fs, env.path("to"), "old");
  KEEL_REQUIRE_OK(env.fs.rename(env.path("from"), env.path("to")));
  CHECK_FALSE(*env.fs.exists(env.path("from")));
  auto file = open_file(env.fs, env.path("to"), OpenMode::ReadOnly);
  CHECK(read_all(*file) == bytes_of("new content"));
  CHECK(sorted_names(env.fs, env.root) == std::vector<std::string>{"to"});
  std::string missing = env.path("missing");
  require_io_error(env.fs.rename(missing, env.path("elsewhere")), ENOENT, missing);
}

TEMPLATE_TEST_CASE("an open handle keeps its file across a rename", "[platform]", PosixEnvironment,
                   MemoryEnvironment) {
  // The atomic-replace protocol (temp -> rename) relies on this.
  TestType env;
  create_with(env.fs, env.path("temp"), "payload");
  auto handle = open_file(env.fs, env.path("temp"), OpenMode::ReadWrite);
  KEEL_REQUIRE_OK(env.fs.rename(env.path("temp"), env.path("final")));
  write(*handle, 7, bytes_of("!"));
  auto reopened = open_file(env.fs, env.path("final"), OpenMode::ReadOnly);
  CHECK(read_all(*reopened) == bytes_of("payload!"));
}

TEMPLATE_TEST_CASE("remove deletes a file, a missing one is Io ENOENT", "[platform]",
                   PosixEnvironment, MemoryEnvironment) {
  TestType env;
  create_with(env.fs, env.path("doomed"), "x");
  KEEL_REQUIRE_OK(env.fs.remove(env.path("doomed")));
  CHECK_FALSE(*env.fs.exists(env.path("doomed")));
  require_io_error(env.fs.open(env.path("doomed"), OpenMode::ReadOnly), ENOENT, env.path("doomed"));
  require_io_error(env.fs.remove(env.path("doomed")), ENOENT, env.path("doomed"));
}

TEMPLATE_TEST_CASE("exists: files and directories, not missing paths", "[platform]",
                   PosixEnvironment, MemoryEnvironment) {
  TestType env;
  create_with(env.fs, env.path("file"), "x");
  CHECK(*env.fs.exists(env.path("file")));
  CHECK(*env.fs.exists(env.root));
  CHECK_FALSE(*env.fs.exists(env.path("missing")));
  KEEL_REQUIRE_OK(env.fs.create_directory(env.path("sub")));
  CHECK(*env.fs.exists(env.path("sub")));
  KEEL_REQUIRE_OK(env.fs.create_directory(env.path("sub")));  // already there: fine
}

TEMPLATE_TEST_CASE("sync_data and sync_directory succeed, a missing directory is Io ENOENT",
                   "[platform]", PosixEnvironment, MemoryEnvironment) {
  TestType env;
  auto file = open_file(env.fs, env.path("data"), OpenMode::CreateNew);
  write(*file, 0, bytes_of("x"));
  KEEL_REQUIRE_OK(file->sync_data());
  KEEL_REQUIRE_OK(env.fs.sync_directory(env.root));
  std::string missing = env.path("no-such-directory");
  require_io_error(env.fs.sync_directory(missing), ENOENT, missing);
}

TEMPLATE_TEST_CASE("lock: a shared lock is a probe that never creates the file", "[platform]",
                   PosixEnvironment, MemoryEnvironment) {
  TestType env;
  std::string path = env.path("LOCK");
  auto probe = env.fs.lock(path, LockMode::Shared);
  REQUIRE_FALSE(probe.ok());  // a reader may not create files in the store
  CHECK(env.fs.exists(path).value() == false);
  auto exclusive = env.fs.lock(path, LockMode::Exclusive);
  KEEL_REQUIRE_OK(exclusive);
  CHECK(env.fs.exists(path).value() == true);
}

TEST_CASE("file errors: permission and read-only file systems are PermissionDenied, not Retryable",
          "[platform]") {
  for (int err : {EACCES, EPERM, EROFS}) {
    StoreError e = keel::platform::file_error("open", "/s/LOCK", err);
    INFO(e.to_string());
    CHECK(e.is(keel::ErrorCode::PermissionDenied));
    CHECK(e.error_class() == keel::ErrorClass::Domain);
    CHECK(e.field_string("path") == "/s/LOCK");
    CHECK(e.message().find(err == EROFS ? "read-write" : "permission for open") !=
          std::string::npos);
  }
  StoreError not_dir = keel::platform::file_error("stat", "/s/afile/LOCK", ENOTDIR);
  CHECK(not_dir.is(keel::ErrorCode::InvalidArgument));
  CHECK(not_dir.message().find("not a directory") != std::string::npos);
  CHECK(keel::platform::file_error("pread", "/s/x", EIO).is(keel::ErrorCode::Io));
}

TEMPLATE_TEST_CASE("lock: exclusive excludes everyone until it is destroyed", "[platform]",
                   PosixEnvironment, MemoryEnvironment) {
  TestType env;
  std::string path = env.path("LOCK");
  auto take = [&](LockMode mode) {
    auto lock = env.fs.lock(path, mode);
    if (!lock.ok()) FAIL(lock.error().to_string());
    return std::move(lock).value();
  };
  {
    auto exclusive = take(LockMode::Exclusive);
    REQUIRE(exclusive != nullptr);
    CHECK(take(LockMode::Exclusive) == nullptr);
    CHECK(take(LockMode::Shared) == nullptr);
  }
  // Released on destruction: shared holders may now share.
  auto shared_one = take(LockMode::Shared);
  auto shared_two = take(LockMode::Shared);
  CHECK(shared_one != nullptr);
  CHECK(shared_two != nullptr);
  CHECK(take(LockMode::Exclusive) == nullptr);
  shared_one.reset();
  CHECK(take(LockMode::Exclusive) == nullptr);  // one shared holder is still there
  shared_two.reset();
  CHECK(take(LockMode::Exclusive) != nullptr);
  // A lock on another path is independent.
  auto here = take(LockMode::Exclusive);
  auto elsewhere = env.fs.lock(env.path("OTHER-LOCK"), LockMode::Exclusive);
  REQUIRE(elsewhere.ok());
  CHECK(*elsewhere != nullptr);
}

// ---- Where MemoryFileSystem once diverged from POSIX -------------------------------------------

TEMPLATE_TEST_CASE("a ReadOnly handle refuses writes and size changes", "[platform]",
                   PosixEnvironment, MemoryEnvironment) {
  TestType env;
  create_with(env.fs, env.path("data"), "original");
  auto file = open_file(env.fs, env.path("data"), OpenMode::ReadOnly);
  CHECK_FALSE(file->write_at(0, bytes_of("X")).ok());
  CHECK_FALSE(file->truncate(0).ok());
  auto check = open_file(env.fs, env.path("data"), OpenMode::ReadOnly);
  CHECK(read_all(*check) == bytes_of("original"));
}

TEMPLATE_TEST_CASE("rename of a file onto itself keeps it", "[platform]",
                   PosixEnvironment, MemoryEnvironment) {
  TestType env;
  create_with(env.fs, env.path("same"), "content");
  KEEL_REQUIRE_OK(env.fs.rename(env.path("same"), env.path("same")));
  CHECK(*env.fs.exists(env.path("same")));
}

// read_batch: each request gets what read_at would give, whether the batch went through io_uring
// (POSIX, more than one request per ring submission of 64) or one by one.
TEMPLATE_TEST_CASE("read_batch gives every request what read_at gives: bytes, short reads, errors",
                   "[platform]", PosixEnvironment, MemoryEnvironment) {
  TestType env;
  std::string text;
  for (int i = 0; i < 5000; ++i) text += static_cast<char>('a' + i % 26);
  create_with(env.fs, env.path("a"), text);
  create_with(env.fs, env.path("b"), "short");
  auto a = open_file(env.fs, env.path("a"), OpenMode::ReadOnly);
  auto b = open_file(env.fs, env.path("b"), OpenMode::ReadOnly);
  std::vector<std::vector<std::byte>> buffers;
  std::vector<keel::platform::ReadRequest> requests;
  for (uint64_t i = 0; i < 150; ++i) {  // three ring submissions
    File* file = i % 3 == 2 ? b.get() : a.get();
    const uint64_t offset = i % 3 == 2 ? i % 7 : (i * 37) % 5100;  // some past the end of "a"
    buffers.emplace_back(1 + (i * 13) % 300, std::byte{0x55});
    requests.push_back({file, offset, buffers.back()});
  }
  env.fs.read_batch(requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    INFO("request " << i);
    std::vector<std::byte> expected(requests[i].out.size(), std::byte{0x55});
    auto n = requests[i].file->read_at(requests[i].offset, expected);
    REQUIRE(n.ok());
    REQUIRE(requests[i].got.ok());
    CHECK(*requests[i].got == *n);
    CHECK(buffers[i] == expected);
  }
}

TEST_CASE("read_batch reports a failed read as read_at does (Io, errno, path)", "[platform]") {
  PosixEnvironment env;
  create_with(env.fs, env.path("a"), "0123456789");
  auto a = open_file(env.fs, env.path("a"), OpenMode::ReadOnly);
  // A directory opens read-only, and reading it fails with EISDIR.
  auto dir = open_file(env.fs, env.root, OpenMode::ReadOnly);
  std::vector<std::byte> one(4), two(4), three(4);
  std::vector<keel::platform::ReadRequest> requests = {
      {a.get(), 0, one}, {dir.get(), 0, two}, {a.get(), 6, three}};
  env.fs.read_batch(requests);
  REQUIRE(requests[0].got.ok());
  CHECK(one == bytes_of("0123"));
  require_io_error(requests[1].got, EISDIR, env.root);
  CHECK(requests[1].got.error().field_string("operation") ==
        dir->read_at(0, two).error().field_string("operation"));
  REQUIRE(requests[2].got.ok());
  CHECK(three == bytes_of("6789"));
}

// The io_uring path itself (where the build and the kernel have it): every read done, as pread
// would, across ring submissions; where there is no ring it must say so and read nothing.
TEST_CASE("ring_read reads as pread does, or says it has no ring", "[platform]") {
  PosixEnvironment env;
  std::string text;
  for (int i = 0; i < 3000; ++i) text += static_cast<char>('A' + i % 23);
  create_with(env.fs, env.path("a"), text);
  const int fd = ::open(env.path("a").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  std::vector<std::vector<std::byte>> buffers;
  std::vector<keel::platform::RingRead> reads;
  for (uint64_t i = 0; i < 200; ++i) {
    buffers.emplace_back(1 + (i * 31) % 257, std::byte{0x55});
    reads.push_back({fd, (i * 53) % 3100, buffers.back(), 12345});
  }
  if (!keel::platform::ring_read(reads)) {
    for (const auto& r : reads) CHECK(r.result == 12345);  // nothing was read
    WARN("no io_uring here: read_batch reads one by one");
  } else {
    for (size_t i = 0; i < reads.size(); ++i) {
      INFO("read " << i);
      std::vector<std::byte> expected(buffers[i].size(), std::byte{0x55});
      const ssize_t n =
          ::pread(fd, expected.data(), expected.size(), static_cast<off_t>(reads[i].offset));
      CHECK(reads[i].result == n);
      CHECK(buffers[i] == expected);
    }
  }
  ::close(fd);
}
