// Replication through a real nats-server with JetStream (include/keel/replication_nats.h): a
// publisher and a follower converge on the same events and hashes; a publisher that crashed
// between the acknowledgement and its cursor commit publishes nothing twice; a second store's
// publisher is refused by the stream's expected last sequence; a follower restarted resumes; a
// stream whose limits removed what a stopped follower needed is CursorExpired; a server restart
// mid-stream loses and duplicates nothing.
#include <fcntl.h>
#include <nats/nats.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "../test_support.h"
#include "keel/keel.h"
#include "keel/replication_nats.h"
#include "nats_server.h"

namespace keel {
namespace {

using test::contains;
using test::NatsServer;
using test::TempDir;
using namespace std::chrono_literals;
constexpr EventKind kKind = EventKind::make(1, 1);

std::unique_ptr<Store> open_at(const std::string& dir) {
  StoreOptions options;
  options.create_if_missing = true;
  auto store = Store::open(dir, options);
  if (!store.ok()) FAIL(store.error().to_string());
  return std::move(store).value();
}

// `events` events over 100 entities, single appends and batches of 10 in turn.
void append_events(Store& store, int events, int from = 0) {
  for (int i = from; i < from + events;) {
    if ((i / 10) % 2 == 0) {
      KEEL_REQUIRE_OK(store.append({"order:" + std::to_string(i % 100), ""}, kKind,
                                   "{\"n\":" + std::to_string(i) + "}"));
      ++i;
    } else {
      std::vector<BatchItem> batch;
      for (int j = 0; j < 10 && i < from + events; ++j, ++i) {
        batch.push_back({{"order:" + std::to_string(i % 100), ""},
                         kKind,
                         "{\"n\":" + std::to_string(i) + "}",
                         {}});
      }
      KEEL_REQUIRE_OK(store.append_batch(batch));
    }
  }
}

NatsOptions options_for(const NatsServer& server, const std::string& stream = "orders") {
  NatsOptions options;
  options.url = server.url();
  options.stream = stream;
  options.request_timeout = 2s;
  return options;
}

std::unique_ptr<NatsPublisher> start_publisher(Store& store, const NatsOptions& options) {
  auto publisher = NatsPublisher::start(store, options);
  if (!publisher.ok()) FAIL(publisher.error().to_string());
  return std::move(publisher).value();
}

std::unique_ptr<NatsFollower> start_follower(Store& store, const NatsOptions& options) {
  auto follower = NatsFollower::start(store, options);
  if (!follower.ok()) FAIL(follower.error().to_string());
  return std::move(follower).value();
}

// Publishes until the cursor reaches `sequence` (retrying a server away), within 30 s.
void publish_through(NatsPublisher& publisher, uint64_t sequence) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (publisher.cursor() < sequence) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    auto progress = publisher.publish(50ms);
    if (!progress.ok() && !progress.error().is(ErrorCode::ServerUnavailable)) {
      FAIL(progress.error().to_string());
    }
    if (!progress.ok()) std::this_thread::sleep_for(100ms);
  }
}

// Follows until the replica holds everything through `sequence`, within 30 s.
void follow_through(NatsFollower& follower, uint64_t sequence) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    auto progress = follower.follow(50ms);
    if (!progress.ok() && !progress.error().is(ErrorCode::ServerUnavailable)) {
      FAIL(progress.error().to_string());
    }
    if (progress.ok() && progress->replica_next > sequence) return;
    REQUIRE(std::chrono::steady_clock::now() < deadline);
  }
}

std::vector<Event> events_of(Store& store) {
  auto events = store.scan_events(1, UINT64_MAX);
  if (!events.ok()) FAIL(events.error().to_string());
  for (Event& e : *events) e.epoch = 0;
  return std::move(events).value();
}

void check_same(Store& source, Store& replica) {
  CHECK(events_of(replica) == events_of(source));
  auto verified = replica.verify();
  KEEL_REQUIRE_OK(verified);
  CHECK(verified->ok);
  CHECK(verified->events_checked == source.stats().sequence_visible);
}

