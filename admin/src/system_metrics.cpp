#include "system_metrics.hpp"

#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

namespace edge::admin {
namespace {

std::vector<std::string> lines_of(std::filesystem::path const& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(std::move(line));
  return out;
}

std::vector<std::string> fields_of(std::string const& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string f; in >> f;) out.push_back(std::move(f));
  return out;
}

double to_double(std::string const& s) {
  try {
    return std::stod(s);
  } catch (std::exception const&) {
    return 0;
  }
}

std::uint64_t to_u64(std::string const& s) {
  try {
    return std::stoull(s);
  } catch (std::exception const&) {
    return 0;
  }
}

// /proc/mounts escapes blanks in paths as octal (\040).
std::string unescape_octal(std::string const& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    bool const octal = s[i] == '\\' && i + 3 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1])) &&
                       std::isdigit(static_cast<unsigned char>(s[i + 2])) &&
                       std::isdigit(static_cast<unsigned char>(s[i + 3]));
    if (octal) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

void cpu_and_boot(OpenMetricsWriter& out, std::filesystem::path const& proc) {
  auto const lines = lines_of(proc / "stat");
  double const tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  static constexpr char const* modes[] = {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"};
  out.family("edge_node_cpu_seconds", "counter", "Seconds the CPUs spent in each mode.", "seconds");
  std::string btime;
  for (auto const& line : lines) {
    auto const f = fields_of(line);
    if (f.empty()) continue;
    if (f[0].starts_with("cpu") && f[0].size() > 3) {
      std::string const cpu = f[0].substr(3);
      for (std::size_t m = 0; m < std::size(modes) && m + 1 < f.size(); ++m) {
        out.sample("_total", {{"cpu", cpu}, {"mode", modes[m]}}, to_double(f[m + 1]) / tick);
      }
    } else if (f[0] == "btime" && f.size() > 1) {
      btime = f[1];
    }
  }
  out.family("edge_node_boot_time_seconds", "gauge", "Boot time, Unix seconds.", "seconds");
  if (!btime.empty()) out.sample("", {}, to_double(btime));
}

void memory(OpenMetricsWriter& out, std::filesystem::path const& proc) {
  std::map<std::string, double> values;
  for (auto const& line : lines_of(proc / "meminfo")) {
    auto const f = fields_of(line);
    if (f.size() >= 2 && f[0].ends_with(":")) {
      double v = to_double(f[1]);
      if (f.size() >= 3 && f[2] == "kB") v *= 1024;
      values[f[0].substr(0, f[0].size() - 1)] = v;
    }
  }
  static constexpr std::pair<char const*, char const*> names[] = {
      {"edge_node_memory_total_bytes", "MemTotal"},       {"edge_node_memory_free_bytes", "MemFree"},
      {"edge_node_memory_available_bytes", "MemAvailable"}, {"edge_node_memory_buffers_bytes", "Buffers"},
      {"edge_node_memory_cached_bytes", "Cached"},        {"edge_node_memory_swap_total_bytes", "SwapTotal"},
      {"edge_node_memory_swap_free_bytes", "SwapFree"},
  };
  for (auto const& [metric, field] : names) {
    out.family(metric, "gauge", std::string("Memory: ") + field + " from /proc/meminfo.", "bytes");
    if (auto it = values.find(field); it != values.end()) out.sample("", {}, it->second);
  }
}

void load(OpenMetricsWriter& out, std::filesystem::path const& proc) {
  auto const lines = lines_of(proc / "loadavg");
  auto const f = lines.empty() ? std::vector<std::string>{} : fields_of(lines.front());
  static constexpr char const* names[] = {"edge_node_load1", "edge_node_load5", "edge_node_load15"};
  static constexpr char const* help[] = {"1-minute load average.", "5-minute load average.", "15-minute load average."};
  for (std::size_t i = 0; i < 3; ++i) {
    out.family(names[i], "gauge", help[i]);
    if (f.size() > i) out.sample("", {}, to_double(f[i]));
  }
}

bool ignored_fstype(std::string const& type) {
  static std::set<std::string> const ignored = {
      "autofs",     "binfmt_misc", "bpf",     "cgroup",   "cgroup2", "configfs", "debugfs",    "devpts",
      "devtmpfs",   "fusectl",     "hugetlbfs", "iso9660", "mqueue",  "nsfs",     "proc",       "procfs",
      "pstore",     "rpc_pipefs",  "securityfs", "selinuxfs", "squashfs", "sysfs", "tracefs", "fuse.lxcfs",
      "efivarfs",   "ramfs",       "nfsd"};
  return ignored.contains(type);
}

void filesystems(OpenMetricsWriter& out, std::filesystem::path const& root) {
  struct Fs {
    std::string device, mountpoint, fstype;
    double size = 0, free = 0, avail = 0, files = 0, files_free = 0;
  };
  std::vector<Fs> found;
  std::set<std::string> seen;
  for (auto const& line : lines_of(root / "proc/mounts")) {
    auto const f = fields_of(line);
    if (f.size() < 3 || ignored_fstype(f[2])) continue;
    auto const mountpoint = unescape_octal(f[1]);
    if (!seen.insert(mountpoint).second) continue;
    struct statvfs st {};
    // statvfs on the real path: only meaningful when root is "/".
    if (statvfs((root / mountpoint.substr(mountpoint.starts_with("/") ? 1 : 0)).c_str(), &st) != 0) continue;
    double const frsize = static_cast<double>(st.f_frsize);
    found.push_back({unescape_octal(f[0]), mountpoint, f[2], static_cast<double>(st.f_blocks) * frsize,
                     static_cast<double>(st.f_bfree) * frsize, static_cast<double>(st.f_bavail) * frsize,
                     static_cast<double>(st.f_files), static_cast<double>(st.f_ffree)});
  }
  auto const write = [&](char const* name, char const* help, char const* unit, double Fs::*field) {
    out.family(name, "gauge", help, unit);
    for (auto const& fs : found)
      out.sample("", {{"device", fs.device}, {"mountpoint", fs.mountpoint}, {"fstype", fs.fstype}}, fs.*field);
  };
  write("edge_node_filesystem_size_bytes", "Filesystem size.", "bytes", &Fs::size);
  write("edge_node_filesystem_free_bytes", "Filesystem free space.", "bytes", &Fs::free);
  write("edge_node_filesystem_avail_bytes", "Filesystem space available to unprivileged users.", "bytes", &Fs::avail);
  write("edge_node_filesystem_files", "Filesystem inodes.", "", &Fs::files);
  write("edge_node_filesystem_files_free", "Filesystem free inodes.", "", &Fs::files_free);
}

void disks(OpenMetricsWriter& out, std::filesystem::path const& proc) {
  struct Disk {
    std::string device;
    double reads = 0, writes = 0, read_bytes = 0, written_bytes = 0, io_seconds = 0;
  };
  std::vector<Disk> found;
  for (auto const& line : lines_of(proc / "diskstats")) {
    auto const f = fields_of(line);
    if (f.size() < 14) continue;
    auto const& name = f[2];
    if (name.starts_with("loop") || name.starts_with("ram") || name.starts_with("fd")) continue;
    // Fields after the name: reads completed (3), sectors read (5), writes
    // completed (7), sectors written (9), ms doing I/O (12); sectors are 512 bytes.
    found.push_back({name, to_double(f[3]), to_double(f[7]), to_double(f[5]) * 512, to_double(f[9]) * 512,
                     to_double(f[12]) / 1000});
  }
  auto const write = [&](char const* name, char const* help, char const* unit, double Disk::*field) {
    out.family(name, "counter", help, unit);
    for (auto const& d : found) out.sample("_total", {{"device", d.device}}, d.*field);
  };
  write("edge_node_disk_reads_completed", "Reads completed.", "", &Disk::reads);
  write("edge_node_disk_writes_completed", "Writes completed.", "", &Disk::writes);
  write("edge_node_disk_read_bytes", "Bytes read.", "bytes", &Disk::read_bytes);
  write("edge_node_disk_written_bytes", "Bytes written.", "bytes", &Disk::written_bytes);
  write("edge_node_disk_io_time_seconds", "Seconds spent doing I/O.", "seconds", &Disk::io_seconds);
}

void network(OpenMetricsWriter& out, std::filesystem::path const& proc) {
  struct Dev {
    std::string device;
    double v[8] = {};
  };
  std::vector<Dev> found;
  for (auto const& line : lines_of(proc / "net/dev")) {
    auto const colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto name = fields_of(line.substr(0, colon));
    auto const f = fields_of(line.substr(colon + 1));
    if (name.empty() || f.size() < 16) continue;
    // receive: bytes packets errs drop ...; transmit starts at field 8.
    found.push_back({name[0], {to_double(f[0]), to_double(f[1]), to_double(f[2]), to_double(f[3]), to_double(f[8]),
                               to_double(f[9]), to_double(f[10]), to_double(f[11])}});
  }
  static constexpr struct {
    char const* name;
    char const* help;
    char const* unit;
  } families[] = {
      {"edge_node_network_receive_bytes", "Bytes received.", "bytes"},
      {"edge_node_network_receive_packets", "Packets received.", ""},
      {"edge_node_network_receive_errs", "Receive errors.", ""},
      {"edge_node_network_receive_drop", "Received packets dropped.", ""},
      {"edge_node_network_transmit_bytes", "Bytes transmitted.", "bytes"},
      {"edge_node_network_transmit_packets", "Packets transmitted.", ""},
      {"edge_node_network_transmit_errs", "Transmit errors.", ""},
      {"edge_node_network_transmit_drop", "Transmitted packets dropped.", ""},
  };
  for (std::size_t i = 0; i < std::size(families); ++i) {
    out.family(families[i].name, "counter", families[i].help, families[i].unit);
    for (auto const& d : found) out.sample("_total", {{"device", d.device}}, d.v[i]);
  }
}

void file_descriptors(OpenMetricsWriter& out, std::filesystem::path const& proc) {
  auto const lines = lines_of(proc / "sys/fs/file-nr");
  auto const f = lines.empty() ? std::vector<std::string>{} : fields_of(lines.front());
  out.family("edge_node_filefd_allocated", "gauge", "File descriptors allocated system-wide.");
  if (f.size() >= 3) out.sample("", {}, to_double(f[0]));
  out.family("edge_node_filefd_maximum", "gauge", "Maximum file descriptors system-wide.");
  if (f.size() >= 3) out.sample("", {}, to_double(f[2]));
}

void tcp_states(OpenMetricsWriter& out, std::filesystem::path const& proc) {
  static constexpr char const* names[] = {"",          "established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2",
                                          "time_wait", "close",       "close_wait", "last_ack", "listen",   "closing"};
  std::map<std::string, std::uint64_t> counts;
  for (auto const& n : names)
    if (*n) counts[n] = 0;
  bool any = false;
  for (auto const* file : {"net/tcp", "net/tcp6"}) {
    auto const lines = lines_of(proc / file);
    any = any || !lines.empty();
    for (std::size_t i = 1; i < lines.size(); ++i) {
      auto const f = fields_of(lines[i]);
      if (f.size() < 4) continue;
      unsigned long state = 0;
      try {
        state = std::stoul(f[3], nullptr, 16);
      } catch (std::exception const&) {
        continue;
      }
      if (state >= 1 && state < std::size(names)) ++counts[names[state]];
    }
  }
  out.family("edge_node_tcp_connections", "gauge", "TCP sockets by state (IPv4 and IPv6).");
  if (any)
    for (auto const& [state, n] : counts) out.sample("", {{"state", state}}, n);
}

void process(OpenMetricsWriter& out, std::filesystem::path const& proc) {
  auto const self = proc / "self";
  auto const stat_lines = lines_of(self / "stat");
  std::vector<std::string> f;
  if (!stat_lines.empty()) {
    // The command name may contain blanks and parentheses: fields start after the last ')'.
    auto const& line = stat_lines.front();
    auto const close = line.rfind(')');
    if (close != std::string::npos) f = fields_of(line.substr(close + 1));
  }
  double const tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  double const page = static_cast<double>(sysconf(_SC_PAGESIZE));
  // After ')': state(0) ... utime(11) stime(12) ... num_threads(17) ... starttime(19) vsize(20) rss(21).
  bool const ok = f.size() > 21;
  double boot = 0;
  for (auto const& line : lines_of(proc / "stat")) {
    if (line.starts_with("btime ")) boot = to_double(line.substr(6));
  }
  out.family("edge_process_cpu_seconds", "counter", "CPU time edged used, user and system.", "seconds");
  if (ok) out.sample("_total", {}, (to_double(f[11]) + to_double(f[12])) / tick);
  out.family("edge_process_resident_memory_bytes", "gauge", "Resident memory of edged.", "bytes");
  if (ok) out.sample("", {}, to_double(f[21]) * page);
  out.family("edge_process_virtual_memory_bytes", "gauge", "Virtual memory of edged.", "bytes");
  if (ok) out.sample("", {}, to_double(f[20]));
  out.family("edge_process_threads", "gauge", "Threads of edged.");
  if (ok) out.sample("", {}, to_double(f[17]));
  out.family("edge_process_start_time_seconds", "gauge", "Start time of edged, Unix seconds.", "seconds");
  if (ok && boot > 0) out.sample("", {}, boot + to_double(f[19]) / tick);

  std::error_code ec;
  std::uint64_t fds = 0;
  for (std::filesystem::directory_iterator it(self / "fd", ec), end; !ec && it != end; it.increment(ec)) ++fds;
  out.family("edge_process_open_fds", "gauge", "Open file descriptors of edged.");
  if (!ec) out.sample("", {}, fds);
  std::uint64_t max_fds = 0;
  for (auto const& line : lines_of(self / "limits")) {
    if (line.starts_with("Max open files")) {
      auto const lf = fields_of(line.substr(14));
      if (!lf.empty()) max_fds = to_u64(lf[0]);
    }
  }
  out.family("edge_process_max_fds", "gauge", "Open file descriptor limit of edged.");
  if (max_fds > 0) out.sample("", {}, max_fds);
}

std::string os_release_value(std::filesystem::path const& root, std::string const& key) {
  for (auto const* file : {"etc/os-release", "usr/lib/os-release"}) {
    for (auto const& line : lines_of(root / file)) {
      if (!line.starts_with(key + "=")) continue;
      auto value = line.substr(key.size() + 1);
      if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'')) value = value.substr(1, value.size() - 2);
      return value;
    }
  }
  return "";
}

void info_and_time(OpenMetricsWriter& out, SystemSource const& source) {
  utsname u{};
  uname(&u);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  out.family("edge_node_info", "gauge", "Constant 1; labels name the host, OS, kernel and edged version.");
  out.sample("", {{"version", source.version},
                  {"hostname", host},
                  {"os", os_release_value(source.root, "ID")},
                  {"os_version", os_release_value(source.root, "VERSION_ID")},
                  {"kernel", u.release}},
             std::uint64_t{1});
  out.family("edge_node_time_seconds", "gauge", "System time, Unix seconds.", "seconds");
  auto const now = std::chrono::system_clock::now().time_since_epoch();
  out.sample("", {}, std::chrono::duration<double>(now).count());
}

}  // namespace

void write_system_metrics(OpenMetricsWriter& out, SystemSource const& source) {
  auto const proc = source.root / "proc";
  cpu_and_boot(out, proc);
  memory(out, proc);
  load(out, proc);
  filesystems(out, source.root);
  disks(out, proc);
  network(out, proc);
  file_descriptors(out, proc);
  tcp_states(out, proc);
  process(out, proc);
  info_and_time(out, source);
}

}  // namespace edge::admin
