// The NATS C client behind small owners (nats_client.h).
#include "replication/nats/nats_client.h"

#include <string>

namespace keel::nats {
namespace {

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

struct OptionsDeleter {
  void operator()(natsOptions* o) const { natsOptions_Destroy(o); }
};

}  // namespace

std::optional<std::string_view> Client::header(natsMsg* msg, const char* name) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg, name, &value) != NATS_OK || value == nullptr) return std::nullopt;
  return std::string_view(value);
}

Client::Client(NatsOptions options) : options_(std::move(options)) {
  subject_ = options_.subject.empty() ? "keel." + options_.stream : options_.subject;
}

Client::~Client() {
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (connection_ != nullptr) natsConnection_Destroy(connection_);
}

StoreError Client::unavailable(std::string_view operation, natsStatus status,
                               jsErrCode js_error) const {
  std::string detail = natsStatus_GetText(status);
  if (js_error != 0) detail += " (JetStream error " + std::to_string(js_error) + ")";
  return StoreError(ErrorCode::ServerUnavailable)
      .with("server", options_.url)
      .with("operation", operation)
      .with("detail", detail);
}

Result<std::unique_ptr<Client>> Client::connect(const NatsOptions& options, jsPubAckHandler on_ack,
                                                void* on_ack_closure) {
  auto invalid = [](std::string_view argument, std::string reason) {
    return StoreError(ErrorCode::InvalidArgument).with("argument", argument).with("reason", reason);
  };
  if (!valid_name(options.stream)) {
    return invalid("stream",
                   "'" + options.stream + "' is not 1 to 64 characters of A-Z a-z 0-9 _ -");
  }
  if (options.url.empty()) return invalid("url", "is empty");
  if (options.request_timeout.count() <= 0) return invalid("request_timeout", "is not positive");
  std::unique_ptr<Client> client(new Client(options));
  natsOptions* raw = nullptr;
  if (natsStatus s = natsOptions_Create(&raw); s != NATS_OK) {
    return client->unavailable("create options", s);
  }
  std::unique_ptr<natsOptions, OptionsDeleter> opts(raw);
  natsStatus s = natsOptions_SetURL(opts.get(), options.url.c_str());
  if (s == NATS_OK) s = natsOptions_SetTimeout(opts.get(), options.request_timeout.count());
  if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts.get(), true);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts.get(), -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts.get(), 250);
  if (s != NATS_OK) return invalid("url", std::string(natsStatus_GetText(s)));
  if (s = natsConnection_Connect(&client->connection_, opts.get()); s != NATS_OK) {
    return client->unavailable("connect", s);
  }
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = options.request_timeout.count();
  js_options.PublishAsync.AckHandler = on_ack;
  js_options.PublishAsync.AckHandlerClosure = on_ack_closure;
  js_options.PublishAsync.MaxPending = 8192;
  if (s = natsConnection_JetStream(&client->js_, client->connection_, &js_options); s != NATS_OK) {
    return client->unavailable("JetStream context", s);
  }
  return client;
}

Result<std::optional<Client::Bounds>> Client::stream_bounds() {
  jsStreamInfo* info = nullptr;
  jsErrCode error = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&info, js_, options_.stream.c_str(), nullptr, &error);
  if (s == NATS_NOT_FOUND || error == JSStreamNotFoundErr) return std::optional<Bounds>();
  if (s != NATS_OK) return unavailable("stream info", s, error);
  Bounds bounds{info->State.FirstSeq, info->State.LastSeq, info->State.Msgs};
  jsStreamInfo_Destroy(info);
  return std::optional<Bounds>(bounds);
}

Status Client::create_stream() {
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = options_.stream.c_str();
  const char* subjects[] = {subject_.c_str()};
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  jsStreamInfo* info = nullptr;
  jsErrCode error = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(&info, js_, &config, nullptr, &error);
  if (info != nullptr) jsStreamInfo_Destroy(info);
  if (s == NATS_OK || error == JSStreamNameExistErr) return ok_status();
  return unavailable("create stream", s, error);
}

Result<ReplicationMessage> Client::parse(natsMsg* msg, uint64_t position) const {
  std::string_view body(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
  ReplicationHeaders headers{header(msg, "Keel-Sequence"), header(msg, "Keel-Record"),
                             header(msg, "Keel-Fence-End"), header(msg, "Keel-Hidden")};
  return decode_replication_message(options_.stream, position, headers, body);
}

Result<std::optional<ReplicationMessage>> Client::message_at(uint64_t position) {
  natsMsg* raw = nullptr;
  jsErrCode error = static_cast<jsErrCode>(0);
  natsStatus s = js_GetMsg(&raw, js_, options_.stream.c_str(), position, nullptr, &error);
  if (s == NATS_NOT_FOUND || error == JSNoMessageFoundErr) {
    return std::optional<ReplicationMessage>();
  }
  if (s != NATS_OK) return unavailable("get message", s, error);
  Msg msg(raw);
  KEEL_ASSIGN_OR_RETURN(ReplicationMessage m, parse(msg.get(), position));
  return std::optional<ReplicationMessage>(std::move(m));
}

}  // namespace keel::nats
