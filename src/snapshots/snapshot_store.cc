// Snapshot persistence (include/keel/snapshot.h): content-addressed payloads and a monotonic
// pointer per name (log/snapshot_files.h, segments/FORMAT.md 8.11).
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>

#include "consumers/invalid_argument.h"
#include "format/checksum.h"
#include "keel/snapshot.h"
#include "log/sidecar_file.h"
#include "log/snapshot_files.h"
#include "store/store_internals.h"

namespace keel {

namespace {

using consumers::invalid_argument;

// Saves and prunes of one store directory run one at a time: the pointer read, the decision and
// the swap are one step. Only the writable open (the LOCK holder, one per directory) saves, so a
// mutex of this process is enough.
std::mutex& directory_mutex(const std::string& directory) {
  static std::mutex* guard = new std::mutex();  // never destroyed (no exit-order trap)
  static auto* mutexes = new std::map<std::string, std::unique_ptr<std::mutex>>();
  std::lock_guard lock(*guard);
  auto& slot = (*mutexes)[directory];
  if (!slot) slot = std::make_unique<std::mutex>();
  return *slot;
}

Status check_name(std::string_view name) {
  if (const char* problem = log::check_snapshot_name(name)) {
    return invalid_argument("name", problem);
  }
  return ok_status();
}

Status check_writable(Store& store, const char* operation) {
  if (StoreInternals::read_only(store)) {
    return StoreError(ErrorCode::ReadOnlyStore)
        .with("path", store.directory())
        .with("operation", operation);
  }
  return ok_status();
}

SnapshotInfo info_of(const log::SnapshotPointer& p) {
  return SnapshotInfo{p.name, p.sequence, p.size, p.hash, p.epoch};
}

StoreError stale(std::string_view name, uint64_t next, uint64_t floor, std::string reason) {
  return StoreError(ErrorCode::StaleSequence)
      .with("name", name)
      .with("next", next)
      .with("floor", floor)
      .with("reason", std::move(reason));
}

StoreError payload_corruption(const std::string& path, std::string reason) {
  return StoreError(ErrorCode::Corruption)
      .with("path", path)
      .with("offset", 0)
      .with("reason", std::move(reason))
      .with("rule", "snapshot payload");
}

// The whole payload the pointer names, checked against its size and hash.
Result<std::string> read_payload(platform::FileSystem& fs, const std::string& directory,
                                 const log::SnapshotPointer& pointer) {
  const std::string path = platform::join_path(
      directory, log::snapshot_payload_file_name(pointer.name, pointer.sequence, pointer.hash));
  KEEL_ASSIGN_OR_RETURN(bool exists, fs.exists(path));
  if (!exists) {
    return payload_corruption(
        path, "the pointer of snapshot " + pointer.name + " names this payload, and it is missing");
  }
  KEEL_ASSIGN_OR_RETURN(auto file, fs.open(path, platform::OpenMode::ReadOnly));
  KEEL_ASSIGN_OR_RETURN(uint64_t size, file->size());
  if (size != pointer.size) {
    return payload_corruption(path, "it holds " + std::to_string(size) +
                                        " bytes; the pointer says " + std::to_string(pointer.size));
  }
  std::string bytes(size, '\0');
  auto out = std::as_writable_bytes(std::span(bytes.data(), bytes.size()));
  for (uint64_t done = 0; done < size;) {
    KEEL_ASSIGN_OR_RETURN(size_t got, file->read_at(done, out.subspan(done)));
    if (got == 0) return payload_corruption(path, "it ended while being read");
    done += got;
  }
  if (format::hash128(std::as_bytes(std::span(bytes.data(), bytes.size()))) != pointer.hash) {
    return payload_corruption(path, "its bytes do not hash to what the pointer says");
  }
  return bytes;
}

// The payload files (and their leftover .tmp files) of `name`, with their sizes.
struct PayloadFile {
  std::string file;
  log::SnapshotPayloadName parsed;
  bool temporary = false;
};
Result<std::vector<PayloadFile>> payload_files(platform::FileSystem& fs,
                                               const std::string& directory,
                                               std::optional<std::string_view> name) {
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs.list_directory(directory));
  std::vector<PayloadFile> files;
  for (std::string& entry : entries) {
    std::string_view base = entry;
    const bool temporary = base.ends_with(".tmp");
    if (temporary) base.remove_suffix(4);
    auto parsed = log::parse_snapshot_payload_file_name(base);
    if (!parsed || (name && parsed->name != *name)) continue;
    files.push_back(PayloadFile{std::move(entry), std::move(*parsed), temporary});
  }
  std::sort(files.begin(), files.end(), [](const PayloadFile& a, const PayloadFile& b) {
    return std::tie(a.parsed.name, a.parsed.sequence, a.file) <
           std::tie(b.parsed.name, b.parsed.sequence, b.file);
  });
  return files;
}

}  // namespace

