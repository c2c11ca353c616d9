// keel replicate publish / follow: replication through NATS JetStream
// (include/keel/replication_nats.h) as a long-running command, with backoff while the server is
// away and a status line on stderr.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/commands.h"
#include "keel/keel.h"
#ifdef KEEL_HAVE_NATS
#include "keel/replication_nats.h"
#endif

namespace keel::cli {

#ifndef KEEL_HAVE_NATS

int run_replicate(const ParsedArgs&) {
  std::fprintf(stderr,
               "keel replicate: this keel was built without the NATS C client; install Debian's "
               "libnats-dev (scripts/install-deps does) and build again\n");
  return 1;
}

#else

namespace {

volatile std::sig_atomic_t stop_requested = 0;
void request_stop(int) { stop_requested = 1; }

using Clock = std::chrono::steady_clock;

// Sleeps between failed calls while the server is away: 100 ms, doubling to 5 s.
class Backoff {
 public:
  void failed(const std::string& command, const StoreError& error) {
    if (delay_.count() == 0) {
      std::fprintf(stderr, "keel replicate %s: %s; retrying\n", command.c_str(),
                   error.to_string().c_str());
      delay_ = std::chrono::milliseconds(100);
    } else {
      delay_ = std::min(delay_ * 2, std::chrono::milliseconds(5000));
    }
    for (auto until = Clock::now() + delay_; Clock::now() < until && !stop_requested;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  void succeeded(const std::string& command) {
    if (delay_.count() != 0)
      std::fprintf(stderr, "keel replicate %s: connected again\n", command.c_str());
    delay_ = std::chrono::milliseconds(0);
  }

 private:
  std::chrono::milliseconds delay_{0};
};

// Starts a publisher or follower, retrying while the server is unavailable.
template <class Start>
auto start_with_backoff(const std::string& command, Backoff& backoff, Start start)
    -> decltype(start()) {
  for (;;) {
    auto started = start();
    if (started.ok() || !started.error().is(ErrorCode::ServerUnavailable) || stop_requested) {
      return started;
    }
    backoff.failed(command, started.error());
  }
}

int publish(const ParsedArgs& args, const NatsOptions& options, bool once) {
  const std::string cmd = "replicate publish";
  int code = 0;
  auto store = open_store(cmd, args.positional[1], true, false, code);
  if (!store) return code;
  Backoff backoff;
  auto publisher =
      start_with_backoff(cmd, backoff, [&] { return NatsPublisher::start(*store, options); });
  if (!publisher.ok()) return fail(cmd, publisher.error());
  std::fprintf(stderr, "keel replicate publish: %s to stream %s at %s, from cursor %llu\n",
               args.positional[1].c_str(), options.stream.c_str(), options.url.c_str(),
               static_cast<unsigned long long>((*publisher)->cursor()));
  uint64_t published = 0;
  auto last_report = Clock::now();
  while (!stop_requested) {
    auto progress = (*publisher)->publish(std::chrono::milliseconds(200));
    if (!progress.ok()) {
      if (!progress.error().is(ErrorCode::ServerUnavailable)) return fail(cmd, progress.error());
      backoff.failed("publish", progress.error());
      continue;
    }
    backoff.succeeded("publish");
    published += progress->published;
    const bool caught_up =
        progress->published == 0 && progress->cursor >= store->stats().sequence_visible;
    if (Clock::now() - last_report > std::chrono::seconds(5) || (once && caught_up)) {
      std::fprintf(stderr,
                   "keel replicate publish: published %llu, cursor %llu, stream position %llu\n",
                   static_cast<unsigned long long>(published),
                   static_cast<unsigned long long>(progress->cursor),
                   static_cast<unsigned long long>(progress->stream_sequence));
      last_report = Clock::now();
    }
    if (once && caught_up) break;
  }
  publisher->reset();
  Status closed = store->close();
  if (!closed.ok()) return fail(cmd, closed.error());
  return 0;
}

int follow(const ParsedArgs& args, const NatsOptions& options, bool once) {
  const std::string cmd = "replicate follow";
  const std::string dir = args.positional[1];
  std::error_code ec;
  const bool exists = std::filesystem::exists(dir, ec) && !std::filesystem::is_empty(dir, ec);
  if (!exists && args.has("bootstrap")) {
    auto imported = import_store(*args.get("bootstrap"), dir);
    if (!imported.ok()) return fail(cmd, imported.error());
    std::fprintf(stderr, "keel replicate follow: bootstrapped %s from %s (events 1..%llu)\n",
                 dir.c_str(), args.get("bootstrap")->c_str(),
                 static_cast<unsigned long long>(imported->sequence));
  }
  int code = 0;
  auto store = open_store(cmd, dir, true, /*create=*/true, code);
  if (!store) return code;
  Backoff backoff;
  auto follower =
      start_with_backoff(cmd, backoff, [&] { return NatsFollower::start(*store, options); });
  if (!follower.ok()) {
    if (follower.error().is(ErrorCode::CursorExpired)) {
      std::fprintf(stderr,
                   "keel replicate follow: the stream no longer holds the events after the "
                   "replica's last one. Export the source (keel export SOURCE ARTIFACT), then "
                   "follow into a new directory with --bootstrap ARTIFACT\n");
    }
    return fail(cmd, follower.error());
  }
  std::fprintf(stderr, "keel replicate follow: stream %s at %s into %s, from sequence %llu\n",
               options.stream.c_str(), options.url.c_str(), dir.c_str(),
               static_cast<unsigned long long>(store->stats().sequence_next));
  uint64_t applied = 0;
  auto last_report = Clock::now();
  while (!stop_requested) {
    auto progress = (*follower)->follow(std::chrono::milliseconds(once ? 500 : 200));
    if (!progress.ok()) {
      if (!progress.error().is(ErrorCode::ServerUnavailable)) return fail(cmd, progress.error());
      backoff.failed("follow", progress.error());
      continue;
    }
    backoff.succeeded("follow");
    applied += progress->applied;
    const bool idle = progress->applied == 0;
    if (Clock::now() - last_report > std::chrono::seconds(5) || (once && idle)) {
      std::fprintf(stderr,
                   "keel replicate follow: applied %llu, replica at sequence %llu, stream "
                   "position %llu\n",
                   static_cast<unsigned long long>(applied),
                   static_cast<unsigned long long>(progress->replica_next - 1),
                   static_cast<unsigned long long>(progress->stream_sequence));
      last_report = Clock::now();
    }
    if (once && idle) break;
  }
  follower->reset();
  Status closed = store->close();
  if (!closed.ok()) return fail(cmd, closed.error());
  return 0;
}

}  // namespace

int run_replicate(const ParsedArgs& args) {
  const std::string action = args.positional[0];
  if (action != "publish" && action != "follow") {
    return usage_error("replicate", "ACTION is publish or follow, got '" + action + "'");
  }
  if (!args.has("stream")) return usage_error("replicate", "--stream NAME is required");
  if (args.has("bootstrap") && action != "follow") {
    return usage_error("replicate", "--bootstrap is for follow");
  }
  NatsOptions options;
  options.url = args.get("nats").value_or(options.url);
  options.stream = *args.get("stream");
  options.subject = args.get("subject").value_or("");
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  const bool once = args.has("once");
  return action == "publish" ? publish(args, options, once) : follow(args, options, once);
}

#endif

}  // namespace keel::cli
