// Export and import (include/keel/artifact.h): a round trip that keeps events, consumers,
// snapshots and the retention floor; an export under concurrent appends; the tail after the
// manifest's sequence; every rejection of an untrusted artifact, each leaving the destination as
// it was; failures of an export that clean up; a power loss at every step of an import (with the
// in-place control); the manifest codec.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "artifact/manifest.h"
#include "format/checksum.h"
#include "keel/artifact.h"
#include "keel/keel.h"
#include "platform/fault_file_system.h"
#include "platform/memory_file_system.h"
#include "test_support.h"

namespace keel {
namespace {

using test::TempDir;
constexpr EventKind kKind = EventKind::make(1, 1);

StoreOptions small_segments() {
  StoreOptions options;
  options.create_if_missing = true;
  options.segment_size = 8192;  // many segments: sealed ones and a partly copied last one
  return options;
}

std::unique_ptr<Store> open_at(const std::string& dir, StoreOptions options = small_segments()) {
  auto store = Store::open(dir, options);
  if (!store.ok()) FAIL(store.error().to_string());
  return std::move(store).value();
}

void append_n(Store& store, int n, int from = 0) {
  for (int i = from; i < from + n; ++i) {
    KEEL_REQUIRE_OK(store.append({"order:" + std::to_string(i % 13), ""}, kKind,
                                 "payload-" + std::to_string(i) + std::string(40, 'x')));
  }
}

// (id, payload, chained hash) of every event from `from`.
std::vector<std::tuple<EventId, std::string, Hash128>> events_of(Store& store, uint64_t from = 1) {
  std::vector<std::tuple<EventId, std::string, Hash128>> out;
  auto events = store.scan_events(from, UINT64_MAX);
  if (!events.ok()) FAIL(events.error().to_string());
  for (const Event& e : *events) out.emplace_back(e.event_id, e.payload, e.chained_hash);
  return out;
}

bool has_error(const Status& status, ErrorCode code, const std::string& text) {
  if (status.ok()) {
    UNSCOPED_INFO("expected " << text << ", got success");
    return false;
  }
  UNSCOPED_INFO(status.error().to_string());
  return status.error().is(code) && status.error().to_string().find(text) != std::string::npos;
}
template <class T>
bool has_error(const Result<T>& result, ErrorCode code, const std::string& text) {
  if (result.ok()) return has_error(ok_status(), code, text);
  return has_error(Status(result.error()), code, text);
}

std::vector<std::string> entries_of(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST_CASE("an export imports as the same store: events, consumers, snapshots, retention",
          "[artifact]") {
  TempDir scratch;
  const std::string source = scratch / "source";
  auto store = open_at(source);
  append_n(*store, 400);
  KEEL_REQUIRE_OK(store->sync());
  REQUIRE(retain_first(*store, 100).ok());
  const uint64_t first_retained = store->stats().first_retained_sequence;
  REQUIRE(first_retained > 1);
  KEEL_REQUIRE_OK(DurableConsumer::reset(*store, "billing", 400, "billing state"));
  KEEL_REQUIRE_OK(save_snapshot(*store, "totals", "totals at 350", 350));
  std::vector<TransferProgress> progress;
  ExportOptions options;
  options.progress = [&](const TransferProgress& p) { progress.push_back(p); };
  auto exported = export_store(*store, scratch / "artifact", options);
  KEEL_REQUIRE_OK(exported);
  CHECK(exported->sequence == 400);
  CHECK(exported->epoch == store->epoch());
  CHECK(exported->consumers == 1);
  CHECK(exported->snapshots == 1);
  REQUIRE(!progress.empty());
  CHECK(progress.back().bytes_done == progress.back().bytes_total);
  CHECK(progress.back().bytes_total == exported->bytes);
  CHECK(progress.back().files_done == exported->files);

  auto imported = import_store(scratch / "artifact", scratch / "copy");
  KEEL_REQUIRE_OK(imported);
  CHECK(imported->sequence == 400);
  CHECK(imported->files == exported->files);
  CHECK(imported->bytes == exported->bytes);
  CHECK(entries_of(scratch.path()) == std::vector<std::string>{"artifact", "copy", "source"});

  auto copy = open_at(scratch / "copy");
  CHECK(copy->stats().first_retained_sequence == first_retained);
  CHECK(events_of(*copy, first_retained) == events_of(*store, first_retained));
  auto verified = copy->verify();
  KEEL_REQUIRE_OK(verified);
  CHECK(verified->ok);
  auto snapshot = load_snapshot(*copy, "totals");
  KEEL_REQUIRE_OK(snapshot);
  REQUIRE(snapshot->has_value());
  CHECK((*snapshot)->bytes == "totals at 350");
  auto consumer = DurableConsumer::open(*copy, "billing", Query{});
  KEEL_REQUIRE_OK(consumer);
  CHECK((*consumer)->cursor() == 400);
  CHECK((*consumer)->state() == "billing state");
  // The copy is a store of its own: it takes appends, and the original's are not in it.
  append_n(*copy, 5, 1000);
  CHECK(copy->stats().sequence_next == 406);
}

TEST_CASE("an export under concurrent appends is the store at one durable sequence",
          "[artifact][concurrency]") {
  TempDir scratch;
  auto store = open_at(scratch / "source");
  append_n(*store, 2000);
  std::atomic<bool> stop{false};
  std::atomic<int> appended{0};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      auto r = store->append({"order:" + std::to_string(i % 13), ""}, kKind,
                             "during-" + std::to_string(i));
      if (!r.ok()) FAIL(r.error().to_string());
      ++appended;
    }
  });
  while (appended < 200) std::this_thread::yield();
  auto exported = export_store(*store, scratch / "artifact");
  const int appended_at_export = appended.load();
  while (appended < appended_at_export + 200) std::this_thread::yield();
  stop = true;
  writer.join();
  KEEL_REQUIRE_OK(exported);
  CHECK(exported->sequence >= 2200);
  CHECK(exported->sequence < store->stats().sequence_next - 1);  // appends went on after it
  INFO("writer blocked " << exported->writer_blocked_us << " us");

