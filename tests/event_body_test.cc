// The event body codec (src/format/event_body.h, segments/FORMAT.md "Event body"), in both forms:
// round trips, the chained hash's coverage, the compact form's bytes, an independent parse of the
// msgpack form with msgpack-c, and every decode failure reached by a crafted body.
#include "format/event_body.h"

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <msgpack.hpp>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "format/checksum.h"
#include "format/format_constants.h"
#include "format/msgpack_reader.h"
#include "format/msgpack_writer.h"

using keel::EventId;
using keel::Hash128;
using namespace keel::format;

// ---- Allocation counting -------------------------------------------------------------------
// "Decoding allocates nothing" (docs/DECISIONS.md) is checked by counting operator new on this
// thread. Sanitizer runtimes supply their own operator new, so under them the count is not kept.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KEEL_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define KEEL_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef KEEL_COUNT_ALLOCATIONS
#define KEEL_COUNT_ALLOCATIONS 1
#endif

namespace {
thread_local uint64_t allocations_on_this_thread = 0;
}  // namespace

#if KEEL_COUNT_ALLOCATIONS
// Replaces the global allocation functions for the whole test binary; they only count, then do
// what the default ones do (the array and nothrow forms call these). Not inlined, so GCC does not
// pair an inlined malloc with a delete elsewhere (-Wmismatched-new-delete).
[[gnu::noinline]] void* operator new(std::size_t size) {
  ++allocations_on_this_thread;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace {

constexpr bool kCountingAllocations = KEEL_COUNT_ALLOCATIONS != 0;

// ---- A realistic event -----------------------------------------------------------------------

const std::string kPayload =
    std::string("{\"sku\":\"A-17\",\"quantity\":3}") + std::string(70, 'p');
const std::string kMetadata = "trace=4bf92f3577b34da6";
const std::string kIdempotencyKey = "checkout-request-8812";

EventBody minimal_event() {
  EventBody e;
  e.event_id = EventId{0x0102030405060708, 0x1112131415161718};
  e.entity = "order:12345";
  e.scope = "billing";
  e.kind = 0xabcd;
  e.lane = 0x12345678;
  e.entity_clock = (uint64_t{1} << 40) + 5;
  e.hlc_wall_ms = 1'700'000'000'123;
  e.hlc_logical = 300;
  e.correlation_id = EventId{0x2122232425262728, 0x3132333435363738};
  e.payload = kPayload;
  return e;
}

EventBody full_event() {
  EventBody e = minimal_event();
  e.causation_id = EventId{0x4142434445464748, 0x5152535455565758};
  e.idempotency_key = kIdempotencyKey;
  e.idempotency_fingerprint = Hash128{0x6162636465666768, 0x7172737475767778};
  e.fence_id = 77;
  e.metadata = kMetadata;
  e.prev_hash = Hash128{0x8182838485868788, 0x9192939495969798};
  return e;
}

constexpr BodyFormat kFormats[] = {BodyFormat::Msgpack, BodyFormat::Compact};

EventBody in_format(EventBody e, BodyFormat format) {
  e.format = format;
  return e;
}

// The size of the chained hash's field, which ends every body.
size_t chained_field_size(BodyFormat format) {
  return format == BodyFormat::Msgpack ? 2 + 16 : 16;  // bin8 tag and length, or the bytes alone
}

std::vector<std::byte> encode(const EventBody& e, Hash128* chained = nullptr) {
  std::vector<std::byte> out;
  Hash128 h = encode_event_body(out, e);
  if (chained != nullptr) *chained = h;
  return out;
}

// Decodes a whole body; returns the error (nullptr on success) and requires the reader to have
// consumed it exactly on success.
const char* decode(std::span<const std::byte> bytes, EventBody& out) {
  MsgpackReader reader(bytes);
  const char* error = decode_event_body(reader, out);
  if (error == nullptr && !reader.at_end()) return "decode left bytes unread";
  return error;
}

void check_same_fields(const EventBody& got, const EventBody& want) {
  CHECK(got.format == want.format);
  CHECK(got.event_id == want.event_id);
  CHECK(got.entity == want.entity);
  CHECK(got.scope == want.scope);
  CHECK(got.kind == want.kind);
  CHECK(got.lane == want.lane);
  CHECK(got.entity_clock == want.entity_clock);
  CHECK(got.hlc_wall_ms == want.hlc_wall_ms);
  CHECK(got.hlc_logical == want.hlc_logical);
  CHECK(got.correlation_id == want.correlation_id);
  CHECK(got.causation_id == want.causation_id);
  CHECK(got.idempotency_key == want.idempotency_key);
  CHECK(got.idempotency_fingerprint == want.idempotency_fingerprint);
  CHECK(got.fence_id == want.fence_id);
  CHECK(got.metadata == want.metadata);
  CHECK(got.payload == want.payload);
  CHECK(got.prev_hash == want.prev_hash);
}

bool points_into(std::string_view view, std::span<const std::byte> buffer) {
  auto* begin = reinterpret_cast<const char*>(buffer.data());
  return view.data() >= begin && view.data() + view.size() <= begin + buffer.size();
}

// A bin of 16 bytes holding an id or hash, big-endian, as the format stores it.
std::string big_endian_128(uint64_t high, uint64_t low) {
  std::string out;
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(high >> (8 * i)));
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>(low >> (8 * i)));
  return out;
}

