// keel load and keel dump: whole events as JSON lines, in and out.
//
// A line is one JSON object (the format is in `keel load --help`). dump writes every visible event
// in sequence order, with its payload and metadata in a form load turns back into the same bytes;
// load appends lines in atomic batches, giving each event a new id and sequence but the same
// entity, scope, lane, kind, clock order, payload, metadata and causal links: a cause or
// correlation naming an event of the loaded text is mapped to that event's new id, one naming
// anything else is kept as it is (an external cause).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>

#include "cli/commands.h"
#include "cli/event_lines.h"
#include "cli/json_codec.h"
#include "cli/progress.h"
#include "keel/keel.h"

namespace keel::cli {
namespace {

int dump_run(const ParsedArgs& args) {
  const std::string cmd = "dump";
  int code = 0;
  uint64_t from = 1, to = UINT64_MAX;
  if (!number_option(args, cmd, "from", from, UINT64_MAX, code) ||
      !number_option(args, cmd, "to", to, UINT64_MAX, code)) {
    return code;
  }
  if (from > to) return usage_error(cmd, "--from is above --to");
  auto store = open_store(cmd, args.positional[0], false, false, code);
  if (!store) return code;
  const uint64_t last = std::min(to, store->stats().sequence_visible);
  Progress progress(cmd, stderr_is_terminal());
  uint64_t written = 0;
  Status status = store->scan(from, to, [&](const EventView& e) {
    std::string line = dump_event_line(e);
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stdout);
    if (++written % 4096 == 0) progress.update(e.sequence - from + 1, last - from + 1);
    return true;
  });
  progress.finish();
  if (!status.ok()) return fail(cmd, status.error());
  if (std::fflush(stdout) != 0) {
    std::fprintf(stderr, "keel dump: writing the output failed\n");
    return 1;
  }
  return 0;
}

class Loader {
 public:
  Loader(Store& store, size_t batch_events, Durability durability, bool receipts)
      : store_(store), batch_events_(batch_events), durability_(durability), receipts_(receipts) {}

  // Adds a parsed line; appends the batch when full (or first, when the line's correlation names
  // an event of the batch: a batch item can name an earlier item as its cause, not its
  // correlation). Returns the exit code of a failed append, 0 otherwise.
  int add(EventLine line) {
    if (line.old_correlation && batch_index_.contains(*line.old_correlation)) {
      if (int rc = flush(); rc != 0) return rc;
    }
    if (line.old_id) batch_index_.emplace(*line.old_id, static_cast<uint32_t>(batch_.size()));
    batch_.push_back(std::move(line));
    if (batch_.size() >= batch_events_) return flush();
    return 0;
  }

  // Appends the batch: all of it or, on an error, none of it.
  int flush() {
    if (batch_.empty()) return 0;
    std::vector<BatchItem> items;
    items.reserve(batch_.size());
    for (EventLine& line : batch_) {
      BatchItem item = std::move(line.item);
      if (line.old_causation) {
        if (auto mapped = loaded_.find(*line.old_causation); mapped != loaded_.end()) {
          item.options.causation_id = mapped->second;
        } else if (auto at = batch_index_.find(*line.old_causation);
                   at != batch_index_.end() && at->second < items.size()) {
          item.options.cause_item = at->second;  // an earlier item of this batch
        } else {
          item.options.causation_id = line.old_causation;  // external: kept as it is
        }
      }
      if (line.old_correlation && line.old_correlation != line.old_id) {
        auto mapped = loaded_.find(*line.old_correlation);
        item.options.correlation_id =
            mapped != loaded_.end() ? mapped->second : *line.old_correlation;
      }
      items.push_back(std::move(item));
    }
    BatchOptions options;
    options.durability = durability_;
    auto appended = store_.append_batch(items, options);
    if (!appended.ok()) {
      const StoreError& error = appended.error();
      std::string where = "lines " + std::to_string(batch_.front().number) + " to " +
                          std::to_string(batch_.back().number);
      if (std::optional<uint64_t> item = error.field_u64("index"); item && *item < batch_.size()) {
        where = "line " + std::to_string(batch_[*item].number);
      }
      std::fprintf(stderr, "keel load: %s: %s [%s]; nothing of lines %llu to %llu was written\n",
                   where.c_str(), error.to_string().c_str(),
                   std::string(error_class_name(error.error_class())).c_str(),
                   static_cast<unsigned long long>(batch_.front().number),
                   static_cast<unsigned long long>(batch_.back().number));
      return 1;
    }
    for (size_t i = 0; i < batch_.size(); ++i) {
      const Receipt& receipt = (*appended)[i];
      if (batch_[i].old_id) loaded_[*batch_[i].old_id] = receipt.event_id;
      if (receipts_) std::printf("%s\n", receipt_json(receipt).c_str());
      if (first_ == 0) first_ = receipt.sequence;
      last_ = receipt.sequence;
    }
    events_ += batch_.size();
    ++batches_;
    batch_.clear();
    batch_index_.clear();
    return 0;
  }

