#pragma once
// Node-exporter-style system metrics from /proc and statvfs, prefixed
// edge_node_ (and edge_process_ for edged itself). Every file is read under
// `root` so that tests can feed recorded /proc contents.
#include "openmetrics.hpp"

#include <filesystem>
#include <string>

namespace edge::admin {

struct SystemSource {
  std::filesystem::path root = "/";
  std::string version;  // edged's version, for edge_node_info
};

// Writes every system family. A file that cannot be read leaves its family
// without samples (a container may hide some of /proc), never an error.
void write_system_metrics(OpenMetricsWriter& out, SystemSource const& source);

}  // namespace edge::admin
