// keel repair: a writable open that runs recovery, says what it repaired, and closes; with
// --accept-data-loss it goes on when durable events are missing (StoreOptions::accept_data_loss).
#include <cstdio>

#include "cli/commands.h"
#include "keel/keel.h"

namespace keel::cli {

int run_repair(const ParsedArgs& args) {
  StoreOptions options;
  options.accept_data_loss = args.has("accept-data-loss");
  auto store = Store::open(args.positional[0], options);
  if (!store.ok()) {
    int code = open_failed("repair", args.positional[0], store.error());
    if (store.error().is(ErrorCode::DurableDataLost)) {
      std::fprintf(
          stderr,
          "keel repair: nothing was changed; run again with --accept-data-loss to cut "
          "the log at sequence %llu and issue the missing sequences again\n",
          static_cast<unsigned long long>(store.error().field_u64("recovered").value_or(0)));
    }
    return code;
  }
  StoreStats stats = (*store)->stats();
  for (const std::string& action : stats.recovery_actions)
    std::printf("repaired: %s\n", action.c_str());
  for (const std::string& loss : stats.data_losses)
    std::printf("data loss on record: %s\n", loss.c_str());
  if (stats.recovery_actions.empty()) std::printf("nothing to repair\n");
  Status closed = (*store)->close();
  if (!closed.ok()) return fail("repair", closed.error());
  std::printf("ok: the log ends at sequence %llu; epoch %llu\n",
              static_cast<unsigned long long>(stats.sequence_next - 1),
              static_cast<unsigned long long>(stats.epoch));
  return 0;
}

}  // namespace keel::cli
