// Reactors (include/keel/reactor.h): each source event gets exactly one set of reactions, caused by
// it, across failed commits, power losses and SIGKILLs at random points; the variant without the
// derived idempotency keys (the negative control) must be caught reacting twice.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "keel/keel.h"
#include "platform/fault_file_system.h"
#include "platform/memory_file_system.h"
#include "test_support.h"

namespace keel {
namespace {

constexpr EventKind kOrder = EventKind::make(1, 1);
constexpr EventKind kEmail = EventKind::make(2, 1);
constexpr EventKind kAudit = EventKind::make(2, 2);

// Two reactions per order: an email and an audit record, both naming the order's sequence.
Reactor::React two_reactions() {
  return [](const Event& source) -> Result<std::vector<Reaction>> {
    std::vector<Reaction> out;
    out.push_back(Reaction{{"email:" + source.coordinate.entity, "r"}, kEmail,
                           std::to_string(source.sequence), {}});
    out.push_back(Reaction{{"audit", "r"}, kAudit, std::to_string(source.sequence), {}});
    return out;
  };
}

Query orders() {
  Query q;
  q.kind = kOrder;
  return q;
}

// How many reactions of each kind name each source event (by causation).
std::map<EventId, std::pair<int, int>> reactions_by_source(Store& store) {
  std::map<EventId, std::pair<int, int>> out;
  auto events = store.scan_events(1, UINT64_MAX);
  if (!events.ok()) FAIL(events.error().to_string());
  for (const Event& e : *events) {
    if (e.kind == kEmail) ++out[*e.causation_id].first;
    if (e.kind == kAudit) ++out[*e.causation_id].second;
  }
  return out;
}

// Sources with more than one email or audit caused by them.
int duplicated(Store& store) {
  int twice = 0;
  for (const auto& [id, counts] : reactions_by_source(store)) {
    twice += counts.first > 1 || counts.second > 1 ? 1 : 0;
  }
  return twice;
}

// Every order has exactly one email and one audit caused by it; returns how many do not.
int not_exactly_once(Store& store) {
  auto by_source = reactions_by_source(store);
  auto events = store.scan_events(1, UINT64_MAX);
  if (!events.ok()) FAIL(events.error().to_string());
  int wrong = 0;
  for (const Event& e : *events) {
    if (e.kind != kOrder) continue;
    auto it = by_source.find(e.event_id);
    if (it == by_source.end() || it->second != std::make_pair(1, 1)) ++wrong;
  }
  return wrong;
}

void append_orders(Store& store, int n, int start) {
  for (int i = start; i < start + n; ++i) {
    KEEL_REQUIRE_OK(store.append({"order:" + std::to_string(i), "s"}, kOrder, "o"));
  }
}

// Runs the reactor until it has nothing more to do.
void drain(Reactor& reactor) {
  for (;;) {
    auto handled = reactor.run_once(std::chrono::milliseconds(50));
    if (!handled.ok()) FAIL(handled.error().to_string());
    if (*handled == 0) return;
  }
}

TEST_CASE("a reactor appends each source's reactions once, caused by it, and resumes after a "
          "reopen",
          "[reactor]") {
  platform::MemoryFileSystem fs;
  StoreOptions options;
  options.create_if_missing = true;
  options.file_system = &fs;
  {
    auto store = Store::open("/s", options);
    KEEL_REQUIRE_OK(store);
    append_orders(**store, 25, 0);
    auto reactor = Reactor::open(**store, "mailer", orders(), two_reactions());
    KEEL_REQUIRE_OK(reactor);
    drain(**reactor);
    CHECK(not_exactly_once(**store) == 0);
    append_orders(**store, 5, 25);
    KEEL_REQUIRE_OK((*store)->close());
  }
  auto store = Store::open("/s", options);
  KEEL_REQUIRE_OK(store);
  auto reactor = Reactor::open(**store, "mailer", orders(), two_reactions());
  KEEL_REQUIRE_OK(reactor);
  drain(**reactor);
  CHECK(not_exactly_once(**store) == 0);
  CHECK(reactions_by_source(**store).size() == 30);
  // Reactions are not sources (the filter), so the reactor is idle now.
  auto idle = (*reactor)->run_once(std::chrono::milliseconds(10));
  KEEL_REQUIRE_OK(idle);
  CHECK(*idle == 0);
}

TEST_CASE("a reactor refuses reactions that set its causation or key, and a failing react is "
          "retried from the failed source",
          "[reactor]") {
  platform::MemoryFileSystem fs;
  StoreOptions options;
  options.create_if_missing = true;
  options.file_system = &fs;
  auto store = Store::open("/s", options);
  KEEL_REQUIRE_OK(store);
  append_orders(**store, 6, 0);
  int calls = 0;
  auto flaky = [&](const Event& source) -> Result<std::vector<Reaction>> {
    if (++calls == 4) {
      return StoreError(ErrorCode::NotSupported).with("feature", "react").with("reason", "flaky");
    }
    return two_reactions()(source);
  };
  auto reactor = Reactor::open(**store, "flaky", orders(), flaky);
  KEEL_REQUIRE_OK(reactor);
  auto failed = (*reactor)->run_once(std::chrono::milliseconds(100));
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().code() == ErrorCode::NotSupported);
  CHECK((*reactor)->consumer().cursor() == 3);  // the three before the failure are committed
  drain(**reactor);
  CHECK(not_exactly_once(**store) == 0);

