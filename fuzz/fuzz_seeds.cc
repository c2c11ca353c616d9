// keel-fuzz-seeds OUT_DIR [STORE_DIR [V1_STORE_DIR]]: writes the seed corpora of the fuzz targets
// into OUT_DIR/<target>/ (scripts/fuzz-smoke runs it before fuzzing).
//
// The seeds come from the golden store (STORE_DIR, normally segments/golden/store; when it holds
// no segment the golden store is written in memory with tools/golden_store.cc instead), from the
// version-1 golden store (V1_STORE_DIR, normally segments/golden/store-v1: msgpack event bodies,
// which today's writer no longer writes), and from a
// second store written here to reach what the golden one lacks: a fence open at the tail, a
// preallocated zero tail, str16 and bin16 fields. Seeds per target:
//   frame_decode_fuzz  every frame alone, every record body alone, every segment header, the
//                      EPOCH file, and one frame with a 70 KB payload (bin32) and a str16 entity
//   recovery_fuzz      whole stores in the recovery_fuzz input format (epoch byte, segments joined
//                      by "#SEG#"), and variants: first segment only, last frame torn, zero tail;
//                      also a store whose fence records are out of place
//   index_image_fuzz   the INDEX file a clean close writes, whole and its body alone (the target
//                      also decodes each input as the body under a valid header), of the golden
//                      store (fences: hidden events) and of a small store of causes, external
//                      causes, explicit correlations, lanes and a batch
//   replication_message_fuzz  the messages of a small store (single appends, a batch, lanes,
//                      metadata, an idempotency key, causes, a committed and a cancelled fence)
//                      in the target's input format: all of them in order, and each alone
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "format/byte_order.h"
#include "format/frame.h"
#include "format/record.h"
#include "format/sidecar.h"
#include "golden_store.h"
#include "keel/keel.h"
#include "log/epoch_file.h"
#include "log/log.h"
#include "log/segment_files.h"
#include "platform/clock.h"
#include "platform/memory_file_system.h"

