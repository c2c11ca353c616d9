#include "platform/fault_file_system.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

namespace keel::platform {
namespace {

size_t op_index(FaultOp op) { return static_cast<size_t>(op); }

using DirtyPages = std::map<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>>;

// Records [begin, end) as written since the last sync, split by page.
void mark_dirty(DirtyPages& pages, uint64_t begin, uint64_t end) {
  while (begin < end) {
    uint64_t page = begin / kFaultPageSize;
    uint64_t page_end = std::min(end, (page + 1) * kFaultPageSize);
    auto& ranges = pages[page];
    if (!ranges.empty() && ranges.back().first <= begin && begin <= ranges.back().second) {
      ranges.back().second = std::max(ranges.back().second, page_end);  // extends the last one
    } else {
      ranges.emplace_back(begin, page_end);
    }
    begin = page_end;
  }
}

enum class PageFate : uint8_t { Dropped, Kept, Zeroed };

void count_fate(PageFate fate, CrashReport& report) {
  switch (fate) {
    case PageFate::Dropped:
      ++report.pages_dropped;
      break;
    case PageFate::Kept:
      ++report.pages_kept;
      break;
    case PageFate::Zeroed:
      ++report.pages_zeroed;
      break;
  }
}

}  // namespace

class FaultFile final : public File {
 public:
  FaultFile(FaultFileSystem& fs, std::shared_ptr<FaultFileSystem::Node> node, std::string path,
            bool writable, uint64_t generation)
      : fs_(fs),
        node_(std::move(node)),
        path_(std::move(path)),
        writable_(writable),
        generation_(generation) {}

  Result<size_t> read_at(uint64_t offset, std::span<std::byte> out) override {
    std::lock_guard lock(fs_.mutex_);
    if (stale() || fs_.failing_reads_.count(path_) != 0) return file_error("pread", path_, EIO);
    const auto& bytes = node_->cache;
    if (offset >= bytes.size()) return size_t{0};
    size_t n = std::min<uint64_t>(out.size(), bytes.size() - offset);
    std::memcpy(out.data(), bytes.data() + offset, n);
    return n;
  }

  Status write_at(uint64_t offset, std::span<const std::byte> data) override {
    if (!writable_) return file_error("pwrite", path_, EBADF);
    std::lock_guard lock(fs_.mutex_);
    if (stale()) return written_error(file_error("pwrite", path_, EIO), 0);
    uint64_t call = ++fs_.calls_[op_index(FaultOp::Write)];
    if (fs_.should_fail(FaultOp::Write)) return written_error(file_error("pwrite", path_, EIO), 0);
    if (call == fs_.short_write_at_) {
      uint64_t prefix = std::min<uint64_t>(fs_.short_write_prefix_, data.size());
      if (auto full = fs_.check_space("pwrite", path_, prefix)) return written_error(*full, 0);
      apply_write(offset, data.first(prefix));
      return written_error(file_error("pwrite", path_, EIO), prefix);
    }
    if (auto full = fs_.check_space("pwrite", path_, data.size())) {
      return written_error(*full, 0);
    }
    apply_write(offset, data);
    return ok_status();
  }

  Status sync_data() override {
    std::unique_lock lock(fs_.mutex_);
    fs_.wait_while_stalled(lock);
    if (stale()) return file_error("fdatasync", path_, EIO);
    ++fs_.calls_[op_index(FaultOp::SyncData)];
    if (fs_.should_fail(FaultOp::SyncData)) return file_error("fdatasync", path_, EIO);
    node_->disk = node_->cache;
    node_->dirty_pages.clear();
    return ok_status();
  }

  Status truncate(uint64_t size) override {
    if (!writable_) return file_error("ftruncate", path_, EBADF);
    std::lock_guard lock(fs_.mutex_);
    if (stale() || fs_.powered_off_) return file_error("ftruncate", path_, EIO);
    uint64_t old_size = node_->cache.size();
    node_->cache.resize(size);
    // Growth reads as zeros; a cut is a size change only (a crash restores the synced size).
    mark_dirty(node_->dirty_pages, old_size, size);
    return ok_status();
  }

