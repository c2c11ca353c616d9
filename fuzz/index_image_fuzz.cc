// libFuzzer target: the index image decoder (src/index/index_image.cc, segments/FORMAT.md 8.4).
// Each input is decoded four times: as a whole INDEX file, and as the body under a valid header
// (magic, version, body length and checksum made right by the harness) of each version read, 1 to
// 3, so mutations reach the section decoder instead of dying at the checksum. Both go through
// decode_image (bytes in memory) and decode_image_file (a file read front to back).
//
// Invariants checked beyond "no crash, no hang, no allocation above the limit":
// - decode_image and decode_image_file agree on the outcome and the reason;
// - anything but Ok gives a reason; a body under a valid header is never a version outcome;
// - an index decoded Ok is safe to use as the store uses it: every visible event locates, finds
//   its own id, belongs to its stream, has a scope and an HLC; every link from a visible event
//   (cause, newest effect, older sibling, previous of its correlation) and every correlation head
//   names a visible event, the causal walks (ancestors, descendants) end within their limit,
//   descendants lists each event once and only later ones, and every correlation chain ends;
// - it re-encodes (encode_image) to an image that decodes Ok to the same answers.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "format/byte_order.h"
#include "format/checksum.h"
#include "fuzz_support.h"
#include "index/causal.h"
#include "index/index_image.h"
#include "platform/memory_file_system.h"