  KEEL_REQUIRE_OK(import_store(scratch / "artifact", scratch / "copy"));
  auto copy = open_at(scratch / "copy");
  CHECK(copy->stats().sequence_next == exported->sequence + 1);
  auto original = events_of(*store);
  original.resize(exported->sequence);
  CHECK(events_of(*copy) == original);
}

TEST_CASE("after an import, subscribing to the original from the manifest's sequence gives "
          "exactly the missing tail",
          "[artifact]") {
  TempDir scratch;
  auto store = open_at(scratch / "source");
  append_n(*store, 300);
  auto exported = export_store(*store, scratch / "artifact");
  KEEL_REQUIRE_OK(exported);
  append_n(*store, 77, 300);
  std::filesystem::create_directory(scratch / "copy");  // an empty directory is taken over
  auto imported = import_store(scratch / "artifact", scratch / "copy");
  KEEL_REQUIRE_OK(imported);
  auto subscription = Subscription::open(*store, Query{}, imported->sequence);
  KEEL_REQUIRE_OK(subscription);
  std::vector<std::tuple<EventId, std::string, Hash128>> joined;
  {
    auto copy = open_at(scratch / "copy");
    joined = events_of(*copy);
  }
  while (true) {
    auto batch = (*subscription)->next(std::chrono::milliseconds(50));
    KEEL_REQUIRE_OK(batch);
    if (batch->empty()) break;
    for (const Event& e : *batch) joined.emplace_back(e.event_id, e.payload, e.chained_hash);
  }
  CHECK(joined.size() == 377);
  CHECK(joined == events_of(*store));
}

TEST_CASE("a store without events exports and imports as an empty store", "[artifact]") {
  TempDir scratch;
  {
    auto store = open_at(scratch / "source");
    auto exported = export_store(*store, scratch / "artifact");
    KEEL_REQUIRE_OK(exported);
    CHECK(exported->sequence == 0);
  }
  KEEL_REQUIRE_OK(import_store(scratch / "artifact", scratch / "copy"));
  auto copy = open_at(scratch / "copy");
  CHECK(copy->stats().sequence_next == 1);
  append_n(*copy, 3);
  CHECK(copy->stats().sequence_next == 4);
}

