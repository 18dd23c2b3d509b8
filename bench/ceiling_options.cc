#include "bench/ceiling_options.h"

#include <CLI/CLI.hpp>

std::optional<CeilingOptions> parse_ceiling_options(int argc, char** argv, int* exit_code) {
  CLI::App app{"tq-ceiling: a do-nothing server speaking tq's lines, to measure the ceiling"};
  CeilingOptions o;
  app.add_option("--port", o.port, "port on 127.0.0.1 (0: any free one)");
  app.add_option("--durability", o.durability, "none, log (write) or fsync (write + fdatasync)")
      ->check(CLI::IsMember({"none", "log", "fsync"}));
  app.add_option("--log-file", o.log_path, "log and fsync: the file the requests go to");
  app.add_option("--size", o.payload_bytes, "payload bytes in a DEQUEUE reply")
      ->check(CLI::Range(1, 1 << 20));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    *exit_code = app.exit(e);
    return std::nullopt;
  }
  return o;
}
