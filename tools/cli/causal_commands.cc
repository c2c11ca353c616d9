// keel ancestry and keel effects: an event's causes up to its root, and what it caused, as indented
// lines or JSON. Both are answered from the in-memory indexes (Store::ancestors, descendants).
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/json_codec.h"
#include "keel/keel.h"

namespace keel::cli {
namespace {

std::optional<EventId> event_id_argument(const std::string& command, const std::string& text,
                                         int& code) {
  auto id = EventId::from_hex(text);
  if (!id) code = usage_error(command, "EVENT_ID wants 32 hex digits, got '" + text + "'");
  return id;
}

// "#SEQ ENTITY/LANE@CLOCK kind C:T id HEX"
std::string ref_line(const EventRef& r) {
  // Appended step by step: GCC 12 at -O3 warns falsely (-Wrestrict) on "#" + std::string.
  std::string line = "#";
  line += std::to_string(r.sequence);
  line += ' ';
  line += r.entity + "/" + std::to_string(r.lane) + "@" + std::to_string(r.entity_clock);
  line += " kind " + kind_text(r.kind) + " id " + r.event_id.to_hex();
  return line;
}

void print_indented(size_t depth, const std::string& text) {
  std::printf("%s%s\n", std::string(2 * depth, ' ').c_str(), text.c_str());
}

// Prints `root` and under it each effect beneath its cause (children in sequence order): a
// depth-first walk of the breadth-first answer, with an explicit stack (chains may be long).
void print_effects_tree(const EventRef& root, const Effects& effects,
                        const std::vector<EventId>& causes) {
  std::map<EventId, std::vector<size_t>> children;  // cause -> indexes into effects.events
  for (size_t i = 0; i < effects.events.size(); ++i) children[causes[i]].push_back(i);
  print_indented(0, ref_line(root));
  struct Pending {
    size_t index;
    size_t depth;
  };
  std::vector<Pending> stack;
  auto push_children = [&](const EventId& cause, size_t depth) {
    auto it = children.find(cause);
    if (it == children.end()) return;
    for (auto child = it->second.rbegin(); child != it->second.rend(); ++child) {
      stack.push_back({*child, depth});
    }
  };
  push_children(root.event_id, 1);
  while (!stack.empty()) {
    Pending next = stack.back();
    stack.pop_back();
    const EventRef& effect = effects.events[next.index];
    print_indented(next.depth, ref_line(effect));
    push_children(effect.event_id, next.depth + 1);
  }
}

}  // namespace

int run_ancestry(const ParsedArgs& args) {
  const std::string cmd = "ancestry";
  int code = 0;
  auto id = event_id_argument(cmd, args.positional[1], code);
  if (!id) return code;
  auto store = open_store(cmd, args.positional[0], false, false, code);
  if (!store) return code;
  auto ancestry = store->ancestors(*id);
  if (!ancestry.ok()) return fail(cmd, ancestry.error());
  if (args.has("json")) {
    std::printf("%s\n", ancestry_json(*ancestry).c_str());
    return 0;
  }
  for (size_t i = 0; i < ancestry->chain.size(); ++i) {
    print_indented(i, (i == 0 ? "" : "caused by ") + ref_line(ancestry->chain[i]));
  }
  if (ancestry->external_cause) {
    print_indented(ancestry->chain.size(), "caused by external cause " +
                                               ancestry->external_cause->to_hex() +
                                               " (not an event of this store)");
  }
  return 0;
}

int run_effects(const ParsedArgs& args) {
  const std::string cmd = "effects";
  int code = 0;
  auto id = event_id_argument(cmd, args.positional[1], code);
  if (!id) return code;
  uint64_t limit = kEffectsLimitDefault;
  if (!number_option(args, cmd, "limit", limit, kQueryLimitMax, code)) return code;
  if (limit == 0) {
    return usage_error(cmd, "--limit wants a number from 1 to " + std::to_string(kQueryLimitMax));
  }
  auto store = open_store(cmd, args.positional[0], false, false, code);
  if (!store) return code;
  auto effects = store->descendants(*id, static_cast<size_t>(limit));
  if (!effects.ok()) return fail(cmd, effects.error());
  auto self = store->ancestors(*id, 1);
  if (!self.ok()) return fail(cmd, self.error());
  // Each effect's cause: the second link of its ancestry (index only, no log read).
  std::vector<EventId> causes;
  causes.reserve(effects->events.size());
  for (const EventRef& effect : effects->events) {
    auto link = store->ancestors(effect.event_id, 2);
    if (!link.ok()) return fail(cmd, link.error());
    if (link->chain.size() != 2) {
      std::fprintf(stderr, "keel effects: effect %s has no cause in the index\n",
                   effect.event_id.to_hex().c_str());
      return 1;
    }
    causes.push_back(link->chain[1].event_id);
  }
  if (args.has("json")) {
    std::printf("%s\n", effects_json(self->chain[0], *effects, causes).c_str());
    return 0;
  }
  print_effects_tree(self->chain[0], *effects, causes);
  if (effects->truncated) {
    std::printf("(truncated at %llu)\n", static_cast<unsigned long long>(limit));
  }
  return 0;
}

}  // namespace keel::cli
