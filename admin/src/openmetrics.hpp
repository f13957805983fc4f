#pragma once
// Writes the OpenMetrics text format (1.0.0): families with # TYPE, # HELP
// and # UNIT, samples with escaped label values, # EOF at the end. The same
// families can be written in the older Prometheus text format (0.0.4) for
// clients that do not ask for OpenMetrics (curl, promtool): there a
// counter's # TYPE and # HELP name the sample ("_total"), and there is no
// # UNIT and no # EOF.
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edge::admin {

using Labels = std::vector<std::pair<std::string_view, std::string>>;

enum class MetricsFormat { openmetrics, prometheus_text };

class OpenMetricsWriter {
 public:
  explicit OpenMetricsWriter(MetricsFormat format = MetricsFormat::openmetrics) : format_(format) {}

  // `name` is the family name: for a counter without "_total" (the samples
  // add it), for a unit the name ends in "_<unit>". A family is written once,
  // and all its samples follow it.
  void family(std::string_view name, std::string_view type, std::string_view help, std::string_view unit = {});
  // `suffix`: "_total" for counters, "_bucket"/"_sum"/"_count" for histograms, "" otherwise.
  void sample(std::string_view suffix, Labels const& labels, double value);
  void sample(std::string_view suffix, Labels const& labels, std::uint64_t value);
  void sample(std::string_view suffix, Labels const& labels, std::int64_t value);

  // The text with "# EOF"; the writer is empty afterwards.
  std::string finish();

  static std::string escape(std::string_view label_value);
  static std::string number(double value);

 private:
  void begin_sample(std::string_view suffix, Labels const& labels);
  MetricsFormat format_;
  std::string out_;
  std::string family_;
};

inline constexpr std::string_view openmetrics_content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
inline constexpr std::string_view prometheus_text_content_type = "text/plain; version=0.0.4; charset=utf-8";

// OpenMetrics when the Accept header asks for it (Prometheus does), else the
// Prometheus text format.
MetricsFormat negotiate_format(std::string_view accept);

}  // namespace edge::admin
