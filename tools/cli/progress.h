// A progress indicator for long CLI work: a bar redrawn in place when stderr is a terminal, a plain
// line every 10% otherwise (logs and pipes stay readable).
#pragma once

#include <cstdint>
#include <string>

namespace keel::cli {

class Progress {
 public:
  Progress(std::string label, bool terminal);
  void update(uint64_t done, uint64_t total);
  void finish();

 private:
  std::string label_;
  bool terminal_;
  int last_percent_ = -1;
  int last_step_ = -1;
};

bool stderr_is_terminal();

}  // namespace keel::cli
