// The StoreError contract table (docs/ARCHITECTURE.md §9): every code pinned to its handling class,
// the fields its message names, and whether it forwards a cause. Adding a code without a row here
// fails to compile (static_assert on kErrorCodeCount).
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "keel/error.h"

using keel::ErrorClass;
using keel::ErrorCode;
using keel::StoreError;

namespace {

struct Case {
  const char* name;
  StoreError error;
  ErrorClass error_class;
  std::vector<const char*> message_needles;
  const char* cause_needle;  // nullptr: no cause
};

StoreError io_cause(const char* detail) {
  return StoreError(ErrorCode::Io)
      .with("operation", "fdatasync")
      .with("path", "/data/store/segment-00000000000000000003.keel")
      .with("detail", detail)
      .with("errno", 5);
}

std::vector<Case> contract_table() {
  return {
      {"InvalidArgument",
       StoreError(ErrorCode::InvalidArgument).with("argument", "segment_size").with("reason", "must be at least 4096 bytes"),
       ErrorClass::Domain, {"invalid argument", "segment_size", "4096"}, nullptr},
      {"InvalidCoordinate",
       StoreError(ErrorCode::InvalidCoordinate).with("component", "entity").with("reason", "empty"),
       ErrorClass::Domain, {"invalid coordinate", "entity", "empty"}, nullptr},
      {"NotFound", StoreError(ErrorCode::NotFound).with("what", "event").with("key", "00ff"),
       ErrorClass::Domain, {"event", "not found", "00ff"}, nullptr},
      {"StoreLocked",
       StoreError(ErrorCode::StoreLocked).with("path", "/data/locked").with("mode", "writable").with("holder", "process 4242"),
       ErrorClass::Domain, {"/data/locked", "locked", "writable", "process 4242"}, nullptr},
      {"ReadOnlyStore",
       StoreError(ErrorCode::ReadOnlyStore).with("path", "/data/ro").with("operation", "append"),
       ErrorClass::Domain, {"/data/ro", "read-only", "append"}, nullptr},
      {"NotSupported",
       StoreError(ErrorCode::NotSupported).with("feature", "idempotency_key").with("reason", "not yet honoured"),
       ErrorClass::Domain, {"idempotency_key", "not supported", "not yet honoured"}, nullptr},
      {"PayloadTooLarge",
       StoreError(ErrorCode::PayloadTooLarge).with("what", "record").with("size", uint64_t{5000}).with("limit", uint64_t{3968}),
       ErrorClass::Domain, {"record", "5000", "3968"}, nullptr},
      {"SequenceMismatch",
       StoreError(ErrorCode::SequenceMismatch).with("entity", "user:1").with("lane", 0).with("expected", uint64_t{5}).with("actual", uint64_t{3}),
       ErrorClass::Domain, {"CAS failed", "user:1", "expected clock 5", "actual 3"}, nullptr},
      {"IdempotencyConflict",
       StoreError(ErrorCode::IdempotencyConflict).with("key", "\"order-7\"").with("reason", "another payload"),
       ErrorClass::Domain, {"idempotency key", "order-7", "conflicts", "another payload"}, nullptr},
      {"GateDenied",
       StoreError(ErrorCode::GateDenied).with("gate", "credit-limit").with("reason", "over 100"),
       ErrorClass::Domain, {"gate credit-limit", "denied", "over 100"}, nullptr},
      {"GateReentrant",
       StoreError(ErrorCode::GateReentrant).with("gate", "audit").with("operation", "get"),
       ErrorClass::Domain, {"gate audit", "called back", "get"}, nullptr},
      {"GateFailed",
       StoreError(ErrorCode::GateFailed).with("gate", "audit").with("reason", "threw: boom"),
       ErrorClass::Domain, {"gate audit", "failed", "threw: boom"}, nullptr},
      {"FenceNotActive",
       StoreError(ErrorCode::FenceNotActive).with("fence", uint64_t{4097}).with("reason", "it was committed or cancelled"),
       ErrorClass::Domain, {"fence 4097", "not active", "committed or cancelled"}, nullptr},
      {"BatchItemTooLarge",
       StoreError(ErrorCode::BatchItemTooLarge).with("index", uint64_t{3}).with("what", "payload").with("size", uint64_t{2000}).with("limit", uint64_t{1024}),
       ErrorClass::Domain, {"batch item 3", "payload", "2000", "1024"}, nullptr},
      {"VisibilityFenceActive",
       StoreError(ErrorCode::VisibilityFenceActive).with("fence", uint64_t{4097}).with("operation", "append"),
       ErrorClass::Retryable, {"visibility fence 4097", "active", "append"}, nullptr},
      {"Io", io_cause("Input/output error"), ErrorClass::Retryable,
       {"I/O error", "fdatasync", "segment-00000000000000000003.keel", "Input/output error", "errno 5"}, nullptr},
      {"NoSpace",
       StoreError(ErrorCode::NoSpace).with("operation", "fallocate").with("path", "/data/s").with("bytes", uint64_t{67108864}),
       ErrorClass::Retryable, {"no space", "fallocate", "/data/s", "67108864"}, nullptr},
      {"WaitTimeout",
       StoreError(ErrorCode::WaitTimeout).with("watermark", "durable").with("target", uint64_t{42}).with("waited_ms", uint64_t{250}),
       ErrorClass::Retryable, {"durable", "42", "250ms", "timed out"}, nullptr},
      {"WriteInDoubt",
       StoreError(ErrorCode::WriteInDoubt).with("operation", "fdatasync").with("sequence", uint64_t{17}).caused_by(io_cause("disk gone")),
       ErrorClass::Indeterminate, {"in doubt", "fdatasync", "17"}, "disk gone"},
      {"OperationInDoubt",
       StoreError(ErrorCode::OperationInDoubt).with("operation", "retention to segment 4").with("reason", "the directory sync failed").caused_by(io_cause("EIO on fsync")),
       ErrorClass::Indeterminate, {"retention to segment 4", "may have taken effect", "the directory sync failed"}, "EIO on fsync"},
      {"Corruption",
       StoreError(ErrorCode::Corruption).with("path", "/data/s/segment-1").with("offset", uint64_t{128}).with("reason", "bad checksum").with("rule", "SealedSegmentDamage"),
       ErrorClass::FailClosed, {"corruption", "segment-1", "128", "bad checksum", "SealedSegmentDamage"}, nullptr},
      {"SegmentChainBroken",
       StoreError(ErrorCode::SegmentChainBroken).with("path", "/data/s/segment-3").with("reason", "ids not consecutive").with("rule", "SegmentChainGap"),
       ErrorClass::FailClosed, {"chain broken", "segment-3", "ids not consecutive", "SegmentChainGap"}, nullptr},
      {"HiddenRangesCorrupt",
       StoreError(ErrorCode::HiddenRangesCorrupt).with("path", "/data/s/segment-2").with("offset", uint64_t{4096}).with("reason", "fence end without its begin").with("rule", "OpenFenceFollowedByRecords"),
       ErrorClass::FailClosed, {"hidden ranges", "segment-2", "4096", "fence end without its begin", "OpenFenceFollowedByRecords"}, nullptr},
      {"CorruptSidecar",
       StoreError(ErrorCode::CorruptSidecar).with("path", "/data/s/EPOCH").with("reason", "checksum mismatch"),
       ErrorClass::FailClosed, {"corrupt sidecar", "EPOCH", "checksum mismatch"}, nullptr},
      {"PermissionDenied",
       StoreError(ErrorCode::PermissionDenied).with("operation", "open lock file").with("path", "/data/s/LOCK").with("detail", "Read-only file system").with("errno", uint64_t{30}).with("needed", "a file system mounted read-write"),
       ErrorClass::Domain, {"open lock file", "/data/s/LOCK", "refused", "Read-only file system", "errno 30", "needs a file system mounted read-write"}, nullptr},
      {"ServerUnavailable",
       StoreError(ErrorCode::ServerUnavailable).with("server", "nats://127.0.0.1:4222").with("operation", "publish").with("detail", "timeout"),
       ErrorClass::Retryable, {"nats://127.0.0.1:4222", "publish failed", "timeout"}, nullptr},
      {"CursorExpired",
       StoreError(ErrorCode::CursorExpired).with("cursor", uint64_t{41}).with("first_retained", uint64_t{43}),
       ErrorClass::Domain, {"cursor 41", "first retained sequence is 43", "resync"}, nullptr},
      {"StaleSequence",
       StoreError(ErrorCode::StaleSequence).with("name", "orders").with("next", uint64_t{15}).with("floor", uint64_t{20}).with("reason", "the state was loaded from sequence 10"),
       ErrorClass::Domain, {"snapshot orders", "sequence 15 is stale", "loaded from sequence 10", "published: sequence 20"}, nullptr},
      {"DestinationExists",
       StoreError(ErrorCode::DestinationExists).with("path", "/backup/s").with("reason", "it holds 3 entries"),
       ErrorClass::Domain, {"/backup/s", "it holds 3 entries", "missing or empty directory"}, nullptr},
      {"ArtifactInvalid",
       StoreError(ErrorCode::ArtifactInvalid).with("path", "/in/s").with("reason", "file EPOCH does not hash to what MANIFEST says"),
       ErrorClass::FailClosed, {"/in/s", "refused", "EPOCH does not hash"}, nullptr},
      {"ReplicaDiverged",
       StoreError(ErrorCode::ReplicaDiverged).with("what", "stream orders").with("sequence", uint64_t{12}).with("reason", "it holds another event there"),
       ErrorClass::FailClosed, {"stream orders diverged at sequence 12", "another event"}, nullptr},
      {"MessageInvalid",
       StoreError(ErrorCode::MessageInvalid).with("position", uint64_t{7}).with("stream", "orders").with("reason", "no Keel-Sequence header"),
       ErrorClass::FailClosed, {"message 7 of stream orders", "no Keel-Sequence header"}, nullptr},
      {"CursorAheadOfLog",
       StoreError(ErrorCode::CursorAheadOfLog).with("consumer", "consumer billing").with("cursor", uint64_t{90}).with("recovered", uint64_t{77}),
       ErrorClass::FailClosed, {"consumer billing committed cursor 90", "last sequence 77"}, nullptr},
      {"DurableDataLost",
       StoreError(ErrorCode::DurableDataLost).with("reference", "/data/s/END").with("referenced", uint64_t{10}).with("recovered", uint64_t{7}).with("found", "TornTail at segment-2:4096").with("rule", "DurableEndNotReached"),
       ErrorClass::FailClosed, {"END", "sequence 10", "sequence 7", "TornTail at segment-2:4096", "accept_data_loss", "DurableEndNotReached"}, nullptr},
      {"UnsupportedVersion",
       StoreError(ErrorCode::UnsupportedVersion).with("path", "/data/s/EPOCH").with("found", uint64_t{9}).with("supported", uint64_t{1}),
       ErrorClass::FailClosed, {"EPOCH", "version 9", "supported 1"}, nullptr},
      {"WriterPoisoned",
       StoreError(ErrorCode::WriterPoisoned).with("operation", "fdatasync").caused_by(io_cause("EIO on sync")),
       ErrorClass::FailClosed, {"poisoned", "fdatasync", "reopen"}, "EIO on sync"},
      {"InvariantViolation",
       StoreError(ErrorCode::InvariantViolation).with("invariant", "accepted >= written"),
       ErrorClass::FailClosed, {"invariant violation", "accepted >= written"}, nullptr},
      {"BatchItemFailed",
       StoreError(ErrorCode::BatchItemFailed).with("index", uint64_t{2}).caused_by(io_cause("flush timed out")),
       ErrorClass::Retryable, {"batch failed at item 2"}, "flush timed out"},
  };
}

// Every {field} of a template.
std::set<std::string> template_fields(std::string_view tmpl) {
  std::set<std::string> fields;
  for (size_t open = tmpl.find('{'); open != std::string_view::npos; open = tmpl.find('{', open + 1)) {
    size_t close = tmpl.find('}', open);
    fields.emplace(tmpl.substr(open + 1, close - open - 1));
  }
  return fields;
}

}  // namespace

