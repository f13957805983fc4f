#include "openmetrics.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace edge::admin {

MetricsFormat negotiate_format(std::string_view accept) {
  return accept.find("application/openmetrics-text") != std::string_view::npos ? MetricsFormat::openmetrics
                                                                                : MetricsFormat::prometheus_text;
}

void OpenMetricsWriter::family(std::string_view name, std::string_view type, std::string_view help,
                               std::string_view unit) {
  family_ = std::string(name);
  if (format_ == MetricsFormat::prometheus_text) {
    // The text format names a counter by its sample.
    std::string const sample_name = family_ + (type == "counter" ? "_total" : "");
    out_ += "# HELP " + sample_name + " " + std::string(help) + "\n";
    out_ += "# TYPE " + sample_name + " " + std::string(type) + "\n";
    return;
  }
  out_ += "# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
  if (!unit.empty()) {
    out_ += "# UNIT ";
    out_ += name;
    out_ += ' ';
    out_ += unit;
    out_ += '\n';
  }
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += help;  // our own constant texts: no escaping needed
  out_ += '\n';
}

std::string OpenMetricsWriter::escape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string OpenMetricsWriter::number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", value);
    return buf;
  }
  // The shortest text that reads back as the same double: 0.0005, not 0.00050000000000000001.
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

void OpenMetricsWriter::begin_sample(std::string_view suffix, Labels const& labels) {
  out_ += family_;
  out_ += suffix;
  if (!labels.empty()) {
    out_ += '{';
    bool first = true;
    for (auto const& [name, value] : labels) {
      if (!first) out_ += ',';
      first = false;
      out_ += name;
      out_ += "=\"";
      out_ += escape(value);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
}

void OpenMetricsWriter::sample(std::string_view suffix, Labels const& labels, double value) {
  begin_sample(suffix, labels);
  out_ += number(value);
  out_ += '\n';
}

void OpenMetricsWriter::sample(std::string_view suffix, Labels const& labels, std::uint64_t value) {
  begin_sample(suffix, labels);
  out_ += std::to_string(value);
  out_ += '\n';
}

void OpenMetricsWriter::sample(std::string_view suffix, Labels const& labels, std::int64_t value) {
  begin_sample(suffix, labels);
  out_ += std::to_string(value);
  out_ += '\n';
}

std::string OpenMetricsWriter::finish() {
  if (format_ == MetricsFormat::openmetrics) out_ += "# EOF\n";
  family_.clear();
  return std::move(out_);
}

}  // namespace edge::admin
