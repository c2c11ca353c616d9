// keel dump and keel load (tools/cli/load_dump_commands.cc): a dump loaded into an empty store
// gives an equivalent store (same entities, scopes, lanes, kinds, clocks, payloads, metadata and
// causal links, new ids), and a load writes batches all or nothing, naming the line that stopped
// it.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "keel/keel.h"
#include "test_support.h"

namespace {

using keel::test::contains;
using keel::test::keel_cli;
using keel::test::TempDir;
using Run = keel::test::CommandRun;

std::unique_ptr<keel::Store> open_store(const std::string& dir, bool create = false) {
  keel::StoreOptions options;
  options.create_if_missing = create;
  auto store = keel::Store::open(dir, options);
  REQUIRE(store.ok());
  return std::move(store).value();
}

std::vector<keel::Event> all_events(const std::string& dir) {
  auto store = open_store(dir);
  auto events = store->scan_events(1, UINT64_MAX);
  REQUIRE(events.ok());
  return *events;
}

size_t count_lines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// A store with what a dump must carry: several entities, scopes, lanes and kinds; metadata;
// payloads in each of the dump's three forms (compact JSON text, other UTF-8 text such as JSON with
// spaces, and bytes that are not text); causes inside a batch, across batches and outside the
// store; correlations to earlier events and to an outside conversation; a cancelled fence's hidden
// event.
void build_source(const std::string& dir) {
  auto store = open_store(dir, true);
  const keel::EventId outside{0x1234, 0x5678};
  auto first = store->append({"order:1", "shop"}, keel::EventKind::make(1, 1),
                             R"({"total":42.5,"items":["a","b"]})");
  REQUIRE(first.ok());
  std::vector<keel::BatchItem> batch(3);
  batch[0].coordinate = {"order:2", "shop"};
  batch[0].kind = keel::EventKind::make(1, 1);
  batch[0].payload = R"({"total": 7})";  // JSON, but not compact: "payload_text"
  batch[0].options.causation_id = first->event_id;  // a cause in an earlier append
  batch[1].coordinate = {"invoice:2", "billing"};
  batch[1].kind = keel::EventKind::make(2, 9);
  batch[1].payload = std::string("\x00\xff", 2) + " raw bytes, not text";
  batch[1].options.cause_item = 0;  // a cause in the same batch
  batch[1].options.lane = 3;
  batch[1].options.metadata = R"({"ip":"10.0.0.1"})";
  batch[2].coordinate = {"order:1", "shop"};
  batch[2].kind = keel::EventKind::make(1, 2);
  batch[2].payload = "shipped";  // text, not JSON
  batch[2].options.correlation_id = first->event_id;  // the conversation of an earlier event
  batch[2].options.causation_id = outside;            // an external cause
  REQUIRE(store->append_batch(batch).ok());
  keel::AppendOptions nil;  // JSON null and an empty payload: "payload": null would read as none
  nil.metadata = "null";
  REQUIRE(store->append({"order:3", ""}, keel::EventKind::make(1, 1), "null", nil).ok());
  REQUIRE(store->append({"order:4", ""}, keel::EventKind::make(1, 1), "").ok());
  // An entity and a scope that are not UTF-8: JSON strings cannot hold them ("entity_hex").
  REQUIRE(store->append({"bin:\xfe\xff", "s\xff"}, keel::EventKind::make(1, 1), "{}").ok());
  auto fence = store->begin_fence();
  REQUIRE(fence.ok());
  REQUIRE((*fence)->append({"order:9", ""}, keel::EventKind::make(1, 1), "1").ok());
  REQUIRE((*fence)->cancel().ok());
  keel::AppendOptions options;
  options.correlation_id = outside;
  options.metadata = std::string("\x01\x02", 2);
  for (int i = 0; i < 7; ++i) {
    options.lane = static_cast<uint32_t>(i % 2);
    REQUIRE(store
                ->append({"order:1", i % 3 == 0 ? "" : "shop"}, keel::EventKind::make(1, 3),
                         R"({"n":)" + std::to_string(i) + R"(,"big":)" +
                             std::to_string(UINT64_MAX - static_cast<uint64_t>(i)) + "}",
                         options)
                .ok());
  }
  REQUIRE(store->close().ok());
}

// An event's id expressed as the sequence that holds it in `events`, or its hex when outside.
std::string link_of(const std::optional<keel::EventId>& id,
                    const std::vector<keel::Event>& events) {
  if (!id) return "none";
  for (const keel::Event& e : events) {
    if (e.event_id == *id) return "sequence " + std::to_string(e.sequence);
  }
  return "outside " + id->to_hex();
}

}  // namespace

