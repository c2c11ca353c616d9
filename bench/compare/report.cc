#include "report.h"

#include <algorithm>
#include <cstdio>

namespace keel::compare {

const std::vector<MetricInfo>& metrics() {
  static const std::vector<MetricInfo> all = {
      {"append_written", "single appends at Written (events/s)", true},
      {"append_batch_written", "batches at Written (events/s)", true},
      {"durable_1", "1 caller at Durable (events/s)", true},
      {"durable_8", "8 callers at Durable (events/s)", true},
      {"durable_64", "64 callers at Durable (events/s)", true},
      {"durable_1_events_per_sync", "  1 caller: events per fdatasync", true},
      {"durable_8_events_per_sync", "  8 callers: events per fdatasync", true},
      {"durable_64_events_per_sync", "  64 callers: events per fdatasync", true},
      {"scan", "full scan, page cache warm (events/s)", true},
      {"entity_stream_us", "entity stream after reopen (us, median)", false},
      {"entity_stream_events", "  events per entity stream (mean)", true},
      {"disk_bytes", "disk bytes per event", false},
      {"memory_after_appends", "memory bytes per event after the appends", false},
      {"memory_after_reopen", "memory bytes per event after reopen + streams", false},
      {"close_ms", "close after the single appends (ms)", false},
      {"reopen_ms", "reopen after the single appends (ms)", false},
      {"reopen_big_ms", "reopen of the large store (ms)", false},
  };
  return all;
}

void Results::add(const std::string& subject, const std::string& metric, int repetition,
                  double value) {
  values_[subject][metric].emplace_back(repetition, value);
}

double Results::median(const std::string& subject, const std::string& metric) const {
  auto s = values_.find(subject);
  if (s == values_.end()) return -1;
  auto m = s->second.find(metric);
  if (m == s->second.end() || m->second.empty()) return -1;
  std::vector<double> v;
  for (const auto& [rep, value] : m->second) v.push_back(value);
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

namespace {

std::string number(double v) {
  char buf[32];
  if (v < 0) return "-";
  if (v >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e4)
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else if (v >= 100)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string ratio(double keel, double peer) {
  if (keel < 0 || peer <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", keel / peer);
  return buf;
}

}  // namespace

std::string Results::table(const std::vector<std::string>& subjects) const {
  std::string out;
  char cell[160];
  std::snprintf(cell, sizeof cell, "%-46s", "median of the repetitions");
  out += cell;
  for (const std::string& s : subjects) {
    std::snprintf(cell, sizeof cell, " %12s", s.c_str());
    out += cell;
  }
  out += "   keel/leveldb  keel/leveldb+key  keel/best peer\n";
  for (const MetricInfo& m : metrics()) {
    bool any = false;
    for (const std::string& s : subjects) any = any || median(s, m.name) >= 0;
    if (!any) continue;
    std::snprintf(cell, sizeof cell, "%-46s", m.label);
    out += cell;
    double best = -1;
    for (const std::string& s : subjects) {
      const double v = median(s, m.name);
      std::snprintf(cell, sizeof cell, " %12s", number(v).c_str());
      out += cell;
      if (s != "keel" && v > 0 && (best < 0 || (m.higher_better ? v > best : v < best))) best = v;
    }
    const double keel = median("keel", m.name);
    std::snprintf(cell, sizeof cell, "   %12s  %16s  %14s\n",
                  ratio(keel, median("leveldb", m.name)).c_str(),
                  ratio(keel, median("leveldb+key", m.name)).c_str(), ratio(keel, best).c_str());
    out += cell;
  }
  out +=
      "(ratios are keel / peer of the medians: above 1 is keel ahead for events/s, below 1 for "
      "times and bytes)\n";
  return out;
}

std::string Results::markdown(const std::vector<std::string>& subjects) const {
  std::string out = "| median of the repetitions |";
  std::string rule = "|---|";
  for (const std::string& s : subjects) {
    out += " " + s + " |";
    rule += "--:|";
  }
  out += " keel / leveldb | keel / leveldb+key | keel / best peer |\n";
  out += rule + "--:|--:|--:|\n";
  for (const MetricInfo& m : metrics()) {
    bool any = false;
    for (const std::string& s : subjects) any = any || median(s, m.name) >= 0;
    if (!any) continue;
    std::string label = m.label;
    const size_t indent = label.find_first_not_of(' ');
    if (indent > 0) label = "&nbsp;&nbsp;" + label.substr(indent);  // a sub-row of the one above
    out += "| " + label + " |";
    double best = -1;
    for (const std::string& s : subjects) {
      const double v = median(s, m.name);
      out += " " + number(v) + " |";
      if (s != "keel" && v > 0 && (best < 0 || (m.higher_better ? v > best : v < best))) best = v;
    }
    const double keel = median("keel", m.name);
    out += " " + ratio(keel, median("leveldb", m.name)) + " | " +
           ratio(keel, median("leveldb+key", m.name)) + " | " + ratio(keel, best) + " |\n";
  }
  out +=
      "\nRatios are keel / peer of the medians: above 1 is keel ahead for events/s, below 1 for "
      "times and bytes.\n";
  return out;
}

std::string Results::csv() const {
  std::string out = "subject,metric,repetition,value\n";
  char line[256];
  for (const auto& [subject, by_metric] : values_) {
    for (const auto& [metric, values] : by_metric) {
      for (const auto& [rep, value] : values) {
        std::snprintf(line, sizeof line, "%s,%s,%d,%.6g\n", subject.c_str(), metric.c_str(), rep,
                      value);
        out += line;
      }
    }
  }
  for (const auto& [subject, by_metric] : values_) {
    for (const auto& [metric, values] : by_metric) {
      std::snprintf(line, sizeof line, "%s,%s,median,%.6g\n", subject.c_str(), metric.c_str(),
                    median(subject, metric));
      out += line;
    }
  }
  return out;
}

}  // namespace keel::compare
