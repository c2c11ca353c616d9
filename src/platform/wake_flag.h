// WakeFlag: a one-shot signal from one thread to one sleeping thread, with a deadline (a Linux
// futex). The commit pipeline's waiters sleep on one each (writer/commit_pipeline.h).
//
// Why not the standard library: libstdc++ 12 implements std::binary_semaphore's timed wait as a
// poll (sched_yield for the first 64 us, then sleeps of half the time waited so far, up to 64 ms),
// which took the CPU an fdatasync's completion needed and returned callers late; a mutex and
// condition variable per waiter wake it properly but cost the waker a mutex hand-off per waiter
// (docs/DECISIONS.md, 2026-12-07, "Durable callers sleep in the kernel").
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace keel::platform {

class WakeFlag {
 public:
  WakeFlag() = default;
  WakeFlag(const WakeFlag&) = delete;
  WakeFlag& operator=(const WakeFlag&) = delete;

  // Sets the flag and wakes the waiter. The waiter may end the flag's life as soon as it sees the
  // flag set; signal() touches only the futex word's address after setting it (a wake on an
  // address where nobody waits any more is harmless to whoever waits there later: futex waiters
  // check their condition again after every wake).
  void signal() noexcept;
  // Sleeps until the flag is set or the steady clock reaches `deadline`; returns whether it is set.
  bool wait_until(std::chrono::steady_clock::time_point deadline) noexcept;
  bool is_set() const noexcept { return word_.load(std::memory_order_acquire) != 0; }

 private:
  std::atomic<uint32_t> word_{0};
};

}  // namespace keel::platform
