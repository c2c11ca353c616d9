// Snapshot persistence (include/keel/snapshot.h): save outcomes, the monotonic pointer read from
// disk at every save, three-way load where a failed read is never "not found", crashes at every
// step of a save, prune, and retention held at the published snapshots.
#include <random>
#include <thread>

#include "format/checksum.h"
#include "keel/keel.h"
#include "log/sidecar_file.h"
#include "log/snapshot_files.h"
#include "platform/fault_file_system.h"
#include "platform/memory_file_system.h"
#include "test_support.h"

namespace keel {
namespace {

constexpr char kDir[] = "/store";
constexpr EventKind kKind = EventKind::make(1, 1);

StoreOptions options_on(platform::FileSystem& fs) {
  StoreOptions options;
  options.create_if_missing = true;
  options.file_system = &fs;
  options.segment_size = 4096;  // many segments, so retention has something to remove
  options.id_seed = 5;
  return options;
}

std::unique_ptr<Store> open_store(const StoreOptions& options) {
  auto store = Store::open(kDir, options);
  if (!store.ok()) FAIL(store.error().to_string());
  return std::move(store).value();
}

void append_n(Store& store, int n) {
  for (int i = 0; i < n; ++i) {
    KEEL_REQUIRE_OK(store.append({"order:" + std::to_string(i % 7), ""}, kKind,
                                 "payload-" + std::to_string(i)));
  }
}

SaveOutcome saved(Store& store, std::string_view name, std::string_view bytes, uint64_t sequence,
                  SaveOptions options = {}) {
  auto result = save_snapshot(store, name, bytes, sequence, options);
  if (!result.ok()) FAIL(result.error().to_string());
  return result->outcome;
}

Hash128 hash_of(std::string_view bytes) {
  return format::hash128(std::as_bytes(std::span(bytes.data(), bytes.size())));
}

std::string pointer_path(std::string_view name) {
  return std::string(kDir) + "/" + log::snapshot_pointer_file_name(name);
}

std::string payload_path(std::string_view name, uint64_t sequence, std::string_view bytes) {
  return std::string(kDir) + "/" + log::snapshot_payload_file_name(name, sequence, hash_of(bytes));
}

// A payload file written directly (as a crash before the pointer, or another writer, leaves one).
void put_payload(platform::FileSystem& fs, std::string_view name, uint64_t sequence,
                 std::string_view bytes) {
  KEEL_REQUIRE_OK(log::replace_file(fs, kDir,
                                    log::snapshot_payload_file_name(name, sequence, hash_of(bytes)),
                                    std::as_bytes(std::span(bytes.data(), bytes.size()))));
}

TEST_CASE("a snapshot saved is loaded whole, and with none saved load says not found",
          "[snapshot]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  auto none = load_snapshot(*store, "orders");
  KEEL_REQUIRE_OK(none);
  CHECK(!none->has_value());
  append_n(*store, 30);
  const std::string state(100'000, 's');
  auto result = save_snapshot(*store, "orders", state, 30);
  KEEL_REQUIRE_OK(result);
  CHECK(result->outcome == SaveOutcome::Published);
  CHECK(result->published.sequence == 30);
  CHECK(result->published.size == state.size());
  CHECK(result->published.epoch == store->epoch());
  auto loaded = load_snapshot(*store, "orders");
  KEEL_REQUIRE_OK(loaded);
  REQUIRE(loaded->has_value());
  CHECK((*loaded)->bytes == state);
  CHECK((*loaded)->info == result->published);
  // Names are separate; an empty state is a state.
  CHECK(saved(*store, "empty", "", 0) == SaveOutcome::Published);
  auto empty = load_snapshot(*store, "empty");
  KEEL_REQUIRE_OK(empty);
  REQUIRE(empty->has_value());
  CHECK((*empty)->bytes.empty());
  // And it survives a reopen.
  KEEL_REQUIRE_OK(store->close());
  store = open_store(options_on(fs));
  loaded = load_snapshot(*store, "orders");
  KEEL_REQUIRE_OK(loaded);
  REQUIRE(loaded->has_value());
  CHECK((*loaded)->bytes == state);
}

TEST_CASE("save outcomes: forward only, republish, superseded, stale and forged savers",
          "[snapshot]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_n(*store, 40);
  CHECK(saved(*store, "p", "at 10", 10) == SaveOutcome::Published);
  // The same again: nothing written, the published one returned.
  auto again = save_snapshot(*store, "p", "at 10", 10);
  KEEL_REQUIRE_OK(again);
  CHECK(again->outcome == SaveOutcome::AlreadyPublished);
  CHECK(again->published.sequence == 10);
  CHECK(saved(*store, "p", "at 20", 20) == SaveOutcome::Published);
  // Below the pointer: an outcome, not an error, and the newer one stays.
  auto older = save_snapshot(*store, "p", "at 15", 15);
  KEEL_REQUIRE_OK(older);
  CHECK(older->outcome == SaveOutcome::SupersededByNewer);
  CHECK(older->published.sequence == 20);
  CHECK(!fs.exists(payload_path("p", 15, "at 15")).value());  // nothing written
  // The same sequence with other bytes forks what was published.
  auto fork = save_snapshot(*store, "p", "other at 20", 20);
  REQUIRE(!fork.ok());
  CHECK(fork.error().is(ErrorCode::StaleSequence));
  CHECK(fork.error().field_u64("next") == 20);
  CHECK(fork.error().field_u64("floor") == 20);
  CHECK(fork.error().error_class() == ErrorClass::Domain);
  // A saver whose state was loaded at 10, after another published 20: refused, even above 20.
  SaveOptions from_10;
  from_10.based_on = 10;
  auto stale = save_snapshot(*store, "p", "at 30 from 10", 30, from_10);
  REQUIRE(!stale.ok());
  CHECK(stale.error().is(ErrorCode::StaleSequence));
  CHECK(stale.error().field_u64("floor") == 20);
  // A forged or restarted saver that starts over from nothing: refused.
  SaveOptions from_nothing;
  from_nothing.based_on = 0;
  auto forged = save_snapshot(*store, "p", "from scratch", 35, from_nothing);
  REQUIRE(!forged.ok());
  CHECK(forged.error().is(ErrorCode::StaleSequence));
  auto forged_zero = save_snapshot(*store, "p", "zero", 0, from_nothing);
  REQUIRE(!forged_zero.ok());
  CHECK(forged_zero.error().is(ErrorCode::StaleSequence));
  // based_on naming what is published: saved. On a name with nothing published, 0 is right.
  SaveOptions from_20;
  from_20.based_on = 20;
  CHECK(saved(*store, "p", "at 30", 30, from_20) == SaveOutcome::Published);
  CHECK(saved(*store, "q", "q at 5", 5, from_nothing) == SaveOutcome::Published);
  auto no_such_base = save_snapshot(*store, "r", "r", 5, from_10);
  REQUIRE(!no_such_base.ok());
  CHECK(no_such_base.error().is(ErrorCode::StaleSequence));
  auto loaded = load_snapshot(*store, "p");
  KEEL_REQUIRE_OK(loaded);
  CHECK((*loaded)->bytes == "at 30");
}

TEST_CASE("save refuses bad input: names, a sequence not durable, a read-only store",
          "[snapshot]") {
  platform::MemoryFileSystem fs;
  StoreOptions lazy = options_on(fs);
  lazy.sync_interval = std::chrono::hours(1);
  lazy.sync_bytes = 1ull << 30;
  auto store = open_store(lazy);
  append_n(*store, 5);
  for (const char* bad : {"", ".hidden", "a/b", "../x", "sp ace"}) {
    auto r = save_snapshot(*store, bad, "x", 1);
    REQUIRE(!r.ok());
    CHECK(r.error().is(ErrorCode::InvalidArgument));
    CHECK(load_snapshot(*store, bad).error().is(ErrorCode::InvalidArgument));
  }
  AppendOptions written;
  written.durability = Durability::Written;
  KEEL_REQUIRE_OK(store->append({"order:1", ""}, kKind, "not synced", written));
  auto ahead = save_snapshot(*store, "p", "x", 6);
  REQUIRE(!ahead.ok());
  CHECK(ahead.error().is(ErrorCode::InvalidArgument));
  CHECK(ahead.error().message().find("not durable") != std::string::npos);
  KEEL_REQUIRE_OK(store->sync());
  CHECK(saved(*store, "p", "x", 6) == SaveOutcome::Published);
  CHECK(prune_snapshots(*store, "p", 0).error().is(ErrorCode::InvalidArgument));
  KEEL_REQUIRE_OK(store->close());
  StoreOptions read_only = options_on(fs);
  read_only.read_only = true;
  auto reader = open_store(read_only);
  CHECK(save_snapshot(*reader, "p", "y", 6).error().is(ErrorCode::ReadOnlyStore));
  CHECK(prune_snapshots(*reader, "p", 1).error().is(ErrorCode::ReadOnlyStore));
  auto loaded = load_snapshot(*reader, "p");  // loading works read-only
  KEEL_REQUIRE_OK(loaded);
  CHECK((*loaded)->bytes == "x");
}

TEST_CASE("every save reads the pointer from disk: a newer one written meanwhile wins",
          "[snapshot]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_n(*store, 50);
  CHECK(saved(*store, "p", "at 10", 10) == SaveOutcome::Published);
  // Another writer of this name (a copy of the store, a restored file) moved the pointer to 40.
  const std::string bytes = "at 40";
  put_payload(fs, "p", 40, bytes);
  KEEL_REQUIRE_OK(log::write_snapshot_pointer(
      fs, kDir, log::SnapshotPointer{"p", store->epoch(), 40, bytes.size(), hash_of(bytes)}));
  auto r = save_snapshot(*store, "p", "at 20", 20);
  KEEL_REQUIRE_OK(r);
  CHECK(r->outcome == SaveOutcome::SupersededByNewer);
  CHECK(r->published.sequence == 40);
}

TEST_CASE("two savers racing on one name: exactly one publishes", "[snapshot][concurrency]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_n(*store, 100);
  for (int round = 0; round < 20; ++round) {
    const std::string name = "race" + std::to_string(round);
    CHECK(saved(*store, name, "base", 1) == SaveOutcome::Published);
    SaveOptions from_base;
    from_base.based_on = 1;
    std::vector<Result<SaveResult>> results(2, Result<SaveResult>(SaveResult{}));
    std::thread a([&] { results[0] = save_snapshot(*store, name, "a", 50, from_base); });
    std::thread b([&] { results[1] = save_snapshot(*store, name, "b", 60, from_base); });
    a.join();
    b.join();
    int published = 0;
    for (auto& r : results) {
      if (r.ok() && r->outcome == SaveOutcome::Published) {
        ++published;
      } else if (r.ok()) {
        CHECK(r->outcome == SaveOutcome::SupersededByNewer);
      } else {
        CHECK(r.error().is(ErrorCode::StaleSequence));
      }
    }
    CHECK(published == 1);
    auto loaded = load_snapshot(*store, name);
    KEEL_REQUIRE_OK(loaded);
    CHECK(((*loaded)->bytes == "a" || (*loaded)->bytes == "b"));
  }
}

TEST_CASE("load: a damaged pointer, a missing or damaged payload, a snapshot beyond the log",
          "[snapshot]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_n(*store, 20);
  const std::string state = "the state at 20";
  CHECK(saved(*store, "p", state, 20) == SaveOutcome::Published);
  const std::string payload = payload_path("p", 20, state);
  auto contents = [&](const std::string& path) {
    auto file = fs.open(path, platform::OpenMode::ReadOnly);
    REQUIRE(file.ok());
    std::vector<std::byte> bytes((*file)->size().value());
    REQUIRE((*file)->read_at(0, bytes).ok());
    return bytes;
  };
  auto put = [&](const std::string& path, const std::vector<std::byte>& bytes) {
    auto file = fs.open(path, platform::OpenMode::CreateOrOpen);
    REQUIRE(file.ok());
    KEEL_REQUIRE_OK((*file)->truncate(0));
    KEEL_REQUIRE_OK((*file)->write_at(0, bytes));
  };
  const auto good_payload = contents(payload);
  const auto good_pointer = contents(pointer_path("p"));
  SECTION("damaged payload") {
    auto bytes = good_payload;
    bytes[3] ^= std::byte{1};
    put(payload, bytes);
  }
  SECTION("short payload") {
    auto bytes = good_payload;
    bytes.pop_back();
    put(payload, bytes);
  }
  SECTION("missing payload") { KEEL_REQUIRE_OK(fs.remove(payload)); }
  SECTION("damaged pointer") {
    auto bytes = good_pointer;
    bytes[40] ^= std::byte{1};
    put(pointer_path("p"), bytes);
  }
  SECTION("pointer of another name") {
    KEEL_REQUIRE_OK(fs.rename(pointer_path("p"), pointer_path("q")));
    auto q = load_snapshot(*store, "q");
    REQUIRE(!q.ok());
    CHECK(q.error().is(ErrorCode::CorruptSidecar));
    return;
  }
  SECTION("beyond the log") {
    KEEL_REQUIRE_OK(log::write_snapshot_pointer(
        fs, kDir, log::SnapshotPointer{"p", store->epoch(), 21, state.size(), hash_of(state)}));
    auto ahead = load_snapshot(*store, "p");
    REQUIRE(!ahead.ok());
    CHECK(ahead.error().is(ErrorCode::CursorAheadOfLog));
    CHECK(ahead.error().message().find("snapshot p") != std::string::npos);
    return;
  }
  auto loaded = load_snapshot(*store, "p");
  REQUIRE(!loaded.ok());
  CHECK((loaded.error().is(ErrorCode::Corruption) || loaded.error().is(ErrorCode::CorruptSidecar)));
  CHECK(loaded.error().error_class() == ErrorClass::FailClosed);
  // A save never writes over a pointer it cannot read.
  if (loaded.error().is(ErrorCode::CorruptSidecar)) {
    CHECK(save_snapshot(*store, "p", "over it", 20).error().is(ErrorCode::CorruptSidecar));
  }
}

// Loads with the pointer's or the payload's reads failing (EIO); returns how many of the two
// loads answered "not found" instead of an error.
int read_failures_taken_for_absence(bool unsafe) {
  platform::FaultFileSystem fs;
  auto store = open_store(options_on(fs));
  append_n(*store, 10);
  const std::string state = "state";
  if (saved(*store, "p", state, 10) != SaveOutcome::Published) return -1;
  LoadOptions options;
  options.unsafe_read_errors_as_not_found_for_test = unsafe;
  int absent = 0;
  for (const std::string& path : {pointer_path("p"), payload_path("p", 10, state)}) {
    fs.fail_reads_of(path);
    auto loaded = load_snapshot(*store, "p", options);
    if (loaded.ok()) {
      if (!loaded->has_value()) ++absent;
    } else {
      CHECK(loaded.error().is(ErrorCode::Io));
    }
    fs.clear_faults();
  }
  auto loaded = load_snapshot(*store, "p");  // the reads work again: found
  KEEL_REQUIRE_OK(loaded);
  CHECK(loaded->has_value());
  return absent;
}

TEST_CASE("a failed read is an error, never 'not found'", "[snapshot][fault]") {
  CHECK(read_failures_taken_for_absence(false) == 0);
}

TEST_CASE("control: a load that takes read errors for absence is caught", "[snapshot][fault]") {
  CHECK(read_failures_taken_for_absence(true) == 2);
}

// Power is cut at every step of a save of "new" at 30 over a published "old" at 10 (the n-th call
// of each kind of file operation the save makes fails, and nothing reaches the disk after it),
// and once after the save returned. After the reopen the load must give "old" or "new", whole,
// and "new" whenever the save said Published. Returns the violations.
int save_crash_violations(bool pointer_first) {
  int violations = 0;
  SaveOptions options;
  options.unsafe_pointer_first_for_test = pointer_first;
  const std::string old_state(5000, 'o'), new_state(9000, 'n');
  auto check_after_crash = [&](platform::FaultFileSystem& fs, uint64_t seed, bool published) {
    fs.crash(seed);
    fs.clear_faults();
    auto store = open_store(options_on(fs));
    auto loaded = load_snapshot(*store, "p");
    if (!loaded.ok() || !loaded->has_value()) {
      ++violations;
      return;
    }
    const std::string& bytes = (*loaded)->bytes;
    if (bytes == new_state && (*loaded)->info.sequence == 30) return;
    if (bytes == old_state && (*loaded)->info.sequence == 10 && !published) return;
    ++violations;
  };
  for (platform::FaultOp op : {platform::FaultOp::Write, platform::FaultOp::SyncData,
                               platform::FaultOp::Rename, platform::FaultOp::SyncDirectory}) {
    for (uint64_t n = 1; n <= 3; ++n) {
      for (uint64_t seed = 1; seed <= 4; ++seed) {
        platform::FaultFileSystem fs;
        bool published = false;
        {
          auto store = open_store(options_on(fs));
          append_n(*store, 40);
          if (saved(*store, "p", old_state, 10) != SaveOutcome::Published) return -1;
          fs.fail_from_nth(op, n);
          auto r = save_snapshot(*store, "p", new_state, 30, options);
          published = r.ok() && r->outcome == SaveOutcome::Published;
          for (auto all : {platform::FaultOp::Write, platform::FaultOp::SyncData,
                           platform::FaultOp::Rename, platform::FaultOp::SyncDirectory}) {
            fs.fail_from_nth(all, 1);
          }
        }
        check_after_crash(fs, seed * 100 + n, published);
      }
    }
  }
  return violations;
}

TEST_CASE("a power loss at any step of a save leaves the old snapshot or the new one, whole",
          "[snapshot][fault]") {
  CHECK(save_crash_violations(false) == 0);
}

TEST_CASE("control: a save that writes the pointer before the payload is caught",
          "[snapshot][fault]") {
  CHECK(save_crash_violations(true) > 0);
}

TEST_CASE("prune keeps the published payload and the newest below it, and removes orphans",
          "[snapshot]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_n(*store, 200);
  std::mt19937_64 random(GENERATE(1u, 2u, 3u, 4u));
  std::map<std::string, uint64_t> published;  // name -> sequence
  for (int step = 0; step < 150; ++step) {
    const std::string name = "n" + std::to_string(random() % 3);
    const int action = static_cast<int>(random() % 10);
    if (action < 6) {
      const uint64_t sequence = random() % 200;
      auto r = save_snapshot(*store, name, "s" + std::to_string(sequence), sequence);
      KEEL_REQUIRE_OK(r);
      published[name] = r->published.sequence;
    } else if (action < 8) {  // an orphan: a payload a crash left without its pointer
      const uint64_t sequence = random() % 220;
      const std::string bytes = "orphan" + std::to_string(step);
      put_payload(fs, name, sequence, bytes);
    } else {
      const size_t keep = 1 + random() % 3;
      auto pruned = prune_snapshots(*store, name, keep);
      KEEL_REQUIRE_OK(pruned);
      auto listings = list_snapshots(*store);
      KEEL_REQUIRE_OK(listings);
      for (const SnapshotListing& listing : *listings) {
        if (listing.name != name) continue;
        // At most `keep` remain, none above the pointer, the published one among them.
        CHECK(listing.payloads.size() <= keep);
        CHECK(pruned->kept == listing.payloads.size());
        int targets = 0;
        for (const SnapshotPayload& p : listing.payloads) {
          REQUIRE(listing.published);
          CHECK(p.sequence <= listing.published->sequence);
          if (p.published) ++targets;
        }
        CHECK(targets == (listing.published ? 1 : 0));
      }
    }
    // Whatever happened, every published snapshot loads.
    for (const auto& [n, sequence] : published) {
      auto loaded = load_snapshot(*store, n);
      KEEL_REQUIRE_OK(loaded);
      REQUIRE(loaded->has_value());
      CHECK((*loaded)->info.sequence == sequence);
      CHECK((*loaded)->bytes == "s" + std::to_string(sequence));
    }
  }
  // With no pointer, every payload of the name is an orphan.
  put_payload(fs, "lonely", 3, "lonely");
  auto pruned = prune_snapshots(*store, "lonely", 5);
  KEEL_REQUIRE_OK(pruned);
  CHECK(pruned->removed == 1);
  CHECK(pruned->kept == 0);
}

TEST_CASE("retention keeps every event after a published snapshot unless forced",
          "[snapshot][retention]") {
  platform::MemoryFileSystem fs;
  auto store = open_store(options_on(fs));
  append_n(*store, 300);
  CHECK(saved(*store, "p", "at 100", 100) == SaveOutcome::Published);
  CHECK(saved(*store, "q", "at 250", 250) == SaveOutcome::Published);
  auto held = retain_from(*store, 280);
  KEEL_REQUIRE_OK(held);
  CHECK(held->first_retained <= 101);
  CHECK(held->first_retained > 1);  // it removed what p covers
  CHECK(held->held_by == "snapshot p at sequence 100");
  CHECK(saved(*store, "p", "at 260", 260) == SaveOutcome::Published);
  auto moved = retain_from(*store, 280);
  KEEL_REQUIRE_OK(moved);
  CHECK(moved->first_retained <= 251);
  CHECK(moved->first_retained > 101);
  CHECK(moved->held_by == "snapshot q at sequence 250");
  // Replaying either snapshot's tail works: every event after 250 is there.
  auto tail = store->scan_events(251, 300);
  KEEL_REQUIRE_OK(tail);
  CHECK(tail->size() == 50);
  RetentionOptions force;
  force.force = true;
  auto forced = retain_from(*store, 280, force);
  KEEL_REQUIRE_OK(forced);
  CHECK(forced->first_retained > 251);
  CHECK(forced->held_by.empty());
}

}  // namespace
}  // namespace keel
