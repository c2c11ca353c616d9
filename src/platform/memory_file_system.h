// MemoryFileSystem: the platform seam in memory. Files are byte vectors; nothing touches the OS.
// Used by the fuzz targets (recovery of arbitrary bytes without disk I/O) and by tests. Its
// directory bookkeeping (MemoryFileTree) is the one FaultFileSystem uses too.
//
// Threads: every call takes one internal mutex; safe to share.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "platform/file_system.h"
#include "platform/memory_file_system_tree.h"

namespace keel::platform {

class MemoryFileSystem final : public FileSystem {
 public:
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

  // Test access: the bytes of a file (empty if absent), and replacing them.
  std::vector<std::byte> contents(const std::string& path) const;
  void set_contents(const std::string& path, std::vector<std::byte> bytes);

 private:
  friend class MemoryFile;
  friend class MemoryFileLock;
  struct Node {
    std::vector<std::byte> bytes;
  };
  mutable std::mutex mutex_;
  MemoryFileTree<Node> tree_;
};

}  // namespace keel::platform
