// PosixFileSystem: the platform seam on Linux system calls. The only file in keel that calls
// open/pread/pwrite/fdatasync/sync_file_range/ftruncate/fallocate/rename/unlink/flock/mmap
// (batches of reads go through read_ring.cc's io_uring).
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "platform/file_system.h"
#include "platform/read_ring.h"

namespace keel::platform {
namespace {

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older kernels refuse it with EINVAL
#endif

// Writes up to this size copy into the mapping. A larger write fills whole pages, which pwrite
// fills without first zeroing them and without page table entries to set up and flush, and its
// system call is paid once for many events: measured, 1M appends of 100-byte events went from
// 270k to 510k a second through the mapping, and batches of 100 from 1.7M to 0.9M (2026-12-07).
constexpr size_t kMappedWriteMax = 2048;

// Pages made writable ahead of the write that needs them, so that one madvise serves many small
// writes (a 256-byte event takes 1/16 of a page): 32 KiB. More ahead means more zero pages written
// back by each fdatasync.
constexpr uint64_t kPopulateAhead = 32 << 10;
// Whole written pages are dropped from the mapping in steps of 256 KiB (release_written).
constexpr uint64_t kReleaseStep = 256 << 10;

uint64_t page_size() {
  static const uint64_t size = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

class PosixFile final : public File {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override {
    unmap();
    ::close(fd_);
  }
  PosixFile(const PosixFile&) = delete;
  PosixFile& operator=(const PosixFile&) = delete;

  Result<size_t> read_at(uint64_t offset, std::span<std::byte> out) override {
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(fd_, out.data() + done, out.size() - done,
                          static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return file_error("pread", path_, errno);
      }
      if (n == 0) break;  // end of file
      done += static_cast<size_t>(n);
    }
    return done;
  }

  Status write_mapped(uint64_t offset, std::span<const std::byte> data) override {
    if (mapped_ != nullptr && offset + data.size() <= mapped_length_ && !data.empty() &&
        data.size() <= kMappedWriteMax && populate(offset, offset + data.size())) {
      std::memcpy(mapped_ + offset, data.data(), data.size());
      wrote(offset + data.size());
      return ok_status();
    }
    return write_at(offset, data);
  }

  Status write_at(uint64_t offset, std::span<const std::byte> data) override {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done,
                           static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::move(file_error("pwrite", path_, errno, data.size()))
            .with("written", static_cast<uint64_t>(done));
      }
      done += static_cast<size_t>(n);
    }
    if (mapped_ != nullptr) wrote(offset + data.size());
    return ok_status();
  }

  Status sync_data() override {
    {
      // What the writer is done with leaves the mapping before the writeback, which would otherwise
      // write-protect each of those pages with a TLB shootdown (measured: half of them went).
      std::lock_guard<std::mutex> hold(unmap_mutex_);
      if (mapped_ != nullptr) release_written(written_end_.load(std::memory_order_acquire), 0);
    }
    const int rc = ::fdatasync(fd_);
    const int error = errno;
    // Written-back pages are clean and may be reclaimed; the next mapped write makes its pages
    // writable again through madvise, so that reading one back from the disk cannot fail as SIGBUS.
    populated_end_.store(0, std::memory_order_relaxed);
    if (rc != 0) return file_error("fdatasync", path_, error);
    return ok_status();
  }

  // Maps [0, length) shared when the file is at least that long; without a mapping (mmap refused,
  // a shorter file) writes stay pwrite. Called with no write in flight.
  void map_for_writes(uint64_t length) override {
    unmap();
    struct stat st {};
    if (length == 0 || ::fstat(fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) < length) return;
    void* at = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (at == MAP_FAILED) return;
    std::lock_guard<std::mutex> hold(unmap_mutex_);
    mapped_ = static_cast<std::byte*>(at);
    mapped_length_ = length;
    released_end_.store(0, std::memory_order_relaxed);
    written_end_.store(0, std::memory_order_relaxed);
    populated_end_.store(0, std::memory_order_relaxed);
  }

  Status truncate(uint64_t size) override {
    unmap();  // a mapped page past the new end would raise SIGBUS when touched
    while (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
      if (errno != EINTR) return file_error("ftruncate", path_, errno, size);
    }
    return ok_status();
  }

  void start_writeback(uint64_t offset, uint64_t length) override {
    (void)::sync_file_range(fd_, static_cast<off_t>(offset), static_cast<off_t>(length),
                            SYNC_FILE_RANGE_WRITE);
  }

