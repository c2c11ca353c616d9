// Table memory (src/platform/table_memory.h): small allocations behave as operator new's; large
// ones are whole 2 MiB-aligned, usable, and advised for huge pages (VmFlags "hg" in
// /proc/self/smaps, wherever the kernel has transparent huge pages), and the idempotency key set's
// table lives in such memory once it is large. A table grows with its bytes kept, remapped in place
// or moved (a mapping placed right after it forces the move), and the index's Column
// (src/index/column.h) keeps its values through growth, copies and moves.
#include "platform/table_memory.h"

#include <sys/mman.h>
#include <sys/prctl.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "index/column.h"
#include "index/idempotency_index.h"
#include "keel/event.h"

namespace {

using keel::platform::allocate_table;
using keel::platform::free_table;
using keel::platform::grow_table;
using keel::platform::kHugePageBytes;

struct Mapping {
  uintptr_t start = 0;
  uintptr_t end = 0;
  bool huge_advised = false;  // VmFlags has "hg" (madvise MADV_HUGEPAGE)
};

std::vector<Mapping> mappings() {
  std::vector<Mapping> found;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  while (std::getline(smaps, line)) {
    const size_t dash = line.find('-');
    const size_t space = line.find(' ');
    if (dash != std::string::npos && space != std::string::npos && dash < space &&
        line.find(':') > space) {  // a mapping's header: "start-end perms ..."
      found.push_back(Mapping{std::stoull(line.substr(0, dash), nullptr, 16),
                              std::stoull(line.substr(dash + 1, space - dash - 1), nullptr, 16)});
    } else if (line.rfind("VmFlags:", 0) == 0 && !found.empty()) {
      std::istringstream flags(line.substr(8));
      for (std::string flag; flags >> flag;) found.back().huge_advised |= flag == "hg";
    }
  }
  return found;
}

// Bytes of huge-page-advised mappings in the process.
uint64_t advised_bytes() {
  uint64_t bytes = 0;
  for (const Mapping& m : mappings()) bytes += m.huge_advised ? m.end - m.start : 0;
  return bytes;
}

// madvise(MADV_HUGEPAGE) marks mappings only on kernels built with transparent huge pages, and not
// in a process (a container, say) that has them switched off with prctl.
bool kernel_has_huge_pages() {
  return std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled") &&
         ::prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 0;
}

}  // namespace

TEST_CASE("small table allocations are aligned as asked and usable", "[platform][table_memory]") {
  for (size_t alignment : {size_t{8}, size_t{16}, size_t{64}}) {
    const size_t bytes = kHugePageBytes - 1;
    auto* p = static_cast<unsigned char*>(allocate_table(bytes, alignment));
    CHECK(reinterpret_cast<uintptr_t>(p) % alignment == 0);
    p[0] = 1;
    p[bytes - 1] = 2;
    CHECK(p[0] + p[bytes - 1] == 3);
    free_table(p, bytes, alignment);
  }
}

TEST_CASE("large table allocations are 2 MiB aligned, whole, usable and advised for huge pages",
          "[platform][table_memory]") {
  const size_t bytes = 3 * kHugePageBytes + 12'345;
  auto* p = static_cast<unsigned char*>(allocate_table(bytes, 16));
  const auto at = reinterpret_cast<uintptr_t>(p);
  CHECK(at % kHugePageBytes == 0);
  for (size_t i = 0; i < bytes; i += 4096) p[i] = static_cast<unsigned char>(i / 4096);
  p[bytes - 1] = 0xee;
  size_t wrong = 0;
  for (size_t i = 0; i < bytes; i += 4096) wrong += p[i] != static_cast<unsigned char>(i / 4096);
  CHECK(wrong == 0);
  CHECK(p[bytes - 1] == 0xee);

  bool covered = false;
  bool advised = false;
  for (const Mapping& m : mappings()) {
    if (m.start <= at && at + bytes <= m.end) {
      covered = true;
      advised = m.huge_advised;
    }
  }
  CHECK(covered);
  if (kernel_has_huge_pages()) {
    CHECK(advised);
  } else {
    WARN("no transparent huge pages in this kernel: the advice is not checked");
  }
  free_table(p, bytes, 16);
  for (const Mapping& m : mappings()) CHECK_FALSE((m.start <= at && at < m.end));  // unmapped
}

TEST_CASE("freeing a large table gives back all it mapped", "[platform][table_memory]") {
  auto mapped_bytes = [] {
    uint64_t bytes = 0;
    for (const Mapping& m : mappings()) bytes += m.end - m.start;
    return bytes;
  };
  const size_t bytes = kHugePageBytes + 1;  // the worst rounding: a second huge page for 1 byte
  const uint64_t before = mapped_bytes();
  for (int i = 0; i < 64; ++i) {
    void* p = allocate_table(bytes, 16);
    static_cast<unsigned char*>(p)[bytes - 1] = 1;
    free_table(p, bytes, 16);
  }
  // Leaving the unaligned head or the spare tail mapped would hold 2 MiB per round: 128 MiB.
  CHECK(mapped_bytes() <= before + 8 * kHugePageBytes);
}

