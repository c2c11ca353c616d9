// NatsPublisher (include/keel/replication_nats.h): a durable consumer of the source that publishes
// each visible event once, fenced by the stream's expected last sequence, cursor after the ack.
#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>

#include "keel/consumer.h"
#include "keel/replication_nats.h"
#include "replication/nats/nats_client.h"

namespace keel {

struct NatsPublisher::State {
  State(Store& s, NatsOptions o) : store(s), options(std::move(o)) {}
  Store& store;
  const NatsOptions options;
  std::unique_ptr<nats::Client> client;
  std::unique_ptr<DurableConsumer> consumer;
  uint64_t stream_last = 0;  // the stream's last position, as this publisher knows it
  uint64_t in_stream = 0;    // the last source sequence the stream holds
  bool reconcile = true;     // learn both from the stream before the next publish
  bool reconnect = false;    // a publish's outcome is unknown: a new client (no stale acks)
  std::vector<ReplicationMessage> messages;

  // What JetStream answered to each message in flight, by source sequence (the client calls
  // on_ack on its own thread).
  struct Outcome {
    bool acked = false;
    bool duplicate = false;
    uint64_t position = 0;  // its stream sequence when acked
    natsStatus status = NATS_OK;
    jsErrCode error = static_cast<jsErrCode>(0);
  };
  std::mutex acks_mutex;
  std::map<uint64_t, Outcome> acks;

  static void on_ack(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* failure, void* closure) {
    auto* self = static_cast<State*>(closure);
    std::optional<std::string_view> header = nats::Client::header(msg, "Keel-Sequence");
    uint64_t sequence = 0;
    if (header) std::from_chars(header->data(), header->data() + header->size(), sequence);
    Outcome outcome;
    if (ack != nullptr) {
      outcome.acked = true;
      outcome.duplicate = ack->Duplicate;
      outcome.position = ack->Sequence;
    } else if (failure != nullptr) {
      outcome.status = failure->Err;
      outcome.error = failure->ErrCode;
    }
    {
      std::lock_guard lock(self->acks_mutex);
      self->acks[sequence] = outcome;
    }
    natsMsg_Destroy(msg);
  }

  Status connect() {
    KEEL_ASSIGN_OR_RETURN(auto fresh, nats::Client::connect(options, &State::on_ack, this));
    client = std::move(fresh);  // the old client, and the acks it still had in flight, go
    std::lock_guard lock(acks_mutex);
    acks.clear();
    reconnect = false;
    reconcile = true;
    return ok_status();
  }

  StoreError diverged(uint64_t sequence, std::string reason) const {
    return StoreError(ErrorCode::ReplicaDiverged)
        .with("what", "stream " + client->options().stream)
        .with("sequence", sequence)
        .with("reason", std::move(reason));
  }

