// Export (include/keel/artifact.h): the store's cut copied into a new directory, checked by
// opening the copy, then MANIFEST written last (segments/FORMAT.md 13).
#include <algorithm>
#include <chrono>

#include "artifact/copy_check.h"
#include "artifact/file_copy.h"
#include "artifact/manifest.h"
#include "format/format_constants.h"
#include "format/sidecar.h"
#include "keel/artifact.h"
#include "keel/snapshot.h"
#include "log/consumer_file.h"
#include "log/sidecar_file.h"
#include "log/snapshot_files.h"
#include "store/store_internals.h"

namespace keel {

namespace {

// A file of the export: its bytes in memory, or the first `handle_bytes` of a file opened before
// (in the cut, or when a snapshot's pointer was read).
struct ExportFile {
  std::string name;
  std::vector<std::byte> bytes;
  std::unique_ptr<platform::File> handle;
  uint64_t handle_bytes = 0;
};

// The consumers' cursors and the snapshots' pointers (with the payloads they name), read before
// the cut: a cursor is committed and a snapshot saved only at or below the durable sequence, so
// the cut, taken after, holds every event they cover.
Result<std::vector<ExportFile>> read_layers_above(platform::FileSystem& fs,
                                                  const std::string& directory,
                                                  ExportReport& report) {
  std::vector<ExportFile> files;
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> consumers, log::list_consumers(fs, directory));
  for (const std::string& name : consumers) {
    ExportFile file{log::consumer_file_name(name), {}, nullptr, 0};
    KEEL_ASSIGN_OR_RETURN(auto handle,
                          fs.open(platform::join_path(directory, file.name),
                                  platform::OpenMode::ReadOnly));
    KEEL_ASSIGN_OR_RETURN(file.bytes, platform::read_file(*handle));
    files.push_back(std::move(file));
    ++report.consumers;
  }
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> snapshots, log::list_snapshot_names(fs, directory));
  for (const std::string& name : snapshots) {
    KEEL_ASSIGN_OR_RETURN(std::optional<log::SnapshotPointer> pointer,
                          log::read_snapshot_pointer(fs, directory, name));
    if (!pointer) continue;  // only orphan payloads: nothing published
    // The pointer as read, encoded again: the same bytes as its file (one version exists).
    files.push_back(ExportFile{log::snapshot_pointer_file_name(name),
                               format::encode_sidecar(format::SidecarKind::SnapshotPointer,
                                                      log::kSnapshotPointerVersion,
                                                      log::encode_snapshot_pointer(*pointer)),
                               nullptr, 0});
    ExportFile payload{log::snapshot_payload_file_name(name, pointer->sequence, pointer->hash), {},
                       nullptr, pointer->size};
    KEEL_ASSIGN_OR_RETURN(payload.handle,
                          fs.open(platform::join_path(directory, payload.name),
                                  platform::OpenMode::ReadOnly));
    files.push_back(std::move(payload));
    ++report.snapshots;
  }
  return files;
}

// The cut, waiting (up to `timeout`) while the durable log ends where none can be taken.
Result<StoreCut> take_cut(Store& store, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    KEEL_ASSIGN_OR_RETURN(std::optional<StoreCut> cut, StoreInternals::cut_for_export(store));
    if (cut) return std::move(*cut);
    const uint64_t durable = store.stats().sequence_durable;
    if (std::chrono::steady_clock::now() >= deadline) {
      return StoreError(ErrorCode::WaitTimeout)
          .with("watermark", "durable (a sequence outside any fence, for the export's cut)")
          .with("target", durable + 1)
          .with("waited_ms", static_cast<uint64_t>(timeout.count()));
    }
    Status waited =
        store.wait_for(Watermark::Durable, durable + 1, std::chrono::milliseconds(100));
    if (!waited.ok() && !waited.error().is(ErrorCode::WaitTimeout)) return std::move(waited).error();
  }
}

}  // namespace

