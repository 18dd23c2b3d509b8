// JsonObject: builds one JSON object, field by field, for --json output. Just
// enough JSON for numbers, strings, booleans, null and nested objects; keys
// come out in the order they were added.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace tq::bench {

class JsonObject {
 public:
  JsonObject& add(std::string_view key, std::string_view value) {
    open_field(key);
    append_string(value);
    return *this;
  }
  JsonObject& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  JsonObject& add(std::string_view key, uint64_t value) {
    open_field(key);
    text_ += std::to_string(value);
    return *this;
  }
  JsonObject& add(std::string_view key, int value) {
    open_field(key);
    text_ += std::to_string(value);
    return *this;
  }
  JsonObject& add(std::string_view key, double value) {
    open_field(key);
    if (!std::isfinite(value)) {
      text_ += "null";
      return *this;
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", value);
    text_ += buf;
    return *this;
  }
  JsonObject& add(std::string_view key, bool value) {
    open_field(key);
    text_ += value ? "true" : "false";
    return *this;
  }
  JsonObject& add(std::string_view key, const JsonObject& nested) {
    open_field(key);
    text_ += nested.str();
    return *this;
  }
  JsonObject& add_null(std::string_view key) {
    open_field(key);
    text_ += "null";
    return *this;
  }

  std::string str() const { return "{" + text_ + "}"; }

 private:
  void open_field(std::string_view key) {
    if (!text_.empty()) text_ += ',';
    append_string(key);
    text_ += ':';
  }
  void append_string(std::string_view s) {
    text_ += '"';
    for (char c : s) {
      if (c == '"' || c == '\\') {
        text_ += '\\';
        text_ += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x",
                      static_cast<unsigned>(static_cast<unsigned char>(c)));
        text_ += esc;
      } else {
        text_ += c;
      }
    }
    text_ += '"';
  }

  std::string text_;
};

}  // namespace tq::bench
