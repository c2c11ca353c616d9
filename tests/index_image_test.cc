// The index image (segments/FORMAT.md 8.4 and 8.5, src/index/index_image.h,
// src/store/store_image.cc, recovery from a checkpoint in src/log/recovery.cc): a clean close
// writes INDEX, an open (read-only too, unless a writer is live) restores the indexes from it and
// recovers only the log after its checkpoint. Every answer of a store opened from an image is
// compared with the answers of the same log recovered in full (a copy of the store without INDEX):
// scans, point reads, entity streams, query pages both ways, ancestors, descendants, correlation
// graphs, happened_before and the counts. The image is a cache: damaged, older, foreign or stale
// images are rebuilt from the log (stats().index_source says why), a newer one fails closed without
// touching a byte, and a poisoned writer never writes one.
#include "index/index_image.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "format/byte_order.h"
#include "format/checksum.h"
#include "format/format_constants.h"
#include "format/record.h"
#include "golden_store.h"
#include "index/event_index.h"
#include "keel/keel.h"
#include "log/log.h"
#include "log/segment_files.h"
#include "platform/clock.h"
#include "platform/fault_file_system.h"
#include "platform/file_system.h"
#include "platform/memory_file_system.h"
#include "store/store_internals.h"
#include "test_support.h"

using namespace keel;
using keel::test::TempDir;
using Bytes = std::vector<std::byte>;

// encode_image's bytes as the Bytes the rest of this file handles.
template <typename... Args>
Bytes encode_image(const Args&... args) {
  index::ImageBytes image = index::encode_image(args...);
  return Bytes(image.begin(), image.end());
}