// The stream's state, read with the C client.
struct StreamState {
  uint64_t messages = 0;
  uint64_t first = 0;
  uint64_t last = 0;
};
StreamState stream_state(const NatsServer& server, const std::string& stream) {
  natsConnection* connection = nullptr;
  REQUIRE(natsConnection_ConnectTo(&connection, server.url().c_str()) == NATS_OK);
  jsCtx* js = nullptr;
  REQUIRE(natsConnection_JetStream(&js, connection, nullptr) == NATS_OK);
  jsStreamInfo* info = nullptr;
  StreamState state;  // all 0 while the stream does not exist
  if (js_GetStreamInfo(&info, js, stream.c_str(), nullptr, nullptr) == NATS_OK) {
    state = StreamState{info->State.Msgs, info->State.FirstSeq, info->State.LastSeq};
    jsStreamInfo_Destroy(info);
  }
  jsCtx_Destroy(js);
  natsConnection_Destroy(connection);
  return state;
}

void create_limited_stream(const NatsServer& server, const std::string& stream, int64_t max_msgs) {
  natsConnection* connection = nullptr;
  REQUIRE(natsConnection_ConnectTo(&connection, server.url().c_str()) == NATS_OK);
  jsCtx* js = nullptr;
  REQUIRE(natsConnection_JetStream(&js, connection, nullptr) == NATS_OK);
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = stream.c_str();
  const std::string subject = "keel." + stream;
  const char* subjects[] = {subject.c_str()};
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.MaxMsgs = max_msgs;
  REQUIRE(js_AddStream(nullptr, js, &config, nullptr, nullptr) == NATS_OK);
  jsCtx_Destroy(js);
  natsConnection_Destroy(connection);
}

TEST_CASE("a publisher and a follower through JetStream give a replica with the same hashes",
          "[nats]") {
  TempDir dir;
  NatsServer server(dir.path());
  auto source = open_at(dir / "source");
  append_events(*source, 1000);
  auto publisher = start_publisher(*source, options_for(server));
  publish_through(*publisher, 1000);
  StreamState state = stream_state(server, "orders");
  CHECK(state.messages == 1000);

  // The cursor is the durable consumer's, listed with the others.
  auto consumers = list_consumers(*source);
  KEEL_REQUIRE_OK(consumers);
  REQUIRE(consumers->size() == 1);
  CHECK((*consumers)[0].name == "replicate.orders");
  CHECK((*consumers)[0].cursor == 1000);

  auto replica = open_at(dir / "replica");
  auto follower = start_follower(*replica, options_for(server));
  follow_through(*follower, 1000);
  check_same(*source, *replica);

  // Live: appends after both started arrive too.
  append_events(*source, 250, 1000);
  publish_through(*publisher, 1250);
  follow_through(*follower, 1250);
  check_same(*source, *replica);
  CHECK(stream_state(server, "orders").messages == 1250);
}

TEST_CASE("a publisher that crashed between the ack and its cursor commit publishes nothing twice",
          "[nats]") {
  TempDir dir;
  NatsServer server(dir.path());
  auto source = open_at(dir / "source");
  append_events(*source, 300);
  {
    auto publisher = start_publisher(*source, options_for(server));
    publish_through(*publisher, 300);
  }
  // The cursor commit lost: as if the process died after JetStream acknowledged 300 messages.
  KEEL_REQUIRE_OK(DurableConsumer::reset(*source, "replicate.orders", 120, ""));
  append_events(*source, 50, 300);
  auto publisher = start_publisher(*source, options_for(server));
  publish_through(*publisher, 350);
  StreamState state = stream_state(server, "orders");
  CHECK(state.messages == 350);
  CHECK(state.last == 350);
  auto replica = open_at(dir / "replica");
  auto follower = start_follower(*replica, options_for(server));
  follow_through(*follower, 350);
  check_same(*source, *replica);
}

// Two stores, each 20 events, whose publishers both start on the empty stream "race"; the first
// publishes everything, then the second tries. Returns how many messages the stream holds.
uint64_t race_of_two_publishers(const NatsServer& server, bool unfenced) {
  TempDir dir;
  auto c = open_at(dir / "c");
  auto d = open_at(dir / "d");
  append_events(*c, 20);
  append_events(*d, 20);
  NatsOptions options = options_for(server, "race");
  options.unsafe_unfenced_for_test = unfenced;
  auto pc = start_publisher(*c, options);
  auto pd = start_publisher(*d, options);
  publish_through(*pc, 20);
  auto second = pd->publish(50ms);
  if (!unfenced) {
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().is(ErrorCode::ReplicaDiverged));
    CHECK(pd->cursor() == 0);
  }
  return stream_state(server, "race").messages;
}

