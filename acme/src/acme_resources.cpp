#include "acme_resources.hpp"

#include <algorithm>
#include <boost/json.hpp>

#include "crypto.hpp"
#include "problem.hpp"
#include "renewal_policy.hpp"

namespace edge::acme {
namespace {

namespace json = boost::json;

// RFC 9773 section 4.3: ignore silly Retry-After values for renewalInfo.
constexpr std::chrono::seconds ari_min_retry{60};
constexpr std::chrono::seconds ari_max_retry{86400};
constexpr std::chrono::seconds ari_default_retry{6 * 3600};

AcmeError make_error(char const* type, std::string detail) {
  return AcmeError{type, std::move(detail), 0, std::nullopt};
}

std::string string_member(json::object const& object, std::string_view key) {
  if (auto const* v = object.if_contains(key); v && v->is_string()) return std::string(v->get_string());
  return {};
}

std::optional<AcmeError> error_member(json::object const& object) {
  if (auto const* e = object.if_contains("error"); e && e->is_object()) return parse_problem_json(json::serialize(*e));
  return std::nullopt;
}

AcmeResult<json::object> parse_object(std::string_view body, std::string_view what) {
  boost::system::error_code ec;
  auto value = json::parse(body, ec);
  if (ec || !value.is_object()) return make_error(problem::protocol, std::string(what) + " is not a JSON object");
  return std::move(value.get_object());
}

}  // namespace

AcmeResult<Order> parse_order(std::string_view body, std::string url) {
  auto object = parse_object(body, "order");
  if (!object) return object.error();
  Order order;
  order.url = std::move(url);
  order.status = string_member(*object, "status");
  order.finalize = string_member(*object, "finalize");
  order.certificate = string_member(*object, "certificate");
  order.error = error_member(*object);
  if (auto const* list = object->if_contains("authorizations"); list && list->is_array())
    for (auto const& a : list->get_array())
      if (a.is_string()) order.authorizations.emplace_back(a.get_string());
  if (auto const* list = object->if_contains("identifiers"); list && list->is_array())
    for (auto const& i : list->get_array())
      if (auto const* io = i.if_object()) order.identifiers.push_back(string_member(*io, "value"));
  if (order.status.empty() || order.finalize.empty())
    return make_error(problem::protocol, "order lacks status or finalize");
  return order;
}

AcmeResult<Authorization> parse_authorization(std::string_view body, std::string url) {
  auto object = parse_object(body, "authorization");
  if (!object) return object.error();
  Authorization authz;
  authz.url = std::move(url);
  authz.status = string_member(*object, "status");
  if (auto const* id = object->if_contains("identifier"); id && id->is_object()) {
    auto const type = string_member(id->get_object(), "type");
    authz.identifier = classify_identifier(string_member(id->get_object(), "value"));
    if ((type == "ip") != (authz.identifier.type == IdentifierType::ip))
      return make_error(problem::protocol, "authorization identifier type does not match value");
  }
  if (auto const* list = object->if_contains("challenges"); list && list->is_array()) {
    for (auto const& c : list->get_array()) {
      auto const* co = c.if_object();
      if (co == nullptr) continue;
      authz.challenges.push_back({string_member(*co, "type"), string_member(*co, "url"), string_member(*co, "token"),
                                  string_member(*co, "status"), error_member(*co)});
    }
  }
  if (authz.status.empty() || authz.identifier.value.empty())
    return make_error(problem::protocol, "authorization lacks status or identifier");
  return authz;
}

AcmeResult<RenewalWindow> parse_renewal_info(HttpResponse const& response) {
  auto object = parse_object(response.body, "renewalInfo");
  if (!object) return object.error();
  RenewalWindow window;
  if (auto const* w = object->if_contains("suggestedWindow"); w && w->is_object()) {
    auto const start = parse_rfc3339(string_member(w->get_object(), "start"));
    auto const end = parse_rfc3339(string_member(w->get_object(), "end"));
    if (!start || !end || *end < *start)
      return make_error(problem::protocol, "renewalInfo has no valid suggestedWindow");
    window.start = *start;
    window.end = *end;
  } else {
    return make_error(problem::protocol, "renewalInfo lacks suggestedWindow");
  }
  window.explanation_url = string_member(*object, "explanationURL");
  auto retry = retry_after_of(response).value_or(ari_default_retry);
  window.retry_after = std::clamp(retry, ari_min_retry, ari_max_retry);
  return window;
}

std::optional<std::chrono::seconds> retry_after_of(HttpResponse const& response) {
  if (auto const value = response.header("Retry-After")) return parse_retry_after(*value);
  return std::nullopt;
}

std::vector<std::string> alternate_links(HttpResponse const& response) {
  std::vector<std::string> out;
  for (auto const& header : response.headers_named("Link")) {
    std::size_t pos = 0;
    while ((pos = header.find('<', pos)) != std::string::npos) {
      auto const close = header.find('>', pos);
      if (close == std::string::npos) break;
      auto const next = header.find('<', close);
      auto const params = header.substr(close + 1, next == std::string::npos ? std::string::npos : next - close - 1);
      if (params.find("rel=\"alternate\"") != std::string::npos || params.find("rel=alternate") != std::string::npos)
        out.push_back(header.substr(pos + 1, close - pos - 1));
      pos = close;
    }
  }
  return out;
}

bool chain_has_issuer(std::string const& chain_pem, std::string const& issuer_cn) {
  auto chain = parse_pem_chain(chain_pem);
  if (!chain) return false;
  auto const names = chain_issuer_names(*chain);
  return std::find(names.begin(), names.end(), issuer_cn) != names.end();
}

}  // namespace edge::acme