  Status allocate(uint64_t offset, uint64_t length) override {
    if (!writable_) return file_error("fallocate", path_, EBADF);
    std::lock_guard lock(fs_.mutex_);
    if (stale() || fs_.powered_off_) return file_error("fallocate", path_, EIO);
    uint64_t old_size = node_->cache.size();
    if (offset + length <= old_size) return ok_status();
    uint64_t growth = offset + length - old_size;
    if (auto full = fs_.check_space("fallocate", path_, growth)) return *full;
    node_->cache.resize(offset + length);
    mark_dirty(node_->dirty_pages, old_size, offset + length);
    return ok_status();
  }

  Result<uint64_t> size() override {
    std::lock_guard lock(fs_.mutex_);
    if (stale()) return file_error("fstat", path_, EIO);
    return uint64_t{node_->cache.size()};
  }

  const std::string& path() const override { return path_; }

 private:
  // A handle opened before a crash refers to a disk that no longer exists.
  bool stale() const { return generation_ != fs_.generation_; }

  static StoreError written_error(StoreError error, uint64_t written) {
    return std::move(error).with("written", written);
  }

  void apply_write(uint64_t offset, std::span<const std::byte> data) {
    auto& bytes = node_->cache;
    if (bytes.size() < offset + data.size()) {
      mark_dirty(node_->dirty_pages, bytes.size(), offset + data.size());
      bytes.resize(offset + data.size());
    }
    if (!data.empty()) std::memcpy(bytes.data() + offset, data.data(), data.size());
    mark_dirty(node_->dirty_pages, offset, offset + data.size());
    fs_.bytes_used_ += data.size();
  }

  FaultFileSystem& fs_;
  std::shared_ptr<FaultFileSystem::Node> node_;
  std::string path_;
  bool writable_;
  uint64_t generation_;
};

class FaultFileLock final : public FileLock {
 public:
  FaultFileLock(FaultFileSystem& fs, std::string path, uint64_t generation)
      : fs_(fs), path_(std::move(path)), generation_(generation) {}
  ~FaultFileLock() override {
    std::lock_guard lock(fs_.mutex_);
    if (generation_ != fs_.generation_) return;  // the crash released it
    fs_.tree_.unlock(path_);
  }
  FaultFileLock(const FaultFileLock&) = delete;
  FaultFileLock& operator=(const FaultFileLock&) = delete;

 private:
  FaultFileSystem& fs_;
  std::string path_;
  uint64_t generation_;
};

FaultFileSystem::~FaultFileSystem() = default;

bool FaultFileSystem::should_fail(FaultOp op) {
  const Trigger& trigger = triggers_[op_index(op)];
  uint64_t call = calls_[op_index(op)];
  if (powered_off_) return true;
  if (trigger.at == 0) return false;
  const bool fires = trigger.and_after ? call >= trigger.at : call == trigger.at;
  if (fires && trigger.power_cut) powered_off_ = true;
  return fires;
}

std::optional<StoreError> FaultFileSystem::check_space(const std::string& operation,
                                                       const std::string& path, uint64_t bytes) {
  if (space_limit_ && bytes_used_ + bytes > *space_limit_) {
    return file_error(operation, path, ENOSPC, bytes);
  }
  return std::nullopt;
}

Result<std::unique_ptr<File>> FaultFileSystem::open(const std::string& path, OpenMode mode) {
  std::lock_guard lock(mutex_);
  if (powered_off_ && mode != OpenMode::ReadOnly) return file_error("open", path, EIO);
  KEEL_ASSIGN_OR_RETURN(auto node, tree_.open(path, mode));
  return std::unique_ptr<File>(
      new FaultFile(*this, std::move(node), path, mode != OpenMode::ReadOnly, generation_));
}

Status FaultFileSystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mutex_);
  ++calls_[op_index(FaultOp::Rename)];
  if (should_fail(FaultOp::Rename)) return file_error("rename", from, EIO).with("to", to);
  const bool directory = tree_.has_directory(from);
  KEEL_TRY(tree_.rename(from, to));
  if (directory && from != to) pending_directory_renames_.emplace_back(from, to);
  return ok_status();
}

