// The admin API's methods against a real SQLite store, with the TLS
// statistics fed by hand: everything but the HTTP transport (that part is
// tests/integration/test_admin_api.py).
#include "rpc_methods.hpp"
#include "tls_contexts.hpp"  // CertificateSet: what the registry serves

#include <edge/admin/views.hpp>
#include <edge/proxy/certificate_registry.hpp>
#include <edge/proxy/proxy_metrics.hpp>
#include <edge/proxy/tls_statistics.hpp>
#include <edge/store/store.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <filesystem>
#include <random>

namespace edge::admin {
namespace {
namespace json = boost::json;

struct Pem {
  std::string chain, key;
};

// A self-signed P-256 certificate for `name` valid from now+from to now+to seconds.
Pem make_certificate(std::string const& name, long from, long to) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  static std::mt19937 random{std::random_device{}()};
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(random() & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), from);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), to);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<unsigned char const*>(name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), subject);
  X509_sign(cert.get(), key.get(), EVP_sha256());
  auto const text = [](auto write) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    write(bio.get());
    char* data = nullptr;
    long const n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
  };
  return {text([&](BIO* b) { PEM_write_bio_X509(b, cert.get()); }),
          text([&](BIO* b) { PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr); })};
}

class RpcMethods : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("edge-admin-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    store_ = store::open_sqlite_store(dir_ / "edge.db").value();
    services_.store_path = dir_ / "edge.db";
    services_.certificates = &registry_;
    services_.proxy_metrics = &proxy_metrics_;
    services_.tls_statistics = &tls_;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  RpcResult call(std::string const& method, json::value params = nullptr) {
    MethodContext context{services_, *store_, 3, std::chrono::system_clock::now()};
    return call_method(method, params, context);
  }
  int error_code(RpcResult const& r) { return r ? 0 : r.error().code; }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  proxy::CertificateRegistry registry_{proxy::TlsPolicy{}};
  proxy::ProxyMetrics proxy_metrics_{2};
  proxy::TlsStatistics tls_;
  AdminServices services_;
};

TEST_F(RpcMethods, UnknownMethodAndParamErrors) {
  EXPECT_EQ(error_code(call("no.such")), rpc_code::method_not_found);
  EXPECT_EQ(error_code(call("version", json::array{1})), rpc_code::invalid_params);
  EXPECT_EQ(error_code(call("version", json::object{{"x", 1}})), rpc_code::invalid_params);
  EXPECT_EQ(error_code(call("certs.get")), rpc_code::invalid_params);
  EXPECT_EQ(error_code(call("handshakes.query", json::object{{"limit", 0}})), rpc_code::invalid_params);
  EXPECT_EQ(error_code(call("handshakes.query", json::object{{"outcome", "maybe"}})), rpc_code::invalid_params);
  EXPECT_EQ(error_code(call("handshakes.query", json::object{{"since", "yesterday"}})), rpc_code::invalid_params);
}

TEST_F(RpcMethods, StateChangingMethodsAreMarked) {
  EXPECT_TRUE(method_changes_state("certs.renew"));
  EXPECT_TRUE(method_changes_state("certs.import"));
  EXPECT_TRUE(method_changes_state("config.reload"));
  EXPECT_FALSE(method_changes_state("certs.list"));
  EXPECT_FALSE(method_changes_state("handshakes.query"));
}

