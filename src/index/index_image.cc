#include "index/index_image.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <iterator>
#include <optional>
#include <type_traits>

#include "format/byte_order.h"
#include "format/checksum.h"
#include "platform/file_system.h"

namespace keel::index {
namespace {

constexpr char kMagic[8] = {'K', 'E', 'E', 'L', 'I', 'N', 'D', 'X'};
static_assert(sizeof(EventId) == 16 && std::is_trivially_copyable_v<EventId>);

// Where a Writer's bytes go: memory (encode_image) or a file (write_image_file).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void append(const std::byte* p, size_t n) = 0;
  // Overwrites n bytes appended earlier at `at`.
  virtual void patch(uint64_t at, const std::byte* p, size_t n) = 0;
  virtual uint64_t size() const = 0;
};

class MemorySink final : public Sink {
 public:
  explicit MemorySink(ImageBytes& out) : out_(out) {}
  void append(const std::byte* p, size_t n) override { out_.append(p, n); }
  void patch(uint64_t at, const std::byte* p, size_t n) override {
    std::memcpy(out_.data() + at, p, n);
  }
  uint64_t size() const override { return out_.size(); }

 private:
  ImageBytes& out_;
};

// Writes through a 256 KiB buffer that is reused: an image of tens of megabytes never needs that
// much fresh memory, whose first touch is a page fault each (and, on a virtual machine, often a
// hypervisor's). Below 1 MiB also keeps the fuzzers' malloc limit (a store they close writes an
// image). The first failed write is kept; later bytes are dropped.
class FileSink final : public Sink {
 public:
  static constexpr size_t kChunk = 256 << 10;
  FileSink(platform::File& file, bool writeback) : file_(file), writeback_(writeback) {
    buffer_.reserve(kChunk);
  }
  void append(const std::byte* p, size_t n) override {
    if (buffer_.size() + n > kChunk) flush();
    if (n >= kChunk) {
      write(written_, std::span(p, n));
      written_ += n;
    } else {
      buffer_.insert(buffer_.end(), p, p + n);
    }
  }
  void patch(uint64_t at, const std::byte* p, size_t n) override {
    if (at >= written_) {
      std::memcpy(buffer_.data() + (at - written_), p, n);
    } else {
      write(at, std::span(p, n));  // a column's length, the column written out meanwhile
    }
  }
  uint64_t size() const override { return written_ + buffer_.size(); }
  // Writes what is buffered; the first error of any write.
  Status finish() {
    flush();
    if (error_) return *error_;
    return ok_status();
  }
  std::vector<std::byte>& buffer() { return buffer_; }

 private:
  void flush() {
    write(written_, buffer_);
    written_ += buffer_.size();
    buffer_.clear();
  }
  void write(uint64_t at, std::span<const std::byte> bytes) {
    if (error_ || bytes.empty()) return;
    if (Status w = file_.write_at(at, bytes); !w.ok()) {
      error_ = std::move(w).error();
      return;
    }
    if (writeback_) file_.start_writeback(at, bytes.size());
  }
  platform::File& file_;
  bool writeback_;
  std::vector<std::byte> buffer_;
  uint64_t written_ = 0;
  std::optional<StoreError> error_;
};

class Writer {
 public:
  explicit Writer(Sink& out) : out_(out) {}
  void u64(uint64_t v) { raw(&v, sizeof v); }
  void u32(uint32_t v) { raw(&v, sizeof v); }
  void bytes(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    raw(s.data(), s.size());
  }
  // The first `n` elements of `v`.
  template <typename Vector>
  void array(const Vector& v, size_t n) {
    raw(v.data(), n * sizeof(typename Vector::value_type));
  }
  void raw(const void* p, size_t n) { out_.append(static_cast<const std::byte*>(p), n); }
  // A delta column: a u64 byte count, then value_at(0..n) as LEB128 varints of the zigzagged
  // difference from the value before (the first from 0).
  template <typename ValueAt>
  void deltas(uint64_t n, ValueAt value_at) {
    const size_t count_at = out_.size();
    u64(0);
    Buffered b(*this);
    uint64_t previous = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t value = value_at(i);
      const uint64_t d = value - previous;
      previous = value;
      uint64_t z = (d << 1) ^ (0 - (d >> 63));
      uint8_t* p = b.room(10);
      while (z >= 0x80) {
        *p++ = static_cast<uint8_t>(z | 0x80);
        z >>= 7;
      }
      *p++ = static_cast<uint8_t>(z);
      b.used(p);
    }
    b.flush();
    const uint64_t bytes = out_.size() - count_at - 8;
    out_.patch(count_at, reinterpret_cast<const std::byte*>(&bytes), sizeof bytes);
  }
  // A narrow column: a u8 width (0 when every value is 0, else the fewest of 1, 2 or 4 bytes that
  // hold the largest), then the first n values in that width.
  template <typename Vector>
  void narrow(const Vector& v, uint64_t n) {
    uint64_t largest = 0;
    for (uint64_t i = 0; i < n; ++i) largest = std::max<uint64_t>(largest, v[i]);
    const uint8_t width = largest == 0 ? 0 : largest <= 0xff ? 1 : largest <= 0xffff ? 2 : 4;
    raw(&width, 1);
    fixed(n, width, [&](uint64_t i) { return uint64_t{v[i]}; });
  }
  // value_at(0..n), each in its low `width` bytes.
  template <typename ValueAt>
  void fixed(uint64_t n, unsigned width, ValueAt value_at) {
    if (width == 0) return;
    Buffered b(*this);
    for (uint64_t i = 0; i < n; ++i) {
      const uint64_t value = value_at(i);
      uint8_t* p = b.room(8);
      std::memcpy(p, &value, width);
      b.used(p + width);
    }
    b.flush();
  }

