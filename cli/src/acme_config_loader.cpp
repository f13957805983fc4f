// The ACME part of the configuration: proxy.tls.acme and the certificate list.
#include "yaml_reader.hpp"

namespace edge::cli {
namespace {

acme::KeyType key_type(Reader const& r, YAML::Node const& node, std::string const& key) {
  auto const text = r.string(node, key);
  if (text == "ecdsa-p256") return acme::KeyType::ecdsa_p256;
  if (text == "ecdsa-p384") return acme::KeyType::ecdsa_p384;
  if (text == "rsa-2048") return acme::KeyType::rsa_2048;
  if (text == "rsa-3072") return acme::KeyType::rsa_3072;
  if (text == "rsa-4096") return acme::KeyType::rsa_4096;
  r.fail(node, key, "expected one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, got \"" + text + "\"");
}

}  // namespace

void read_acme(Reader const& r, YAML::Node const& acme, std::string const& akey, EdgeConfig& config) {
  r.only_keys(acme, akey, {"directory", "ca_bundle", "contact", "key_type"});
  if (acme["directory"]) {
    config.acme.directory_url = r.string(acme["directory"], akey + ".directory");
    if (!config.acme.directory_url.starts_with("https://")) {
      r.fail(acme["directory"], akey + ".directory", "expected an https:// URL");
    }
  }
  if (acme["ca_bundle"]) config.acme.ca_bundle = r.path(acme["ca_bundle"], akey + ".ca_bundle").string();
  if (acme["contact"]) config.acme.contact = r.strings(acme["contact"], akey + ".contact");
  if (acme["key_type"]) config.acme.key_type = key_type(r, acme["key_type"], akey + ".key_type");
}

void read_certificates(Reader const& r, YAML::Node const& list, std::string const& key, EdgeConfig& config) {
  if (!list.IsSequence()) r.fail(list, key, "expected a list of certificates");
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto const& node = list[i];
    auto const item = Reader::index(key, i);
    r.only_keys(node, item, {"name", "identifiers", "certificate", "private_key"});
    if (!node["name"]) r.fail(node, item, "missing key \"name\"");
    auto const name = r.string(node["name"], item + ".name");
    if (name.empty()) r.fail(node["name"], item + ".name", "must not be empty");
    if (!names.insert(name).second) r.fail(node["name"], item + ".name", "duplicate certificate name \"" + name + "\"");
    if (config.mode == TlsMode::acme) {
      if (node["certificate"] || node["private_key"]) {
        r.fail(node, item, "\"certificate\"/\"private_key\" belong to mode: manual; mode is acme");
      }
      if (!node["identifiers"]) r.fail(node, item, "missing key \"identifiers\"");
      auto const ids_key = item + ".identifiers";
      auto ids = r.strings(node["identifiers"], ids_key);
      if (ids.empty()) r.fail(node["identifiers"], ids_key, "needs at least one DNS name or IP address");
      for (std::size_t j = 0; j < ids.size(); ++j) {
        if (!is_ip_literal(ids[j]) && !is_dns_name(ids[j])) {
          r.fail(node["identifiers"][j], Reader::index(ids_key, j),
                 "\"" + ids[j] + "\" is neither a DNS name nor an IP address");
        }
      }
      config.acme.certificates.push_back({name, std::move(ids)});
    } else {
      if (node["identifiers"])
        r.fail(node["identifiers"], item + ".identifiers", "identifiers come from the certificate in mode: manual");
      if (!node["certificate"]) r.fail(node, item, "missing key \"certificate\"");
      if (!node["private_key"]) r.fail(node, item, "missing key \"private_key\"");
      config.manual_certificates.push_back({name, r.path(node["certificate"], item + ".certificate"),
                                            r.path(node["private_key"], item + ".private_key")});
    }
  }
}

}  // namespace edge::cli
