#pragma once
// An in-memory ACME server behind the HttpTransport seam, for what Pebble 2.4
// cannot show: ARI (renewalInfo, RFC 9773), profiles (meta.profiles),
// Retry-After on 429/503, problem documents with subproblems. Its answers are
// shaped like recorded Let's Encrypt / Pebble responses (bodies, headers,
// status codes); it issues real certificates from the CSR with its own CA so
// the client's checks (key match, identifiers, chains) run for real.
//
// Faults: `inject[endpoint]` holds answers returned instead of the normal
// one, in order; `down` makes every request fail as if the CA were
// unreachable. Every request is recorded.
#include "base64url.hpp"
#include "http_transport.hpp"
#include "test_support.hpp"

#include <boost/json.hpp>
#include <openssl/rand.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>

namespace edge::acme::test {

namespace json = boost::json;

// A CA (root or intermediate) made with OpenSSL directly.
struct TestCa {
  Pkey key;
  X509Cert cert;
  std::string pem;
};

inline std::string to_pem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long const size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

inline void add_extension(X509* cert, X509* issuer, int nid, char const* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) throw std::runtime_error("extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

inline void random_serial(X509* cert) {
  unsigned char bytes[12];
  RAND_bytes(bytes, sizeof bytes);
  bytes[0] |= 0x80;  // high bit set: the DER INTEGER needs a leading zero (ARI CertID case)
  Bignum bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert));
}

