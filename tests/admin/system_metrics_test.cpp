// System metrics from recorded /proc files (tests/admin/data/proc).
#include "system_metrics.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

namespace edge::admin {
namespace {

std::string render() {
  OpenMetricsWriter out;
  write_system_metrics(out, SystemSource{EDGE_TEST_DATA, "9.9.9"});
  return out.finish();
}

bool has(std::string const& text, std::string const& line) { return text.find(line + "\n") != std::string::npos; }

TEST(SystemMetrics, CpuSecondsPerCpuAndModeFromProcStat) {
  auto const text = render();
  double const tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  EXPECT_TRUE(has(text, "edge_node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} " + OpenMetricsWriter::number(1000 / tick)));
  EXPECT_TRUE(has(text, "edge_node_cpu_seconds_total{cpu=\"1\",mode=\"steal\"} " + OpenMetricsWriter::number(8 / tick)));
  EXPECT_EQ(text.find("cpu=\"\""), std::string::npos);  // the aggregate "cpu" line is not a CPU
  EXPECT_TRUE(has(text, "edge_node_boot_time_seconds 1700000000.0"));
}

TEST(SystemMetrics, MemoryLoadAndFileDescriptors) {
  auto const text = render();
  EXPECT_TRUE(has(text, "edge_node_memory_total_bytes " + OpenMetricsWriter::number(16384000.0 * 1024)));
  EXPECT_TRUE(has(text, "edge_node_memory_available_bytes " + OpenMetricsWriter::number(8192000.0 * 1024)));
  EXPECT_TRUE(has(text, "edge_node_memory_swap_free_bytes " + OpenMetricsWriter::number(1024.0 * 1024)));
  EXPECT_TRUE(has(text, "edge_node_load1 0.25"));
  EXPECT_TRUE(has(text, "edge_node_load15 1.5"));
  EXPECT_TRUE(has(text, "edge_node_filefd_allocated 2048.0"));
  EXPECT_TRUE(has(text, "edge_node_filefd_maximum " + OpenMetricsWriter::number(9223372036854775807.0)));
}

TEST(SystemMetrics, DisksNetworkAndTcpStates) {
  auto const text = render();
  EXPECT_TRUE(has(text, "edge_node_disk_read_bytes_total{device=\"vda\"} " + OpenMetricsWriter::number(2000.0 * 512)));
  EXPECT_TRUE(has(text, "edge_node_disk_io_time_seconds_total{device=\"vda\"} 1.5"));
  EXPECT_EQ(text.find("device=\"loop0\""), std::string::npos);
  EXPECT_TRUE(has(text, "edge_node_network_receive_bytes_total{device=\"eth0\"} 1000.0"));
  EXPECT_TRUE(has(text, "edge_node_network_transmit_packets_total{device=\"eth0\"} 20.0"));
  EXPECT_TRUE(has(text, "edge_node_tcp_connections{state=\"listen\"} 2"));
  EXPECT_TRUE(has(text, "edge_node_tcp_connections{state=\"established\"} 1"));
  EXPECT_TRUE(has(text, "edge_node_tcp_connections{state=\"time_wait\"} 0"));
}

TEST(SystemMetrics, ProcessAndInfo) {
  auto const text = render();
  double const tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  double const page = static_cast<double>(sysconf(_SC_PAGESIZE));
  EXPECT_TRUE(has(text, "edge_process_cpu_seconds_total " + OpenMetricsWriter::number(300 / tick)));
  EXPECT_TRUE(has(text, "edge_process_threads 7.0"));
  EXPECT_TRUE(has(text, "edge_process_resident_memory_bytes " + OpenMetricsWriter::number(1000 * page)));
  EXPECT_TRUE(has(text, "edge_process_max_fds 4096"));
  EXPECT_NE(text.find("edge_node_info{version=\"9.9.9\",hostname=\""), std::string::npos);
  EXPECT_NE(text.find("os=\"debian\",os_version=\"12\""), std::string::npos);
  EXPECT_NE(text.find("edge_node_time_seconds "), std::string::npos);
}

TEST(SystemMetrics, MissingFilesLeaveFamiliesEmpty) {
  OpenMetricsWriter out;
  write_system_metrics(out, SystemSource{"/nonexistent-edge-root", "1"});
  auto const text = out.finish();
  EXPECT_NE(text.find("# TYPE edge_node_load1 gauge"), std::string::npos);
  EXPECT_EQ(text.find("\nedge_node_load1 "), std::string::npos);
}

}  // namespace
}  // namespace edge::admin
