// Durable data lost at the end of the log (recovery row DurableEndNotReached, segments/FORMAT.md
// 8.8 and 9.1): a store that was closed cleanly, or that saved an index image or idempotency keys,
// knows a point of its log was durable. An open whose log ends before it (the last segment
// removed, emptied, or damaged) fails closed naming both sequences and changes no file, instead of
// truncating a "torn tail" and issuing the lost sequences again. accept_data_loss (keel repair
// --accept-data-loss) is the explicit way on; the loss is recorded in END. Without any such
// evidence a damaged tail is dropped as torn, and verify says so.
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "format/byte_order.h"
#include "format/format_constants.h"
#include "keel/keel.h"
#include "log/log_end.h"
#include "log/segment_files.h"
#include "platform/file_system.h"
#include "test_support.h"

namespace keel {
namespace {

using test::TempDir;

constexpr EventKind kKind = EventKind::make(1, 1);
constexpr uint64_t kEvents = 60;

StoreOptions options_for(bool accept_data_loss = false, bool read_only = false) {
  StoreOptions options;
  options.create_if_missing = !read_only;
  options.read_only = read_only;
  options.segment_size = 4096;  // several segments
  options.id_seed = 7;
  options.accept_data_loss = accept_data_loss;
  return options;
}

std::string store_path(const TempDir& dir) { return dir / "store"; }

std::string file(const TempDir& dir, const char* name) { return store_path(dir) + "/" + name; }

std::string last_segment(const TempDir& dir) {
  auto files = log::list_segment_files(platform::posix_file_system(), store_path(dir));
  REQUIRE(files.ok());
  REQUIRE(files->size() >= 2);
  return files->back().path;
}

// A cleanly closed store of kEvents keyed events in several segments.
std::vector<Receipt> closed_store(const TempDir& dir) {
  auto store = Store::open(store_path(dir), options_for());
  KEEL_REQUIRE_OK(store);
  std::vector<Receipt> receipts;
  for (uint64_t i = 1; i <= kEvents; ++i) {
    AppendOptions options;
    options.idempotency_key = "key-" + std::to_string(i);
    auto receipt = (*store)->append({"order:" + std::to_string(i % 7), "shop"}, kKind,
                                    "payload " + std::to_string(i), options);
    KEEL_REQUIRE_OK(receipt);
    receipts.push_back(*receipt);
  }
  KEEL_REQUIRE_OK((*store)->close());
  return receipts;
}

StoreError open_error(const TempDir& dir, const StoreOptions& options) {
  auto opened = Store::open(store_path(dir), options);
  REQUIRE_FALSE(opened.ok());
  return opened.error();
}

// Writable and read-only opens both refuse, naming the reference and both sequences, and neither
// changes a byte.
void require_refused(const TempDir& dir, const char* reference, uint64_t recovered) {
  auto before = test::snapshot_directory(store_path(dir));
  for (bool read_only : {false, true}) {
    INFO((read_only ? "read-only" : "writable") << " open");
    StoreError error = open_error(dir, options_for(false, read_only));
    INFO(error.to_string());
    CHECK(error.is(ErrorCode::DurableDataLost));
    CHECK(error.error_class() == ErrorClass::FailClosed);
    CHECK(error.field_string("reference") == file(dir, reference));
    CHECK(error.field_u64("recovered") == recovered);
    CHECK(error.field_string("rule") == "DurableEndNotReached");
    CHECK(error.message().find("sequence " + std::to_string(recovered)) != std::string::npos);
  }
  CHECK(test::snapshot_directory(store_path(dir)) == before);
}

TEST_CASE("the last segment of a cleanly closed store lost or damaged fails the open closed",
          "[durable_end]") {
  TempDir dir;
  closed_store(dir);
  const std::string last = last_segment(dir);
  uint64_t first_in_last = 0;
  {
    auto store = Store::open(store_path(dir), options_for(false, true));
    KEEL_REQUIRE_OK(store);
    REQUIRE((*store)->stats().segments >= 2);
  }
  {
    auto header = test::read_bytes(last);
    first_in_last = format::load_u64(header.data() + 32);  // header first_sequence (FORMAT.md 3)
  }
  SECTION("removed") {
    std::remove(last.c_str());
    require_refused(dir, "END", first_in_last - 1);
  }
  SECTION("emptied") {
    test::truncate_file(last, 0);
    require_refused(dir, "END", first_in_last - 1);
  }
  SECTION("cut to its header") {
    test::truncate_file(last, format::kSegmentHeaderSize);
    require_refused(dir, "END", first_in_last - 1);
  }
  SECTION("one bit flipped in its last frame") {
    test::flip_byte(last, test::file_size(last) - 12, 0x01);
    require_refused(dir, "END", kEvents - 1);
  }
}

TEST_CASE("each persisted reference alone catches the lost end", "[durable_end]") {
  TempDir dir;
  closed_store(dir);
  std::remove(last_segment(dir).c_str());
  const char* kept = GENERATE("END", "INDEX", "IDEMPOTENCY");
  for (const char* name : {"END", "INDEX", "IDEMPOTENCY"}) {
    if (std::string(name) != kept) std::remove(file(dir, name).c_str());
  }
  INFO("only " << kept << " is left");
  StoreError error = open_error(dir, options_for());
  INFO(error.to_string());
  CHECK(error.is(ErrorCode::DurableDataLost));
  CHECK(error.field_string("reference") == file(dir, kept));
  CHECK(error.field_u64("referenced") == kEvents);
}

TEST_CASE("a committed fence's end record is protected by END's point, not only its sequence",
          "[durable_end]") {
  TempDir dir;
  {
    auto store = Store::open(store_path(dir), options_for());
    KEEL_REQUIRE_OK(store);
    KEEL_REQUIRE_OK((*store)->append({"a", ""}, kKind, "before"));
    auto fence = (*store)->begin_fence();
    KEEL_REQUIRE_OK(fence);
    KEEL_REQUIRE_OK((*fence)->append({"a", ""}, kKind, "fenced 1"));
    KEEL_REQUIRE_OK((*fence)->append({"a", ""}, kKind, "fenced 2"));
    KEEL_REQUIRE_OK((*fence)->commit());
    KEEL_REQUIRE_OK((*store)->close());
  }
  // Every event is still in the log when the FenceCommit (the last frame) is damaged: without END
  // the open would call it a torn tail, cancel the fence and hide two committed events.
  std::remove(file(dir, "INDEX").c_str());
  std::remove(file(dir, "IDEMPOTENCY").c_str());
  auto segments = log::list_segment_files(platform::posix_file_system(), store_path(dir));
  KEEL_REQUIRE_OK(segments);
  const std::string last = segments->back().path;
  test::flip_byte(last, test::file_size(last) - 12, 0x01);
  StoreError error = open_error(dir, options_for());
  INFO(error.to_string());
  CHECK(error.is(ErrorCode::DurableDataLost));
  CHECK(error.field_u64("referenced") == 3u);
  CHECK(error.field_u64("recovered") == 3u);
}

TEST_CASE("without evidence a damaged tail is dropped as torn, and verify reports the drop",
          "[durable_end]") {
  TempDir dir;
  closed_store(dir);
  for (const char* name : {"END", "INDEX", "IDEMPOTENCY"}) std::remove(file(dir, name).c_str());
  const std::string last = last_segment(dir);
  test::flip_byte(last, test::file_size(last) - 12, 0x01);
  {
    auto store = Store::open(store_path(dir), options_for(false, true));
    KEEL_REQUIRE_OK(store);
    CHECK((*store)->stats().sequence_next == kEvents);
    auto report = (*store)->verify();
    KEEL_REQUIRE_OK(report);
    CHECK(report->ok);
    REQUIRE(report->recovery_dropped.size() == 1);
    CHECK(report->recovery_dropped[0].find("TornTail") != std::string::npos);
    CHECK(report->recovery_dropped[0].find("not cut: read-only") != std::string::npos);
  }
  TempDir scratch;
  test::CommandRun run = test::run_command(scratch, KEEL_CLI, "verify " + store_path(dir));
  INFO(run.out << run.err);
  CHECK(run.exit_code == 3);
  CHECK(run.out.find("recovery dropped: TornTail") != std::string::npos);
  CHECK(run.out.find("ok:") == std::string::npos);
}

TEST_CASE("accept_data_loss goes on in a new epoch, records the loss, and needs no word again",
          "[durable_end]") {
  TempDir dir;
  std::vector<Receipt> lost = closed_store(dir);
  std::remove(last_segment(dir).c_str());
  uint64_t recovered = 0;
  {
    auto store = Store::open(store_path(dir), options_for(/*accept_data_loss=*/true));
    KEEL_REQUIRE_OK(store);
    StoreStats stats = (*store)->stats();
    recovered = stats.sequence_next - 1;
    REQUIRE(recovered < kEvents);
    REQUIRE(stats.data_losses.size() == 1);
    CHECK(stats.data_losses[0].find("loss of sequences " + std::to_string(recovered + 1) + " to " +
                                    std::to_string(kEvents)) != std::string::npos);
    // The lost sequence is issued again, in a later epoch: its old receipt is told apart.
    const Receipt& first_lost = lost[recovered];
    auto again = (*store)->append({"order:again", "shop"}, kKind, "new");
    KEEL_REQUIRE_OK(again);
    CHECK(again->sequence == first_lost.sequence);
    CHECK(again->epoch > first_lost.epoch);
    // A lost event's idempotency key names nothing any more: the key is new.
    AppendOptions keyed;
    keyed.idempotency_key = "key-" + std::to_string(kEvents);
    auto rekeyed = (*store)->append({"order:x", "shop"}, kKind, "other payload", keyed);
    KEEL_REQUIRE_OK(rekeyed);
    CHECK(rekeyed->sequence == recovered + 2);
    KEEL_REQUIRE_OK((*store)->close());
  }
  // The references were cut back and END rewritten: a plain open is fine, the loss on record.
  auto store = Store::open(store_path(dir), options_for());
  KEEL_REQUIRE_OK(store);
  CHECK((*store)->stats().sequence_next == recovered + 3);
  CHECK((*store)->stats().data_losses.size() == 1);
  auto report = (*store)->verify();
  KEEL_REQUIRE_OK(report);
  CHECK(report->ok);
  CHECK(report->recovery_dropped.empty());
  CHECK(report->data_losses.size() == 1);
}

TEST_CASE("keel repair refuses without --accept-data-loss and goes on with it", "[durable_end]") {
  TempDir dir;
  closed_store(dir);
  std::remove(last_segment(dir).c_str());
  TempDir scratch;
  auto before = test::snapshot_directory(store_path(dir));
  test::CommandRun refused = test::run_command(scratch, KEEL_CLI, "repair " + store_path(dir));
  INFO(refused.out << refused.err);
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("DurableDataLost") != std::string::npos);
  CHECK(refused.err.find("--accept-data-loss") != std::string::npos);
  CHECK(test::snapshot_directory(store_path(dir)) == before);
  test::CommandRun verify_refused =
      test::run_command(scratch, KEEL_CLI, "verify " + store_path(dir));
  CHECK(verify_refused.exit_code == 1);
  CHECK(verify_refused.err.find("DurableDataLost") != std::string::npos);