// ---- import of an untrusted artifact: the rejection matrix ----

// A fresh, valid artifact of 120 events with a snapshot, a consumer and an index image (the
// store was closed once), at scratch/artifact.
void make_artifact(const TempDir& scratch) {
  {
    auto store = open_at(scratch / "source");
    append_n(*store, 120);
    KEEL_REQUIRE_OK(save_snapshot(*store, "totals", "state", 100));
    KEEL_REQUIRE_OK(DurableConsumer::reset(*store, "billing", 90, "billing state"));
  }
  auto store = open_at(scratch / "source");
  KEEL_REQUIRE_OK(export_store(*store, scratch / "artifact"));
  REQUIRE(std::filesystem::exists(scratch / "artifact/INDEX"));
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}
// `text` with its end line replaced by the right one: a forged manifest that hashes.
std::string resigned(std::string text) {
  text.resize(text.rfind("end "));
  return text + "end " + format::hash128(std::as_bytes(std::span(text.data(), text.size()))).to_hex() +
         "\n";
}
void edit_manifest(const TempDir& scratch, const std::function<void(std::string&)>& edit) {
  const std::string path = scratch / "artifact/MANIFEST";
  std::string text = read_text(path);
  edit(text);
  write_text(path, resigned(text));
}
// The manifest's line naming this build's format version.
const std::string kStoreFormatLine = "store-format " + std::to_string(keel::kFormatVersion);
void replace_line(std::string& text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), to);
}
std::string first_segment(const TempDir& scratch) {
  for (const std::string& name : entries_of(scratch / "artifact")) {
    if (name.starts_with("segment-")) return name;
  }
  FAIL("no segment");
  return "";
}

struct Rejection {
  const char* name;
  std::function<void(const TempDir&)> damage;
  ErrorCode code;
  std::string text;
};

