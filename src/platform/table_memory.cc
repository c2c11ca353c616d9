#include "platform/table_memory.h"

#include <sys/mman.h>

#include <cstdint>
#include <new>

namespace keel::platform {
namespace {

size_t whole_pages(size_t bytes) {
  return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
}

// Mapped (huge) or from operator new; the same answer at allocation and at free.
bool is_huge(size_t bytes, size_t alignment) {
  return bytes >= kHugePageBytes && alignment <= kHugePageBytes;
}

}  // namespace

void* allocate_table(size_t bytes, size_t alignment) {
  if (!is_huge(bytes, alignment)) return ::operator new(bytes, std::align_val_t{alignment});
  // Map a huge page more than needed, then unmap the unaligned head and whatever is left past the
  // aligned length: what stays is 2 MiB aligned, so the kernel can give it whole huge pages.
  const size_t length = whole_pages(bytes);
  void* mapped = ::mmap(nullptr, length + kHugePageBytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<uintptr_t>(mapped);
  const uintptr_t aligned = (start + kHugePageBytes - 1) & ~uintptr_t{kHugePageBytes - 1};
  const uintptr_t end = start + length + kHugePageBytes;
  if (aligned > start) ::munmap(mapped, aligned - start);
  if (end > aligned + length) {
    ::munmap(reinterpret_cast<void*>(aligned + length), end - aligned - length);
  }
#ifdef MADV_HUGEPAGE
  (void)::madvise(reinterpret_cast<void*>(aligned), length, MADV_HUGEPAGE);  // a hint only
#endif
  return reinterpret_cast<void*>(aligned);
}

void free_table(void* memory, size_t bytes, size_t alignment) noexcept {
  if (!is_huge(bytes, alignment)) {
    ::operator delete(memory, std::align_val_t{alignment});
    return;
  }
  ::munmap(memory, whole_pages(bytes));
}

}  // namespace keel::platform
