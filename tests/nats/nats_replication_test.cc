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

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "../test_support.h"
#include "keel/keel.h"
#include "keel/replication_nats.h"
#include "log/synced_point.h"
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

// The first event where the two differ, as text ("" when they are the same): Catch prints events
// as {?}, so a failure names what differs.
std::string first_difference(const std::vector<Event>& replica, const std::vector<Event>& source) {
  auto describe = [](const Event& e) {
    return "sequence " + std::to_string(e.sequence) + " id " + e.event_id.to_hex() + " entity " +
           e.coordinate.entity + " clock " + std::to_string(e.entity_clock) + " payload " +
           std::to_string(e.payload.size()) + " bytes";
  };
  for (size_t i = 0; i < std::min(replica.size(), source.size()); ++i) {
    if (!(replica[i] == source[i])) {
      return "event " + std::to_string(i) + ": replica " + describe(replica[i]) + ", source " +
             describe(source[i]);
    }
  }
  if (replica.size() != source.size()) {
    return "replica " + std::to_string(replica.size()) + " events, source " +
           std::to_string(source.size());
  }
  return "";
}

void check_same(Store& source, Store& replica) {
  CHECK(first_difference(events_of(replica), events_of(source)) == "");
  auto verified = replica.verify();
  KEEL_REQUIRE_OK(verified);
  CHECK(verified->ok);
  auto original = source.verify();
  KEEL_REQUIRE_OK(original);
  CHECK(verified->events_checked == original->events_checked);
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
    // What `keel replicate follow --once` waits for: the stream's last position, not yet taken.
    auto last = follower->stream_last();
    KEEL_REQUIRE_OK(last);
    CHECK(*last == stream_state(server, "orders").last);
    CHECK(progress->stream_sequence < *last);
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

TEST_CASE("keel replicate follow --bootstrap resyncs a replica the stream overtook from an export",
          "[nats]") {
  TempDir dir;
  NatsServer server(dir.path());
  create_limited_stream(server, "orders", 100);
  auto source = open_at(dir / "source");
  append_events(*source, 40);
  auto publisher = start_publisher(*source, options_for(server));
  publish_through(*publisher, 40);
  KEEL_REQUIRE_OK(export_store(*source, dir / "old-export"));
  const std::string follow =
      "replicate follow " + dir / "replica" + " --stream orders --nats " + server.url() + " --once";
  auto first = test::keel_cli(dir, follow);
  REQUIRE(first.exit_code == 0);
  append_events(*source, 200, 40);
  publish_through(*publisher, 240);  // the stream now holds 141..240 only

  auto expired = test::keel_cli(dir, follow);
  CHECK(expired.exit_code == 1);
  CHECK(contains(expired.err, "CursorExpired"));
  CHECK(contains(expired.err, "--bootstrap"));
  // An export older than the stream's first message cannot resync it.
  auto too_old = test::keel_cli(dir, follow + " --bootstrap " + dir / "old-export");
  CHECK(too_old.exit_code == 1);
  CHECK(contains(too_old.err, "export the source again"));

  KEEL_REQUIRE_OK(export_store(*source, dir / "export"));
  auto resynced = test::keel_cli(dir, follow + " --bootstrap " + dir / "export");
  INFO(resynced.err);
  REQUIRE(resynced.exit_code == 0);
  CHECK(contains(resynced.err, "resynced"));
  bool kept = false;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    kept = kept || entry.path().filename().string().rfind("replica.expired-", 0) == 0;
  }
  CHECK(kept);
  append_events(*source, 30, 240);
  publish_through(*publisher, 270);
  REQUIRE(test::keel_cli(dir, follow).exit_code == 0);
  auto replica = open_at(dir / "replica");
  check_same(*source, *replica);
}

