#include "upstream_pool.hpp"

namespace edge::proxy {

std::unique_ptr<UpstreamConnection> UpstreamPool::take(std::string const& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  auto& idle = it->second;
  auto const now = std::chrono::steady_clock::now();
  while (!idle.empty()) {
    // Most recently used first: it is the least likely to have been closed by the upstream.
    auto connection = std::move(idle.back());
    idle.pop_back();
    if (now - connection->idle_since < idle_timeout && connection->stream.socket().is_open()) return connection;
  }
  return nullptr;
}

void UpstreamPool::give_back(std::string const& key, std::unique_ptr<UpstreamConnection> connection) {
  auto& idle = idle_[key];
  if (idle.size() >= max_idle_per_upstream) return;  // closed by its destructor
  connection->idle_since = std::chrono::steady_clock::now();
  idle.push_back(std::move(connection));
}

}  // namespace edge::proxy
