// keel-replication-bench: replication through NATS JetStream on loopback (docs/REPLICATION.md),
// beside the raw JetStream publish rate measured by the same program in the same run.
//
//   raw JetStream      N messages of the size keel sends (body and headers alike), published
//                      asynchronously (js_PublishMsgAsync, the same pending window), to a stream
//                      of its own: what the server and client do without keel
//   keel publish       NatsPublisher publishing a source store of N events (10,000 entities,
//                      100-byte random payloads, written in batches of 100) from its start
//   keel follow        NatsFollower writing those N events into an empty replica (durable at
//                      the end of each follow() call)
//   end-to-end lag     one thread appends single events at Durability::Durable (the default:
//                      each returns once durable and visible) for --lag-seconds; a publisher
//                      and a follower run beside it on their own threads; per event, the time
//                      from its append's return to its visibility in the replica: p50 and p99
//
// Starts its own nats-server (-js, a free loopback port, a temporary store) unless --nats URL.
// Each measurement runs --repetitions times on fresh stores and streams; medians are printed.
#include <arpa/inet.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "keel/keel.h"
#include "keel/replication_nats.h"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "keel-replication-bench: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T must(keel::Result<T> result, const char* what) {
  if (!result.ok()) die(std::string(what) + ": " + result.error().to_string());
  return std::move(result).value();
}
void must(const keel::Status& status, const char* what) {
  if (!status.ok()) die(std::string(what) + ": " + status.error().to_string());
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct Server {
  pid_t pid = -1;
  std::string url;
  void start(const std::string& directory) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n) != 0) {
      die("no free port");
    }
    ::close(fd);
    const std::string port = std::to_string(ntohs(a.sin_port));
    url = "nats://127.0.0.1:" + port;
    pid = ::fork();
    if (pid == 0) {
      ::execlp("nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", port.c_str(), "-sd",
               directory.c_str(), "-l", (directory + "/log").c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 500; ++i) {
      natsConnection* c = nullptr;
      if (natsConnection_ConnectTo(&c, url.c_str()) == NATS_OK) {
        natsConnection_Destroy(c);
        return;
      }
      std::this_thread::sleep_for(20ms);
    }
    die("nats-server did not start (is it installed? scripts/install-deps)");
  }
  ~Server() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

struct Options {
  uint64_t events = 200'000;
  uint64_t entities = 10'000;
  size_t payload = 100;
  int repetitions = 3;
  double lag_seconds = 5;
  std::string nats;
  std::string dir;
};

std::unique_ptr<keel::Store> open_store(const std::string& dir) {
  keel::StoreOptions options;
  options.create_if_missing = true;
  return must(keel::Store::open(dir, options), "open store");
}

void fill(keel::Store& store, const Options& o, std::mt19937_64& random) {
  keel::BatchOptions written;
  written.durability = keel::Durability::Written;
  std::string payload(o.payload, 0);
  for (uint64_t i = 0; i < o.events;) {
    std::vector<keel::BatchItem> batch;
    for (int j = 0; j < 100 && i < o.events; ++j, ++i) {
      for (char& c : payload) c = static_cast<char>(random());
      batch.push_back({{"order:" + std::to_string(random() % o.entities), ""},
                       keel::EventKind::make(1, 1),
                       payload,
                       {}});
    }
    must(store.append_batch(batch, written), "append");
  }
  must(store.sync(), "sync");
}