TEST_CASE("keel dump loaded into an empty store gives the same events, clocks and causal links",
          "[cli]") {
  TempDir scratch;
  const std::string source = scratch / "source";
  const std::string copy = scratch / "copy";
  build_source(source);
  Run dumped = keel_cli(scratch, "dump " + source);
  REQUIRE(dumped.exit_code == 0);
  CHECK(contains(dumped.out, "\"payload_hex\":\"00ff"));  // the raw payload, exactly
  CHECK(contains(dumped.out, R"("payload":{"total":42.5,"items":["a","b"]})"));  // keys as written
  CHECK(contains(dumped.out, R"("payload_text":"{\"total\": 7}")"));
  CHECK(contains(dumped.out, R"("payload_text":"shipped")"));
  CHECK(contains(dumped.out, R"("payload_text":"null","metadata_text":"null")"));
  CHECK(contains(dumped.out, R"("payload":{"n":0,"big":18446744073709551615})"));
  CHECK(contains(dumped.out, R"("entity_hex":"62696e3afeff","scope_hex":"73ff")"));
  // --batch 2: the dump's 14 visible events span several batches, so causes and correlations are
  // mapped both inside a batch and across batches.
  Run loaded = keel_cli(scratch, "load " + copy + " - --create --batch 2", dumped.out);
  INFO(loaded.err);
  REQUIRE(loaded.exit_code == 0);
  CHECK(contains(loaded.err, "14 events in"));
  CHECK(loaded.out.empty());  // a summary, not a receipt per line

  const std::vector<keel::Event> before = all_events(source);
  const std::vector<keel::Event> after = all_events(copy);
  REQUIRE(before.size() == 14);
  REQUIRE(after.size() == before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    const keel::Event& a = before[i];
    const keel::Event& b = after[i];
    INFO("event " << i << " (source sequence " << a.sequence << ")");
    CHECK(b.coordinate == a.coordinate);
    CHECK(b.lane == a.lane);
    CHECK(b.kind.value == a.kind.value);
    CHECK(b.entity_clock == a.entity_clock);
    CHECK(b.payload == a.payload);
    CHECK(b.metadata == a.metadata);
    CHECK(b.event_id != a.event_id);  // new ids
    CHECK(link_of(b.causation_id, after) == link_of(a.causation_id, before));
    CHECK(link_of(b.correlation_id, after) == link_of(a.correlation_id, before));
  }
  // And the copy verifies: its chains were built by its own appends.
  CHECK(keel_cli(scratch, "verify " + copy).exit_code == 0);
  // Dumping the copy gives the same lines but for ids and sequences.
  Run again = keel_cli(scratch, "dump " + copy);
  REQUIRE(again.exit_code == 0);
  CHECK(count_lines(again.out) == 14);
}

TEST_CASE("keel load writes each batch all or nothing and names the line that stopped it",
          "[cli]") {
  TempDir scratch;
  const std::string store = scratch / "store";
  auto line = [](int n, const std::string& entity = "") {
    return "{\"entity\":\"" + (entity.empty() ? "e" + std::to_string(n) : entity) +
           "\",\"payload\":{\"n\":" + std::to_string(n) + "}}\n";
  };
  struct Case {
    std::string bad_line;
    std::string needle;
  };
  for (const Case& c : std::vector<Case>{
           {"{\"entity\":\"e5\",\"payload\":{\"n\":5}\n", "line 6: malformed JSON"},
           {"[\"e5\"]\n", "line 6: not a JSON object"},
           {"{\"entity\":\"e5\",\"payload\":18446744073709551616}\n",
            "line 6: the integer 18446744073709551616 does not fit 64 bits"},
           {"{\"entity\":\"e5\",\"payload\":1,\"payload_text\":\"1\"}\n",
            "line 6: more than one of \"payload\""},
           {"{\"entity\":\"e5\",\"payload_text\":1}\n", "line 6: \"payload_text\" wants a string"},
           {"{\"entity\":\"e5\",\"payload\":1,\"colour\":\"red\"}\n",
            "line 6: unknown field \"colour\""},
           {"{\"entity\":\"e5\"}\n", "line 6: no \"payload\""},
           {"{\"entity\":\"e5\",\"payload_hex\":\"0g\"}\n", "line 6: \"payload_hex\" wants"},
           {"{\"entity\":\"e5\",\"payload\":1,\"kind\":\"0:1\"}\n", "line 6: "},  // store refuses
           {line(5, "../escape"), "line 6: "},  // the store refuses the coordinate
       }) {
    INFO(c.bad_line);
    std::filesystem::remove_all(store);
    std::string input = line(1) + line(2) + line(3) + "\n" + line(4) + c.bad_line + line(6);
    // --batch 3: lines 1-3 are one batch; lines 5, 6, 7 the next (line 4 is blank: no event).
    Run run = keel_cli(scratch, "load " + store + " - --create --batch 3", input);
    INFO(run.err);
    CHECK(run.exit_code == 1);
    CHECK(contains(run.err, c.needle));
    CHECK(count_lines(run.err) == 1);
    const std::vector<keel::Event> events = all_events(store);
    REQUIRE(events.size() == 3);  // the first batch, nothing of the second
    CHECK(events.back().coordinate.entity == "e3");
  }
  // --receipts: one receipt per event.
  std::filesystem::remove_all(store);
  Run receipts = keel_cli(scratch, "load " + store + " - --create --receipts", line(1) + line(2));
  CHECK(receipts.exit_code == 0);
  CHECK(count_lines(receipts.out) == 2);
  CHECK(contains(receipts.out, "\"sequence\":2"));
  // Usage errors.
  CHECK(keel_cli(scratch, "load " + store + " - --batch 0", line(1)).exit_code == 2);
  CHECK(keel_cli(scratch, "load " + store + " " + (scratch / "absent.jsonl")).exit_code == 2);
  CHECK(keel_cli(scratch, "dump " + store + " --from 3 --to 2").exit_code == 2);
}
