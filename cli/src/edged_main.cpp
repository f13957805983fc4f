// edged: the appliance. Reads the configuration, opens the store, serves TLS
// with certificates from the store, keeps them issued with ACME, and logs
// every handshake. The only place where the modules are wired together.
#include "config_loader.hpp"
#include "config_reload.hpp"
#include "environment_overrides.hpp"
#include "systemd_notify.hpp"

#include <edge/acme/renewal_scheduler.hpp>
#include <edge/admin/admin_server.hpp>
#include <edge/proxy/certificate_registry.hpp>
#include <edge/proxy/challenge_registry.hpp>
#include <edge/proxy/handshake_log.hpp>
#include <edge/proxy/server.hpp>
#include <edge/proxy/tls_statistics.hpp>
#include <edge/store/certificate_pem.hpp>
#include <edge/store/store.hpp>

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

namespace {

using namespace edge;

// The ACME client publishes challenge certificates; the listener serves them.
class ChallengeResponderAdapter final : public acme::ChallengeResponder {
 public:
  explicit ChallengeResponderAdapter(proxy::ChallengeRegistry& registry) : registry_(registry) {}
  void publish(std::string const& server_name, std::string const& certificate_pem,
               std::string const& private_key_pem) override {
    std::string why;
    if (!registry_.publish(server_name, certificate_pem, private_key_pem, why)) {
      std::fprintf(stderr, "edged: challenge for %s not served: %s\n", server_name.c_str(), why.c_str());
    }
  }
  void withdraw(std::string const& server_name) override { registry_.withdraw(server_name); }