namespace {

const std::string kImageName = format::kIndexImageFileName;
const std::string kImagePrefix = "log (image not used: ";

// ---- files, through the platform seam (POSIX, memory and fault file systems alike) ----

Bytes read_file(platform::FileSystem& fs, const std::string& path) {
  auto file = fs.open(path, platform::OpenMode::ReadOnly);
  if (!file.ok()) FAIL(file.error().to_string());
  auto bytes = platform::read_file(**file);
  if (!bytes.ok()) FAIL(bytes.error().to_string());
  return std::move(bytes).value();
}

void write_file(platform::FileSystem& fs, const std::string& path, const Bytes& bytes) {
  auto file = fs.open(path, platform::OpenMode::CreateOrOpen);
  if (!file.ok()) FAIL(file.error().to_string());
  KEEL_REQUIRE_OK((*file)->truncate(0));
  KEEL_REQUIRE_OK((*file)->write_at(0, bytes));
  KEEL_REQUIRE_OK((*file)->sync_data());
}

bool exists(platform::FileSystem& fs, const std::string& path) {
  auto present = fs.exists(path);
  if (!present.ok()) FAIL(present.error().to_string());
  return *present;
}

// Every file of a directory but LOCK (name -> bytes).
std::map<std::string, Bytes> files_of(platform::FileSystem& fs, const std::string& directory) {
  auto names = fs.list_directory(directory);
  if (!names.ok()) FAIL(names.error().to_string());
  std::map<std::string, Bytes> files;
  for (const std::string& name : *names) {
    if (name == format::kLockFileName) continue;
    files[name] = read_file(fs, platform::join_path(directory, name));
  }
  return files;
}

// Copies a store directory (LOCK left out, INDEX only when asked) into `to`, which must not exist.
void copy_store(platform::FileSystem& fs, const std::string& from, const std::string& to,
                bool with_image) {
  KEEL_REQUIRE_OK(fs.create_directory(to));
  for (const auto& [name, bytes] : files_of(fs, from)) {
    if (name == kImageName && !with_image) continue;
    write_file(fs, platform::join_path(to, name), bytes);
  }
}

// Makes an edited image's checksum (bytes 8..15: XXH3-64 of [16, end)) right again.
void store_checksum(Bytes& image) {
  format::store_u64(image.data() + 8,
                    format::checksum64(std::span<const std::byte>(image).subspan(16)));
}

// ---- stores ----

StoreOptions options_on(platform::FileSystem* fs, uint64_t segment_size = 8192) {
  StoreOptions options;
  options.file_system = fs;
  options.create_if_missing = true;
  options.segment_size = segment_size;
  options.id_seed = 11;
  options.sync_interval = std::chrono::hours(1);  // nothing is synced behind the test's back
  return options;
}

std::unique_ptr<Store> open_store(const std::string& directory, const StoreOptions& options) {
  auto store = Store::open(directory, options);
  if (!store.ok()) FAIL(store.error().to_string());
  return std::move(store).value();
}

// `count` events on three entities, order:0 to order:2, at the default durability.
void append_orders(Store& store, int count) {
  for (int i = 0; i < count; ++i) {
    KEEL_REQUIRE_OK(
        store.append({"order:" + std::to_string(i % 3), ""}, EventKind::make(1, 1), "x"));
  }
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// A deterministic workload over several entities, lanes and scopes, kinds of three categories,
// causal chains and fan-outs, external causes, explicit correlations, metadata and batches. Two
// workloads with different tags have the same shape and frame sizes (under a ManualClock, the same
// ids and HLCs too) and different payloads, hence different chained hashes.
class Workload {
 public:
  explicit Workload(char tag, platform::ManualClock* clock = nullptr) : tag_(tag), clock_(clock) {}

  // Appends `count` events, one in five inside a batch of 3, at `durability`. Returns the receipts
  // of the appends that succeeded, and stops at the first failure (its status in `failure`).
  std::vector<Receipt> append(Store& store, int count, Durability durability = Durability::Durable,
                              Status* failure = nullptr) {
    std::vector<Receipt> receipts;
    int done = 0;
    while (done < count) {
      Status status;
      if (next_ % 5 == 4 && count - done >= 3) {
        std::vector<BatchItem> items;
        for (int k = 0; k < 3; ++k) {
          items.push_back(BatchItem{coordinate(next_ + k), kind(next_ + k), payload(next_ + k),
                                    options(next_ + k, durability)});
        }
        auto r = store.append_batch(items, BatchOptions{durability, {}});
        if (r.ok()) {
          for (int k = 0; k < 3; ++k) learn((*r)[k], items[k].options);
          receipts.insert(receipts.end(), r->begin(), r->end());
        } else {
          status = r.error();
        }
        next_ += 3;
        done += 3;
      } else {
        AppendOptions o = options(next_, durability);
        auto r = store.append(coordinate(next_), kind(next_), payload(next_), o);
        if (r.ok()) {
          learn(*r, o);
          receipts.push_back(*r);
        } else {
          status = r.error();
        }
        ++next_;
        ++done;
      }
      if (clock_ != nullptr) clock_->advance_ms(1);
      if (!status.ok()) {
        if (failure == nullptr) FAIL(status.error().to_string());
        *failure = status;
        break;
      }
    }
    return receipts;
  }

 private:
  struct Known {
    EventId id;
    EventId correlation;
  };

  static Coordinate coordinate(int i) {
    std::string entity =
        i % 9 == 0 ? "customer:" + std::to_string(i % 2) : "order:" + std::to_string(i % 5);
    std::string scope = i % 4 == 0 ? "billing" : i % 4 == 1 ? "" : "shipping";
    return Coordinate{entity, scope};
  }
  static EventKind kind(int i) {
    return EventKind::make(static_cast<uint8_t>(1 + i % 3), static_cast<uint16_t>(1 + i % 4));
  }
  std::string payload(int i) const {
    char number[16];
    std::snprintf(number, sizeof number, "%06d", i);
    return std::string(1, tag_) + "-" + number +
           std::string(static_cast<size_t>(i * 37 % 150), 'x');
  }
  AppendOptions options(int i, Durability durability) const {
    AppendOptions o;
    o.durability = durability;
    o.lane = i % 7 == 3 ? 2 : 0;
    if (i % 5 == 2) o.metadata = "meta-" + std::to_string(i);
    if (i % 13 == 6) {
      o.causation_id = EventId{0xe7e7, static_cast<uint64_t>(i)};  // outside the store
    } else if (i % 3 != 0 && !known_.empty()) {
      const Known& cause = known_[static_cast<size_t>(i) * 7919 % known_.size()];
      o.causation_id = cause.id;
      o.correlation_id = cause.correlation;
    }
    return o;
  }
  void learn(const Receipt& r, const AppendOptions& o) {
    known_.push_back(Known{r.event_id, o.correlation_id.value_or(r.event_id)});
  }

  char tag_;
  platform::ManualClock* clock_;
  int next_ = 0;
  std::vector<Known> known_;
};

// ---- answers ----

std::string hex(const std::optional<EventId>& id) { return id ? id->to_hex() : "-"; }

std::string describe(const Event& e) {
  std::ostringstream out;
  out << e.sequence << " epoch=" << e.epoch << " id=" << e.event_id.to_hex() << " "
      << e.coordinate.entity << "/" << e.coordinate.scope << " kind=" << e.kind.value
      << " lane=" << e.lane << " clock=" << e.entity_clock << " hlc=" << e.hlc.wall_ms << "."
      << e.hlc.logical << " correlation=" << e.correlation_id.to_hex()
      << " cause=" << hex(e.causation_id) << " metadata=" << e.metadata.value_or("-")
      << " payload=" << e.payload << " prev=" << (e.prev_hash ? e.prev_hash->to_hex() : "-")
      << " hash=" << e.chained_hash.to_hex();
  return out.str();
}

std::string describe(const EventRef& r) {
  std::ostringstream out;
  out << r.sequence << ":" << r.event_id.to_hex() << ":" << r.entity << "@" << r.lane << "#"
      << r.entity_clock << ":" << r.kind.value << ":" << r.scope << ":" << r.hlc.wall_ms << "."
      << r.hlc.logical;
  return out.str();
}

struct Answers {
  std::vector<std::string> events;   // scan of everything
  std::vector<std::string> by_id;    // get(id) and read(sequence) of every event
  std::vector<std::string> streams;  // every (entity, lane) stream, whole and a clock range
  std::vector<std::string> pages;    // Store::query pages, both orders
  std::vector<std::string> causal;   // ancestors, descendants, correlation graphs, happened_before
  std::vector<std::string> counts;   // stats().events / entities / sequence_next
};

std::vector<std::string> page_through(Store& store, Query query) {
  std::vector<std::string> lines;
  query.limit = 7;
  for (int guard = 0; guard < 10'000; ++guard) {
    auto page = store.query(query);
    if (!page.ok()) FAIL(page.error().to_string());
    std::string line = "page";
    for (const Event& e : page->events) line += " | " + describe(e);
    line += " next=" + (page->next_after ? std::to_string(*page->next_after) : std::string("-"));
    lines.push_back(line);
    if (!page->next_after) return lines;
    query.after = page->next_after;
  }
  FAIL("paging did not end");
  return lines;
}

Answers answers_of(Store& store) {
  Answers a;
  auto all = store.scan_events(1, UINT64_MAX);
  if (!all.ok()) FAIL(all.error().to_string());
  const std::vector<Event>& events = *all;
  std::set<std::pair<std::string, uint32_t>> streams;
  std::map<std::string, EventId> correlations;  // by hex, in a stable order
  for (const Event& e : events) {
    a.events.push_back(describe(e));
    auto by_id = store.get(e.event_id);
    auto by_sequence = store.read(e.sequence);
    a.by_id.push_back(
        (by_id.ok() ? describe(*by_id) : by_id.error().to_string()) + " / " +
        (by_sequence.ok() ? describe(*by_sequence) : by_sequence.error().to_string()));
    streams.emplace(e.coordinate.entity, e.lane);
    correlations.emplace(e.correlation_id.to_hex(), e.correlation_id);
  }
  for (const auto& [entity, lane] : streams) {
    for (auto [from, to] : {std::pair<uint64_t, uint64_t>{1, UINT64_MAX}, {2, 4}}) {
      auto stream = store.entity_events(entity, lane, from, to);
      if (!stream.ok()) FAIL(stream.error().to_string());
      std::string line = entity + "@" + std::to_string(lane) + "[" + std::to_string(from) + "..]";
      for (const Event& e : *stream)
        line += " " + std::to_string(e.sequence) + "#" + std::to_string(e.entity_clock);
      a.streams.push_back(line);
    }
  }

  std::vector<std::pair<std::string, Query>> queries;
  queries.emplace_back("all", Query{});
  Query q;
  q.entity_prefix = "order:";
  queries.emplace_back("prefix order:", q);
  q.lane = 2;
  queries.emplace_back("prefix order: lane 2", q);
  q = Query{};
  q.entity = "customer:1";
  q.clock_from = 2;
  q.clock_to = 5;
  queries.emplace_back("customer:1 clocks 2..5", q);
  q = Query{};
  q.scope = "billing";
  q.with_payload = true;
  queries.emplace_back("scope billing with payload", q);
  q = Query{};
  q.kind = EventKind::make(2, 2);
  queries.emplace_back("kind 2/2", q);
  q = Query{};
  q.category = 3;
  queries.emplace_back("category 3", q);
  q = Query{};
  q.sequence_from = 5;
  q.sequence_to = 40;
  queries.emplace_back("sequences 5..40", q);
  if (events.size() > 30) {
    q = Query{};
    q.hlc_from = events[10].hlc;
    q.hlc_to = events[30].hlc;
    queries.emplace_back("hlc of events 11..31", q);
  }
  for (const auto& [hex_id, id] : correlations) {
    q = Query{};
    q.correlation_id = id;
    queries.emplace_back("correlation " + hex_id, q);
  }
  for (auto& [name, query] : queries) {
    for (Order order : {Order::Ascending, Order::Descending}) {
      query.order = order;
      a.pages.push_back(name + (order == Order::Ascending ? " ascending" : " descending"));
      for (std::string& line : page_through(store, query)) a.pages.push_back(std::move(line));
    }
  }

  for (size_t i = 0; i < events.size(); ++i) {
    const EventId& id = events[i].event_id;
    std::string line = std::to_string(events[i].sequence) + " ancestors:";
    auto ancestry = store.ancestors(id);
    if (!ancestry.ok()) FAIL(ancestry.error().to_string());
    for (const EventRef& r : ancestry->chain) line += " " + describe(r);
    line += " external=" + hex(ancestry->external_cause) + " descendants:";
    for (size_t limit : {size_t{3}, kQueryLimitMax}) {
      auto effects = store.descendants(id, limit);
      if (!effects.ok()) FAIL(effects.error().to_string());
      for (const EventRef& r : effects->events) line += " " + std::to_string(r.sequence);
      line += effects->truncated ? " (truncated)" : " (all)";
    }
    if (i + 5 < events.size()) {
      auto relation = store.happened_before(id, events[i + 5].event_id);
      if (!relation.ok()) FAIL(relation.error().to_string());
      line += std::string(" vs +5: ") + causal_order_name(relation->order) + " " +
              std::to_string(relation->hlc_order);
    }
    a.causal.push_back(line);
  }
  for (const auto& [hex_id, id] : correlations) {
    auto graph = store.correlation_graph(id);
    if (!graph.ok()) FAIL(graph.error().to_string());
    std::string line = "graph " + hex_id + ":";
    for (const EventRef& r : graph->nodes) line += " " + describe(r);
    line += " edges:";
    for (const CausalEdge& e : graph->edges)
      line += " " + e.cause.to_hex() + ">" + e.effect.to_hex();
    line += " outside:";
    for (const CausalEdge& e : graph->outside_causes) {
      line += " " + e.cause.to_hex() + ">" + e.effect.to_hex();
    }
    line += graph->truncated ? " (truncated)" : "";
    a.causal.push_back(line);
  }

  StoreStats stats = store.stats();
  a.counts = {"events " + std::to_string(stats.events),
              "entities " + std::to_string(stats.entities),
              "sequence_next " + std::to_string(stats.sequence_next)};
  return a;
}

void check_lines(const char* what, const std::vector<std::string>& got,
                 const std::vector<std::string>& expected) {
  INFO(what);
  CHECK(got.size() == expected.size());
  for (size_t i = 0; i < std::min(got.size(), expected.size()); ++i) {
    if (got[i] != expected[i]) {
      INFO("first difference at line " << i);
      CHECK(got[i] == expected[i]);
      return;
    }
  }
}

void check_same_answers(const Answers& got, const Answers& expected) {
  check_lines("events", got.events, expected.events);
  check_lines("get and read", got.by_id, expected.by_id);
  check_lines("entity streams", got.streams, expected.streams);
  check_lines("query pages", got.pages, expected.pages);
  check_lines("causal answers", got.causal, expected.causal);
  check_lines("counts", got.counts, expected.counts);
}

// The answers of the same log recovered in full: `store_directory` copied without INDEX into
// `scratch` (which must not exist), opened there, checked to have read the whole log.
Answers rebuilt_answers(platform::FileSystem& fs, const std::string& store_directory,
                        const std::string& scratch, uint64_t segment_size = 8192) {
  copy_store(fs, store_directory, scratch, /*with_image=*/false);
  auto store = open_store(scratch, options_on(&fs, segment_size));
  StoreStats stats = store->stats();
  CHECK(stats.index_source == "log");
  CHECK(stats.records_replayed > 0);
  Answers answers = answers_of(*store);
  KEEL_REQUIRE_OK(store->close());
  return answers;
}

void check_verifies(Store& store) {
  auto report = store.verify();
  KEEL_REQUIRE_OK(report);
  INFO(report->problem);
  CHECK(report->ok);
}

// ---- indexes built independently of the store (for the codec's unit tests) ----

// The index an open builds without an image: every kept record in log order, a fence's events
// held until its end record (committed: added; cancelled or still open: hidden). Events above
// `up_to` are left out. Also returns every event's chained hash by sequence.
struct Replayed {
  index::EventIndex index;
  std::map<uint64_t, Hash128> hashes;
  uint64_t segments = 0;
  uint64_t last_frame_offset = 0;  // of the last record holding an event
};

Replayed replay_log(platform::FileSystem& fs, const std::string& directory,
                    uint64_t up_to = UINT64_MAX) {
  struct Pending {
    uint64_t sequence;
    index::EventLocation location;
    index::EventFacts facts;
    std::string entity;
    std::string scope;
    uint32_t lane;
  };
  Replayed out;
  std::vector<Pending> fenced;
  std::string failure;
  auto add = [&](const Pending& p, bool hidden) {
    if (p.sequence > up_to) return;
    if (hidden) return out.index.add_hidden(p.sequence);
    index::EventFacts facts = p.facts;
    facts.scope = p.scope;
    if (const char* problem =
            out.index.add(p.sequence, p.location, facts, out.index.stream_for(p.entity, p.lane))) {
      failure = problem;
    }
  };
  auto visit = [&](const log::RecordPosition& at, const format::DecodedFrame& frame) {
    using format::RecordType;
    out.segments = std::max(out.segments, at.segment_id);
    if (frame.header.type == RecordType::FenceCommit ||
        frame.header.type == RecordType::FenceCancel) {
      for (const Pending& p : fenced) add(p, frame.header.type == RecordType::FenceCancel);
      fenced.clear();
      return;
    }
    if (format::is_system_record(frame.header.type)) return;
    out.last_frame_offset = at.offset;
    const char* error =
        format::decode_record_events(frame, [&](uint32_t i, const format::EventBody& e) {
          Pending p{frame.header.sequence + i,
                    index::EventLocation{static_cast<uint32_t>(at.segment_id),
                                         static_cast<uint32_t>(at.offset)},
                    index::facts_of(e),
                    std::string(e.entity),
                    std::string(e.scope),
                    e.lane};
          out.hashes[p.sequence] = e.chained_hash;
          if (e.fence_id) {
            fenced.push_back(std::move(p));
          } else {
            add(p, false);
          }
        });
    if (error != nullptr) failure = error;
  };
  log::LogOptions options;
  options.read_only = true;
  auto opened = log::Log::open(fs, directory, options, visit);
  if (!opened.ok()) FAIL(opened.error().to_string());
  for (const Pending& p : fenced) add(p, true);
  if (!failure.empty()) FAIL(failure);
  return out;
}

// Everything an index answers, one line per sequence, stream and correlation.
std::vector<std::string> dump(const index::EventIndex& x) {
  std::vector<std::string> lines;
  std::ostringstream head;
  head << "next " << x.next_sequence() << " events " << x.event_count() << " streams "
       << x.stream_count() << " last visible " << x.last_visible_sequence() << " hlc monotonic "
       << x.hlc_monotonic() << " lanes";
  for (uint32_t lane : x.lanes()) head << " " << lane;
  lines.push_back(head.str());
  std::set<std::string> correlations;
  for (uint64_t s = 1; s < x.next_sequence(); ++s) {
    std::ostringstream line;
    line << s;
    if (!x.visible_in_index(s)) {
      line << " hidden locate=" << x.locate(s).has_value();
      lines.push_back(line.str());
      continue;
    }
    index::EventLocation at = *x.locate(s);
    const index::EntityStream& stream = x.stream_at(s);
    Hlc hlc = x.hlc_at(s);
    std::optional<uint64_t> found = x.find(x.id_at(s));
    line << " at " << at.segment_id << ":" << at.frame_offset << " id " << x.id_at(s).to_hex()
         << " find " << (found ? *found : 0) << " kind " << x.kind_at(s) << " scope "
         << x.scope_name(x.scope_number_at(s)) << " stream " << stream.entity << "@" << stream.lane
         << "#" << stream.clock_of(s) << " hlc " << hlc.wall_ms << "." << hlc.logical << " cause "
         << x.cause_of(s) << " external " << hex(x.external_cause_of(s)) << " newest effect "
         << x.newest_effect_of(s) << " older sibling " << x.older_sibling_of(s)
         << " previous of correlation " << x.previous_of_correlation(s) << " own correlation "
         << x.correlation_is_own_id(s);
    lines.push_back(line.str());
    correlations.insert(x.id_at(s).to_hex());
    if (auto external = x.external_cause_of(s)) correlations.insert(external->to_hex());
  }
  for (const index::EntityStream* s : x.streams_with_prefix("")) {
    std::ostringstream line;
    line << "stream " << s->entity << "@" << s->lane << " head " << s->head_hash.to_hex() << ":";
    for (uint64_t sequence : s->sequences) line << " " << sequence;
    lines.push_back(line.str());
  }
  for (const std::string& id : correlations) {
    lines.push_back("correlation " + id + " newest " +
                    std::to_string(x.newest_of_correlation(*EventId::from_hex(id))));
  }
  return lines;
}

Hash128 no_hash(uint64_t sequence) {
  FAIL("encode_image asked for the hash of sequence " << sequence << " of a whole index");
  return Hash128{};
}

index::ImageCheckpoint checkpoint_for(const Replayed& r) {
  uint64_t n = r.index.next_sequence() - 1;
  return index::ImageCheckpoint{n + 1, 3, r.segments, r.last_frame_offset + 64,
                                r.last_frame_offset};
}

// Decodes `bytes`, requiring Ok.
index::EventIndex decode_ok(const Bytes& bytes, index::ImageCheckpoint* checkpoint = nullptr) {
  index::EventIndex decoded;
  index::ImageCheckpoint cp;
  std::string reason;
  index::ImageDecode result = index::decode_image(bytes, decoded, cp, reason);
  INFO(reason);
  REQUIRE(result == index::ImageDecode::Ok);
  if (checkpoint != nullptr) *checkpoint = cp;
  return decoded;
}

// A store of the workload in memory: `count` events, closed (INDEX written).
void build_store(platform::FileSystem& fs, const std::string& directory, int count,
                 uint64_t segment_size = 8192, char tag = 'A') {
  auto store = open_store(directory, options_on(&fs, segment_size));
  Workload workload(tag);
  workload.append(*store, count);
  KEEL_REQUIRE_OK(store->close());
}

}  // namespace

// ---- 1. a clean reopen uses the image ----

TEST_CASE(
    "a clean reopen restores the indexes from the image, replays no record, and answers as a "
    "full recovery of the log does",
    "[image]") {
  TempDir root;
  platform::FileSystem& fs = platform::posix_file_system();
  const std::string dir = root / "store";
  Answers live;
  {
    auto store = open_store(dir, options_on(nullptr));
    Workload workload('A');
    workload.append(*store, 160);
    CHECK(store->stats().segments > 2);  // the image covers sealed segments and the active one
    live = answers_of(*store);
    KEEL_REQUIRE_OK(store->close());
  }
  REQUIRE(exists(fs, dir + "/" + kImageName));
  CHECK_FALSE(exists(fs, dir + "/" + kImageName + format::kTempSuffix));

  Answers from_image;
  {
    auto store = open_store(dir, options_on(nullptr));
    StoreStats stats = store->stats();
    CHECK(stats.index_source == "image");
    CHECK(stats.records_replayed == 0);
    from_image = answers_of(*store);
    check_verifies(*store);
    KEEL_REQUIRE_OK(store->close());
  }
  check_same_answers(from_image, live);
  check_same_answers(from_image, rebuilt_answers(fs, dir, root / "rebuild"));

  // A read-only open uses the image too, and writes nothing; beside a live writer as well (it then
  // shows the image's durable point, and what the growing segment's frames vouch for after it).
  StoreOptions read_only = options_on(nullptr);
  read_only.create_if_missing = false;
  read_only.read_only = true;
  {
    auto before = test::snapshot_directory(dir);
    auto store = open_store(dir, read_only);
    CHECK(store->stats().index_source == "image");
    CHECK(store->stats().records_replayed == 0);
    check_same_answers(answers_of(*store), live);
    store.reset();
    CHECK(test::snapshot_directory(dir) == before);
  }
  {
    auto writer = open_store(dir, options_on(nullptr));
    auto store = open_store(dir, read_only);
    CHECK(store->stats().index_source == "image");
    CHECK(store->stats().records_replayed == 0);
    CHECK(store->stats().events == 160);  // the image's point was durable
    store.reset();
    KEEL_REQUIRE_OK(writer->close());
  }

  // The same store without its image: every record is replayed, the answers are the same.
  KEEL_REQUIRE_OK(fs.remove(dir + "/" + kImageName));
  auto store = open_store(dir, options_on(nullptr));
  StoreStats stats = store->stats();
  CHECK(stats.index_source == "log");
  CHECK(stats.records_replayed > 0);
  check_same_answers(answers_of(*store), from_image);
}

TEST_CASE("appends after an image-backed open continue every stream's clock and hash chain",
          "[image]") {
  platform::MemoryFileSystem fs;
  build_store(fs, "/store", 90, 4096);
  auto store = open_store("/store", options_on(&fs, 4096));
  REQUIRE(store->stats().index_source == "image");
  // Heads before the new appends, from the image.
  std::map<std::pair<std::string, uint32_t>, Event> heads;
  auto before = store->scan_events(1, UINT64_MAX);
  KEEL_REQUIRE_OK(before);
  for (const Event& e : *before) heads[{e.coordinate.entity, e.lane}] = e;
  uint64_t next_sequence = store->stats().sequence_next;

  Workload more('B');
  std::vector<Receipt> receipts = more.append(*store, 40);
  for (const Receipt& r : receipts) {
    auto event = store->read(r.sequence);
    KEEL_REQUIRE_OK(event);
    INFO("sequence " << r.sequence << " " << event->coordinate.entity << "@" << event->lane);
    CHECK(r.sequence == next_sequence++);
    auto head = heads.find({event->coordinate.entity, event->lane});
    if (head == heads.end()) {
      CHECK(r.entity_clock == 1);
      CHECK_FALSE(event->prev_hash.has_value());
    } else {
      CHECK(r.entity_clock == head->second.entity_clock + 1);
      CHECK(event->prev_hash == std::optional<Hash128>(head->second.chained_hash));
    }
    heads[{event->coordinate.entity, event->lane}] = *event;
  }
  check_verifies(*store);
  Answers answers = answers_of(*store);
  KEEL_REQUIRE_OK(store->close());
  check_same_answers(answers, rebuilt_answers(fs, "/store", "/rebuild", 4096));
}

// ---- 2. the log after the image is recovered after a crash ----

TEST_CASE(
    "a clean close does not wait for the disk to hold its index image: a power loss right after "
    "it costs a replay of the log, never an event, and the open that uses the image has it made "
    "durable",
    "[image]") {
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    INFO("crash seed " << seed);
    platform::FaultFileSystem fs;
    const std::string dir = "/closed";
    Workload workload('A');
    std::vector<Receipt> receipts;
    {
      auto store = open_store(dir, options_on(&fs, 4096));
      receipts = workload.append(*store, 40);
      KEEL_REQUIRE_OK(store->close());
    }
    const Bytes image = fs.contents(dir + "/" + kImageName);
    REQUIRE_FALSE(image.empty());
    // The image was handed to the kernel, not waited for: the disk does not hold it yet.
    CHECK_FALSE(fs.durable_contents(dir + "/" + kImageName).has_value());
    fs.crash(seed);
    {
      auto store = open_store(dir, options_on(&fs, 4096));
      CHECK(store->stats().index_source != "image");  // the log was replayed instead
      CHECK(store->stats().events == receipts.size());
      for (const Receipt& r : receipts) {
        auto event = store->read(r.sequence);
        KEEL_REQUIRE_OK(event);
        CHECK(event->receipt() == r);
      }
      check_verifies(*store);
      KEEL_REQUIRE_OK(store->close());
    }
    auto store = open_store(dir, options_on(&fs, 4096));
    CHECK(store->stats().index_source == "image");
    StoreInternals::wait_for_restored_image_sync(*store);
    CHECK(fs.durable_contents(dir + "/" + kImageName) == std::optional<Bytes>(image));
  }
}

