// The ACME part of the configuration: proxy.tls.acme and the certificate list.
#include "yaml_reader.hpp"

namespace edge::cli {
namespace {

acme::KeyType key_type(Reader const& r, YAML::Node const& node, std::string const& key) {
  auto const text = r.string(node, key);
  if (auto type = acme::key_type_from_string(text)) return *type;
  r.fail(node, key, "expected one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096, got \"" + text + "\"");
}

acme::KeyType account_key_type(Reader const& r, YAML::Node const& node, std::string const& key) {
  auto const type = key_type(r, node, key);
  if (type == acme::KeyType::ecdsa_p384) {
    r.fail(node, key, "account keys are ecdsa-p256 (ES256) or rsa-2048/3072/4096 (RS256)");
  }
  return type;
}

std::string directory(Reader const& r, YAML::Node const& node, std::string const& key) {
  auto url = r.string(node, key);
  if (!url.starts_with("https://")) r.fail(node, key, "expected an https:// URL");
  return url;
}

acme::ExternalAccountBinding eab(Reader const& r, YAML::Node const& node, std::string const& key) {
  r.only_keys(node, key, {"key_id", "mac_key"});
  if (!node["key_id"]) r.fail(node, key, "missing key \"key_id\"");
  if (!node["mac_key"]) r.fail(node, key, "missing key \"mac_key\"");
  acme::ExternalAccountBinding out{r.string(node["key_id"], key + ".key_id"), r.string(node["mac_key"], key + ".mac_key")};
  if (out.key_id.empty()) r.fail(node["key_id"], key + ".key_id", "must not be empty");
  // base64url without padding, as CAs hand MAC keys out (the value itself is
  // a secret and never appears in messages).
  auto const& mac = out.hmac_key;
  bool const base64url = !mac.empty() && std::all_of(mac.begin(), mac.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_';
  });
  if (!base64url) r.fail(node["mac_key"], key + ".mac_key", "expected a base64url MAC key (A-Z a-z 0-9 - _)");
  return out;
}

}  // namespace

void read_acme(Reader const& r, YAML::Node const& acme, std::string const& akey, EdgeConfig& config) {
  r.only_keys(acme, akey,
              {"directory", "ca_bundle", "contact", "key_type", "account_key_type", "eab", "issuers",
               "max_parallel_orders"});
  auto& a = config.acme;
  if (acme["directory"]) a.directory_url = directory(r, acme["directory"], akey + ".directory");
  if (acme["ca_bundle"]) a.ca_bundle = r.path(acme["ca_bundle"], akey + ".ca_bundle").string();
  if (acme["contact"]) a.contact = r.strings(acme["contact"], akey + ".contact");
  if (acme["key_type"]) a.key_type = key_type(r, acme["key_type"], akey + ".key_type");
  if (acme["account_key_type"])
    a.account_key_type = account_key_type(r, acme["account_key_type"], akey + ".account_key_type");
  if (acme["eab"]) a.eab = eab(r, acme["eab"], akey + ".eab");
  if (auto n = acme["max_parallel_orders"])
    a.max_parallel_orders = static_cast<std::size_t>(r.integer(n, akey + ".max_parallel_orders", 1, 64));

  if (auto list = acme["issuers"]) {
    auto const key = akey + ".issuers";
    if (acme["directory"]) r.fail(acme["directory"], akey + ".directory", "use either directory or issuers, not both");
    if (acme["eab"]) r.fail(acme["eab"], akey + ".eab", "with issuers, eab belongs to each issuer");
    if (!list.IsSequence() || list.size() == 0) r.fail(list, key, "expected a non-empty list of issuers");
    std::set<std::string> seen;
    for (std::size_t i = 0; i < list.size(); ++i) {
      auto const& node = list[i];
      auto const item = Reader::index(key, i);
      r.only_keys(node, item, {"directory", "ca_bundle", "contact", "eab", "account_key_type"});
      if (!node["directory"]) r.fail(node, item, "missing key \"directory\"");
      // ca_bundle, contact and account_key_type default to the section's.
      acme::IssuerConfig issuer{directory(r, node["directory"], item + ".directory"), a.ca_bundle, a.contact,
                                std::nullopt, a.account_key_type};
      if (!seen.insert(issuer.directory_url).second)
        r.fail(node["directory"], item + ".directory", "duplicate directory \"" + issuer.directory_url + "\"");
      if (node["ca_bundle"]) issuer.ca_bundle = r.path(node["ca_bundle"], item + ".ca_bundle").string();
      if (node["contact"]) issuer.contact = r.strings(node["contact"], item + ".contact");
      if (node["eab"]) issuer.eab = eab(r, node["eab"], item + ".eab");
      if (node["account_key_type"])
        issuer.account_key_type = account_key_type(r, node["account_key_type"], item + ".account_key_type");
      a.issuers.push_back(std::move(issuer));
    }
    // The first issuer is "the" directory for the mode: acme check and logs.
    a.directory_url = a.issuers.front().directory_url;
  }
}

void read_certificates(Reader const& r, YAML::Node const& list, std::string const& key, EdgeConfig& config) {
  if (!list.IsSequence()) r.fail(list, key, "expected a list of certificates");
  std::set<std::string> names;
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto const& node = list[i];
    auto const item = Reader::index(key, i);
    r.only_keys(node, item,
                {"name", "identifiers", "certificate", "private_key", "key_type", "reuse_key", "preferred_chain",
                 "profile"});
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
      acme::CertificateSpec spec{name, std::move(ids)};
      if (node["key_type"]) spec.key_type = key_type(r, node["key_type"], item + ".key_type");
      if (node["reuse_key"]) spec.reuse_key = r.boolean(node["reuse_key"], item + ".reuse_key");
      if (node["preferred_chain"]) {
        spec.preferred_chain = r.string(node["preferred_chain"], item + ".preferred_chain");
        if (spec.preferred_chain.empty())
          r.fail(node["preferred_chain"], item + ".preferred_chain", "expected an issuer common name");
      }
      if (node["profile"]) {
        spec.profile = r.string(node["profile"], item + ".profile");
        if (spec.profile.empty()) r.fail(node["profile"], item + ".profile", "expected a profile name");
      }
      config.acme.certificates.push_back(std::move(spec));
    } else {
      for (char const* acme_only : {"identifiers", "key_type", "reuse_key", "preferred_chain", "profile"}) {
        if (node[acme_only] && std::string(acme_only) == "identifiers")
          r.fail(node[acme_only], item + ".identifiers", "identifiers come from the certificate in mode: manual");
        if (node[acme_only]) r.fail(node[acme_only], item + "." + acme_only, "belongs to mode: acme");
      }
      if (!node["certificate"]) r.fail(node, item, "missing key \"certificate\"");
      if (!node["private_key"]) r.fail(node, item, "missing key \"private_key\"");
      config.manual_certificates.push_back({name, r.path(node["certificate"], item + ".certificate"),
                                            private_key_path(r, node["private_key"], item + ".private_key", config)});
    }
  }
}

}  // namespace edge::cli