  // Reads the stream's end and checks that it holds this store's events, up to where it says.
  Status reconcile_with_stream() {
    KEEL_ASSIGN_OR_RETURN(auto bounds, client->stream_bounds());
    if (!bounds) {
      KEEL_TRY(client->create_stream());
      KEEL_ASSIGN_OR_RETURN(bounds, client->stream_bounds());
      if (!bounds) return client->unavailable("create stream", NATS_NOT_FOUND);
    }
    const uint64_t cursor = consumer->cursor();
    stream_last = bounds->last;
    if (bounds->messages == 0) {
      // Empty, or every message removed by the stream's limits: nothing to compare with.
      if (bounds->last == 0 && cursor > 0) {
        return diverged(
            cursor, "the stream is empty, but this store's publisher committed cursor " +
                        std::to_string(cursor) + ": it was purged or replaced. Remove consumer " +
                        consumer->name() + " to publish from the start");
      }
      in_stream = cursor;
      reconcile = false;
      return ok_status();
    }
    KEEL_ASSIGN_OR_RETURN(auto last, client->message_at(bounds->last));
    if (!last) return client->unavailable("get the last message", NATS_NOT_FOUND);
    if (last->hidden) {
      // A run of hidden sequences: nothing to compare but that this store has reached it.
      const uint64_t end = last->sequence + last->record_events - 1;
      if (end < cursor || end > store.frontier()[Watermark::Visible].global_sequence) {
        return diverged(last->sequence, "the stream ends with hidden sequences " +
                                            last->record_header() +
                                            " this store does not hold there");
      }
      in_stream = end;
      reconcile = false;
      return ok_status();
    }
    Result<Event> held = store.read(last->sequence);
    if (!held.ok() && held.error().is(ErrorCode::NotFound) &&
        last->sequence < store.stats().first_retained_sequence && last->sequence >= cursor) {
      // Removed by retention (which stops at the cursor, so only at the cursor itself): the
      // cursor vouches that the stream holds this store's events up to it.
      in_stream = last->sequence;
      reconcile = false;
      return ok_status();
    }
    if (!held.ok() && held.error().is(ErrorCode::NotFound)) {
      return diverged(last->sequence, "the stream's last message is event " +
                                          last->event_id.to_hex() +
                                          ", which this store does not hold at that sequence");
    }
    if (!held.ok()) return held.error();
    if (held->event_id != last->event_id || held->chained_hash != last->chained_hash) {
      return diverged(last->sequence, "the stream's last message is event " +
                                          last->event_id.to_hex() + ", this store holds " +
                                          held->event_id.to_hex() +
                                          " there: another store publishes to the stream");
    }
    if (last->sequence < cursor) {
      return diverged(last->sequence, "the stream ends at sequence " +
                                          std::to_string(last->sequence) +
                                          ", below this store's publisher cursor " +
                                          std::to_string(cursor) + ": messages were removed");
    }
    in_stream = last->sequence;  // above the cursor after a crash between ack and commit
    reconcile = false;
    return ok_status();
  }