// Runs `keel ARGS` and SIGKILLs it once `kill_now()` says so (polled every millisecond), or after
// 60 s. Returns its exit code, or -1 when it was killed.
int run_cli_killed(const std::vector<std::string>& args, const std::function<bool()>& kill_now) {
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
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (kill_now() || std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(1ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The stream's message count, through one connection kept for polling.
class StreamCounter {
 public:
  StreamCounter(const NatsServer& server, std::string stream) : stream_(std::move(stream)) {
    REQUIRE(natsConnection_ConnectTo(&connection_, server.url().c_str()) == NATS_OK);
    REQUIRE(natsConnection_JetStream(&js_, connection_, nullptr) == NATS_OK);
  }
  ~StreamCounter() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(connection_);
  }
  StreamCounter(const StreamCounter&) = delete;
  StreamCounter& operator=(const StreamCounter&) = delete;
  uint64_t messages() {
    jsStreamInfo* info = nullptr;
    if (js_GetStreamInfo(&info, js_, stream_.c_str(), nullptr, nullptr) != NATS_OK) return 0;
    uint64_t n = info->State.Msgs;
    jsStreamInfo_Destroy(info);
    return n;
  }

 private:
  std::string stream_;
  natsConnection* connection_ = nullptr;
  jsCtx* js_ = nullptr;
};

TEST_CASE(
    "publisher and follower processes killed at random points give every event once and "
    "in order",
    "[nats][crash]") {
  TempDir dir;
  NatsServer server(dir.path());
#ifdef __SANITIZE_ADDRESS__
  constexpr int kRecords = 500;  // the ASan build: a quarter (CI's budget); the same checks
#else
  constexpr int kRecords = 2000;
#endif
  const uint64_t seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 random(seed);
  uint64_t kEvents = 0;  // the messages the stream must hold: events and hidden runs
  uint64_t last_sequence = 0;
  {
    // Records of 1 to 64 events over 10,000 entities, written unsynced, then synced once; every
    // 100th goes through a fence, committed or cancelled in turn.
    auto source = open_at(dir / "source");
    BatchOptions written;
    written.durability = Durability::Written;
    for (int r = 0; r < kRecords; ++r) {
      std::vector<BatchItem> batch;
      for (int n = 1 + static_cast<int>(random() % 64); n > 0; --n) {
        batch.push_back({{"order:" + std::to_string(random() % 10000), ""},
                         kKind,
                         std::string(100, static_cast<char>('a' + n % 26)),
                         {}});
      }
      if (r % 100 != 50) {
        KEEL_REQUIRE_OK(source->append_batch(batch, written));
        continue;
      }
      auto fence = source->begin_fence();
      KEEL_REQUIRE_OK(fence);
      KEEL_REQUIRE_OK((*fence)->append_batch(batch, written));
      KEEL_REQUIRE_OK((*fence)->append(batch[0].coordinate, kKind, "single", {}));
      KEEL_REQUIRE_OK(r % 200 == 50 ? (*fence)->commit() : (*fence)->cancel());
    }
    KEEL_REQUIRE_OK(source->sync());
    std::vector<ReplicationMessage> messages;
    while (true) {
      auto n = read_replication_messages(*source, last_sequence, 4096, messages);
      KEEL_REQUIRE_OK(n);
      if (*n == 0) break;
      const ReplicationMessage& m = messages.back();
      last_sequence = m.sequence + (m.hidden ? m.record_events - 1 : 0);
    }
    kEvents = messages.size();
    REQUIRE(kEvents > 20 * kRecords);
    KEEL_REQUIRE_OK(source->close());
  }
  const std::vector<std::string> publish{"replicate", "publish", dir / "source", "--stream",
                                         "orders",    "--nats",  server.url(),   "--once"};
  // 8 runs, each killed once the stream holds a random number of messages more than when it
  // started (progress decides, not time, however fast the build), then one run to the end.
  StreamCounter counter(server, "orders");
  int mid_way = 0;  // kills that left the stream partly written
  for (int run = 0; run < 8; ++run) {
    const uint64_t before = counter.messages();
    if (before >= kEvents) break;
    const uint64_t at = before + 1 + random() % ((kEvents - before) / 4 + 1);
    const int exit_code = run_cli_killed(publish, [&] { return counter.messages() >= at; });
    REQUIRE(exit_code <= 0);
    if (exit_code == -1 && counter.messages() < kEvents) ++mid_way;
  }
  CHECK(mid_way >= 3);
  REQUIRE(run_cli_killed(publish, [] { return false; }) == 0);
  StreamState state = stream_state(server, "orders");
  CHECK(state.messages == kEvents);
  CHECK(state.last == kEvents);  // nothing published twice: one stream position per message

  // The follower: killed once its replica's synced point (SYNCED, rewritten after every
  // fdatasync: segments/FORMAT.md 8.10) has moved a random number of bytes past where the run
  // began, at most a quarter of what is left, so that a poll delayed on a loaded machine still
  // kills before the end (counting changes of the file missed some there, and a run could finish).
  const std::vector<std::string> follow{"replicate", "follow", dir / "replica", "--stream",
                                        "orders",    "--nats", server.url(),    "--once"};
  const std::string synced = dir / "replica" + "/SYNCED";
  const uint64_t segment_size = StoreOptions{}.segment_size;
  auto synced_position = [&]() -> uint64_t {
    std::ifstream in(synced, std::ios::binary);
    const std::string bytes(std::istreambuf_iterator<char>(in), {});
    auto point = log::decode_synced_point(std::as_bytes(std::span(bytes.data(), bytes.size())));
    return point ? (point->segment_id - 1) * segment_size + point->offset : 0;
  };
  const uint64_t replica_bytes = kEvents * 150;  // below what the replica's log will hold
  int follower_kills = 0;
  for (int run = 0; run < 8; ++run) {
    const uint64_t begun = synced_position();
    const uint64_t left = replica_bytes > begun ? replica_bytes - begun : 1;
    const uint64_t at = begun + 1 + random() % (left / 4 + 1);
    const int exit_code = run_cli_killed(follow, [&] { return synced_position() >= at; });
    REQUIRE(exit_code <= 0);
    if (exit_code == 0) break;
    ++follower_kills;
  }
  CHECK(follower_kills >= 1);
  REQUIRE(run_cli_killed(follow, [] { return false; }) == 0);
  auto source = open_at(dir / "source");
  auto replica = open_at(dir / "replica");
  check_same(*source, *replica);
  auto consumers = list_consumers(*source);
  KEEL_REQUIRE_OK(consumers);
  REQUIRE(consumers->size() == 1);
  CHECK((*consumers)[0].cursor == last_sequence);
  CHECK(replica->stats().hidden_events == source->stats().hidden_events);
  CHECK(source->stats().hidden_events > 0);
}

}  // namespace
}  // namespace keel
