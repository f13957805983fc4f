#include <edge/store/certificate_pem.hpp>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <array>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace edge::store {
namespace {

template <auto Fn>
struct Deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Fn(p);
  }
};
void free_openssl_string(char* p) { OPENSSL_free(p); }
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using NamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using OpensslString = std::unique_ptr<char, Deleter<free_openssl_string>>;

// The oldest queued OpenSSL error (the root cause); clears the queue so the
// next operation on this thread starts clean.
std::string take_openssl_error() {
  unsigned long const code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  std::array<char, 256> buf{};
  ERR_error_string_n(code, buf.data(), buf.size());
  return buf.data();
}

BioPtr memory_bio(std::string const& s) {
  return BioPtr(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

// Never prompt on a terminal for an encrypted key: a served key must be usable unattended.
int refuse_passphrase(char*, int, int, void*) { return -1; }

Result<std::vector<X509Ptr>> read_chain(std::string const& pem) {
  ERR_clear_error();
  auto bio = memory_bio(pem);
  std::vector<X509Ptr> chain;
  while (X509Ptr cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
    // A certificate's DER parses without its key or signature algorithm
    // being looked at, but the TLS stack weighs both for every certificate
    // it serves (OpenSSL's security level check) and refuses the chain when
    // it cannot. Refuse such a chain here, before it replaces a certificate
    // that works (found by tests/fuzz/fuzz_pem_import).
    auto const where = "certificate chain: certificate " + std::to_string(chain.size() + 1);
    EVP_PKEY* const key = X509_get0_pubkey(cert.get());
    if (key == nullptr) return StoreError{where + ": its public key does not parse: " + take_openssl_error()};
    if (EVP_PKEY_get_security_bits(key) <= 0) {
      ERR_clear_error();
      return StoreError{where + ": its public key is of an unknown kind"};
    }
    int signature_bits = 0;
    bool const self_signed = (X509_get_extension_flags(cert.get()) & EXFLAG_SS) != 0;
    if (!self_signed && X509_get_signature_info(cert.get(), nullptr, nullptr, &signature_bits, nullptr) != 1) {
      ERR_clear_error();
      return StoreError{where + ": its signature algorithm is unknown"};
    }
    chain.push_back(std::move(cert));
  }
  // Running out of PEM blocks shows as "no start line"; anything else is a block that did not parse.
  unsigned long const last = ERR_peek_last_error();
  if (last != 0 &&
      !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE))
    return StoreError{"certificate chain: certificate " + std::to_string(chain.size() + 1) +
                      " does not parse: " + take_openssl_error()};
  ERR_clear_error();
  if (chain.empty()) return StoreError{"certificate chain: no PEM certificate found"};
  return chain;
}

Result<PkeyPtr> read_private_key(std::string const& pem) {
  // OpenSSL 3's decoders report a missing PEM block as "unsupported": tell it apart ourselves.
  if (pem.find("-----BEGIN ") == std::string::npos)
    return StoreError{"private key: no PEM private key found"};
  ERR_clear_error();
  auto bio = memory_bio(pem);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, refuse_passphrase, nullptr));
  if (key) return key;
  return StoreError{"private key does not parse (or is encrypted, which is not supported): " +
                    take_openssl_error()};
}

std::string hex(unsigned char const* data, std::size_t size) {
  static constexpr char digits[] = "0123456789ABCDEF";  // upper case, as OpenTelemetry writes hashes
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 0x0f]);
  }
  return out;
}

std::optional<std::int64_t> unix_seconds(ASN1_TIME const* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm));
}

std::optional<std::string> serial_hex(X509 const* cert) {
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) return std::nullopt;
  OpensslString text(BN_bn2hex(bn.get()));  // upper case, whole bytes
  if (!text) return std::nullopt;
  return std::string(text.get());
}

std::string issuer_rfc2253(X509 const* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_issuer_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long const size = BIO_get_mem_data(bio.get(), &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

std::vector<std::string> san_identifiers(X509 const* cert) {
  std::vector<std::string> out;
  NamesPtr names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    GENERAL_NAME const* n = sk_GENERAL_NAME_value(names.get(), i);
    if (n->type == GEN_DNS) {
      out.emplace_back(reinterpret_cast<char const*>(ASN1_STRING_get0_data(n->d.dNSName)),
                       static_cast<std::size_t>(ASN1_STRING_length(n->d.dNSName)));
    } else if (n->type == GEN_IPADD) {
      int const len = ASN1_STRING_length(n->d.iPAddress);
      int const family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : AF_UNSPEC;
      std::array<char, INET6_ADDRSTRLEN> text{};
      if (family != AF_UNSPEC &&
          inet_ntop(family, ASN1_STRING_get0_data(n->d.iPAddress), text.data(), text.size()))
        out.emplace_back(text.data());
    }
  }
  return out;
}

}  // namespace

Result<CertificateRecord> describe_certificate(std::string name, std::string chain_pem,
                                               std::string private_key_pem,
                                               CertificateSource source) {
  auto chain = read_chain(chain_pem);
  if (!chain) return chain.error();
  auto key = read_private_key(private_key_pem);
  if (!key) return key.error();
  X509* leaf = chain->front().get();
  if (X509_check_private_key(leaf, key->get()) != 1) {
    ERR_clear_error();
    return StoreError{"private key does not match the leaf certificate"};
  }

  CertificateRecord r;
  auto serial = serial_hex(leaf);
  auto not_before = unix_seconds(X509_get0_notBefore(leaf));
  auto not_after = unix_seconds(X509_get0_notAfter(leaf));
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned digest_size = 0;
  if (!serial || !not_before || !not_after ||
      X509_digest(leaf, EVP_sha256(), digest.data(), &digest_size) != 1)
    return StoreError{"certificate chain: leaf certificate: " + take_openssl_error()};

  r.name = std::move(name);
  r.identifiers = san_identifiers(leaf);
  r.chain_pem = std::move(chain_pem);
  r.private_key_pem = std::move(private_key_pem);
  r.serial = std::move(*serial);
  r.fingerprint_sha256 = hex(digest.data(), digest_size);
  r.not_before = *not_before;
  r.not_after = *not_after;
  r.issuer = issuer_rfc2253(leaf);
  r.source = source;
  return r;
}

}  // namespace edge::store
