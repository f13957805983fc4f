// libFuzzer target: certificate and key import. The input is a certificate
// file and a key file, separated by a line "%%" (without it, the whole input
// is both, like a combined PEM file). It goes through what edged does with
// manual certificates (store::describe_certificate, then the TLS context the
// proxy serves it with) and what it does with mTLS files (the first part as
// client_ca, the second as a CRL file). Bad input must come back as an error.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <edge/store/certificate_pem.hpp>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

#include "tls_contexts.hpp"
#include "tls_policy.hpp"

namespace {

// The CA and CRL loaders read files: two in-memory files (memfd; a file on
// disk that is truncated and rewritten per input makes ext4 wait for the
// disk, 70 ms per input here), opened by name through /proc/self/fd.
class ScratchFile {
 public:
  ScratchFile() : fd_(::memfd_create("edge-fuzz-pem", 0)) {
    if (fd_ < 0) std::abort();
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~ScratchFile() { ::close(fd_); }
  ScratchFile(ScratchFile const&) = delete;
  ScratchFile& operator=(ScratchFile const&) = delete;

  std::string const& write(std::string_view text) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    std::size_t done = 0;
    while (done < text.size()) {
      auto const n = ::pwrite(fd_, text.data() + done, text.size() - done, static_cast<off_t>(done));
      if (n <= 0) std::abort();
      done += static_cast<std::size_t>(n);
    }
    return path_;
  }

 private:
  int fd_;
  std::string path_;
};

void client_auth(std::string const& ca_file, std::string const* crl_file) {
  edge::proxy::ClientAuthPolicy policy;
  policy.mode = edge::proxy::ClientAuth::required;
  policy.client_ca_file = ca_file;
  if (crl_file) policy.crl_files.push_back(*crl_file);
  std::string why;
  if (!edge::proxy::check_client_auth_files(policy, why) && why.empty()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view const input(reinterpret_cast<char const*>(data), size);
  std::string_view chain = input, key = input;
  if (auto const split = input.find("\n%%\n"); split != std::string_view::npos) {
    chain = input.substr(0, split + 1);
    key = input.substr(split + 4);
  }

  auto const record = edge::store::describe_certificate("fuzz", std::string(chain), std::string(key),
                                                        edge::store::CertificateSource::manual);
  std::string why;
  auto const ctx =
      edge::proxy::make_certificate_context(edge::proxy::TlsPolicy{}, chain, key, edge::proxy::AlpnPolicy::http, why);
  if (!ctx && why.empty()) std::abort();
  if (std::getenv("EDGE_FUZZ_VERBOSE")) {  // to see why an input is refused when reproducing a finding
    std::fprintf(stderr, "describe_certificate: %s\nmake_certificate_context: %s\n",
                 record ? "ok" : record.error().message.c_str(), ctx ? "ok" : why.c_str());
  }
  // The store accepts only what the proxy can serve: a record that passed
  // describe_certificate must load as a TLS context.
  if (record && !ctx) std::abort();

  static ScratchFile ca_file, crl_file;
  auto const& ca = ca_file.write(chain);
  auto const& crl = crl_file.write(key);
  client_auth(ca, nullptr);
  client_auth(ca, &crl);
  return 0;
}