 private:
  // Small writes gathered into one insert per 4 KiB.
  class Buffered {
   public:
    explicit Buffered(Writer& w) : w_(w) {}
    uint8_t* room(size_t n) {
      if (sizeof(buffer_) - used_ < n) flush();
      return buffer_ + used_;
    }
    void used(const uint8_t* end) { used_ = static_cast<size_t>(end - buffer_); }
    void flush() {
      w_.raw(buffer_, used_);
      used_ = 0;
    }

   private:
    Writer& w_;
    uint8_t buffer_[4096];
    size_t used_ = 0;
  };
  Sink& out_;
};

// Where an image's bytes come from: memory, or a file read front to back (small reads through a
// buffer, large ones straight into their destination, so the file is never held twice).
class Source {
 public:
  virtual ~Source() = default;
  virtual uint64_t size() const = 0;
  // Copies bytes [offset, offset + n) to `p`; false when they cannot be read.
  virtual bool read(uint64_t offset, void* p, size_t n) = 0;
};

class MemorySource final : public Source {
 public:
  explicit MemorySource(std::span<const std::byte> bytes) : bytes_(bytes) {}
  uint64_t size() const override { return bytes_.size(); }
  bool read(uint64_t offset, void* p, size_t n) override {
    if (offset > bytes_.size() || n > bytes_.size() - offset) return false;
    if (n > 0) std::memcpy(p, bytes_.data() + offset, n);
    return true;
  }

 private:
  std::span<const std::byte> bytes_;
};

class FileSource final : public Source {
 public:
  FileSource(platform::File& file, uint64_t size) : file_(file), size_(size) {}
  uint64_t size() const override { return size_; }
  const std::optional<StoreError>& error() const { return error_; }
  bool read(uint64_t offset, void* p, size_t n) override {
    if (n == 0) return true;  // `p` may be null then (an empty vector's data())
    auto* out = static_cast<std::byte*>(p);
    if (offset >= buffer_at_ && offset < buffer_at_ + buffer_.size()) {
      size_t have = std::min<uint64_t>(n, buffer_at_ + buffer_.size() - offset);
      std::memcpy(out, buffer_.data() + (offset - buffer_at_), have);
      out += have;
      offset += have;
      n -= have;
    }
    if (n == 0) return true;
    if (n >= kDirect) return read_fully(offset, std::span(out, n));
    buffer_.resize(std::min<uint64_t>(kBuffer, size_ - std::min(offset, size_)));
    buffer_at_ = offset;
    if (buffer_.size() < n || !read_fully(offset, buffer_)) return false;
    std::memcpy(out, buffer_.data(), n);
    return true;
  }

 private:
  static constexpr size_t kBuffer = 1 << 20;
  static constexpr size_t kDirect = 64 << 10;
  bool read_fully(uint64_t offset, std::span<std::byte> out) {
    while (!out.empty()) {
      auto got = file_.read_at(offset, out);
      if (!got.ok()) {
        error_ = got.error();
        return false;
      }
      if (*got == 0) return false;
      offset += *got;
      out = out.subspan(*got);
    }
    return true;
  }
  platform::File& file_;
  uint64_t size_;
  std::vector<std::byte> buffer_;
  uint64_t buffer_at_ = 0;
  std::optional<StoreError> error_;
};