TEST_CASE("import refuses each kind of bad artifact and leaves the destination as it was",
          "[artifact]") {
  const std::vector<Rejection> rejections = {
      {"no manifest", [](const TempDir& s) { std::filesystem::remove(s / "artifact/MANIFEST"); },
       ErrorCode::ArtifactInvalid, "no MANIFEST"},
      {"missing file",
       [](const TempDir& s) { std::filesystem::remove(s / ("artifact/" + first_segment(s))); },
       ErrorCode::ArtifactInvalid, "missing file segment-"},
      {"extra file", [](const TempDir& s) { write_text(s / "artifact/notes.txt", "hello"); },
       ErrorCode::ArtifactInvalid, "extra file notes.txt"},
      {"extra store-like file",
       [](const TempDir& s) { write_text(s / "artifact/CONSUMER.x", "x"); },
       ErrorCode::ArtifactInvalid, "extra file CONSUMER.x"},
      {"symbolic link",
       [](const TempDir& s) {
         std::filesystem::rename(s / "artifact/EPOCH", s / "EPOCH.elsewhere");
         std::filesystem::create_symlink(s / "EPOCH.elsewhere", s / "artifact/EPOCH");
       },
       ErrorCode::ArtifactInvalid, "EPOCH is a symbolic link"},
      {"symbolic link manifest",
       [](const TempDir& s) {
         std::filesystem::rename(s / "artifact/MANIFEST", s / "MANIFEST.elsewhere");
         std::filesystem::create_symlink(s / "MANIFEST.elsewhere", s / "artifact/MANIFEST");
       },
       ErrorCode::ArtifactInvalid, "MANIFEST is a symbolic link"},
      {"directory", [](const TempDir& s) { std::filesystem::create_directory(s / "artifact/sub"); },
       ErrorCode::ArtifactInvalid, "sub is not a regular file"},
      {"path traversal",
       [](const TempDir& s) {
         edit_manifest(s, [](std::string& t) { replace_line(t, " EPOCH\n", " ../EPOCH\n"); });
       },
       ErrorCode::ArtifactInvalid, "file name '../EPOCH' refused"},
      {"absolute path",
       [](const TempDir& s) {
         edit_manifest(s, [](std::string& t) { replace_line(t, " EPOCH\n", " /etc/EPOCH\n"); });
       },
       ErrorCode::ArtifactInvalid, "file name '/etc/EPOCH' refused"},
      {"unknown field",
       [](const TempDir& s) {
         edit_manifest(s, [](std::string& t) { replace_line(t, "epoch ", "owner alice\nepoch "); });
       },
       ErrorCode::ArtifactInvalid, "unknown field 'owner'"},
      {"manifest over 1 MiB",
       [](const TempDir& s) {
         std::string text = read_text(s / "artifact/MANIFEST");
         text.insert(0, std::string((1 << 20) + 1 - text.size(), '#'));
         write_text(s / "artifact/MANIFEST", text);
       },
       ErrorCode::ArtifactInvalid, "more than the limit of 1048576"},
      {"artifact version",
       [](const TempDir& s) {
         edit_manifest(s, [](std::string& t) { replace_line(t, "keel-artifact 1", "keel-artifact 2"); });
       },
       ErrorCode::ArtifactInvalid, "artifact version 2 is not supported"},
      {"store format version 0",
       [](const TempDir& s) {
         edit_manifest(s,
                       [](std::string& t) { replace_line(t, kStoreFormatLine, "store-format 0"); });
       },
       ErrorCode::ArtifactInvalid, "store format version 0 is not supported"},
      {"store format version",
       [](const TempDir& s) {
         edit_manifest(s, [](std::string& t) {
           replace_line(t, kStoreFormatLine,
                        "store-format " + std::to_string(keel::kFormatVersion + 1));
         });
       },
       ErrorCode::ArtifactInvalid,
       "store format version " + std::to_string(keel::kFormatVersion + 1) + " is not supported"},
      {"damaged manifest",
       [](const TempDir& s) {
         std::string text = read_text(s / "artifact/MANIFEST");
         replace_line(text, "sequence 120", "sequence 121");
         write_text(s / "artifact/MANIFEST", text);
       },
       ErrorCode::ArtifactInvalid, "does not hash to what its end line says"},
      {"file bytes changed",
       [](const TempDir& s) { test::flip_byte(s / ("artifact/" + first_segment(s)), 100, 0x01); },
       ErrorCode::ArtifactInvalid, "does not hash to what MANIFEST says"},
      {"file longer",
       [](const TempDir& s) {
         std::ofstream(s / "artifact/EPOCH", std::ios::binary | std::ios::app) << "x";
       },
       ErrorCode::ArtifactInvalid, "file EPOCH has"},
      {"sequence beyond the log",
       [](const TempDir& s) {
         edit_manifest(s, [](std::string& t) { replace_line(t, "sequence 120", "sequence 121"); });
       },
       ErrorCode::ArtifactInvalid, "holds events up to sequence 120; MANIFEST says 121"},
      {"epoch forged",
       [](const TempDir& s) {
         edit_manifest(s, [](std::string& t) { replace_line(t, "epoch 2\n", "epoch 7\n"); });
       },
       ErrorCode::ArtifactInvalid, "MANIFEST says 7"},
      {"a consistent forgery of the log",  // files and manifest agree; the index image covers
                                           // the damaged frame, so only verify finds it
       [](const TempDir& s) {
         const std::string segment = first_segment(s);
         test::flip_byte(s / ("artifact/" + segment), 64 + 60, 0x01);
         auto bytes = test::read_bytes(s / ("artifact/" + segment));
         edit_manifest(s, [&](std::string& t) {
           size_t at = t.find(" " + segment + "\n");
           t.replace(at - 32, 32, format::hash128(bytes).to_hex());
         });
       },
       ErrorCode::ArtifactInvalid, "not a sound store: its log does not verify"},
  };
  for (const Rejection& rejection : rejections) {
    DYNAMIC_SECTION(rejection.name) {
      for (bool destination_exists : {false, true}) {
        TempDir scratch;
        make_artifact(scratch);
        rejection.damage(scratch);
        if (destination_exists) std::filesystem::create_directory(scratch / "copy");
        const auto before = entries_of(scratch.path());
        auto imported = import_store(scratch / "artifact", scratch / "copy");
        CHECK(has_error(imported, rejection.code, rejection.text));
        CHECK(entries_of(scratch.path()) == before);  // no staging directory left behind
        if (destination_exists) CHECK(entries_of(scratch / "copy").empty());
      }
    }
  }
}

