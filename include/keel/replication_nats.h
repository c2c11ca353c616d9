// keel: replication through NATS JetStream (target keel::keel_nats, built when libnats is found).
// docs/REPLICATION.md has the message format, the guarantees and how they are kept.
//
// NatsPublisher is a durable consumer of the source store ("replicate.<stream>", listed by
// `keel consumers`) that publishes every visible event, in sequence order, as one JetStream message
// with the event id as Nats-Msg-Id and the stream's expected last sequence (JetStream refuses a
// message when another publisher wrote to the stream since: a second publisher is fenced by the
// server). Its cursor is committed only after JetStream acknowledged the messages up to it. At
// start, and after any failure, it reads the stream's last message and goes on after it: a crash
// between the acknowledgement and the cursor commit publishes nothing twice.
//
// NatsFollower writes a stream's messages into a replica store (include/keel/replication.h),
// starting after the replica's last event, which it first finds in the stream and compares (a
// replica the stream does not hold is ReplicaDiverged). When the stream no longer holds the
// message after the replica's last event (a max_msgs or max_age limit removed it), it reports
// CursorExpired: it never skips events. Bootstrap such a replica from an export of the source
// (keel export / keel import) and follow again.
//
// Both are synchronous: call publish()/follow() in a loop. Network failures are ServerUnavailable
// (Retryable): call again after a pause (the client reconnects in the background; `keel replicate`
// backs off from 100 ms to 5 s).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "keel/replication.h"
#include "keel/result.h"
#include "keel/store.h"

namespace keel {

struct NatsOptions {
  std::string url = "nats://127.0.0.1:4222";
  std::string stream;   // the JetStream stream (A-Z a-z 0-9 _ -, at most 64 bytes)
  std::string subject;  // the subject its messages are published on; empty: "keel.<stream>"
  // How long one request (a publish acknowledgement, a stream lookup) may take.
  std::chrono::milliseconds request_timeout{5'000};
  // NEGATIVE CONTROL FOR TESTS ONLY: the publisher sends no expected last sequence, so the server
  // fences nothing. The second-publisher test of tests/nats/nats_replication_test.cc must catch it.
  bool unsafe_unfenced_for_test = false;
};

struct PublishProgress {
  uint64_t published = 0;        // messages published by this call
  uint64_t cursor = 0;           // the committed cursor after it (the last event in the stream)
  uint64_t stream_sequence = 0;  // the stream's last sequence after it
};

class NatsPublisher {
 public:
  // Connects, creates the stream when it does not exist (file storage, the subject), opens the
  // durable consumer and reconciles it with the stream's last message. Errors: InvalidArgument
  // (options), ServerUnavailable, ReplicaDiverged (the stream holds events this store does not
  // hold where it says, e.g. another store's), the errors of DurableConsumer::open.
  static Result<std::unique_ptr<NatsPublisher>> start(Store& source, const NatsOptions& options);
  ~NatsPublisher();
  NatsPublisher(const NatsPublisher&) = delete;
  NatsPublisher& operator=(const NatsPublisher&) = delete;

  // Publishes the visible events after the cursor (at most `max_events`), waiting up to `wait`
  // for the first; commits the cursor once they are acknowledged. Errors: ServerUnavailable (the
  // next call reconciles first), ReplicaDiverged (fenced: another publisher wrote to the stream),
  // CursorExpired, the errors of DurableConsumer::commit.
  Result<PublishProgress> publish(std::chrono::milliseconds wait, size_t max_events = 4096);
  uint64_t cursor() const;

 private:
  struct State;
  explicit NatsPublisher(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

struct FollowProgress {
  uint64_t applied = 0;          // events written by this call (durable when it returns)
  uint64_t replica_next = 0;     // the sequence the replica needs next
  uint64_t stream_sequence = 0;  // the stream position of the last message taken
};

class NatsFollower {
 public:
  // Connects, finds where the replica's last event is in the stream (comparing it), and
  // subscribes after it. Errors: ServerUnavailable, NotFound (no such stream), CursorExpired
  // {cursor: the replica's last sequence, first_retained: the stream's first}, ReplicaDiverged.
  static Result<std::unique_ptr<NatsFollower>> start(Store& replica, const NatsOptions& options);
  ~NatsFollower();
  NatsFollower(const NatsFollower&) = delete;
  NatsFollower& operator=(const NatsFollower&) = delete;

  // Takes the messages that arrive within `wait` (at most `max_events`), writes them and makes
  // them durable. Errors: as start(), MessageInvalid, and Replica::apply's.
  Result<FollowProgress> follow(std::chrono::milliseconds wait, size_t max_events = 4096);
  // The stream's last position now (0 when nothing was ever published): a follower whose
  // FollowProgress::stream_sequence reached it holds everything the stream held then, which an
  // idle follow() alone cannot tell (a slow server delivers nothing within the wait, too). Errors:
  // ServerUnavailable, NotFound (the stream was removed).
  Result<uint64_t> stream_last();

 private:
  struct State;
  explicit NatsFollower(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace keel
