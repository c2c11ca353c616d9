// Read-only opens need no write access to any file of the store: on a read-only mount and as a
// user who may read but not write the store, `Store::open` with read_only, `keel scan` and
// `keel verify` work and change nothing; a writable open there fails with PermissionDenied
// (Domain: not Retryable), naming the path and what it needed. These tests use a read-only bind
// mount and a process running as `nobody`, so they need root; elsewhere they are skipped with a
// warning (tests/platform_test.cc classifies the errors without either).
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <string>

#include "keel/keel.h"
#include "test_support.h"

namespace keel {
namespace {

using test::TempDir;

constexpr EventKind kKind = EventKind::make(1, 1);

// A cleanly closed store of a few events at `path`, with its INDEX, IDEMPOTENCY, END and LOCK.
void write_store(const std::string& path) {
  StoreOptions options;
  options.create_if_missing = true;
  auto store = Store::open(path, options);
  KEEL_REQUIRE_OK(store);
  for (int i = 0; i < 5; ++i) {
    AppendOptions keyed;
    keyed.idempotency_key = "k" + std::to_string(i);
    KEEL_REQUIRE_OK((*store)->append({"order:1", "shop"}, kKind, "p" + std::to_string(i), keyed));
  }
  KEEL_REQUIRE_OK((*store)->close());
}

// A read-only bind mount of `source` at `target`, unmounted when destroyed.
class ReadOnlyMount {
 public:
  ReadOnlyMount(const std::string& source, const std::string& target) : target_(target) {
    ::mkdir(target.c_str(), 0755);
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      error_ = std::strerror(errno);
      return;
    }
    mounted_ = true;
    if (::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) !=
        0) {
      error_ = std::strerror(errno);
    }
  }
  ~ReadOnlyMount() {
    if (mounted_) ::umount(target_.c_str());
  }
  bool ok() const { return mounted_ && error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  std::string target_;
  bool mounted_ = false;
  std::string error_;
};

void check_read_only_open_works(const std::string& store_path) {
  StoreOptions options;
  options.read_only = true;
  auto store = Store::open(store_path, options);
  KEEL_REQUIRE_OK(store);
  auto events = (*store)->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(events);
  CHECK(events->size() == 5);
  auto report = (*store)->verify();
  KEEL_REQUIRE_OK(report);
  CHECK(report->ok);
}

TEST_CASE("a read-only open works on a read-only mount, a writable one is PermissionDenied",
          "[read_only]") {
  if (::geteuid() != 0) {
    WARN("skipped: a bind mount needs root");
    return;
  }
  TempDir dir;
  write_store(dir / "store");
  auto before = test::snapshot_directory(dir / "store");
  ReadOnlyMount mount(dir / "store", dir / "ro");
  if (!mount.ok()) {
    WARN("skipped: a read-only bind mount is not allowed here (" << mount.error() << ")");
    return;
  }
  const std::string ro = dir / "ro";
  check_read_only_open_works(ro);
  TempDir scratch;
  for (const char* command : {"scan", "verify", "stats"}) {
    test::CommandRun run = test::run_command(scratch, KEEL_CLI, std::string(command) + " " + ro);
    INFO(command << ": " << run.out << run.err);
    CHECK(run.exit_code == 0);
  }
  StoreOptions writable;
  auto refused = Store::open(ro, writable);
  REQUIRE_FALSE(refused.ok());
  INFO(refused.error().to_string());
  CHECK(refused.error().is(ErrorCode::PermissionDenied));
  CHECK(refused.error().error_class() == ErrorClass::Domain);
  CHECK(refused.error().field_string("path")->find(ro) == 0);
  CHECK(refused.error().message().find("read-write") != std::string::npos);
  CHECK(test::snapshot_directory(dir / "store") == before);
}

TEST_CASE("a user who may read but not write the store can scan and verify it", "[read_only]") {
  if (::geteuid() != 0) {
    WARN("skipped: running a command as another user needs root");
    return;
  }
  if (::access("/usr/bin/setpriv", X_OK) != 0) {
    WARN("skipped: setpriv (util-linux) is not installed");
    return;
  }
  TempDir dir;
  write_store(dir / "store");
  // Readable by everyone, writable by root only (the store's files keep their 0644 modes).
  ::chmod(dir.path().c_str(), 0755);
  ::chmod((dir / "store").c_str(), 0755);
  auto before = test::snapshot_directory(dir / "store");
  TempDir scratch;
  ::chmod(scratch.path().c_str(), 0777);  // the command's output files
  const std::string as_nobody = "/usr/bin/setpriv --reuid=nobody --regid=nogroup --clear-groups ";
  for (const char* command : {"scan", "verify", "stats"}) {
    test::CommandRun run = test::run_command(
        scratch, "/usr/bin/setpriv",
        std::string("--reuid=nobody --regid=nogroup --clear-groups ") + KEEL_CLI + " " + command +
            " " + (dir / "store"));
    INFO(as_nobody << command << ": " << run.out << run.err);
    CHECK(run.exit_code == 0);
  }
  test::CommandRun append = test::run_command(
      scratch, "/usr/bin/setpriv",
      std::string("--reuid=nobody --regid=nogroup --clear-groups ") + KEEL_CLI + " append " +
          (dir / "store") + " order:1 '{\"n\": 1}'");
  INFO(append.out << append.err);
  CHECK(append.exit_code == 1);
  CHECK(append.err.find("PermissionDenied") != std::string::npos);
  CHECK(append.err.find("[Domain]") != std::string::npos);
  CHECK(test::snapshot_directory(dir / "store") == before);
}

}  // namespace
}  // namespace keel