TEST_CASE("a second store's publisher on the same stream is refused", "[nats]") {
  TempDir dir;
  NatsServer server(dir.path());
  auto a = open_at(dir / "a");
  auto b = open_at(dir / "b");
  append_events(*a, 20);
  append_events(*b, 30);
  auto publisher_a = start_publisher(*a, options_for(server));
  publish_through(*publisher_a, 20);
  auto publisher_b = NatsPublisher::start(*b, options_for(server));
  REQUIRE_FALSE(publisher_b.ok());
  CHECK(publisher_b.error().is(ErrorCode::ReplicaDiverged));
  CHECK(contains(publisher_b.error().message(), "another store publishes"));
  CHECK(stream_state(server, "orders").messages == 20);

  // Both started before either wrote: the loser's first publish past the start is fenced by
  // the stream's expected last sequence, and nothing of it lands.
  CHECK(race_of_two_publishers(server, /*unfenced=*/false) == 20);
}

TEST_CASE(
    "control: without the expected last sequence a second store's events land in the "
    "stream, and the fencing test catches it",
    "[nats]") {
  TempDir dir;
  NatsServer server(dir.path());
  CHECK(race_of_two_publishers(server, /*unfenced=*/true) == 40);
}

TEST_CASE("a follower stopped and restarted resumes after its last event", "[nats]") {
  TempDir dir;
  NatsServer server(dir.path());
  auto source = open_at(dir / "source");
  append_events(*source, 500);
  auto publisher = start_publisher(*source, options_for(server));
  publish_through(*publisher, 500);
  {
    auto replica = open_at(dir / "replica");
    auto follower = start_follower(*replica, options_for(server));
    auto progress = follower->follow(200ms, 237);  // mid-batch: a record held back
    KEEL_REQUIRE_OK(progress);
    CHECK(progress->replica_next <= 238);
  }
  append_events(*source, 100, 500);
  publish_through(*publisher, 600);
  auto replica = open_at(dir / "replica");
  auto follower = start_follower(*replica, options_for(server));
  follow_through(*follower, 600);
  check_same(*source, *replica);

  // A replica that something else wrote to is refused at start, not followed.
  KEEL_REQUIRE_OK(replica->close());
  TempDir other;
  auto stranger = open_at(other / "replica");
  append_events(*stranger, 5);
  auto refused = NatsFollower::start(*stranger, options_for(server));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().is(ErrorCode::ReplicaDiverged));
}

TEST_CASE("a stream whose limits removed what a stopped follower needs is CursorExpired",
          "[nats]") {
  TempDir dir;
  NatsServer server(dir.path());
  create_limited_stream(server, "orders", 100);
  auto source = open_at(dir / "source");
  append_events(*source, 40);
  auto publisher = start_publisher(*source, options_for(server));
  publish_through(*publisher, 40);
  auto replica = open_at(dir / "replica");
  {
    auto follower = start_follower(*replica, options_for(server));
    follow_through(*follower, 40);
  }
  append_events(*source, 200, 40);
  publish_through(*publisher, 240);
  CHECK(stream_state(server, "orders").messages == 100);
  auto expired = NatsFollower::start(*replica, options_for(server));
  REQUIRE_FALSE(expired.ok());
  CHECK(expired.error().is(ErrorCode::CursorExpired));
  CHECK(expired.error().field_u64("cursor") == 40);
  CHECK(expired.error().field_u64("first_retained") == 141);
  CHECK(replica->stats().sequence_visible == 40);  // nothing skipped, nothing written

  // A follower overtaken while it follows stops at the gap too.
  TempDir dir2;
  auto fresh = open_at(dir2 / "replica");
  auto empty = NatsFollower::start(*fresh, options_for(server));
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().is(ErrorCode::CursorExpired));
  CHECK(empty.error().field_u64("cursor") == 0);
}