Status FaultFileSystem::remove(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (powered_off_) return file_error("unlink", path, EIO);
  return tree_.remove(path);
}

Status FaultFileSystem::sync_directory(const std::string& path) {
  std::lock_guard lock(mutex_);
  ++calls_[op_index(FaultOp::SyncDirectory)];
  if (should_fail(FaultOp::SyncDirectory)) return file_error("fsync directory", path, EIO);
  if (!tree_.has_directory(path)) return file_error("open directory", path, ENOENT);
  // Directories renamed into it move on disk too, with their durable entries.
  std::erase_if(pending_directory_renames_, [&](const auto& rename) {
    if (parent_of(rename.second) != path) return false;
    move_durable_entries(rename.first, rename.second);
    return true;
  });
  // The directory's entries become what the live view says: creates, renames, removes.
  std::erase_if(durable_files_, [&](const auto& entry) { return parent_of(entry.first) == path; });
  for (const auto& [file, node] : tree_.files()) {
    if (parent_of(file) == path) durable_files_[file] = node;
  }
  return ok_status();
}

Status FaultFileSystem::create_directory(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (powered_off_) return file_error("mkdir", path, EIO);
  tree_.create_directory(path);
  return ok_status();
}

Status FaultFileSystem::remove_directory(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (powered_off_) return file_error("rmdir", path, EIO);
  return tree_.remove_directory(path);
}

void FaultFileSystem::move_durable_entries(const std::string& from, const std::string& to) {
  std::map<std::string, std::shared_ptr<Node>> moved;
  for (auto& [file, node] : durable_files_) {
    moved[MemoryFileTree<Node>::under(file, from) ? to + file.substr(from.size()) : file] = node;
  }
  durable_files_ = std::move(moved);
}

Result<std::vector<std::string>> FaultFileSystem::list_directory(const std::string& path) {
  std::lock_guard lock(mutex_);
  return tree_.list_directory(path);
}

Result<bool> FaultFileSystem::exists(const std::string& path) {
  std::lock_guard lock(mutex_);
  return tree_.exists(path);
}

Result<FileKind> FaultFileSystem::file_kind(const std::string& path) {
  std::lock_guard lock(mutex_);
  return tree_.kind(path);
}

Result<std::unique_ptr<FileLock>> FaultFileSystem::lock(const std::string& path, LockMode mode) {
  std::lock_guard lock(mutex_);
  KEEL_ASSIGN_OR_RETURN(bool taken, tree_.lock(path, mode));
  if (!taken) return std::unique_ptr<FileLock>();
  return std::unique_ptr<FileLock>(new FaultFileLock(*this, path, generation_));
}

void FaultFileSystem::fail_nth(FaultOp op, uint64_t n) {
  std::lock_guard lock(mutex_);
  triggers_[op_index(op)] = Trigger{calls_[op_index(op)] + n, false};
}

void FaultFileSystem::fail_from_nth(FaultOp op, uint64_t n) {
  std::lock_guard lock(mutex_);
  triggers_[op_index(op)] = Trigger{calls_[op_index(op)] + n, true};
}

void FaultFileSystem::power_cut_at(FaultOp op, uint64_t n) {
  std::lock_guard lock(mutex_);
  triggers_[op_index(op)] = Trigger{calls_[op_index(op)] + n, false, true};
}

void FaultFileSystem::short_write(uint64_t n, uint64_t prefix_bytes) {
  std::lock_guard lock(mutex_);
  short_write_at_ = calls_[op_index(FaultOp::Write)] + n;
  short_write_prefix_ = prefix_bytes;
}

void FaultFileSystem::limit_space(uint64_t bytes) {
  std::lock_guard lock(mutex_);
  space_limit_ = bytes_used_ + bytes;
}

void FaultFileSystem::clear_faults() {
  std::lock_guard lock(mutex_);
  for (Trigger& trigger : triggers_) trigger = Trigger{};
  short_write_at_ = 0;
  space_limit_.reset();
  failing_reads_.clear();
}

