// A store under comparison: keel or one of its peers (LevelDB, RocksDB, SQLite), each used the
// way an application would keep an event log in it. The workloads (workload.cc) only call this
// interface, so every subject does the same work in the same run.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keel::compare {

// One event of a batch: the entity it belongs to and its payload.
struct Item {
  std::string_view entity;
  std::string_view payload;
};

class Subject {
 public:
  virtual ~Subject() = default;

  // Opens the store in `dir`, creating it when missing, with the subject's default options.
  virtual void open(const std::string& dir) = 0;
  virtual void close() = 0;

  // One event as its own commit, written to the OS but not synced (keel's Durability::Written;
  // the peers' unsynced write / synchronous=OFF).
  virtual void append_written(std::string_view entity, std::string_view payload) = 0;
  // One atomic batch, written but not synced.
  virtual void append_batch_written(std::span<const Item> items) = 0;
  // One event, durable when this returns. Called from many threads at once.
  virtual void append_durable(std::string_view entity, std::string_view payload) = 0;

  // Visits every event in order, reading each payload; returns the number of events.
  virtual uint64_t scan() = 0;
  // Whether the subject can read one entity's events without a full scan.
  virtual bool has_entity_index() const = 0;
  // Visits the events of one entity in order, reading each payload; returns their number.
  virtual uint64_t read_entity(std::string_view entity) = 0;
  // fdatasyncs the subject issued since open, when it can tell (0 when it cannot).
  virtual uint64_t syncs() const { return 0; }
};

// The subjects by name: keel, leveldb, leveldb+key, rocksdb, rocksdb+key, sqlite, sqlite+key
// ("+key": a per-entity secondary key written in the same batch as the event).
std::vector<std::string> subject_names();
std::unique_ptr<Subject> make_subject(const std::string& name);

std::unique_ptr<Subject> make_keel();
std::unique_ptr<Subject> make_leveldb(bool entity_key);
std::unique_ptr<Subject> make_rocksdb(bool entity_key);
std::unique_ptr<Subject> make_sqlite(bool entity_key);

// Stops the run with a message: a subject that cannot do its work must not report a number.
[[noreturn]] void fail(const std::string& what);

// Big-endian 8 bytes: keys that sort in sequence order.
void put_be64(std::string& out, uint64_t value);

}  // namespace keel::compare