TEST_CASE("StoreError contract table pins every code's class, message fields and cause",
          "[error]") {
  auto table = contract_table();
  static_assert(keel::kErrorCodeCount == 38,
                "STORE_ERROR CONTRACT TABLE OUT OF DATE: add a row for the new code, then bump");
  REQUIRE(table.size() == keel::kErrorCodeCount);
  std::set<ErrorCode> covered;
  for (const auto& c : table) {
    INFO("case " << c.name << ": " << c.error.to_string());
    CHECK(c.error.code_name() == c.name);
    covered.insert(c.error.code());
    CHECK(c.error.error_class() == c.error_class);
    std::string message = c.error.message();
    for (const char* needle : c.message_needles) CHECK(message.find(needle) != std::string::npos);
    // Every field the template names was given, so nothing renders as {field?}.
    CHECK(message.find("?}") == std::string::npos);
    for (const auto& field : template_fields(keel::error_message_template(c.error.code()))) {
      CHECK(c.error.field(field) != nullptr);
    }
    if (c.cause_needle == nullptr) {
      CHECK(c.error.cause() == nullptr);
    } else {
      REQUIRE(c.error.cause() != nullptr);
      CHECK(c.error.cause()->message().find(c.cause_needle) != std::string::npos);
      CHECK(c.error.to_string().find(c.cause_needle) != std::string::npos);
    }
  }
  CHECK(covered.size() == keel::kErrorCodeCount);
}

