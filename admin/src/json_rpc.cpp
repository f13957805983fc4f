#include "json_rpc.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <stdexcept>

namespace edge::admin {
namespace json = boost::json;

void throw_exception_from_error(RpcError const& e, boost::source_location const&) {
  throw std::runtime_error("JSON-RPC error " + std::to_string(e.code) + ": " + e.message);
}

namespace {

json::object invalid_request(json::value const& id, std::string why) {
  return make_error(id, {rpc_code::invalid_request, "Invalid Request", json::value(std::move(why))});
}

bool valid_id(json::value const& id) { return id.is_string() || id.is_number() || id.is_null(); }

RpcItem parse_item(json::value const& item) {
  if (!item.is_object()) return invalid_request(nullptr, "a request must be a JSON object");
  auto const& o = item.as_object();
  json::value id = nullptr;
  bool const has_id = o.contains("id");
  if (has_id) {
    id = o.at("id");
    if (!valid_id(id)) return invalid_request(nullptr, "\"id\" must be a string, a number or null");
  }
  auto const* version = o.if_contains("jsonrpc");
  if (!version || !version->is_string() || version->as_string() != "2.0")
    return invalid_request(id, "\"jsonrpc\" must be \"2.0\"");
  auto const* method = o.if_contains("method");
  if (!method || !method->is_string()) return invalid_request(id, "\"method\" must be a string");
  json::value params = nullptr;
  if (auto const* p = o.if_contains("params")) {
    if (!p->is_object() && !p->is_array())
      return invalid_request(id, "\"params\" must be an object or an array");
    params = *p;
  }
  for (auto const& member : o) {
    auto const key = member.key();
    if (key != "jsonrpc" && key != "method" && key != "params" && key != "id")
      return invalid_request(id, "unknown member \"" + std::string(key) + "\"");
  }
  return RpcCall{std::move(id), !has_id, std::string(method->as_string()), std::move(params)};
}

}  // namespace

RpcEnvelope parse_envelope(std::string_view body) {
  RpcEnvelope out;
  boost::system::error_code ec;
  json::value const doc = json::parse(body, ec);
  if (ec) {
    out.rejected = make_error(nullptr, {rpc_code::parse_error, "Parse error", json::value(ec.message())});
    return out;
  }
  if (doc.is_array()) {
    out.batch = true;
    if (doc.as_array().empty()) {
      out.rejected = invalid_request(nullptr, "an empty batch");
      return out;
    }
    for (auto const& item : doc.as_array()) out.items.push_back(parse_item(item));
    return out;
  }
  out.items.push_back(parse_item(doc));
  return out;
}

json::object make_result(json::value const& id, json::value result) {
  return json::object{{"jsonrpc", "2.0"}, {"result", std::move(result)}, {"id", id}};
}

json::object make_error(json::value const& id, RpcError const& error) {
  json::object e{{"code", error.code}, {"message", error.message}};
  if (!error.data.is_null()) e["data"] = error.data;
  return json::object{{"jsonrpc", "2.0"}, {"error", std::move(e)}, {"id", id}};
}

std::string serialize_responses(RpcEnvelope const& envelope, std::vector<json::object> const& responses) {
  if (envelope.rejected) return json::serialize(*envelope.rejected);
  if (responses.empty()) return {};
  if (!envelope.batch) return json::serialize(responses.front());
  json::array all;
  all.reserve(responses.size());
  for (auto const& r : responses) all.push_back(r);
  return json::serialize(all);
}

boost::system::result<Params, RpcError> Params::from(json::value const& params) {
  Params p;
  if (params.is_object()) {
    p.object_ = params.as_object();
  } else if (!(params.is_null() || (params.is_array() && params.as_array().empty()))) {
    return RpcError{rpc_code::invalid_params, "Invalid params", "parameters are passed by name, in an object"};
  }
  return p;
}

json::value const* Params::raw(std::string_view name) const { return object_.if_contains(name); }

std::optional<std::string> Params::string(std::string_view name, bool required) {
  read_.emplace_back(name);
  auto const* v = raw(name);
  if (!v || v->is_null()) {
    if (required && !error_)
      error_ = RpcError{rpc_code::invalid_params, "Invalid params", json::value("missing parameter \"" + std::string(name) + "\"")};
    return std::nullopt;
  }
  if (!v->is_string()) {
    if (!error_)
      error_ = RpcError{rpc_code::invalid_params, "Invalid params", json::value("\"" + std::string(name) + "\" must be a string")};
    return std::nullopt;
  }
  return std::string(v->as_string());
}

std::optional<std::int64_t> Params::integer(std::string_view name, std::int64_t min, std::int64_t max) {
  read_.emplace_back(name);
  auto const* v = raw(name);
  if (!v || v->is_null()) return std::nullopt;
  std::optional<std::int64_t> value;
  if (v->is_int64()) value = v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX))
    value = static_cast<std::int64_t>(v->as_uint64());
  if (!value || *value < min || *value > max) {
    if (!error_)
      error_ = RpcError{rpc_code::invalid_params, "Invalid params",
                        json::value("\"" + std::string(name) + "\" must be an integer in " + std::to_string(min) +
                                    ".." + std::to_string(max))};
    return std::nullopt;
  }
  return value;
}

std::optional<RpcError> Params::finish() {
  if (error_) return error_;
  for (auto const& member : object_) {
    if (std::find(read_.begin(), read_.end(), member.key()) == read_.end())
      return RpcError{rpc_code::invalid_params, "Invalid params",
                      json::value("unknown parameter \"" + std::string(member.key()) + "\"")};
  }
  return std::nullopt;
}

}  // namespace edge::admin
