#include "platform/table_memory.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstring>
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

// Moves the mapping [memory, + old_length) to a 2 MiB aligned range of new_length, growing it;
// null when the kernel refuses (the mapping is then unchanged).
void* remap_table(void* memory, size_t old_length, size_t new_length) {
  void* grown = ::mremap(memory, old_length, new_length, 0);  // in place: nothing to move
  if (grown != MAP_FAILED) return grown;
  // Reserve an aligned range, then move the pages over it (MREMAP_FIXED replaces what is there).
  void* reserved = ::mmap(nullptr, new_length + kHugePageBytes, PROT_NONE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserved == MAP_FAILED) return nullptr;
  const auto start = reinterpret_cast<uintptr_t>(reserved);
  const uintptr_t aligned = (start + kHugePageBytes - 1) & ~uintptr_t{kHugePageBytes - 1};
  const uintptr_t end = start + new_length + kHugePageBytes;
  grown = ::mremap(memory, old_length, new_length, MREMAP_MAYMOVE | MREMAP_FIXED,
                   reinterpret_cast<void*>(aligned));
  if (grown == MAP_FAILED) {
    ::munmap(reserved, new_length + kHugePageBytes);
    return nullptr;
  }
  if (aligned > start) ::munmap(reserved, aligned - start);
  if (end > aligned + new_length) {
    ::munmap(reinterpret_cast<void*>(aligned + new_length), end - aligned - new_length);
  }
  return grown;
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

void* grow_table(void* memory, size_t old_bytes, size_t new_bytes, size_t used_bytes,
                 size_t alignment) {
  if (memory == nullptr) return allocate_table(new_bytes, alignment);
  if (is_huge(old_bytes, alignment) && is_huge(new_bytes, alignment)) {
    if (whole_pages(new_bytes) == whole_pages(old_bytes)) return memory;  // within its pages
    if (void* grown = remap_table(memory, whole_pages(old_bytes), whole_pages(new_bytes))) {
      return grown;
    }
  }
  void* fresh = allocate_table(new_bytes, alignment);
  if (used_bytes != 0) std::memcpy(fresh, memory, used_bytes);
  free_table(memory, old_bytes, alignment);
  return fresh;
}

}  // namespace keel::platform
