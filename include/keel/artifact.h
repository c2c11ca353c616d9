// keel: moving a store between machines as a verified image (an "artifact").
//
// Export copies a store, while it stays open and appends go on, into a new directory: the image of
// the store at one durable sequence. The retained segments up to the one holding that sequence
// are copied (the last one only up to the end of its record), with an index image and the
// idempotency keys cut at the same sequence, EPOCH, RETAIN and END, each durable consumer's
// cursor, and each snapshot's pointer with the payload it names. Then the copy is opened
// read-only: it must hold exactly the events up to that sequence. Only then is MANIFEST written
// (each file's name, size and XXH3-128, the epoch and the sequence; segments/FORMAT.md 13),
// fsync'd and renamed into place: a directory without MANIFEST is not an artifact.
//
// Appends wait only while the cut is taken (ExportReport::writer_blocked_us): the index image is
// encoded then, so the wait grows with the number of events, not with the bytes copied.
//
// Import treats the artifact as untrusted: every file must be listed in MANIFEST, be a regular
// file (no symbolic links, no directories, no names leading out of the artifact) and hash to what
// MANIFEST says; the copy must open as a store holding exactly MANIFEST's sequence, its snapshots
// must load and its consumers' cursors must lie within it. The copy is staged in a hidden sibling
// of the destination (`.<name>.import-<pid>-<random>`) and renamed into place last, so a failure
// or a crash leaves nothing at the destination (a crash may leave the staging directory behind;
// remove it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "keel/result.h"
#include "keel/store.h"

namespace keel {

namespace platform {
class FileSystem;
}

// Where a long export or import is (for a progress bar).
struct TransferProgress {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  uint64_t files_done = 0;
  uint64_t files_total = 0;
};
using TransferProgressFn = std::function<void(const TransferProgress&)>;

struct ExportOptions {
  // Called after each piece copied (every 8 MiB at most) and once at the end.
  TransferProgressFn progress;
  // How long to wait for a cut when the durable log ends inside a fence (or with a hidden event):
  // the cut waits for the next durable record after it. WaitTimeout after this.
  std::chrono::milliseconds cut_timeout{10'000};
};

struct ExportReport {
  std::string destination;
  uint64_t sequence = 0;  // the last event exported (0: none)
  uint64_t epoch = 0;
  uint64_t files = 0;  // MANIFEST excluded
  uint64_t bytes = 0;
  uint64_t consumers = 0;  // durable consumers' cursors exported
  uint64_t snapshots = 0;  // snapshots exported (the published one of each name)
  uint64_t writer_blocked_us = 0;  // how long appends waited for the cut
  uint64_t check_ms = 0;           // opening the copy to check it (part of elapsed_ms)
  uint64_t elapsed_ms = 0;
};

// Exports the writable `store` into `destination`, a missing directory (created; its parent must
// exist) or an empty one. Errors: DestinationExists, ReadOnlyStore (a read-only open cannot cut
// an index image), WriterPoisoned, WaitTimeout (no cut within cut_timeout), CorruptSidecar (a
// damaged snapshot pointer: nothing of it can be exported faithfully), Io, NoSpace,
// InvariantViolation (the copy did not open as the store at the sequence: a keel bug). After an
// error, what the export wrote is removed (a directory it created too).
Result<ExportReport> export_store(Store& store, std::string_view destination,
                                  const ExportOptions& options = {});

struct ImportOptions {
  TransferProgressFn progress;
  // The file system of the artifact and the destination (nullptr: POSIX). For tests.
  platform::FileSystem* file_system = nullptr;
  // NEGATIVE CONTROL FOR TESTS ONLY: the files are copied straight into the destination, with no
  // staging directory renamed into place last, so a crash leaves a partial store there. The crash
  // tests of tests/artifact_test.cc must catch it.
  bool unsafe_in_place_for_test = false;
};

struct ImportReport {
  std::string destination;
  uint64_t sequence = 0;
  uint64_t epoch = 0;
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t check_ms = 0;  // opening and verifying the staged copy (part of elapsed_ms)
  uint64_t elapsed_ms = 0;
};

// Imports the artifact directory `artifact` (an export's destination) as a new store at
// `destination`, a missing path (its parent must exist) or an empty directory. Errors:
// DestinationExists, NotFound (no artifact there), ArtifactInvalid {path, reason} (missing,
// extra, symbolic-link or non-regular files, a name that is not a store file, a size or hash
// that differs from MANIFEST, a MANIFEST above 1 MiB, damaged, with an unknown field or an
// unsupported version, a copy that does not open at MANIFEST's sequence), Io, NoSpace. After an
// error the destination is as it was.
Result<ImportReport> import_store(std::string_view artifact, std::string_view destination,
                                  const ImportOptions& options = {});

}  // namespace keel
