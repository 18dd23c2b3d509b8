// A reload of tqd's settings (SIGHUP): what differs between the running
// settings and the file's, which of the changes apply while tqd runs, and
// which wait for a restart.
//
// Applied at once: the log level, the shutdown timeout, TCP keep-alive,
// every limits.* key, queues.auto_create, queues.defaults (queues made
// afterwards), queues.declare (each changed declaration is applied as at
// start-up), the TLS files, metrics.token, and a new password where one is
// set. What a connection took when it was accepted stays with it: its line
// and payload limits, its wrong-password allowance, its TCP keep-alive,
// and the access it authenticated for.
//
// Wait for a restart: what the listeners and the log were opened with
// (server.host, server.port, server.data_dir, tls.port, tls.plaintext,
// metrics.listen, every wal.* key), and a password turned on or off: the
// connections already open were let in under the other rule.
#pragma once

#include <string>
#include <vector>

#include "server/config.h"

namespace tq::server {

struct SettingChange {
  std::string key;     // as in config.yaml: "limits.max_batch", "queues.declare.emails"
  std::string before;  // as a person writes it; a secret shows as "set" or "empty"
  std::string after;
  bool needs_restart = false;  // the running value stays until tqd restarts
};

// The keys compared one to one ("server.port"; not queues.defaults and
// queues.declare, which are compared key by key and queue by queue).
std::vector<std::string> compared_setting_keys();

// Every setting that differs, in config.yaml's order.
std::vector<SettingChange> compare_settings(const Config& running, const Config& next);

// Copies into `running` every setting of `next` that applies without a
// restart; the others keep their running values.
void take_live_settings(Config& running, const Config& next);

// The declared queues of `next` that are new or declared differently from
// `running` (queues.declare: a queue dropped from the file stays as it is).
std::vector<DeclaredQueue> changed_declarations(const Config& running, const Config& next);

}  // namespace tq::server
