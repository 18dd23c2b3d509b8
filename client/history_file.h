// The REPL's history file: private to its owner, as a shell's is.
#pragma once

#include <optional>
#include <string>

namespace tq::client {

// Makes the file at `path` owner-only (0600) if it is a regular file of this
// user's; a device (TQ_HISTFILE=/dev/null, history off) or a link is left
// as it is.
void keep_private(const std::string& path);

// Why history could not be saved at `path` ("No such file or directory",
// "Permission denied"), or nullopt when it can be. Creates nothing: a file
// that does not exist yet is judged by its directory.
std::optional<std::string> history_problem(const std::string& path);

}  // namespace tq::client
