// Checks on the compiled code itself, for what no behaviour shows.
//
// The keyed append prefetches the idempotency key's bucket (and the oldest key's) so that those
// cache misses overlap the append's other work: at the default million-key window that is the
// difference between 1.2x and 1.4x the cost of a plain append (DECISIONS.md, "Idempotency cost").
// No result changes when the prefetch is lost, and it was lost twice: GCC takes a function of
// prefetches alone for a pure one and drops calls whose result is unused (our own void prefetch
// once, Abseil's raw_hash_set::prefetch under -O2). So this test reads this very test binary with
// binutils (nm, objdump) and counts the prefetch instructions `keel::Store::Impl::append` runs:
// its own and those of the functions named for prefetching it calls, inlined or not.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test_support.h"

namespace keel {
namespace {

struct Symbol {
  uint64_t address = 0;
  uint64_t size = 0;
};

bool names_prefetch(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name.find("prefetch") != std::string::npos;
}

// Function symbols with a size, by demangled name (`nm -C -S --defined-only` lines:
// "address size type name").
std::map<std::string, Symbol> functions_of(const std::string& nm_output) {
  std::map<std::string, Symbol> functions;
  std::istringstream lines(nm_output);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string address, size, type;
    if (!(fields >> address >> size >> type) || (type != "T" && type != "t" && type != "W")) {
      continue;
    }
    std::string name;
    std::getline(fields >> std::ws, name);
    functions[name] = Symbol{std::stoull(address, nullptr, 16), std::stoull(size, nullptr, 16)};
  }
  return functions;
}

// The instruction lines of `objdump -d --no-show-raw-insn -C`: "  addr:\tmnemonic operands".
std::vector<std::string> instructions_of(const std::string& objdump_output) {
  std::vector<std::string> instructions;
  std::istringstream lines(objdump_output);
  std::string line;
  while (std::getline(lines, line)) {
    size_t tab = line.find(":\t");
    if (tab != std::string::npos) instructions.push_back(line.substr(tab + 2));
  }
  return instructions;
}

bool is_prefetch(const std::string& instruction) {
  return instruction.rfind("prefetch", 0) == 0 ||  // x86-64: prefetcht0, prefetchnta, prefetchw
         instruction.rfind("prfm", 0) == 0;         // AArch64
}

// The function a call instruction names: "call   1234 <name>" or "bl 1234 <name>".
std::string callee_of(const std::string& instruction) {
  if (instruction.rfind("call", 0) != 0 && instruction.rfind("bl", 0) != 0) return "";
  size_t open = instruction.find('<');
  size_t close = instruction.rfind('>');
  if (open == std::string::npos || close == std::string::npos || close < open) return "";
  std::string callee = instruction.substr(open + 1, close - open - 1);
  if (size_t plus = callee.rfind("+0x"); plus != std::string::npos) callee.resize(plus);
  return callee;
}

// Prefetch instructions `name` runs: its own, and those of every call it makes to a function named
// for prefetching, each call counted (an unoptimized build keeps those calls).
class PrefetchCounter {
 public:
  PrefetchCounter(const test::TempDir& scratch, std::string binary,
                  const std::map<std::string, Symbol>& functions)
      : scratch_(scratch), binary_(std::move(binary)), functions_(functions) {}

  int count(const std::string& name) {
    if (auto it = counted_.find(name); it != counted_.end()) return it->second;
    counted_[name] = 0;  // a call cycle counts nothing more
    const Symbol& symbol = functions_.at(name);
    std::ostringstream range;
    range << "-d --no-show-raw-insn -C --start-address=0x" << std::hex << symbol.address
          << " --stop-address=0x" << symbol.address + symbol.size << " '" << binary_ << "'";
    test::CommandRun dump = test::run_command(scratch_, "objdump", range.str());
    REQUIRE(dump.exit_code == 0);
    int prefetches = 0;
    for (const std::string& instruction : instructions_of(dump.out)) {
      if (is_prefetch(instruction)) ++prefetches;
      const std::string callee = callee_of(instruction);
      if (names_prefetch(callee) && functions_.count(callee) != 0) prefetches += count(callee);
    }
    return counted_[name] = prefetches;
  }

 private:
  const test::TempDir& scratch_;
  std::string binary_;
  const std::map<std::string, Symbol>& functions_;
  std::map<std::string, int> counted_;
};

TEST_CASE("the keyed append's prefetch instructions survive compilation", "[codegen]") {
  test::TempDir scratch;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  test::CommandRun nm = test::run_command(scratch, "nm", "-C -S --defined-only '" + self + "'");
  REQUIRE(nm.exit_code == 0);
  const std::map<std::string, Symbol> functions = functions_of(nm.out);
  PrefetchCounter counter(scratch, self, functions);
  int prefetches = 0;
  int appends = 0;
  for (const auto& [name, symbol] : functions) {
    if (name.rfind("keel::Store::Impl::append(", 0) != 0) continue;  // and its [clone .cold]
    ++appends;
    prefetches += counter.count(name);
  }
  REQUIRE(appends > 0);
  // At least the control-byte and slot lines of two buckets (the new key's and the oldest key's).
  // Losing IdempotencyIndex::prefetch leaves 0; losing Abseil's raw_hash_set::prefetch, as GCC -O2
  // did before [[gnu::flatten]], leaves the 2 entry hints.
  CHECK(prefetches >= 4);
}

}  // namespace
}  // namespace keel
