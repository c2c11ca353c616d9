// keel snapshot list|show|prune: rows, the check a show makes, prune's report, a damaged pointer,
// usage errors.
#include <catch2/catch.hpp>
#include <fstream>
#include <string>

#include "keel/keel.h"
#include "log/snapshot_files.h"
#include "test_support.h"

namespace keel {
namespace {

using test::TempDir;
using Run = test::CommandRun;

using test::keel_cli;
using test::contains;

TEST_CASE("keel snapshot lists, shows, checks and prunes the snapshots of a store",
          "[cli][snapshot]") {
  TempDir scratch;
  const std::string dir = scratch / "store";
  {
    StoreOptions options;
    options.create_if_missing = true;
    auto store = Store::open(dir, options);
    KEEL_REQUIRE_OK(store);
    Run empty = keel_cli(scratch, "snapshot list " + dir);
    CHECK(empty.exit_code == 0);
    CHECK(contains(empty.out, "(no snapshots)"));
    for (int i = 1; i <= 30; ++i) {
      KEEL_REQUIRE_OK((*store)->append({"order:1", ""}, EventKind::make(1, 1), "e"));
    }
    for (uint64_t at : {10u, 20u, 30u}) {
      KEEL_REQUIRE_OK(save_snapshot(**store, "totals", "totals at " + std::to_string(at), at));
    }
    KEEL_REQUIRE_OK(save_snapshot(**store, "other", "x", 5));
  }
  Run listed = keel_cli(scratch, "snapshot list " + dir);
  REQUIRE(listed.exit_code == 0);
  CHECK(contains(listed.out, "NAME"));
  CHECK(contains(listed.out, "other"));
  CHECK(contains(listed.out, "totals"));
  CHECK(contains(listed.out, std::to_string(std::string("totals at 30").size())));
  const std::string out_file = scratch / "state.bin";
  Run shown = keel_cli(scratch, "snapshot show " + dir + " totals --output " + out_file);
  REQUIRE(shown.exit_code == 0);
  CHECK(contains(shown.out, "published: sequence 30"));
  CHECK(contains(shown.out, "(verified)"));
  CHECK(contains(shown.out, "payload sequence 10"));
  std::ifstream written(out_file, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(written)), std::istreambuf_iterator<char>());
  CHECK(bytes == "totals at 30");
  Run pruned = keel_cli(scratch, "snapshot prune " + dir + " totals --keep 2");
  REQUIRE(pruned.exit_code == 0);
  CHECK(contains(pruned.out, "payloads kept 2, removed 1"));
  Run after = keel_cli(scratch, "snapshot show " + dir + " totals");
  CHECK(!contains(after.out, "payload sequence 10"));
  CHECK(contains(after.out, "payload sequence 20"));

  // A damaged payload: show fails (Corruption, exit 1); a damaged pointer: list reports it.
  auto listings = [&] {
    StoreOptions read_only;
    read_only.read_only = true;
    auto store = Store::open(dir, read_only);
    REQUIRE(store.ok());
    auto all = list_snapshots(**store);
    REQUIRE(all.ok());
    return *all;
  }();
  std::string other_payload;
  for (const SnapshotListing& l : listings) {
    if (l.name == "other") {
      other_payload =
          dir + "/" + log::snapshot_payload_file_name("other", 5, l.payloads.at(0).hash);
    }
  }
  REQUIRE(!other_payload.empty());
  test::flip_byte(other_payload, 0);
  Run damaged = keel_cli(scratch, "snapshot show " + dir + " other");
  CHECK(damaged.exit_code == 1);
  CHECK(contains(damaged.err, "Corruption"));
  test::flip_byte(dir + "/SNAPSHOT.other", 20);
  Run bad_list = keel_cli(scratch, "snapshot list " + dir);
  CHECK(bad_list.exit_code == 1);
  CHECK(contains(bad_list.out, "damaged"));

  // Usage errors: exit 2, naming what is wrong.
  Run bogus = keel_cli(scratch, "snapshot bogus " + dir);
  CHECK(bogus.exit_code == 2);
  CHECK(contains(bogus.err, "ACTION is list, show or prune"));
  CHECK(keel_cli(scratch, "snapshot show " + dir).exit_code == 2);
  CHECK(keel_cli(scratch, "snapshot list " + dir + " totals").exit_code == 2);
  Run keep_zero = keel_cli(scratch, "snapshot prune " + dir + " totals --keep 0");
  CHECK(keep_zero.exit_code == 2);
  Run missing = keel_cli(scratch, "snapshot show " + dir + " nope");
  CHECK(missing.exit_code == 1);
  CHECK(contains(missing.err, "NotFound"));
}

}  // namespace
}  // namespace keel
