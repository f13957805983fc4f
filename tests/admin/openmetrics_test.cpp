#include "openmetrics.hpp"

#include <gtest/gtest.h>

namespace edge::admin {
namespace {

TEST(OpenMetricsWriter, CounterFamilyWithoutTotalSamplesWithIt) {
  OpenMetricsWriter out;
  out.family("edge_requests", "counter", "Responses.");
  out.sample("_total", {{"status", "200"}}, std::uint64_t{3});
  EXPECT_EQ(out.finish(),
            "# TYPE edge_requests counter\n# HELP edge_requests Responses.\nedge_requests_total{status=\"200\"} 3\n# EOF\n");
}

TEST(OpenMetricsWriter, PrometheusTextNamesCountersBySampleAndHasNoEof) {
  OpenMetricsWriter out(MetricsFormat::prometheus_text);
  out.family("edge_requests", "counter", "Responses.");
  out.sample("_total", {}, std::uint64_t{1});
  out.family("edge_x_seconds", "gauge", "X.", "seconds");
  out.sample("", {}, 1.5);
  EXPECT_EQ(out.finish(),
            "# HELP edge_requests_total Responses.\n# TYPE edge_requests_total counter\nedge_requests_total 1\n"
            "# HELP edge_x_seconds X.\n# TYPE edge_x_seconds gauge\nedge_x_seconds 1.5\n");
}

TEST(OpenMetricsWriter, UnitLineAndEscapedLabels) {
  OpenMetricsWriter out;
  out.family("edge_cert_not_after_seconds", "gauge", "Expiry.", "seconds");
  out.sample("", {{"cert", "a\"b\\c\nd"}}, std::int64_t{42});
  auto const text = out.finish();
  EXPECT_NE(text.find("# UNIT edge_cert_not_after_seconds seconds\n"), std::string::npos);
  EXPECT_NE(text.find(R"(edge_cert_not_after_seconds{cert="a\"b\\c\nd"} 42)"), std::string::npos);
}

TEST(OpenMetricsWriter, NumbersAreShortestRoundTrip) {
  EXPECT_EQ(OpenMetricsWriter::number(0.0005), "0.0005");
  EXPECT_EQ(OpenMetricsWriter::number(10), "10.0");
  EXPECT_EQ(OpenMetricsWriter::number(2.5), "2.5");
  EXPECT_EQ(OpenMetricsWriter::number(1.0 / 0.0), "+Inf");
}

TEST(OpenMetricsWriter, NegotiatesByAcceptHeader) {
  EXPECT_EQ(negotiate_format("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
            MetricsFormat::openmetrics);
  EXPECT_EQ(negotiate_format("*/*"), MetricsFormat::prometheus_text);
  EXPECT_EQ(negotiate_format(""), MetricsFormat::prometheus_text);
}

}  // namespace
}  // namespace edge::admin
