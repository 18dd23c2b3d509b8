// tq-ceiling's command line, parsed apart from the server so that CLI11's
// templates compile without optimisation (they took most of the 16 s the
// ceiling took to compile at -O3); the server's loop stays -O3.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

struct CeilingOptions {
  uint16_t port = 0;
  std::string durability = "none";  // none, log or fsync
  std::string log_path;
  size_t payload_bytes = 100;
};

// The options, or the exit code to end with (help shown, or a bad flag said).
std::optional<CeilingOptions> parse_ceiling_options(int argc, char** argv, int* exit_code);
