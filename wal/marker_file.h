// The log directory's small marker files (RUNNING, NEWEST, CLOSED, BACKUP):
// written and removed so that a crash leaves either the old state or the new
// one, never a marker that is there but empty, or gone but back after a
// power cut.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "wal/file.h"

namespace tq::wal {

// Writes `contents` into dir/name (in place when it exists: keep the
// contents the same length so one write replaces them whole), synced, and
// the directory synced when the file is new.
Status write_marker_file(FileSystem& fs, const std::string& dir, const char* name,
                         std::string_view contents);

// What dir/name holds, without the spaces and newlines that pad or end it;
// nullopt when it cannot be read.
std::optional<std::string> read_marker_text(FileSystem& fs, const std::string& dir,
                                            const char* name);

// Removes dir/name and syncs the directory.
Status remove_marker_file(FileSystem& fs, const std::string& dir, const char* name);

}  // namespace tq::wal