  Status allocate(uint64_t offset, uint64_t length) override {
    int rc = ::posix_fallocate(fd_, static_cast<off_t>(offset), static_cast<off_t>(length));
    if (rc != 0) return file_error("fallocate", path_, rc, length);
    return ok_status();
  }

  Result<uint64_t> size() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return file_error("fstat", path_, errno);
    return static_cast<uint64_t>(st.st_size);
  }

  const std::string& path() const override { return path_; }
  int fd() const { return fd_; }

 private:
  // Makes the pages of [begin, end) (and kPopulateAhead more) present and writable with
  // MADV_POPULATE_WRITE, which reports what a plain write fault would raise as SIGBUS (a page that
  // cannot be read back, no memory, a file shortened under the mapping) as an errno. On any
  // failure (or a kernel without the advice) the mapping is dropped and false returned: the write
  // goes through pwrite, which reports a real I/O error as a value or does what it always did.
  bool populate(uint64_t begin, uint64_t end) {
    const uint64_t populated = populated_end_.load(std::memory_order_relaxed);
    if (end <= populated) return true;
    const uint64_t from = std::max(begin & ~(page_size() - 1), populated);
    const uint64_t to = std::min(mapped_length_, (end + kPopulateAhead + page_size() - 1) &
                                                     ~(page_size() - 1));
    while (::madvise(mapped_ + from, to - from, MADV_POPULATE_WRITE) != 0) {
      if (errno == EINTR) continue;
      unmap();
      return false;
    }
    populated_end_.store(to, std::memory_order_relaxed);
    return true;
  }

  // A write through the mapping or beside it ended at `end`: the forward writer is done with the
  // pages below.
  void wrote(uint64_t end) {
    written_end_.store(end, std::memory_order_release);
    release_written(end, kReleaseStep);
  }

  // Drops the page table entries of the whole pages below `end`, which the forward writer is done
  // with, once they come to `step` bytes: their dirty pages stay in the page cache, but the
  // writeback that cleans them then has no mapping to write-protect, which costs a TLB shootdown
  // per page (an interrupt of every core the process runs on) where this costs one per call.
  // Called by the writer and, before an fdatasync, by the thread that syncs (unmap_mutex_ held).
  void release_written(uint64_t end, uint64_t step) {
    const uint64_t done = end & ~(page_size() - 1);
    uint64_t released = released_end_.load(std::memory_order_relaxed);
    for (;;) {
      if (done <= released || done < released + step) return;
      if (released_end_.compare_exchange_weak(released, done, std::memory_order_relaxed)) break;
    }
    (void)::madvise(mapped_ + released, done - released, MADV_DONTNEED);
  }

  void unmap() {
    std::lock_guard<std::mutex> hold(unmap_mutex_);
    if (mapped_ == nullptr) return;
    ::munmap(mapped_, mapped_length_);
    mapped_ = nullptr;
    mapped_length_ = 0;
  }

  int fd_;
  std::string path_;
  // The shared mapping of map_for_writes() (null: none). The writer's thread maps and unmaps it;
  // sync_data(), which may run beside a write on another thread, reads it under unmap_mutex_,
  // which unmap() holds (a range unmapped and mapped again by something else must not be zapped).
  // populated_end_ is the end of the pages known present and writable; sync_data() resets it.
  std::mutex unmap_mutex_;
  std::byte* mapped_ = nullptr;
  uint64_t mapped_length_ = 0;
  std::atomic<uint64_t> released_end_{0};  // pages below are unmapped (release_written)
  std::atomic<uint64_t> written_end_{0};   // the end of the last write (wrote())
  std::atomic<uint64_t> populated_end_{0};
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}
  ~PosixFileLock() override { ::close(fd_); }  // closing the descriptor releases the flock
  PosixFileLock(const PosixFileLock&) = delete;
  PosixFileLock& operator=(const PosixFileLock&) = delete;

 private:
  int fd_;
};

class PosixFileSystem final : public FileSystem {
 public:
  // One io_uring submission for the whole batch where the kernel allows; each read it did not
  // finish (an error is taken as it is, EINTR and EAGAIN aside) goes on with read_at.
  void read_batch(std::span<ReadRequest> requests) override {
    std::vector<RingRead> reads(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
      auto* file = dynamic_cast<PosixFile*>(requests[i].file);
      reads[i] = RingRead{file != nullptr ? file->fd() : -1, requests[i].offset, requests[i].out};
      reads[i].result = -EAGAIN;
    }
    bool ringed = reads.size() > 1 && ring_read(reads);
    for (size_t i = 0; i < requests.size(); ++i) {
      ReadRequest& r = requests[i];
      const ssize_t n = ringed && reads[i].fd >= 0 ? reads[i].result : -EAGAIN;
      if (n == -EAGAIN || n == -EINTR) {
        r.got = r.file->read_at(r.offset, r.out);
      } else if (n < 0) {
        r.got = file_error("pread", r.file->path(), static_cast<int>(-n));
      } else if (static_cast<size_t>(n) < r.out.size() && n > 0) {
        auto rest = r.file->read_at(r.offset + static_cast<uint64_t>(n),
                                    r.out.subspan(static_cast<size_t>(n)));
        r.got = rest.ok() ? Result<size_t>(static_cast<size_t>(n) + *rest)
                          : Result<size_t>(rest.error());
      } else {
        r.got = static_cast<size_t>(n);
      }
    }
  }

