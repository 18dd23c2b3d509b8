// Queue settings as people write them: "ack_timeout=30s", "max_attempts=5".
// One parser serves the CONFIG command and the queue sections of
// config.yaml, so a key means the same thing in both places.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "server/engine/queue.h"

namespace tq::server {

// Sets `key` from `value`; the error message (naming the key and what it
// takes) when the key is unknown or the value does not fit.
std::optional<std::string> apply_queue_setting(engine::QueueSettings& settings,
                                               std::string_view key, std::string_view value);

// Every setting, as "<key> <value>" pairs that apply_queue_setting accepts.
std::vector<std::pair<std::string, std::string>> describe_queue_settings(
    const engine::QueueSettings& settings);

// The keys, for messages and help.
const std::vector<std::string>& queue_setting_keys();

}  // namespace tq::server
