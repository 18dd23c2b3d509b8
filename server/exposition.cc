#include "server/exposition.h"

#include <algorithm>

namespace tq::server {
namespace {

constexpr std::string_view kServerPrefix = "tq_";
constexpr std::string_view kQueuePrefix = "tq_queue_";
constexpr std::string_view kTotal = "_total";

bool ends_with(std::string_view text, std::string_view tail) {
  return text.size() >= tail.size() && text.substr(text.size() - tail.size()) == tail;
}

// Replaces the unit word at the end of a name, or just before its "_total".
void replace_unit(std::string& name, std::string_view from, std::string_view to) {
  size_t end = name.size();
  if (ends_with(name, kTotal)) end -= kTotal.size();
  if (end >= from.size() && std::string_view(name).substr(end - from.size(), from.size()) == from) {
    name.replace(end - from.size(), from.size(), to);
  }
}

// `value` / 10^places, exactly: "0.0015", "30", "0.375".
void append_decimal(std::string& out, uint64_t value, int places) {
  uint64_t scale = 1;
  for (int i = 0; i < places; ++i) scale *= 10;
  out += std::to_string(value / scale);
  uint64_t fraction = value % scale;
  if (fraction == 0) return;
  std::string digits = std::to_string(fraction);
  digits.insert(0, static_cast<size_t>(places) - digits.size(), '0');
  while (digits.back() == '0') digits.pop_back();
  out += '.';
  out += digits;
}

void append_value(std::string& out, const Figure& figure) {
  if (figure.kind == FigureKind::kText) {
    out += '1';
    return;
  }
  switch (figure.unit) {
    case FigureUnit::kNone:
      out += std::to_string(figure.value);
      return;
    case FigureUnit::kMicroseconds:
      append_decimal(out, figure.value, 6);
      return;
    case FigureUnit::kMilliseconds:
      append_decimal(out, figure.value, 3);
      return;
    case FigureUnit::kTenthsPercent:
      append_decimal(out, figure.value, 3);
      return;
  }
}

void append_label(std::string& out, bool& first, std::string_view name, std::string_view value) {
  out += first ? '{' : ',';
  first = false;
  out += name;
  out += "=\"";
  out += escape_label_value(value);
  out += '"';
}

// One sample line: name, labels (the queue's first, when `queue` is given),
// value.
void append_sample(std::string& out, std::string_view name, const std::string_view* queue,
                   const Figure& figure) {
  out += name;
  bool first = true;
  if (queue != nullptr) append_label(out, first, "queue", *queue);
  if (figure.kind == FigureKind::kText) {
    append_label(out, first, figure.label.empty() ? figure.name : figure.label, figure.text);
  } else if (!figure.label.empty()) {
    append_label(out, first, figure.label, figure.label_value);
  }
  if (!first) out += '}';
  out += ' ';
  append_value(out, figure);
  out += '\n';
}

void append_header(std::string& out, std::string_view name, std::string_view help,
                   std::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += escape_help(help);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void append_header(std::string& out, std::string_view name, const Figure& figure) {
  append_header(out, name, figure.help, figure.kind == FigureKind::kCounter ? "counter" : "gauge");
}

}  // namespace

std::string exposition_name(const Figure& figure, std::string_view prefix) {
  std::string name(figure.family.empty() ? figure.name : figure.family);
  switch (figure.unit) {
    case FigureUnit::kNone:
      break;
    case FigureUnit::kMicroseconds:
      replace_unit(name, "_us", "_seconds");
      break;
    case FigureUnit::kMilliseconds:
      // A moment in Unix time is a timestamp, as Prometheus names them.
      replace_unit(name, "_at_ms", "_timestamp_seconds");
      replace_unit(name, "_until_ms", "_until_timestamp_seconds");
      replace_unit(name, "_ms", "_seconds");
      break;
    case FigureUnit::kTenthsPercent:
      replace_unit(name, "_pct", "_ratio");
      break;
  }
  if (figure.kind == FigureKind::kCounter && !ends_with(name, kTotal)) name += kTotal;
  if (figure.kind == FigureKind::kText) name += "_info";
  return std::string(prefix) + name;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char ch : value) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '"') {
      out += "\\\"";
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char ch : help) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += ch;
    }
  }
  return out;
}

void ExpositionBuilder::add_server(const std::vector<Figure>& figures) {
  std::string previous;
  for (const Figure& figure : figures) {
    std::string name = exposition_name(figure, kServerPrefix);
    if (name != previous) append_header(out_, name, figure);
    append_sample(out_, name, nullptr, figure);
    previous = std::move(name);
  }
}

void ExpositionBuilder::add_queue(std::string_view queue, const std::vector<Figure>& figures) {
  if (queue_heads_.empty()) {
    queue_heads_ = figures;
    queue_names_.clear();
    for (const Figure& figure : figures) {
      queue_names_.push_back(exposition_name(figure, kQueuePrefix));
    }
    queue_samples_.resize(figures.size());
  }
  const size_t n = std::min(figures.size(), queue_heads_.size());
  for (size_t i = 0; i < n; ++i)
    append_sample(queue_samples_[i], queue_names_[i], &queue, figures[i]);
}

void ExpositionBuilder::add_queue_histogram(std::string_view queue, std::string_view name,
                                            std::string_view help,
                                            const engine::WaitHistogram& waits) {
  auto family = std::find_if(histograms_.begin(), histograms_.end(),
                             [&](const HistogramFamily& f) { return f.name == name; });
  if (family == histograms_.end()) {
    family = histograms_.insert(histograms_.end(),
                                HistogramFamily{std::string(name), std::string(help), {}});
  }
  std::string& out = family->samples;
  auto sample = [&](std::string_view suffix, std::string_view le) {
    out += name;
    out += suffix;
    bool first = true;
    append_label(out, first, "queue", queue);
    if (!le.empty()) append_label(out, first, "le", le);
    out += "} ";
  };
  const auto& bounds = engine::WaitHistogram::kBoundsMs;
  for (size_t i = 0; i < bounds.size(); ++i) {
    std::string le;
    append_decimal(le, static_cast<uint64_t>(bounds[i]), 3);
    sample("_bucket", le);
    out += std::to_string(waits.at_most(i));
    out += '\n';
  }
  sample("_bucket", "+Inf");
  out += std::to_string(waits.count());
  out += '\n';
  sample("_sum", {});
  append_decimal(out, waits.sum_ms(), 3);
  out += '\n';
  sample("_count", {});
  out += std::to_string(waits.count());
  out += '\n';
}

std::vector<std::string> ExpositionBuilder::finish_pieces() {
  std::vector<std::string> pieces;
  pieces.reserve(1 + 2 * (queue_heads_.size() + histograms_.size()));
  pieces.push_back(std::move(out_));
  for (size_t i = 0; i < queue_heads_.size(); ++i) {
    std::string head;
    append_header(head, queue_names_[i], queue_heads_[i]);
    pieces.push_back(std::move(head));
    pieces.push_back(std::move(queue_samples_[i]));
  }
  for (HistogramFamily& family : histograms_) {
    std::string head;
    append_header(head, family.name, family.help, "histogram");
    pieces.push_back(std::move(head));
    pieces.push_back(std::move(family.samples));
  }
  out_.clear();
  histograms_.clear();
  queue_heads_.clear();
  queue_names_.clear();
  queue_samples_.clear();
  return pieces;
}

std::string ExpositionBuilder::finish() {
  std::string text;
  for (const std::string& piece : finish_pieces()) text += piece;
  return text;
}

}  // namespace tq::server