TEST_F(RpcMethods, ImportValidatesAndServes) {
  auto const good = make_certificate("main.test", -60, 86400 * 30);
  auto const other = make_certificate("other.test", -60, 86400 * 30);
  auto const expired = make_certificate("old.test", -86400 * 3, -86400);
  auto const future = make_certificate("new.test", 86400, 86400 * 3);
  auto import = [&](Pem const& chain, std::string const& key) {
    return call("certs.import", json::object{{"name", "main"}, {"certificate", chain.chain}, {"private_key", key}});
  };
  EXPECT_EQ(error_code(import(good, other.key)), rpc_code::certificate_rejected);  // key does not match
  EXPECT_EQ(error_code(import({"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", ""}, good.key)),
            rpc_code::certificate_rejected);
  auto const expired_result = import(expired, expired.key);
  ASSERT_EQ(error_code(expired_result), rpc_code::certificate_rejected);
  EXPECT_NE(std::string(expired_result.error().data.as_string()).find("expired"), std::string::npos);
  EXPECT_EQ(error_code(import(future, future.key)), rpc_code::certificate_rejected);
  EXPECT_EQ(registry_.snapshot()->all().size(), 0u);

  auto const ok = import(good, good.key);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->at("generation").as_int64(), 1);
  ASSERT_EQ(registry_.snapshot()->all().size(), 1u);
  EXPECT_EQ(store_->current_certificate("main").value()->generation, 1);

  auto const list = call("certs.list");
  ASSERT_TRUE(list);
  EXPECT_EQ(json::serialize(*list), json::serialize(certificate_list(*store_).value()));
  auto const get = call("certs.get", json::object{{"name", "main"}});
  ASSERT_TRUE(get);
  EXPECT_EQ(get->at("source").as_string(), "manual");
  EXPECT_EQ(error_code(call("certs.get", json::object{{"name", "nope"}})), rpc_code::not_found);
}

TEST_F(RpcMethods, RenewOnlyForConfiguredAcmeCertificates) {
  EXPECT_EQ(error_code(call("certs.renew", json::object{{"name", "main"}})), rpc_code::not_supported);
  services_.acme_mode = true;
  services_.acme_certificates = {"main"};
  EXPECT_EQ(error_code(call("certs.renew", json::object{{"name", "other"}})), rpc_code::not_found);
  auto const queued = call("certs.renew", json::object{{"name", "main"}});
  ASSERT_TRUE(queued);
  EXPECT_TRUE(queued->at("queued").as_bool());
  EXPECT_EQ(store_->take_renewal_requests().value(), std::vector<std::string>{"main"});
}

TEST_F(RpcMethods, PendingCertificatesHaveAStateButNoCertificate) {
  store::RenewalState state;
  state.name = "first";
  state.status = "retrying";
  state.failures = 2;
  state.last_error = "connection refused";
  store_->put_renewal_state(state).value();
  auto const pending = call("certs.pending");
  ASSERT_TRUE(pending);
  ASSERT_EQ(pending->as_array().size(), 1u);
  EXPECT_EQ(pending->as_array()[0].at("name").as_string(), "first");
  EXPECT_EQ(pending->as_array()[0].at("last_error").as_string(), "connection refused");
  EXPECT_TRUE(call("certs.list")->as_array().empty());
}

TEST_F(RpcMethods, ReloadWithoutAFileIsNotSupported) {
  EXPECT_EQ(error_code(call("config.reload")), rpc_code::not_supported);
  services_.reload = [](store::Store&) { return ReloadOutcome{false, "edge.yaml:1:1: x: bad", {}, {}}; };
  EXPECT_EQ(error_code(call("config.reload")), rpc_code::config_invalid);
  services_.reload = [](store::Store&) { return ReloadOutcome{true, "", {"certificate main"}, {"metrics"}}; };
  auto const r = call("config.reload");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->at("restart_required").as_array().front().as_string(), "metrics");
}

proxy::HandshakeEvent event(proxy::HandshakeOutcome outcome, std::string error_type, std::string cert,
                            std::int64_t duration_us) {
  proxy::HandshakeEvent e;
  e.outcome = outcome;
  e.error_type = std::move(error_type);
  e.cert_name = std::move(cert);
  e.duration_us = duration_us;
  e.timestamp_us = now_seconds() * 1'000'000;
  e.established = outcome == proxy::HandshakeOutcome::ok;
  if (e.established) {
    e.protocol_version = "1.3";
    e.cipher = "TLS_AES_128_GCM_SHA256";
  }
  return e;
}

