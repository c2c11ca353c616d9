// keel snapshot list|show|prune: the named snapshots of a store (include/keel/snapshot.h).
#include <cstdio>
#include <fstream>
#include <string>

#include "cli/commands.h"
#include "keel/keel.h"

namespace keel::cli {

namespace {

void print_payloads(const SnapshotListing& listing) {
  for (const SnapshotPayload& p : listing.payloads) {
    const char* role = p.published ? "published"
                       : !listing.published || p.sequence > listing.published->sequence
                           ? "orphan (prune removes it)"
                           : "older";
    std::printf("  payload sequence %llu  %s  %llu bytes  %s\n",
                static_cast<unsigned long long>(p.sequence), p.hash.to_hex().c_str(),
                static_cast<unsigned long long>(p.size), role);
  }
}

int list(Store& store) {
  auto listings = list_snapshots(store);
  if (!listings.ok()) return fail("snapshot list", listings.error());
  if (listings->empty()) {
    std::printf("(no snapshots)\n");
    return 0;
  }
  std::printf("%-24s %12s %12s %8s %-32s %9s\n", "NAME", "SEQUENCE", "BYTES", "EPOCH", "HASH",
              "PAYLOADS");
  int damaged = 0;
  for (const SnapshotListing& l : *listings) {
    if (!l.problem.empty()) {
      std::printf("%-24s damaged: %s\n", l.name.c_str(), l.problem.c_str());
      ++damaged;
    } else if (!l.published) {
      std::printf("%-24s %12s %12s %8s %-32s %9zu\n", l.name.c_str(), "-", "-", "-",
                  "(nothing published)", l.payloads.size());
    } else {
      std::printf("%-24s %12llu %12llu %8llu %-32s %9zu\n", l.name.c_str(),
                  static_cast<unsigned long long>(l.published->sequence),
                  static_cast<unsigned long long>(l.published->size),
                  static_cast<unsigned long long>(l.published->epoch),
                  l.published->hash.to_hex().c_str(), l.payloads.size());
    }
  }
  return damaged == 0 ? 0 : 1;
}

int show(Store& store, const std::string& name, const ParsedArgs& args) {
  const std::string command = "snapshot show";
  auto listings = list_snapshots(store);
  if (!listings.ok()) return fail(command, listings.error());
  const SnapshotListing* listing = nullptr;
  for (const SnapshotListing& l : *listings) {
    if (l.name == name) listing = &l;
  }
  if (listing == nullptr) {
    return fail(command,
                StoreError(ErrorCode::NotFound).with("what", "snapshot").with("key", name));
  }
  std::printf("snapshot %s\n", name.c_str());
  print_payloads(*listing);
  // Loading checks the published payload whole: its size and hash against the pointer, and its
  // sequence against the log.
  auto loaded = load_snapshot(store, name);
  if (!loaded.ok()) return fail(command, loaded.error());
  if (!loaded->has_value()) {
    std::printf("  nothing published\n");
    return 0;
  }
  const Snapshot& s = **loaded;
  std::printf("  published: sequence %llu, %llu bytes, epoch %llu, hash %s (verified)\n",
              static_cast<unsigned long long>(s.info.sequence),
              static_cast<unsigned long long>(s.info.size),
              static_cast<unsigned long long>(s.info.epoch), s.info.hash.to_hex().c_str());
  if (auto out = args.get("output")) {
    std::ofstream file(*out, std::ios::binary | std::ios::trunc);
    file.write(s.bytes.data(), static_cast<std::streamsize>(s.bytes.size()));
    file.close();
    if (!file) return usage_error(command, "could not write " + *out);
    std::printf("  bytes written to %s\n", out->c_str());
  }
  return 0;
}

int prune(Store& store, const std::string& name, const ParsedArgs& args) {
  const std::string command = "snapshot prune";
  int code = 0;
  uint64_t keep = 2;
  if (!number_option(args, command, "keep", keep, 1'000'000, code)) return code;
  if (keep == 0) return usage_error(command, "--keep wants a number from 1 (the published one)");
  auto pruned = prune_snapshots(store, name, static_cast<size_t>(keep));
  if (!pruned.ok()) return fail(command, pruned.error());
  std::printf("snapshot %s: payloads kept %llu, removed %llu (%llu bytes)\n", name.c_str(),
              static_cast<unsigned long long>(pruned->kept),
              static_cast<unsigned long long>(pruned->removed),
              static_cast<unsigned long long>(pruned->bytes_removed));
  Status closed = store.close();
  if (!closed.ok()) return fail(command, closed.error());
  return 0;
}

}  // namespace

int run_snapshot(const ParsedArgs& args) {
  const std::string& action = args.positional[0];
  const std::string command = "snapshot " + action;
  const bool named = args.positional.size() == 3;
  if (action == "list") {
    if (named) return usage_error(command, "takes DIR only");
  } else if (action == "show" || action == "prune") {
    if (!named) return usage_error(command, "takes DIR NAME");
  } else {
    return usage_error("snapshot", "ACTION is list, show or prune, got '" + action + "'");
  }
  int code = 0;
  auto store = open_store(command, args.positional[1], action == "prune", false, code);
  if (!store) return code;
  if (action == "list") return list(*store);
  if (action == "show") return show(*store, args.positional[2], args);
  return prune(*store, args.positional[2], args);
}

}  // namespace keel::cli