 private:
  proxy::ChallengeRegistry& registry_;
};

std::string read_file(std::filesystem::path const& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot read");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Manual certificates are imported into the store at start, so that every
// certificate served has a row (and a generation) that records can point to.
void import_manual_certificates(cli::EdgeConfig const& config, store::Store& db) {
  for (auto const& manual : config.manual_certificates) {
    auto record = store::describe_certificate(manual.name, read_file(manual.certificate),
                                              read_file(manual.private_key), store::CertificateSource::manual);
    if (!record) throw std::runtime_error(manual.certificate.string() + ": " + record.error().message);
    auto current = db.current_certificate(manual.name).value();
    if (current && current->fingerprint_sha256 == record->fingerprint_sha256) continue;
    auto generation = db.put_certificate(*record).value();
    std::fprintf(stderr, "edged: imported %s from %s (generation %lld)\n", manual.name.c_str(),
                 manual.certificate.c_str(), static_cast<long long>(generation));
  }
}

void log_serving(store::CertificateRecord const& cert) {
  std::fprintf(stderr, "edged: serving certificate %s generation %lld serial %s\n", cert.name.c_str(),
               static_cast<long long>(cert.generation), cert.serial.c_str());
}

void log_reload(char const* how, admin::ReloadOutcome const& outcome) {
  if (!outcome.ok) {
    std::fprintf(stderr, "edged: %s refused, the running configuration stays: %s\n", how, outcome.error.c_str());
    return;
  }
  std::fprintf(stderr, "edged: %s done\n", how);
  for (auto const& a : outcome.applied) std::fprintf(stderr, "edged:   applied: %s\n", a.c_str());
  for (auto const& r : outcome.restart_required) std::fprintf(stderr, "edged:   needs a restart: %s\n", r.c_str());
}

// The admin API, status page and metrics, when configured (admin:, metrics:).
std::unique_ptr<admin::AdminServer> start_admin(cli::EdgeConfig const& config, proxy::CertificateRegistry& certificates,
                                                proxy::Server const& server, proxy::TlsStatistics const& tls_statistics,
                                                proxy::HandshakeLog const& log, cli::ConfigReloader* reloader) {
  if (!config.admin.enabled && !config.metrics.enabled) return nullptr;
  admin::AdminServices services;
  services.store_path = config.store_path;
  services.certificates = &certificates;
  services.proxy_metrics = &server.metrics();
  services.tls_statistics = &tls_statistics;
  services.handshake_log = &log;
  services.acme_mode = config.mode == cli::TlsMode::acme;
  for (auto const& spec : config.acme.certificates) services.acme_certificates.push_back(spec.name);
  services.on_imported = [](store::CertificateRecord const& cert) {
    std::fprintf(stderr, "edged: admin API imported %s (generation %lld)\n", cert.name.c_str(),
                 static_cast<long long>(cert.generation));
    log_serving(cert);
  };
  if (reloader) {
    services.reload = [reloader](store::Store& db) {
      auto outcome = reloader->reload(db);
      log_reload("config.reload", outcome);
      return outcome;
    };
  }
  auto server_admin = std::make_unique<admin::AdminServer>(config.admin, config.metrics, std::move(services));
  server_admin->start();
  // Never the token: only where to reach the listeners.
  if (config.admin.enabled && config.admin.listen_tcp)
    std::fprintf(stderr, "edged: admin API on http://%s/ (token %s)\n", config.admin.listen.text().c_str(),
                 config.admin.token.empty() ? "not configured: read-only" : "configured");
  if (config.admin.enabled && !config.admin.socket.empty())
    std::fprintf(stderr, "edged: admin API on unix:%s\n", config.admin.socket.c_str());
  if (config.metrics.enabled)
    std::fprintf(stderr, "edged: metrics on http://%s/metrics\n", config.metrics.listen.text().c_str());
  return server_admin;
}

// How this process was started: what a binary upgrade executes again.
struct Invocation {
  std::string path;  // the binary's path as started (a new binary there is picked up)
  std::vector<std::string> args;
};

// Descriptors inherited from a previous edged (EDGE_LISTEN_FDS=addr=fd,...) or
// from systemd socket activation (LISTEN_FDS, LISTEN_PID).
std::vector<int> inherited_listeners() {
  std::vector<int> fds;
  if (char const* list = std::getenv("EDGE_LISTEN_FDS")) {
    std::stringstream items(list);
    std::string item;
    while (std::getline(items, item, ',')) {
      auto const equals = item.rfind('=');
      if (equals == std::string::npos) continue;
      try {
        fds.push_back(std::stoi(item.substr(equals + 1)));
      } catch (std::exception const&) {
        std::fprintf(stderr, "edged: EDGE_LISTEN_FDS: ignoring \"%s\"\n", item.c_str());
      }
    }
    unsetenv("EDGE_LISTEN_FDS");
  }
  char const* pid = std::getenv("LISTEN_PID");
  char const* count = std::getenv("LISTEN_FDS");
  if (pid && count && std::atol(pid) == static_cast<long>(getpid())) {
    for (int i = 0; i < std::atoi(count); ++i) fds.push_back(3 + i);  // SD_LISTEN_FDS_START
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
  }
  for (int fd : fds) fcntl(fd, F_SETFD, FD_CLOEXEC);  // ours now; not for our own successor's exec
  return fds;
}

// A successor started by `hand_over` waits for this: written once serving.
void tell_predecessor_ready() {
  char const* text = std::getenv("EDGE_UPGRADE_READY_FD");
  if (!text) return;
  int const fd = std::atoi(text);
  unsetenv("EDGE_UPGRADE_READY_FD");
  char const ready = '1';
  if (write(fd, &ready, 1) != 1) std::fprintf(stderr, "edged: cannot tell the previous edged we are ready\n");
  close(fd);
}

// Binary upgrade: fork+exec the binary at the path we were started from,
// handing it our listening sockets (the same sockets: nothing queued in
// them is lost). True once the successor says it serves; false (and we
// keep serving) when it fails to start.
bool hand_over(proxy::Server& server, Invocation const& invocation, pid_t& child) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "edged: upgrade: pipe: %s\n", std::strerror(errno));
    return false;
  }
  auto const sockets = server.listening_sockets();
  std::string listen = "EDGE_LISTEN_FDS=";
  std::vector<int> keep{ready[1]};
  for (auto const& [address, fd] : sockets) {
    listen += (keep.size() > 1 ? "," : "") + address + "=" + std::to_string(fd);
    keep.push_back(fd);
  }
  std::sort(keep.begin(), keep.end());
  // Everything exec needs is built before fork: a forked child of a
  // threaded process may only make async-signal-safe calls.
  std::vector<std::string> environment;
  for (char** e = environ; *e; ++e) {
    std::string_view const entry(*e);
    if (entry.starts_with("EDGE_LISTEN_FDS=") || entry.starts_with("EDGE_UPGRADE_READY_FD=") ||
        entry.starts_with("LISTEN_PID=") || entry.starts_with("LISTEN_FDS=") || entry.starts_with("LISTEN_FDNAMES=") ||
        entry.starts_with("WATCHDOG_PID="))  // the successor becomes the main process and pings the watchdog
      continue;
    environment.emplace_back(entry);
  }
  environment.push_back(listen);
  environment.push_back("EDGE_UPGRADE_READY_FD=" + std::to_string(ready[1]));
  std::vector<char*> envp, argv;
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  auto args = invocation.args;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  child = fork();
  if (child == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // Only stdio, the listening sockets and the pipe cross exec: a client
    // connection inherited by the successor would never close.
    unsigned next = 3;
    for (int fd : keep) {
      if (static_cast<unsigned>(fd) > next) close_range(next, static_cast<unsigned>(fd) - 1, 0);
      fcntl(fd, F_SETFD, 0);
      next = static_cast<unsigned>(fd) + 1;
    }
    close_range(next, ~0u, 0);
    execve(invocation.path.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  close(ready[1]);
  if (child < 0) {
    std::fprintf(stderr, "edged: upgrade: fork: %s\n", std::strerror(errno));
    close(ready[0]);
    return false;
  }
  std::fprintf(stderr, "edged: upgrade: started %s as pid %d, waiting for it to serve\n", invocation.path.c_str(),
               static_cast<int>(child));
  pollfd wait{ready[0], POLLIN, 0};
  char answer = 0;
  bool const ok = poll(&wait, 1, 60'000) == 1 && read(ready[0], &answer, 1) == 1 && answer == '1';
  close(ready[0]);
  if (!ok) {
    int status = 0;
    if (waitpid(child, &status, WNOHANG) == 0) {
      kill(child, SIGTERM);  // started but never ready within a minute: ours to stop
      waitpid(child, &status, 0);
    }
    std::fprintf(stderr, "edged: upgrade failed: pid %d did not become ready; this edged keeps serving\n",
                 static_cast<int>(child));
  }
  return ok;
}

void raise_descriptor_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
      std::fprintf(stderr, "edged: cannot raise RLIMIT_NOFILE: %s\n", std::strerror(errno));
  }
  getrlimit(RLIMIT_NOFILE, &limit);
  std::fprintf(stderr, "edged: descriptor limit %llu\n", static_cast<unsigned long long>(limit.rlim_cur));
}