// segments/golden/artifact-v1 is what the last build of store format 1 exported from a writable
// open of segments/golden/store-v1 (MANIFEST store-format 1, msgpack bodies). This build imports
// it: the copy holds the golden store's events with their hashes, and goes on in format 2.
TEST_CASE("an artifact exported by a format-1 build imports", "[artifact][golden]") {
  TempDir scratch;
  const std::string artifact = KEEL_SOURCE_DIR "/segments/golden/artifact-v1";
  REQUIRE(read_text(artifact + "/MANIFEST").find("store-format 1\n") != std::string::npos);
  const auto before = entries_of(artifact);
  KEEL_REQUIRE_OK(import_store(artifact, scratch / "copy"));
  CHECK(entries_of(artifact) == before);  // the artifact is only read
  StoreOptions read_only;
  read_only.read_only = true;
  auto golden = Store::open(KEEL_SOURCE_DIR "/segments/golden/store-v1", read_only);
  KEEL_REQUIRE_OK(golden);
  const auto expected = events_of(**golden);
  REQUIRE(expected.size() == 34);  // 35 sequences, one of them a cancelled fence's hidden event
  auto copy = open_at(scratch / "copy");
  CHECK(events_of(*copy) == expected);
  append_n(*copy, 3);
  copy.reset();
  copy = open_at(scratch / "copy");
  CHECK(events_of(*copy).size() == expected.size() + 3);
  auto report = copy->verify();
  KEEL_REQUIRE_OK(report);
  CHECK(report->ok);
}

TEST_CASE("import refuses a destination that is not a missing path or an empty directory",
          "[artifact]") {
  TempDir scratch;
  make_artifact(scratch);
  std::filesystem::create_directory(scratch / "full");
  write_text(scratch / "full/keep.txt", "mine");
  CHECK(has_error(import_store(scratch / "artifact", scratch / "full"),
                  ErrorCode::DestinationExists, "it holds 1 entries (keep.txt)"));
  CHECK(read_text(scratch / "full/keep.txt") == "mine");
  write_text(scratch / "file", "mine");
  CHECK(has_error(import_store(scratch / "artifact", scratch / "file"),
                  ErrorCode::DestinationExists, "it is a file"));
  CHECK(has_error(import_store(scratch / "artifact", scratch / "no/such/parent"),
                  ErrorCode::DestinationExists, "is not a directory"));
  CHECK(has_error(import_store(scratch / "nothing", scratch / "copy"), ErrorCode::NotFound,
                  "artifact not found"));
  CHECK(has_error(import_store(scratch / "file", scratch / "copy"), ErrorCode::ArtifactInvalid,
                  "it is not a directory"));
}

// ---- export's refusals and failures ----

