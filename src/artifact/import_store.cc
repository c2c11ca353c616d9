// Import (include/keel/artifact.h): an untrusted artifact checked against its MANIFEST while it is
// copied into a staging directory, opened there, and renamed into place last.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>

#include "artifact/copy_check.h"
#include "artifact/file_copy.h"
#include "artifact/manifest.h"
#include "keel/artifact.h"

namespace keel {

namespace {

StoreError invalid(const std::string& path, std::string reason) {
  return StoreError(ErrorCode::ArtifactInvalid).with("path", path).with("reason", std::move(reason));
}

// MANIFEST, read with its limits checked before its bytes are.
Result<artifact::Manifest> read_manifest(platform::FileSystem& fs, const std::string& artifact) {
  const std::string path = platform::join_path(artifact, artifact::kManifestFileName);
  KEEL_ASSIGN_OR_RETURN(platform::FileKind kind, fs.file_kind(path));
  if (kind == platform::FileKind::Missing) {
    return invalid(artifact, "it has no MANIFEST: not an export, or one that did not finish");
  }
  if (kind != platform::FileKind::Regular) {
    return invalid(artifact, kind == platform::FileKind::SymbolicLink
                                 ? "its MANIFEST is a symbolic link"
                                 : "its MANIFEST is not a regular file");
  }
  KEEL_ASSIGN_OR_RETURN(auto file, fs.open(path, platform::OpenMode::ReadOnly));
  KEEL_ASSIGN_OR_RETURN(uint64_t size, file->size());
  if (size > artifact::kManifestBytesMax) {
    return invalid(path, "the manifest has " + std::to_string(size) +
                             " bytes, more than the limit of " +
                             std::to_string(artifact::kManifestBytesMax));
  }
  std::string text(size, '\0');
  KEEL_ASSIGN_OR_RETURN(size_t got,
                        file->read_at(0, std::as_writable_bytes(std::span(text.data(), size))));
  text.resize(got);
  return artifact::decode_manifest(text, path);
}

// Every entry of the artifact is MANIFEST or a regular file it lists, and it lists nothing
// missing.
Status check_entries(platform::FileSystem& fs, const std::string& artifact,
                     const artifact::Manifest& manifest) {
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> entries, fs.list_directory(artifact));
  std::sort(entries.begin(), entries.end());
  std::set<std::string> listed;
  for (const artifact::ManifestFile& file : manifest.files) listed.insert(file.name);
  for (const std::string& entry : entries) {
    if (entry == artifact::kManifestFileName) continue;
    KEEL_ASSIGN_OR_RETURN(platform::FileKind kind,
                          fs.file_kind(platform::join_path(artifact, entry)));
    if (kind == platform::FileKind::SymbolicLink) {
      return invalid(artifact, entry + " is a symbolic link");
    }
    if (kind != platform::FileKind::Regular) {
      return invalid(artifact, entry + " is not a regular file");
    }
    if (listed.count(entry) == 0) return invalid(artifact, "extra file " + entry + ": MANIFEST does not list it");
  }
  for (const std::string& name : listed) {
    if (!std::binary_search(entries.begin(), entries.end(), name)) {
      return invalid(artifact, "missing file " + name + ": MANIFEST lists it");
    }
  }
  return ok_status();
}

std::string staging_name(const std::string& destination) {
  std::random_device device;
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%016llx",
                static_cast<unsigned long long>((uint64_t{device()} << 32) | device()));
  return platform::join_path(platform::parent_directory(destination),
                             "." + platform::base_name(destination) + ".import-" +
                                 std::to_string(::getpid()) + "-" + suffix);
}

}  // namespace

Result<ImportReport> import_store(std::string_view artifact_view, std::string_view destination_view,
                                  const ImportOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  platform::FileSystem& fs =
      options.file_system != nullptr ? *options.file_system : platform::posix_file_system();
  const std::string artifact(artifact_view);
  const std::string destination(destination_view);
  if (artifact.empty() || destination.empty()) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", artifact.empty() ? "artifact" : "destination")
        .with("reason", "empty path");
  }
  KEEL_ASSIGN_OR_RETURN(bool existed, artifact::check_destination(fs, destination));
  KEEL_ASSIGN_OR_RETURN(platform::FileKind kind, fs.file_kind(artifact));
  if (kind == platform::FileKind::Missing) {
    return StoreError(ErrorCode::NotFound).with("what", "artifact").with("key", artifact);
  }
  if (kind != platform::FileKind::Directory) return invalid(artifact, "it is not a directory");
  KEEL_ASSIGN_OR_RETURN(artifact::Manifest manifest, read_manifest(fs, artifact));
  KEEL_TRY(check_entries(fs, artifact, manifest));

  ImportReport report;
  report.destination = destination;
  report.sequence = manifest.sequence;
  report.epoch = manifest.epoch;
  uint64_t total = 0;
  for (const artifact::ManifestFile& file : manifest.files) total += file.size;
  artifact::ProgressMeter meter(options.progress, total, manifest.files.size());

  const bool in_place = options.unsafe_in_place_for_test;
  const std::string staged = in_place ? destination : staging_name(destination);
  const bool staged_existed = in_place && existed;
  if (!staged_existed) KEEL_TRY(fs.create_directory(staged));
  std::vector<std::string> written;
  auto copy_all = [&]() -> Status {
    for (const artifact::ManifestFile& file : manifest.files) {
      const std::string from_path = platform::join_path(artifact, file.name);
      KEEL_ASSIGN_OR_RETURN(auto from, fs.open(from_path, platform::OpenMode::ReadOnly));
      written.push_back(file.name);
      KEEL_ASSIGN_OR_RETURN(artifact::Copied copied,
                            artifact::copy_prefix(fs, *from, platform::join_path(staged, file.name),
                                                  file.size, meter));
      KEEL_ASSIGN_OR_RETURN(uint64_t size, from->size());
      if (copied.size != file.size || size != file.size) {
        return invalid(artifact, "file " + file.name + " has " + std::to_string(size) +
                                     " bytes; MANIFEST says " + std::to_string(file.size));
      }
      if (copied.hash != file.hash) {
        return invalid(artifact, "file " + file.name + " does not hash to what MANIFEST says");
      }
      report.bytes += copied.size;
    }
    KEEL_TRY(fs.sync_directory(staged));
    const auto check_started = std::chrono::steady_clock::now();
    KEEL_ASSIGN_OR_RETURN(std::string problem,
                          artifact::problem_with_copy(fs, staged, manifest.sequence,
                                                      manifest.epoch, /*verify=*/true));
    if (!problem.empty()) return invalid(artifact, problem);
    report.check_ms = artifact::elapsed_ms_since(check_started);
    if (in_place) return ok_status();
    return fs.rename(staged, destination);
  };
  if (Status status = copy_all(); !status.ok()) {
    artifact::remove_written(fs, staged, written, !staged_existed);
    return std::move(status).error();
  }
  // Renamed: the store is at the destination, durable once its parent directory is synced.
  if (Status synced = fs.sync_directory(platform::parent_directory(destination)); !synced.ok()) {
    return StoreError(ErrorCode::OperationInDoubt)
        .with("operation", "import into " + destination)
        .with("reason", "the store was renamed into place, but syncing its parent directory "
                        "failed, so a crash may undo it")
        .caused_by(std::move(synced).error());
  }
  meter.finish();
  report.files = manifest.files.size();
  report.elapsed_ms = artifact::elapsed_ms_since(started);
  return report;
}

}  // namespace keel
