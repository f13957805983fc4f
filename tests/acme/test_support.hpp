#pragma once
// OpenSSL helpers for the tests, written against OpenSSL directly so that the
// checks do not reuse the code under test.
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace edge::acme::test {

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<&EVP_PKEY_free>>;
using X509Cert = std::unique_ptr<X509, Deleter<&X509_free>>;
using X509Request = std::unique_ptr<X509_REQ, Deleter<&X509_REQ_free>>;
using Bio = std::unique_ptr<BIO, Deleter<&BIO_free_all>>;
using Bignum = std::unique_ptr<BIGNUM, Deleter<&BN_free>>;
using GeneralNames = std::unique_ptr<GENERAL_NAMES, Deleter<&GENERAL_NAMES_free>>;

inline std::vector<std::uint8_t> from_hex(std::string_view hex) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  return out;
}

inline std::vector<std::uint8_t> sha256_bytes(std::string_view data) {
  std::vector<std::uint8_t> digest(32);
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &length, EVP_sha256(), nullptr);
  return digest;
}

// Standard base64 from OpenSSL, turned into base64url without padding.
inline std::string openssl_base64url(std::vector<std::uint8_t> const& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int const n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (auto& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

// The P-256 key of RFC 7517 appendix A.2 (d checked against x, y).
inline Pkey rfc7517_example_key() {
  auto const d = from_hex("f3bd0c07a81fb932781ed52752f60cc89a6be5e51934fe01938ddb55d8f77801");
  auto pub = from_hex(
      "0430a0424cd21c2944838a2d75c92b37e76ea20d9f00893a3b4eee8a3c0aafec3e"
      "e04b65e92456d9888b52b379bdfbd51ee869ef1f0fc65b6659695b6cce081723");
  Bignum const priv(BN_bin2bn(d.data(), static_cast<int>(d.size()), nullptr));
  std::unique_ptr<OSSL_PARAM_BLD, Deleter<&OSSL_PARAM_BLD_free>> bld(OSSL_PARAM_BLD_new());
  OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, pub.data(), pub.size());
  OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, priv.get());
  std::unique_ptr<OSSL_PARAM, Deleter<&OSSL_PARAM_free>> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, Deleter<&EVP_PKEY_CTX_free>> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* key = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_KEYPAIR, params.get()) != 1)
    throw std::runtime_error("cannot build the RFC 7517 example key");
  return Pkey(key);
}

inline X509Cert parse_certificate(std::string const& pem) {
  Bio const bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

inline Pkey parse_private_key(std::string const& pem) {
  Bio const bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

// SAN entries as "DNS:name" / "IP:<hex bytes>".
inline std::vector<std::string> san_entries(GENERAL_NAMES const* names) {
  std::vector<std::string> out;
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    GENERAL_NAME const* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS) {
      auto const* s = name->d.dNSName;
      out.push_back("DNS:" + std::string(reinterpret_cast<char const*>(ASN1_STRING_get0_data(s)),
                                         static_cast<std::size_t>(ASN1_STRING_length(s))));
    } else if (name->type == GEN_IPADD) {
      auto const* s = name->d.iPAddress;
      std::string hex;
      static constexpr char digits[] = "0123456789abcdef";
      for (int j = 0; j < ASN1_STRING_length(s); ++j) {
        auto const b = ASN1_STRING_get0_data(s)[j];
        hex += digits[b >> 4];
        hex += digits[b & 15];
      }
      out.push_back("IP:" + hex);
    } else {
      out.push_back("other");
    }
  }
  return out;
}

}  // namespace edge::acme::test
