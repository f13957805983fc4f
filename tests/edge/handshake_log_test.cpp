#include <edge/proxy/handshake_log.hpp>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace edge::proxy {
namespace {

HandshakeEvent sample_success() {
  HandshakeEvent e;
  e.timestamp_us = 1795391202123456;  // 2026-11-22T23:46:42.123456Z
  e.outcome = HandshakeOutcome::ok;
  e.client_address = "127.0.0.1";
  e.client_port = 40000;
  e.server_address = "127.0.0.1";
  e.server_port = 8443;
  e.server_name = "edge.test";
  e.protocol_version = "1.3";
  e.cipher = "TLS_AES_256_GCM_SHA384";
  e.curve = "x25519";
  e.next_protocol = "http/1.1";
  e.established = true;
  e.cert_name = "main";
  e.cert_serial = "0A1B";
  e.cert_sha256 = "ab12";
  e.cert_not_after = 1795391202;
  e.cert_generation = 3;
  e.duration_us = 950;
  return e;
}

TEST(HandshakeJson, SuccessCarriesOtelNamesAndTheServedCertificate) {
  auto const v = boost::json::parse(to_json(sample_success())).as_object();
  EXPECT_EQ(v.at("@timestamp").as_string(), "2026-11-22T23:46:42.123456Z");
  EXPECT_EQ(v.at("edge.outcome").as_string(), "ok");
  EXPECT_EQ(v.at("client.address").as_string(), "127.0.0.1");
  EXPECT_EQ(v.at("client.port").as_int64(), 40000);
  EXPECT_EQ(v.at("server.port").as_int64(), 8443);
  EXPECT_EQ(v.at("tls.client.server_name").as_string(), "edge.test");
  EXPECT_EQ(v.at("tls.protocol.version").as_string(), "1.3");
  EXPECT_EQ(v.at("tls.cipher").as_string(), "TLS_AES_256_GCM_SHA384");
  EXPECT_EQ(v.at("tls.curve").as_string(), "x25519");
  EXPECT_EQ(v.at("tls.next_protocol").as_string(), "http/1.1");
  EXPECT_EQ(v.at("tls.resumed").as_bool(), false);
  EXPECT_EQ(v.at("tls.established").as_bool(), true);
  EXPECT_EQ(v.at("edge.cert.name").as_string(), "main");
  EXPECT_EQ(v.at("edge.cert.serial").as_string(), "0A1B");
  EXPECT_EQ(v.at("edge.cert.generation").as_int64(), 3);
  EXPECT_EQ(v.at("tls.server.hash.sha256").as_string(), "ab12");
  EXPECT_EQ(v.at("tls.server.not_after").as_string(), "2026-11-22T23:46:42Z");
  EXPECT_EQ(v.at("edge.alert.sent").as_string(), "none");
  EXPECT_EQ(v.at("edge.handshake.duration_us").as_int64(), 950);
  EXPECT_FALSE(v.contains("error.type"));
}

TEST(HandshakeJson, FailureWithoutCertificateHasNoCertificateFields) {
  HandshakeEvent e;
  e.outcome = HandshakeOutcome::failed;
  e.error_type = "protocol_version";
  e.alert_sent = "protocol_version";
  auto const v = boost::json::parse(to_json(e)).as_object();
  EXPECT_EQ(v.at("error.type").as_string(), "protocol_version");
  EXPECT_EQ(v.at("edge.alert.sent").as_string(), "protocol_version");
  EXPECT_EQ(v.at("tls.established").as_bool(), false);
  EXPECT_FALSE(v.contains("edge.cert.name"));
  EXPECT_FALSE(v.contains("tls.protocol.version"));
}

TEST(HandshakeLog, WritesOneLinePerRecordAndDrainsOnStop) {
  auto const dir = std::filesystem::temp_directory_path() / ("edge-log-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto const file = dir / "handshakes.jsonl";
  {
    HandshakeLog log({file.string(), dir / "edge.db"});
    log.start();
    for (int i = 0; i < 500; ++i) log.submit(sample_success());
    log.stop();
    EXPECT_EQ(log.written(), 500u);
    EXPECT_EQ(log.dropped(), 0u);
    EXPECT_EQ(log.store_failures(), 0u);
  }
  std::ifstream in(file);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    EXPECT_EQ(boost::json::parse(line).at("edge.cert.name").as_string(), "main");
    ++lines;
  }
  EXPECT_EQ(lines, 500);
  std::filesystem::remove_all(dir);
}

TEST(HandshakeLog, FullQueueDropsAndCounts) {
  HandshakeLog log({"", "", 4});
  // Not started: nothing drains, so the fifth record must be dropped, not block.
  for (int i = 0; i < 6; ++i) log.submit(sample_success());
  EXPECT_EQ(log.dropped(), 2u);
}

}  // namespace
}  // namespace edge::proxy
