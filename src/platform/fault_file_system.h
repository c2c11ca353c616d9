// FaultFileSystem: an in-memory platform seam that models what a disk keeps, for durability tests
// (issue 4). Per file it keeps two views: the page cache (what reads see) and the disk (the content
// and size the last successful sync_data covered). Directory entries likewise: creates, renames
// and removes are durable only after sync_directory of the parent; a size change (truncate,
// allocate, a write past the end) only after sync_data of the file.
//
// Injection (each armed by the test, counted per operation kind from the moment it is armed):
//   fail_nth(op, n)        the n-th call of `op` fails with Io (EIO) and changes nothing;
//   fail_from_nth(op, n)   every call of `op` from the n-th on fails the same way;
//   short_write(n, k)      the n-th write_at writes only its first k bytes, then fails (Io with
//                          field "written" = k, as POSIX reports a short pwrite);
//   fail_reads_of(path)    every read_at of the file at `path` fails with Io (EIO), until
//                          clear_faults() (a sidecar or segment the disk cannot read back);
//   limit_space(n)         a write_at or allocate that would take the bytes written (write_at sizes
//                          plus allocate growth) past n fails with NoSpace (ENOSPC), writing
//                          nothing.
//   crash(seed)            a power loss: every 4 KiB page written since the last sync of its
//                          file is independently dropped (reverted to the disk), kept (the page
//                          cache) or zeroed, chosen by an RNG seeded with `seed`. The fate applies
//                          to the bytes written since that sync only: synced bytes sharing the
//                          page survive (the disk is assumed not to damage sectors it is not
//                          rewriting). Files get their synced size (an unsynced truncate is undone,
//                          the cut bytes reappear), directories their synced entries. Afterwards
//                          the file system is a freshly mounted disk: handles opened before fail
//                          with EIO, locks are released, faults are disarmed.
// Stalling (for tests of what runs while an fdatasync is slow):
//   stall_syncs(true)      every sync_data blocks, without the file system's mutex, so other
//                          threads keep reading and writing, until stall_syncs(false) or crash();
//                          then it proceeds as if just called (it applies the sync, or fails if a
//                          fault is armed by then; after a crash its handle is void: EIO).
// Directories themselves (create_directory, remove_directory) are durable at once: the tests
// create one store root. Renaming a directory moves it and its entries at once in the live view;
// on disk the move is durable only after sync_directory of the new name's parent: a crash before
// puts the directory back under its old name, with whatever of its entries were durable.
//
// Threads: one mutex guards everything; handles share it. Safe to share between threads. A stalled
// sync waits on a condition variable of that mutex, so it holds nothing while it waits.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "platform/file_system.h"
#include "platform/memory_file_system_tree.h"

namespace keel::platform {

enum class FaultOp : uint8_t { Write, SyncData, Rename, SyncDirectory };

inline constexpr uint64_t kFaultPageSize = 4096;

// What crash() did to the unsynced pages (for tests that check all fates occur).
struct CrashReport {
  uint64_t pages_dropped = 0;
  uint64_t pages_kept = 0;
  uint64_t pages_zeroed = 0;
};

class FaultFileSystem final : public FileSystem {
 public:
  FaultFileSystem() = default;
  ~FaultFileSystem() override;
  FaultFileSystem(const FaultFileSystem&) = delete;
  FaultFileSystem& operator=(const FaultFileSystem&) = delete;

  Result<std::unique_ptr<File>> open(const std::string& path, OpenMode mode) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status remove(const std::string& path) override;
  Status sync_directory(const std::string& path) override;
  Status create_directory(const std::string& path) override;
  Status remove_directory(const std::string& path) override;
  Result<std::vector<std::string>> list_directory(const std::string& path) override;
  Result<bool> exists(const std::string& path) override;
  Result<FileKind> file_kind(const std::string& path) override;
  Result<std::unique_ptr<FileLock>> lock(const std::string& path, LockMode mode) override;