// ---- msgpack-c, bounded as docs/ARCHITECTURE.md §11.1 requires -----------------------------

msgpack::object_handle unpack_bounded(std::span<const std::byte> bytes, size_t& offset) {
  // Every element takes at least one byte, so no honest count exceeds the input length.
  size_t n = bytes.size();
  msgpack::unpack_limit limit(n, n, n, n, n, /*depth=*/4);
  return msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), n, offset, nullptr, nullptr,
                         limit);
}

std::string bin_of(const msgpack::object& o) {
  REQUIRE(o.type == msgpack::type::BIN);
  return std::string(o.via.bin.ptr, o.via.bin.size);
}
std::string str_of(const msgpack::object& o) {
  REQUIRE(o.type == msgpack::type::STR);
  return std::string(o.via.str.ptr, o.via.str.size);
}
uint64_t uint_of(const msgpack::object& o) {
  REQUIRE(o.type == msgpack::type::POSITIVE_INTEGER);
  return o.via.u64;
}

// ---- Crafted bodies ----------------------------------------------------------------------------

using FieldWriter = std::function<void(MsgpackWriter&)>;

// The 17 fields of a valid body (the full event), one writer per field, so a test can replace one.
std::vector<FieldWriter> valid_fields() {
  EventBody e = in_format(full_event(), BodyFormat::Msgpack);
  // The string views of full_event() point at string literals and globals, so they outlive it.
  auto as_id = [](EventId v) { return [v](MsgpackWriter& w) { w.bin128(v.high, v.low); }; };
  auto as_hash = [](Hash128 v) { return [v](MsgpackWriter& w) { w.bin128(v.high, v.low); }; };
  auto as_uint = [](uint64_t v) { return [v](MsgpackWriter& w) { w.uint(v); }; };
  auto as_str = [](std::string_view v) { return [v](MsgpackWriter& w) { w.str(v); }; };
  auto as_bin = [](std::string_view v) { return [v](MsgpackWriter& w) { w.bin(v); }; };
  // clang-format off
  return {as_id(e.event_id),           as_str(e.entity),
          as_str(e.scope),             as_uint(e.kind),
          as_uint(e.lane),             as_uint(e.entity_clock),
          as_uint(e.hlc_wall_ms),      as_uint(e.hlc_logical),
          as_id(e.correlation_id),     as_id(*e.causation_id),
          as_bin(*e.idempotency_key),  as_hash(*e.idempotency_fingerprint),
          as_uint(*e.fence_id),        as_bin(*e.metadata),
          as_bin(e.payload),           as_hash(*e.prev_hash),
          as_hash(Hash128{1, 2})};
  // clang-format on
}

std::vector<std::byte> craft(const std::vector<FieldWriter>& fields) {
  std::vector<std::byte> out;
  MsgpackWriter w(out);
  w.array_header(static_cast<uint32_t>(fields.size()));
  for (const auto& field : fields) field(w);
  return out;
}

std::vector<std::byte> craft_with(size_t index, FieldWriter replacement) {
  auto fields = valid_fields();
  fields.at(index) = std::move(replacement);
  return craft(fields);
}