TEST_CASE("a large idempotency key set lives in memory advised for huge pages",
          "[platform][table_memory][idempotency]") {
  if (!kernel_has_huge_pages()) {
    WARN("no transparent huge pages in this kernel: nothing to check");
    return;
  }
  const uint64_t before = advised_bytes();
  keel::index::IdempotencyIndex keys;
  keel::Receipt receipt;
  // 300,000 keys: a set of 512Ki buckets, ~4.5 MiB of slots and control bytes.
  for (uint64_t i = 1; i <= 300'000; ++i) {
    receipt.sequence = i;
    if (!keys.add("key-" + std::to_string(i), keel::Hash128{i, i}, receipt)) FAIL("add " << i);
  }
  CHECK(advised_bytes() >= before + 2 * kHugePageBytes);
}

namespace {

// Fills the first `bytes` of p with a pattern of its offsets (one byte per 4 KiB page and the last
// byte), and counts the bytes that differ from it.
void fill_pattern(unsigned char* p, size_t bytes) {
  for (size_t i = 0; i < bytes; i += 4096) p[i] = static_cast<unsigned char>(i / 4096 + 1);
  p[bytes - 1] = 0xee;
}
size_t pattern_errors(const unsigned char* p, size_t bytes) {
  size_t wrong = 0;
  for (size_t i = 0; i < bytes; i += 4096)
    wrong += p[i] != static_cast<unsigned char>(i / 4096 + 1);
  return wrong + (p[bytes - 1] != 0xee);
}

uint64_t mapped_bytes() {
  uint64_t bytes = 0;
  for (const Mapping& m : mappings()) bytes += m.end - m.start;
  return bytes;
}

}  // namespace

TEST_CASE("a large table grows with its bytes kept whether remapped in place or moved",
          "[platform][table_memory]") {
  const size_t old_bytes = 2 * kHugePageBytes + 777;
  const size_t new_bytes = 5 * kHugePageBytes;
  for (bool blocked : {false, true}) {
    CAPTURE(blocked);
    auto* p = static_cast<unsigned char*>(allocate_table(old_bytes, 16));
    fill_pattern(p, old_bytes);
    void* blocker = MAP_FAILED;
    if (blocked) {  // a mapping right after the table: it can not grow in place
      blocker = ::mmap(p + 3 * kHugePageBytes, 4096, PROT_READ,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    }
    auto* grown = static_cast<unsigned char*>(grow_table(p, old_bytes, new_bytes, old_bytes, 16));
    CHECK(pattern_errors(grown, old_bytes) == 0);
    CHECK(reinterpret_cast<uintptr_t>(grown) % kHugePageBytes == 0);
    if (blocked && blocker != MAP_FAILED) CHECK(grown != p);
    grown[new_bytes - 1] = 0x5a;  // the new room is usable
    bool advised = false;
    for (const Mapping& m : mappings()) {
      const auto at = reinterpret_cast<uintptr_t>(grown);
      if (m.start <= at && at + new_bytes <= m.end) advised = m.huge_advised;
    }
    if (kernel_has_huge_pages()) CHECK(advised);
    free_table(grown, new_bytes, 16);
    if (blocker != MAP_FAILED) ::munmap(blocker, 4096);
  }
}

TEST_CASE("growing tables leaves no mapping behind", "[platform][table_memory]") {
  const uint64_t before = mapped_bytes();
  for (int i = 0; i < 32; ++i) {
    // Small to huge (copied), then huge to larger (remapped), then freed at the last size.
    void* p = grow_table(nullptr, 0, 1000, 0, 16);
    fill_pattern(static_cast<unsigned char*>(p), 1000);
    p = grow_table(p, 1000, kHugePageBytes + 1, 1000, 16);
    CHECK(pattern_errors(static_cast<unsigned char*>(p), 1000) == 0);
    p = grow_table(p, kHugePageBytes + 1, 4 * kHugePageBytes + 1, 1000, 16);
    CHECK(pattern_errors(static_cast<unsigned char*>(p), 1000) == 0);
    free_table(p, 4 * kHugePageBytes + 1, 16);
  }
  // A reservation or an old range left mapped would hold at least 2 MiB per round: 64 MiB.
  CHECK(mapped_bytes() <= before + 8 * kHugePageBytes);
}

TEST_CASE("a column keeps its values through growth, copies and moves", "[index][table_memory]") {
  keel::index::Column<uint32_t> column;
  const uint32_t n = 3 * kHugePageBytes / sizeof(uint32_t) + 5;  // past two remapped doublings
  for (uint32_t i = 0; i < n; ++i) column.push_back(i * 7);
  REQUIRE(column.size() == n);
  size_t wrong = 0;
  for (uint32_t i = 0; i < n; ++i) wrong += column[i] != i * 7;
  CHECK(wrong == 0);

  column.resize(n + 10, 42);
  CHECK(column[n] == 42);
  CHECK(column.back() == 42);
  column.resize(n + 9);  // shrinking keeps the values below
  CHECK(column.size() == n + 9);
  CHECK(column.back() == 42);
  const uint32_t tail[] = {1, 2, 3};
  column.append(tail, 3);
  CHECK(column.back() == 3);

  keel::index::Column<uint32_t> copy = column;
  CHECK(std::equal(copy.begin(), copy.end(), column.begin(), column.end()));
  keel::index::Column<uint32_t> moved = std::move(column);
  CHECK(column.empty());  // NOLINT(bugprone-use-after-move): a moved-from column is empty
  CHECK(std::equal(copy.begin(), copy.end(), moved.begin(), moved.end()));
  moved.clear();
  CHECK(moved.empty());
  moved.resize(3, 9);
  CHECK((moved[0] == 9 && moved[2] == 9));

  keel::index::Column<uint16_t> filled(1000, 5);
  CHECK(std::count(filled.begin(), filled.end(), 5) == 1000);
}