const char* save_outcome_name(SaveOutcome outcome) {
  switch (outcome) {
    case SaveOutcome::Published:
      return "published";
    case SaveOutcome::AlreadyPublished:
      return "already published";
    case SaveOutcome::SupersededByNewer:
      return "superseded by newer";
  }
  return "unknown";
}

Result<SaveResult> save_snapshot(Store& store, std::string_view name, std::string_view bytes,
                                 uint64_t sequence, const SaveOptions& options) {
  KEEL_TRY(check_name(name));
  KEEL_TRY(check_writable(store, "save snapshot"));
  if (bytes.size() > kSnapshotBytesMax) {
    return StoreError(ErrorCode::PayloadTooLarge)
        .with("what", "snapshot")
        .with("size", bytes.size())
        .with("limit", kSnapshotBytesMax);
  }
  const uint64_t durable = store.stats().sequence_durable;
  if (sequence > durable) {
    return invalid_argument("sequence", "snapshot at sequence " + std::to_string(sequence) +
                                            " covers events that are not durable (durable is " +
                                            std::to_string(durable) +
                                            "): sync the store, then save");
  }
  platform::FileSystem& fs = StoreInternals::file_system(store);
  const std::string& directory = store.directory();
  const Hash128 hash = format::hash128(std::as_bytes(std::span(bytes.data(), bytes.size())));
  std::lock_guard lock(directory_mutex(directory));
  // Read from disk at every save: whatever this process believes, the file decides.
  KEEL_ASSIGN_OR_RETURN(std::optional<log::SnapshotPointer> live,
                        log::read_snapshot_pointer(fs, directory, name));
  const uint64_t floor = live ? live->sequence : 0;
  if (options.based_on && *options.based_on != floor) {
    return stale(name, sequence, floor,
                 live ? "the state was loaded from sequence " + std::to_string(*options.based_on) +
                            ", and sequence " + std::to_string(floor) + " is published since"
                      : "the state was loaded from sequence " + std::to_string(*options.based_on) +
                            ", and no snapshot is published");
  }
  if (live) {
    if (sequence < live->sequence) {
      return SaveResult{SaveOutcome::SupersededByNewer, info_of(*live)};
    }
    if (sequence == live->sequence) {
      if (hash == live->hash && bytes.size() == live->size) {
        return SaveResult{SaveOutcome::AlreadyPublished, info_of(*live)};
      }
      return stale(name, sequence, floor, "other bytes are published at this sequence");
    }
  }
  // The payload first, durable under its own name; then the pointer names it.
  log::SnapshotPointer pointer{std::string(name), store.epoch(), sequence, bytes.size(), hash};
  if (options.unsafe_pointer_first_for_test)
    KEEL_TRY(log::write_snapshot_pointer(fs, directory, pointer));
  KEEL_TRY(log::replace_file(fs, directory, log::snapshot_payload_file_name(name, sequence, hash),
                             std::as_bytes(std::span(bytes.data(), bytes.size()))));
  if (!options.unsafe_pointer_first_for_test)
    KEEL_TRY(log::write_snapshot_pointer(fs, directory, pointer));
  return SaveResult{SaveOutcome::Published, info_of(pointer)};
}

namespace {

Result<std::optional<Snapshot>> load(Store& store, std::string_view name) {
  KEEL_TRY(check_name(name));
  platform::FileSystem& fs = StoreInternals::file_system(store);
  KEEL_ASSIGN_OR_RETURN(std::optional<log::SnapshotPointer> pointer,
                        log::read_snapshot_pointer(fs, store.directory(), name));
  if (!pointer) return std::optional<Snapshot>();
  uint64_t known = store.stats().sequence_durable;
  const log::SnapshotPointer& published = *pointer;
  if (published.sequence > known && StoreInternals::read_only(store)) {
    KEEL_TRY(store.refresh());  // a writer in another process may have gone on since
    known = store.stats().sequence_durable;
  }
  if (published.sequence > known) {
    return StoreError(ErrorCode::CursorAheadOfLog)
        .with("consumer", "snapshot " + published.name)
        .with("cursor", published.sequence)
        .with("recovered", known);
  }
  KEEL_ASSIGN_OR_RETURN(std::string bytes, read_payload(fs, store.directory(), published));
  return std::optional<Snapshot>(Snapshot{info_of(published), std::move(bytes)});
}

}  // namespace