FieldWriter nil_field() {
  return [](MsgpackWriter& w) { w.nil(); };
}
FieldWriter uint_field(uint64_t v) {
  return [v](MsgpackWriter& w) { w.uint(v); };
}
FieldWriter str_field(std::string v) {
  return [v](MsgpackWriter& w) { w.str(v); };
}
FieldWriter bin_field(size_t size) {
  return [size](MsgpackWriter& w) { w.bin(std::string(size, '\x5a')); };
}
std::string decode_error(const std::vector<std::byte>& body) {
  EventBody e;
  const char* error = decode(body, e);
  return error == nullptr ? std::string("(decoded)") : std::string(error);
}

}  // namespace

TEST_CASE("event body round-trips with every optional field absent", "[format]") {
  const BodyFormat format = GENERATE(BodyFormat::Msgpack, BodyFormat::Compact);
  EventBody want = in_format(minimal_event(), format);
  Hash128 chained;
  auto body = encode(want, &chained);
  EventBody got;
  REQUIRE(decode(body, got) == nullptr);
  check_same_fields(got, want);
  CHECK_FALSE(got.causation_id.has_value());
  CHECK_FALSE(got.idempotency_key.has_value());
  CHECK_FALSE(got.idempotency_fingerprint.has_value());
  CHECK_FALSE(got.fence_id.has_value());
  CHECK_FALSE(got.metadata.has_value());
  CHECK_FALSE(got.prev_hash.has_value());
  CHECK(got.chained_hash == chained);
}

TEST_CASE("event body round-trips with every optional field present", "[format]") {
  const BodyFormat format = GENERATE(BodyFormat::Msgpack, BodyFormat::Compact);
  EventBody want = in_format(full_event(), format);
  Hash128 chained;
  auto body = encode(want, &chained);
  EventBody got;
  REQUIRE(decode(body, got) == nullptr);
  check_same_fields(got, want);
  CHECK(got.chained_hash == chained);
  // Decoded strings are views into the body, not copies.
  CHECK(points_into(got.entity, body));
  CHECK(points_into(got.payload, body));
  CHECK(points_into(*got.metadata, body));
  CHECK(points_into(*got.idempotency_key, body));
}

TEST_CASE("decoding overwrites optional fields left by a previous event", "[format]") {
  // decode_record_events reuses one EventBody for every event of a batch, whose bodies may be of
  // either form.
  for (BodyFormat first : kFormats) {
    for (BodyFormat second : kFormats) {
      auto full = encode(in_format(full_event(), first));
      auto minimal = encode(in_format(minimal_event(), second));
      EventBody reused;
      REQUIRE(decode(full, reused) == nullptr);
      REQUIRE(decode(minimal, reused) == nullptr);
      check_same_fields(reused, in_format(minimal_event(), second));
    }
  }
}

TEST_CASE("round trip keeps boundary values of kind, lane, clocks and empty strings", "[format]") {
  EventBody want = in_format(minimal_event(), GENERATE(BodyFormat::Msgpack, BodyFormat::Compact));
  want.kind = 0xffff;
  want.lane = 0xffffffff;
  want.entity_clock = ~uint64_t{0};
  want.hlc_wall_ms = 0;
  want.hlc_logical = 0xffffffff;
  want.scope = "";
  want.payload = "";
  want.fence_id = ~uint64_t{0};
  want.metadata = "";
  auto body = encode(want);  // the decoded views point into it
  EventBody got;
  REQUIRE(decode(body, got) == nullptr);
  check_same_fields(got, want);
}

TEST_CASE("the chained hash covers exactly the body bytes before it", "[format]") {
  const BodyFormat format = GENERATE(BodyFormat::Msgpack, BodyFormat::Compact);
  for (const EventBody& event :
       {in_format(minimal_event(), format), in_format(full_event(), format)}) {
    Hash128 chained;
    auto body = encode(event, &chained);
    EventBody got;
    REQUIRE(decode(body, got) == nullptr);
    // The last field: bin8 of 16 bytes (tag, length, 16 bytes), or the 16 bytes alone.
    const size_t kLastFieldSize = chained_field_size(format);
    CHECK(got.hashed_bytes.data() == body.data());
    CHECK(got.hashed_bytes.size() == body.size() - kLastFieldSize);
    CHECK(hash128(got.hashed_bytes) == got.chained_hash);
    CHECK(hash128(std::span<const std::byte>(body).first(body.size() - kLastFieldSize)) == chained);
    // The stored bytes of the last field are the hash, big-endian.
    std::string stored(reinterpret_cast<const char*>(body.data()) + body.size() - 16, 16);
    CHECK(stored == big_endian_128(chained.high, chained.low));
    CHECK(got.stored_bytes.data() == body.data());
    CHECK(got.stored_bytes.size() == body.size());
  }
}