// Bounds-checked reads from a Source, hashing every byte read (the image checksum): a read past
// the end fails (and every later read does too).
class Reader {
 public:
  Reader(Source& source, uint64_t at) : source_(source), at_(at) {
    state_ = XXH3_createState();
    XXH3_64bits_reset(state_);
  }
  ~Reader() { XXH3_freeState(state_); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  bool ok() const { return ok_; }
  bool at_end() const { return at_ == source_.size(); }
  uint64_t left() const { return source_.size() - at_; }
  void hash(const void* p, size_t n) { XXH3_64bits_update(state_, p, n); }
  uint64_t digest() const { return XXH3_64bits_digest(state_); }
  uint64_t u64() {
    uint64_t v = 0;
    raw(&v, sizeof v);
    return v;
  }
  uint32_t u32() {
    uint32_t v = 0;
    raw(&v, sizeof v);
    return v;
  }
  std::string bytes() {
    uint32_t n = u32();
    if (!ok_ || n > left()) return fail(), std::string();
    std::string s(n, '\0');
    raw(s.data(), n);
    return s;
  }
  // Reads `count` elements into `v`, refusing counts the bytes left cannot hold before allocating.
  template <typename Vector>
  void array(Vector& v, uint64_t count) {
    if (!ok_ || count > left() / sizeof(typename Vector::value_type)) return fail();
    v.resize(count);
    raw(v.data(), count * sizeof(typename Vector::value_type));
  }
  // `count` values of `width` bytes each (little-endian) to store(i, value), through a buffer.
  template <typename Store>
  void fixed(uint64_t count, unsigned width, Store store) {
    if (width == 0) return;
    if (!ok_ || count > left() / width) return fail();
    switch (width) {
      case 1:
        return fixed_of<uint8_t>(count, store);
      case 2:
        return fixed_of<uint16_t>(count, store);
      case 4:
        return fixed_of<uint32_t>(count, store);
      case 8:
        return fixed_of<uint64_t>(count, store);
      default:
        return fail();
    }
  }
  template <typename T, typename Store>
  void fixed_of(uint64_t count, Store store) {
    T buffer[8192 / sizeof(T)];
    for (uint64_t i = 0; i < count && ok_;) {
      const uint64_t k = std::min<uint64_t>(count - i, std::size(buffer));
      raw(buffer, k * sizeof(T));
      if (!ok_) return;
      for (uint64_t j = 0; j < k; ++j) store(i + j, uint64_t{buffer[j]});
      i += k;
    }
  }
  // A count of records of at least `record_bytes` each, checked against the bytes left.
  uint64_t count(uint64_t record_bytes) {
    uint64_t n = u64();
    if (ok_ && n > left() / record_bytes) fail();
    return ok_ ? n : 0;
  }
  void raw(void* p, size_t n) {
    if (!ok_ || n > left() || !source_.read(at_, p, n)) return fail();
    hash(p, n);
    at_ += n;
  }
  // Hashes the rest (after a failed decode, to tell damage from a bug's inconsistency), through a
  // buffer no larger than what is left: a small image never costs a 1 MiB allocation.
  bool drain() {
    std::vector<std::byte> scratch(std::min<uint64_t>(left(), 1 << 20));
    while (ok_ && left() > 0) raw(scratch.data(), std::min<uint64_t>(left(), scratch.size()));
    return ok_;
  }
  void fail() { ok_ = false; }

 private:
  Source& source_;
  uint64_t at_;
  bool ok_ = true;
  XXH3_state_t* state_;
};

}  // namespace

struct ImageCodec {
  // The links of sequences 1..n: a column with none is the word 0 alone; otherwise the word 1,
  // then u32 distances and the overflow list. Backward links of those point at or below n already;
  // a forward link past n is moved along `next` (an effect's older siblings) to the newest target
  // at or below n, or to none.
  static void write_links(Writer& w, const SequenceLinks& links, uint64_t n,
                          const SequenceLinks* next = nullptr) {
    if (links.none_up_to(n)) return w.u64(0);
    w.u64(1);
    std::vector<std::pair<uint64_t, uint64_t>> overflow;
    for (const auto& [from, to] : links.overflow_) {
      if (from <= n) overflow.emplace_back(from, to);
    }
    const uint64_t stored = std::min<uint64_t>(n, links.distances_.size());
    if (next == nullptr && stored == n) {
      w.array(links.distances_, n);
    } else {
      // Sequences past the column's end link nowhere (SequenceLinks::get).
      Column<uint32_t> distances(n, 0);
      std::copy(links.distances_.begin(), links.distances_.begin() + stored, distances.begin());
      if (next != nullptr) {
        overflow.clear();
        for (uint64_t from = 1; from <= n; ++from) {
          uint32_t& distance = distances[from - 1];
          if (distance == 0) continue;
          uint64_t to = links.get(from);
          if (to <= n && distance != SequenceLinks::kOverflow) continue;
          while (to > n) to = next->get(to);
          distance = to == 0                                 ? 0
                     : to - from >= SequenceLinks::kOverflow ? SequenceLinks::kOverflow
                                                             : static_cast<uint32_t>(to - from);
          if (distance == SequenceLinks::kOverflow) overflow.emplace_back(from, to);
        }
      }
      w.array(distances, n);
    }
    std::sort(overflow.begin(), overflow.end());
    w.u64(overflow.size());
    for (const auto& [from, to] : overflow) {
      w.u64(from);
      w.u64(to);
    }
  }

  static const char* read_links(Reader& r, SequenceLinks& links, uint64_t n, uint32_t version) {
    if (version >= 2) {
      uint64_t present = r.u64();
      if (!r.ok()) return "truncated links";
      if (present == 0) return nullptr;  // no links: the column stays empty
      if (present != 1) return "a bad link column flag";
    }
    r.array(links.distances_, n);
    uint64_t overflow = r.count(16);
    for (uint64_t i = 0; i < overflow && r.ok(); ++i) {
      uint64_t from = r.u64();
      uint64_t to = r.u64();
      bool backward = links.direction() == SequenceLinks::Direction::Backward;
      if (from == 0 || from > n || to == 0 || to > n || (backward ? to >= from : to <= from) ||
          links.distances_[from - 1] != SequenceLinks::kOverflow) {
        return "a link overflow entry out of place";
      }
      links.overflow_[from] = to;
    }
    if (!r.ok()) return "truncated links";
    for (uint64_t from = 1; from <= n; ++from) {
      uint32_t distance = links.distances_[from - 1];
      if (distance == SequenceLinks::kOverflow) {
        if (!links.overflow_.contains(from)) return "a link overflow without its entry";
      } else if (links.direction() == SequenceLinks::Direction::Backward ? distance >= from
                                                                         : distance > n - from) {
        return "a link pointing outside the events";
      }
    }
    return nullptr;
  }

