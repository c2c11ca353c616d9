// platform::WakeFlag, the futex the commit pipeline's waiters sleep on: a signal ends a wait at
// once (before or during it), a deadline ends it without one, and a waiter may end the flag's
// life as soon as it sees the signal (the pipeline's waiters live on their callers' stacks).
#include "platform/wake_flag.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <thread>

using keel::platform::WakeFlag;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

TEST_CASE("WakeFlag: a signal before the wait ends it at once and stays set", "[platform]") {
  WakeFlag flag;
  CHECK_FALSE(flag.is_set());
  flag.signal();
  CHECK(flag.is_set());
  CHECK(flag.wait_until(SteadyClock::now() + 10s));
  CHECK(flag.wait_until(SteadyClock::now() - 1s));  // set: the past deadline does not matter
}

TEST_CASE("WakeFlag: a deadline ends a wait without a signal and not before it", "[platform]") {
  WakeFlag flag;
  CHECK_FALSE(flag.wait_until(SteadyClock::now() - 1s));
  const auto started = SteadyClock::now();
  CHECK_FALSE(flag.wait_until(started + 30ms));
  CHECK(SteadyClock::now() - started >= 30ms);
  CHECK_FALSE(flag.is_set());
}

TEST_CASE("WakeFlag: a signal from another thread wakes a sleeping waiter", "[platform]") {
  WakeFlag flag;
  std::atomic<bool> woke{false};
  std::thread waiter([&] { woke = flag.wait_until(SteadyClock::time_point::max()); });
  std::this_thread::sleep_for(20ms);  // the waiter is (most likely) asleep in the kernel by now
  CHECK_FALSE(woke);
  flag.signal();
  waiter.join();  // a lost wake-up would hang here: the wait has no deadline
  CHECK(woke);
}

TEST_CASE("WakeFlag: the waiter may destroy the flag as soon as it sees the signal",
          "[platform][concurrency]") {
  // Under ASan a signal() that touched the flag after the waiter freed it is a use after free.
  for (int round = 0; round < 2000; ++round) {
    auto flag = std::make_unique<WakeFlag>();
    WakeFlag* raw = flag.get();
    std::thread signaller([raw] { raw->signal(); });
    // Half the rounds wait with a deadline that may pass first; then the flag is still awaited
    // without one, as the pipeline does for a waiter taken off its list at its deadline.
    if (round % 2 == 0 || !flag->wait_until(SteadyClock::now() + 1us)) {
      REQUIRE(flag->wait_until(SteadyClock::time_point::max()));
    }
    flag.reset();
    signaller.join();
  }
}