TEST_CASE("the chained hash depends on prev_hash and on the payload", "[format]") {
  EventBody event = in_format(full_event(), GENERATE(BodyFormat::Msgpack, BodyFormat::Compact));
  Hash128 base;
  encode(event, &base);
  EventBody other_prev = event;
  other_prev.prev_hash = Hash128{event.prev_hash->high, event.prev_hash->low ^ 1};
  Hash128 with_other_prev;
  encode(other_prev, &with_other_prev);
  CHECK(with_other_prev != base);
  EventBody other_payload = event;
  std::string payload(event.payload);
  payload.back() = 'q';
  other_payload.payload = payload;
  Hash128 with_other_payload;
  encode(other_payload, &with_other_payload);
  CHECK(with_other_payload != base);
}

TEST_CASE("msgpack-c reads the body as 17 elements with the encoded values", "[format]") {
  SECTION("every optional field present") {
    EventBody e = in_format(full_event(), BodyFormat::Msgpack);
    Hash128 chained;
    auto body = encode(e, &chained);
    size_t offset = 0;
    auto handle = unpack_bounded(body, offset);
    CHECK(offset == body.size());
    const msgpack::object& root = handle.get();
    REQUIRE(root.type == msgpack::type::ARRAY);
    REQUIRE(root.via.array.size == kEventBodyFieldCount);
    const msgpack::object* f = root.via.array.ptr;
    CHECK(bin_of(f[0]) == big_endian_128(e.event_id.high, e.event_id.low));
    CHECK(str_of(f[1]) == "order:12345");
    CHECK(str_of(f[2]) == "billing");
    CHECK(uint_of(f[3]) == 0xabcd);
    CHECK(uint_of(f[4]) == 0x12345678);
    CHECK(uint_of(f[5]) == (uint64_t{1} << 40) + 5);
    CHECK(uint_of(f[6]) == 1'700'000'000'123);
    CHECK(uint_of(f[7]) == 300);
    CHECK(bin_of(f[8]) == big_endian_128(e.correlation_id.high, e.correlation_id.low));
    CHECK(bin_of(f[9]) == big_endian_128(e.causation_id->high, e.causation_id->low));
    CHECK(bin_of(f[10]) == kIdempotencyKey);
    CHECK(bin_of(f[11]) ==
          big_endian_128(e.idempotency_fingerprint->high, e.idempotency_fingerprint->low));
    CHECK(uint_of(f[12]) == 77);
    CHECK(bin_of(f[13]) == kMetadata);
    CHECK(bin_of(f[14]) == kPayload);
    CHECK(bin_of(f[15]) == big_endian_128(e.prev_hash->high, e.prev_hash->low));
    CHECK(bin_of(f[16]) == big_endian_128(chained.high, chained.low));
  }
  SECTION("every optional field absent is nil") {
    auto body = encode(in_format(minimal_event(), BodyFormat::Msgpack));
    size_t offset = 0;
    auto handle = unpack_bounded(body, offset);
    CHECK(offset == body.size());
    const msgpack::object& root = handle.get();
    REQUIRE(root.type == msgpack::type::ARRAY);
    REQUIRE(root.via.array.size == kEventBodyFieldCount);
    for (int index : {9, 10, 11, 12, 13, 15}) {
      INFO("field " << index);
      CHECK(root.via.array.ptr[index].type == msgpack::type::NIL);
    }
    CHECK(bin_of(root.via.array.ptr[14]) == kPayload);
    CHECK(root.via.array.ptr[16].type == msgpack::type::BIN);
  }
}

// ---- The compact form, byte by byte ----