TEST_CASE(
    "events appended after an image-backed open are recovered from the log tail after a "
    "power loss, and only unsynced ones are dropped",
    "[image]") {
  for (bool torn_tail : {false, true}) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      INFO((torn_tail ? "unsynced appends before the crash" : "every append durable")
           << ", crash seed " << seed);
      platform::FaultFileSystem fs;
      const std::string dir = "/crash";
      Workload workload('A');
      std::map<uint64_t, Receipt> durable;
      std::map<uint64_t, Receipt> weak;  // Written / Accepted: void if lost
      {
        auto store = open_store(dir, options_on(&fs, 4096));
        for (const Receipt& r : workload.append(*store, 40)) durable[r.sequence] = r;
        KEEL_REQUIRE_OK(store->close());
      }
      const Bytes image = fs.contents(dir + "/" + kImageName);
      REQUIRE_FALSE(image.empty());
      {
        auto store = open_store(dir, options_on(&fs, 4096));
        REQUIRE(store->stats().index_source == "image");
        StoreInternals::wait_for_restored_image_sync(*store);  // the image thread syncs it
        for (const Receipt& r : workload.append(*store, 60)) durable[r.sequence] = r;
        CHECK(store->stats().segments > 2);  // rotations after the image's resume segment
        if (torn_tail) {
          for (const Receipt& r : workload.append(*store, 10, Durability::Written))
            weak[r.sequence] = r;
          for (const Receipt& r : workload.append(*store, 5, Durability::Accepted))
            weak[r.sequence] = r;
        }
        fs.crash(seed);
      }  // the store dies with the old mount: its close fails, it writes no image
      CHECK(fs.contents(dir + "/" + kImageName) == image);

      auto store = open_store(dir, options_on(&fs, 4096));
      StoreStats stats = store->stats();
      CHECK(stats.index_source == "image");
      CHECK(stats.records_replayed > 0);
      for (const auto& [sequence, receipt] : durable) {
        INFO("acknowledged durable: sequence " << sequence);
        auto event = store->read(sequence);
        KEEL_REQUIRE_OK(event);
        CHECK(event->receipt() == receipt);
      }
      auto events = store->scan_events(1, UINT64_MAX);
      KEEL_REQUIRE_OK(events);
      uint64_t weak_kept = 0;
      for (const Event& e : *events) {
        INFO("recovered sequence " << e.sequence);
        if (durable.count(e.sequence) != 0) continue;
        auto it = weak.find(e.sequence);
        REQUIRE(it != weak.end());  // nothing but what was appended
        CHECK(e.receipt() == it->second);
        ++weak_kept;
      }
      CHECK(stats.events == durable.size() + weak_kept);
      if (!torn_tail) CHECK(stats.events == durable.size());
      check_verifies(*store);
      Answers answers = answers_of(*store);
      KEEL_REQUIRE_OK(store->close());
      check_same_answers(answers, rebuilt_answers(fs, dir, "/rebuild", 4096));
    }
  }
}