Result<std::optional<Snapshot>> load_snapshot(Store& store, std::string_view name,
                                              const LoadOptions& options) {
  auto loaded = load(store, name);
  if (!loaded.ok() && loaded.error().is(ErrorCode::Io) &&
      options.unsafe_read_errors_as_not_found_for_test) {
    return std::optional<Snapshot>();
  }
  return loaded;
}

Result<std::vector<SnapshotListing>> list_snapshots(Store& store) {
  platform::FileSystem& fs = StoreInternals::file_system(store);
  const std::string& directory = store.directory();
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> names, log::list_snapshot_names(fs, directory));
  KEEL_ASSIGN_OR_RETURN(std::vector<PayloadFile> files, payload_files(fs, directory, std::nullopt));
  std::map<std::string, SnapshotListing> listings;
  for (const std::string& name : names) {
    SnapshotListing& listing = listings[name];
    auto pointer = log::read_snapshot_pointer(fs, directory, name);
    if (pointer.ok()) {
      if (*pointer) listing.published = info_of(**pointer);
    } else if (pointer.error().is(ErrorCode::CorruptSidecar) ||
               pointer.error().is(ErrorCode::UnsupportedVersion)) {
      listing.problem = pointer.error().message();
    } else {
      return std::move(pointer).error();
    }
  }
  for (const PayloadFile& f : files) {
    if (f.temporary) continue;
    SnapshotListing& listing = listings[f.parsed.name];
    KEEL_ASSIGN_OR_RETURN(
        auto file, fs.open(platform::join_path(directory, f.file), platform::OpenMode::ReadOnly));
    KEEL_ASSIGN_OR_RETURN(uint64_t size, file->size());
    const bool published = listing.published && listing.published->sequence == f.parsed.sequence &&
                           listing.published->hash == f.parsed.hash;
    listing.payloads.push_back(SnapshotPayload{f.parsed.sequence, f.parsed.hash, size, published});
  }
  std::vector<SnapshotListing> out;
  for (auto& [name, listing] : listings) {
    listing.name = name;
    out.push_back(std::move(listing));
  }
  return out;
}

Result<PruneResult> prune_snapshots(Store& store, std::string_view name, size_t keep) {
  KEEL_TRY(check_name(name));
  if (keep == 0) return invalid_argument("keep", "must be at least 1 (the published snapshot)");
  KEEL_TRY(check_writable(store, "prune snapshots"));
  platform::FileSystem& fs = StoreInternals::file_system(store);
  const std::string& directory = store.directory();
  std::lock_guard lock(directory_mutex(directory));
  KEEL_ASSIGN_OR_RETURN(std::optional<log::SnapshotPointer> pointer,
                        log::read_snapshot_pointer(fs, directory, name));
  KEEL_ASSIGN_OR_RETURN(std::vector<PayloadFile> files, payload_files(fs, directory, name));
  // Newest first: the published payload, then the older ones while `keep` allows. Everything
  // else goes: older ones, orphans (above the pointer, or at its sequence with other bytes), and
  // every payload when nothing is published.
  PruneResult result;
  size_t older_kept = 0;
  std::vector<const PayloadFile*> remove;
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    const log::SnapshotPayloadName& p = it->parsed;
    bool kept = false;
    if (!it->temporary && pointer) {
      if (p.sequence == pointer->sequence && p.hash == pointer->hash) {
        kept = true;
      } else if (p.sequence < pointer->sequence && older_kept + 1 < keep) {
        kept = true;
        ++older_kept;
      }
    }
    if (kept) {
      ++result.kept;
    } else {
      remove.push_back(&*it);
    }
  }
  for (const PayloadFile* f : remove) {
    const std::string path = platform::join_path(directory, f->file);
    KEEL_ASSIGN_OR_RETURN(auto file, fs.open(path, platform::OpenMode::ReadOnly));
    KEEL_ASSIGN_OR_RETURN(uint64_t size, file->size());
    file.reset();
    KEEL_TRY(fs.remove(path));
    ++result.removed;
    result.bytes_removed += size;
  }
  if (!remove.empty()) KEEL_TRY(fs.sync_directory(directory));
  return result;
}

}  // namespace keel