TEST_CASE("export refuses a used destination and a read-only store, and cleans up after a "
          "failure",
          "[artifact][fault]") {
  TempDir scratch;
  {
    auto store = open_at(scratch / "source");
    append_n(*store, 50);
    std::filesystem::create_directory(scratch / "full");
    write_text(scratch / "full/keep.txt", "mine");
    CHECK(has_error(export_store(*store, scratch / "full"), ErrorCode::DestinationExists,
                    "keep.txt"));
    CHECK(entries_of(scratch / "full") == std::vector<std::string>{"keep.txt"});
  }
  StoreOptions read_only;
  read_only.read_only = true;
  auto reader = open_at(scratch / "source", read_only);
  CHECK(has_error(export_store(*reader, scratch / "out"), ErrorCode::ReadOnlyStore, "export"));
  CHECK(!std::filesystem::exists(scratch / "out"));

  // A full disk and a failing fdatasync part-way: the error, and nothing left behind.
  for (int fault = 0; fault < 2; ++fault) {
    for (bool destination_exists : {false, true}) {
      platform::FaultFileSystem fs;
      StoreOptions options = small_segments();
      options.file_system = &fs;
      KEEL_REQUIRE_OK(fs.create_directory("/root"));
      auto store = open_at("/root/source", options);
      append_n(*store, 300);
      if (destination_exists) KEEL_REQUIRE_OK(fs.create_directory("/root/out"));
      if (fault == 0) {
        fs.limit_space(10'000);
      } else {
        fs.fail_nth(platform::FaultOp::SyncData, 3);
      }
      auto exported = export_store(*store, "/root/out", {});
      CHECK(has_error(exported, fault == 0 ? ErrorCode::NoSpace : ErrorCode::Io, "/root/out/"));
      fs.clear_faults();
      auto kind = fs.file_kind("/root/out");
      KEEL_REQUIRE_OK(kind);
      if (destination_exists) {
        CHECK(*kind == platform::FileKind::Directory);
        auto left = fs.list_directory("/root/out");
        KEEL_REQUIRE_OK(left);
        CHECK(left->empty());
      } else {
        CHECK(*kind == platform::FileKind::Missing);
      }
      KEEL_REQUIRE_OK(export_store(*store, "/root/out", {}));  // and it works once fixed
    }
  }
}

TEST_CASE("an export waits for a cut outside a fence", "[artifact]") {
  TempDir scratch;
  auto store = open_at(scratch / "source");
  append_n(*store, 10);
  auto fence = store->begin_fence();
  KEEL_REQUIRE_OK(fence);
  KEEL_REQUIRE_OK((*fence)->append({"order:1", ""}, kKind, "fenced"));
  KEEL_REQUIRE_OK(store->sync());
  ExportOptions options;
  options.cut_timeout = std::chrono::milliseconds(200);
  CHECK(has_error(export_store(*store, scratch / "a", options), ErrorCode::WaitTimeout,
                  "durable"));
  CHECK(!std::filesystem::exists(scratch / "a"));
  std::thread committer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    KEEL_REQUIRE_OK((*fence)->commit());
    KEEL_REQUIRE_OK(store->append({"order:2", ""}, kKind, "after"));
  });
  auto exported = export_store(*store, scratch / "b");
  committer.join();
  KEEL_REQUIRE_OK(exported);
  CHECK(exported->sequence == 12);
}

// ---- a power loss during an import ----

constexpr char kArtifact[] = "/root/artifact";
constexpr char kDestination[] = "/root/copy";

// A power loss at every step of an import (at the n-th call of each kind of file operation the
// power goes off: nothing reaches the disk after it, the import's clean-up included), and after
// it returned (n beyond its calls). After the crash the
// destination must be absent, or hold the whole store: MANIFEST's 150 events. Returns the
// violations.
int import_crash_violations(bool in_place) {
  int violations = 0;
  for (platform::FaultOp op : {platform::FaultOp::Write, platform::FaultOp::SyncData,
                               platform::FaultOp::Rename, platform::FaultOp::SyncDirectory}) {
    for (uint64_t n = 1; n <= 40; n += 1 + n / 3) {
      for (uint64_t seed = 1; seed <= 2; ++seed) {
        platform::FaultFileSystem fs;
        if (!fs.create_directory("/root").ok()) return -1;
        {
          StoreOptions options = small_segments();
          options.file_system = &fs;
          auto store = open_at("/root/source", options);
          append_n(*store, 150);
          if (!export_store(*store, kArtifact).ok()) return -1;
        }
        ImportOptions options;
        options.file_system = &fs;
        options.unsafe_in_place_for_test = in_place;
        fs.power_cut_at(op, n);
        (void)import_store(kArtifact, kDestination, options);
        fs.crash(seed * 1000 + n);
        auto kind = fs.file_kind(kDestination);
        if (!kind.ok()) return -1;
        if (*kind == platform::FileKind::Missing) {
          continue;
        }
        StoreOptions read_only;
        read_only.read_only = true;
        read_only.file_system = &fs;
        auto copy = Store::open(kDestination, read_only);
        if (!copy.ok() || (*copy)->stats().sequence_next != 151) ++violations;
      }
    }
  }
  return violations;
}