TEST_CASE("a compact body spells out its fields in the documented order", "[format]") {
  // An event as keel makes it: the HLC in the id's high half, the correlation its own id.
  constexpr uint64_t kWall = 1'700'000'000'000;
  EventBody e;
  e.event_id = EventId{kWall << 16 | 2, 0x6b65656c00000001};
  e.hlc_wall_ms = kWall;
  e.hlc_logical = 2;
  e.correlation_id = e.event_id;
  e.entity = "order:1";
  e.scope = "";
  e.kind = 0x1001;
  e.lane = 0;
  e.entity_clock = 300;
  e.payload = "{}";
  e.prev_hash = Hash128{0x8182838485868788, 0x9192939495969798};
  Hash128 chained;
  auto body = encode(e, &chained);
  std::string want;
  want += "\xc1";                                               // tag
  want += '\x20';                                               // flags: prev_hash stored
  want += big_endian_128(e.event_id.high, e.event_id.low);      // event id
  want += std::string("\x01\x10", 2);                           // kind, little-endian
  want += std::string("\x00", 1);                               // lane 0
  want += "\xac\x02";                                           // entity_clock 300
  want += "\x07order:1";                                        // entity
  want += std::string("\x00", 1);                               // scope ""
  want += "\x02{}";                                             // payload
  want += big_endian_128(e.prev_hash->high, e.prev_hash->low);  // prev hash
  REQUIRE(body.size() == want.size() + 16);
  CHECK(std::string(reinterpret_cast<const char*>(body.data()), want.size()) == want);
  CHECK(hash128(std::span<const std::byte>(body).first(want.size())) == chained);
  CHECK(std::string(reinterpret_cast<const char*>(body.data()) + want.size(), 16) ==
        big_endian_128(chained.high, chained.low));
  EventBody got;
  REQUIRE(decode(body, got) == nullptr);
  check_same_fields(got, e);  // the HLC and the correlation come back from the id
}

TEST_CASE("a compact body stores the HLC and the correlation only when the id does not imply them",
          "[format]") {
  constexpr uint64_t kWall = 1'700'000'000'000;
  EventBody base = minimal_event();
  base.format = BodyFormat::Compact;
  base.event_id = EventId{kWall << 16 | 7, 42};
  base.hlc_wall_ms = kWall;
  base.hlc_logical = 7;
  base.correlation_id = base.event_id;
  const size_t base_size = encode(base).size();
  struct Case {
    const char* name;
    std::function<void(EventBody&)> change;
    uint8_t flags;
    size_t extra;  // bytes beyond the base body
  };
  const Case cases[] = {
      {"implied", [](EventBody&) {}, 0, 0},
      {"another logical counter", [](EventBody& b) { b.hlc_logical = 8; }, kCompactHasHlc, 6 + 1},
      {"a logical counter above 16 bits",
       [](EventBody& b) {
         b.hlc_logical = 0x10007;
         b.event_id.high = kWall << 16 | 7;
       },
       kCompactHasHlc, 6 + 3},
      {"a wall time of 48 bits or more",
       [](EventBody& b) {
         b.hlc_wall_ms = uint64_t{1} << 48;
         b.event_id.high = 7;  // what wall << 16 | logical would wrap to
         b.correlation_id = b.event_id;
       },
       kCompactHasHlc, 7 + 1},
      {"another correlation", [](EventBody& b) { b.correlation_id.low ^= 1; },
       kCompactHasCorrelation, 16},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    EventBody e = base;
    c.change(e);
    auto body = encode(e);
    CHECK(static_cast<uint8_t>(body[1]) == c.flags);
    CHECK(body.size() == base_size + c.extra);
    EventBody got;
    REQUIRE(decode(body, got) == nullptr);
    check_same_fields(got, e);
  }
}

