// The comparison's workloads, run on one Subject in a fresh directory: the same events (entities
// drawn from a popularity distribution, random incompressible payloads) for every subject.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "subject.h"

namespace keel::compare {

struct Config {
  uint64_t entities = 10'000;
  size_t payload_bytes = 100;
  double zipf = 0;  // 0: every entity equally likely; s > 0: entity i drawn with weight 1/(i+1)^s
  uint64_t events = 1'000'000;        // single appends at Written (the store read back afterwards)
  uint64_t batch_events = 3'000'000;  // events appended in batches at Written
  size_t batch_size = 100;
  double durable_seconds = 2.0;         // per number of durable callers
  std::vector<int> callers{1, 8, 64};   // durable callers
  uint64_t reopen_events = 10'000'000;  // the store whose reopen is timed (0: skip)
  int streams = 200;                    // entity streams read after reopen
  int repetitions = 3;
};

// Receives each measured value: the metric's name (report.h, metrics()) and the value.
using Sink = std::function<void(const std::string& metric, double value)>;

// Runs every workload of `config` on `subject` in fresh directories under `dir` (removed after),
// reporting each value through `sink` as soon as it is measured.
void run_workloads(const Config& config, Subject& subject, const std::string& dir,
                   const Sink& sink);

// The median latency, in microseconds, of a 4 KiB pwrite + fdatasync in `dir` (the disk's floor
// for one durable commit, measured in the same run as the subjects).
double fdatasync_probe_us(const std::string& dir, int rounds = 200);

}  // namespace keel::compare
