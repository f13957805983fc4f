#pragma once
// The admin API's methods and the metrics page, as plain functions of the
// store and the running edged's counters. Called on an admin pool thread:
// they may block on SQLite and parse certificates.
#include "json_rpc.hpp"
#include "openmetrics.hpp"

#include <edge/admin/admin_server.hpp>
#include <edge/store/store.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace edge::admin {

struct MethodContext {
  AdminServices const& services;
  store::Store& store;
  std::uint64_t unauthorized = 0;  // 401s so far
  std::chrono::system_clock::time_point started;
};

// Known methods; the ones that change state need the bearer token.
bool method_exists(std::string_view method);
bool method_changes_state(std::string_view method);

RpcResult call_method(std::string const& method, boost::json::value const& params, MethodContext& context);

// GET /metrics: the edge and system families in OpenMetrics text.
std::string render_metrics(MethodContext& context, MetricsFormat format = MetricsFormat::openmetrics);

std::string const& edge_version();

}  // namespace edge::admin