// ---- 3. a damaged image ----

TEST_CASE(
    "a damaged image is rebuilt from the log, the reason is reported, and the next close "
    "writes an image the reopen after it uses",
    "[image]") {
  platform::MemoryFileSystem fs;
  const std::string dir = "/store";
  const std::string path = dir + "/" + kImageName;
  build_store(fs, dir, 80, 4096);
  const Answers expected = rebuilt_answers(fs, dir, "/rebuild", 4096);

  struct Damage {
    const char* name;
    std::function<void(Bytes&)> apply;
    const char* reason;
  };
  const std::vector<Damage> damages = {
      {"a flipped byte in the body",
       [](Bytes& b) { b[64 + (b.size() - 64) / 2] ^= std::byte{0xff}; }, "checksum mismatch"},
      {"a flipped byte in the first section", [](Bytes& b) { b[64] ^= std::byte{0x01}; },
       "checksum mismatch"},
      {"a flipped checksum", [](Bytes& b) { b[8] ^= std::byte{0x80}; }, "checksum mismatch"},
      {"truncated to half", [](Bytes& b) { b.resize(b.size() / 2); },
       "body length does not match the file size"},
      {"one byte missing", [](Bytes& b) { b.pop_back(); },
       "body length does not match the file size"},
      {"a header only", [](Bytes& b) { b.resize(64); }, "body length does not match the file size"},
      {"shorter than its header", [](Bytes& b) { b.resize(40); }, "shorter than its header"},
      {"empty", [](Bytes& b) { b.clear(); }, "shorter than its header"},
      {"a zeroed header", [](Bytes& b) { std::fill(b.begin(), b.begin() + 64, std::byte{0}); },
       "bad magic"},
      {"a non-zero reserved header byte (checksum made right)",
       [](Bytes& b) {
         b[40] = std::byte{1};
         store_checksum(b);
       },
       "reserved header bytes are not zero"},
      {"a body that contradicts itself (checksum made right)",
       [](Bytes& b) {
         // next_sequence one above the event count n that follows the checkpoint.
         format::store_u64(b.data() + 64, format::load_u64(b.data() + 64) + 1);
         store_checksum(b);
       },
       "the event count does not match next_sequence"},
  };
  for (const Damage& damage : damages) {
    INFO(damage.name);
    Bytes bytes = fs.contents(path);
    damage.apply(bytes);
    fs.set_contents(path, bytes);
    {
      auto store = open_store(dir, options_on(&fs, 4096));
      StoreStats stats = store->stats();
      CHECK(stats.index_source == kImagePrefix + damage.reason + ")");
      CHECK(stats.records_replayed > 0);
      check_same_answers(answers_of(*store), expected);
      KEEL_REQUIRE_OK(store->close());
    }
    CHECK(fs.contents(path) != bytes);  // a fresh image replaced the damaged one
    auto store = open_store(dir, options_on(&fs, 4096));
    CHECK(store->stats().index_source == "image");
    CHECK(store->stats().records_replayed == 0);
    check_same_answers(answers_of(*store), expected);
    KEEL_REQUIRE_OK(store->close());
  }
}

// ---- 4. a newer image version ----