TEST_CASE("decode reports what is wrong with a crafted compact body", "[format]") {
  // Tag, `flags`, an id of 0x01 bytes, kind 0x1001, then `fields`, then 16 bytes of chained hash
  // (decode does not check its value).
  auto compact = [](uint8_t flags, std::initializer_list<uint8_t> fields) {
    std::vector<std::byte> out(2 + 16 + 2 + fields.size() + 16, std::byte{0x01});
    out[0] = std::byte{kCompactBodyTag};
    out[1] = std::byte{flags};
    size_t at = 2 + 16 + 2;
    for (uint8_t b : fields) out[at++] = static_cast<std::byte>(b);
    return out;
  };
  // lane 0, clock 1, entity "e", scope "", payload "".
  REQUIRE(decode_error(compact(0, {0x00, 0x01, 0x01, 'e', 0x00, 0x00})) == "(decoded)");
  SECTION("short or cut") {
    CHECK(decode_error({std::byte{kCompactBodyTag}}) == "bad flags");
    CHECK(decode_error({std::byte{kCompactBodyTag}, std::byte{0}, std::byte{1}}) == "bad event_id");
    auto body = compact(0, {0x00, 0x01, 0x01, 'e', 0x00, 0x00});
    body.pop_back();
    CHECK(decode_error(body) == "bad chained_hash");
    // A payload length that eats into the chained hash leaves too few bytes for it.
    CHECK(decode_error(compact(0, {0x00, 0x01, 0x01, 'e', 0x00, 0x05})) == "bad chained_hash");
  }
  SECTION("varints longer than 64 bits or above their field's range") {
    CHECK(decode_error(compact(0, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
                                   0x01, 0x01, 'e', 0x00, 0x00})) == "bad lane");
    CHECK(decode_error(compact(0, {0x80, 0x80, 0x80, 0x80, 0x10, 0x01, 0x01, 'e', 0x00, 0x00})) ==
          "bad lane");  // 2^32
    CHECK(decode_error(compact(0, {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x01, 'e', 0x00, 0x00})) ==
          "(decoded)");  // 2^32 - 1
    CHECK(decode_error(compact(0, {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                                   0x01, 'e', 0x00, 0x00})) == "(decoded)");  // 2^64 - 1
    CHECK(decode_error(compact(0, {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                                   0x01, 'e', 0x00, 0x00})) == "bad entity_clock");  // 2^64
    CHECK(decode_error(compact(kCompactHasHlc, {0x00, 0x01, 0x05, 0x80, 0x80, 0x80, 0x80, 0x10,
                                                0x01, 'e', 0x00, 0x00})) == "bad hlc_logical");
  }
  SECTION("fence 0 and lengths beyond the body") {
    CHECK(decode_error(compact(kCompactHasFence, {0x00, 0x01, 0x01, 'e', 0x00, 0x00, 0x00})) ==
          "bad fence_id");
    CHECK(decode_error(compact(kCompactHasFence, {0x00, 0x01, 0x01, 'e', 0x00, 0x07, 0x00})) ==
          "(decoded)");
    // A length of 4 GiB is refused before anything is sized by it.
    auto huge = compact(0, {0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f});
    EventBody got;
    uint64_t before = allocations_on_this_thread;
    const char* error = decode(huge, got);
    uint64_t allocated = allocations_on_this_thread - before;
    REQUIRE(error != nullptr);
    CHECK(std::string(error) == "bad entity");
    if (kCountingAllocations) CHECK(allocated == 0);
    CHECK(decode_error(compact(kCompactHasMetadata, {0x00, 0x01, 0x01, 'e', 0x00, 0xff, 0xff, 0xff,
                                                     0x7f})) == "bad metadata");
  }
  SECTION("a first byte other than the tag is read as the msgpack form") {
    auto body = compact(0, {0x00, 0x01, 0x01, 'e', 0x00, 0x00});
    body[0] = std::byte{0xc0};
    CHECK(decode_error(body) == "event body is not an array of 17 fields");
  }
}

