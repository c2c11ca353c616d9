// keel export / keel import: a round trip through the CLI, the summary lines, a refused artifact
// (exit 1, the reason, nothing at the destination) and usage errors (exit 2).
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "keel/keel.h"
#include "test_support.h"

namespace keel {
namespace {

using test::TempDir;
using Run = test::CommandRun;

using test::keel_cli;
using test::contains;

TEST_CASE("keel export and keel import move a store and refuse a damaged artifact",
          "[cli][artifact]") {
  TempDir scratch;
  const std::string dir = scratch / "store";
  {
    StoreOptions options;
    options.create_if_missing = true;
    options.segment_size = 8192;
    auto store = Store::open(dir, options);
    KEEL_REQUIRE_OK(store);
    for (int i = 0; i < 300; ++i) {
      KEEL_REQUIRE_OK((*store)->append({"order:" + std::to_string(i % 9), ""},
                                       EventKind::make(1, 1), "event " + std::to_string(i)));
    }
    KEEL_REQUIRE_OK(save_snapshot(**store, "totals", "sum", 250));
  }
  Run exported = keel_cli(scratch, "export " + dir + " " + (scratch / "artifact"));
  REQUIRE(exported.exit_code == 0);
  CHECK(contains(exported.out, "events 1..300"));
  CHECK(contains(exported.out, "1 snapshots"));
  CHECK(contains(exported.out, "appends waited"));
  CHECK(contains(exported.err, "export: "));  // progress (not a terminal: plain lines)
  CHECK(contains(exported.err, "(100%)"));

  Run imported = keel_cli(scratch, "import " + (scratch / "artifact") + " " + (scratch / "copy"));
  REQUIRE(imported.exit_code == 0);
  CHECK(contains(imported.out, "events 1..300"));
  Run verified = keel_cli(scratch, "verify " + (scratch / "copy"));
  CHECK(verified.exit_code == 0);
  CHECK(contains(verified.out, "ok: 300 events"));
  Run shown = keel_cli(scratch, "snapshot show " + (scratch / "copy") + " totals");
  CHECK(shown.exit_code == 0);
  CHECK(contains(shown.out, "published: sequence 250"));

  Run again = keel_cli(scratch, "import " + (scratch / "artifact") + " " + (scratch / "copy"));
  CHECK(again.exit_code == 1);
  CHECK(contains(again.err, "DestinationExists"));

  std::filesystem::remove(scratch / "artifact/EPOCH");
  Run refused = keel_cli(scratch, "import " + (scratch / "artifact") + " " + (scratch / "copy2"));
  CHECK(refused.exit_code == 1);
  CHECK(contains(refused.err, "ArtifactInvalid"));
  CHECK(contains(refused.err, "missing file EPOCH"));
  CHECK(!std::filesystem::exists(scratch / "copy2"));

  CHECK(keel_cli(scratch, "export " + dir).exit_code == 2);
  CHECK(keel_cli(scratch, "import " + (scratch / "artifact")).exit_code == 2);
  Run missing = keel_cli(scratch, "export " + (scratch / "nothing") + " " + (scratch / "x"));
  CHECK(missing.exit_code != 0);
  CHECK(!std::filesystem::exists(scratch / "x"));
}

}  // namespace
}  // namespace keel
