// The check an export makes of its copy and an import of its staged copy (src/artifact/): the
// directory opens read-only as the store the artifact promises.
#pragma once

#include <cstdint>
#include <string>

#include "keel/result.h"
#include "platform/file_system.h"

namespace keel::artifact {

// Opens the store at `directory` read-only and checks that it holds exactly the events up to
// `sequence`, in `epoch`, that every snapshot loads and that every consumer's cursor lies within
// the log; with `verify`, also every frame and chain (Store::verify). Returns what is wrong (empty
// when nothing is). Errors that say nothing of the copy (Io, NoSpace, PermissionDenied) are
// returned as errors.
Result<std::string> problem_with_copy(platform::FileSystem& fs, const std::string& directory,
                                      uint64_t sequence, uint64_t epoch, bool verify);

}  // namespace keel::artifact
