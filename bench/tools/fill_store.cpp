// Fills a real SQLite store with many certificates, fast: one CA and a few
// leaf keys made here, then N leaf certificates (one DNS name each, signed by
// the CA). The store's own API creates the file and its schema; the rows go
// in with one transaction and the same INSERT as SqliteStore::put_certificate
// (generation 1, current), because 10,000 put_certificate calls are 10,000
// commits (25 s here). Signing in-process takes ~0.3 ms per certificate where
// one `openssl` process per certificate takes ~10 ms. For a new store only.
//
//   edge_fill_store --store edge.db --count 10000 --ca-out ca.pem [--keys 4] [--domain bench.test]
//
// Certificate i is named "c<i>" (6 digits) and covers c<i>.<domain>; every
// tenth also covers *.w<i>.<domain> (wildcard selection).
#include <edge/store/store.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sqlite3.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

template <typename T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const noexcept { F(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Free<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;

void check(bool ok, char const* what) {
  if (!ok) throw std::runtime_error(std::string("OpenSSL: ") + what);
}

Pkey make_key() {
  Pkey key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EVP_EC_gen");
  return key;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long const len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(len));
}

std::string cert_pem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
  return bio_text(bio.get());
}

std::string key_pem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1, "PEM_write_bio_PrivateKey");
  return bio_text(bio.get());
}

void add_extension(X509* cert, X509* issuer, int nid, char const* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

Cert make_cert(EVP_PKEY* key, std::string const& cn, long serial, X509* issuer, EVP_PKEY* issuer_key,
               std::string const& san) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 2L * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<unsigned char const*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  if (!issuer) {
    add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
    add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), issuer, NID_basic_constraints, "CA:FALSE");
    add_extension(cert.get(), issuer, NID_subject_alt_name, san.c_str());
  }
  check(X509_sign(cert.get(), issuer_key, EVP_sha256()) > 0, "X509_sign");
  return cert;
}

std::string upper_hex(unsigned char const* data, std::size_t size) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out += kHex[data[i] >> 4];
    out += kHex[data[i] & 0x0f];
  }
  return out;
}

std::int64_t unix_time(ASN1_TIME const* t) {
  std::tm tm{};
  ASN1_TIME_to_tm(t, &tm);
  return timegm(&tm);
}

}  // namespace

int main(int argc, char** argv) {
  std::string store_path, ca_out, domain = "bench.test";
  long count = 0, keys = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string const flag = argv[i];
    if (flag == "--store") store_path = argv[i + 1];
    else if (flag == "--count") count = std::atol(argv[i + 1]);
    else if (flag == "--keys") keys = std::atol(argv[i + 1]);
    else if (flag == "--ca-out") ca_out = argv[i + 1];
    else if (flag == "--domain") domain = argv[i + 1];
    else {
      std::fprintf(stderr, "edge_fill_store: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (store_path.empty() || ca_out.empty() || count <= 0 || keys <= 0) {
    std::fprintf(stderr, "usage: edge_fill_store --store PATH --count N --ca-out CA.pem [--keys K] [--domain D]\n");
    return 2;
  }
  try {
    auto const started = std::chrono::steady_clock::now();
    auto ca_key = make_key();
    auto ca = make_cert(ca_key.get(), "edge bench CA", 1, nullptr, ca_key.get(), "");
    std::ofstream(ca_out) << cert_pem(ca.get());

    std::vector<Pkey> leaf_keys;
    std::vector<std::string> leaf_key_pems;
    for (long k = 0; k < keys; ++k) {
      leaf_keys.push_back(make_key());
      leaf_key_pems.push_back(key_pem(leaf_keys.back().get()));
    }
    X509_NAME* issuer_name = X509_get_subject_name(ca.get());
    char issuer_text[256] = {};
    {
      Bio bio(BIO_new(BIO_s_mem()));
      X509_NAME_print_ex(bio.get(), issuer_name, 0, XN_FLAG_RFC2253);
      std::snprintf(issuer_text, sizeof issuer_text, "%s", bio_text(bio.get()).c_str());
    }

    {
      auto opened = edge::store::open_sqlite_store(store_path);  // creates the file and the schema
      if (!opened) throw std::runtime_error(opened.error().message);
    }
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(store_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK)
      throw std::runtime_error(store_path + ": cannot open");
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> db_owner(db, sqlite3_close);
    auto sql = [db](char const* text) {
      if (sqlite3_exec(db, text, nullptr, nullptr, nullptr) != SQLITE_OK) throw std::runtime_error(sqlite3_errmsg(db));
    };
    sql("BEGIN IMMEDIATE");
    sqlite3_stmt* raw_insert = nullptr;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO certificates (name, generation, identifiers, chain_pem, private_key_pem, "
                           "serial, fingerprint_sha256, not_before, not_after, issuer, source, created_at, "
                           "is_current) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, 'manual', ?, 1)",
                           -1, &raw_insert, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db));
    std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> insert(raw_insert, sqlite3_finalize);
    auto const now = static_cast<sqlite3_int64>(std::time(nullptr));
    for (long i = 0; i < count; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "c%06ld", i);
      std::string const host = std::string(name) + "." + domain;
      std::string san = "DNS:" + host;
      std::vector<std::string> identifiers{host};
      if (i % 10 == 0) {
        char wild[32];
        std::snprintf(wild, sizeof wild, "*.w%06ld", i);
        san += ",DNS:" + std::string(wild) + "." + domain;
        identifiers.push_back(std::string(wild) + "." + domain);
      }
      auto const k = static_cast<std::size_t>(i % keys);
      auto cert = make_cert(leaf_keys[k].get(), host, 1000 + i, ca.get(), ca_key.get(), san);
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned digest_len = 0;
      X509_digest(cert.get(), EVP_sha256(), digest, &digest_len);
      unsigned char serial_der[16];
      long const serial = 1000 + i;
      std::size_t serial_len = 0;
      for (long s = serial; s > 0; s >>= 8) ++serial_len;
      for (std::size_t b = 0; b < serial_len; ++b) serial_der[serial_len - 1 - b] = static_cast<unsigned char>(serial >> (8 * b));

      std::string identifiers_json = "[";
      for (auto const& id : identifiers) identifiers_json += (identifiers_json.size() > 1 ? ",\"" : "\"") + id + "\"";
      identifiers_json += "]";
      std::string const chain = cert_pem(cert.get());
      std::string const serial_hex = upper_hex(serial_der, serial_len);
      std::string const sha256 = upper_hex(digest, digest_len);
      sqlite3_stmt* st = insert.get();
      sqlite3_reset(st);
      sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 2, identifiers_json.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 3, chain.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 4, leaf_key_pems[k].c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 5, serial_hex.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(st, 6, sha256.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 7, unix_time(X509_get0_notBefore(cert.get())));
      sqlite3_bind_int64(st, 8, unix_time(X509_get0_notAfter(cert.get())));
      sqlite3_bind_text(st, 9, issuer_text, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 10, now);
      if (sqlite3_step(st) != SQLITE_DONE) throw std::runtime_error(name + std::string(": ") + sqlite3_errmsg(db));
    }
    sql("COMMIT");
    auto const seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("edge_fill_store: %ld certificates in %s (%.2f s)\n", count, store_path.c_str(), seconds);
    return 0;
  } catch (std::exception const& e) {
    std::fprintf(stderr, "edge_fill_store: %s\n", e.what());
    return 1;
  }
}