namespace keel::fuzz {
namespace {

using Bytes = std::vector<std::byte>;

// encode_image's bytes as the Bytes the rest of this file handles.
template <typename... Args>
Bytes encode_image(const Args&... args) {
  index::ImageBytes image = index::encode_image(args...);
  return Bytes(image.begin(), image.end());
}

constexpr size_t kWalkLimit = 64;

struct Decoded {
  index::ImageDecode result = index::ImageDecode::Damaged;
  std::string reason;
  index::EventIndex index;
  index::ImageCheckpoint checkpoint;
};

Decoded decode_bytes(std::span<const std::byte> bytes) {
  Decoded d;
  d.result = index::decode_image(bytes, d.index, d.checkpoint, d.reason);
  return d;
}

Decoded decode_file(std::span<const std::byte> bytes) {
  platform::MemoryFileSystem fs;
  check(fs.create_directory("/image").ok(), "create_directory");
  fs.set_contents("/image/INDEX", Bytes(bytes.begin(), bytes.end()));
  auto file = fs.open("/image/INDEX", platform::OpenMode::ReadOnly);
  check(file.ok(), "open");
  Decoded d;
  Result<index::ImageDecode> decoded =
      index::decode_image_file(**file, d.index, d.checkpoint, d.reason);
  // A memory file never fails a read, so the only errors are the decoder's own outcomes.
  check(decoded.ok(), "decode_image_file failed a read of a memory file");
  d.result = *decoded;
  return d;
}

bool visible(const index::EventIndex& x, uint64_t s) { return s != 0 && x.visible_in_index(s); }

// What the store's reads and causal answers touch (store_query.cc ref_at, selection.cc), as a
// string to compare two decodes by.
std::string exercise(const index::EventIndex& x) {
  std::string answers;
  auto note = [&](uint64_t v) { answers += std::to_string(v) + ","; };
  const uint64_t n = x.next_sequence() - 1;
  uint64_t visible_count = 0;
  note(n);
  note(x.event_count());
  note(x.stream_count());
  note(x.last_visible_sequence());
  for (uint64_t s = 1; s <= n; ++s) {
    if (!x.visible_in_index(s)) {
      check(!x.locate(s).has_value(), "a hidden event locates");
      note(0);
      continue;
    }
    ++visible_count;
    std::optional<index::EventLocation> at = x.locate(s);
    check(at.has_value() && at->frame_offset != 0, "a visible event does not locate");
    check(x.find(x.id_at(s)) == s, "a visible event's id does not find it");
    const index::EntityStream& stream = x.stream_at(s);
    uint64_t clock = stream.clock_of(s);
    check(clock != 0, "a visible event is not in its stream");
    const std::string& scope = x.scope_name(x.scope_number_at(s));
    Hlc hlc = x.hlc_at(s);
    note(at->segment_id);
    note(at->frame_offset);
    note(clock);
    note(scope.size());
    note(hlc.wall_ms);
    note(x.kind_at(s));
    for (uint64_t link : {x.cause_of(s), x.newest_effect_of(s), x.older_sibling_of(s),
                          x.previous_of_correlation(s)}) {
      check(link == 0 || visible(x, link), "a link names an event that is not visible");
      note(link);
    }
    index::AncestorWalk walk = index::ancestors(x, s, kWalkLimit);
    check(!walk.chain.empty() && walk.chain.size() <= kWalkLimit, "ancestors beyond the limit");
    for (uint64_t a : walk.chain) note(x.stream_at(a).clock_of(a));
    bool truncated = false;
    std::vector<uint64_t> effects = index::descendants(x, s, n, kWalkLimit, truncated);
    check(effects.size() <= kWalkLimit, "descendants beyond the limit");
    std::vector<uint64_t> sorted = effects;
    std::sort(sorted.begin(), sorted.end());
    check(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(),
          "descendants lists an event twice");
    check(sorted.empty() || sorted.front() > s, "descendants lists an event not after it");
    for (uint64_t e : effects) note(x.stream_at(e).clock_of(e));
    uint64_t steps = 0;
    for (uint64_t c = x.newest_of_correlation(x.id_at(s)); c != 0;
         c = x.previous_of_correlation(c)) {
      check(visible(x, c), "a correlation chain names an event that is not visible");
      check(++steps <= n, "a correlation chain does not end");
    }
    note(steps);
  }
  check(visible_count == x.event_count(), "the visible count does not match the columns");
  uint64_t streams = 0;
  for (const index::EntityStream* stream : x.streams_with_prefix("")) {
    ++streams;
    note(stream->sequences.size());
    check(x.stream(stream->entity, stream->lane) == stream, "a stream does not look itself up");
  }
  check(streams == x.stream_count(), "the stream count does not match the streams");
  for (uint32_t lane : x.lanes()) note(lane);
  (void)x.memory_bytes();
  return answers;
}

void check_decoded(std::span<const std::byte> bytes, bool valid_header) {
  Decoded d = decode_bytes(bytes);
  Decoded f = decode_file(bytes);
  check(d.result == f.result, "decode_image and decode_image_file disagree");
  check(d.reason == f.reason, "decode_image and decode_image_file give different reasons");
  if (d.result != index::ImageDecode::Ok) {
    check(!d.reason.empty(), "a failed decode without a reason");
    check(!valid_header || d.result == index::ImageDecode::Damaged,
          "a body under a valid header read as another version");
    return;
  }
  check(d.checkpoint.next_sequence == d.index.next_sequence(), "checkpoint and index disagree");
  std::string answers = exercise(d.index);
  check(answers == exercise(f.index), "decode_image and decode_image_file decode differently");
  auto no_hash = [](uint64_t) -> Hash128 {
    check(false, "encoding a whole index asked for a stream head");
    return Hash128{};
  };
  Bytes again = encode_image(d.index, d.checkpoint, no_hash);
  Decoded re = decode_bytes(again);
  if (re.result != index::ImageDecode::Ok) std::fprintf(stderr, "%s\n", re.reason.c_str());
  check(re.result == index::ImageDecode::Ok, "a decoded image does not re-encode to a valid one");
  check(re.checkpoint == d.checkpoint, "the checkpoint changed in a round trip");
  check(exercise(re.index) == answers, "the index changed in a round trip");
}

// The input as the body of an image of `version` with a valid header.
Bytes under_valid_header(std::span<const std::byte> body, uint32_t version) {
  Bytes image(index::kImageHeaderSize, std::byte{0});
  const char magic[8] = {'K', 'E', 'E', 'L', 'I', 'N', 'D', 'X'};
  std::memcpy(image.data(), magic, sizeof magic);
  format::store_u32(image.data() + 16, version);
  format::store_u64(image.data() + 24, body.size());
  image.insert(image.end(), body.begin(), body.end());
  format::store_u64(image.data() + 8,
                    format::checksum64(std::span<const std::byte>(image).subspan(16)));
  return image;
}

}  // namespace
}  // namespace keel::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  keel::fuzz::check_decoded(input, false);
  for (uint32_t version = keel::index::kOldestImageVersion; version <= keel::index::kImageVersion;
       ++version) {
    keel::fuzz::check_decoded(keel::fuzz::under_valid_header(input, version), true);
  }
  return 0;
}