  uint64_t events() const { return events_; }
  uint64_t batches() const { return batches_; }
  uint64_t first() const { return first_; }
  uint64_t last() const { return last_; }

 private:
  Store& store_;
  size_t batch_events_;
  Durability durability_;
  bool receipts_;
  std::vector<EventLine> batch_;
  std::map<EventId, uint32_t> batch_index_;  // a line's event_id -> its index in batch_
  std::map<EventId, EventId> loaded_;  // id in the loaded text -> id in this store
  uint64_t events_ = 0;
  uint64_t batches_ = 0;
  uint64_t first_ = 0;
  uint64_t last_ = 0;
};

int load_run(const ParsedArgs& args) {
  const std::string cmd = "load";
  int code = 0;
  uint64_t batch = 1000;
  if (!number_option(args, cmd, "batch", batch, 10'000, code)) return code;
  if (batch == 0) return usage_error(cmd, "--batch wants a number from 1 to 10000, got '0'");
  Durability durability = Durability::Durable;
  std::string level = args.get("durability").value_or("durable");
  if (level == "written") {
    durability = Durability::Written;
  } else if (level != "durable") {
    return usage_error(cmd, "--durability wants written or durable");
  }
  const std::string source = args.positional[1];
  std::ifstream file;
  uint64_t total_bytes = 0;
  if (source != "-") {
    file.open(source, std::ios::binary);
    if (!file) return usage_error(cmd, "cannot read " + source);
    std::error_code ignored;  // no size: no progress bar
    total_bytes = std::filesystem::file_size(source, ignored);
    if (ignored) total_bytes = 0;
  }
  std::istream& in = source == "-" ? std::cin : file;
  auto store = open_store(cmd, args.positional[0], true, args.has("create"), code);
  if (!store) return code;
  Loader loader(*store, batch, durability, args.has("receipts"));
  Progress progress(cmd, stderr_is_terminal());
  uint64_t bytes_read = 0;
  std::string text;
  for (uint64_t number = 1; std::getline(in, text); ++number) {
    bytes_read += text.size() + 1;
    if (total_bytes > 0 && number % 1024 == 0) progress.update(bytes_read, total_bytes);
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    EventLine line;
    line.number = number;
    std::string error;
    if (!parse_event_line(text, line, error)) {
      progress.finish();
      std::fprintf(stderr,
                   "keel load: line %llu: %s; nothing of its batch was written (%llu events "
                   "loaded before it)\n",
                   static_cast<unsigned long long>(number), error.c_str(),
                   static_cast<unsigned long long>(loader.events()));
      return 1;
    }
    if (int rc = loader.add(std::move(line)); rc != 0) {
      progress.finish();
      return rc;
    }
  }
  int rc = loader.flush();
  progress.finish();
  if (rc != 0) return rc;
  Status closed = store->close();
  if (!closed.ok()) return fail(cmd, closed.error());
  if (loader.events() == 0) {
    std::fprintf(stderr, "keel load: no events in %s\n", source.c_str());
  } else {
    std::fprintf(stderr, "keel load: %llu events in %llu batches, sequences %llu to %llu\n",
                 static_cast<unsigned long long>(loader.events()),
                 static_cast<unsigned long long>(loader.batches()),
                 static_cast<unsigned long long>(loader.first()),
                 static_cast<unsigned long long>(loader.last()));
  }
  return 0;
}

}  // namespace

int run_load(const ParsedArgs& args) { return load_run(args); }
int run_dump(const ParsedArgs& args) { return dump_run(args); }

}  // namespace keel::cli
