// MemoryFileTree: the directory bookkeeping of the in-memory file systems (MemoryFileSystem and
// FaultFileSystem): which directories exist, which path names which file node, and who holds which
// advisory lock. Both must answer these as PosixFileSystem does (ENOENT, EEXIST, lock conflicts),
// so the answers live here once; what happens to the bytes (and to durability) stays with each.
//
// Paths are flat keys: a file's directory is the text before its last '/'. Node is the owner's
// per-file state, default-constructed for a new file; handles keep their node across renames and
// removes, as an open descriptor keeps its inode.
//
// Threads: none of its own. The owning file system calls every method with its mutex held.
#pragma once

#include <cerrno>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "platform/file_system.h"

namespace keel::platform {

// The directory part of `path` ("." for a bare name).
inline std::string parent_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

template <class Node>
class MemoryFileTree {
 public:
  using Files = std::map<std::string, std::shared_ptr<Node>>;

  // The node `path` names for open(2) with `mode`: created empty (in an existing directory) when
  // the mode creates; ENOENT / EEXIST otherwise.
  Result<std::shared_ptr<Node>> open(const std::string& path, OpenMode mode) {
    auto it = files_.find(path);
    if (it == files_.end()) {
      bool creates = mode == OpenMode::CreateOrOpen || mode == OpenMode::CreateNew;
      if (!creates || !has_directory(parent_of(path))) return file_error("open", path, ENOENT);
      it = files_.emplace(path, std::make_shared<Node>()).first;
    } else if (mode == OpenMode::CreateNew) {
      return file_error("open", path, EEXIST);
    }
    return it->second;
  }

  // rename(2): `to` now names from's node (replacing any other); onto itself is a no-op. A
  // directory moves with everything under it, onto a missing or empty directory only.
  Status rename(const std::string& from, const std::string& to) {
    if (has_directory(from)) return rename_directory(from, to);
    auto it = files_.find(from);
    if (it == files_.end()) return file_error("rename", from, ENOENT).with("to", to);
    if (has_directory(to)) return file_error("rename", from, EISDIR).with("to", to);
    if (from == to) return ok_status();
    files_[to] = it->second;
    files_.erase(it);
    return ok_status();
  }

  Status remove(const std::string& path) {
    if (files_.erase(path) == 0) return file_error("unlink", path, ENOENT);
    return ok_status();
  }

  void create_directory(const std::string& path) { directories_.insert(path); }
  Status remove_directory(const std::string& path) {
    if (!has_directory(path)) return file_error("rmdir", path, ENOENT);
    if (!empty_directory(path)) return file_error("rmdir", path, ENOTEMPTY);
    directories_.erase(path);
    return ok_status();
  }
  bool has_directory(const std::string& path) const { return directories_.count(path) > 0; }
  bool exists(const std::string& path) const {
    return files_.count(path) > 0 || has_directory(path);
  }
  FileKind kind(const std::string& path) const {
    if (files_.count(path) > 0) return FileKind::Regular;
    return has_directory(path) ? FileKind::Directory : FileKind::Missing;
  }

  // Moves every directory and file under `from` (and `from` itself) to `to`, unchecked.
  void move_tree(const std::string& from, const std::string& to) {
    auto moved = [&](const std::string& path) { return to + path.substr(from.size()); };
    std::set<std::string> directories;
    for (const std::string& d : directories_) directories.insert(under(d, from) ? moved(d) : d);
    directories_ = std::move(directories);
    Files files;
    for (auto& [path, node] : files_) files[under(path, from) ? moved(path) : path] = node;
    files_ = std::move(files);
  }
  // `path` is `root` or inside it.
  static bool under(const std::string& path, const std::string& root) {
    return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                            path[root.size()] == '/');
  }

  Result<std::vector<std::string>> list_directory(const std::string& path) const {
    if (!has_directory(path)) return file_error("opendir", path, ENOENT);
    std::vector<std::string> names;
    for (const auto& [file, node] : files_) {
      if (parent_of(file) == path) names.push_back(file.substr(path.size() + 1));
    }
    for (const std::string& d : directories_) {
      if (d != path && parent_of(d) == path) names.push_back(d.substr(path.size() + 1));
    }
    return names;
  }

  Status rename_directory(const std::string& from, const std::string& to) {
    if (from == to) return ok_status();
    if (files_.count(to) > 0) return file_error("rename", from, ENOTDIR).with("to", to);
    if (has_directory(to) && !empty_directory(to)) {
      return file_error("rename", from, ENOTEMPTY).with("to", to);
    }
    if (!has_directory(parent_of(to))) return file_error("rename", from, ENOENT).with("to", to);
    if (under(to, from)) return file_error("rename", from, EINVAL).with("to", to);
    directories_.erase(to);
    move_tree(from, to);
    return ok_status();
  }
  bool empty_directory(const std::string& path) const {
    for (const std::string& d : directories_) {
      if (d != path && under(d, path)) return false;
    }
    for (const auto& [file, node] : files_) {
      if (under(file, path)) return false;
    }
    return true;
  }

  // flock(2) without waiting, on the file `path` (an exclusive lock creates it if missing, as
  // opening it for writing does; a shared one, a reader's probe, needs it to exist).
  // Returns false when another holder has a conflicting lock; release with unlock().
  Result<bool> lock(const std::string& path, LockMode mode) {
    if (!has_directory(parent_of(path))) return file_error("open lock file", path, ENOENT);
    if (!files_.count(path)) {
      if (mode == LockMode::Shared) return file_error("open lock file", path, ENOENT);
      files_.emplace(path, std::make_shared<Node>());
    }
    int& holders = locks_[path];
    if (holders < 0 || (mode == LockMode::Exclusive && holders > 0)) return false;
    holders = mode == LockMode::Exclusive ? -1 : holders + 1;
    return true;
  }
  void unlock(const std::string& path) {
    auto it = locks_.find(path);
    if (it == locks_.end()) return;
    if (it->second <= 1) {
      locks_.erase(it);  // the exclusive holder (-1) or the last shared one
    } else {
      --it->second;
    }
  }
  void clear_locks() { locks_.clear(); }

  // The live entries, for what each file system does beyond naming (contents, durability).
  Files& files() { return files_; }
  const Files& files() const { return files_; }

 private:
  std::set<std::string> directories_;
  Files files_;
  std::map<std::string, int> locks_;  // path -> holders (-1: exclusive)
};

}  // namespace keel::platform