TEST_CASE("decode reports what is wrong with a crafted msgpack body", "[format]") {
  REQUIRE(decode_error(craft(valid_fields())) == "(decoded)");  // the crafting itself is valid

  const std::string kNotAnArray = "event body is not an array of 17 fields";
  SECTION("wrong field count or not an array") {
    auto sixteen = valid_fields();
    sixteen.pop_back();
    CHECK(decode_error(craft(sixteen)) == kNotAnArray);
    auto eighteen = valid_fields();
    eighteen.push_back(nil_field());
    CHECK(decode_error(craft(eighteen)) == kNotAnArray);
    CHECK(decode_error({std::byte{0x81}, std::byte{0x00}, std::byte{0x00}}) == kNotAnArray);  // map
    CHECK(decode_error({std::byte{0x05}}) == kNotAnArray);
    CHECK(decode_error({}) == kNotAnArray);
  }
  SECTION("ids, hashes and fingerprints must be bin of exactly 16 bytes") {
    CHECK(decode_error(craft_with(0, bin_field(15))) == "bad event_id");
    CHECK(decode_error(craft_with(0, bin_field(17))) == "bad event_id");
    CHECK(decode_error(craft_with(0, str_field(std::string(16, 'x')))) == "bad event_id");
    CHECK(decode_error(craft_with(8, bin_field(15))) == "bad correlation_id");
    CHECK(decode_error(craft_with(8, nil_field())) == "bad correlation_id");  // not optional
    CHECK(decode_error(craft_with(9, bin_field(15))) == "bad causation_id");
    CHECK(decode_error(craft_with(11, bin_field(15))) == "bad idempotency_fingerprint");
    CHECK(decode_error(craft_with(15, bin_field(15))) == "bad prev_hash");
    CHECK(decode_error(craft_with(16, bin_field(15))) == "bad chained_hash");
    CHECK(decode_error(craft_with(16, nil_field())) == "bad chained_hash");  // not optional
  }
  SECTION("strings and bins of the wrong type") {
    CHECK(decode_error(craft_with(1, uint_field(5))) == "bad entity");
    CHECK(decode_error(craft_with(1, bin_field(5))) == "bad entity");
    CHECK(decode_error(craft_with(2, nil_field())) == "bad scope");
    CHECK(decode_error(craft_with(10, str_field("key"))) == "bad idempotency_key");
    CHECK(decode_error(craft_with(13, uint_field(1))) == "bad metadata");
    CHECK(decode_error(craft_with(14, nil_field())) == "bad payload");  // not optional
    CHECK(decode_error(craft_with(14, str_field("payload"))) == "bad payload");
  }
  SECTION("integers out of their range or of the wrong type") {
    CHECK(decode_error(craft_with(3, uint_field(0xffff))) == "(decoded)");
    CHECK(decode_error(craft_with(3, uint_field(0x10000))) == "bad kind");
    CHECK(decode_error(craft_with(4, uint_field(0xffffffff))) == "(decoded)");
    CHECK(decode_error(craft_with(4, uint_field(uint64_t{1} << 32))) == "bad lane");
    CHECK(decode_error(craft_with(5, str_field("1"))) == "bad entity_clock");
    CHECK(decode_error(craft_with(6, nil_field())) == "bad hlc_wall_ms");
    CHECK(decode_error(craft_with(7, uint_field(uint64_t{1} << 32))) == "bad hlc_logical");
    CHECK(decode_error(craft_with(12, uint_field(0))) == "bad fence_id");
    CHECK(decode_error(craft_with(12, str_field("7"))) == "bad fence_id");
  }
  SECTION("negative integers are refused") {
    // 0xff is negative fixint -1: keel's schema has no signed fields.
    auto body = craft(valid_fields());
    // Field 3 (kind) starts after: array header (3 bytes: 0xdc 0 17), event_id (18), entity
    // (1 + 11), scope (1 + 7).
    size_t kind_offset = 3 + 18 + 12 + 8;
    REQUIRE(body[kind_offset] == std::byte{0xcd});  // kind 0xabcd as uint16
    body[kind_offset] = std::byte{0xd1};            // int16 with the same width
    CHECK(decode_error(body) == "bad kind");
  }
}

TEST_CASE("every proper prefix of a body fails to decode", "[format]") {
  const BodyFormat format = GENERATE(BodyFormat::Msgpack, BodyFormat::Compact);
  for (const EventBody& event :
       {in_format(minimal_event(), format), in_format(full_event(), format)}) {
    auto body = encode(event);
    for (size_t length = 0; length < body.size(); ++length) {
      INFO("prefix length " << length);
      EventBody got;
      MsgpackReader reader(std::span<const std::byte>(body).first(length));
      CHECK(decode_event_body(reader, got) != nullptr);
    }
  }
}

