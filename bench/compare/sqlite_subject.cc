// SQLite as an event log: events(seq INTEGER PRIMARY KEY, entity TEXT, payload BLOB) in WAL mode,
// each append its own transaction. Unsynced writes run at synchronous=OFF, durable ones at FULL (a
// WAL commit fsyncs the log). With an entity key, an index on (entity, seq) is kept as well. One
// connection; SQLite serializes writers, so the durable callers take turns on it.
#include <errno.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <mutex>

#include "subject.h"

namespace keel::compare {
namespace {

class SqliteSubject final : public Subject {
 public:
  explicit SqliteSubject(bool entity_key) : entity_key_(entity_key) {}
  ~SqliteSubject() override { close(); }

  void open(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) fail("mkdir " + dir);
    if (sqlite3_open((dir + "/events.db").c_str(), &db_) != SQLITE_OK) fail("sqlite open " + dir);
    exec("PRAGMA journal_mode=WAL");
    exec(
        "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, entity TEXT NOT NULL, "
        "payload BLOB NOT NULL)");
    if (entity_key_) exec("CREATE INDEX IF NOT EXISTS events_entity ON events (entity, seq)");
    set_synchronous(false);
    insert_ = prepare("INSERT INTO events (entity, payload) VALUES (?, ?)");
    scan_ = prepare("SELECT payload FROM events ORDER BY seq");
    entity_ = prepare("SELECT payload FROM events WHERE entity = ? ORDER BY seq");
  }
  void close() override {
    if (db_ == nullptr) return;
    for (sqlite3_stmt* s : {insert_, scan_, entity_}) sqlite3_finalize(s);
    if (sqlite3_close(db_) != SQLITE_OK) fail("sqlite close");
    db_ = nullptr;
  }
  void append_written(std::string_view entity, std::string_view payload) override {
    set_synchronous(false);
    insert(entity, payload);
  }
  void append_batch_written(std::span<const Item> items) override {
    set_synchronous(false);
    exec("BEGIN");
    for (const Item& item : items) insert(item.entity, item.payload);
    exec("COMMIT");
  }
  void append_durable(std::string_view entity, std::string_view payload) override {
    std::lock_guard lock(mutex_);
    set_synchronous(true);
    insert(entity, payload);
  }
  uint64_t scan() override { return read_all(scan_); }
  bool has_entity_index() const override { return entity_key_; }
  uint64_t read_entity(std::string_view entity) override {
    sqlite3_bind_text(entity_, 1, entity.data(), static_cast<int>(entity.size()), SQLITE_STATIC);
    return read_all(entity_);
  }

 private:
  void exec(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
      fail(std::string("sqlite ") + sql + ": " + sqlite3_errmsg(db_));
    }
  }
  sqlite3_stmt* prepare(const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql, -1, &s, nullptr) != SQLITE_OK) {
      fail(std::string("sqlite prepare: ") + sqlite3_errmsg(db_));
    }
    return s;
  }
  void set_synchronous(bool full) {
    if (synchronous_full_ == full && synchronous_set_) return;
    exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF");
    synchronous_full_ = full;
    synchronous_set_ = true;
  }
  void insert(std::string_view entity, std::string_view payload) {
    sqlite3_bind_text(insert_, 1, entity.data(), static_cast<int>(entity.size()), SQLITE_STATIC);
    sqlite3_bind_blob(insert_, 2, payload.data(), static_cast<int>(payload.size()), SQLITE_STATIC);
    if (sqlite3_step(insert_) != SQLITE_DONE)
      fail(std::string("sqlite insert: ") + sqlite3_errmsg(db_));
    sqlite3_reset(insert_);
  }
  uint64_t read_all(sqlite3_stmt* s) {
    uint64_t events = 0, bytes = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      ++events;
      bytes += static_cast<uint64_t>(sqlite3_column_bytes(s, 0));
      sink_ += sqlite3_column_blob(s, 0) != nullptr;  // the payload read, as a reader would
    }
    if (rc != SQLITE_DONE) fail(std::string("sqlite read: ") + sqlite3_errmsg(db_));
    sqlite3_reset(s);
    sink_ += bytes;
    return events;
  }

  bool entity_key_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* scan_ = nullptr;
  sqlite3_stmt* entity_ = nullptr;
  std::mutex mutex_;
  bool synchronous_full_ = false;
  bool synchronous_set_ = false;
  uint64_t sink_ = 0;
};

}  // namespace

std::unique_ptr<Subject> make_sqlite(bool entity_key) {
  return std::make_unique<SqliteSubject>(entity_key);
}

}  // namespace keel::compare
