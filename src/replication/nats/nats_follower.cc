// NatsFollower (include/keel/replication_nats.h): finds the replica's last event in the stream,
// compares it, and writes what follows; a stream that lost the next message is CursorExpired.
#include "keel/replication_nats.h"
#include "replication/nats/nats_client.h"

namespace keel {

struct NatsFollower::State {
  State(Store& s, std::unique_ptr<nats::Client> c) : store(s), client(std::move(c)), replica(s) {}
  Store& store;
  std::unique_ptr<nats::Client> client;
  Replica replica;
  natsSubscription* subscription = nullptr;
  uint64_t position = 0;  // the stream position of the last message taken

  ~State() {
    if (subscription != nullptr) {
      natsSubscription_Unsubscribe(subscription);
      natsSubscription_Destroy(subscription);
    }
  }

  StoreError expired(uint64_t first_in_stream) const {
    return StoreError(ErrorCode::CursorExpired)
        .with("cursor", replica.next_sequence() - 1)
        .with("first_retained", first_in_stream);
  }
  StoreError no_stream() const {
    return StoreError(ErrorCode::NotFound)
        .with("what", "stream")
        .with("key", client->options().stream);
  }
  StoreError diverged(uint64_t sequence, std::string reason) const {
    return StoreError(ErrorCode::ReplicaDiverged)
        .with("what", "replica of stream " + client->options().stream)
        .with("sequence", sequence)
        .with("reason", std::move(reason));
  }

  Result<ReplicationMessage> required_at(uint64_t at) {
    KEEL_ASSIGN_OR_RETURN(auto m, client->message_at(at));
    if (!m) return diverged(0, "the stream has no message at position " + std::to_string(at));
    return std::move(*m);
  }

  // The stream position to subscribe from: after the message holding the replica's last event.
  Result<uint64_t> start_position() {
    KEEL_ASSIGN_OR_RETURN(auto bounds, client->stream_bounds());
    if (!bounds) return no_stream();
    const uint64_t next = replica.next_sequence();
    if (bounds->messages == 0) {
      if (bounds->last == 0 && next == 1) return uint64_t{1};
      return expired(bounds->last + 1);  // messages were published and removed
    }
    KEEL_ASSIGN_OR_RETURN(ReplicationMessage first, required_at(bounds->first));
    if (first.sequence > next) return expired(first.sequence);
    if (first.sequence == next) return bounds->first;
    // Binary search for the message holding sequence next - 1 (sequences grow with positions).
    uint64_t lo = bounds->first, hi = bounds->last;
    while (lo < hi) {
      uint64_t mid = lo + (hi - lo + 1) / 2;
      KEEL_ASSIGN_OR_RETURN(ReplicationMessage m, required_at(mid));
      if (m.sequence <= next - 1) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    KEEL_ASSIGN_OR_RETURN(ReplicationMessage held, required_at(lo));
    if (held.hidden && next - 1 < held.sequence + held.record_events) {
      // The replica's last sequence is in a hidden run: it starts the run again if it holds only
      // part of it (Replica::apply takes the rest), else after it.
      return next - 1 == held.sequence + held.record_events - 1 ? lo + 1 : lo;
    }
    if (held.sequence != next - 1) {
      return diverged(next - 1, "the replica holds sequence " + std::to_string(next - 1) +
                                    " but the stream ends at sequence " +
                                    std::to_string(held.sequence));
    }
    Result<Event> mine = store.read(held.sequence);
    if (!mine.ok()) return mine.error();
    if (mine->event_id != held.event_id || mine->chained_hash != held.chained_hash) {
      return diverged(held.sequence, "the replica holds event " + mine->event_id.to_hex() +
                                         ", the stream " + held.event_id.to_hex());
    }
    return lo + 1;
  }

  Status subscribe(uint64_t from) {
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = client->options().stream.c_str();
    options.Ordered = true;
    options.Config.DeliverPolicy = js_DeliverByStartSequence;
    options.Config.OptStartSeq = from;
    jsErrCode error = static_cast<jsErrCode>(0);
    natsStatus s = js_SubscribeSync(&subscription, client->js(), client->subject().c_str(), nullptr,
                                    &options, &error);
    if (s != NATS_OK) return client->unavailable("subscribe", s, error);
    position = from - 1;
    return ok_status();
  }
};

NatsFollower::NatsFollower(std::unique_ptr<State> state) : state_(std::move(state)) {}
NatsFollower::~NatsFollower() = default;

Result<std::unique_ptr<NatsFollower>> NatsFollower::start(Store& replica,
                                                          const NatsOptions& options) {
  KEEL_ASSIGN_OR_RETURN(auto client, nats::Client::connect(options));
  auto state = std::make_unique<State>(replica, std::move(client));
  KEEL_ASSIGN_OR_RETURN(uint64_t from, state->start_position());
  KEEL_TRY(state->subscribe(from));
  return std::unique_ptr<NatsFollower>(new NatsFollower(std::move(state)));
}

Result<FollowProgress> NatsFollower::follow(std::chrono::milliseconds wait, size_t max_events) {
  State& st = *state_;
  FollowProgress progress;
  int64_t timeout = std::max<int64_t>(1, wait.count());
  for (size_t taken = 0; taken < max_events; ++taken) {
    natsMsg* raw = nullptr;
    natsStatus s = natsSubscription_NextMsg(&raw, st.subscription, timeout);
    if (s == NATS_TIMEOUT) break;
    if (s != NATS_OK) return st.client->unavailable("next message", s);
    nats::Msg msg(raw);
    timeout = 1;  // after the first: take what is there, then write
    jsMsgMetaData* meta = nullptr;
    if (s = natsMsg_GetMetaData(&meta, msg.get()); s != NATS_OK) {
      return st.client->unavailable("message metadata", s);
    }
    const uint64_t at = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
    KEEL_ASSIGN_OR_RETURN(ReplicationMessage m, st.client->parse(msg.get(), at));
    if (m.sequence > st.replica.next_sequence()) {
      // The stream's limits removed messages this replica had not taken: never skip them.
      return st.expired(m.sequence);
    }
    KEEL_ASSIGN_OR_RETURN(size_t written, st.replica.apply(std::move(m)));
    progress.applied += written;
    st.position = at;
  }
  if (progress.applied > 0) KEEL_TRY(st.replica.sync());
  progress.replica_next = st.replica.next_sequence();
  progress.stream_sequence = st.position;
  return progress;
}

Result<uint64_t> NatsFollower::stream_last() {
  KEEL_ASSIGN_OR_RETURN(auto bounds, state_->client->stream_bounds());
  if (!bounds) return state_->no_stream();
  return bounds->last;
}

}  // namespace keel
