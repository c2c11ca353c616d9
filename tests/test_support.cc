#include "test_support.h"

#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "format/byte_order.h"
#include "format/frame.h"
#include "platform/file_system.h"

namespace keel::test {
namespace {

platform::FileSystem& fs() { return platform::posix_file_system(); }

template <class T>
T must(Result<T> result) {
  if (!result.ok()) throw std::runtime_error(result.error().to_string());
  return std::move(result).value();
}

void must(Status status) {
  if (!status.ok()) throw std::runtime_error(status.error().to_string());
}

}  // namespace

TempDir::TempDir() {
  std::string base = std::filesystem::temp_directory_path() / "keel-test-XXXXXX";
  std::vector<char> buffer(base.begin(), base.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buffer.data();
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::vector<std::byte> read_bytes(const std::string& path) {
  auto file = must(fs().open(path, platform::OpenMode::ReadOnly));
  return must(platform::read_file(*file));
}

void write_bytes(const std::string& path, uint64_t offset, const std::vector<std::byte>& bytes) {
  auto file = must(fs().open(path, platform::OpenMode::ReadWrite));
  must(file->write_at(offset, bytes));
}

void flip_byte(const std::string& path, uint64_t offset, uint8_t mask) {
  auto file = must(fs().open(path, platform::OpenMode::ReadWrite));
  std::byte b[1];
  if (must(file->read_at(offset, b)) != 1) throw std::runtime_error("flip_byte past the end");
  b[0] ^= std::byte{mask};
  must(file->write_at(offset, b));
}

void reseal_frame(std::span<std::byte> frame, uint64_t segment_id) {
  auto sum = format::frame_checksum(frame, segment_id);
  if (!sum) throw std::runtime_error("reseal_frame: no whole frame");
  format::store_u64(frame.data() + format::kFrameChecksumOffset, *sum);
}

void truncate_file(const std::string& path, uint64_t size) {
  auto file = must(fs().open(path, platform::OpenMode::ReadWrite));
  must(file->truncate(size));
}

uint64_t file_size(const std::string& path) {
  auto file = must(fs().open(path, platform::OpenMode::ReadOnly));
  return must(file->size());
}

std::vector<std::pair<std::string, std::vector<std::byte>>> snapshot_directory(
    const std::string& path) {
  auto names = must(fs().list_directory(path));
  std::sort(names.begin(), names.end());
  std::vector<std::pair<std::string, std::vector<std::byte>>> files;
  for (const auto& name : names) files.emplace_back(name, read_bytes(path + "/" + name));
  return files;
}

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

CommandRun run_command(const TempDir& scratch, const std::string& program, const std::string& args,
                       const std::string& input) {
  std::ofstream(scratch / "stdin") << input;
  std::string command = program + " " + args + " <" + (scratch / "stdin") + " >" +
                        (scratch / "stdout") + " 2>" + (scratch / "stderr");
  int status = std::system(command.c_str());
  return CommandRun{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(scratch / "stdout"),
                    slurp(scratch / "stderr")};
}

}  // namespace keel::test