TEST_F(RpcMethods, TlsStatsTimelineAndMetricsAgree) {
  tls_.observe(event(proxy::HandshakeOutcome::ok, "", "main", 800));
  tls_.observe(event(proxy::HandshakeOutcome::ok, "", "main", 3000));
  tls_.observe(event(proxy::HandshakeOutcome::failed, "unknown_sni", "", 200));
  tls_.observe(event(proxy::HandshakeOutcome::timeout, "handshake_timeout", "main", 2'000'000));

  auto const stats = call("stats.tls");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->at("total").as_uint64(), 4u);
  EXPECT_EQ(stats->at("by_outcome").at("ok").as_uint64(), 2u);
  EXPECT_EQ(stats->at("by_error_type").at("unknown_sni").as_uint64(), 1u);
  EXPECT_EQ(stats->at("by_certificate").at("main").at("errors").at("handshake_timeout").as_uint64(), 1u);
  EXPECT_EQ(stats->at("versions").at("1.3").as_uint64(), 2u);
  EXPECT_EQ(stats->at("ciphers").at("TLS_AES_128_GCM_SHA256").as_uint64(), 2u);

  auto const connections = call("stats.connections");
  ASSERT_TRUE(connections);
  EXPECT_EQ(connections->at("by_route_type").at("http").as_uint64(), 2u);
  EXPECT_EQ(connections->at("by_route_type").at("none").as_uint64(), 2u);
  EXPECT_EQ(connections->at("workers").as_array().size(), 2u);

  auto const timeline = call("stats.timeline", json::object{{"cert", "main"}});
  ASSERT_TRUE(timeline);
  std::uint64_t sum = 0;
  for (auto const& p : timeline->at("points").as_array()) sum += p.at("count").as_uint64();
  EXPECT_EQ(sum, 3u);

  MethodContext context{services_, *store_, 3, std::chrono::system_clock::now()};
  auto const text = render_metrics(context);
  EXPECT_NE(text.find("edge_tls_handshakes_total{outcome=\"ok\",error_type=\"\",cert=\"main\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("edge_tls_handshake_duration_seconds_bucket{le=\"0.001\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("edge_tls_handshake_duration_seconds_bucket{le=\"2.5\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("edge_tls_handshake_duration_seconds_count 4\n"), std::string::npos);
  EXPECT_NE(text.find("edge_connections_total{route_type=\"none\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("edge_admin_unauthorized_total 3\n"), std::string::npos);
  EXPECT_TRUE(text.ends_with("# EOF\n"));
}

TEST_F(RpcMethods, HandshakesQueryFilters) {
  std::vector<store::HandshakeRecord> rows;
  auto row = [](std::int64_t t, std::string outcome, std::string error, std::string cert, std::string client) {
    store::HandshakeRecord r;
    r.timestamp_us = t * 1'000'000;
    r.outcome = std::move(outcome);
    r.error_type = std::move(error);
    r.cert_name = std::move(cert);
    r.client_address = std::move(client);
    r.json = json::serialize(json::object{{"edge.outcome", r.outcome}, {"error.type", r.error_type},
                                          {"client.address", r.client_address}, {"t", t}});
    return r;
  };
  rows.push_back(row(1000, "ok", "", "main", "127.0.0.1"));
  rows.push_back(row(2000, "failed", "unknown_sni", "", "127.0.0.2"));
  rows.push_back(row(3000, "failed", "protocol_version", "main", "127.0.0.1"));
  rows.push_back(row(4000, "timeout", "handshake_timeout", "main", "::1"));
  store_->append_handshakes(rows).value();
  auto count = [&](json::object params) {
    auto r = call("handshakes.query", params);
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? r->as_array().size() : 0u;
  };
  EXPECT_EQ(count({}), 4u);
  EXPECT_EQ(count({{"cert", "main"}}), 3u);
  EXPECT_EQ(count({{"outcome", "failed"}}), 2u);
  EXPECT_EQ(count({{"error.type", "unknown_sni"}}), 1u);
  EXPECT_EQ(count({{"client", "127.0.0.1"}}), 2u);
  EXPECT_EQ(count({{"since", 2500}}), 2u);
  EXPECT_EQ(count({{"since", "1970-01-01T00:50:00Z"}}), 2u);  // 3000 s
  EXPECT_EQ(count({{"limit", 1}}), 1u);
  auto newest = call("handshakes.query", json::object{{"limit", 1}});
  EXPECT_EQ(newest->as_array().front().at("t").as_int64(), 4000);
}

}  // namespace
}  // namespace edge::admin