TEST_CASE("a nats-server restart mid-stream loses and duplicates nothing", "[nats]") {
  TempDir dir;
  NatsServer server(dir.path());
  auto source = open_at(dir / "source");
  append_events(*source, 150);
  auto publisher = start_publisher(*source, options_for(server));
  auto replica = open_at(dir / "replica");
  publish_through(*publisher, 150);
  auto follower = start_follower(*replica, options_for(server));
  follow_through(*follower, 150);
  server.stop();
  append_events(*source, 150, 150);
  auto away = publisher->publish(50ms);
  REQUIRE_FALSE(away.ok());
  CHECK(away.error().is(ErrorCode::ServerUnavailable));
  server.start();
  publish_through(*publisher, 300);
  follow_through(*follower, 300);
  CHECK(stream_state(server, "orders").messages == 300);
  check_same(*source, *replica);
}

// Runs `keel ARGS` and SIGKILLs it after `kill_after` unless it exited first. Returns its exit
// code, or -1 when it was killed.
int run_cli_killed(const std::vector<std::string>& args, std::chrono::milliseconds kill_after) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    std::vector<char*> argv{const_cast<char*>(KEEL_CLI)};
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(KEEL_CLI, argv.data());
    ::_exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + kill_after;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(1ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_CASE(
    "publisher and follower processes killed at random points give every event once and "
    "in order",
    "[nats][crash]") {
  TempDir dir;
  NatsServer server(dir.path());
  constexpr int kEvents = 60000;
  const uint64_t seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 random(seed);
  {
    // Records of 1 to 64 events over 10,000 entities, written unsynced, then synced once.
    auto source = open_at(dir / "source");
    BatchOptions written;
    written.durability = Durability::Written;
    for (int i = 0; i < kEvents;) {
      std::vector<BatchItem> batch;
      for (int n = 1 + static_cast<int>(random() % 64); n > 0 && i < kEvents; --n, ++i) {
        batch.push_back({{"order:" + std::to_string(random() % 10000), ""},
                         kKind,
                         std::string(100, static_cast<char>('a' + i % 26)),
                         {}});
      }
      KEEL_REQUIRE_OK(source->append_batch(batch, written));
    }
    KEEL_REQUIRE_OK(source->sync());
    KEEL_REQUIRE_OK(source->close());
  }
  std::uniform_int_distribution<int> delay_ms(5, 400);
  const std::vector<std::string> publish{"replicate", "publish", dir / "source", "--stream",
                                         "orders",    "--nats",  server.url(),   "--once"};
  // Runs killed at random points, until 8 were killed mid-way; then one runs to the end.
  int kills = 0;
  int mid_way = 0;  // kills that left the stream partly written
  for (int run = 0; run < 40 && kills < 8; ++run) {
    int exit_code = run_cli_killed(publish, std::chrono::milliseconds(delay_ms(random)));
    if (exit_code == -1) ++kills;
    REQUIRE(exit_code <= 0);
    const uint64_t messages = stream_state(server, "orders").messages;
    if (exit_code == -1 && messages > 0 && messages < kEvents) ++mid_way;
  }
  CHECK(kills == 8);
  CHECK(mid_way >= 1);
  REQUIRE(run_cli_killed(publish, 60s) == 0);
  StreamState state = stream_state(server, "orders");
  CHECK(state.messages == kEvents);
  CHECK(state.last == kEvents);  // nothing published twice: one stream position per event

  const std::vector<std::string> follow{"replicate", "follow", dir / "replica", "--stream",
                                        "orders",    "--nats", server.url(),    "--once"};
  kills = 0;
  for (int run = 0; run < 40 && kills < 8; ++run) {
    int exit_code = run_cli_killed(follow, std::chrono::milliseconds(delay_ms(random)));
    if (exit_code == -1) ++kills;
    REQUIRE(exit_code <= 0);
  }
  CHECK(kills == 8);
  REQUIRE(run_cli_killed(follow, 60s) == 0);
  auto source = open_at(dir / "source");
  auto replica = open_at(dir / "replica");
  check_same(*source, *replica);
  auto consumers = list_consumers(*source);
  KEEL_REQUIRE_OK(consumers);
  REQUIRE(consumers->size() == 1);
  CHECK((*consumers)[0].cursor == kEvents);
}

}  // namespace
}  // namespace keel
