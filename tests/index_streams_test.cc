// EventIndex's stream table (src/index/event_index.h): streams are found by the 64-bit hash of
// their (entity, lane) key, and streams whose keys hash alike chain behind the newest. The chains
// are exercised with a constant hash (every stream shares one), where a lookup that trusted the
// hash alone would return the wrong stream. find_streams, the staged lookup of the batch path,
// must give what stream_for / stream give, key for key, in rounds of more than one.
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "index/event_index.h"

using namespace keel;

namespace {

uint64_t one_hash(const index::StreamKey&) { return 7; }

// Adds the next event to (entity, lane), as the store does.
void add_event(index::EventIndex& x, const std::string& entity, uint32_t lane) {
  const uint64_t sequence = x.next_sequence();
  index::EntityStream& stream = x.stream_for(entity, lane);
  index::EventFacts facts;
  facts.id = EventId{sequence << 16, sequence};
  facts.hlc = Hlc{sequence, 0};
  facts.correlation_id = facts.id;
  facts.clock = stream.clock() + 1;
  facts.chained_hash = Hash128{sequence, lane};
  facts.scope = "s";
  REQUIRE(x.add(sequence, index::EventLocation{1, static_cast<uint32_t>(64 * sequence)}, facts,
                stream) == nullptr);
}

std::vector<std::string> entities_of(const std::vector<const index::EntityStream*>& streams) {
  std::vector<std::string> found;
  for (const index::EntityStream* s : streams) {
    found.push_back(std::string(s->entity) + "/" + std::to_string(s->lane));
  }
  return found;
}

}  // namespace

TEST_CASE("Streams whose keys share a hash are told apart", "[index]") {
  for (bool shared : {true, false}) {
    CAPTURE(shared);
    index::EventIndex x;
    if (shared) x.set_stream_hash_for_test(&one_hash);
    add_event(x, "a", 0);
    add_event(x, "b", 0);
    add_event(x, "a", 1);
    add_event(x, "ab", 0);
    add_event(x, "a", 1);
    index::EntityStream& empty = x.stream_for("c", 0);  // named, no event

    REQUIRE(x.stream("a", 0) != nullptr);
    CHECK(x.stream("a", 0)->sequences == std::vector<uint64_t>{1});
    CHECK(x.stream("b", 0)->sequences == std::vector<uint64_t>{2});
    CHECK(x.stream("a", 1)->sequences == std::vector<uint64_t>{3, 5});
    CHECK(x.stream("ab", 0)->sequences == std::vector<uint64_t>{4});
    CHECK(x.stream("c", 0) == nullptr);
    CHECK(x.stream("b", 1) == nullptr);
    CHECK(x.stream("", 0) == nullptr);
    CHECK(&x.stream_for("a", 1) == x.stream("a", 1));
    CHECK(&x.stream_for("c", 0) == &empty);
    CHECK(x.stream("a", 1)->head_hash == Hash128{5, 1});

    CHECK(entities_of(x.streams_of("a")) == std::vector<std::string>{"a/0", "a/1"});
    CHECK(entities_of(x.streams_with_prefix("a")) ==
          std::vector<std::string>{"a/0", "a/1", "ab/0"});

    std::vector<index::StreamKey> keys{{"ab", 0}, {"a", 1}, {"z", 0}, {"c", 0}, {"a", 0}, {"a", 2}};
    std::vector<index::EntityStream*> out(keys.size(), nullptr);
    x.find_streams(keys.data(), keys.size(), out.data());
    CHECK(out[0] == x.stream("ab", 0));
    CHECK(out[1] == x.stream("a", 1));
    CHECK(out[2] == nullptr);
    CHECK(out[3] == &empty);  // found although empty: stream() would skip it, stream_for not
    CHECK(out[4] == x.stream("a", 0));
    CHECK(out[5] == nullptr);
  }
}

TEST_CASE("find_streams gives what stream_for finds, over rounds of keys", "[index]") {
  for (bool shared : {false, true}) {
    CAPTURE(shared);
    std::mt19937_64 rng(shared ? 11 : 12);
    index::EventIndex x;
    if (shared) x.set_stream_hash_for_test(&one_hash);
    // Shared hashes make every lookup walk one chain: fewer streams keep that test quick.
    const uint64_t entities = shared ? 40 : 500;
    auto entity = [&] { return "e" + std::to_string(rng() % entities); };
    for (int i = 0; i < 2000; ++i) add_event(x, entity(), static_cast<uint32_t>(rng() % 3));

    std::vector<std::string> names;
    std::vector<index::StreamKey> keys;
    names.reserve(1000);
    for (int i = 0; i < 1000; ++i) names.push_back(rng() % 10 == 0 ? "unknown" : entity());
    for (const std::string& name : names) keys.push_back({name, static_cast<uint32_t>(rng() % 4)});
    std::vector<index::EntityStream*> out(keys.size(), nullptr);
    x.find_streams(keys.data(), keys.size(), out.data());
    uint64_t found = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
      const index::EntityStream* expected = x.stream(keys[i].entity, keys[i].lane);
      CAPTURE(i, keys[i].entity, keys[i].lane);
      REQUIRE(out[i] == expected);
      if (expected != nullptr) {
        ++found;
        CHECK(out[i]->entity == keys[i].entity);
        CHECK(out[i]->lane == keys[i].lane);
      }
    }
    // Both outcomes occur, often.
    CHECK(found > 300);
    CHECK(found < 1000);
  }
}
