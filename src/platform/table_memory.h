// Memory for large tables read at random (the idempotency key set, index/idempotency_index.h).
// An allocation of at least kHugePageBytes is an anonymous mapping aligned to 2 MiB that the
// kernel is asked (madvise MADV_HUGEPAGE) to back with transparent huge pages: a lookup at a
// random place in a table of tens of megabytes then costs a cache miss but not also a TLB miss
// (docs/DECISIONS.md, "Idempotency cost"). The advice is a hint: where huge pages are off or
// unavailable the mapping is used with normal pages. A huge allocation takes whole 2 MiB pages (at
// most 2 MiB more than asked), and its first touches may take longer where the kernel compacts
// memory to find huge pages (its defrag setting). Smaller allocations come from operator new.
#pragma once

#include <cstddef>

namespace keel::platform {

// A transparent huge page on x86-64 and (4 KiB-page) AArch64; also the size from which an
// allocation is mapped.
inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// Never null: throws std::bad_alloc as operator new does. A huge allocation is 2 MiB aligned;
// one asking for more alignment than that comes from operator new.
void* allocate_table(size_t bytes, size_t alignment);
// Frees what allocate_table(bytes, alignment) returned, given the same arguments.
void free_table(void* memory, size_t bytes, size_t alignment) noexcept;
// Grows a table of `old_bytes` (null when 0) to `new_bytes` (larger) and returns it, keeping its
// first `used_bytes`; what it returns is freed with new_bytes. A huge table's pages are remapped
// (mremap: in place when the address space after it is free, else moved to a 2 MiB aligned range),
// not copied, so the pages already touched are not touched again; where remapping fails, and for
// small tables, the used bytes are copied into a new allocation.
void* grow_table(void* memory, size_t old_bytes, size_t new_bytes, size_t used_bytes,
                 size_t alignment);

// A standard allocator over allocate_table, for containers holding such a table.
template <typename T>
struct TableAllocator {
  using value_type = T;
  TableAllocator() = default;
  template <typename U>
  TableAllocator(const TableAllocator<U>&) noexcept {}  // rebinding, as containers do
  T* allocate(size_t n) { return static_cast<T*>(allocate_table(n * sizeof(T), alignof(T))); }
  void deallocate(T* p, size_t n) noexcept { free_table(p, n * sizeof(T), alignof(T)); }
  template <typename U>
  friend bool operator==(const TableAllocator&, const TableAllocator<U>&) noexcept {
    return true;  // stateless: any one frees what another allocated
  }
};

}  // namespace keel::platform
