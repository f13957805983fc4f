#include "acme_session.hpp"

#include "jws.hpp"
#include "problem.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <utility>

namespace edge::acme {
namespace {

namespace json = boost::json;

bool is_success(int status) { return status >= 200 && status < 300; }

// RFC 8555 section 6.5.1: a nonce is base64url; anything else is ignored.
bool is_valid_nonce(std::string_view nonce) {
  return !nonce.empty() && std::all_of(nonce.begin(), nonce.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_';
  });
}

std::string string_member(json::object const& object, std::string_view key) {
  if (auto const* v = object.if_contains(key); v && v->is_string())
    return std::string(v->get_string());
  return {};
}

}  // namespace

AcmeResult<Directory> parse_directory(std::string_view body) {
  boost::system::error_code ec;
  auto const value = json::parse(body, ec);
  if (ec || !value.is_object())
    return AcmeError{problem::protocol, "directory is not a JSON object", 0, std::nullopt};
  auto const& object = value.get_object();
  Directory d;
  d.new_nonce = string_member(object, "newNonce");
  d.new_account = string_member(object, "newAccount");
  d.new_order = string_member(object, "newOrder");
  d.revoke_cert = string_member(object, "revokeCert");
  d.key_change = string_member(object, "keyChange");
  d.renewal_info = string_member(object, "renewalInfo");
  if (auto const* meta = object.if_contains("meta"); meta && meta->is_object()) {
    d.terms_of_service = string_member(meta->get_object(), "termsOfService");
    if (auto const* profiles = meta->get_object().if_contains("profiles");
        profiles && profiles->is_object()) {
      for (auto const& [name, description] : profiles->get_object())
        d.profiles.emplace_back(std::string(name),
                                description.is_string() ? std::string(description.get_string())
                                                        : std::string());
    }
    if (auto const* ear = meta->get_object().if_contains("externalAccountRequired");
        ear && ear->is_bool())
      d.external_account_required = ear->get_bool();
  }
  if (d.new_nonce.empty() || d.new_account.empty() || d.new_order.empty())
    return AcmeError{problem::protocol, "directory lacks newNonce, newAccount or newOrder", 0,
                     std::nullopt};
  return d;
}

bool Directory::offers_profile(std::string_view name) const {
  return std::any_of(profiles.begin(), profiles.end(),
                     [&](auto const& p) { return p.first == name; });
}

AcmeResult<HttpResponse> AcmeSession::get(std::string const& url) {
  auto response = transport_.perform({HttpMethod::get, url, {}, {}, "application/json"});
  if (!response) return response.error();
  take_nonce(*response);
  if (!is_success(response->status)) return error_from_response(*response, "");
  return std::move(*response);
}

AcmeSession::AcmeSession(HttpTransport& transport, std::string directory_url)
    : transport_(transport), directory_url_(std::move(directory_url)) {}

void AcmeSession::set_account(PkeyPtr key, std::string kid) {
  key_ = std::move(key);
  kid_ = std::move(kid);
}

AcmeResult<Directory const*> AcmeSession::directory() {
  if (directory_) return &*directory_;
  auto response = transport_.perform({HttpMethod::get, directory_url_, {}, {}, "application/json"});
  if (!response) return response.error();
  take_nonce(*response);
  if (!is_success(response->status)) return error_from_response(*response, "directory");
  auto parsed = parse_directory(response->body);
  if (!parsed) return parsed.error();
  directory_ = std::move(*parsed);
  return &*directory_;
}

void AcmeSession::take_nonce(HttpResponse const& response) {
  if (auto nonce = response.header("Replay-Nonce"); nonce && is_valid_nonce(*nonce))
    nonce_ = std::move(*nonce);
}

AcmeResult<void> AcmeSession::fetch_nonce() {
  auto dir = directory();
  if (!dir) return dir.error();
  auto response = transport_.perform({HttpMethod::head, (*dir)->new_nonce, {}, {}, {}});
  if (!response) return response.error();
  take_nonce(*response);
  if (!is_success(response->status)) return error_from_response(*response, "newNonce");
  if (nonce_.empty())
    return AcmeError{problem::protocol, "newNonce answered without Replay-Nonce",
                     response->status, std::nullopt};
  return {};
}

AcmeResult<HttpResponse> AcmeSession::post(std::string const& url, std::string_view payload,
                                           std::string const& accept) {
  if (!key_) throw std::logic_error("AcmeSession::post without an account key");
  for (int attempt = 0;; ++attempt) {
    if (nonce_.empty()) {
      if (auto r = fetch_nonce(); !r) return r.error();
    }
    // A nonce is good for one request only, whatever the outcome.
    std::string const nonce = std::exchange(nonce_, std::string());
    auto body = make_jws(key_.get(), kid_, nonce, url, payload);
    if (!body) return body.error();
    auto response = transport_.perform(
        {HttpMethod::post, url, std::move(*body), "application/jose+json", accept});
    if (!response) return response.error();
    take_nonce(*response);
    if (is_success(response->status)) return std::move(*response);

    auto error = error_from_response(*response, "");
    if (error.type == problem::bad_nonce && attempt < max_bad_nonce_retries) {
      ++bad_nonce_retries_;
      continue;  // RFC 8555 section 6.5: retry with the nonce this answer carried
    }
    return error;
  }
}

}  // namespace edge::acme