  // Version 3's per-event columns: offsets and id high words as delta columns, id low words, then
  // kinds, scopes and streams as narrow columns (Writer::deltas, Writer::narrow).
  static const char* read_columns(Reader& r, EventIndex& x, uint64_t n) {
    x.offsets_.resize(n);
    x.ids_.resize(n);
    x.kinds_.resize(n);
    x.scopes_.resize(n);
    x.stream_numbers_.resize(n);
    if (const char* e = read_deltas(r, n, [&](uint64_t i, uint64_t v) {
          x.offsets_[i] = static_cast<uint32_t>(v);
          return v <= UINT32_MAX;
        })) {
      return e;
    }
    if (const char* e = read_deltas(r, n, [&](uint64_t i, uint64_t v) {
          x.ids_[i].high = v;
          return true;
        })) {
      return e;
    }
    r.fixed(n, 8, [&](uint64_t i, uint64_t v) { x.ids_[i].low = v; });
    if (!r.ok()) return "truncated columns";
    if (const char* e = read_narrow(r, x.kinds_, n, 2)) return e;
    if (const char* e = read_narrow(r, x.scopes_, n, 4)) return e;
    return read_narrow(r, x.stream_numbers_, n, 4);
  }

  // A delta column of n values to store(i, value), which returns false for a value out of range.
  template <typename Store>
  static const char* read_deltas(Reader& r, uint64_t n, Store store) {
    const uint64_t bytes = r.u64();
    if (!r.ok()) return "truncated columns";
    if (bytes < n) return "a delta column shorter than its values";
    Column<uint8_t> varints;
    r.array(varints, bytes);
    if (!r.ok()) return "truncated columns";
    const uint8_t* p = varints.data();
    const uint8_t* const end = p + bytes;
    uint64_t value = 0;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t z = 0;
      for (unsigned shift = 0;; shift += 7) {
        if (p == end) return "a delta column ends inside a value";
        const uint8_t b = *p++;
        if (shift == 63 && b > 1) return "a delta beyond 64 bits";
        z |= uint64_t{b & 0x7fu} << shift;
        if ((b & 0x80) == 0) break;
      }
      value += (z >> 1) ^ (0 - (z & 1));
      if (!store(i, value)) return "a column value out of range";
    }
    if (p != end) return "bytes after a delta column's values";
    return nullptr;
  }

  // A narrow column into `v` (already n long), whose values fit `max_width` bytes.
  template <typename Vector>
  static const char* read_narrow(Reader& r, Vector& v, uint64_t n, unsigned max_width) {
    uint8_t width = 0;
    r.raw(&width, 1);
    if (!r.ok()) return "truncated columns";
    if (width != 0 && width != 1 && width != 2 && width != 4) return "a bad column width";
    if (width > max_width) return "a column wider than its values";
    using T = typename Vector::value_type;
    r.fixed(n, width, [&](uint64_t i, uint64_t value) { v[i] = static_cast<T>(value); });
    return r.ok() ? nullptr : "truncated columns";
  }

  // The index as it was when sequence n was the last one: everything above n left out.
  static void encode(const EventIndex& x, uint64_t n, const ImageCheckpoint& cp,
                     const std::function<Hash128(uint64_t)>& hash_at, Writer& w) {
    w.u64(cp.next_sequence);
    w.u64(cp.epoch);
    w.u64(cp.resume_segment_id);
    w.u64(cp.resume_offset);
    w.u64(cp.last_record_offset);
    w.u64(n);
    w.deltas(n, [&](uint64_t i) { return uint64_t{x.offsets_[i]}; });
    w.deltas(n, [&](uint64_t i) { return x.ids_[i].high; });
    w.fixed(n, 8, [&](uint64_t i) { return x.ids_[i].low; });
    w.narrow(x.kinds_, n);
    w.narrow(x.scopes_, n);
    w.narrow(x.stream_numbers_, n);
    std::vector<uint8_t> own((n + 7) / 8, 0);
    for (uint64_t i = 0; i < n; ++i) {
      if (x.own_correlation_[i]) own[i / 8] |= static_cast<uint8_t>(1u << (i % 8));
    }
    w.array(own, own.size());
    write_links(w, x.causes_, n);
    write_links(w, x.newest_effects_, n, &x.older_siblings_);
    write_links(w, x.older_siblings_, n);
    write_links(w, x.correlation_chain_, n);
    uint64_t segments = 0;
    while (segments < x.segments_.size() && x.segments_[segments].first_sequence <= n) ++segments;
    w.u64(segments);
    for (uint64_t i = 0; i < segments; ++i) {
      w.u64(x.segments_[i].first_sequence);
      w.u64(x.segments_[i].segment_id);
    }
    uint64_t visible = x.visible_count_;
    for (uint64_t s = n + 1; s <= x.offsets_.size(); ++s) visible -= x.offsets_[s - 1] != 0;
    w.u64(x.ids_sorted_ ? 1 : 0);
    w.u64(0);  // the largest id and HLC: recomputed from the columns when decoded
    w.u64(0);
    w.u64(0);
    w.u64(0);
    w.u64(visible);
    // Map entries in key order, so that equal indexes encode to equal bytes.
    auto write_entries = [&](const auto& map, auto write) {
      std::vector<std::pair<uint64_t, typename std::decay_t<decltype(map)>::mapped_type>> entries;
      for (const auto& entry : map) {
        if (entry.first <= n) entries.emplace_back(entry.first, entry.second);
      }
      std::sort(entries.begin(), entries.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      w.u64(entries.size());
      for (const auto& entry : entries) write(entry);
    };
    write_entries(x.other_hlcs_, [&](const auto& e) {
      w.u64(e.first);
      w.u64(e.second.wall_ms);
      w.u64(e.second.logical);
    });
    write_entries(x.external_causes_, [&](const auto& e) {
      w.u64(e.first);
      w.u64(e.second.high);
      w.u64(e.second.low);
    });
    std::vector<std::pair<EventId, uint64_t>> heads;
    for (const auto& [id, newest] : x.correlation_heads_) {
      uint64_t s = newest;
      while (s > n) s = x.correlation_chain_.get(s);
      if (s != 0) heads.emplace_back(id, s);
    }
    std::sort(heads.begin(), heads.end());
    w.u64(heads.size());
    for (const auto& [id, sequence] : heads) {
      w.u64(id.high);
      w.u64(id.low);
      w.u64(sequence);
    }
    w.u64(x.scope_names_.size());
    for (const std::string& name : x.scope_names_) w.bytes(name);
    w.u64(x.stream_list_.size());
    for (const detail::StreamNode& s : x.stream_list_) {
      size_t size = static_cast<size_t>(
          std::upper_bound(s->sequences.begin(), s->sequences.end(), n) - s->sequences.begin());
      Hash128 head = size == s->sequences.size() ? s->head_hash
                     : size == 0                 ? Hash128{}
                                                 : hash_at(s->sequences[size - 1]);
      w.bytes(s->entity);
      w.u32(s->lane);
      w.u64(head.high);
      w.u64(head.low);
      w.u64(size);  // its sequences are the visible events the streams column gives it
    }
  }

  static const char* decode(Reader& r, EventIndex& x, ImageCheckpoint& cp, uint32_t version) {
    cp.next_sequence = r.u64();
    cp.epoch = r.u64();
    cp.resume_segment_id = r.u64();
    cp.resume_offset = r.u64();
    cp.last_record_offset = r.u64();
    const uint64_t n = r.u64();
    if (!r.ok()) return "truncated checkpoint";
    if (cp.next_sequence == 0 || n != cp.next_sequence - 1) {
      return "the event count does not match next_sequence";
    }
    // Every event takes at least 10 bytes of columns (30 in version 2, whose columns have fixed
    // widths, and 46 in version 1, whose link columns are always there): refuse a count the file
    // cannot hold.
    if (n > r.left() / (version == 1 ? 46 : version == 2 ? 30 : 10)) {
      return "more events than the image holds";
    }
    if (version <= 2) {
      r.array(x.offsets_, n);
      r.array(x.ids_, n);
      r.array(x.kinds_, n);
      r.array(x.scopes_, n);
      r.array(x.stream_numbers_, n);
    } else if (const char* e = read_columns(r, x, n)) {
      return e;
    }
    std::vector<uint8_t> own;
    r.array(own, (n + 7) / 8);
    if (!r.ok()) return "truncated columns";
    x.own_correlation_.assign(n, false);
    for (uint64_t i = 0; i < n; ++i) x.own_correlation_[i] = (own[i / 8] >> (i % 8)) & 1;
    for (SequenceLinks* links :
         {&x.causes_, &x.newest_effects_, &x.older_siblings_, &x.correlation_chain_}) {
      if (const char* e = read_links(r, *links, n, version)) return e;
    }
    uint64_t segments = r.count(16);
    uint64_t previous_first = 0;
    for (uint64_t i = 0; i < segments && r.ok(); ++i) {
      uint64_t first = r.u64();
      uint64_t id = r.u64();
      if (first <= previous_first || first > n || id == 0 || id > UINT32_MAX ||
          (i > 0 && id <= x.segments_.back().segment_id)) {
        return "the segment table is out of order";
      }
      x.segments_.push_back(EventIndex::SegmentStart{first, static_cast<uint32_t>(id)});
      previous_first = first;
    }
    uint64_t sorted = r.u64();
    for (int reserved = 0; reserved < 4; ++reserved) {
      if (r.u64() != 0) return "reserved scalars are not zero";
    }
    x.visible_count_ = r.u64();
    if (!r.ok()) return "truncated scalars";
    if (sorted > 1) return "bad flags";
    x.ids_sorted_ = sorted == 1;
    uint64_t count = r.count(24);
    for (uint64_t i = 0; i < count && r.ok(); ++i) {
      uint64_t sequence = r.u64();
      uint64_t w = r.u64();
      uint64_t l = r.u64();
      if (sequence == 0 || sequence > n || l > UINT32_MAX) return "a bad HLC entry";
      x.other_hlcs_.emplace(sequence, Hlc{w, static_cast<uint32_t>(l)});
    }
    count = r.count(24);
    for (uint64_t i = 0; i < count && r.ok(); ++i) {
      uint64_t sequence = r.u64();
      EventId id{r.u64(), r.u64()};
      if (sequence == 0 || sequence > n) return "a bad external cause";
      x.external_causes_.emplace(sequence, id);
    }
    count = r.count(24);
    for (uint64_t i = 0; i < count && r.ok(); ++i) {
      EventId id{r.u64(), r.u64()};
      uint64_t sequence = r.u64();
      if (sequence == 0 || sequence > n) return "a bad correlation head";
      x.correlation_heads_.emplace(id, sequence);
    }
    count = r.count(4);
    for (uint64_t i = 0; i < count && r.ok(); ++i) {
      std::string name = r.bytes();
      if (!r.ok()) break;
      if (!x.scope_numbers_.emplace(name, static_cast<uint32_t>(x.scope_names_.size())).second) {
        return "a scope named twice";
      }
      x.scope_names_.push_back(std::move(name));
    }
    if (!r.ok()) return "truncated maps";
    const uint64_t streams = r.count(32);
    if (!r.ok() || streams > UINT32_MAX) return "truncated streams";
    std::vector<uint64_t> sizes;
    for (uint64_t i = 0; i < streams && r.ok(); ++i) {
      std::string entity = r.bytes();
      uint32_t lane = r.u32();
      Hash128 head{r.u64(), r.u64()};
      uint64_t size = r.u64();
      if (!r.ok()) break;
      if (entity.empty() || entity.find('\0') != std::string::npos) return "a bad stream entity";
      EntityStream& s = x.stream_for(entity, lane);
      if (s.number != i) return "a stream named twice";
      s.head_hash = head;
      sizes.push_back(size);
    }
    const char* sequences = version == 1 ? read_stream_sequences(r, x, n, sizes)
                                         : derive_stream_sequences(r, x, n, sizes);
    if (sequences != nullptr) return sequences;
    if (!r.at_end()) return "bytes after the last section";
    return check_columns(x, n);
  }

  // Version 1: the streams' sequences, stream after stream, after their total.
  static const char* read_stream_sequences(Reader& r, EventIndex& x, uint64_t n,
                                           const std::vector<uint64_t>& sizes) {
    uint64_t total = r.u64();
    if (!r.ok()) return "truncated streams";
    if (total != x.visible_count_ || total > n || total > r.left() / 8) {
      return "stream sizes do not match the visible events";
    }
    if (const char* e = check_sizes(sizes, total)) return e;
    for (uint64_t i = 0; i < sizes.size(); ++i) {
      EntityStream& s = *x.stream_list_[i];
      r.array(s.sequences, sizes[i]);
      if (!r.ok()) return "truncated stream sequences";
      if (!s.sequences.empty()) ++x.stream_count_;
      for (size_t k = 0; k < s.sequences.size(); ++k) {
        uint64_t sequence = s.sequences[k];
        if (sequence == 0 || sequence > n || (k > 0 && sequence <= s.sequences[k - 1]) ||
            x.offsets_[sequence - 1] == 0 || x.stream_numbers_[sequence - 1] != i) {
          return "a stream's sequences disagree with the columns";
        }
      }
    }
    return nullptr;
  }

  // Version 2: a stream's sequences are the visible events whose streams column names it, in
  // order; the table's sizes must match them.
  static const char* derive_stream_sequences(Reader& r, EventIndex& x, uint64_t n,
                                             const std::vector<uint64_t>& sizes) {
    if (!r.ok()) return "truncated streams";
    if (x.visible_count_ > n) return "stream sizes do not match the visible events";
    if (const char* e = check_sizes(sizes, x.visible_count_)) return e;
    for (uint64_t i = 0; i < sizes.size(); ++i) x.stream_list_[i]->sequences.reserve(sizes[i]);
    for (uint64_t sequence = 1; sequence <= n; ++sequence) {
      if (x.offsets_[sequence - 1] == 0) continue;
      uint32_t number = x.stream_numbers_[sequence - 1];
      if (number >= sizes.size()) return "a stream number out of range";
      std::vector<uint64_t>& sequences = x.stream_list_[number]->sequences;
      if (sequences.size() == sizes[number]) return "a stream's sequences disagree with the columns";
      sequences.push_back(sequence);
    }
    for (uint64_t i = 0; i < sizes.size(); ++i) {
      const EntityStream& s = *x.stream_list_[i];
      if (s.sequences.size() != sizes[i]) return "a stream's sequences disagree with the columns";
      if (!s.sequences.empty()) ++x.stream_count_;
    }
    return nullptr;
  }

  // The sizes add up to `total` (without overflowing on the way).
  static const char* check_sizes(const std::vector<uint64_t>& sizes, uint64_t total) {
    uint64_t sum = 0;
    for (uint64_t size : sizes) {
      if (size > total - sum) return "stream sizes do not match the visible events";
      sum += size;
    }
    if (sum != total) return "stream sizes do not match the visible events";
    return nullptr;
  }

  // What the sections must agree on beyond their own bounds.
  static const char* check_columns(EventIndex& x, uint64_t n) {
    uint64_t visible = 0;
    EventId previous;
    bool any = false;
    for (uint64_t s = 1; s <= n; ++s) {
      if (x.offsets_[s - 1] == 0) continue;
      ++visible;
      if (x.scopes_[s - 1] >= x.scope_names_.size()) return "a scope number out of range";
      if (x.stream_numbers_[s - 1] >= x.stream_list_.size()) return "a stream number out of range";
      if (x.segments_.empty() || s < x.segments_.front().first_sequence) {
        return "an event before the first segment";
      }
      const EventId& id = x.ids_[s - 1];
      if (x.ids_sorted_ && any && !(previous < id)) return "ids out of order";
      if (!x.ids_sorted_ && !x.id_map_.emplace(id, s).second) return "a duplicate event id";
      previous = id;
      any = true;
    }
    if (visible != x.visible_count_) return "the visible count does not match the columns";
    if (x.ids_sorted_) {
      for (uint64_t s = 2; s <= n; ++s) {
        if (x.ids_[s - 1] < x.ids_[s - 2]) return "ids out of order";
      }
    }
    x.hlc_monotonic_ = true;
    x.last_hlc_ = Hlc{};
    x.last_id_ = EventId{};
    for (uint64_t s = 1; s <= n; ++s) {
      if (x.offsets_[s - 1] == 0) continue;
      Hlc hlc = x.hlc_at(s);
      if (hlc < x.last_hlc_) x.hlc_monotonic_ = false;
      x.last_hlc_ = std::max(x.last_hlc_, hlc);
      x.last_id_ = std::max(x.last_id_, x.ids_[s - 1]);
    }
    // Hidden slots repeat the largest id before them.
    for (uint64_t s = 1; s <= n; ++s) {
      if (x.offsets_[s - 1] == 0 && x.ids_sorted_ && s > 1 && x.ids_[s - 1] != x.ids_[s - 2]) {
        return "a hidden slot does not repeat the id before it";
      }
    }
    return check_links(x, n);
  }

  // The links join visible events only, as add() makes them (a hidden event is in no index but
  // its slot): a newest effect names its cause, older siblings share their cause, correlation
  // chains and heads name visible events. Walks rely on it: ancestors and descendants answers are
  // built with stream_at() of every event they reach (a hidden slot's stream and scope numbers are
  // not checked), and with siblings of other causes descendants() would list events again and
  // again, level after level, up to its limit.
  static const char* check_links(const EventIndex& x, uint64_t n) {
    auto visible = [&](uint64_t s) { return x.offsets_[s - 1] != 0; };
    for (uint64_t s = 1; s <= n; ++s) {
      const uint64_t cause = x.causes_.get(s);
      const uint64_t effect = x.newest_effects_.get(s);
      const uint64_t sibling = x.older_siblings_.get(s);
      const uint64_t previous = x.correlation_chain_.get(s);
      if (!visible(s)) {
        if ((cause | effect | sibling | previous) != 0) return "a hidden event with links";
        continue;
      }
      for (uint64_t to : {cause, effect, sibling, previous}) {
        if (to != 0 && !visible(to)) return "a link to a hidden event";
      }
      if (effect != 0 && x.causes_.get(effect) != s) return "a newest effect of another cause";
      if (sibling != 0 && (cause == 0 || x.causes_.get(sibling) != cause)) {
        return "an older sibling of another cause";
      }
    }
    for (const auto& [id, sequence] : x.correlation_heads_) {
      if (!visible(sequence)) return "a correlation head that is not visible";
    }
    return nullptr;
  }
};

