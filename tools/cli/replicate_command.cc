// keel replicate publish / follow: replication through NATS JetStream
// (include/keel/replication_nats.h) as a long-running command, with backoff while the server is
// away and a status line on stderr.
#include <unistd.h>

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

// The resync after CursorExpired: imports `artifact` (an export of the source) beside the replica
// at `dir`, checks that the stream holds what follows it (its last sequence + 1 reaches
// `first_in_stream`), then puts it in the replica's place; the old replica is kept beside it as
// DIR.expired-<unix seconds>. The replica must be closed.
Status resync(const std::string& dir, const std::string& artifact, uint64_t first_in_stream) {
  const std::string staged = dir + ".resync-" + std::to_string(::getpid());
  KEEL_ASSIGN_OR_RETURN(ImportReport imported, import_store(artifact, staged));
  std::error_code ec;
  if (imported.sequence + 1 < first_in_stream) {
    std::filesystem::remove_all(staged, ec);
    return StoreError(ErrorCode::CursorExpired)
        .with("cursor", imported.sequence)
        .with("first_retained", first_in_stream)
        .caused_by(StoreError(ErrorCode::InvalidArgument)
                       .with("argument", "--bootstrap")
                       .with("reason", "the export ends at sequence " +
                                           std::to_string(imported.sequence) +
                                           ", before the stream's first message: export the "
                                           "source again"));
  }
  const std::string kept = dir + ".expired-" +
                           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
  std::filesystem::rename(dir, kept, ec);
  if (!ec) std::filesystem::rename(staged, dir, ec);
  if (ec) {
    return StoreError(ErrorCode::Io)
        .with("operation", "rename")
        .with("path", dir)
        .with("detail", ec.message())
        .with("errno", static_cast<uint64_t>(ec.value()));
  }
  std::fprintf(stderr,
               "keel replicate follow: resynced %s from %s (events up to %llu); the old replica "
               "is kept as %s\n",
               dir.c_str(), artifact.c_str(), static_cast<unsigned long long>(imported.sequence),
               kept.c_str());
  return ok_status();
}

int follow(const ParsedArgs& args, const NatsOptions& options, bool once) {
  const std::string cmd = "replicate follow";
  const std::string dir = args.positional[1];
  const std::optional<std::string> bootstrap = args.get("bootstrap");
  std::error_code ec;
  const bool exists = std::filesystem::exists(dir, ec) && !std::filesystem::is_empty(dir, ec);
  if (!exists && bootstrap) {
    auto imported = import_store(*bootstrap, dir);
    if (!imported.ok()) return fail(cmd, imported.error());
    std::fprintf(stderr, "keel replicate follow: bootstrapped %s from %s (events 1..%llu)\n",
                 dir.c_str(), bootstrap->c_str(),
                 static_cast<unsigned long long>(imported->sequence));
  }
  std::unique_ptr<Store> store;
  std::unique_ptr<NatsFollower> follower;
  Backoff backoff;
  bool resynced = false;
  // Opens the replica and starts following; on CursorExpired, resyncs once from --bootstrap.
  auto begin = [&]() -> int {
    for (;;) {
      int code = 0;
      store = open_store(cmd, dir, true, /*create=*/true, code);
      if (!store) return code;
      auto started =
          start_with_backoff(cmd, backoff, [&] { return NatsFollower::start(*store, options); });
      if (started.ok()) {
        follower = std::move(started).value();
        return 0;
      }
      const StoreError& error = started.error();
      if (!error.is(ErrorCode::CursorExpired) || !bootstrap || resynced) {
        if (error.is(ErrorCode::CursorExpired)) {
          std::fprintf(stderr,
                       "keel replicate follow: the stream no longer holds the events after the "
                       "replica's last one. Export the source (keel export SOURCE ARTIFACT) and "
                       "follow with --bootstrap ARTIFACT\n");
        }
        return fail(cmd, error);
      }
      const uint64_t first = error.field_u64("first_retained").value_or(0);
      Status closed = store->close();
      store.reset();
      if (!closed.ok()) return fail(cmd, closed.error());
      if (Status done = resync(dir, *bootstrap, first); !done.ok()) return fail(cmd, done.error());
      resynced = true;
    }
  };
  if (int code = begin(); code != 0) return code;
  std::fprintf(stderr, "keel replicate follow: stream %s at %s into %s, from sequence %llu\n",
               options.stream.c_str(), options.url.c_str(), dir.c_str(),
               static_cast<unsigned long long>(store->stats().sequence_next));
  uint64_t applied = 0;
  auto last_report = Clock::now();
  // --once: the stream's last position when following began; done once it was taken and a follow
  // found nothing more (an idle follow alone may only mean a slow server).
  constexpr uint64_t kNotAsked = UINT64_MAX;
  uint64_t once_target = kNotAsked;
  while (!stop_requested) {
    Result<FollowProgress> progress = FollowProgress{};
    if (once && once_target == kNotAsked) {
      Result<uint64_t> last = follower->stream_last();
      if (last.ok()) {
        once_target = *last;
      } else {
        progress = std::move(last).error();
      }
    }
    if (progress.ok()) progress = follower->follow(std::chrono::milliseconds(once ? 500 : 200));
    if (!progress.ok()) {
      if (progress.error().is(ErrorCode::CursorExpired) && bootstrap && !resynced) {
        follower.reset();
        Status closed = store->close();
        if (!closed.ok()) return fail(cmd, closed.error());
        const uint64_t first = progress.error().field_u64("first_retained").value_or(0);
        if (Status done = resync(dir, *bootstrap, first); !done.ok()) {
          return fail(cmd, done.error());
        }
        resynced = true;
        if (int code = begin(); code != 0) return code;
        once_target = kNotAsked;
        continue;
      }
      if (!progress.error().is(ErrorCode::ServerUnavailable)) return fail(cmd, progress.error());
      backoff.failed("follow", progress.error());
      continue;
    }
    backoff.succeeded("follow");
    applied += progress->applied;
    const bool done = once && progress->applied == 0 &&
                      progress->stream_sequence >= once_target;
    if (Clock::now() - last_report > std::chrono::seconds(5) || done) {
      std::fprintf(stderr,
                   "keel replicate follow: applied %llu, replica at sequence %llu, stream "
                   "position %llu\n",
                   static_cast<unsigned long long>(applied),
                   static_cast<unsigned long long>(progress->replica_next - 1),
                   static_cast<unsigned long long>(progress->stream_sequence));
      last_report = Clock::now();
    }
    if (done) break;
  }
  follower.reset();
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