// Subject CN `cn`, signed by `issuer` (nullptr: self-signed), key `key`.
inline TestCa make_ca(std::string const& cn, TestCa const* issuer, Pkey key = Pkey()) {
  TestCa ca;
  ca.key = key ? std::move(key) : Pkey(EVP_EC_gen("P-256"));
  ca.cert.reset(X509_new());
  X509_set_version(ca.cert.get(), 2);
  random_serial(ca.cert.get());
  X509_gmtime_adj(X509_getm_notBefore(ca.cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(ca.cert.get()), 10L * 365 * 86400);
  X509_NAME* name = X509_get_subject_name(ca.cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<unsigned char const*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(ca.cert.get(), issuer ? X509_get_subject_name(issuer->cert.get()) : name);
  X509_set_pubkey(ca.cert.get(), ca.key.get());
  X509* signer_cert = issuer ? issuer->cert.get() : ca.cert.get();
  add_extension(ca.cert.get(), signer_cert, NID_basic_constraints, "critical,CA:TRUE");
  add_extension(ca.cert.get(), signer_cert, NID_subject_key_identifier, "hash");
  add_extension(ca.cert.get(), signer_cert, NID_authority_key_identifier, "keyid:always");
  X509_sign(ca.cert.get(), issuer ? issuer->key.get() : ca.key.get(), EVP_sha256());
  ca.pem = to_pem(ca.cert.get());
  return ca;
}

inline HttpResponse json_response(int status, std::string body,
                                  std::string content_type = "application/json; charset=utf-8") {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  r.headers = {{"Cache-Control", "public, max-age=0, no-cache"},
               {"Content-Type", std::move(content_type)}};
  return r;
}

// A problem document as Let's Encrypt sends it.
inline HttpResponse problem_response(int status, std::string body,
                                     std::optional<std::string> retry_after = std::nullopt) {
  auto r = json_response(status, std::move(body), "application/problem+json");
  if (retry_after) r.headers.emplace_back("Retry-After", *retry_after);
  return r;
}

class FakeAcme final : public HttpTransport {
 public:
  explicit FakeAcme(std::string base = "https://ca.test")
      : base_(std::move(base)),
        root_(make_ca("Fake Root X1", nullptr)),
        alt_root_(make_ca("Fake Alt Root X2", nullptr)),
        intermediate_(make_ca("Fake Intermediate R1", &root_)) {
    // The same intermediate (subject and key) cross-signed by another root:
    // what an alternate chain looks like.
    Pkey same_key(EVP_PKEY_dup(intermediate_.key.get()));
    alt_intermediate_ = make_ca("Fake Intermediate R1", &alt_root_, std::move(same_key));
  }

  // --- behaviour --------------------------------------------------------------
  bool ari = false;                                         // renewalInfo in the directory
  std::vector<std::pair<std::string, std::string>> profiles;  // meta.profiles
  bool alternates = false;                                  // Link rel="alternate" on downloads
  bool external_account_required = false;
  long validity_seconds = 90L * 86400;
  // renewalInfo answer: window relative to the certificate's notBefore (s).
  long ari_start_offset = 60L * 86400;
  long ari_end_offset = 62L * 86400;
  std::optional<std::string> ari_retry_after = "21600";
  bool down = false;  // every request fails: connection refused
  std::map<std::string, std::deque<HttpResponse>> inject;

  // --- what happened ----------------------------------------------------------
  struct Seen {
    std::string endpoint;
    HttpMethod method;
    std::string url;
    json::object header;   // JWS protected header (POST)
    std::string payload;   // JWS payload (POST)
  };

  std::vector<Seen> seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::size_t count(std::string const& endpoint) const {
    std::lock_guard lock(mutex_);
    return static_cast<std::size_t>(std::count_if(seen_.begin(), seen_.end(),
                                                  [&](Seen const& s) { return s.endpoint == endpoint; }));
  }
  std::size_t requests() const {
    std::lock_guard lock(mutex_);
    return seen_.size();
  }
  std::vector<json::object> payloads(std::string const& endpoint) const {
    std::lock_guard lock(mutex_);
    std::vector<json::object> out;
    for (auto const& s : seen_)
      if (s.endpoint == endpoint && !s.payload.empty()) out.push_back(json::parse(s.payload).as_object());
    return out;
  }
  std::string const& directory_url() const { return directory_url_; }
  std::string const& root_pem() const { return root_.pem; }
  std::string const& alt_root_pem() const { return alt_root_.pem; }
  std::set<std::string> revoked_serials() const {
    std::lock_guard lock(mutex_);
    return revoked_;
  }

  // When > 0, every newOrder waits (up to 10 s) until this many newOrder
  // requests are in flight at once: proves orders run concurrently without
  // timing anything (run sequentially, the first would time out and fail).
  std::size_t new_order_gate = 0;

  AcmeResult<HttpResponse> perform(HttpRequest const& request) override {
    if (new_order_gate > 0 && endpoint_of(request.url) == "newOrder") {
      std::unique_lock gate(gate_mutex_);
      ++gate_arrived_;
      gate_cv_.notify_all();
      if (!gate_cv_.wait_for(gate, std::chrono::seconds(10),
                             [&] { return gate_arrived_ >= new_order_gate; }))
        return json_response(500, "newOrder gate: not enough concurrent orders");
    }
    std::lock_guard lock(mutex_);
    Seen s{endpoint_of(request.url), request.method, request.url, {}, {}};
    if (request.method == HttpMethod::post) {
      auto const body = json::parse(request.body).as_object();
      auto const header = base64url_decode(body.at("protected").as_string());
      auto const payload = base64url_decode(body.at("payload").as_string());
      if (header) s.header = json::parse(std::string(header->begin(), header->end())).as_object();
      if (payload) s.payload.assign(payload->begin(), payload->end());
    }
    seen_.push_back(s);
    if (down) return AcmeError{problem::transport, request.url + ": Connection refused"};
    auto& queue = inject[s.endpoint];
    HttpResponse r;
    if (!queue.empty()) {
      r = std::move(queue.front());
      queue.pop_front();
    } else {
      r = answer(s);
    }
    r.headers.emplace_back("Replay-Nonce", "nonce" + std::to_string(++nonce_));
    r.headers.emplace_back("Link", "<" + directory_url_ + ">;rel=\"index\"");
    return r;
  }

 private:
  std::string endpoint_of(std::string const& url) const {
    std::string path = url.substr(base_.size());
    if (path == "/dir") return "directory";
    if (path == "/nonce") return "newNonce";
    if (path == "/new-acct") return "newAccount";
    if (path == "/new-order") return "newOrder";
    if (path == "/revoke") return "revokeCert";
    if (path == "/key-change") return "keyChange";
    for (char const* prefix : {"/acct/", "/order/", "/authz/", "/chall/", "/finalize/", "/cert/",
                               "/renewal-info/"}) {
      if (path.starts_with(prefix)) {
        std::string name(prefix + 1);
        name.pop_back();
        return name;
      }
    }
    return "unknown";
  }

  std::string last_segment(std::string const& url) const { return url.substr(url.rfind('/') + 1); }

  HttpResponse answer(Seen const& s) {
    if (s.endpoint == "directory") {
      json::object meta{{"termsOfService", "https://ca.test/terms"},
                        {"externalAccountRequired", external_account_required}};
      if (!profiles.empty()) {
        json::object p;
        for (auto const& [name, description] : profiles) p[name] = description;
        meta["profiles"] = p;
      }
      json::object d{{"newNonce", base_ + "/nonce"},  {"newAccount", base_ + "/new-acct"},
                     {"newOrder", base_ + "/new-order"}, {"revokeCert", base_ + "/revoke"},
                     {"keyChange", base_ + "/key-change"}, {"meta", meta}};
      if (ari) d["renewalInfo"] = base_ + "/renewal-info";
      return json_response(200, json::serialize(d));
    }
    if (s.endpoint == "newNonce") {
      HttpResponse r;
      r.status = 200;
      return r;
    }
    if (s.endpoint == "newAccount") {
      auto const payload = json::parse(s.payload).as_object();
      auto const jwk = json::serialize(s.header.at("jwk"));
      auto it = accounts_.find(jwk);
      if (it == accounts_.end()) {
        if (payload.contains("onlyReturnExisting"))
          return problem_response(400, R"({"type":"urn:ietf:params:acme:error:accountDoesNotExist","detail":"unable to find existing account for only-return-existing request","status":400})");
        it = accounts_.emplace(jwk, base_ + "/acct/" + std::to_string(accounts_.size() + 1)).first;
        auto r = json_response(201, R"({"status":"valid"})");
        r.headers.emplace_back("Location", it->second);
        return r;
      }
      auto r = json_response(200, R"({"status":"valid"})");
      r.headers.emplace_back("Location", it->second);
      return r;
    }
    if (s.endpoint == "acct" || s.endpoint == "keyChange" || s.endpoint == "revokeCert") {
      if (s.endpoint == "revokeCert") {
        auto const der = base64url_decode(json::parse(s.payload).at("certificate").as_string());
        unsigned char const* p = der->data();
        X509Cert cert(d2i_X509(nullptr, &p, static_cast<long>(der->size())));
        Bignum bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
        char* hex = BN_bn2hex(bn.get());
        revoked_.insert(hex);
        OPENSSL_free(hex);
        return json_response(200, "");
      }
      return json_response(200, R"({"status":"valid"})");
    }
    if (s.endpoint == "newOrder") {
      auto const payload = json::parse(s.payload).as_object();
      auto const id = std::to_string(++orders_);
      Order order;
      order.identifiers = payload.at("identifiers").as_array();
      order.profile = payload.contains("profile") ? std::string(payload.at("profile").as_string()) : "";
      orders_by_id_[id] = order;
      auto r = json_response(201, order_json(id));
      r.headers.emplace_back("Location", base_ + "/order/" + id);
      return r;
    }
    if (s.endpoint == "order") return json_response(200, order_json(last_segment(s.url)));
    if (s.endpoint == "authz") {
      auto const id = last_segment(s.url);  // "<order>-<index>"
      auto const order_id = id.substr(0, id.find('-'));
      auto const index = std::stoul(id.substr(id.find('-') + 1));
      auto& order = orders_by_id_.at(order_id);
      bool const answered = order.answered.contains(index);
      json::object authz{{"identifier", order.identifiers.at(index)},
                         {"status", answered ? "valid" : "pending"},
                         {"expires", "2099-01-01T00:00:00Z"},
                         {"challenges", json::array{json::object{
                                            {"type", "tls-alpn-01"},
                                            {"url", base_ + "/chall/" + id},
                                            {"token", "tok" + id},
                                            {"status", answered ? "valid" : "pending"}}}}};
      return json_response(200, json::serialize(authz));
    }
    if (s.endpoint == "chall") {
      auto const id = last_segment(s.url);
      auto& order = orders_by_id_.at(id.substr(0, id.find('-')));
      order.answered.insert(std::stoul(id.substr(id.find('-') + 1)));
      if (order.answered.size() == order.identifiers.size()) order.status = "ready";
      return json_response(200, R"({"type":"tls-alpn-01","status":"processing"})");
    }
    if (s.endpoint == "finalize") {
      auto const id = last_segment(s.url);
      auto& order = orders_by_id_.at(id);
      auto const csr_der = base64url_decode(json::parse(s.payload).at("csr").as_string());
      order.leaf_pem = issue(*csr_der);
      order.status = "valid";
      return json_response(200, order_json(id));
    }
    if (s.endpoint == "cert") {
      auto path = s.url.substr((base_ + "/cert/").size());
      bool const alt = path.ends_with("/alt/1");
      auto const id = alt ? path.substr(0, path.find('/')) : path;
      auto const& order = orders_by_id_.at(id);
      auto r = json_response(200, order.leaf_pem + (alt ? alt_intermediate_.pem : intermediate_.pem),
                             "application/pem-certificate-chain");
      if (alternates && !alt)
        r.headers.emplace_back("Link", "<" + base_ + "/cert/" + id + "/alt/1>;rel=\"alternate\"");
      return r;
    }
    if (s.endpoint == "renewal-info") {
      auto const cert_id = last_segment(s.url);
      auto it = not_before_by_cert_id_.find(cert_id);
      if (it == not_before_by_cert_id_.end())
        return problem_response(404, R"({"type":"urn:ietf:params:acme:error:malformed","detail":"Certificate not found","status":404})");
      auto const iso = [](std::int64_t t) {
        std::time_t const tt = static_cast<std::time_t>(t);
        std::tm tm{};
        gmtime_r(&tt, &tm);
        char buf[32];
        std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return std::string(buf);
      };
      // As Let's Encrypt answers (its explanationURL is optional).
      auto r = json_response(200, R"({"suggestedWindow":{"start":")" + iso(it->second + ari_start_offset) +
                                      R"(","end":")" + iso(it->second + ari_end_offset) +
                                      R"("},"explanationURL":"https://ca.test/incident/1"})");
      if (ari_retry_after) r.headers.emplace_back("Retry-After", *ari_retry_after);
      return r;
    }
    return problem_response(404, R"({"type":"urn:ietf:params:acme:error:malformed","detail":"no such resource","status":404})");
  }

  struct Order {
    json::array identifiers;
    std::string profile;
    std::string status = "pending";
    std::set<std::size_t> answered;
    std::string leaf_pem;
  };

  std::string order_json(std::string const& id) const {
    auto const& order = orders_by_id_.at(id);
    json::array authzs;
    for (std::size_t i = 0; i < order.identifiers.size(); ++i)
      authzs.emplace_back(base_ + "/authz/" + id + "-" + std::to_string(i));
    json::object o{{"status", order.status},
                   {"expires", "2099-01-01T00:00:00Z"},
                   {"identifiers", order.identifiers},
                   {"authorizations", authzs},
                   {"finalize", base_ + "/finalize/" + id}};
    if (!order.profile.empty()) o["profile"] = order.profile;
    if (order.status == "valid") o["certificate"] = base_ + "/cert/" + id;
    return json::serialize(o);
  }

  std::string issue(std::vector<std::uint8_t> const& csr_der) {
    unsigned char const* p = csr_der.data();
    X509Request req(d2i_X509_REQ(nullptr, &p, static_cast<long>(csr_der.size())));
    X509Cert cert(X509_new());
    X509_set_version(cert.get(), 2);
    random_serial(cert.get());
    auto const now = std::time(nullptr);
    ASN1_TIME_set(X509_getm_notBefore(cert.get()), now);
    ASN1_TIME_set(X509_getm_notAfter(cert.get()), now + validity_seconds);
    X509_set_subject_name(cert.get(), X509_REQ_get_subject_name(req.get()));
    X509_set_issuer_name(cert.get(), X509_get_subject_name(intermediate_.cert.get()));
    Pkey pub(X509_REQ_get_pubkey(req.get()));
    X509_set_pubkey(cert.get(), pub.get());
    STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req.get());
    for (int i = 0; i < sk_X509_EXTENSION_num(exts); ++i)
      X509_add_ext(cert.get(), sk_X509_EXTENSION_value(exts, i), -1);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    add_extension(cert.get(), intermediate_.cert.get(), NID_authority_key_identifier, "keyid:always");
    X509_sign(cert.get(), intermediate_.key.get(), EVP_sha256());
    auto const pem = to_pem(cert.get());
    // Remember the CertID the client will ask renewalInfo about.
    ASN1_OCTET_STRING const* aki = X509_get0_authority_key_id(cert.get());
    std::vector<std::uint8_t> key_id(ASN1_STRING_get0_data(aki),
                                     ASN1_STRING_get0_data(aki) + ASN1_STRING_length(aki));
    int const n = i2d_ASN1_INTEGER(X509_get0_serialNumber(cert.get()), nullptr);
    std::vector<std::uint8_t> serial(static_cast<std::size_t>(n));
    unsigned char* q = serial.data();
    i2d_ASN1_INTEGER(X509_get0_serialNumber(cert.get()), &q);
    std::vector<std::uint8_t> content(serial.begin() + 2, serial.end());
    not_before_by_cert_id_[openssl_base64url(key_id) + "." + openssl_base64url(content)] = now;
    return pem;
  }

  std::string base_;
  std::string directory_url_ = base_ + "/dir";
  TestCa root_;
  TestCa alt_root_;
  TestCa intermediate_;
  TestCa alt_intermediate_;
  mutable std::mutex mutex_;
  std::mutex gate_mutex_;
  std::condition_variable gate_cv_;
  std::size_t gate_arrived_ = 0;
  std::vector<Seen> seen_;
  std::map<std::string, std::string> accounts_;  // jwk -> account URL
  std::map<std::string, Order> orders_by_id_;
  std::map<std::string, std::int64_t> not_before_by_cert_id_;
  std::set<std::string> revoked_;
  int nonce_ = 0;
  int orders_ = 0;
};

}  // namespace edge::acme::test