TEST_CASE("A wrapper inherits its cause's class, through several levels", "[error]") {
  auto corrupt = StoreError(ErrorCode::Corruption)
                     .with("path", "p").with("offset", uint64_t{0}).with("reason", "r").with("rule", "x");
  auto wrapped = StoreError(ErrorCode::BatchItemFailed).with("index", uint64_t{0}).caused_by(corrupt);
  CHECK(wrapped.error_class() == ErrorClass::FailClosed);
  auto twice = StoreError(ErrorCode::BatchItemFailed).with("index", uint64_t{1}).caused_by(wrapped);
  CHECK(twice.error_class() == ErrorClass::FailClosed);
  CHECK(twice.root_cause().code() == ErrorCode::Corruption);
  auto domain = StoreError(ErrorCode::BatchItemFailed)
                    .with("index", uint64_t{3})
                    .caused_by(StoreError(ErrorCode::InvalidCoordinate).with("component", "entity").with("reason", "empty"));
  CHECK(domain.error_class() == ErrorClass::Domain);
  // A wrapper without a cause is treated as the most cautious class.
  CHECK(StoreError(ErrorCode::BatchItemFailed).with("index", uint64_t{0}).error_class() ==
        ErrorClass::FailClosed);
}

TEST_CASE("A missing field renders visibly instead of silently", "[error]") {
  auto e = StoreError(ErrorCode::NotFound).with("what", "event");
  CHECK(e.message() == "event not found: {key?}");
}
