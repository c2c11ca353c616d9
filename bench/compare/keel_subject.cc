// keel with default options (StoreOptions{} plus create_if_missing).
#include <atomic>

#include "keel/keel.h"
#include "subject.h"

namespace keel::compare {
namespace {

class KeelSubject final : public Subject {
 public:
  void open(const std::string& dir) override {
    StoreOptions options;
    options.create_if_missing = true;
    auto opened = Store::open(dir, options);
    if (!opened.ok()) fail("keel open: " + opened.error().to_string());
    store_ = std::move(*opened);
  }
  void close() override {
    if (!store_) return;
    Status closed = store_->close();
    if (!closed.ok()) fail("keel close: " + closed.error().to_string());
    store_.reset();
  }
  void append_written(std::string_view entity, std::string_view payload) override {
    AppendOptions options;
    options.durability = Durability::Written;
    auto r = store_->append({std::string(entity), {}}, EventKind::make(1, 1), payload, options);
    if (!r.ok()) fail("keel append: " + r.error().to_string());
  }
  void append_batch_written(std::span<const Item> items) override {
    batch_.resize(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      batch_[i].coordinate.entity.assign(items[i].entity);
      batch_[i].kind = EventKind::make(1, 1);
      batch_[i].payload.assign(items[i].payload);
    }
    BatchOptions options;
    options.durability = Durability::Written;
    auto r = store_->append_batch(batch_, options);
    if (!r.ok()) fail("keel append_batch: " + r.error().to_string());
  }
  void append_durable(std::string_view entity, std::string_view payload) override {
    auto r = store_->append({std::string(entity), {}}, EventKind::make(1, 1), payload);
    if (!r.ok()) fail("keel durable append: " + r.error().to_string());
  }
  uint64_t scan() override {
    uint64_t events = 0, bytes = 0;
    Status s = store_->scan(1, UINT64_MAX, counter(events, bytes));
    if (!s.ok()) fail("keel scan: " + s.error().to_string());
    sink_ += bytes;
    return events;
  }
  bool has_entity_index() const override { return true; }
  uint64_t read_entity(std::string_view entity) override {
    uint64_t events = 0, bytes = 0;
    Status s = store_->entity_stream(entity, 0, 1, UINT64_MAX, counter(events, bytes));
    if (!s.ok()) fail("keel entity_stream: " + s.error().to_string());
    sink_ += bytes;
    return events;
  }
  uint64_t syncs() const override { return store_ ? store_->stats().commit_syncs : 0; }

 private:
  // A visitor that counts the events and their payload bytes, the same work as the peers' loops
  // (kv_subject.h): locals per event, one store into sink_ per read.
  static EventVisitor counter(uint64_t& events, uint64_t& bytes) {
    return [&events, &bytes](const EventView& e) {
      ++events;
      bytes += e.payload.size();
      return true;
    };
  }

  std::unique_ptr<Store> store_;
  std::vector<BatchItem> batch_;
  std::atomic<uint64_t> sink_{0};  // keeps the reads from being optimized away
};

}  // namespace

std::unique_ptr<Subject> make_keel() { return std::make_unique<KeelSubject>(); }

}  // namespace keel::compare
