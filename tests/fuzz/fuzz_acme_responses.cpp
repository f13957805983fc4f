// libFuzzer target: what the ACME client reads from a server. The first byte
// says which resource the body is; the rest is an HTTP response as the
// transport hands it over: header lines ("HTTP/1.1 200 OK", "Name: value")
// up to an empty line, then the body.
//   d directory        o order             a authorization (challenges)
//   p problem document i renewalInfo (ARI) c certificate chain (PEM)
//   n newAccount answer
// Every input also goes through the header readers (Retry-After, Link
// rel="alternate", Location, Content-Type) and error_from_response.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "acme_resources.hpp"
#include "acme_session.hpp"
#include "crypto.hpp"
#include "problem.hpp"

namespace {

using namespace edge::acme;

HttpResponse make_response(std::string_view text) {
  HttpResponse response;
  response.status = 200;
  while (!text.empty()) {
    auto const end = text.find('\n');
    auto const line = text.substr(0, end == std::string_view::npos ? text.size() : end + 1);
    text.remove_prefix(line.size());
    if (line == "\n" || line == "\r\n") break;
    if (line.starts_with("HTTP/")) {
      // curl reports the status code itself; take it from the status line
      // ("HTTP/1.1 200 OK", "HTTP/2 200") here.
      auto const space = line.find(' ');
      int status = 0;
      for (std::size_t i = space + 1; space != std::string_view::npos && i < line.size() && i <= space + 3; ++i) {
        if (line[i] < '0' || line[i] > '9') break;
        status = status * 10 + (line[i] - '0');
      }
      response.status = status;
    }
    add_header_line(response, line);
  }
  response.body = std::string(text);
  return response;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size == 0) return 0;
  char const kind = static_cast<char>(data[0]);
  auto const response = make_response({reinterpret_cast<char const*>(data + 1), size - 1});

  // Header readers, as every request in the client uses them.
  if (auto const retry = retry_after_of(response)) check(retry->count() >= 0);
  (void)alternate_links(response);
  (void)response.header("Location");
  (void)response.header("Replay-Nonce");
  auto const error = error_from_response(response, "fuzz");
  check(!error.type.empty() && error.status == response.status);

  switch (kind) {
    case 'd':
      if (auto const directory = parse_directory(response.body)) {
        check(!directory->new_nonce.empty() && !directory->new_account.empty() && !directory->new_order.empty());
        (void)directory->offers_profile("tlsserver");
      }
      break;
    case 'o':
      if (auto const order = parse_order(response.body, "https://acme.test/order/1")) {
        check(!order->status.empty() && !order->finalize.empty());
      }
      break;
    case 'a':
      if (auto const authz = parse_authorization(response.body, "https://acme.test/authz/1")) {
        check(!authz->status.empty() && !authz->identifier.value.empty());
        (void)validation_server_name(authz->identifier);
        (void)identifier_label(authz->identifier);
      }
      break;
    case 'p':
      if (auto const problem = parse_problem_json(response.body)) check(!problem->document.empty());
      break;
    case 'i':
      if (auto const window = parse_renewal_info(response)) {
        check(window->start <= window->end);
        check(window->retry_after && window->retry_after->count() >= 60 && window->retry_after->count() <= 86400);
      }
      break;
    case 'c':
      if (auto const chain = parse_pem_chain(response.body)) {
        check(!chain->empty());
        check(chain_issuer_names(*chain).size() == chain->size());
        for (auto const& certificate : *chain) (void)certificate_der(certificate.get());
      }
      (void)ari_cert_id(response.body);
      (void)chain_has_issuer(response.body, "Pebble Intermediate CA");
      break;
    case 'n':
      // newAccount: the client reads the Location header; the body is not used.
      (void)response.header("Location");
      break;
    default:
      break;
  }
  return 0;
}