TEST_CASE("a body declaring a huge array, str or bin length is refused without allocating",
          "[format]") {
  // Each body is followed by 32 filler bytes, so a count of 17 elements is plausible and the
  // refusal comes from the huge length itself.
  // Sized once and filled in place: growing a vector built from an initializer list makes GCC 12
  // at -O3 report a false -Warray-bounds in its memmove.
  auto body_of = [](std::initializer_list<uint8_t> prefix) {
    std::vector<std::byte> out(prefix.size() + 32, std::byte{0xc0});
    size_t at = 0;
    for (uint8_t b : prefix) out[at++] = static_cast<std::byte>(b);
    return out;
  };
  // A valid array header and event id, then `tail`.
  auto after_id = [](std::initializer_list<uint8_t> tail) {
    std::vector<std::byte> out(5 + 16 + tail.size() + 32, std::byte{0xc0});
    size_t at = 0;
    for (uint8_t b : {0xdc, 0x00, 0x11, 0xc4, 0x10}) out[at++] = static_cast<std::byte>(b);
    for (int i = 0; i < 16; ++i) out[at++] = std::byte{0x01};
    for (uint8_t b : tail) out[at++] = static_cast<std::byte>(b);
    return out;
  };
  struct Case {
    const char* name;
    std::vector<std::byte> body;
    const char* error;
  };
  const char* kNotAnArray = "event body is not an array of 17 fields";
  std::vector<Case> cases = {
      {"array32 of 4 Gi elements", body_of({0xdd, 0xff, 0xff, 0xff, 0xff}), kNotAnArray},
      {"array16 of 17 elements with 1 byte left",
       {std::byte{0xdc}, std::byte{0x00}, std::byte{0x11}, std::byte{0xc0}},
       kNotAnArray},
      {"bin32 event id of 4 GiB", body_of({0xdc, 0x00, 0x11, 0xc6, 0xff, 0xff, 0xff, 0xff}),
       "bad event_id"},
      {"str32 entity of 4 GiB", after_id({0xdb, 0xff, 0xff, 0xff, 0xff}), "bad entity"},
      {"str16 entity of 64 KiB", after_id({0xda, 0xff, 0xff}), "bad entity"},
      {"map32 of 4 Gi pairs", body_of({0xdf, 0xff, 0xff, 0xff, 0xff}), kNotAnArray},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    EventBody got;
    MsgpackReader reader(c.body);
    uint64_t before = allocations_on_this_thread;
    const char* error = decode_event_body(reader, got);
    uint64_t allocated = allocations_on_this_thread - before;
    REQUIRE(error != nullptr);
    CHECK(std::string(error) == c.error);
    if (kCountingAllocations) CHECK(allocated == 0);
  }
  // msgpack-c, bounded by the input length (trap 1), refuses the array before sizing a zone for it.
  auto huge_array = body_of({0xdd, 0xff, 0xff, 0xff, 0xff});
  size_t offset = 0;
  CHECK_THROWS_AS(unpack_bounded(huge_array, offset), msgpack::array_size_overflow);
  // And str/bin declared longer than the input are "insufficient bytes", never a copy.
  auto huge_str = after_id({0xdb, 0xff, 0xff, 0xff, 0xff});
  offset = 0;
  CHECK_THROWS_AS(unpack_bounded(huge_str, offset), msgpack::unpack_error);
}

TEST_CASE("decoding a valid body allocates nothing", "[format]") {
  auto body = encode(in_format(full_event(), GENERATE(BodyFormat::Msgpack, BodyFormat::Compact)));
  EventBody got;
  MsgpackReader reader(body);
  uint64_t before = allocations_on_this_thread;
  const char* error = decode_event_body(reader, got);
  uint64_t allocated = allocations_on_this_thread - before;
  REQUIRE(error == nullptr);
  if (kCountingAllocations) CHECK(allocated == 0);
  // The counter does count: a vector allocates.
  uint64_t control_before = allocations_on_this_thread;
  std::vector<int> control(100);
  CHECK(control.size() == 100);
  if (kCountingAllocations) CHECK(allocations_on_this_thread > control_before);
}

TEST_CASE("event_fingerprint depends on every input it names", "[format]") {
  Hash128 base = event_fingerprint("order:1", "billing", 0, 7, "payload", std::nullopt);
  CHECK(base == event_fingerprint("order:1", "billing", 0, 7, "payload", std::nullopt));
  CHECK(base != event_fingerprint("order:2", "billing", 0, 7, "payload", std::nullopt));
  CHECK(base != event_fingerprint("order:1", "shipping", 0, 7, "payload", std::nullopt));
  CHECK(base != event_fingerprint("order:1", "billing", 1, 7, "payload", std::nullopt));
  CHECK(base != event_fingerprint("order:1", "billing", 0, 8, "payload", std::nullopt));
  CHECK(base != event_fingerprint("order:1", "billing", 0, 7, "payloaD", std::nullopt));
  CHECK(base != event_fingerprint("order:1", "billing", 0, 7, "payload", std::string_view("")));
  // Field boundaries are encoded: moving a character between entity and scope changes it.
  CHECK(event_fingerprint("ab", "c", 0, 0, "", std::nullopt) !=
        event_fingerprint("a", "bc", 0, 0, "", std::nullopt));
}
