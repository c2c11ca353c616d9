// Helpers shared by every FileSystem implementation.
#include "platform/file_system.h"

#include <cerrno>
#include <cstring>

namespace keel::platform {

std::string join_path(std::string_view directory, std::string_view name) {
  std::string path(directory);
  if (!path.empty() && path.back() != '/') path += '/';
  path += name;
  return path;
}

namespace {
std::string_view without_trailing_slashes(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  return path;
}
}  // namespace

std::string parent_directory(std::string_view path) {
  path = without_trailing_slashes(path);
  size_t slash = path.find_last_of('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

std::string base_name(std::string_view path) {
  path = without_trailing_slashes(path);
  size_t slash = path.find_last_of('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

StoreError file_error(std::string_view operation, const std::string& path, int err,
                      uint64_t bytes) {
  if (err == EACCES || err == EPERM || err == EROFS) {
    // Not Retryable: the same call fails until the environment changes (a read-only mount, file
    // modes, a user without rights). The caller fixes the request or the environment.
    return StoreError(ErrorCode::PermissionDenied)
        .with("operation", operation)
        .with("path", path)
        .with("detail", std::strerror(err))
        .with("errno", err)
        .with("needed", err == EROFS ? std::string("a file system mounted read-write (or a "
                                                   "read-only open)")
                                     : "permission for " + std::string(operation));
  }
  if (err == ENOTDIR) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "path")
        .with("reason", "a component of " + path + " is not a directory (" +
                            std::string(operation) + ")");
  }
  if (err == ENOSPC || err == EDQUOT) {
    return StoreError(ErrorCode::NoSpace)
        .with("operation", operation)
        .with("path", path)
        .with("bytes", bytes)
        .with("errno", err);
  }
  return StoreError(ErrorCode::Io)
      .with("operation", operation)
      .with("path", path)
      .with("detail", std::strerror(err))
      .with("errno", err);
}

Result<std::vector<std::byte>> read_file(File& file) {
  KEEL_ASSIGN_OR_RETURN(uint64_t size, file.size());
  std::vector<std::byte> bytes(size);
  KEEL_ASSIGN_OR_RETURN(size_t read, file.read_at(0, bytes));
  bytes.resize(read);  // the file may have shrunk since size()
  return bytes;
}

}  // namespace keel::platform