// Publishes `count` messages like keel's (size, headers) asynchronously; returns messages/s.
double raw_publish(const std::string& url, const std::string& stream, uint64_t count,
                   size_t body_bytes) {
  natsConnection* nc = nullptr;
  if (natsConnection_ConnectTo(&nc, url.c_str()) != NATS_OK) die("connect");
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 8192;
  jsCtx* js = nullptr;
  if (natsConnection_JetStream(&js, nc, &jo) != NATS_OK) die("jetstream");
  jsStreamConfig sc;
  jsStreamConfig_Init(&sc);
  sc.Name = stream.c_str();
  const std::string subject = "raw." + stream;
  const char* subjects[] = {subject.c_str()};
  sc.Subjects = subjects;
  sc.SubjectsLen = 1;
  if (js_AddStream(nullptr, js, &sc, nullptr, nullptr) != NATS_OK) die("add stream");
  std::string body(body_bytes, 'x');
  const auto start = Clock::now();
  for (uint64_t i = 1; i <= count; ++i) {
    natsMsg* m = nullptr;
    natsMsg_Create(&m, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
    const std::string seq = std::to_string(i);
    char id[33];
    std::snprintf(id, sizeof id, "%032llx", static_cast<unsigned long long>(i));
    natsMsgHeader_Set(m, "Keel-Sequence", seq.c_str());
    natsMsgHeader_Set(m, "Keel-Record", (seq + "/1").c_str());
    natsMsgHeader_Set(m, "Nats-Msg-Id", id);
    if (js_PublishMsgAsync(js, &m, nullptr) != NATS_OK) die("raw publish");
    if (m != nullptr) natsMsg_Destroy(m);
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 60'000;
  if (js_PublishAsyncComplete(js, &po) != NATS_OK) die("raw publish acks");
  const double rate = static_cast<double>(count) / seconds_since(start);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  return rate;
}

struct Lag {
  double p50_ms = 0, p99_ms = 0;
  uint64_t events = 0;
};

Lag end_to_end(const Options& o, const std::string& url, const std::string& dir, int run,
               std::mt19937_64& random) {
  auto source = open_store(dir + "/lag-source-" + std::to_string(run));
  auto replica = open_store(dir + "/lag-replica-" + std::to_string(run));
  keel::NatsOptions options;
  options.url = url;
  options.stream = "lag" + std::to_string(run);
  // The stream exists before the follower starts: the publisher creates it.
  auto publisher = must(keel::NatsPublisher::start(*source, options), "publisher");
  auto follower = must(keel::NatsFollower::start(*replica, options), "follower");
  std::mutex mutex;
  std::vector<Clock::time_point> appended;  // by sequence - 1
  std::vector<double> lags;
  std::atomic<bool> stop{false};
  std::atomic<bool> writing{true};
  std::thread publish([&] {
    while (!stop) (void)must(publisher->publish(10ms), "publish");
  });
  std::thread follow([&] {
    uint64_t seen = 0;
    while (!stop) {
      auto p = must(follower->follow(10ms), "follow");
      const auto now = Clock::now();
      std::lock_guard lock(mutex);
      for (; seen + 1 < p.replica_next && seen < appended.size(); ++seen) {
        lags.push_back(std::chrono::duration<double, std::milli>(now - appended[seen]).count());
      }
    }
  });
  std::string payload(o.payload, 0);
  const auto start = Clock::now();
  while (seconds_since(start) < o.lag_seconds) {
    for (char& c : payload) c = static_cast<char>(random());
    auto r = must(source->append({"order:" + std::to_string(random() % o.entities), ""},
                                 keel::EventKind::make(1, 1), payload),
                  "append");
    std::lock_guard lock(mutex);
    if (appended.size() + 1 != r.sequence) die("sequences not dense");
    appended.push_back(Clock::now());
  }
  writing = false;
  const uint64_t total = appended.size();
  const auto deadline = Clock::now() + 30s;
  for (;;) {
    {
      std::lock_guard lock(mutex);
      if (lags.size() >= total) break;
    }
    if (Clock::now() > deadline) die("the replica did not catch up within 30 s");
    std::this_thread::sleep_for(5ms);
  }
  stop = true;
  publish.join();
  follow.join();
  std::sort(lags.begin(), lags.end());
  Lag lag;
  lag.events = total;
  lag.p50_ms = lags[lags.size() / 2];
  lag.p99_ms = lags[std::min(lags.size() - 1, lags.size() * 99 / 100)];
  return lag;
}

void usage() {
  std::fprintf(stderr,
               "usage: keel-replication-bench [--events N] [--entities N] [--payload BYTES]\n"
               "         [--repetitions N] [--lag-seconds S] [--nats URL] [--dir DIR]\n"
               "Publishes and follows N events (default 200000 over 10000 entities, 100-byte\n"
               "payloads) through NATS JetStream on loopback, beside the raw JetStream publish\n"
               "rate of messages of the same size, and measures append-to-replica lag.\n"
               "Without --nats it starts nats-server itself. Prints medians of the repetitions.\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--events")
      o.events = std::stoull(value());
    else if (a == "--entities")
      o.entities = std::stoull(value());
    else if (a == "--payload")
      o.payload = std::stoull(value());
    else if (a == "--repetitions")
      o.repetitions = std::stoi(value());
    else if (a == "--lag-seconds")
      o.lag_seconds = std::stod(value());
    else if (a == "--nats")
      o.nats = value();
    else if (a == "--dir")
      o.dir = value();
    else {
      usage();
      return a == "--help" ? 0 : 2;
    }
  }
  if (o.events == 0 || o.entities == 0 || o.repetitions < 1) {
    usage();
    return 2;
  }
  const bool own_dir = o.dir.empty();
  if (own_dir)
    o.dir =
        std::filesystem::temp_directory_path() / ("keel-repl-bench-" + std::to_string(::getpid()));
  std::filesystem::create_directories(o.dir);
  Server server;
  std::string url = o.nats;
  if (url.empty()) {
    std::filesystem::create_directories(o.dir + "/nats");
    server.start(o.dir + "/nats");
    url = server.url;
  }
  std::mt19937_64 random(42);
  std::vector<double> raw, publish, follow, p50, p99;
  size_t body_bytes = 0;
  for (int run = 0; run < o.repetitions; ++run) {
    const std::string tag = std::to_string(run);
    auto source = open_store(o.dir + "/source-" + tag);
    fill(*source, o, random);
    std::vector<keel::ReplicationMessage> first;
    must(keel::read_replication_messages(*source, 0, 1, first), "read");
    body_bytes = first.at(0).body.size();
    raw.push_back(raw_publish(url, "raw" + tag, o.events, body_bytes));

    keel::NatsOptions options;
    options.url = url;
    options.stream = "keel" + tag;
    auto start = Clock::now();
    auto publisher = must(keel::NatsPublisher::start(*source, options), "publisher");
    while (publisher->cursor() < o.events) (void)must(publisher->publish(100ms), "publish");
    publish.push_back(static_cast<double>(o.events) / seconds_since(start));

    auto replica = open_store(o.dir + "/replica-" + tag);
    start = Clock::now();
    auto follower = must(keel::NatsFollower::start(*replica, options), "follower");
    for (uint64_t next = 1; next <= o.events;)
      next = must(follower->follow(100ms), "follow").replica_next;
    follow.push_back(static_cast<double>(o.events) / seconds_since(start));

    Lag lag = end_to_end(o, url, o.dir, run, random);
    p50.push_back(lag.p50_ms);
    p99.push_back(lag.p99_ms);
    std::fprintf(stderr,
                 "run %d: raw %.0f/s, keel publish %.0f/s, follow %.0f/s, lag p50 %.2f ms p99 "
                 "%.2f ms over %llu events\n",
                 run + 1, raw.back(), publish.back(), follow.back(), lag.p50_ms, lag.p99_ms,
                 static_cast<unsigned long long>(lag.events));
  }
  std::printf(
      "keel-replication-bench: %llu events, %llu entities, %zu-byte payloads (%zu-byte "
      "bodies), medians of %d\n",
      static_cast<unsigned long long>(o.events), static_cast<unsigned long long>(o.entities),
      o.payload, body_bytes, o.repetitions);
  std::printf("| measurement | median |\n|---|--:|\n");
  std::printf("| raw JetStream async publish (messages/s) | %.0f |\n", median(raw));
  std::printf("| keel publish (events/s) | %.0f |\n", median(publish));
  std::printf("| keel publish / raw JetStream | %.2f |\n", median(publish) / median(raw));
  std::printf("| keel follow into a replica (events/s) | %.0f |\n", median(follow));
  std::printf("| append-to-replica lag p50 (ms) | %.2f |\n", median(p50));
  std::printf("| append-to-replica lag p99 (ms) | %.2f |\n", median(p99));
  if (own_dir) std::filesystem::remove_all(o.dir);
  return 0;
}
