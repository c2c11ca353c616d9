// LevelDB and RocksDB as an event log, one template for both (their APIs match where it is used).
// Keys: 'e' + big-endian sequence -> entity length (1 byte) + entity + payload. With an entity key,
// each event also writes 'i' + entity + '\0' + big-endian sequence (empty value) in the same
// WriteBatch, and an entity's events are read by a prefix scan of those keys and a Get of each
// event: the secondary index an application would keep. Default options plus create_if_missing.
#pragma once

#include <atomic>
#include <memory>

#include "subject.h"

namespace keel::compare {

// Api: DB, Options, WriteOptions, ReadOptions, WriteBatch, Slice, Iterator, Status types and
// static void destroy(DB*) (close and free).
template <typename Api>
class KvSubject final : public Subject {
 public:
  KvSubject(std::string name, bool entity_key) : name_(std::move(name)), entity_key_(entity_key) {}
  ~KvSubject() override { close(); }

  void open(const std::string& dir) override {
    typename Api::Options options;
    options.create_if_missing = true;
    typename Api::DB* db = nullptr;
    check(Api::DB::Open(options, dir, &db), "open");
    db_ = db;
    // The next sequence follows the last event key.
    std::unique_ptr<typename Api::Iterator> it(db_->NewIterator(typename Api::ReadOptions()));
    it->Seek("f");
    if (it->Valid()) {
      it->Prev();
    } else {
      it->SeekToLast();
    }
    uint64_t last = 0;
    if (it->Valid() && it->key().size() == 9 && it->key()[0] == 'e')
      last = be64(it->key().data() + 1);
    check(it->status(), "seek last");
    next_ = last + 1;
  }
  void close() override {
    if (db_ == nullptr) return;
    Api::destroy(db_);
    db_ = nullptr;
  }
  void append_written(std::string_view entity, std::string_view payload) override {
    typename Api::WriteBatch batch;
    add(batch, entity, payload);
    check(db_->Write(typename Api::WriteOptions(), &batch), "write");
  }
  void append_batch_written(std::span<const Item> items) override {
    typename Api::WriteBatch batch;
    for (const Item& item : items) add(batch, item.entity, item.payload);
    check(db_->Write(typename Api::WriteOptions(), &batch), "write batch");
  }
  void append_durable(std::string_view entity, std::string_view payload) override {
    typename Api::WriteBatch batch;
    add(batch, entity, payload);
    typename Api::WriteOptions options;
    options.sync = true;
    check(db_->Write(options, &batch), "durable write");
  }
  uint64_t scan() override {
    std::unique_ptr<typename Api::Iterator> it(db_->NewIterator(typename Api::ReadOptions()));
    uint64_t events = 0, bytes = 0;
    for (it->Seek("e"); it->Valid() && it->key()[0] == 'e'; it->Next()) {
      ++events;
      bytes += payload_of(it->value()).size();
    }
    check(it->status(), "scan");
    sink_ += bytes;
    return events;
  }
  bool has_entity_index() const override { return entity_key_; }
  uint64_t read_entity(std::string_view entity) override {
    std::string prefix = "i";
    prefix.append(entity);
    prefix.push_back('\0');
    typename Api::ReadOptions read;
    std::unique_ptr<typename Api::Iterator> it(db_->NewIterator(read));
    uint64_t events = 0, bytes = 0;
    std::string key = "e", value;
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      key.resize(1);
      key.append(it->key().data() + prefix.size(), 8);
      check(db_->Get(read, key, &value), "get");
      ++events;
      bytes += payload_of(value).size();
    }
    check(it->status(), "entity scan");
    sink_ += bytes;
    return events;
  }

 private:
  static uint64_t be64(const char* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
    return v;
  }
  static std::string_view payload_of(typename Api::Slice value) {
    const size_t entity = static_cast<uint8_t>(value.data()[0]);
    return {value.data() + 1 + entity, value.size() - 1 - entity};
  }
  void add(typename Api::WriteBatch& batch, std::string_view entity, std::string_view payload) {
    if (entity.size() > 255) fail(name_ + ": entity names above 255 bytes are not supported");
    const uint64_t sequence = next_.fetch_add(1);
    std::string key = "e", value;
    put_be64(key, sequence);
    value.push_back(static_cast<char>(entity.size()));
    value.append(entity);
    value.append(payload);
    batch.Put(key, value);
    if (entity_key_) {
      std::string index = "i";
      index.append(entity);
      index.push_back('\0');
      put_be64(index, sequence);
      batch.Put(index, typename Api::Slice());
    }
  }
  void check(const typename Api::Status& status, const char* what) {
    if (!status.ok()) fail(name_ + " " + what + ": " + status.ToString());
  }

  std::string name_;
  bool entity_key_;
  typename Api::DB* db_ = nullptr;
  std::atomic<uint64_t> next_{1};
  std::atomic<uint64_t> sink_{0};
};

}  // namespace keel::compare
