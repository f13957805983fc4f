#pragma once
// The JSON-RPC 2.0 envelope (https://www.jsonrpc.org/specification): parsing
// single calls and batches into calls or ready-made error responses, and
// building responses. No transport, no methods: both sides are elsewhere.
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace edge::admin {

// The specification's codes, and ours in its server-error range.
namespace rpc_code {
inline constexpr int parse_error = -32700;
inline constexpr int invalid_request = -32600;
inline constexpr int method_not_found = -32601;
inline constexpr int invalid_params = -32602;
inline constexpr int internal_error = -32603;
inline constexpr int unauthorized = -32000;           // sent with HTTP 401
inline constexpr int not_found = -32001;              // no such certificate
inline constexpr int not_supported = -32003;          // e.g. certs.renew in manual mode
inline constexpr int certificate_rejected = -32010;   // certs.import validation
inline constexpr int config_invalid = -32011;         // config.reload: the file has an error
inline constexpr int store_error = -32020;            // the SQLite store failed
}  // namespace rpc_code

struct RpcError {
  int code = rpc_code::internal_error;
  std::string message;
  boost::json::value data = nullptr;  // omitted when null
};

[[noreturn]] void throw_exception_from_error(RpcError const& e, boost::source_location const&);

using RpcResult = boost::system::result<boost::json::value, RpcError>;

struct RpcCall {
  boost::json::value id;      // string, number or null
  bool notification = false;  // no "id" member: no response
  std::string method;
  boost::json::value params;  // object, array, or null when absent
};

// One element of a request: a call to make, or an error response for an
// element that is not a valid request.
using RpcItem = std::variant<RpcCall, boost::json::object>;

struct RpcEnvelope {
  bool batch = false;
  std::vector<RpcItem> items;
  // Set when the whole body is rejected (parse error, empty batch): this is
  // the single response.
  std::optional<boost::json::object> rejected;
};

RpcEnvelope parse_envelope(std::string_view body);

boost::json::object make_result(boost::json::value const& id, boost::json::value result);
boost::json::object make_error(boost::json::value const& id, RpcError const& error);

// The responses put together: a single object, an array for a batch, or ""
// when every call was a notification (the HTTP answer is then 204).
std::string serialize_responses(RpcEnvelope const& envelope, std::vector<boost::json::object> const& responses);

// Reads by-name parameters with type checks; every complaint is an
// invalid-params error naming the parameter.
class Params {
 public:
  // Accepts an object, or null/absent/[] as "no parameters".
  static boost::system::result<Params, RpcError> from(boost::json::value const& params);

  std::optional<std::string> string(std::string_view name, bool required = false);
  std::optional<std::int64_t> integer(std::string_view name, std::int64_t min, std::int64_t max);
  boost::json::value const* raw(std::string_view name) const;
  // Every parameter not read by the calls above is an error (typos must not
  // silently widen a query).
  std::optional<RpcError> finish();
  std::optional<RpcError> const& error() const { return error_; }

 private:
  boost::json::object object_;
  std::vector<std::string> read_;
  std::optional<RpcError> error_;
};

}  // namespace edge::admin