  test::CommandRun repaired =
      test::run_command(scratch, KEEL_CLI, "repair " + store_path(dir) + " --accept-data-loss");
  INFO(repaired.out << repaired.err);
  CHECK(repaired.exit_code == 0);
  CHECK(repaired.out.find("DurableEndNotReached accepted") != std::string::npos);
  CHECK(repaired.out.find("data loss on record: epoch 2 accepted the loss of sequences") !=
        std::string::npos);
  test::CommandRun verified = test::run_command(scratch, KEEL_CLI, "verify " + store_path(dir));
  INFO(verified.out << verified.err);
  CHECK(verified.exit_code == 0);
  CHECK(verified.out.find("data loss on record") != std::string::npos);
  CHECK(verified.out.find("ok:") != std::string::npos);
}

TEST_CASE(
    "a damaged END fails closed, accept_data_loss sets it aside and a clean close rewrites it",
    "[durable_end]") {
  TempDir dir;
  closed_store(dir);
  test::flip_byte(file(dir, "END"), 40, 0x01);
  StoreError error = open_error(dir, options_for());
  CHECK(error.is(ErrorCode::CorruptSidecar));
  CHECK(error.field_string("path") == file(dir, "END"));
  {
    auto store = Store::open(store_path(dir), options_for(true));
    KEEL_REQUIRE_OK(store);
    auto actions = (*store)->stats().recovery_actions;
    REQUIRE(actions.size() == 1);
    CHECK(actions[0].find("damaged END set aside") != std::string::npos);
    KEEL_REQUIRE_OK((*store)->close());
  }
  auto store = Store::open(store_path(dir), options_for());
  KEEL_REQUIRE_OK(store);
  CHECK((*store)->stats().sequence_next == kEvents + 1);
}

TEST_CASE("an END from an epoch later than EPOCH is CorruptSidecar", "[durable_end]") {
  TempDir dir;
  closed_store(dir);
  auto end = log::read_log_end(platform::posix_file_system(), store_path(dir));
  KEEL_REQUIRE_OK(end);
  REQUIRE(end->has_value());
  log::LogEnd later = **end;
  later.epoch = 99;
  KEEL_REQUIRE_OK(log::write_log_end(platform::posix_file_system(), store_path(dir), later));
  StoreError error = open_error(dir, options_for());
  CHECK(error.is(ErrorCode::CorruptSidecar));
  CHECK(error.message().find("epoch 99") != std::string::npos);
}

TEST_CASE("END's payload round-trips and every malformed payload is refused with a reason",
          "[durable_end]") {
  log::LogEnd end{5, 3, 4096, 61, {{2, 40, 45, 2, 2048, 300}, {5, 50, 61, 3, 128, 17}}};
  std::vector<std::byte> bytes = log::encode_log_end(end);
  CHECK(bytes.size() == log::kLogEndFixedBytes + 2 * log::kAcceptedLossBytes);
  log::LogEnd decoded;
  CHECK(log::decode_log_end(bytes, decoded) == nullptr);
  CHECK(decoded == end);
  auto refused = [](log::LogEnd bad) {
    log::LogEnd out;
    return log::decode_log_end(log::encode_log_end(bad), out) != nullptr;
  };
  CHECK(refused(log::LogEnd{0, 3, 4096, 61, {}}));                      // zero epoch
  CHECK(refused(log::LogEnd{5, 0, 4096, 61, {}}));                      // zero segment
  CHECK(refused(log::LogEnd{5, 3, 63, 61, {}}));                        // inside the segment header
  CHECK(refused(log::LogEnd{5, 3, 4096, 0, {}}));                       // zero sequence
  CHECK(refused(log::LogEnd{5, 3, 4096, 61, {{6, 40, 45, 2, 0, 0}}}));  // loss from a later epoch
  CHECK(refused(log::LogEnd{5, 3, 4096, 61, {{2, 40, 40, 2, 0, 0}}}));  // a loss of nothing
  std::vector<std::byte> shorter(bytes.begin(), bytes.end() - 1);
  CHECK(log::decode_log_end(shorter, decoded) != nullptr);
  std::vector<std::byte> truncated(bytes.begin(), bytes.begin() + 39);
  CHECK(log::decode_log_end(truncated, decoded) != nullptr);
  std::vector<std::byte> huge_count = bytes;
  huge_count[32] = std::byte{0xff};
  CHECK(log::decode_log_end(huge_count, decoded) != nullptr);
}

}  // namespace
}  // namespace keel
