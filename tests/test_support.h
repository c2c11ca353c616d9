// Shared test helpers: temporary directories and byte edits through the platform seam.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "keel/result.h"
#include "keel/retention.h"

namespace keel {

// Retention from `sequence` (keel::retain_from, not forced): the first retained sequence after it.
inline Result<uint64_t> retain_first(Store& store, uint64_t sequence) {
  auto retained = retain_from(store, sequence);
  if (!retained.ok()) return std::move(retained).error();
  return retained->first_retained;
}

}  // namespace keel

namespace keel::test {

// A fresh directory under $TMPDIR, removed with everything in it when destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Whole-file reads and edits, through PosixFileSystem.
std::vector<std::byte> read_bytes(const std::string& path);
void write_bytes(const std::string& path, uint64_t offset, const std::vector<std::byte>& bytes);
void flip_byte(const std::string& path, uint64_t offset, uint8_t mask = 0xff);
void truncate_file(const std::string& path, uint64_t size);
uint64_t file_size(const std::string& path);

// Recomputes the checksum of the frame at the start of `frame` (a plausible header of either form,
// its bytes whole) for `segment_id`: an edited frame then checksums, so only the checks after the
// checksum can refuse it.
void reseal_frame(std::span<std::byte> frame, uint64_t segment_id);

// Every file of a directory (name -> bytes), to assert "byte-identical afterwards".
std::vector<std::pair<std::string, std::vector<std::byte>>> snapshot_directory(
    const std::string& path);

// A finished child process: its exit code (-1 when it did not exit) and its output.
struct CommandRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs `program args` through the shell (quote args) with `input` on stdin; output goes through
// files in `scratch`.
CommandRun run_command(const TempDir& scratch, const std::string& program, const std::string& args,
                       const std::string& input = "");
#ifdef KEEL_CLI
// Runs the keel CLI built with the tests the same way.
inline CommandRun keel_cli(const TempDir& scratch, const std::string& args,
                           const std::string& input = "") {
  return run_command(scratch, KEEL_CLI, args, input);
}
#endif

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Fails the test with the error's text when `status` is not ok.
#define KEEL_REQUIRE_OK(expr)                                                   \
  do {                                                                          \
    auto&& keel_require_ok_ = (expr);                                           \
    if (!keel_require_ok_.ok()) FAIL(keel_require_ok_.error().to_string());     \
  } while (false)

}  // namespace keel::test
