// ReadRing: many preads in one system call, on an io_uring of the calling thread's own (created at
// its first batch, closed when the thread ends). The POSIX file system's read_batch uses it; where
// the kernel or the build has no io_uring, ring_read says so and the caller reads one by one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>

namespace keel::platform {

struct RingRead {
  int fd = -1;
  uint64_t offset = 0;
  std::span<std::byte> out;
  ssize_t result = 0;  // bytes read (may be short), or -errno (-EAGAIN: not read, read it again)
};

// Reads each of `reads` into its `out`, filling `result`. False when no ring is available (then
// no read was done).
bool ring_read(std::span<RingRead> reads);

}  // namespace keel::platform