void FaultFileSystem::fail_reads_of(const std::string& path) {
  std::lock_guard lock(mutex_);
  failing_reads_.insert(path);
}

uint64_t FaultFileSystem::calls(FaultOp op) const {
  std::lock_guard lock(mutex_);
  return calls_[op_index(op)];
}

void FaultFileSystem::wait_while_stalled(std::unique_lock<std::mutex>& lock) {
  if (!stall_on_) return;
  uint64_t arrived_at = stall_releases_;
  ++stalled_;
  stall_changed_.notify_all();  // wakes wait_for_stalled_sync
  stall_changed_.wait(lock, [&] { return stall_releases_ != arrived_at; });
  --stalled_;
}

void FaultFileSystem::release_stalled_syncs() {
  stall_on_ = false;
  ++stall_releases_;
  stall_changed_.notify_all();
}

void FaultFileSystem::stall_syncs(bool on) {
  std::lock_guard lock(mutex_);
  if (on) {
    stall_on_ = true;
  } else {
    release_stalled_syncs();
  }
}

uint64_t FaultFileSystem::stalled_syncs() const {
  std::lock_guard lock(mutex_);
  return stalled_;
}

bool FaultFileSystem::wait_for_stalled_sync(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return stall_changed_.wait_for(lock, timeout, [&] { return stalled_ > 0; });
}

CrashReport FaultFileSystem::crash(uint64_t seed) {
  std::lock_guard lock(mutex_);
  std::mt19937_64 rng(seed);
  CrashReport report;
  // Directory renames not made durable are undone, newest first.
  for (auto it = pending_directory_renames_.rbegin(); it != pending_directory_renames_.rend();
       ++it) {
    tree_.move_tree(it->second, it->first);
    move_durable_entries(it->second, it->first);
  }
  pending_directory_renames_.clear();
  // One new inode per old one (a file may have two synced names), each fate drawn once.
  std::map<const Node*, std::shared_ptr<Node>> survivors;
  std::map<std::string, std::shared_ptr<Node>> mounted;
  for (const auto& [path, node] : durable_files_) {
    auto& survivor = survivors[node.get()];
    if (!survivor) {
      survivor = std::make_shared<Node>();
      std::vector<std::byte> bytes = node->disk;  // the synced size: later size changes are lost
      for (const auto& [page, ranges] : node->dirty_pages) {
        if (page * kFaultPageSize >= bytes.size()) break;  // past the synced size: gone with it
        PageFate fate = static_cast<PageFate>(rng() % 3);
        count_fate(fate, report);
        if (fate == PageFate::Dropped) continue;
        for (auto [begin, end] : ranges) {
          end = std::min<uint64_t>(end, bytes.size());
          for (uint64_t i = begin; i < end; ++i) {
            // Kept: the page cache; where an unsynced truncate cut it, the old blocks reappear.
            std::byte cached = i < node->cache.size() ? node->cache[i] : node->disk[i];
            bytes[i] = fate == PageFate::Kept ? cached : std::byte{0};
          }
        }
      }
      survivor->disk = bytes;
      survivor->cache = std::move(bytes);
    }
    mounted[path] = survivor;
  }
  tree_.files() = mounted;
  durable_files_ = std::move(mounted);
  tree_.clear_locks();
  powered_off_ = false;
  ++generation_;
  release_stalled_syncs();  // they wake to a void handle: EIO
  for (Trigger& trigger : triggers_) trigger = Trigger{};
  short_write_at_ = 0;
  space_limit_.reset();
  return report;
}

std::vector<std::byte> FaultFileSystem::contents(const std::string& path) const {
  std::lock_guard lock(mutex_);
  auto it = tree_.files().find(path);
  return it == tree_.files().end() ? std::vector<std::byte>() : it->second->cache;
}

std::optional<std::vector<std::byte>> FaultFileSystem::durable_contents(
    const std::string& path) const {
  std::lock_guard lock(mutex_);
  auto it = durable_files_.find(path);
  if (it == durable_files_.end()) return std::nullopt;
  return it->second->disk;
}

}  // namespace keel::platform
