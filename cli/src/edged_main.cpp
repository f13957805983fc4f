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

#include <csignal>
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

// The admin API, status page and metrics, when configured (admin:, metrics:).
std::unique_ptr<admin::AdminServer> start_admin(cli::EdgeConfig const& config, proxy::CertificateRegistry& certificates,
                                                proxy::Server const& server, proxy::TlsStatistics const& tls_statistics,
                                                proxy::HandshakeLog const& log) {
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
  if (config.source != cli::default_config().source) {
    // Kept as started: a reload compares the file with what is running.
    auto const text = std::make_shared<std::string const>(read_file(config.source));
    services.reload = [&config, &certificates, text](store::Store& db) {
      auto outcome = cli::reload_config(config, *text, db, certificates);
      std::fprintf(stderr, "edged: config.reload: %s\n", outcome.ok ? "done" : outcome.error.c_str());
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

int run(cli::EdgeConfig const& config) {
  // Signals are taken by sigwait on this thread only; every thread started
  // below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

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
  proxy::Server server(config.proxy, certificates, challenges, log);
  server.start();
  for (auto const& address : config.proxy.listen) std::fprintf(stderr, "edged: listening on %s\n", address.text().c_str());

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
  auto admin = start_admin(config, certificates, server, tls_statistics, log);
  std::fprintf(stderr, "edged: ready (config %s, store %s)\n", config.source.c_str(), config.store_path.c_str());
  // systemd (Type=notify): the listeners accept from here on.
  cli::SystemdNotifier systemd;
  systemd.ready("serving TLS on " + std::to_string(config.proxy.listen.size()) + " address(es)");

  int received = 0;
  while (sigwait(&signals, &received) == 0 && received == SIGUSR1) {
    std::fprintf(stderr, "edged: SIGUSR1, reopening %s\n", config.handshake_log.file.c_str());
    log.reopen();
  }
  std::fprintf(stderr, "edged: %s, stopping\n", strsignal(received));
  systemd.stopping(std::string("stopping on ") + strsignal(received));
  if (admin) admin->stop();
  if (scheduler) scheduler->stop();
  server.stop();
  log.stop();
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
  try {
    return run(config);
  } catch (std::exception const& e) {
    std::fprintf(stderr, "edged: %s\n", e.what());
    return 1;
  }
}
