// LevelDB 1.23 (Debian libleveldb-dev) as an event log: see kv_subject.h.
#include <leveldb/db.h>
#include <leveldb/write_batch.h>

#include "kv_subject.h"

namespace keel::compare {
namespace {

struct LevelDbApi {
  using DB = leveldb::DB;
  using Options = leveldb::Options;
  using WriteOptions = leveldb::WriteOptions;
  using ReadOptions = leveldb::ReadOptions;
  using WriteBatch = leveldb::WriteBatch;
  using Slice = leveldb::Slice;
  using Iterator = leveldb::Iterator;
  using Status = leveldb::Status;
  static void destroy(DB* db) { delete db; }
};

}  // namespace

std::unique_ptr<Subject> make_leveldb(bool entity_key) {
  return std::make_unique<KvSubject<LevelDbApi>>(entity_key ? "leveldb+key" : "leveldb",
                                                 entity_key);
}

}  // namespace keel::compare