int run(cli::EdgeConfig const& config, Invocation const& invocation) {
  // Signals are taken by sigwait on this thread only; every thread started
  // below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGINT, SIGTERM, SIGUSR1, SIGUSR2, SIGHUP}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  raise_descriptor_limit();
  auto inherited = inherited_listeners();

  auto opened = store::open_sqlite_store(config.store_path);
  if (!opened) throw std::runtime_error(opened.error().message);
  auto db = std::move(*opened);
  import_manual_certificates(config, *db);

  proxy::CertificateRegistry certificates(config.proxy.tls);
  auto const records = db->current_certificates().value();
  // Contexts are built on first use so that start-up does not parse every
  // chain and key (about 1 ms each): 10,000 certificates serve in well under
  // a second. A background check reports (and takes out) what does not load.
  certificates.replace_all(records, proxy::CertificateRegistry::Check::on_first_use);
  if (records.size() <= 32) {
    for (auto const& cert : records) log_serving(cert);
  } else {
    std::fprintf(stderr, "edged: serving %zu certificates from the store\n", records.size());
  }
  std::jthread certificate_check([&certificates](std::stop_token stop) {
    for (auto const& error : certificates.check_contexts(stop)) std::fprintf(stderr, "edged: not served: %s\n", error.c_str());
  });

  proxy::ChallengeRegistry challenges;
  auto log_options = config.handshake_log;
  if (config.handshake_log_store) log_options.store_path = config.store_path;
  proxy::HandshakeLog log(log_options);
  proxy::TlsStatistics tls_statistics;  // metrics and the admin API, counted on the log's writer thread
  log.set_observer(&tls_statistics);
  log.start();
  proxy::Server server(config.proxy, certificates, challenges, log, std::move(inherited));
  server.start();
  for (auto const& address : config.proxy.listen) std::fprintf(stderr, "edged: listening on %s\n", address.text().c_str());
  std::fprintf(stderr, "edged: at most %zu connections (proxy.max_connections)\n", server.max_connections());

  ChallengeResponderAdapter responder(challenges);
  std::unique_ptr<acme::RenewalScheduler> scheduler;
  if (config.mode == cli::TlsMode::acme) {
    scheduler = std::make_unique<acme::RenewalScheduler>(
        config.acme, config.store_path, responder, [&certificates](store::CertificateRecord const& cert) {
          for (auto const& error : certificates.put(cert)) std::fprintf(stderr, "edged: not served: %s\n", error.c_str());
          log_serving(cert);
        });
    scheduler->start();
  }
  std::unique_ptr<cli::ConfigReloader> reloader;
  if (config.source != cli::default_config().source)
    reloader = std::make_unique<cli::ConfigReloader>(config, read_file(config.source), certificates, server);
  auto admin = start_admin(config, certificates, server, tls_statistics, log, reloader.get());
  std::fprintf(stderr, "edged: ready (config %s, store %s, pid %d)\n", config.source.c_str(),
               config.store_path.c_str(), static_cast<int>(getpid()));
  // systemd (Type=notify): the listeners accept from here on. A successor of
  // a binary upgrade first names itself the service's main process.
  cli::SystemdNotifier systemd;
  if (std::getenv("EDGE_UPGRADE_READY_FD")) systemd.send("MAINPID=" + std::to_string(getpid()) + "\n");
  tell_predecessor_ready();
  systemd.ready("serving TLS on " + std::to_string(config.proxy.listen.size()) + " address(es)");
  bool upgraded = false;

  int received = 0;
  while (sigwait(&signals, &received) == 0) {
    if (received == SIGUSR1) {
      std::fprintf(stderr, "edged: SIGUSR1, reopening %s%s%s\n", config.handshake_log.file.c_str(),
                   config.proxy.access_log_file.empty() ? "" : " and ", config.proxy.access_log_file.c_str());
      log.reopen();
      server.reopen_access_log();
    } else if (received == SIGHUP) {
      if (!reloader) {
        std::fprintf(stderr, "edged: SIGHUP: running on built-in defaults, there is no file to reload\n");
        continue;
      }
      log_reload("SIGHUP reload", reloader->reload(*db));
    } else if (received == SIGUSR2) {
      // The admin listeners cannot be shared: the successor binds them, so ours close first.
      if (admin) admin->stop();
      admin.reset();
      pid_t child = -1;
      if (hand_over(server, invocation, child)) {
        std::fprintf(stderr, "edged: upgrade: pid %d serves now; pid %d drains and exits\n", static_cast<int>(child),
                     static_cast<int>(getpid()));
        // One renewal scheduler at a time: the successor runs its own.
        if (scheduler) scheduler->stop();
        scheduler.reset();
        upgraded = true;
        break;
      }
      admin = start_admin(config, certificates, server, tls_statistics, log, reloader.get());
    } else {
      std::fprintf(stderr, "edged: %s, stopping\n", strsignal(received));
      break;
    }
  }
  // Not after an upgrade: systemd would take the whole service as stopping.
  if (!upgraded) systemd.stopping(std::string("stopping on ") + strsignal(received));
  // Graceful: no new connections, in-flight ones finish (up to
  // proxy.shutdown_grace_secs), every handshake record is written.
  server.shutdown();
  if (scheduler) scheduler->stop();
  if (admin) admin->stop();
  log.stop();
  db.reset();
  std::fprintf(stderr, "edged: stopped\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"edged: ACME-managed TLS edge"};
  std::string config_path;
  app.add_option("-c,--config", config_path, "YAML configuration file (built-in defaults when absent)")
      ->envname("EDGE_CONFIG");
  auto* check = app.add_subcommand("check", "validate the configuration and exit (0 valid, 1 invalid)");
  check->add_option("-c,--config", config_path, "YAML configuration file")->envname("EDGE_CONFIG")->required();
  check->fallthrough();
  CLI11_PARSE(app, argc, argv);

  // EDGE_* variables apply over the file, or over the built-in defaults.
  auto loaded = config_path.empty() ? cli::environment_config(cli::process_environment()) : cli::load_config(config_path);
  if (!loaded) {
    std::fprintf(stderr, "%s\n", loaded.error().message.c_str());
    return 1;
  }
  cli::EdgeConfig config = std::move(*loaded);
  if (check->parsed()) {
    std::printf("%s: ok\n", config_path.c_str());
    return 0;
  }
  Invocation invocation;
  std::error_code ec;
  std::string const arg0 = argc > 0 ? argv[0] : "";
  invocation.path = arg0.find('/') != std::string::npos ? std::filesystem::absolute(arg0, ec).string()
                                                         : std::filesystem::read_symlink("/proc/self/exe", ec).string();
  for (int i = 0; i < argc; ++i) invocation.args.emplace_back(argv[i]);
  try {
    return run(config, invocation);
  } catch (std::exception const& e) {
    std::fprintf(stderr, "edged: %s\n", e.what());
    return 1;
  }
}