TEST_CASE(
    "an image of a newer version fails the open as UnsupportedVersion, FailClosed, and "
    "leaves every file byte-identical",
    "[image]") {
  TempDir root;
  platform::FileSystem& fs = platform::posix_file_system();
  const std::string dir = root / "store";
  build_store(fs, dir, 40);
  const std::string path = dir + "/" + kImageName;
  for (uint32_t version : {index::kImageVersion + 1, uint32_t{0xffffffff}}) {
    INFO("version " << version);
    Bytes bytes = read_file(fs, path);
    format::store_u32(bytes.data() + 16, version);
    store_checksum(bytes);
    write_file(fs, path, bytes);
    auto before = test::snapshot_directory(dir);

    auto opened = Store::open(dir, options_on(nullptr));
    REQUIRE_FALSE(opened.ok());
    INFO(opened.error().to_string());
    CHECK(opened.error().is(ErrorCode::UnsupportedVersion));
    CHECK(opened.error().error_class() == ErrorClass::FailClosed);
    CHECK(opened.error().to_string().find(kImageName) != std::string::npos);
    CHECK(test::snapshot_directory(dir) == before);

    // A read-only open reads the image as well, and refuses it the same way.
    StoreOptions read_only = options_on(nullptr);
    read_only.create_if_missing = false;
    read_only.read_only = true;
    auto reader = Store::open(dir, read_only);
    REQUIRE_FALSE(reader.ok());
    CHECK(reader.error().is(ErrorCode::UnsupportedVersion));
    CHECK(reader.error().error_class() == ErrorClass::FailClosed);
    CHECK(test::snapshot_directory(dir) == before);
  }
}

// ---- 5. an older image version ----

TEST_CASE("an image of an older version is rebuilt from the log and replaced at the next close",
          "[image]") {
  platform::MemoryFileSystem fs;
  const std::string dir = "/store";
  const std::string path = dir + "/" + kImageName;
  build_store(fs, dir, 60, 4096);
  const Answers expected = rebuilt_answers(fs, dir, "/rebuild", 4096);
  Bytes bytes = fs.contents(path);
  format::store_u32(bytes.data() + 16, 0);
  store_checksum(bytes);
  fs.set_contents(path, bytes);
  {
    auto store = open_store(dir, options_on(&fs, 4096));
    CHECK(store->stats().index_source == kImagePrefix + "version 0 is older than " +
                                             std::to_string(index::kOldestImageVersion) + ")");
    CHECK(store->stats().records_replayed > 0);
    check_same_answers(answers_of(*store), expected);
    KEEL_REQUIRE_OK(store->close());
  }
  CHECK(format::load_u32(fs.contents(path).data() + 16) == index::kImageVersion);
  auto store = open_store(dir, options_on(&fs, 4096));
  CHECK(store->stats().index_source == "image");
  check_same_answers(answers_of(*store), expected);
}

TEST_CASE(
    "older images are still read: version 1 (link columns always there, streams' sequences "
    "listed) and version 2 (fixed-width columns) decode to the index of their log, the open uses "
    "them, and they re-encode as the current version",
    "[image]") {
  // segments/golden/index-v<N>: the golden store after a writable open and close by the last
  // build that wrote version N (causes, a correlation chain and a cancelled fence's hidden slots).
  for (uint32_t version : {1u, 2u}) {
    CAPTURE(version);
    TempDir root;
    platform::FileSystem& fs = platform::posix_file_system();
    const std::string dir = root / "store";
    std::filesystem::copy(KEEL_SOURCE_DIR "/segments/golden/index-v" + std::to_string(version),
                          dir);
    const Bytes old = read_file(fs, dir + "/" + kImageName);
    REQUIRE(format::load_u32(old.data() + 16) == version);
    index::ImageCheckpoint cp;
    const index::EventIndex decoded = decode_ok(old, &cp);
    check_lines("old image", dump(decoded), dump(replay_log(fs, dir).index));
    const Bytes current = encode_image(decoded, cp, no_hash);
    CHECK(format::load_u32(current.data() + 16) == index::kImageVersion);
    CHECK(current.size() < old.size());
    check_lines("current image", dump(decode_ok(current)), dump(decoded));

    const Answers expected = rebuilt_answers(fs, dir, root / "rebuild", 4096);
    auto store = open_store(dir, options_on(nullptr, 4096));
    CHECK(store->stats().index_source == "image");
    CHECK(store->stats().records_replayed == 0);
    check_same_answers(answers_of(*store), expected);
    check_verifies(*store);
  }
}

// ---- 6. an image from a lost epoch ----

TEST_CASE(
    "an image ahead of the log (the log of its epoch lost) fails the open closed, accepting the "
    "loss shows only what the log holds",
    "[image]") {
  platform::MemoryFileSystem fs;
  const std::string dir = "/store";
  build_store(fs, dir, 50, 4096);
  const Answers at_n = rebuilt_answers(fs, dir, "/rebuild-n", 4096);
  const std::map<std::string, Bytes> saved = files_of(fs, dir);
  {
    auto store = open_store(dir, options_on(&fs, 4096));
    REQUIRE(store->stats().index_source == "image");
    Workload more('M');
    more.append(*store, 45);
    KEEL_REQUIRE_OK(store->close());  // the image now covers 95 events
  }
  // The segments and EPOCH of the 50-event store come back; the newer INDEX stays.
  for (const auto& [name, bytes] : files_of(fs, dir)) {
    if (log::parse_segment_file_name(name) && saved.count(name) == 0) {
      KEEL_REQUIRE_OK(fs.remove(dir + "/" + name));
    }
  }
  for (const auto& [name, bytes] : saved) {
    if (name != kImageName) fs.set_contents(dir + "/" + name, bytes);
  }
  REQUIRE(fs.contents(dir + "/" + kImageName) != saved.at(kImageName));

  // The image was cut at durable sequence 95: the log lost durable events, and sequences 51 to
  // 95 must not be issued again without the operator's word (row DurableEndNotReached).
  auto refused = Store::open(dir, options_on(&fs, 4096));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().is(ErrorCode::DurableDataLost));
  CHECK(refused.error().field_u64("referenced") == 95u);
  CHECK(refused.error().field_u64("recovered") == 50u);
  CHECK(refused.error().field_string("reference") == dir + "/" + kImageName);

  StoreOptions accept = options_on(&fs, 4096);
  accept.accept_data_loss = true;
  auto store = open_store(dir, accept);
  StoreStats stats = store->stats();
  INFO(stats.index_source);
  CHECK(stats.records_replayed > 0);
  CHECK(stats.events == 50);
  CHECK(stats.data_losses.size() == 1);
  CHECK_FALSE(fs.exists(dir + "/" + kImageName).value());  // the image above the log is gone
  check_same_answers(answers_of(*store), at_n);
  check_verifies(*store);
}

// ---- 7. another log's image ----

TEST_CASE("an image that disagrees with the log on the chained hash of its last event is not used",
          "[image]") {
  // Same shape, same ids and HLCs (a ManualClock and one id seed), same frame sizes and offsets;
  // only the payloads differ, so only the chained hashes tell the logs apart.
  platform::MemoryFileSystem fs;
  for (const auto& [dir, tag] : {std::pair<std::string, char>{"/a", 'A'}, {"/b", 'B'}}) {
    platform::ManualClock clock(1'700'000'000'000ull);
    StoreOptions options = options_on(&fs, 4096);
    options.clock = &clock;
    auto store = open_store(dir, options);
    Workload workload(tag, &clock);
    workload.append(*store, 70);
    KEEL_REQUIRE_OK(store->close());
  }
  const Answers own = rebuilt_answers(fs, "/a", "/rebuild", 4096);
  fs.set_contents("/a/" + kImageName, fs.contents("/b/" + kImageName));

  auto store = open_store("/a", options_on(&fs, 4096));
  StoreStats stats = store->stats();
  INFO(stats.index_source);
  CHECK(starts_with(stats.index_source,
                    kImagePrefix + "it disagrees with the log on the chained hash"));
  CHECK(stats.records_replayed > 0);
  check_same_answers(answers_of(*store), own);
  for (const std::string& line : answers_of(*store).events) {
    CHECK(line.find(" payload=A-") != std::string::npos);
  }
  // Had B's stream heads been taken, the next events would chain to hashes A's log never held.
  Workload more('C');
  more.append(*store, 20);
  check_verifies(*store);
}

// ---- 8. resuming from an older image, and checkpoints the log does not match ----

