// NatsPublisher (include/keel/replication_nats.h): a durable consumer of the source that publishes
// each visible event once, fenced by the stream's expected last sequence, cursor after the ack.
#include <algorithm>

#include "keel/consumer.h"
#include "keel/replication_nats.h"
#include "replication/nats/nats_client.h"

namespace keel {

struct NatsPublisher::State {
  State(Store& s, std::unique_ptr<nats::Client> c, std::unique_ptr<DurableConsumer> d)
      : store(s), client(std::move(c)), consumer(std::move(d)) {}
  Store& store;
  std::unique_ptr<nats::Client> client;
  std::unique_ptr<DurableConsumer> consumer;
  uint64_t stream_last = 0;  // the stream's last position, as this publisher knows it
  uint64_t in_stream = 0;    // the last source sequence the stream holds
  bool reconcile = true;     // learn both from the stream before the next publish
  std::vector<ReplicationMessage> messages;

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
    Result<Event> held = store.read(last->sequence);
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

  Status publish_one(const ReplicationMessage& m) {
    natsMsg* raw = nullptr;
    natsStatus s = natsMsg_Create(&raw, client->subject().c_str(), nullptr, m.body.data(),
                                  static_cast<int>(m.body.size()));
    if (s != NATS_OK) return client->unavailable("create message", s);
    nats::Msg msg(raw);
    const std::string id = m.event_id.to_hex();
    s = natsMsgHeader_Set(msg.get(), "Keel-Sequence", m.sequence_header().c_str());
    if (s == NATS_OK) s = natsMsgHeader_Set(msg.get(), "Keel-Record", m.record_header().c_str());
    // The fence, set as a header rather than through jsPubOptions::ExpectLastSeq, where 0 means
    // "no expectation": the first message to an empty stream is fenced too.
    const std::string expected = std::to_string(stream_last);
    if (s == NATS_OK) s = natsMsgHeader_Set(msg.get(), "Nats-Expected-Last-Sequence", expected.c_str());
    if (s != NATS_OK) return client->unavailable("set headers", s);
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MsgId = id.c_str();
    options.MaxWait = client->options().request_timeout.count();
    jsPubAck* ack = nullptr;
    jsErrCode error = static_cast<jsErrCode>(0);
    s = js_PublishMsg(&ack, client->js(), msg.get(), &options, &error);
    if (s != NATS_OK) {
      reconcile = true;  // it may have landed (a lost ack): learn the stream's end again
      if (error == JSStreamWrongLastSequenceErr) {
        // Another publisher wrote since, or an earlier publish of ours landed unacknowledged.
        KEEL_TRY(reconcile_with_stream());
        return StoreError(ErrorCode::OperationInDoubt)
            .with("operation", "publish")
            .with("reason", "the stream moved: reconciled, publish again");
      }
      return client->unavailable("publish", s, error);
    }
    if (!ack->Duplicate) stream_last = ack->Sequence;
    jsPubAck_Destroy(ack);
    in_stream = m.sequence;
    return ok_status();
  }
};

NatsPublisher::NatsPublisher(std::unique_ptr<State> state) : state_(std::move(state)) {}
NatsPublisher::~NatsPublisher() = default;

Result<std::unique_ptr<NatsPublisher>> NatsPublisher::start(Store& source,
                                                            const NatsOptions& options) {
  KEEL_ASSIGN_OR_RETURN(auto client, nats::Client::connect(options));
  ConsumerOptions consumer_options;
  consumer_options.subscription.with_payload = false;
  KEEL_ASSIGN_OR_RETURN(auto consumer, DurableConsumer::open(source, "replicate." + options.stream,
                                                             Query{}, consumer_options));
  auto state = std::make_unique<State>(source, std::move(client), std::move(consumer));
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
  if (st.reconcile) KEEL_TRY(st.reconcile_with_stream());
  PublishProgress progress;
  const uint64_t before = st.consumer->position();
  KEEL_ASSIGN_OR_RETURN(size_t delivered, st.consumer->next(wait, [](const EventView&) {}));
  const uint64_t through = st.consumer->position();
  if (delivered > 0 && through > st.in_stream) {
    st.messages.clear();
    const uint64_t from = std::max(before, st.in_stream);
    KEEL_TRY(read_replication_messages(
        st.store, from, std::min<uint64_t>(through - from, max_events), st.messages));
    for (const ReplicationMessage& m : st.messages) {
      if (m.sequence <= st.in_stream) continue;
      Status published = st.publish_one(m);
      if (!published.ok()) {
        if (published.error().is(ErrorCode::OperationInDoubt)) break;  // reconciled: go on later
        return published.error();
      }
      ++progress.published;
    }
  }
  // Cursor after the ack: only what the stream holds, and at most what was delivered.
  const uint64_t commit = std::min(st.in_stream, st.consumer->position());
  if (commit > st.consumer->cursor()) KEEL_TRY(st.consumer->commit(commit));
  if (st.consumer->position() > st.in_stream) st.consumer->rewind();  // deliver the rest again
  progress.cursor = st.consumer->cursor();
  progress.stream_sequence = st.stream_last;
  return progress;
}

}  // namespace keel
