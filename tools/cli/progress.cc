#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace keel::cli {

bool stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(std::string label, bool terminal) : label_(std::move(label)), terminal_(terminal) {}

void Progress::update(uint64_t done, uint64_t total) {
  if (total == 0) return;
  int percent = static_cast<int>(done * 100 / total);
  if (terminal_) {
    if (percent == last_percent_) return;
    last_percent_ = percent;
    constexpr int kWidth = 30;
    int filled = percent * kWidth / 100;
    std::fprintf(stderr, "\r%s [%.*s%*s] %3d%% %llu/%llu", label_.c_str(), filled,
                 "##############################", kWidth - filled, "", percent,
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total));
    std::fflush(stderr);
  } else if (percent / 10 != last_step_) {
    last_step_ = percent / 10;
    std::fprintf(stderr, "%s: %llu/%llu (%d%%)\n", label_.c_str(),
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                 percent);
  }
}

void Progress::finish() {
  if (terminal_ && last_percent_ >= 0) std::fprintf(stderr, "\n");
}

}  // namespace keel::cli
