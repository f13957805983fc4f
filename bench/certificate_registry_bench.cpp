// Certificate selection cost against the number of certificates served
// (issue 6: flat from 10 to 100,000), and what building the set costs.
//
//   build/bin/certificate_registry_bench [--benchmark_filter=Lookup]
//
// Every record carries the same real ECDSA P-256 chain and key (made here):
// selection and replace_all look only at names, and contexts are built on
// first use, so distinct keys would change nothing but the set-up time. The
// first-use cost of a context is measured on its own (BM_FirstUseContext).
#include "tls_contexts.hpp"

#include <benchmark/benchmark.h>
#include <edge/proxy/certificate_registry.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using edge::proxy::CertificateRegistry;
using edge::store::CertificateRecord;

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long const len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(len));
}

// One self-signed P-256 certificate and its key, as PEM.
std::pair<std::string, std::string> const& pem_pair() {
  static auto const pair = [] {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<unsigned char const*>("bench"), -1, -1, 0);
    X509_set_issuer_name(cert, X509_get_subject_name(cert));
    if (X509_sign(cert, key, EVP_sha256()) <= 0) throw std::runtime_error("X509_sign");
    BIO* c = BIO_new(BIO_s_mem());
    BIO* k = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(c, cert);
    PEM_write_bio_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr);
    auto out = std::make_pair(bio_text(c), bio_text(k));
    BIO_free(c);
    BIO_free(k);
    X509_free(cert);
    EVP_PKEY_free(key);
    return out;
  }();
  return pair;
}

// Certificate i covers c<i>.bench.test; every tenth also *.w<i>.bench.test
// (as edge_fill_store makes them).
std::vector<CertificateRecord> make_records(int count) {
  auto const& [chain, key] = pem_pair();
  std::vector<CertificateRecord> records(static_cast<std::size_t>(count));
  char buf[64];
  for (int i = 0; i < count; ++i) {
    auto& r = records[static_cast<std::size_t>(i)];
    std::snprintf(buf, sizeof buf, "c%06d", i);
    r.name = buf;
    r.identifiers.push_back(r.name + ".bench.test");
    if (i % 10 == 0) {
      std::snprintf(buf, sizeof buf, "*.w%06d.bench.test", i);
      r.identifiers.emplace_back(buf);
    }
    r.chain_pem = chain;
    r.private_key_pem = key;
    r.serial = std::to_string(1000 + i);
    r.generation = 1;
  }
  return records;
}

// One registry per size, built once for all lookup benchmarks.
CertificateRegistry& registry(int count) {
  static std::map<int, std::unique_ptr<CertificateRegistry>> registries;
  auto& slot = registries[count];
  if (!slot) {
    slot = std::make_unique<CertificateRegistry>(edge::proxy::TlsPolicy{});
    slot->replace_all(make_records(count), CertificateRegistry::Check::on_first_use);
  }
  return *slot;
}

// 1,024 names spread over the whole set, so a lookup is not always the same
// hot cache line; mixed case as clients send it.
std::vector<std::string> probe_names(int count, char const* pattern, int stride) {
  std::vector<std::string> names;
  char buf[96];
  for (int i = 0; i < 1024; ++i) {
    int const n = static_cast<int>((static_cast<long>(i) * 7919) % count) / stride * stride;
    std::snprintf(buf, sizeof buf, pattern, n);
    names.emplace_back(buf);
  }
  return names;
}

void run_lookups(benchmark::State& state, char const* pattern, int stride, bool expect_found) {
  int const count = static_cast<int>(state.range(0));
  auto const set = registry(count).snapshot();
  auto const names = probe_names(count, pattern, stride);
  std::size_t i = 0, found = 0;
  for (auto _ : state) {
    auto const* cert = set->find_by_name(names[i++ & 1023]);
    benchmark::DoNotOptimize(cert);
    found += cert != nullptr;
  }
  if ((found != 0) != expect_found) state.SkipWithError("lookup result is not what the benchmark expects");
  state.counters["certificates"] = count;
}

void BM_LookupExact(benchmark::State& state) { run_lookups(state, "C%06d.Bench.Test", 1, true); }
void BM_LookupWildcard(benchmark::State& state) { run_lookups(state, "www.w%06d.bench.test", 10, true); }
void BM_LookupMiss(benchmark::State& state) { run_lookups(state, "c%06d.elsewhere.test", 1, false); }

// What every handshake pays before selection: the atomic snapshot load.
void BM_Snapshot(benchmark::State& state) {
  auto& r = registry(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(r.snapshot());
}

// Building (and publishing) the whole set, as start-up and reload do.
void BM_ReplaceAll(benchmark::State& state) {
  int const count = static_cast<int>(state.range(0));
  auto const records = make_records(count);
  CertificateRegistry r{edge::proxy::TlsPolicy{}};
  for (auto _ : state) r.replace_all(records, CertificateRegistry::Check::on_first_use);
  state.SetItemsProcessed(state.iterations() * count);
}

// What start-up paid before contexts were built on first use: every chain
// and key parsed and a context built per certificate (Check::now).
void BM_ReplaceAllCheckNow(benchmark::State& state) {
  int const count = static_cast<int>(state.range(0));
  auto const records = make_records(count);
  CertificateRegistry r{edge::proxy::TlsPolicy{}};
  for (auto _ : state) r.replace_all(records, CertificateRegistry::Check::now);
  state.SetItemsProcessed(state.iterations() * count);
}

// One certificate swapped into a set of N (an import or a renewal).
void BM_PutOne(benchmark::State& state) {
  int const count = static_cast<int>(state.range(0));
  CertificateRegistry r{edge::proxy::TlsPolicy{}};
  r.replace_all(make_records(count), CertificateRegistry::Check::on_first_use);
  auto record = make_records(1).front();
  for (auto _ : state) {
    if (!r.put(record).empty()) state.SkipWithError("put failed");
  }
}

// The first handshake that selects a certificate builds its context.
void BM_FirstUseContext(benchmark::State& state) {
  auto const record = make_records(1).front();
  auto const policy = std::make_shared<edge::proxy::TlsPolicy const>();
  for (auto _ : state) {
    edge::proxy::ServedCertificate cert(record, policy);
    if (!cert.context()) state.SkipWithError("context did not build");
  }
}

}  // namespace

BENCHMARK(BM_LookupExact)->Arg(10)->Arg(10'000)->Arg(100'000);
BENCHMARK(BM_LookupWildcard)->Arg(10)->Arg(10'000)->Arg(100'000);
BENCHMARK(BM_LookupMiss)->Arg(10)->Arg(10'000)->Arg(100'000);
BENCHMARK(BM_Snapshot)->Arg(10)->Arg(100'000);
BENCHMARK(BM_ReplaceAll)->Arg(10)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReplaceAllCheckNow)->Arg(10)->Arg(1'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PutOne)->Arg(10)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FirstUseContext)->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
