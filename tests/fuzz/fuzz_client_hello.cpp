// libFuzzer target: the ClientHello preread parser (untrusted bytes from any client).
#include "client_hello_preread.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  auto const result = edge::proxy::parse_client_hello({data, size});
  // Every prefix of a complete hello must be "need more" or the same verdict, never a crash.
  if (result.status == edge::proxy::PrereadStatus::complete && size > 0) {
    (void)edge::proxy::parse_client_hello({data, size - 1});
  }
  return 0;
}
