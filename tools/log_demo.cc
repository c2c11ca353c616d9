// keel-log-demo DIR: the demo until the CLI lands. Writes events into a store at DIR (created if
// missing), reopens it, and prints what recovery found.
#include <cstdio>
#include <cstring>
#include <string>

#include "format/event_body.h"
#include "log/log.h"

using namespace keel;

namespace {

int fail(const StoreError& error) {
  std::fprintf(stderr, "keel-log-demo: %s\n", error.to_string().c_str());
  return 1;
}

void print_recovery(const log::Log& log) {
  const auto& r = log.recovered();
  std::printf("  epoch %llu, %zu segment(s), next sequence %llu, tail: %s\n",
              static_cast<unsigned long long>(log.epoch()), r.segments.size(),
              static_cast<unsigned long long>(r.next_sequence),
              std::string(log::recovery_row(r.tail_rule).name).c_str());
  for (const auto& a : r.actions) {
    std::printf("  recovery %s on %s: offset %llu, %llu bytes and %llu frames dropped%s\n",
                std::string(log::recovery_row(a.rule).name).c_str(), a.path.c_str(),
                static_cast<unsigned long long>(a.offset),
                static_cast<unsigned long long>(a.bytes_dropped),
                static_cast<unsigned long long>(a.frames_dropped), a.applied ? "" : " (not applied)");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || std::strcmp(argv[1], "--help") == 0) {
    std::fprintf(stderr, "usage: keel-log-demo DIR\nAppends 10 events to the store at DIR "
                         "(created if missing), reopens it and prints what recovery found.\n");
    return argc == 2 ? 0 : 2;
  }
  auto& fs = platform::posix_file_system();
  log::LogOptions options;
  options.create_if_missing = true;
  auto opened = log::Log::open(fs, argv[1], options);
  if (!opened.ok()) return fail(opened.error());
  auto& log = **opened;
  std::printf("opened %s\n", argv[1]);
  print_recovery(log);
  uint64_t first = log.writer()->next_sequence();
  for (int i = 0; i < 10; ++i) {
    std::string entity = "order:" + std::to_string(i % 3);
    std::string payload = "\x81\xa1n" + std::string(1, static_cast<char>(i));
    format::EventBody e;
    e.event_id = EventId{log.epoch(), first + static_cast<uint64_t>(i)};
    e.entity = entity;
    e.scope = "demo";
    e.kind = 0x1001;
    e.correlation_id = e.event_id;
    e.payload = payload;
    Hash128 hash;
    if (auto s = log.writer()->append_event(e, &hash); !s.ok()) return fail(s.error());
    std::printf("  appended sequence %llu on %s, chained hash %s\n",
                static_cast<unsigned long long>(first + static_cast<uint64_t>(i)),
                entity.c_str(), hash.to_hex().c_str());
  }
  if (auto s = log.writer()->sync(); !s.ok()) return fail(s.error());
  if (auto s = log.close(); !s.ok()) return fail(s.error());
  opened = log::Log::open(fs, argv[1], {.create_if_missing = false, .read_only = true, .writer = {}});
  if (!opened.ok()) return fail(opened.error());
  std::printf("reopened read-only:\n");
  print_recovery(**opened);
  return 0;
}
