#include "platform/wake_flag.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

namespace keel::platform {
namespace {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "a futex word is 32 bits");

uint32_t* futex_word(std::atomic<uint32_t>& word) { return reinterpret_cast<uint32_t*>(&word); }

}  // namespace

void WakeFlag::signal() noexcept {
  uint32_t* address = futex_word(word_);
  word_.store(1, std::memory_order_release);
  syscall(SYS_futex, address, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

bool WakeFlag::wait_until(std::chrono::steady_clock::time_point deadline) noexcept {
  using std::chrono::duration_cast;
  using std::chrono::nanoseconds;
  using std::chrono::seconds;
  // libstdc++'s steady_clock is CLOCK_MONOTONIC, the clock of FUTEX_WAIT_BITSET's absolute time.
  const nanoseconds since_epoch = deadline.time_since_epoch();
  timespec at{};
  at.tv_sec = static_cast<time_t>(duration_cast<seconds>(since_epoch).count());
  at.tv_nsec = static_cast<long>((since_epoch - duration_cast<seconds>(since_epoch)).count());
  while (!is_set()) {
    if (std::chrono::steady_clock::now() >= deadline) return is_set();
    // Sleeps only while the word is still 0; a signal() between the check and the sleep makes the
    // call return at once (EAGAIN). EINTR and spurious wakes loop.
    long r = syscall(SYS_futex, futex_word(word_), FUTEX_WAIT_BITSET_PRIVATE, 0, &at, nullptr,
                     FUTEX_BITSET_MATCH_ANY);
    if (r != 0 && errno == ETIMEDOUT) return is_set();
  }
  return true;
}

}  // namespace keel::platform
