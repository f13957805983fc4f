#pragma once
// The status page's files, built into the binary (see embed_assets.cmake).
#include <span>
#include <string_view>

namespace edge::admin {

struct Asset {
  std::string_view path;  // "/", "/app.js", ...
  std::string_view content_type;
  std::string_view body;
};

std::span<Asset const> status_page_assets();

}  // namespace edge::admin
