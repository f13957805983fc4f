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

// The parts of the file a reload compares: every top-level section, with
// the manual certificate list taken out of proxy.tls (a reload applies it).
std::map<std::string, std::string> sections(std::string const& text, bool manual) {
  std::map<std::string, std::string> out;
  YAML::Node root = YAML::Load(text);
  if (!root || !root.IsMap()) return out;
  for (auto const& entry : root) {
    auto const key = entry.first.as<std::string>();
    YAML::Node value = YAML::Clone(entry.second);
    if (key == "proxy" && manual && value.IsMap() && value["tls"] && value["tls"].IsMap()) {
      value["tls"].remove("certificates");
      value["tls"].remove("certificate");
      value["tls"].remove("private_key");
    }
    YAML::Emitter emitter;
    emitter << value;
    out[key] = emitter.c_str();
  }
  return out;
}

}  // namespace

admin::ReloadOutcome reload_config(EdgeConfig const& running, std::string const& running_text, store::Store& db,
                                   proxy::CertificateRegistry& registry) {
  admin::ReloadOutcome outcome;
  auto loaded = load_config(running.source);
  if (!loaded) {
    outcome.error = loaded.error().message;
    return outcome;
  }
  bool readable = false;
  auto const text = read_text(running.source, readable);
  bool const manual = running.mode == TlsMode::manual && loaded->mode == TlsMode::manual;

  try {
    auto const before = sections(running_text, manual);
    auto const after = sections(text, manual);
    std::set<std::string> keys;
    for (auto const& [k, v] : before) keys.insert(k);
    for (auto const& [k, v] : after) keys.insert(k);
    for (auto const& k : keys) {
      auto a = before.find(k), b = after.find(k);
      if (a == before.end() || b == after.end() || a->second != b->second) outcome.restart_required.push_back(k);
    }
  } catch (YAML::Exception const& e) {
    outcome.error = running.source + ": " + e.what();
    return outcome;
  }
  if (!manual) {
    outcome.ok = true;
    return outcome;
  }

  std::set<std::string> names;
  for (auto const& cert : loaded->manual_certificates) {
    names.insert(cert.name);
    bool chain_ok = false, key_ok = false;
    auto chain = read_text(cert.certificate, chain_ok);
    auto key = read_text(cert.private_key, key_ok);
    if (!chain_ok || !key_ok) {
      outcome.error = (chain_ok ? cert.private_key : cert.certificate).string() + ": cannot read";
      return outcome;
    }
    auto record = store::describe_certificate(cert.name, std::move(chain), std::move(key),
                                              store::CertificateSource::manual);
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
    auto generation = db.put_certificate(*record);
    if (!generation) {
      outcome.error = generation.error().message;
      return outcome;
    }
    record->generation = *generation;
    auto const errors = registry.put(*record);
    if (!errors.empty()) {
      outcome.error = cert.certificate.string() + ": stored but not served: " + errors.front();
      return outcome;
    }
    outcome.applied.push_back("certificate " + cert.name + ": generation " + std::to_string(*generation) + " from " +
                              cert.certificate.string());
  }
  for (auto const& old : running.manual_certificates) {
    if (!names.contains(old.name))
      outcome.restart_required.push_back("proxy.tls.certificates (" + old.name + " removed)");
  }
  outcome.ok = true;
  return outcome;
}

}  // namespace edge::cli