TEST_CASE(
    "an older image of the same log is used and the log after its resume point is replayed, "
    "mid-segment or across later segments",
    "[image]") {
  for (uint64_t segment_size : {uint64_t{1} << 16, uint64_t{4096}}) {
    INFO("segment size " << segment_size);
    platform::MemoryFileSystem fs;
    const std::string dir = "/store";
    build_store(fs, dir, 30, segment_size);
    const Bytes older = fs.contents(dir + "/" + kImageName);
    index::ImageCheckpoint cp;
    decode_ok(older, &cp);
    const uint64_t segment_bytes =
        fs.contents(dir + "/" + log::segment_file_name(cp.resume_segment_id)).size();
    REQUIRE(cp.last_record_offset != 0);
    REQUIRE(cp.resume_offset == segment_bytes);  // a clean close trims after the last record
    int appended_records = 0;
    {
      auto store = open_store(dir, options_on(&fs, segment_size));
      REQUIRE(store->stats().index_source == "image");
      // Single appends: one record each.
      for (int i = 0; i < (segment_size == 4096 ? 60 : 7); ++i) {
        KEEL_REQUIRE_OK(store->append({"order:" + std::to_string(i % 4), "late"},
                                      EventKind::make(4, 1), "late-" + std::to_string(i)));
        ++appended_records;
      }
      if (segment_size == 4096) {
        CHECK(store->stats().segments > cp.resume_segment_id);
      } else {
        CHECK(store->stats().segments == cp.resume_segment_id);  // the same segment goes on
      }
      KEEL_REQUIRE_OK(store->close());
    }
    const Answers expected = rebuilt_answers(fs, dir, "/rebuild", segment_size);
    fs.set_contents(dir + "/" + kImageName, older);

    auto store = open_store(dir, options_on(&fs, segment_size));
    StoreStats stats = store->stats();
    CHECK(stats.index_source == "image");
    // The appended records, plus the Seal of each segment rotated after the resume point.
    const uint64_t seals = stats.segments - cp.resume_segment_id;
    CHECK(stats.records_replayed == appended_records + seals);
    check_same_answers(answers_of(*store), expected);
    check_verifies(*store);
  }
}

TEST_CASE(
    "an image whose checkpoint does not match the log is rejected by recovery, which then "
    "recovers the whole log",
    "[image]") {
  // The image's columns still match the log (its last event is where it says, with its hash), so
  // restore_image accepts it; the checkpoint (body bytes [0, 40)) is what recovery checks. A real
  // log whose record before the resume point is gone while the image's last event stays cannot be
  // made with the public API (the last covered record is always that event's), so the checkpoint
  // fields are edited, the checksum made right again.
  platform::MemoryFileSystem fs;
  const std::string dir = "/store";
  build_store(fs, dir, 60, 4096);
  const Answers expected = rebuilt_answers(fs, dir, "/rebuild", 4096);
  const Bytes image = fs.contents(dir + "/" + kImageName);
  index::ImageCheckpoint cp;
  decode_ok(image, &cp);
  REQUIRE(cp.resume_segment_id > 1);

  struct Edit {
    const char* name;
    size_t field;  // byte offset of the u64 in the body
    uint64_t value;
    std::string reason;  // what follows "the log does not match it: "
  };
  const std::vector<Edit> edits = {
      {"resume offset past the segment's end", 24, cp.resume_offset + 8,
       "its resume point is outside segment " + std::to_string(cp.resume_segment_id)},
      {"resume offset 8 bytes earlier", 24, cp.resume_offset - 8,
       "the record before its resume point is not there"},
      {"last record offset inside the record", 32, cp.last_record_offset + 8,
       "the record before its resume point is not there"},
      {"no record before the resume point", 32, 0, "it names no record where the segment has some"},
      {"a resume segment the log does not have", 16, 99,
       "it resumes in segment 99 and the log has " + std::to_string(cp.resume_segment_id)},
      {"an earlier resume segment", 16, cp.resume_segment_id - 1, ""},
      {"an epoch later than the epoch file", 8, cp.epoch + 1'000'000,
       "its epoch is later than the epoch file"},
  };
  for (const Edit& edit : edits) {
    INFO(edit.name);
    Bytes bytes = image;
    format::store_u64(bytes.data() + 64 + edit.field, edit.value);
    store_checksum(bytes);
    fs.set_contents(dir + "/" + kImageName, bytes);
    auto store = open_store(dir, options_on(&fs, 4096));
    StoreStats stats = store->stats();
    INFO(stats.index_source);
    CHECK(starts_with(stats.index_source,
                      kImagePrefix + "the log does not match it: " + edit.reason));
    CHECK(stats.records_replayed > 60 / 3);  // every record: at least one per batch
    check_same_answers(answers_of(*store), expected);
    KEEL_REQUIRE_OK(store->close());
  }
}

// ---- 9. a poisoned writer writes no image ----

TEST_CASE(
    "a poisoned writer's close fails and writes no image: the previous one stays byte for "
    "byte, and the reopen uses it",
    "[image]") {
  struct Poison {
    const char* name;
    bool earlier_image;
    std::function<void(platform::FaultFileSystem&, Store&, Workload&)> run;
  };
  const std::vector<Poison> poisons = {
      {"EIO on an append's fdatasync", true,
       [](platform::FaultFileSystem& fs, Store& store, Workload& w) {
         fs.fail_nth(platform::FaultOp::SyncData, 1);
         Status failed;
         CHECK(w.append(store, 1, Durability::Durable, &failed).empty());
         CHECK(failed.error().error_class() == ErrorClass::Indeterminate);
         CHECK(store.frontier().poisoned);
       }},
      {"EIO on close's fdatasync", true,
       [](platform::FaultFileSystem& fs, Store& store, Workload& w) {
         w.append(store, 4, Durability::Written);
         fs.fail_nth(platform::FaultOp::SyncData, 1);
       }},
      {"EIO on an append's fdatasync, no image yet", false,
       [](platform::FaultFileSystem& fs, Store& store, Workload& w) {
         fs.fail_nth(platform::FaultOp::SyncData, 1);
         Status failed;
         CHECK(w.append(store, 1, Durability::Durable, &failed).empty());
         CHECK(store.frontier().poisoned);
       }},
  };
  for (const Poison& poison : poisons) {
    for (bool power_loss : {false, true}) {
      INFO(poison.name << (power_loss ? ", then a power loss" : ", reopened in the same process"));
      platform::FaultFileSystem fs;
      const std::string dir = "/poison";
      const std::string path = dir + "/" + kImageName;
      Workload workload('A');
      if (poison.earlier_image) {
        auto store = open_store(dir, options_on(&fs, 4096));
        workload.append(*store, 30);
        KEEL_REQUIRE_OK(store->close());
      }
      const std::optional<Bytes> image =
          poison.earlier_image ? std::optional<Bytes>(fs.contents(path)) : std::nullopt;
      {
        auto store = open_store(dir, options_on(&fs, 4096));
        workload.append(*store, 20);
        poison.run(fs, *store, workload);
        Status closed = store->close();
        CHECK_FALSE(closed.ok());
      }
      if (image) {
        CHECK(fs.contents(path) == *image);
      } else {
        CHECK_FALSE(exists(fs, path));
      }
      CHECK_FALSE(exists(fs, path + format::kTempSuffix));
      fs.clear_faults();
      if (power_loss) fs.crash(7);

      auto store = open_store(dir, options_on(&fs, 4096));
      StoreStats stats = store->stats();
      CHECK(stats.index_source == (image ? "image" : "log"));
      CHECK(stats.events == (poison.earlier_image ? 50u : 20u));  // in-doubt events are absent
      check_verifies(*store);
      Answers answers = answers_of(*store);
      KEEL_REQUIRE_OK(store->close());
      check_same_answers(answers, rebuilt_answers(fs, dir, "/rebuild", 4096));
    }
  }
}

// ---- the codec ----

TEST_CASE(
    "encode_image then decode_image restores an index equal to the one encoded, hidden "
    "events, foreign causes and correlations included",
    "[image]") {
  platform::MemoryFileSystem fs;
  build_store(fs, "/store", 120, 4096);
  KEEL_REQUIRE_OK(tools::write_golden_store(fs, "/golden"));  // fences: hidden events
  for (const std::string dir : {"/store", "/golden"}) {
    INFO(dir);
    Replayed replayed = replay_log(fs, dir);
    REQUIRE(replayed.index.event_count() > 0);
    const index::ImageCheckpoint cp = checkpoint_for(replayed);
    Bytes bytes = encode_image(replayed.index, cp, no_hash);
    index::ImageCheckpoint decoded_cp;
    index::EventIndex decoded = decode_ok(bytes, &decoded_cp);
    CHECK(decoded_cp == cp);
    check_lines("index", dump(decoded), dump(replayed.index));
    // A second round trip gives the same bytes: nothing is lost or invented by decoding.
    CHECK(encode_image(decoded, cp, no_hash) == bytes);
  }
  Replayed golden = replay_log(fs, "/golden");
  CHECK(golden.index.event_count() + 1 < golden.index.next_sequence());  // some hidden

  // The image a store wrote at close is the index of its log.
  Replayed replayed = replay_log(fs, "/store");
  index::ImageCheckpoint cp;
  index::EventIndex from_store = decode_ok(fs.contents("/store/" + kImageName), &cp);
  CHECK(cp.next_sequence == replayed.index.next_sequence());
  CHECK(cp.resume_segment_id == replayed.segments);
  CHECK(cp.last_record_offset == replayed.last_frame_offset);
  check_lines("index written by the store", dump(from_store), dump(replayed.index));
}

