// libFuzzer target: the YAML configuration loader (cli/src/config_loader.cpp
// with the acme:, certificates:, admin: and metrics: readers). Whatever the
// text, parse_config returns a config or an error naming the file; it never
// throws, crashes or aborts. Relative paths resolve against a directory that
// does not exist, so file-reading keys (client_ca, crl, token_file) fail as
// they would for a missing file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config_loader.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string const text(reinterpret_cast<char const*>(data), size);
  auto const config = edge::cli::parse_config(text, "fuzz.yaml", "/nonexistent/edge-fuzz");
  if (config) {
    if (config->source != "fuzz.yaml") std::abort();
  } else if (!config.error().message.starts_with("fuzz.yaml")) {
    std::abort();  // every error names the file (and where it can, line:column and key)
  }
  return 0;
}