  // Sends `m` expecting the stream to end at `expected` (set as a header rather than through
  // jsPubOptions::ExpectLastSeq, where 0 means "no expectation": the first message to an empty
  // stream is fenced too). Its outcome arrives through on_ack.
  Status send(const ReplicationMessage& m, uint64_t expected) {
    natsMsg* raw = nullptr;
    natsStatus s = natsMsg_Create(&raw, client->subject().c_str(), nullptr, m.body.data(),
                                  static_cast<int>(m.body.size()));
    if (s != NATS_OK) return client->unavailable("create message", s);
    const std::string id = m.hidden ? "hidden-" + m.sequence_header() : m.event_id.to_hex();
    const std::string expect = std::to_string(expected);
    s = natsMsgHeader_Set(raw, "Keel-Sequence", m.sequence_header().c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(raw, "Keel-Record", m.record_header().c_str());
    if (auto end = m.fence_end_header(); s == NATS_OK && end) {
      s = natsMsgHeader_Set(raw, "Keel-Fence-End", end->c_str());
    }
    if (auto hidden = m.hidden_header(); s == NATS_OK && hidden) {
      s = natsMsgHeader_Set(raw, "Keel-Hidden", hidden->c_str());
    }
    if (s == NATS_OK && !client->options().unsafe_unfenced_for_test) {
      s = natsMsgHeader_Set(raw, "Nats-Expected-Last-Sequence", expect.c_str());
    }
    if (s == NATS_OK) s = natsMsgHeader_Set(raw, "Nats-Msg-Id", id.c_str());
    if (s == NATS_OK) s = js_PublishMsgAsync(client->js(), &raw, nullptr);
    if (raw != nullptr) natsMsg_Destroy(raw);  // not taken by the client
    if (s != NATS_OK) return client->unavailable("publish", s);
    return ok_status();
  }

  // Publishes `batch` pipelined: message i expects the stream to end where message i - 1 put
  // it. Moves in_stream and stream_last over the acknowledged prefix; returns how many that is.
  Result<uint64_t> publish_all(std::span<const ReplicationMessage> batch) {
    {
      std::lock_guard lock(acks_mutex);
      acks.clear();
    }
    Status sent = ok_status();
    size_t count = 0;
    for (; count < batch.size() && sent.ok(); ++count) {
      sent = send(batch[count], stream_last + count);
      if (!sent.ok()) break;
    }
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = client->options().request_timeout.count();
    natsStatus completed = js_PublishAsyncComplete(client->js(), &wait);
    uint64_t published = 0;
    std::optional<Outcome> failed;
    {
      std::lock_guard lock(acks_mutex);
      for (size_t i = 0; i < count; ++i) {
        auto it = acks.find(batch[i].sequence);
        if (it == acks.end() || !it->second.acked) {
          if (it != acks.end()) failed = it->second;
          break;
        }
        if (!it->second.duplicate) stream_last = it->second.position;
        in_stream = batch[i].sequence + (batch[i].hidden ? batch[i].record_events - 1 : 0);
        ++published;
      }
    }
    if (published == count && sent.ok() && completed == NATS_OK) return published;
    // Something was not acknowledged: learn the stream's end before publishing again.
    reconcile = true;
    if (failed && failed->error == JSStreamWrongLastSequenceErr) {
      // Another publisher wrote since (reconciling says so), or a duplicate shifted the rest.
      KEEL_TRY(reconcile_with_stream());
      return published;
    }
    reconnect = true;  // acks may still arrive for what was sent: start over on a new client
    if (!sent.ok()) return sent.error();
    if (failed) return client->unavailable("publish", failed->status, failed->error);
    return client->unavailable("publish acknowledgements", completed);
  }
};

NatsPublisher::NatsPublisher(std::unique_ptr<State> state) : state_(std::move(state)) {}
NatsPublisher::~NatsPublisher() = default;

Result<std::unique_ptr<NatsPublisher>> NatsPublisher::start(Store& source,
                                                            const NatsOptions& options) {
  auto state = std::make_unique<State>(source, options);
  KEEL_TRY(state->connect());  // first: it checks the options before a consumer is created
  ConsumerOptions consumer_options;
  consumer_options.subscription.with_payload = false;
  KEEL_ASSIGN_OR_RETURN(
      state->consumer,
      DurableConsumer::open(source, "replicate." + options.stream, Query{}, consumer_options));
  KEEL_TRY(state->reconcile_with_stream());
  return std::unique_ptr<NatsPublisher>(new NatsPublisher(std::move(state)));
}

uint64_t NatsPublisher::cursor() const { return state_->consumer->cursor(); }

Result<PublishProgress> NatsPublisher::publish(std::chrono::milliseconds wait, size_t max_events) {
  State& st = *state_;
  if (max_events == 0) {
    return StoreError(ErrorCode::InvalidArgument)
        .with("argument", "max_events")
        .with("reason", "is 0");
  }
  if (st.reconnect) KEEL_TRY(st.connect());
  if (st.reconcile) KEEL_TRY(st.reconcile_with_stream());
  PublishProgress progress;
  // The events are read as stored (read_replication_messages), not through the consumer's
  // deliveries: the consumer keeps the cursor, committed after the acks.
  Status visible = st.store.wait_for(Watermark::Visible, st.in_stream + 1, wait);
  if (!visible.ok() && !visible.error().is(ErrorCode::WaitTimeout)) return visible.error();
  if (visible.ok()) {
    st.messages.clear();
    KEEL_TRY(read_replication_messages(st.store, st.in_stream, max_events, st.messages));
    // Only durable events leave the machine (visible may run ahead of durable under
    // VisibilityPolicy::AfterWrite, and a crash could take those back).
    const uint64_t durable = st.store.frontier()[Watermark::Durable].global_sequence;
    auto last_of = [](const ReplicationMessage& m) {
      return m.sequence + (m.hidden ? m.record_events - 1 : 0);
    };
    while (!st.messages.empty() && last_of(st.messages.back()) > durable) st.messages.pop_back();
    KEEL_ASSIGN_OR_RETURN(progress.published, st.publish_all(st.messages));
  }
  // Cursor after the ack: what the stream holds (in_stream is above the cursor after a crash
  // between an ack and the commit: reconcile found it there).
  if (st.in_stream > st.consumer->cursor()) {
    if (st.in_stream > st.consumer->position()) {
      KEEL_TRY(st.consumer->deliver_through(st.in_stream));
    }
    KEEL_TRY(st.consumer->commit(st.in_stream));
  }
  progress.cursor = st.consumer->cursor();
  progress.stream_sequence = st.stream_last;
  return progress;
}

}  // namespace keel