TEST_CASE("an image cut at sequence k equals the index of the log's first k events", "[image]") {
  platform::MemoryFileSystem fs;
  build_store(fs, "/store", 70, 4096);
  Replayed whole = replay_log(fs, "/store");
  const uint64_t n = whole.index.next_sequence() - 1;
  REQUIRE(n == 70);
  auto hash_at = [&](uint64_t sequence) { return whole.hashes.at(sequence); };
  for (uint64_t k = 1; k <= n; ++k) {
    INFO("cut at " << k);
    Replayed prefix = replay_log(fs, "/store", k);
    REQUIRE(prefix.index.next_sequence() == k + 1);
    index::ImageCheckpoint cp{k + 1, 1, 1, 64, 0};
    Bytes bytes = encode_image(whole.index, cp, hash_at);
    check_lines("cut index", dump(decode_ok(bytes)), dump(prefix.index));
  }
}

TEST_CASE(
    "every truncation and every flipped byte of a valid image decodes as damage, never Ok "
    "and never a crash",
    "[image]") {
  platform::MemoryFileSystem fs;
  build_store(fs, "/store", 12);
  const Bytes image = fs.contents("/store/" + kImageName);
  REQUIRE(image.size() > 64);
  decode_ok(image);
  for (size_t size = 0; size < image.size(); ++size) {
    index::EventIndex x;
    index::ImageCheckpoint cp;
    std::string reason;
    Bytes prefix(image.begin(), image.begin() + static_cast<ptrdiff_t>(size));
    INFO("prefix of " << size << " bytes");
    CHECK(index::decode_image(prefix, x, cp, reason) == index::ImageDecode::Damaged);
    CHECK_FALSE(reason.empty());
  }
  // Also every truncation of the body under a header made right (length and checksum): the
  // section decoder itself must find the end of its input.
  for (size_t size = 64; size < image.size(); ++size) {
    Bytes prefix(image.begin(), image.begin() + static_cast<ptrdiff_t>(size));
    format::store_u64(prefix.data() + 24, size - 64);
    store_checksum(prefix);
    index::EventIndex x;
    index::ImageCheckpoint cp;
    std::string reason;
    INFO("body of " << size - 64 << " bytes under a valid header");
    CHECK(index::decode_image(prefix, x, cp, reason) == index::ImageDecode::Damaged);
  }
  for (size_t at = 0; at < image.size(); ++at) {
    Bytes flipped = image;
    flipped[at] ^= std::byte{0x01};
    index::EventIndex x;
    index::ImageCheckpoint cp;
    std::string reason;
    INFO("flipped byte " << at);
    // The checksum is checked before the version is believed: a flipped version bit is damage,
    // not a newer (or older) build's image.
    CHECK(index::decode_image(flipped, x, cp, reason) == index::ImageDecode::Damaged);
  }
}

namespace {

// Where the per-event columns of an image body are (FORMAT.md 8.4), for n events and no link
// overflow entries: the byte offset (in the file) of column `which` for sequence `s`.
struct ImageLayout {
  uint64_t n = 0;
  static constexpr uint64_t kBody = 64;
  uint64_t streams = 0;  // where the streams column's values start, and their width
  unsigned stream_width = 0;
  // Link columns: 0 cause, 1 newest effect, 2 older sibling, 3 previous of the correlation; where
  // each one's distances start, 0 for a column without links (FORMAT.md 8.4: its flag word alone).
  uint64_t columns[4] = {};
  // Sets the stream number of sequence s to the largest its column's width holds.
  void set_largest_stream_number(Bytes& b, uint64_t s) const {
    REQUIRE(stream_width != 0);
    for (unsigned i = 0; i < stream_width; ++i)
      b[streams + stream_width * (s - 1) + i] = std::byte{0xff};
  }
  uint64_t link(int column, uint64_t s) const {
    REQUIRE(columns[column] != 0);
    return columns[column] + 4 * (s - 1);
  }
};

struct LinkEdit {
  const char* name;
  std::function<void(Bytes&)> apply;
  const char* reason;
};

// Applies each edit to the image of the store in `dir` (checksum made right): the decoder must
// call it damage for `reason`, and the store must open from the log with the answers of a rebuild.
void check_link_edits(platform::MemoryFileSystem& fs, const std::string& dir, const Bytes& image,
                      const std::vector<LinkEdit>& edits) {
  const Answers expected = rebuilt_answers(fs, dir, dir + "-rebuild", 4096);
  for (const LinkEdit& edit : edits) {
    INFO(edit.name);
    Bytes bytes = image;
    edit.apply(bytes);
    store_checksum(bytes);
    index::EventIndex decoded;
    index::ImageCheckpoint cp;
    std::string reason;
    CHECK(index::decode_image(bytes, decoded, cp, reason) == index::ImageDecode::Damaged);
    CHECK(reason == edit.reason);
    fs.set_contents(dir + "/" + kImageName, bytes);
    auto store = open_store(dir, options_on(&fs, 4096));
    CHECK(store->stats().index_source == kImagePrefix + edit.reason + ")");
    check_same_answers(answers_of(*store), expected);
    KEEL_REQUIRE_OK(store->close());
  }
}

// The layout of a store's own image, with no link overflow entries (checked).
ImageLayout layout_of(const Bytes& image) {
  REQUIRE(format::load_u32(image.data() + 16) == 3);
  ImageLayout layout{format::load_u64(image.data() + 64 + 40)};
  uint64_t at = ImageLayout::kBody + 48;
  at += 8 + format::load_u64(image.data() + at);  // frame offsets (delta column)
  at += 8 + format::load_u64(image.data() + at);  // id high words (delta column)
  at += 8 * layout.n;                             // id low words
  for (int narrow = 0; narrow < 3; ++narrow) {    // kinds, scopes, streams
    const unsigned width = std::to_integer<unsigned>(image[at]);
    at += 1;
    if (narrow == 2) {
      layout.streams = at;
      layout.stream_width = width;
    }
    at += width * layout.n;
  }
  at += (layout.n + 7) / 8;
  for (int column = 0; column < 4; ++column) {
    const uint64_t present = format::load_u64(image.data() + at);
    at += 8;
    if (present == 0) continue;
    REQUIRE(present == 1);
    layout.columns[column] = at;
    at += 4 * layout.n;
    REQUIRE(format::load_u64(image.data() + at) == 0);
    at += 8;
  }
  return layout;
}

}  // namespace

TEST_CASE(
    "an image whose links reach a hidden slot or another cause's effects is damage: walks "
    "never leave the visible events",
    "[image]") {
  platform::MemoryFileSystem fs;
  SECTION("links of hidden slots") {
    // The golden store (its cancelled fence leaves hidden slots), opened and closed: its image.
    KEEL_REQUIRE_OK(tools::write_golden_store(fs, "/golden"));
    open_store("/golden", options_on(&fs, 4096))->close().ok();
    const Bytes image = fs.contents("/golden/" + kImageName);
    const index::EventIndex x = decode_ok(image);
    const ImageLayout layout = layout_of(image);
    uint64_t hidden = 0;  // a hidden slot after sequence 1, and a visible event after it
    for (uint64_t s = 2; s <= layout.n && hidden == 0; ++s) {
      if (!x.visible_in_index(s)) hidden = s;
    }
    REQUIRE(hidden != 0);
    uint64_t after = hidden + 1;
    while (after <= layout.n && !x.visible_in_index(after)) ++after;
    REQUIRE(after <= layout.n);
    check_link_edits(fs, "/golden", image,
                     {{"a cause that is a hidden slot whose stream number is out of range",
                       [&](Bytes& b) {
                         format::store_u32(b.data() + layout.link(0, after),
                                           static_cast<uint32_t>(after - hidden));
                         layout.set_largest_stream_number(b, hidden);
                         // Its former cause forgets it, so the link is the only thing wrong.
                         if (uint64_t cause = x.cause_of(after))
                           format::store_u32(b.data() + layout.link(1, cause), 0);
                       },
                       "a link to a hidden event"},
                      {"a previous event of the correlation that is a hidden slot",
                       [&](Bytes& b) {
                         format::store_u32(b.data() + layout.link(3, after),
                                           static_cast<uint32_t>(after - hidden));
                       },
                       "a link to a hidden event"},
                      {"a hidden slot with a cause",
                       [&](Bytes& b) {
                         format::store_u32(b.data() + layout.link(0, hidden),
                                           static_cast<uint32_t>(hidden - 1));
                       },
                       "a hidden event with links"}});
  }
  SECTION("effects and siblings") {
    build_store(fs, "/store", 60, 4096);
    const Bytes image = fs.contents("/store/" + kImageName);
    const index::EventIndex x = decode_ok(image);
    const ImageLayout layout = layout_of(image);
    // A visible event without effects, and a later one it did not cause, whose cause is not the
    // earlier one's either.
    uint64_t childless = 0;
    uint64_t later = 0;
    for (uint64_t s = 1; s <= layout.n && later == 0; ++s) {
      if (x.newest_effect_of(s) != 0) continue;
      for (uint64_t t = s + 1; t <= layout.n && later == 0; ++t) {
        if (x.cause_of(t) != s && x.cause_of(t) != x.cause_of(s)) {
          childless = s;
          later = t;
        }
      }
    }
    REQUIRE(later != 0);
    check_link_edits(fs, "/store", image,
                     {{"a newest effect that names another cause",
                       [&](Bytes& b) {
                         format::store_u32(b.data() + layout.link(1, childless),
                                           static_cast<uint32_t>(later - childless));
                       },
                       "a newest effect of another cause"},
                      {"an older sibling with another cause",
                       [&](Bytes& b) {
                         format::store_u32(b.data() + layout.link(2, later),
                                           static_cast<uint32_t>(later - childless));
                       },
                       "an older sibling of another cause"}});
  }
}

