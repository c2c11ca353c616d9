// RocksDB (Debian librocksdb-dev) as an event log: see kv_subject.h.
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include "kv_subject.h"

namespace keel::compare {
namespace {

struct RocksDbApi {
  using DB = rocksdb::DB;
  using Options = rocksdb::Options;
  using WriteOptions = rocksdb::WriteOptions;
  using ReadOptions = rocksdb::ReadOptions;
  using WriteBatch = rocksdb::WriteBatch;
  using Slice = rocksdb::Slice;
  using Iterator = rocksdb::Iterator;
  using Status = rocksdb::Status;
  static void destroy(DB* db) {
    rocksdb::Status closed = db->Close();
    if (!closed.ok()) fail("rocksdb close: " + closed.ToString());
    delete db;
  }
};

}  // namespace

std::unique_ptr<Subject> make_rocksdb(bool entity_key) {
  return std::make_unique<KvSubject<RocksDbApi>>(entity_key ? "rocksdb+key" : "rocksdb",
                                                 entity_key);
}

}  // namespace keel::compare
