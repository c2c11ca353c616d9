#include "platform/memory_file_system.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace keel::platform {
namespace {


std::string parent_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

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
  MemoryFileLock(std::mutex& mutex, std::map<std::string, int>& locks, std::string path)
      : mutex_(mutex), locks_(locks), path_(std::move(path)) {}
  ~MemoryFileLock() override {
    std::lock_guard lock(mutex_);
    auto it = locks_.find(path_);
    if (it->second <= 1) {
      locks_.erase(it);
    } else {
      --it->second;
    }
  }

 private:
  std::mutex& mutex_;
  std::map<std::string, int>& locks_;
  std::string path_;
};

Result<std::unique_ptr<File>> MemoryFileSystem::open(const std::string& path, OpenMode mode) {
  std::lock_guard lock(mutex_);
  auto it = files_.find(path);
  if (it == files_.end()) {
    if (mode == OpenMode::ReadOnly || mode == OpenMode::ReadWrite) return file_error("open", path, ENOENT);
    if (!directories_.count(parent_of(path))) return file_error("open", path, ENOENT);
    it = files_.emplace(path, std::make_shared<Node>()).first;
  } else if (mode == OpenMode::CreateNew) {
    return file_error("open", path, EEXIST);
  }
  return std::unique_ptr<File>(
      new MemoryFile(*this, it->second, path, mode != OpenMode::ReadOnly));
}

Status MemoryFileSystem::rename(const std::string& from, const std::string& to) {
  std::lock_guard lock(mutex_);
  auto it = files_.find(from);
  if (it == files_.end()) return file_error("rename", from, ENOENT);
  if (from == to) return ok_status();
  files_[to] = it->second;
  files_.erase(from);
  return ok_status();
}

Status MemoryFileSystem::remove(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (files_.erase(path) == 0) return file_error("unlink", path, ENOENT);
  return ok_status();
}

Status MemoryFileSystem::sync_directory(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (!directories_.count(path)) return file_error("fsync directory", path, ENOENT);
  return ok_status();
}

Status MemoryFileSystem::create_directory(const std::string& path) {
  std::lock_guard lock(mutex_);
  directories_.insert(path);
  return ok_status();
}

Result<std::vector<std::string>> MemoryFileSystem::list_directory(const std::string& path) {
  std::lock_guard lock(mutex_);
  if (!directories_.count(path)) return file_error("opendir", path, ENOENT);
  std::vector<std::string> names;
  for (const auto& [file, node] : files_) {
    if (parent_of(file) == path) names.push_back(file.substr(path.size() + 1));
  }
  return names;
}

Result<bool> MemoryFileSystem::exists(const std::string& path) {
  std::lock_guard lock(mutex_);
  return files_.count(path) > 0 || directories_.count(path) > 0;
}

Result<std::unique_ptr<FileLock>> MemoryFileSystem::lock(const std::string& path, LockMode mode) {
  std::lock_guard lock(mutex_);
  if (!files_.count(path)) files_.emplace(path, std::make_shared<Node>());
  int& holders = locks_[path];
  if (holders < 0 || (mode == LockMode::Exclusive && holders > 0)) {
    return std::unique_ptr<FileLock>();
  }
  holders = mode == LockMode::Exclusive ? -1 : holders + 1;
  return std::unique_ptr<FileLock>(new MemoryFileLock(mutex_, locks_, path));
}

std::vector<std::byte> MemoryFileSystem::contents(const std::string& path) const {
  std::lock_guard lock(mutex_);
  auto it = files_.find(path);
  return it == files_.end() ? std::vector<std::byte>() : it->second->bytes;
}

void MemoryFileSystem::set_contents(const std::string& path, std::vector<std::byte> bytes) {
  std::lock_guard lock(mutex_);
  files_[path] = std::make_shared<Node>(Node{std::move(bytes)});
}

}  // namespace keel::platform
