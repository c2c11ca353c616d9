// The NATS C client behind small owners, and its failures as StoreErrors (ServerUnavailable).
#pragma once

#include <nats/nats.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "keel/replication.h"
#include "keel/replication_nats.h"
#include "keel/result.h"

namespace keel::nats {

struct MsgDeleter {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
using Msg = std::unique_ptr<natsMsg, MsgDeleter>;

// A connection with its JetStream context. The client reconnects on its own (forever, every 250
// ms); requests made while it is away fail with ServerUnavailable.
class Client {
 public:
  // InvalidArgument (options), ServerUnavailable. `on_ack`, when given, is called (on a client
  // thread) with the outcome of every js_PublishMsgAsync of this client, and owns the message.
  static Result<std::unique_ptr<Client>> connect(const NatsOptions& options,
                                                 jsPubAckHandler on_ack = nullptr,
                                                 void* on_ack_closure = nullptr);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const NatsOptions& options() const { return options_; }
  const std::string& subject() const { return subject_; }
  jsCtx* js() { return js_; }
  natsConnection* connection() { return connection_; }

  // ServerUnavailable {server, operation, detail} from a client status and JetStream error code.
  StoreError unavailable(std::string_view operation, natsStatus status,
                         jsErrCode js_error = static_cast<jsErrCode>(0)) const;
  struct Bounds {
    uint64_t first = 0;     // the first message's position (when messages > 0)
    uint64_t last = 0;      // the last position ever written (even when its message was removed)
    uint64_t messages = 0;  // how many the stream holds
  };
  // nullopt when the stream does not exist.
  Result<std::optional<Bounds>> stream_bounds();
  // Creates the stream (file storage, the subject); one that appeared meanwhile is fine.
  Status create_stream();
  // The message at stream position `position`, parsed; nullopt when the stream has none there.
  Result<std::optional<ReplicationMessage>> message_at(uint64_t position);
  // The value of header `name`, if the message has it.
  static std::optional<std::string_view> header(natsMsg* msg, const char* name);
  // Parses a received message (MessageInvalid naming `position`).
  Result<ReplicationMessage> parse(natsMsg* msg, uint64_t position) const;

 private:
  explicit Client(NatsOptions options);
  NatsOptions options_;
  std::string subject_;
  natsConnection* connection_ = nullptr;
  jsCtx* js_ = nullptr;
};

}  // namespace keel::nats
