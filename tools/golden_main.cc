// keel-golden DIR: writes the golden store (tools/golden_store.h) into DIR, which must not exist.
#include <cstdio>
#include <cstring>

#include "golden_store.h"

int main(int argc, char** argv) {
  if (argc != 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fprintf(stderr,
                 "usage: keel-golden DIR\n"
                 "Writes the deterministic golden store into DIR (which must not exist yet).\n"
                 "segments/golden/ is this tool's output; tests/golden_test.cc byte-compares.\n");
    return argc == 2 ? 0 : 2;
  }
  auto& fs = keel::platform::posix_file_system();
  auto exists = fs.exists(argv[1]);
  if (!exists.ok() || *exists) {
    std::fprintf(stderr, "keel-golden: %s already exists; remove it first\n", argv[1]);
    return 1;
  }
  keel::Status status = keel::tools::write_golden_store(fs, argv[1]);
  if (!status.ok()) {
    std::fprintf(stderr, "keel-golden: %s\n", status.error().to_string().c_str());
    return 1;
  }
  return 0;
}
