#include "artifact/copy_check.h"

#include "keel/snapshot.h"
#include "keel/store.h"
#include "log/consumer_file.h"
#include "log/snapshot_files.h"

namespace keel::artifact {

namespace {

// A FailClosed error is a finding about the copy; any other is the environment's.
bool about_the_copy(const StoreError& error) {
  return error.error_class() == ErrorClass::FailClosed;
}

}  // namespace

Result<std::string> problem_with_copy(platform::FileSystem& fs, const std::string& directory,
                                      uint64_t sequence, uint64_t epoch, bool verify) {
  StoreOptions options;
  options.read_only = true;
  options.file_system = &fs;
  auto opened = Store::open(directory, options);
  if (!opened.ok()) {
    if (!about_the_copy(opened.error())) return std::move(opened).error();
    return "it is not a sound store: its files do not open: " + opened.error().to_string();
  }
  Store& copy = **opened;
  const StoreStats stats = copy.stats();
  if (stats.sequence_next != sequence + 1 || stats.sequence_durable != sequence) {
    return "its log holds events up to sequence " + std::to_string(stats.sequence_next - 1) +
           "; MANIFEST says " + std::to_string(sequence);
  }
  if (verify) {
    // The open trusts an index image for the events it covers; verify reads every frame and
    // checks every chain.
    auto verified = copy.verify();
    if (!verified.ok() && !about_the_copy(verified.error())) return std::move(verified).error();
    if (!verified.ok() || !verified->ok) {
      return "it is not a sound store: its log does not verify: " +
             (verified.ok() ? verified->problem : verified.error().to_string());
    }
  }
  if (copy.epoch() != epoch) {
    return "its EPOCH is " + std::to_string(copy.epoch()) + "; MANIFEST says " +
           std::to_string(epoch);
  }
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> snapshots, log::list_snapshot_names(fs, directory));
  for (const std::string& name : snapshots) {
    auto loaded = load_snapshot(copy, name);
    if (!loaded.ok() && !about_the_copy(loaded.error())) return std::move(loaded).error();
    if (!loaded.ok()) return "snapshot " + name + " does not load: " + loaded.error().to_string();
  }
  KEEL_ASSIGN_OR_RETURN(std::vector<std::string> consumers, log::list_consumers(fs, directory));
  for (const std::string& name : consumers) {
    auto cursor = log::read_consumer_cursor(fs, directory, name);
    if (!cursor.ok() && !about_the_copy(cursor.error())) return std::move(cursor).error();
    if (!cursor.ok()) return "consumer " + name + " is unreadable: " + cursor.error().to_string();
    if (*cursor && (*cursor)->cursor > sequence) {
      return "consumer " + name + " committed cursor " + std::to_string((*cursor)->cursor) +
             ", beyond the log's " + std::to_string(sequence);
    }
  }
  return std::string();
}

}  // namespace keel::artifact