namespace keel::fuzz {
namespace {

using Bytes = std::vector<std::byte>;

struct Store {
  uint64_t epoch = 0;
  std::vector<Bytes> segments;  // by id, from 1
};

Result<Store> read_store(platform::FileSystem& fs, const std::string& directory) {
  Store store;
  KEEL_ASSIGN_OR_RETURN(auto epoch, log::read_epoch(fs, directory));
  store.epoch = epoch.value_or(0);
  KEEL_ASSIGN_OR_RETURN(auto files, log::list_segment_files(fs, directory));
  for (const log::SegmentFile& file : files) {
    KEEL_ASSIGN_OR_RETURN(auto handle, fs.open(file.path, platform::OpenMode::ReadOnly));
    KEEL_ASSIGN_OR_RETURN(auto bytes, platform::read_file(*handle));
    store.segments.push_back(std::move(bytes));
  }
  return store;
}

Result<Store> golden_store(const char* store_directory) {
  platform::FileSystem& posix = platform::posix_file_system();
  if (store_directory != nullptr) {
    KEEL_ASSIGN_OR_RETURN(bool present, posix.exists(store_directory));
    if (present) {
      KEEL_ASSIGN_OR_RETURN(Store store, read_store(posix, store_directory));
      if (!store.segments.empty()) return store;
    }
  }
  std::fprintf(stderr,
               "keel-fuzz-seeds: no golden segments found; writing the golden store in memory\n");
  platform::MemoryFileSystem memory;
  KEEL_TRY(tools::write_golden_store(memory, "/golden"));
  return read_store(memory, "/golden");
}

format::EventBody seed_event(std::string_view entity, std::string_view payload) {
  format::EventBody event;
  event.event_id = EventId{0x0000018000000042ull, 0x7365656400000001ull};
  event.entity = entity;
  event.scope = "seeds";
  event.kind = 0x1abc;
  event.lane = 70000;
  event.entity_clock = 300;
  event.hlc_wall_ms = 1'700'000'000'000ull;
  event.hlc_logical = 65536;
  event.correlation_id = EventId{1, 2};
  event.causation_id = EventId{3, 4};
  event.idempotency_key = "seed-key";
  event.idempotency_fingerprint = Hash128{5, 6};
  event.metadata = "\x81\xa1k\xa1v";
  event.payload = payload;
  event.prev_hash = Hash128{7, 8};
  return event;
}

// A store the golden one does not cover: str16 entity, bin16 payload, a batch, and a fence left
// open at a zero-filled (preallocated, never closed) tail; with `then_unfenced`, an unfenced event
// follows inside the open fence, which recovery refuses (row 12, HiddenRangesCorrupt).
Result<Store> open_fence_store(bool then_unfenced) {
  platform::MemoryFileSystem fs;
  log::LogOptions options;
  options.create_if_missing = true;
  options.writer.segment_size = 8192;
  KEEL_ASSIGN_OR_RETURN(auto log, log::Log::open(fs, "/seeds", options));
  log::SegmentWriter& writer = *log->writer();
  std::string entity(300, 'e');
  std::string payload(1000, 'p');
  KEEL_TRY(writer.append_event(seed_event(entity, payload), nullptr));
  std::vector<format::EventBody> batch(3, seed_event("batch", "b"));
  KEEL_TRY(writer.append_batch(batch, nullptr));
  KEEL_TRY(writer.sync());
  KEEL_TRY(
      writer.append_system({format::RecordType::FenceBegin, 9, format::CancelReason::Caller, 0}));
  format::EventBody fenced = seed_event("fenced", "f");
  fenced.fence_id = 9;
  KEEL_TRY(writer.append_event(fenced, nullptr));
  if (then_unfenced) KEEL_TRY(writer.append_event(seed_event("unfenced", "u"), nullptr));
  KEEL_TRY(writer.flush());  // no close: the preallocated zeros stay
  return read_store(fs, "/seeds");
}

Bytes join_store(const Store& store) {
  Bytes input{static_cast<std::byte>(store.epoch)};
  for (size_t i = 0; i < store.segments.size(); ++i) {
    if (i != 0) {
      for (char c : std::string_view("#SEG#")) input.push_back(static_cast<std::byte>(c));
    }
    input.insert(input.end(), store.segments[i].begin(), store.segments[i].end());
  }
  return input;
}

struct Frame {
  size_t offset;
  size_t size;
  size_t body_offset;
  size_t body_size;
};

std::vector<Frame> frames_of(const Bytes& segment, uint64_t segment_id) {
  std::vector<Frame> frames;
  size_t offset = format::kSegmentHeaderSize;
  format::DecodedFrame frame;
  while (offset < segment.size() &&
         format::decode_frame(std::span(segment).subspan(offset), segment_id, frame) ==
             format::FrameDecode::Ok) {
    frames.push_back({offset, frame.size, static_cast<size_t>(frame.body.data() - segment.data()),
                      frame.body.size()});
    offset += frame.size;
  }
  return frames;
}

class CorpusWriter {
 public:
  explicit CorpusWriter(std::filesystem::path directory) : directory_(std::move(directory)) {
    std::filesystem::create_directories(directory_);
  }
  void write(const std::string& name, std::span<const std::byte> bytes) {
    std::ofstream out(directory_ / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
  }

 private:
  std::filesystem::path directory_;
};

void write_frame_seeds(CorpusWriter& out, const std::string& name, const Store& store) {
  std::byte epoch[8];
  format::store_u64(epoch, store.epoch);
  out.write(name + "-epoch", format::encode_sidecar(format::SidecarKind::Epoch, 1, epoch));
  for (size_t s = 0; s < store.segments.size(); ++s) {
    const Bytes& segment = store.segments[s];
    std::string prefix = name + "-segment" + std::to_string(s + 1);
    out.write(prefix + "-header", std::span(segment).first(std::min(segment.size(), size_t{64})));
    size_t index = 0;
    for (const Frame& frame : frames_of(segment, s + 1)) {
      std::string frame_name = prefix + "-frame" + std::to_string(index++);
      out.write(frame_name, std::span(segment).subspan(frame.offset, frame.size));
      out.write(frame_name + "-body",
                std::span(segment).subspan(frame.body_offset, frame.body_size));
    }
  }
}

void write_large_frame_seed(CorpusWriter& out) {
  std::string entity(300, 'E');
  std::string payload(70'000, 'P');
  Bytes frame;
  format::append_event_frame(frame, format::FrameContext{1, 1, 64}, 1, seed_event(entity, payload),
                             nullptr);
  out.write("large-event-frame", frame);
}

void write_recovery_seeds(CorpusWriter& out, const std::string& name, const Store& store) {
  out.write(name + "-store", join_store(store));
  Store first_only{store.epoch, {store.segments.front()}};
  out.write(name + "-first-segment", join_store(first_only));
  Store torn = store;
  std::vector<Frame> frames = frames_of(torn.segments.back(), torn.segments.size());
  if (!frames.empty()) {
    torn.segments.back().resize(frames.back().offset + frames.back().size / 2);
    out.write(name + "-torn-last-frame", join_store(torn));
  }
  Store zero_tail = store;
  zero_tail.segments.back().resize(zero_tail.segments.back().size() + 512);
  out.write(name + "-zero-tail", join_store(zero_tail));
}

// Opens the store in `directory` of `fs` writable and closes it: the INDEX file that close wrote.
Result<Bytes> index_image_of(platform::MemoryFileSystem& fs, const std::string& directory,
                             platform::ManualClock& clock,
                             const std::function<Status(keel::Store&)>& append = {}) {
  StoreOptions options;
  options.file_system = &fs;
  options.clock = &clock;
  options.create_if_missing = true;
  options.segment_size = 4096;
  options.id_seed = 7;
  KEEL_ASSIGN_OR_RETURN(auto store, keel::Store::open(directory, options));
  if (append) KEEL_TRY(append(*store));
  KEEL_TRY(store->close());
  Bytes image = fs.contents(platform::join_path(directory, format::kIndexImageFileName));
  if (image.empty()) {
    return StoreError(ErrorCode::NotFound).with("what", "index image").with("key", directory);
  }
  return image;
}

// What the golden store does not give the index: a fan-out and a chain of causes, an external
// cause, explicit correlations, three lanes, three scopes, a batch of effects.
Status append_causal_events(keel::Store& store) {
  const EventKind kind = EventKind::make(1, 7);
  KEEL_ASSIGN_OR_RETURN(Receipt root, store.append({"order:1", "sales"}, kind, "root"));
  AppendOptions caused;
  caused.causation_id = root.event_id;
  caused.correlation_id = root.event_id;
  for (int i = 0; i < 6; ++i) {
    caused.lane = static_cast<uint32_t>(i % 3);
    KEEL_ASSIGN_OR_RETURN(Receipt effect,
                          store.append({"order:" + std::to_string(i % 2), i % 2 ? "ops" : ""}, kind,
                                       std::string(200, 'p'), caused));
    if (i == 2) caused.causation_id = effect.event_id;
  }
  AppendOptions external;
  external.causation_id = EventId{0xe7, 0xe7};
  KEEL_ASSIGN_OR_RETURN(Receipt outside,
                        store.append({"customer:9", "sales"}, kind, "from elsewhere", external));
  (void)outside;
  std::vector<keel::BatchItem> batch;
  for (int i = 0; i < 3; ++i) batch.push_back({{"batch", "ops"}, kind, "b", caused});
  KEEL_ASSIGN_OR_RETURN(auto receipts, store.append_batch(batch));
  (void)receipts;
  return ok_status();
}

void write_index_image_seeds(CorpusWriter& out, const std::string& name, const Bytes& image) {
  out.write(name + "-image", image);
  out.write(name + "-image-body", std::span(image).subspan(std::min<size_t>(image.size(), 64)));
}

int write_index_image_corpus(const std::filesystem::path& out_directory) {
  CorpusWriter out(out_directory / "index_image_fuzz");
  platform::MemoryFileSystem fs;
  platform::ManualClock clock(1'700'000'000'000ull);
  Status golden = tools::write_golden_store(fs, "/golden");
  Result<Bytes> images[] = {
      golden.ok() ? index_image_of(fs, "/golden", clock) : Result<Bytes>(golden.error()),
      index_image_of(fs, "/causal", clock, append_causal_events)};
  const char* names[] = {"golden", "causal"};
  for (size_t i = 0; i < 2; ++i) {
    if (!images[i].ok()) {
      std::fprintf(stderr, "keel-fuzz-seeds: %s\n", images[i].error().to_string().c_str());
      return 1;
    }
    write_index_image_seeds(out, names[i], *images[i]);
  }
  return 0;
}

// The replication messages of a small store written in memory, in replication_message_fuzz's
// input format (header values and body per message, messages joined by "\n--\n").
Status write_replication_seeds(const std::filesystem::path& directory) {
  platform::MemoryFileSystem fs;
  StoreOptions options;
  options.create_if_missing = true;
  options.file_system = &fs;
  KEEL_ASSIGN_OR_RETURN(auto store, keel::Store::open("/replication", options));
  const EventKind kind = EventKind::make(2, 7);
  AppendOptions keyed;
  keyed.idempotency_key = "seed-key";
  keyed.metadata = "{\"m\":1}";
  KEEL_ASSIGN_OR_RETURN(Receipt first, store->append({"order:1", "billing"}, kind, "{}", keyed));
  std::vector<BatchItem> batch;
  for (int i = 0; i < 3; ++i) {
    BatchItem item{{"cart:" + std::to_string(i % 2), ""}, kind, std::string(20 + i, 'x'), {}};
    item.options.lane = static_cast<uint32_t>(i);
    item.options.causation_id = first.event_id;
    batch.push_back(item);
  }
  KEEL_TRY(store->append_batch(batch));
  KEEL_TRY(store->append({"order:1", "billing"}, kind, "{\"n\":2}"));
  for (bool commit : {true, false}) {  // a committed fence, then a cancelled one
    KEEL_ASSIGN_OR_RETURN(auto fence, store->begin_fence());
    KEEL_TRY(fence->append({"order:2", ""}, kind, "fenced"));
    KEEL_TRY(fence->append_batch(batch));
    KEEL_TRY(commit ? fence->commit() : fence->cancel());
  }
  KEEL_TRY(store->append({"order:2", ""}, kind, "after"));
  std::vector<ReplicationMessage> messages;
  KEEL_TRY(read_replication_messages(*store, 0, 100, messages));
  auto format_message = [](const ReplicationMessage& m) {
    std::string text = m.sequence_header() + "\n" + m.record_header() + "\n";
    if (auto end = m.fence_end_header()) text += "F=" + *end + "\n";
    if (auto hidden = m.hidden_header()) text += "H=" + *hidden + "\n";
    return text + m.body;
  };
  std::filesystem::create_directories(directory);
  std::string all;
  for (size_t i = 0; i < messages.size(); ++i) {
    std::string one = format_message(messages[i]);
    std::ofstream(directory / ("message-" + std::to_string(i + 1)), std::ios::binary) << one;
    all += (i == 0 ? "" : "\n--\n") + one;
  }
  std::ofstream(directory / "all-messages", std::ios::binary) << all;
  return ok_status();
}

int write_seeds(const std::filesystem::path& out_directory, const char* store_directory,
                const char* v1_store_directory) {
  auto golden = golden_store(store_directory);
  auto open_fence = open_fence_store(false);
  auto fence_out_of_place = open_fence_store(true);
  for (auto* store : {&golden, &open_fence, &fence_out_of_place}) {
    if (!store->ok()) {
      std::fprintf(stderr, "keel-fuzz-seeds: %s\n", store->error().to_string().c_str());
      return 1;
    }
  }
  CorpusWriter frame_seeds(out_directory / "frame_decode_fuzz");
  write_frame_seeds(frame_seeds, "golden", *golden);
  write_frame_seeds(frame_seeds, "open-fence", *open_fence);
  write_large_frame_seed(frame_seeds);
  CorpusWriter recovery_seeds(out_directory / "recovery_fuzz");
  write_recovery_seeds(recovery_seeds, "golden", *golden);
  write_recovery_seeds(recovery_seeds, "open-fence", *open_fence);
  write_recovery_seeds(recovery_seeds, "fence-out-of-place", *fence_out_of_place);
  if (v1_store_directory != nullptr) {
    platform::FileSystem& fs = platform::posix_file_system();
    auto golden_v1 = read_store(fs, v1_store_directory);
    if (!golden_v1.ok() || golden_v1->segments.empty()) {
      std::fprintf(stderr, "keel-fuzz-seeds: no version-1 golden store at %s\n",
                   v1_store_directory);
      return 1;
    }
    write_frame_seeds(frame_seeds, "golden-v1", *golden_v1);
    write_recovery_seeds(recovery_seeds, "golden-v1", *golden_v1);
  }
  if (Status written = write_replication_seeds(out_directory / "replication_message_fuzz");
      !written.ok()) {
    std::fprintf(stderr, "keel-fuzz-seeds: %s\n", written.error().to_string().c_str());
    return 1;
  }
  return write_index_image_corpus(out_directory);
}

}  // namespace
}  // namespace keel::fuzz

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: keel-fuzz-seeds OUT_DIR [STORE_DIR [V1_STORE_DIR]]\n");
    return 2;
  }
  return keel::fuzz::write_seeds(argv[1], argc >= 3 ? argv[2] : nullptr,
                                 argc == 4 ? argv[3] : nullptr);
}
