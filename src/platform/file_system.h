// The platform seam: every OS call keel makes on files and directories goes through these
// interfaces, so a store can run on the POSIX implementation or a fault-injecting one (tests).
//
// Errors: every failure is a StoreError of code Io (or NoSpace for ENOSPC/EDQUOT) naming the
// operation, the path and the errno. The interfaces never retry a failed write or sync: after a
// failure the caller decides (the writer poisons itself; docs/ARCHITECTURE.md §4).
//
// Threads: a FileSystem may be shared between threads. A File may be used by several threads for
// pread; writes, syncs and size changes on one File are serialized by its single owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "keel/result.h"

namespace keel::platform {

enum class OpenMode : uint8_t {
  ReadOnly,       // the file must exist
  ReadWrite,      // the file must exist
  CreateOrOpen,   // read-write; created if missing
  CreateNew,      // read-write; fails with Io (EEXIST) if it exists
};

class File {
 public:
  virtual ~File() = default;

  // Reads up to out.size() bytes at `offset`; returns the count read, short only at end of file.
  virtual Result<size_t> read_at(uint64_t offset, std::span<std::byte> out) = 0;
  // Writes all of `data` at `offset` or fails. A failure may have written a prefix (a short write);
  // the error says how many bytes were written in field "written".
  virtual Status write_at(uint64_t offset, std::span<const std::byte> data) = 0;
  // fdatasync: the file's data and the metadata needed to read it (its size) reach stable storage.
  virtual Status sync_data() = 0;
  // A hint: starts writing [offset, offset + length) back to the disk without waiting for it, so
  // that a later sync_data has less left to wait for. Promises nothing; errors surface at
  // sync_data. Implementations without a page cache do nothing.
  virtual void start_writeback(uint64_t offset, uint64_t length) {
    (void)offset;
    (void)length;
  }
  // For a file written only forward inside [0, length), which allocate() has reserved (the active
  // segment): maps that range so that write_mapped() can copy small writes into it instead of
  // making a system call each. truncate() ends the mapping. Implementations without a page cache
  // ignore it.
  virtual void map_for_writes(uint64_t length) { (void)length; }
  // write_at, with the same guarantees, for a write no sync_data follows at once: inside the range
  // of map_for_writes() a small write may be a copy into the mapping. Its bytes are in the page
  // cache when it returns (they survive a killed process) and sync_data covers them; where the
  // kernel cannot make a page writable, the mapping is dropped and the write is write_at's. (A sync
  // write-protects the mapped pages again, so a write synced at once costs more mapped.)
  virtual Status write_mapped(uint64_t offset, std::span<const std::byte> data) {
    return write_at(offset, data);
  }
  // Sets the size; new bytes read as zero.
  virtual Status truncate(uint64_t size) = 0;
  // Reserves [offset, offset+length) on disk so later writes there cannot run out of space; extends
  // the size when the range ends past it. ENOSPC is NoSpace.
  virtual Status allocate(uint64_t offset, uint64_t length) = 0;
  virtual Result<uint64_t> size() = 0;
  virtual const std::string& path() const = 0;
};

// One read of a batch (FileSystem::read_batch): `got` is what file->read_at(offset, out) would
// return (the count read, short only at end of file, or the error).
struct ReadRequest {
  File* file = nullptr;
  uint64_t offset = 0;
  std::span<std::byte> out;
  Result<size_t> got = size_t{0};
};

// An advisory lock on a path (flock). Released when destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

enum class LockMode : uint8_t { Shared, Exclusive };

// What a path names, without following a final symbolic link (lstat).
enum class FileKind : uint8_t { Missing, Regular, Directory, SymbolicLink, Other };

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  virtual Result<std::unique_ptr<File>> open(const std::string& path, OpenMode mode) = 0;
  // rename(2), of a file or a directory (a directory replaces only a missing or empty one).
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  virtual Status remove(const std::string& path) = 0;
  // fsync on the directory: makes creates, renames, removes and truncates in it durable.
  virtual Status sync_directory(const std::string& path) = 0;
  virtual Status create_directory(const std::string& path) = 0;
  // rmdir(2): removes an empty directory.
  virtual Status remove_directory(const std::string& path) = 0;
  // Names (not paths) of the entries of `path`, excluding "." and "..", in no particular order.
  virtual Result<std::vector<std::string>> list_directory(const std::string& path) = 0;
  virtual Result<bool> exists(const std::string& path) = 0;
  virtual Result<FileKind> file_kind(const std::string& path) = 0;
  // Takes a lock without waiting. Returns null when another holder (this process or another)
  // has a conflicting lock. Exclusive: opens `path` for writing, creating it if missing. Shared
  // (a reader's probe): opens an existing `path` for reading only, so it needs no write access.
  virtual Result<std::unique_ptr<FileLock>> lock(const std::string& path, LockMode mode) = 0;
  // A process holding a lock on `path`, when the system says (Linux: /proc/locks), for an error
  // that names who holds a store. nullopt when unknown; never an error.
  struct LockHolder {
    int64_t pid = 0;
    bool this_process = false;
  };
  virtual std::optional<LockHolder> lock_holder(const std::string& path) {
    (void)path;
    return std::nullopt;
  }
  // Reads every request, each as its file's read_at would. The POSIX file system hands a batch to
  // the kernel in one system call where it can (io_uring); others read them one by one.
  virtual void read_batch(std::span<ReadRequest> requests) {
    for (ReadRequest& r : requests) r.got = r.file->read_at(r.offset, r.out);
  }
};

// The process's POSIX file system. Never null; lives for the whole program.
FileSystem& posix_file_system();

std::string join_path(std::string_view directory, std::string_view name);
// The directory that holds `path` ("." for a bare name, "/" for a name under the root); trailing
// slashes of `path` are ignored.
std::string parent_directory(std::string_view path);
// The last component of `path` (trailing slashes ignored).
std::string base_name(std::string_view path);

// How every FileSystem implementation reports a failed call: PermissionDenied (Domain) for
// EACCES/EPERM/EROFS, naming what was needed; InvalidArgument for ENOTDIR (a path through a file);
// NoSpace for ENOSPC/EDQUOT (with the bytes asked for); else Io. Each names the operation, the path
// and the errno.
StoreError file_error(std::string_view operation, const std::string& path, int err,
                      uint64_t bytes = 0);

// Reads the whole file into memory.
Result<std::vector<std::byte>> read_file(File& file);

}  // namespace keel::platform
