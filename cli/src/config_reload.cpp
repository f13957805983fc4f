#include "config_reload.hpp"

#include <edge/store/certificate_pem.hpp>

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

namespace edge::cli {
namespace {

std::string read_text(std::filesystem::path const& path, bool& ok) {
  std::ifstream in(path, std::ios::binary);
  ok = static_cast<bool>(in);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string emit(YAML::Node const& node) {
  YAML::Emitter emitter;
  emitter << node;
  return emitter.c_str();
}

// Every top-level section of the file, as text, to see which ones changed;
// and the parts of proxy.tls that belong to ACME (the renewal scheduler reads
// them at start only): "proxy.tls.mode", "proxy.tls.acme", "proxy.tls.certificates".
std::map<std::string, std::string> sections(std::string const& text) {
  std::map<std::string, std::string> out;
  YAML::Node root = YAML::Load(text);
  if (!root || !root.IsMap()) return out;
  for (auto const& entry : root) {
    auto const key = entry.first.as<std::string>();
    out[key] = emit(entry.second);
    if (key != "proxy" || !entry.second.IsMap() || !entry.second["tls"] || !entry.second["tls"].IsMap()) continue;
    auto const tls = entry.second["tls"];
    for (char const* part : {"mode", "acme", "certificates"}) {
      if (tls[part]) out[std::string("proxy.tls.") + part] = emit(tls[part]);
    }
  }
  return out;
}

}  // namespace

ConfigReloader::ConfigReloader(EdgeConfig running, std::string running_text, proxy::CertificateRegistry& registry,
                               proxy::Server& server)
    : running_(std::move(running)), running_text_(std::move(running_text)), registry_(registry), server_(server) {}

admin::ReloadOutcome ConfigReloader::reload(store::Store& db) {
  std::lock_guard lock(mutex_);
  admin::ReloadOutcome outcome;
  auto loaded = load_config(running_.source);
  if (!loaded) {
    outcome.error = loaded.error().message;
    return outcome;
  }
  bool readable = false;
  auto const text = read_text(running_.source, readable);

  // Sections that a running edged cannot change: reported, not applied.
  bool proxy_changed = false;
  try {
    auto const before = sections(running_text_);
    auto const after = sections(text);
    std::set<std::string> keys;
    for (auto const& [k, v] : before) keys.insert(k);
    for (auto const& [k, v] : after) keys.insert(k);
    for (auto const& k : keys) {
      auto a = before.find(k), b = after.find(k);
      bool const changed = a == before.end() || b == after.end() || a->second != b->second;
      if (k == "proxy") {
        proxy_changed = changed;  // applied below, but for the worker count and ACME's parts
      } else if (k == "proxy.tls.certificates") {
        // Manual certificate files are imported below; ACME's list is the scheduler's, read at start.
        if (changed && (running_.mode == TlsMode::acme || loaded->mode == TlsMode::acme))
          outcome.restart_required.push_back("proxy.tls.certificates (acme)");
      } else if (changed) {
        outcome.restart_required.push_back(k);
      }
    }
  } catch (YAML::Exception const& e) {
    outcome.error = running_.source + ": " + e.what();
    return outcome;
  }
  if (loaded->proxy.workers != running_.proxy.workers) outcome.restart_required.push_back("proxy.workers");

  // Manual certificate files are all read and checked before anything changes.
  bool const manual = running_.mode == TlsMode::manual && loaded->mode == TlsMode::manual;
  std::vector<store::CertificateRecord> imports;
  if (manual) {
    for (auto const& cert : loaded->manual_certificates) {
      bool chain_ok = false, key_ok = false;
      auto chain = read_text(cert.certificate, chain_ok);
      auto key = read_text(cert.private_key, key_ok);
      if (!chain_ok || !key_ok) {
        outcome.error = (chain_ok ? cert.private_key : cert.certificate).string() + ": cannot read";
        return outcome;
      }
      auto record =
          store::describe_certificate(cert.name, std::move(chain), std::move(key), store::CertificateSource::manual);
      if (!record) {
        outcome.error = cert.certificate.string() + ": " + record.error().message;
        return outcome;
      }
      auto current = db.current_certificate(cert.name);
      if (!current) {
        outcome.error = current.error().message;
        return outcome;
      }
      if (*current && (*current)->fingerprint_sha256 == record->fingerprint_sha256) continue;
      imports.push_back(std::move(*record));
    }
  }

  // The proxy first: when a new address cannot be bound, nothing has changed.
  if (proxy_changed) {
    auto proxy = loaded->proxy;
    proxy.workers = running_.proxy.workers;
    if (auto why = server_.reconfigure(proxy); !why.empty()) {
      outcome.error = why;
      return outcome;
    }
    outcome.applied.push_back("proxy: listeners, TLS policy and routes for new connections");
  }

  for (auto& record : imports) {
    auto generation = db.put_certificate(record);
    if (!generation) {
      outcome.error = generation.error().message;
      return outcome;
    }
    record.generation = *generation;
    if (!proxy_changed) {
      if (auto const errors = registry_.put(record); !errors.empty()) {
        outcome.error = record.name + ": stored but not served: " + errors.front();
        return outcome;
      }
    }
    outcome.applied.push_back("certificate " + record.name + ": generation " + std::to_string(*generation));
  }
  if (proxy_changed) {
    // Every certificate context again: the TLS policy lives in them too.
    auto const current = db.current_certificates();
    if (!current) {
      outcome.error = current.error().message;
      return outcome;
    }
    for (auto const& error : registry_.replace_all(*current, loaded->proxy.tls))
      outcome.applied.push_back("not served: " + error);
  }

  if (manual) {
    std::set<std::string> names;
    for (auto const& cert : loaded->manual_certificates) names.insert(cert.name);
    for (auto const& old : running_.manual_certificates) {
      if (!names.contains(old.name))
        outcome.restart_required.push_back("proxy.tls.certificates (" + old.name + " removed)");
    }
  }
  // What a restart would apply stays pending: the next reload compares with
  // this file, so report those sections against what really runs.
  auto const keep_workers = running_.proxy.workers;
  running_ = std::move(*loaded);
  running_.proxy.workers = keep_workers;
  if (outcome.restart_required.empty()) running_text_ = text;
  outcome.ok = true;
  return outcome;
}

}  // namespace edge::cli
