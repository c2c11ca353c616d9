#include "log/poisoned_logs.h"

#include <map>
#include <mutex>
#include <utility>

namespace keel::log {
namespace {

using Key = std::pair<const platform::FileSystem*, std::string>;

std::mutex& registry_mutex() {
  static std::mutex mutex;
  return mutex;
}

std::map<Key, SyncedEnd>& registry() {
  static auto* map = new std::map<Key, SyncedEnd>();  // never destroyed: usable at exit
  return *map;
}

}  // namespace

void remember_synced_end(const platform::FileSystem& fs, const std::string& directory,
                         SyncedEnd end) {
  std::lock_guard lock(registry_mutex());
  registry().try_emplace(Key{&fs, directory}, end);
}

std::optional<SyncedEnd> take_synced_end(const platform::FileSystem& fs,
                                         const std::string& directory) {
  std::lock_guard lock(registry_mutex());
  auto it = registry().find(Key{&fs, directory});
  if (it == registry().end()) return std::nullopt;
  SyncedEnd end = it->second;
  registry().erase(it);
  return end;
}

}  // namespace keel::log