namespace {
// The header's fields but the checksum (at 8, which covers these and the body).
void fill_header(std::byte* header, uint64_t body_length) {
  std::memcpy(header, kMagic, sizeof kMagic);
  format::store_u32(header + 16, kImageVersion);
  format::store_u64(header + 24, body_length);
}
}  // namespace

ImageBytes encode_image(const EventIndex& index, const ImageCheckpoint& checkpoint,
                        const std::function<Hash128(uint64_t)>& hash_at) {
  ImageBytes out(kImageHeaderSize);
  const uint64_t n = checkpoint.next_sequence - 1;
  out.reserve(kImageHeaderSize + 4096 + n * 56 + index.stream_count() * 64);  // most of it
  MemorySink sink(out);
  Writer body(sink);
  ImageCodec::encode(index, checkpoint.next_sequence - 1, checkpoint, hash_at, body);
  fill_header(out.data(), out.size() - kImageHeaderSize);
  format::store_u64(out.data() + 8, format::checksum64(std::span(out).subspan(16)));
  return out;
}

Status write_image_file(platform::File& file, const EventIndex& index,
                        const ImageCheckpoint& checkpoint,
                        const std::function<Hash128(uint64_t)>& hash_at, bool writeback) {
  FileSink sink(file, writeback);
  std::byte header[kImageHeaderSize] = {};
  sink.append(header, sizeof header);  // filled in last
  Writer body(sink);
  ImageCodec::encode(index, checkpoint.next_sequence - 1, checkpoint, hash_at, body);
  KEEL_TRY(sink.finish());
  const uint64_t size = sink.size();
  fill_header(header, size - kImageHeaderSize);
  // The checksum covers the header's fields after it, then the body: read back (from the page
  // cache) through the sink's buffer, since a column's length is written after the column.
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  XXH3_64bits_update(state, header + 16, kImageHeaderSize - 16);
  std::vector<std::byte>& chunk = sink.buffer();
  Status read = ok_status();
  for (uint64_t at = kImageHeaderSize; at < size && read.ok();) {
    chunk.resize(std::min<uint64_t>(FileSink::kChunk, size - at));
    Result<size_t> got = file.read_at(at, chunk);
    if (!got.ok()) {
      read = std::move(got).error();
    } else if (*got != chunk.size()) {
      read = StoreError(ErrorCode::Io)
                 .with("path", file.path())
                 .with("reason", "the index image read back shorter than it was written");
    } else {
      XXH3_64bits_update(state, chunk.data(), chunk.size());
      at += chunk.size();
    }
  }
  format::store_u64(header + 8, XXH3_64bits_digest(state));
  XXH3_freeState(state);
  KEEL_TRY(read);
  return file.write_at(0, std::span<const std::byte>(header, sizeof header));
}

