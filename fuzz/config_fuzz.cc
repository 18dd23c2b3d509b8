// Fuzzes the configuration loader: any text, well-formed YAML or not, gives
// a Config or one line of error, never a crash or an exception escaping.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  tq::server::ConfigResult r = tq::server::load_config_text(text, "fuzz.yaml");
  if (!r.config && r.error.empty()) abort();
  if (r.config && !r.error.empty()) abort();
  return 0;
}
