// libFuzzer target: the PROXY protocol v1/v2 header parser.
#include "proxy_protocol.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  auto const result = edge::proxy::parse_proxy_header({data, size});
  if (result.status == edge::proxy::ProxyParseStatus::complete) {
    if (result.consumed == 0 || result.consumed > size) std::abort();  // the header lies inside the input
    if (result.header.has_addresses) {
      // What we parsed we can write again, and parse back to the same addresses.
      auto const again = edge::proxy::make_proxy_header(edge::proxy::ProxyVersion::v2, result.header.source_address,
                                                        result.header.source_port, result.header.destination_address,
                                                        result.header.destination_port);
      auto const reparsed = edge::proxy::parse_proxy_header(
          {reinterpret_cast<std::uint8_t const*>(again.data()), again.size()});
      if (reparsed.header.source_address != result.header.source_address ||
          reparsed.header.source_port != result.header.source_port) {
        std::abort();
      }
    }
  }
  return 0;
}