TEST_CASE("a store opened from its image writes no new image until enough events follow it",
          "[image]") {
  platform::MemoryFileSystem fs;
  const std::string dir = "/store";
  StoreOptions options = options_on(&fs);
  {
    auto store = open_store(dir, options);
    append_orders(*store, 20);
    KEEL_REQUIRE_OK(store->close());
  }
  options.index_image_interval = std::chrono::milliseconds(1);
  options.index_image_min_events = 5;
  auto store = open_store(dir, options);
  REQUIRE(store->stats().index_source == "image");
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // ~30 chances to write one
  CHECK(store->stats().index_images_written == 0);             // it would equal the one there
  for (int i = 0; i < 5; ++i) {
    KEEL_REQUIRE_OK(store->append({"order:9", ""}, EventKind::make(1, 1), "y"));
  }
  for (int wait = 0; wait < 2000 && store->stats().index_images_written == 0; ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(store->stats().index_images_written >= 1);
  CHECK(store->stats().index_image_error.empty());
}

TEST_CASE("close reports a failed write of the index image, and the next open replays the log",
          "[image]") {
  // The image is written to INDEX.tmp as it is encoded (index::write_image_file), before the log
  // is closed and before INDEX is replaced: a failed write leaves the old INDEX (here none).
  platform::FaultFileSystem fs;
  const std::string dir = "/store";
  StoreOptions options = options_on(&fs);
  {
    auto store = open_store(dir, options);
    append_orders(*store, 20);
    fs.fail_nth(platform::FaultOp::Write, 1);  // everything is written: the next write is INDEX.tmp
    Status closed = store->close();
    REQUIRE_FALSE(closed.ok());
    CHECK(closed.error().code() == ErrorCode::Io);
    CHECK(closed.error().field_string("path").value_or("").find(".tmp") != std::string::npos);
  }
  CHECK_FALSE(fs.exists(dir + "/" + format::kIndexImageFileName).value());
  auto store = open_store(dir, options);
  CHECK(store->stats().index_source == "log");
  CHECK(store->stats().sequence_durable == 20);
  KEEL_REQUIRE_OK(store->close());
  auto again = open_store(dir, options);
  CHECK(again->stats().index_source == "image");  // the next close wrote it
  CHECK(again->stats().sequence_durable == 20);
}

TEST_CASE("a failed periodic image write is not counted, and the next interval tries again",
          "[image]") {
  // The bound on what an open replays holds only if a failed write is retried at the next
  // interval: were its sequence recorded, the next image would wait for index_image_min_events
  // more events, which may never come.
  platform::FaultFileSystem fs;
  const std::string dir = "/store";
  StoreOptions options = options_on(&fs);
  options.index_image_interval = std::chrono::milliseconds(5);
  options.index_image_min_events = 10;
  auto store = open_store(dir, options);
  fs.fail_nth(platform::FaultOp::Rename, 1);  // the first sidecar rename after now: IDEMPOTENCY
  append_orders(*store, 10);
  auto index_on_disk = [&] { return fs.exists(dir + "/" + format::kIndexImageFileName).value(); };
  // Counted once durable, a moment after INDEX appears: wait for the count, not the file.
  for (int wait = 0; wait < 5000 && store->stats().index_images_written == 0; ++wait) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  REQUIRE(fs.calls(platform::FaultOp::Rename) >= 2);  // the failed try, then another
  CHECK(index_on_disk());
  StoreStats stats = store->stats();
  CHECK(stats.index_images_written == 1);  // the failed try is not an image
  CHECK(stats.index_image_error.find("rename") != std::string::npos);
}

// Close rewrites INDEX only when the indexes changed since it was written: an open that appended
// nothing keeps the same file (same inode); an append makes a new one. An image older than the log
// is still right (an open replays the log after it, as after a crash): a fence cancelled in a
// session that appended nothing else is replayed at the next open.
TEST_CASE("close writes the index image again only when the indexes changed", "[image]") {
  keel::test::TempDir dir;
  keel::StoreOptions options;
  options.create_if_missing = true;
  const std::string index_path = dir.path() + "/INDEX";
  auto inode = [&] {
    struct stat st;
    REQUIRE(::stat(index_path.c_str(), &st) == 0);
    return st.st_ino;
  };
  auto open = [&] {
    auto store = keel::Store::open(dir.path(), options);
    KEEL_REQUIRE_OK(store);
    return std::move(*store);
  };
  {
    auto store = open();
    for (int i = 0; i < 50; ++i) {
      KEEL_REQUIRE_OK(
          store->append({"e" + std::to_string(i % 7), ""}, keel::EventKind::make(1, 1), "p"));
    }
    KEEL_REQUIRE_OK(store->close());
  }
  const auto first = inode();
  {
    auto store = open();
    CHECK(store->stats().index_source == "image");
    CHECK(store->entity_events("e1", 0)->size() == 7);
    KEEL_REQUIRE_OK(store->close());
  }
  CHECK(inode() == first);  // nothing changed: not written again
  {
    auto store = open();
    CHECK(store->stats().index_source == "image");
    KEEL_REQUIRE_OK(store->append({"e1", ""}, keel::EventKind::make(1, 1), "p"));
    KEEL_REQUIRE_OK(store->close());
  }
  const auto second = inode();
  CHECK(second != first);  // an append: written again
  {
    auto store = open();
    CHECK(store->stats().index_source == "image");
    CHECK(store->stats().records_replayed == 0);
    auto fence = store->begin_fence();
    KEEL_REQUIRE_OK(fence);
    KEEL_REQUIRE_OK((*fence)->append({"e2", ""}, keel::EventKind::make(1, 1), "hidden"));
    KEEL_REQUIRE_OK((*fence)->cancel());
    KEEL_REQUIRE_OK(store->close());
  }
  auto store = open();
  CHECK(store->stats().index_source == "image");
  CHECK(store->stats().events == 51);
  CHECK(store->stats().hidden_events == 1);
  CHECK(store->entity_events("e2", 0)->size() == 7);  // the hidden event is not read
  KEEL_REQUIRE_OK(store->verify());
}

TEST_CASE(
    "an image leaves out link columns without links and the streams' sequences (derived from the "
    "streams column) and narrows its columns: under 16 bytes per event, and the same answers",
    "[image]") {
  platform::MemoryFileSystem fs;
  const std::string dir = "/plain";
  constexpr uint64_t kEvents = 500;
  {
    auto store = open_store(dir, options_on(&fs));
    for (uint64_t i = 0; i < kEvents; ++i) {
      KEEL_REQUIRE_OK(store->append({"entity-" + std::to_string(i % 13), "s"},
                                    EventKind::make(1, 1), "payload " + std::to_string(i)));
    }
    KEEL_REQUIRE_OK(store->close());
  }
  const Bytes image = fs.contents(dir + "/" + kImageName);
  const ImageLayout layout = layout_of(image);
  REQUIRE(layout.n == kEvents);
  for (int column = 0; column < 4; ++column) CHECK(layout.columns[column] == 0);
  // Columns: offsets and id high words as deltas (2 + 1 or 3 bytes: frames are ~100 bytes apart,
  // ids in one millisecond 1 apart), id low words (8), kinds (2), no scope column (one scope, 0),
  // streams (1: 13 streams) and a bit; then the flag words and tables of a few streams.
  CHECK(layout.stream_width == 1);
  CHECK(image.size() < ImageLayout::kBody + 48 + 16 * kEvents + 2048);
  const Answers expected = rebuilt_answers(fs, dir, "/rebuild");
  auto store = open_store(dir, options_on(&fs));
  CHECK(store->stats().index_source == "image");
  check_same_answers(answers_of(*store), expected);
  // Links after an image without them: the columns start holding memory then.
  Receipt first = *store->append({"entity-0", "s"}, EventKind::make(1, 1), "root");
  AppendOptions caused;
  caused.causation_id = first.event_id;
  KEEL_REQUIRE_OK(store->append({"entity-1", "s"}, EventKind::make(1, 1), "effect", caused));
  KEEL_REQUIRE_OK(store->close());
  const Answers after = rebuilt_answers(fs, dir, "/rebuild-2");
  auto reopened = open_store(dir, options_on(&fs));
  CHECK(reopened->stats().index_source == "image");
  check_same_answers(answers_of(*reopened), after);
  const ImageLayout with_links = layout_of(fs.contents(dir + "/" + kImageName));
  CHECK(with_links.columns[0] != 0);  // cause
  CHECK(with_links.columns[1] != 0);  // newest effect
  CHECK(with_links.columns[2] == 0);  // no older siblings
  CHECK(with_links.columns[3] == 0);  // no correlation chain
}