  auto keyed = Reactor::open(**store, "keyed", orders(), [](const Event&) -> Result<std::vector<Reaction>> {
    Reaction r{{"x", "s"}, kEmail, "", {}};
    r.options.idempotency_key = "mine";
    return std::vector<Reaction>{r};
  });
  KEEL_REQUIRE_OK(keyed);
  auto refused = (*keyed)->run_once(std::chrono::milliseconds(100));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code() == ErrorCode::InvalidArgument);
}

// A reactor whose cursor commits fail (the reactions were appended): it replays them, and the
// derived keys answer with the originals. Returns the count of sources not reacted to exactly once.
int replay_after_failed_commits(bool skip_keys) {
  platform::FaultFileSystem fs;
  StoreOptions options;
  options.create_if_missing = true;
  options.file_system = &fs;
  auto store = Store::open("/s", options);
  if (!store.ok()) FAIL(store.error().to_string());
  append_orders(**store, 20, 0);
  ReactorOptions reactor_options;
  reactor_options.unsafe_skip_idempotency_keys_for_test = skip_keys;
  reactor_options.consumer.subscription.batch_max = 4;
  for (int round = 0; round < 5; ++round) {  // 20 orders, 4 a batch
    auto reactor = Reactor::open(**store, "mailer", orders(), two_reactions(), reactor_options);
    if (!reactor.ok()) FAIL(reactor.error().to_string());
    // Fail the rename of the cursor file: the batch's reactions are appended, its commit fails.
    fs.fail_nth(platform::FaultOp::Rename, 1);
    auto run = (*reactor)->run_once(std::chrono::milliseconds(100));
    CHECK_FALSE(run.ok());
    fs.clear_faults();
    auto again = (*reactor)->run_once(std::chrono::milliseconds(100));  // the same batch again
    if (!again.ok()) FAIL(again.error().to_string());
  }
  auto reactor = Reactor::open(**store, "mailer", orders(), two_reactions(), reactor_options);
  if (!reactor.ok()) FAIL(reactor.error().to_string());
  drain(**reactor);
  return not_exactly_once(**store);
}

TEST_CASE("a reactor whose commits fail replays its batch without reacting twice", "[reactor][fault]") {
  CHECK(replay_after_failed_commits(false) == 0);
}

TEST_CASE("control: a reactor without the derived idempotency keys is caught reacting twice",
          "[reactor][fault]") {
  CHECK(replay_after_failed_commits(true) > 0);
}

// The SIGKILL loop: a forked child opens the store and runs the reactor (committing every batch of
// 3); the parent kills it at a random moment of its first 10 ms of work (timed from when the child
// says it is ready: fixed delays from the fork missed the work on a fast machine, where the child
// reacted to all 15 new orders before the earliest kill and the control caught nothing), counts
// sources reacted to twice, appends more orders, and starts another (up to `kills`, or until a
// duplicate shows); at the end the reactor drains in the parent. Returns the sources not reacted
// to exactly once.
constexpr int kOrdersPerKill = 15;
constexpr int kKillWindowUs = 10'000;

int sigkill_loop(bool skip_keys, int kills) {
  test::TempDir scratch;
  const std::string dir = scratch / "store";
  StoreOptions options;
  options.create_if_missing = true;
  ReactorOptions reactor_options;
  reactor_options.unsafe_skip_idempotency_keys_for_test = skip_keys;
  reactor_options.consumer.subscription.batch_max = 3;
  std::mt19937_64 rng(20261205);
  for (int k = 0; k < kills; ++k) {
    {
      auto store = Store::open(dir, options);
      if (!store.ok()) FAIL(store.error().to_string());
      if (duplicated(**store) > 0) break;  // found: the rest cannot undo it
      append_orders(**store, kOrdersPerKill, k * kOrdersPerKill);
      if (!(*store)->close().ok()) FAIL("close");
    }
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    pid_t child = fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      close(ready[0]);
      auto store = Store::open(dir, options);
      if (!store.ok()) _exit(3);
      auto reactor = Reactor::open(**store, "mailer", orders(), two_reactions(), reactor_options);
      if (!reactor.ok()) _exit(4);
      if (write(ready[1], "r", 1) != 1) _exit(6);
      for (;;) {
        if (!(*reactor)->run_once(std::chrono::milliseconds(20)).ok()) _exit(5);
      }
    }
    close(ready[1]);
    // The kill lands at a random moment of the reactor's work, however fast this machine reacts:
    // timed from the moment it is ready, within the time the new orders take it at the least.
    char byte = 0;
    (void)!read(ready[0], &byte, 1);
    close(ready[0]);
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % kKillWindowUs));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    REQUIRE(WIFSIGNALED(status));  // killed, not ended by an error
  }
  auto store = Store::open(dir, options);
  if (!store.ok()) FAIL(store.error().to_string());
  auto reactor = Reactor::open(**store, "mailer", orders(), two_reactions(), reactor_options);
  if (!reactor.ok()) FAIL(reactor.error().to_string());
  drain(**reactor);
  return not_exactly_once(**store);
}

TEST_CASE("SIGKILLed reactors yield exactly one set of reactions per source event",
          "[reactor][crash]") {
  // ASan makes every child's start and store open slow: fewer kills there, the same check.
#if defined(__SANITIZE_ADDRESS__)
  constexpr int kKills = 20;
#else
  constexpr int kKills = 50;
#endif
  CHECK(sigkill_loop(false, kKills) == 0);
}

TEST_CASE("control: SIGKILLed reactors without derived keys are caught reacting twice",
          "[reactor][crash]") {
  CHECK(sigkill_loop(true, 100) > 0);  // stops at the first duplicate
}

}  // namespace
}  // namespace keel