  // ---- injection (n counts from 1, among calls of that kind made after arming) ----
  void fail_nth(FaultOp op, uint64_t n);
  void fail_from_nth(FaultOp op, uint64_t n);
  // The power goes off at the n-th call of `op`: that call and every later one that would change
  // something (any write, sync, rename, truncate, allocate, create or remove, of any kind) fails
  // with EIO, so nothing the caller does afterwards (its clean-up included) reaches the disk. Reads
  // still work. Until crash(), which clear_faults() does not replace.
  void power_cut_at(FaultOp op, uint64_t n);
  void short_write(uint64_t n, uint64_t prefix_bytes);
  void limit_space(uint64_t bytes);
  void fail_reads_of(const std::string& path);
  // Disarms every fault (counters keep running).
  void clear_faults();
  // Calls of `op` since construction (failed ones included; a stalled sync counts once released).
  uint64_t calls(FaultOp op) const;

  // While on, every sync_data blocks until stall_syncs(false) or crash() releases it (a sync that
  // arrives after a release while the stall is on again waits for the next release).
  void stall_syncs(bool on);
  // How many sync_data calls are blocked right now.
  uint64_t stalled_syncs() const;
  // Blocks until at least one sync_data is stalled; false if none is within `timeout`.
  bool wait_for_stalled_sync(std::chrono::milliseconds timeout);

  // The power loss. Returns what happened to the unsynced pages. Releases stalled syncs and turns
  // the stall off.
  CrashReport crash(uint64_t seed);

  // ---- inspection ----
  // The page-cache bytes of a live file (empty if absent).
  std::vector<std::byte> contents(const std::string& path) const;
  // The bytes a crash would keep for sure: the synced content of the synced entry (nullopt if
  // the path has no synced directory entry).
  std::optional<std::vector<std::byte>> durable_contents(const std::string& path) const;

 private:
  friend class FaultFile;
  friend class FaultFileLock;

  struct Node {
    std::vector<std::byte> cache;  // what reads see
    std::vector<std::byte> disk;   // content and size as of the last successful sync_data
    // Byte ranges written since that sync, by page: a crash decides each page's fate once and
    // applies it to these bytes only, so bytes a sync covered survive even on a rewritten page.
    std::map<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>> dirty_pages;
  };
  struct Trigger {
    uint64_t at = 0;  // absolute call number that fires (0: disarmed)
    bool and_after = false;
    bool power_cut = false;  // firing powers the disk off (power_cut_at)
  };

  // All take mutex_ held.
  bool should_fail(FaultOp op);
  std::optional<StoreError> check_space(const std::string& operation, const std::string& path,
                                        uint64_t bytes);
  // Waits (releasing mutex_) while syncs are stalled; returns with mutex_ held again.
  void wait_while_stalled(std::unique_lock<std::mutex>& lock);
  void release_stalled_syncs();
  // Renames the durable entries under directory `from` to be under `to`.
  void move_durable_entries(const std::string& from, const std::string& to);

  mutable std::mutex mutex_;
  uint64_t generation_ = 0;    // bumped by crash(): older handles and locks are void
  bool powered_off_ = false;   // power_cut_at fired; crash() turns it back on
  MemoryFileTree<Node> tree_;  // live directory entries, locks
  std::map<std::string, std::shared_ptr<Node>> durable_files_;  // synced directory entries
  // Directory renames (from, to) not yet made durable by a sync of to's parent, oldest first.
  std::vector<std::pair<std::string, std::string>> pending_directory_renames_;

  // The stall: waiters block until stall_releases_ moves past the value they saw on arrival.
  std::condition_variable stall_changed_;  // a release, or a sync starting to wait
  bool stall_on_ = false;
  uint64_t stall_releases_ = 0;
  uint64_t stalled_ = 0;

  uint64_t calls_[4] = {0, 0, 0, 0};
  Trigger triggers_[4];
  uint64_t short_write_at_ = 0;  // absolute write number (0: disarmed)
  uint64_t short_write_prefix_ = 0;
  std::optional<uint64_t> space_limit_;
  std::set<std::string> failing_reads_;
  uint64_t bytes_used_ = 0;
};

}  // namespace keel::platform
