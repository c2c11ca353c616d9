// The comparison's results: every measured value per subject, the medians, the ratios of keel to
// each peer, a printed table and a CSV file.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace keel::compare {

struct MetricInfo {
  const char* name;    // as the workloads report it
  const char* label;   // as the table shows it
  bool higher_better;  // events/s: higher; times and bytes: lower
};

// The metrics in table order.
const std::vector<MetricInfo>& metrics();

class Results {
 public:
  void add(const std::string& subject, const std::string& metric, int repetition, double value);
  // The median over repetitions, or a negative value when the subject has no such measurement.
  double median(const std::string& subject, const std::string& metric) const;
  // The table: one row per metric, a column per subject (medians), then keel / leveldb,
  // keel / leveldb+key and keel / the best peer (the raw quotient: for a time or a size, below 1
  // is keel ahead).
  std::string table(const std::vector<std::string>& subjects) const;
  // The same table in Markdown (docs/BENCHMARKS.md, written by scripts/bench-report).
  std::string markdown(const std::vector<std::string>& subjects) const;
  // subject,metric,repetition,value for every value, then one row per median (repetition
  // "median").
  std::string csv() const;

 private:
  // subject -> metric -> (repetition, value)
  std::map<std::string, std::map<std::string, std::vector<std::pair<int, double>>>> values_;
};

}  // namespace keel::compare
