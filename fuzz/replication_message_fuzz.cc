// libFuzzer target: replication messages as a transport delivers them (include/keel/replication.h,
// docs/REPLICATION.md). An input is messages joined by "\n--\n"; each is its Keel-Sequence header
// value, "\n", its Keel-Record header value, "\n", optional lines "F=<Keel-Fence-End>" and
// "H=<Keel-Hidden>", then its body. Each is parsed
// (decode_replication_message) and, when accepted, handed to a Replica writing into a new store in
// memory, in order.
//
// Invariants checked beyond "no crash, no hang, no allocation above the limit":
// - an accepted message keeps the body it was given, lies inside its record, and parses again the
//   same from the header values it prints;
// - a refusal is MessageInvalid (the parser) or, from the replica, one of the documented codes;
// - whatever the replica wrote verifies (checksums, chained hashes, chains) and reopens whole.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz_support.h"
#include "keel/keel.h"
#include "platform/memory_file_system.h"

namespace keel::fuzz {
namespace {

std::vector<std::string_view> split(std::string_view input, std::string_view separator) {
  std::vector<std::string_view> parts;
  for (;;) {
    size_t at = input.find(separator);
    parts.push_back(input.substr(0, at));
    if (at == std::string_view::npos) return parts;
    input.remove_prefix(at + separator.size());
  }
}

bool documented_refusal(const StoreError& e) {
  return e.is(ErrorCode::MessageInvalid) || e.is(ErrorCode::ReplicaDiverged) ||
         e.is(ErrorCode::NotSupported) || e.is(ErrorCode::InvalidArgument);
}

std::unique_ptr<Store> open_replica(platform::MemoryFileSystem& fs) {
  StoreOptions options;
  options.create_if_missing = true;
  options.file_system = &fs;
  options.segment_size = 65536;  // preallocated in memory: within the fuzzer's allocation limit
  auto store = Store::open("/replica", options);
  check(store.ok(), "open the replica in memory");
  return std::move(store).value();
}

void run(std::string_view input) {
  platform::MemoryFileSystem fs;
  auto store = open_replica(fs);
  Replica replica(*store);
  uint64_t position = 0;
  for (std::string_view message : split(input, "\n--\n")) {
    ++position;
    std::vector<std::string_view> fields = split(message, "\n");
    if (fields.size() < 3) continue;
    std::string_view body;
    // Optional third and fourth lines "F=<fence end>" / "H=<hidden>" are header values too.
    ReplicationHeaders headers{fields[0], fields[1], std::nullopt, std::nullopt};
    size_t skip = fields[0].size() + fields[1].size() + 2;
    for (size_t f = 2; f + 1 < fields.size() && fields[f].size() >= 2 && fields[f][1] == '='; ++f) {
      (fields[f][0] == 'F' ? headers.fence_end : headers.hidden) = fields[f].substr(2);
      skip += fields[f].size() + 1;
    }
    body = message.substr(std::min(skip, message.size()));
    auto decoded = decode_replication_message("fuzz", position, headers, body);
    if (!decoded.ok()) {
      check(decoded.error().is(ErrorCode::MessageInvalid),
            "a parser refusal that is not MessageInvalid");
      continue;
    }
    check(decoded->body == body, "an accepted message changed its body");
    check(decoded->sequence >= decoded->record_first &&
              decoded->sequence - decoded->record_first < decoded->record_events,
          "an accepted message outside its record");
    const std::string sequence = decoded->sequence_header(), record = decoded->record_header();
    const std::optional<std::string> fence_end = decoded->fence_end_header();
    const std::optional<std::string> hidden = decoded->hidden_header();
    ReplicationHeaders printed{sequence, record, std::nullopt, std::nullopt};
    if (fence_end) printed.fence_end = *fence_end;
    if (hidden) printed.hidden = *hidden;
    auto again = decode_replication_message("fuzz", position, printed, body);
    check(again.ok() && again->sequence == decoded->sequence &&
              again->record_first == decoded->record_first &&
              again->record_events == decoded->record_events &&
              again->event_id == decoded->event_id && again->chained_hash == decoded->chained_hash,
          "a message does not parse again the same from its printed headers");
    auto applied = replica.apply(*decoded);
    if (!applied.ok()) {
      check(documented_refusal(applied.error()), "an undocumented refusal from the replica");
      break;  // a replica stops at its first refusal, as the follower does
    }
  }
  check(replica.sync().ok(), "sync the replica");
  auto verified = store->verify();
  check(verified.ok() && verified->ok, "what the replica wrote does not verify");
  const uint64_t events = verified->events_checked;
  check(store->close().ok(), "close the replica");
  store = open_replica(fs);
  check(store->stats().events == events, "the replica does not reopen whole");
}

}  // namespace
}  // namespace keel::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  keel::fuzz::run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