namespace {

ImageDecode decode_from(Source& source, EventIndex& index, ImageCheckpoint& checkpoint,
                        std::string& reason) {
  auto damaged = [&](std::string why) {
    reason = std::move(why);
    return ImageDecode::Damaged;
  };
  std::byte header[kImageHeaderSize];
  if (source.size() < kImageHeaderSize) return damaged("shorter than its header");
  if (!source.read(0, header, sizeof header)) return damaged("its header cannot be read");
  if (std::memcmp(header, kMagic, sizeof kMagic) != 0) return damaged("bad magic");
  uint32_t version = format::load_u32(header + 16);
  if (format::load_u64(header + 24) != source.size() - kImageHeaderSize) {
    return damaged("body length does not match the file size");
  }
  if (version < kOldestImageVersion || version > kImageVersion) {
    // Every version keeps this header, so the checksum tells a version from a damaged byte (a
    // flipped bit must not make the store refuse to open as if a newer build wrote it).
    Reader whole(source, kImageHeaderSize);
    whole.hash(header + 16, kImageHeaderSize - 16);
    if (!whole.drain() || whole.digest() != format::load_u64(header + 8)) {
      return damaged("checksum mismatch");
    }
    reason = "version " + std::to_string(version) + " is " +
             (version > kImageVersion ? "newer" : "older") + " than " +
             std::to_string(version > kImageVersion ? kImageVersion : kOldestImageVersion);
    return version > kImageVersion ? ImageDecode::NewerVersion : ImageDecode::OlderVersion;
  }
  for (size_t i = 20; i < kImageHeaderSize; ++i) {
    if (i >= 24 && i < 32) continue;  // body_length
    if (header[i] != std::byte{0}) return damaged("reserved header bytes are not zero");
  }
  index = EventIndex();
  Reader r(source, kImageHeaderSize);
  r.hash(header + 16, kImageHeaderSize - 16);
  const char* why = ImageCodec::decode(r, index, checkpoint, version);
  // A checksum mismatch explains any inconsistency: it is checked over the whole file either way.
  if (why != nullptr && !r.drain()) return damaged(why);
  if (r.digest() != format::load_u64(header + 8)) return damaged("checksum mismatch");
  if (why != nullptr) return damaged(why);
  return ImageDecode::Ok;
}

}  // namespace

ImageDecode decode_image(std::span<const std::byte> bytes, EventIndex& index,
                         ImageCheckpoint& checkpoint, std::string& reason) {
  MemorySource source(bytes);
  return decode_from(source, index, checkpoint, reason);
}

Result<ImageDecode> decode_image_file(platform::File& file, EventIndex& index,
                                      ImageCheckpoint& checkpoint, std::string& reason) {
  KEEL_ASSIGN_OR_RETURN(uint64_t size, file.size());
  FileSource source(file, size);
  ImageDecode decoded = decode_from(source, index, checkpoint, reason);
  if (source.error()) return *source.error();  // the disk, not the bytes: never "damaged"
  return decoded;
}

}  // namespace keel::index
