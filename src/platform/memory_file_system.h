// MemoryFileSystem: the platform seam in memory. Files are byte vectors; nothing touches the OS.
// Used by the fuzz targets (recovery of arbitrary bytes without disk I/O) and by tests, and the
// base the fault-injecting file system builds on.
//
// Threads: every call takes one internal mutex; safe to share.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "platform/file_system.h"

namespace keel::platform {

class MemoryFileSystem final : public FileSystem {
 public:
  Result<std::unique_ptr<File>> open(const std::string& path, OpenMode mode) override;
  Status rename(const std::string& from, const std::string& to) override;
  Status remove(const std::string& path) override;
  Status sync_directory(const std::string& path) override;
  Status create_directory(const std::string& path) override;
  Result<std::vector<std::string>> list_directory(const std::string& path) override;
  Result<bool> exists(const std::string& path) override;
  Result<std::unique_ptr<FileLock>> lock(const std::string& path, LockMode mode) override;

  // Test access: the bytes of a file (empty if absent), and replacing them.
  std::vector<std::byte> contents(const std::string& path) const;
  void set_contents(const std::string& path, std::vector<std::byte> bytes);

 private:
  friend class MemoryFile;
  struct Node {
    std::vector<std::byte> bytes;
  };
  mutable std::mutex mutex_;
  std::set<std::string> directories_;
  std::map<std::string, std::shared_ptr<Node>> files_;
  std::map<std::string, int> locks_;  // path -> holders (-1: exclusive)
};

}  // namespace keel::platform
