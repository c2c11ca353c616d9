#include "platform/memory_file_system.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace keel::platform {

class MemoryFile final : public File {
 public:
  MemoryFile(MemoryFileSystem& fs, std::shared_ptr<MemoryFileSystem::Node> node, std::string path,
             bool writable)
      : fs_(fs), node_(std::move(node)), path_(std::move(path)), writable_(writable) {}

  Result<size_t> read_at(uint64_t offset, std::span<std::byte> out) override {
    std::lock_guard lock(fs_.mutex_);
    const auto& bytes = node_->bytes;
    if (offset >= bytes.size()) return size_t{0};
    size_t n = std::min<uint64_t>(out.size(), bytes.size() - offset);
    std::memcpy(out.data(), bytes.data() + offset, n);
    return n;
  }
  Status write_at(uint64_t offset, std::span<const std::byte> data) override {
    if (!writable_) return read_only_handle("pwrite");
    std::lock_guard lock(fs_.mutex_);
    auto& bytes = node_->bytes;
    if (bytes.size() < offset + data.size()) bytes.resize(offset + data.size());
    if (!data.empty()) std::memcpy(bytes.data() + offset, data.data(), data.size());
    return ok_status();
  }
  Status sync_data() override { return ok_status(); }
  Status truncate(uint64_t size) override {
    if (!writable_) return read_only_handle("ftruncate");
    std::lock_guard lock(fs_.mutex_);
    node_->bytes.resize(size);
    return ok_status();
  }
  Status allocate(uint64_t offset, uint64_t length) override {
    if (!writable_) return read_only_handle("fallocate");
    std::lock_guard lock(fs_.mutex_);
    if (node_->bytes.size() < offset + length) node_->bytes.resize(offset + length);
    return ok_status();
  }
  Result<uint64_t> size() override {
    std::lock_guard lock(fs_.mutex_);
    return uint64_t{node_->bytes.size()};
  }
  const std::string& path() const override { return path_; }

 private:
  // As POSIX: a descriptor opened read-only refuses writes with EBADF.
  StoreError read_only_handle(std::string_view operation) const {
    return file_error(operation, path_, EBADF);
  }

  MemoryFileSystem& fs_;
  std::shared_ptr<MemoryFileSystem::Node> node_;
  std::string path_;
  bool writable_;
};

class MemoryFileLock final : public FileLock {
 public:
  MemoryFileLock(MemoryFileSystem& fs, std::string path) : fs_(fs), path_(std::move(path)) {}
  ~MemoryFileLock() override {
    std::lock_guard lock(fs_.mutex_);
    fs_.tree_.unlock(path_);
  }
  MemoryFileLock(const MemoryFileLock&) = delete;
  MemoryFileLock& operator=(const MemoryFileLock&) = delete;

 private:
  MemoryFileSystem& fs_;
  std::string path_;
};

Result<std::unique_ptr<File>> MemoryFileSystem::open(const std::string& path, OpenMode mode) {
  std::lock_guard lock(mutex_);
  KEEL_ASSIGN_OR_RETURN(auto node, tree_.open(path, mode));
  return std::unique_ptr<File>(
      new MemoryFile(*this, std::move(node), path, mode != OpenMode::ReadOnly));
}

Status MemoryFileSystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mutex_);
  return tree_.rename(from, to);
}

Status MemoryFileSystem::remove(const std::string& path) {
  std::lock_guard lock(mutex_);
  return tree_.remove(path);
}

Status MemoryFileSystem::sync_directory(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (!tree_.has_directory(path)) return file_error("fsync directory", path, ENOENT);
  return ok_status();
}

Status MemoryFileSystem::create_directory(const std::string& path) {
  std::lock_guard lock(mutex_);
  tree_.create_directory(path);
  return ok_status();
}

Status MemoryFileSystem::remove_directory(const std::string& path) {
  std::lock_guard lock(mutex_);
  return tree_.remove_directory(path);
}

Result<std::vector<std::string>> MemoryFileSystem::list_directory(const std::string& path) {
  std::lock_guard lock(mutex_);
  return tree_.list_directory(path);
}

Result<bool> MemoryFileSystem::exists(const std::string& path) {
  std::lock_guard lock(mutex_);
  return tree_.exists(path);
}

Result<FileKind> MemoryFileSystem::file_kind(const std::string& path) {
  std::lock_guard lock(mutex_);
  return tree_.kind(path);
}

Result<std::unique_ptr<FileLock>> MemoryFileSystem::lock(const std::string& path, LockMode mode) {
  std::lock_guard lock(mutex_);
  KEEL_ASSIGN_OR_RETURN(bool taken, tree_.lock(path, mode));
  if (!taken) return std::unique_ptr<FileLock>();
  return std::unique_ptr<FileLock>(new MemoryFileLock(*this, path));
}

std::vector<std::byte> MemoryFileSystem::contents(const std::string& path) const {
  std::lock_guard lock(mutex_);
  auto it = tree_.files().find(path);
  return it == tree_.files().end() ? std::vector<std::byte>() : it->second->bytes;
}

void MemoryFileSystem::set_contents(const std::string& path, std::vector<std::byte> bytes) {
  std::lock_guard lock(mutex_);
  tree_.files()[path] = std::make_shared<Node>(Node{std::move(bytes)});
}

}  // namespace keel::platform