  Result<std::unique_ptr<File>> open(const std::string& path, OpenMode mode) override {
    int flags = O_CLOEXEC;
    switch (mode) {
      case OpenMode::ReadOnly:
        flags |= O_RDONLY;
        break;
      case OpenMode::ReadWrite:
        flags |= O_RDWR;
        break;
      case OpenMode::CreateOrOpen:
        flags |= O_RDWR | O_CREAT;
        break;
      case OpenMode::CreateNew:
        flags |= O_RDWR | O_CREAT | O_EXCL;
        break;
    }
    int fd;
    do {
      fd = ::open(path.c_str(), flags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return file_error("open", path, errno);
    return std::unique_ptr<File>(new PosixFile(fd, path));
  }

  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return std::move(file_error("rename", from, errno)).with("to", to);
    }
    return ok_status();
  }

  Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return file_error("unlink", path, errno);
    return ok_status();
  }

  Status sync_directory(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return file_error("open directory", path, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return file_error("fsync directory", path, err);
    return ok_status();
  }

  Status create_directory(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return file_error("mkdir", path, errno);
    }
    return ok_status();
  }

  Status remove_directory(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) return file_error("rmdir", path, errno);
    return ok_status();
  }

  Result<std::vector<std::string>> list_directory(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return file_error("opendir", path, errno);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* entry = ::readdir(dir)) {
      std::string_view name = entry->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    int err = errno;
    ::closedir(dir);
    if (err != 0) return file_error("readdir", path, err);
    return names;
  }

  Result<bool> exists(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT) return false;
    return file_error("stat", path, errno);
  }

  Result<FileKind> file_kind(const std::string& path) override {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) return FileKind::Missing;
      return file_error("lstat", path, errno);
    }
    if (S_ISREG(st.st_mode)) return FileKind::Regular;
    if (S_ISDIR(st.st_mode)) return FileKind::Directory;
    if (S_ISLNK(st.st_mode)) return FileKind::SymbolicLink;
    return FileKind::Other;
  }

  Result<std::unique_ptr<FileLock>> lock(const std::string& path, LockMode mode) override {
    // A shared lock is a reader's probe: it opens an existing file for reading only, so it works
    // on a read-only mount and for a user who may not write the store (flock needs no write access).
    int fd = mode == LockMode::Shared ? ::open(path.c_str(), O_RDONLY | O_CLOEXEC)
                                      : ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return file_error("open lock file", path, errno);
    int op = (mode == LockMode::Exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB;
    while (::flock(fd, op) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) return std::unique_ptr<FileLock>();
      return file_error("flock", path, err);
    }
    return std::unique_ptr<FileLock>(new PosixFileLock(fd));
  }

  // /proc/locks lines read "1: FLOCK  ADVISORY  WRITE 3062 fe:00:11035908 0 EOF": the holder's
  // pid, then the file's device (major:minor, hex) and inode.
  std::optional<LockHolder> lock_holder(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    FILE* locks = std::fopen("/proc/locks", "re");
    if (locks == nullptr) return std::nullopt;
    std::optional<LockHolder> holder;
    char line[256];
    while (!holder && std::fgets(line, sizeof line, locks) != nullptr) {
      long long pid = 0;
      unsigned major_number = 0;
      unsigned minor_number = 0;
      unsigned long long inode = 0;
      if (std::sscanf(line, "%*s %*s %*s %*s %lld %x:%x:%llu", &pid, &major_number, &minor_number,
                      &inode) == 4 &&
          pid > 0 && inode == st.st_ino && major_number == major(st.st_dev) &&
          minor_number == minor(st.st_dev)) {
        holder = LockHolder{pid, pid == ::getpid()};
      }
    }
    std::fclose(locks);
    return holder;
  }
};

}  // namespace

FileSystem& posix_file_system() {
  static PosixFileSystem* file_system = new PosixFileSystem();  // never destroyed
  return *file_system;
}

}  // namespace keel::platform
