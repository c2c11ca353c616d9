// Helpers shared by the benchmarks: a failure that stops the run, a fresh temporary directory,
// wall time. A benchmark that cannot do its work aborts rather than report a number.
#pragma once

#include <errno.h>  // program_invocation_short_name (glibc)
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

namespace keel::bench {

// Prints "<program>: what" on stderr and aborts.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, what.c_str());
  std::abort();
}

// A new directory under $TMPDIR named after the program; the caller removes it.
inline std::string temp_dir() {
  std::string pattern = std::filesystem::temp_directory_path() /
                        (std::string(program_invocation_short_name) + "-XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) fail("mkdtemp " + pattern);
  return pattern;
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace keel::bench
