#include "json_rpc.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace edge::admin {
namespace {
namespace json = boost::json;

json::object const& error_of(RpcItem const& item) { return std::get<json::object>(item); }

TEST(JsonRpcEnvelope, ParseErrorIsOneResponseWithNullId) {
  auto const e = parse_envelope("{\"jsonrpc\": \"2.0\", \"method\": ");
  ASSERT_TRUE(e.rejected);
  EXPECT_EQ(e.rejected->at("error").at("code").as_int64(), rpc_code::parse_error);
  EXPECT_TRUE(e.rejected->at("id").is_null());
}

TEST(JsonRpcEnvelope, EmptyBatchIsInvalidRequest) {
  auto const e = parse_envelope("[]");
  ASSERT_TRUE(e.rejected);
  EXPECT_EQ(e.rejected->at("error").at("code").as_int64(), rpc_code::invalid_request);
}

TEST(JsonRpcEnvelope, SingleCallKeepsIdAndParams) {
  auto const e = parse_envelope(R"({"jsonrpc":"2.0","method":"certs.get","params":{"name":"main"},"id":"a"})");
  ASSERT_FALSE(e.rejected);
  EXPECT_FALSE(e.batch);
  ASSERT_EQ(e.items.size(), 1u);
  auto const& call = std::get<RpcCall>(e.items[0]);
  EXPECT_EQ(call.method, "certs.get");
  EXPECT_EQ(call.id.as_string(), "a");
  EXPECT_FALSE(call.notification);
  EXPECT_EQ(call.params.at("name").as_string(), "main");
}

TEST(JsonRpcEnvelope, NotificationHasNoId) {
  auto const e = parse_envelope(R"({"jsonrpc":"2.0","method":"version"})");
  EXPECT_TRUE(std::get<RpcCall>(e.items[0]).notification);
  std::vector<json::object> none;
  EXPECT_EQ(serialize_responses(e, none), "");
}

TEST(JsonRpcEnvelope, InvalidElementsOfABatchAnswerEachWithInvalidRequest) {
  auto const e = parse_envelope(
      R"([1, {"jsonrpc":"1.0","method":"version","id":2}, {"jsonrpc":"2.0","id":3}, {"jsonrpc":"2.0","method":"version","params":5,"id":4},
          {"jsonrpc":"2.0","method":"version","id":{"x":1}}, {"jsonrpc":"2.0","method":"version","id":6,"extra":true},
          {"jsonrpc":"2.0","method":"version","id":7}])");
  ASSERT_TRUE(e.batch);
  ASSERT_EQ(e.items.size(), 7u);
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(error_of(e.items[i]).at("error").at("code").as_int64(), rpc_code::invalid_request) << i;
  }
  EXPECT_TRUE(error_of(e.items[0]).at("id").is_null());
  EXPECT_EQ(error_of(e.items[1]).at("id").as_int64(), 2);  // a valid id is echoed
  EXPECT_TRUE(error_of(e.items[4]).at("id").is_null());   // an invalid one is not
  EXPECT_EQ(std::get<RpcCall>(e.items[6]).method, "version");
}

TEST(JsonRpcEnvelope, BatchSerializesAsArraySingleAsObject) {
  auto const batch = parse_envelope(R"([{"jsonrpc":"2.0","method":"a","id":1}])");
  std::vector<json::object> responses{make_result(1, "x")};
  EXPECT_TRUE(json::parse(serialize_responses(batch, responses)).is_array());
  auto const single = parse_envelope(R"({"jsonrpc":"2.0","method":"a","id":1})");
  auto const body = json::parse(serialize_responses(single, responses));
  ASSERT_TRUE(body.is_object());
  EXPECT_EQ(body.at("result").as_string(), "x");
  EXPECT_EQ(body.at("jsonrpc").as_string(), "2.0");
}

TEST(JsonRpcEnvelope, ErrorCarriesDataOnlyWhenSet) {
  auto const plain = make_error(1, {rpc_code::method_not_found, "Method not found", nullptr});
  EXPECT_FALSE(plain.at("error").as_object().contains("data"));
  auto const with = make_error(1, {rpc_code::invalid_params, "Invalid params", json::value("why")});
  EXPECT_EQ(with.at("error").at("data").as_string(), "why");
}

TEST(JsonRpcParams, ByNameOnlyAndTyped) {
  EXPECT_TRUE(Params::from(nullptr));
  EXPECT_TRUE(Params::from(json::array{}));
  auto positional = Params::from(json::array{1});
  ASSERT_FALSE(positional);
  EXPECT_EQ(positional.error().code, rpc_code::invalid_params);

  auto p = Params::from(json::parse(R"({"name":"main","limit":5})")).value();
  EXPECT_EQ(p.string("name"), "main");
  EXPECT_EQ(p.integer("limit", 1, 10), 5);
  EXPECT_FALSE(p.finish());
}

TEST(JsonRpcParams, ComplaintsNameTheParameter) {
  auto missing = Params::from(json::object{}).value();
  missing.string("name", true);
  auto e = missing.finish();
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, rpc_code::invalid_params);
  EXPECT_NE(std::string(e->data.as_string()).find("name"), std::string::npos);

  auto range = Params::from(json::parse(R"({"limit":0})")).value();
  range.integer("limit", 1, 10);
  EXPECT_TRUE(range.finish());

  auto wrong_type = Params::from(json::parse(R"({"limit":"5"})")).value();
  wrong_type.integer("limit", 1, 10);
  EXPECT_TRUE(wrong_type.finish());

  auto unknown = Params::from(json::parse(R"({"nmae":"x"})")).value();
  unknown.string("name");
  auto u = unknown.finish();
  ASSERT_TRUE(u);
  EXPECT_NE(std::string(u->data.as_string()).find("nmae"), std::string::npos);
}

}  // namespace
}  // namespace edge::admin