Result<ExportReport> export_store(Store& store, std::string_view destination_view,
                                  const ExportOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  platform::FileSystem& fs = StoreInternals::file_system(store);
  const std::string destination(destination_view);
  if (destination.empty()) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "destination")
        .with("reason", "empty path");
  }
  if (StoreInternals::read_only(store)) {
    return StoreError(ErrorCode::ReadOnlyStore)
        .with("path", store.directory())
        .with("operation", "export");
  }
  ExportReport report;
  report.destination = destination;
  KEEL_ASSIGN_OR_RETURN(bool existed, artifact::check_destination(fs, destination));
  KEEL_ASSIGN_OR_RETURN(std::vector<ExportFile> files,
                        read_layers_above(fs, store.directory(), report));
  KEEL_ASSIGN_OR_RETURN(StoreCut cut, take_cut(store, options.cut_timeout));
  report.sequence = cut.sequence;
  report.epoch = cut.epoch;
  report.writer_blocked_us = cut.writer_blocked_us;
  for (StoreCut::File& file : cut.files) {
    files.push_back(ExportFile{std::move(file.name), {}, std::move(file.file), file.bytes});
  }

  uint64_t total = 0;
  for (const ExportFile& file : files) total += file.handle ? file.handle_bytes : file.bytes.size();
  artifact::ProgressMeter meter(options.progress, total, files.size());

  if (!existed) KEEL_TRY(fs.create_directory(destination));
  std::vector<std::string> written;
  artifact::Manifest manifest{format::kFormatVersion, cut.epoch, cut.sequence, {}};
  auto copy_all = [&]() -> Status {
    for (ExportFile& file : files) {
      written.push_back(file.name);
      const std::string to = platform::join_path(destination, file.name);
      if (!file.handle) {
        KEEL_ASSIGN_OR_RETURN(Hash128 hash, artifact::write_new_file(fs, to, file.bytes, meter));
        manifest.files.push_back(artifact::ManifestFile{file.name, file.bytes.size(), hash});
        continue;
      }
      KEEL_ASSIGN_OR_RETURN(artifact::Copied got, artifact::copy_prefix(fs, *file.handle, to,
                                                                        file.handle_bytes, meter));
      if (got.size != file.handle_bytes) {
        return StoreError(ErrorCode::Io)
            .with("operation", "export copy")
            .with("path", file.handle->path())
            .with("detail", "it ended after " + std::to_string(got.size) + " of " +
                                std::to_string(file.handle_bytes) + " bytes")
            .with("errno", 0);
      }
      manifest.files.push_back(artifact::ManifestFile{file.name, got.size, got.hash});
    }
    KEEL_TRY(fs.sync_directory(destination));
    const auto check_started = std::chrono::steady_clock::now();
    // Copied from checked files: a problem here is keel's own.
    KEEL_ASSIGN_OR_RETURN(std::string problem,
                          artifact::problem_with_copy(fs, destination, cut.sequence, cut.epoch,
                                                      /*verify=*/false));
    if (!problem.empty()) {
      return StoreError(ErrorCode::InvariantViolation)
          .with("invariant", "the export at " + destination + " is the store at the cut: " +
                                 problem);
    }
    report.check_ms = artifact::elapsed_ms_since(check_started);
    std::sort(manifest.files.begin(), manifest.files.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    const std::string text = artifact::encode_manifest(manifest);
    written.push_back(std::string(artifact::kManifestFileName) + format::kTempSuffix);
    written.push_back(artifact::kManifestFileName);
    return log::replace_file(fs, destination, artifact::kManifestFileName,
                             std::as_bytes(std::span(text.data(), text.size())));
  };
  if (Status status = copy_all(); !status.ok()) {
    artifact::remove_written(fs, destination, written, !existed);
    return std::move(status).error();
  }
  meter.finish();
  report.files = manifest.files.size();
  for (const artifact::ManifestFile& file : manifest.files) report.bytes += file.size;
  report.elapsed_ms = artifact::elapsed_ms_since(started);
  return report;
}

}  // namespace keel