TEST_CASE("a power loss during an import leaves no store at the destination, or the whole one",
          "[artifact][fault]") {
  CHECK(import_crash_violations(false) == 0);
}

TEST_CASE("control: an import that copies straight into the destination is caught",
          "[artifact][fault]") {
  CHECK(import_crash_violations(true) > 0);
}

// ---- the manifest ----

TEST_CASE("the manifest round-trips and its decoder accepts one spelling only", "[artifact]") {
  artifact::Manifest manifest{1, 4, 1200, {}};
  manifest.files.push_back({"EPOCH", 32, Hash128{1, 2}});
  manifest.files.push_back({"segment-00000000000000000001.keel", 8192, Hash128{~0ull, 3}});
  const std::string text = artifact::encode_manifest(manifest);
  auto decoded = artifact::decode_manifest(text, "M");
  KEEL_REQUIRE_OK(decoded);
  CHECK(*decoded == manifest);
  auto refused = [&](std::string bad, const std::string& why) {
    CHECK(has_error(artifact::decode_manifest(resigned(std::move(bad)), "M"),
                    ErrorCode::ArtifactInvalid, why));
  };
  std::string t = text;
  replace_line(t, "epoch 4", "epoch 04");
  refused(t, "epoch is not a decimal number");
  t = text;
  replace_line(t, "epoch 4", "epoch +4");
  refused(t, "epoch is not a decimal number");
  t = text;
  replace_line(t, "epoch 4", "epoch 18446744073709551616");
  refused(t, "epoch is not a decimal number");
  t = text;
  replace_line(t, "0000000000000001", "000000000000000A");
  refused(t, "hash is not 32 lowercase hex digits");
  t = text;
  replace_line(t, "keel-artifact 1\n", "keel-artifact 1\r\n");
  refused(t, "not a decimal number");
  t = text;
  replace_line(t, "file 32", "file  32");
  refused(t, "size is not a decimal number");
  t = text;  // the two files swapped: out of order
  replace_line(t, "EPOCH", "segment-00000000000000000002.keel");
  refused(t, "out of order or listed twice");
  t = text;
  replace_line(t, "epoch 4\nsequence 1200", "sequence 1200\nepoch 4");
  refused(t, "expected epoch");
  t = text;
  replace_line(t, "file 32", "file 32 ");
  refused(t, "refused");
  t = text;
  replace_line(t, "end ", "file 1 00000000000000000000000000000000 EPOCH\nend ");
  refused(t, "out of order or listed twice");
  for (const char* name : {"MANIFEST", "LOCK", "SYNCED", "EPOCH.tmp", ".hidden", "a/b", "..",
                           "segment-1.keel", "CONSUMER.", "SNAPDATA.x"}) {
    CHECK(artifact::check_artifact_file_name(name) != nullptr);
  }
  CHECK(has_error(artifact::decode_manifest(text + "x", "M"), ErrorCode::ArtifactInvalid,
                  "bytes after the end line"));
  CHECK(has_error(artifact::decode_manifest(text.substr(0, text.size() - 1), "M"),
                  ErrorCode::ArtifactInvalid, "does not end with a newline"));
  CHECK(has_error(artifact::decode_manifest(text.substr(0, text.rfind("end ")), "M"),
                  ErrorCode::ArtifactInvalid, "ends before its end line"));
}

TEST_CASE("Hasher128 over pieces equals hash128 of the whole", "[artifact][format]") {
  std::string bytes(100'000, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131 % 251);
  const auto all = std::as_bytes(std::span(bytes.data(), bytes.size()));
  format::Hasher128 hasher;
  for (size_t at = 0; at < all.size(); at += 7777) {
    hasher.update(all.subspan(at, std::min<size_t>(7777, all.size() - at)));
  }
  CHECK(hasher.digest() == format::hash128(all));
  CHECK(format::Hasher128().digest() == format::hash128({}));
}

}  // namespace
}  // namespace keel
