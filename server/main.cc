// tqd: reads the configuration (defaults, then config.yaml, then flags),
// builds the daemon (engine, journal and log, server) and runs it until a
// signal asks it to stop.
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "server/config.h"
#include "server/config_source.h"
#include "server/daemon.h"
#include "server/log.h"
#include "server/server.h"
#include "server/tls.h"
#include "wal/backup.h"
#include "wal/file.h"
#include "wal/overlay_file_system.h"
#include "wal/record.h"
#include "wal/run_marker.h"

#ifndef TQ_VERSION
#define TQ_VERSION "0.0.0"
#endif

namespace {

using tq::server::LogLevel;

// tqd's exit status when it does not serve. systemd's unit (scripts/
// tqd.service) restarts a tqd that failed, but not after the statuses in
// its RestartPreventExitStatus= (2 and 65): starting again, with nothing
// changed, can only fail the same way, and a restart loop buries the
// reason under its repeats until systemd's start limit.
constexpr int kExitMayPassLater = 1;  // the port or the log held, a full disk, an I/O error
constexpr int kExitBadSettings = 2;   // config.yaml, a flag, the TLS files
constexpr int kExitBadLogData = 65;   // BSD's EX_DATAERR: the log needs a person

int exit_status(tq::server::StartRefusal refused) {
  switch (refused) {
    case tq::server::StartRefusal::kNone:
      return 0;
    case tq::server::StartRefusal::kMayPassLater:
      return kExitMayPassLater;
    case tq::server::StartRefusal::kSettings:
      return kExitBadSettings;
    case tq::server::StartRefusal::kLogData:
      return kExitBadLogData;
  }
  return kExitMayPassLater;
}

// Empty, or why the TLS files cannot be used.
std::string tls_problem(const tq::server::Config& config) {
  if (!config.tls_enabled()) return "";
  auto tls = tq::server::TlsContext::load(tq::server::Server::tls_files(config));
  return tls ? "" : tls.error();
}

// Whether the log directory `dir` holds anything a start would read: a log
// file, or a marker a log leaves (CLOSED, NEWEST, RUNNING, BACKUP). When it
// does not, *nested (unless null) names a directory in it that does hold
// log files (a backup copied one level too deep: data/wal/wal/...), if
// there is one.
bool holds_a_log(const std::string& dir, std::string* nested) {
  namespace fs = std::filesystem;
  // Without exceptions: a range-for's ++ throws on an error (a directory
  // inside that this user may not read), and nothing here catches it.
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (tq::wal::parse_segment_file_name(name) != 0 || name == tq::wal::kClosedMarkerName ||
        name == tq::wal::kNewestMarkerName || name == tq::wal::kRunMarkerName ||
        name == tq::wal::kBackupMarkerName) {
      return true;
    }
    std::error_code type_ec;
    // Not through a link: one to / would have the whole file system read.
    if (nested == nullptr || !nested->empty() ||
        it->symlink_status(type_ec).type() != fs::file_type::directory) {
      continue;
    }
    std::error_code inner_ec;  // a part that cannot be read is passed over
    fs::recursive_directory_iterator inner(it->path(),
                                           fs::directory_options::skip_permission_denied, inner_ec);
    for (; !inner_ec && inner != fs::recursive_directory_iterator(); inner.increment(inner_ec)) {
      if (tq::wal::parse_segment_file_name(inner->path().filename().string()) != 0) {
        *nested = inner->path().parent_path().string();
        break;
      }
    }
  }
  return ec.value() != 0;  // unreadable: the start's own open says why
}

// Whether `dir` holds log files itself (not below): a directory that
// cannot be read does not.
bool has_log_files(const std::string& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (tq::wal::parse_segment_file_name(it->path().filename().string()) != 0) return true;
  }
  return false;
}

// When the data directory has no wal/ at all: a backup copied whole into
// it (cp -a backups/nightly data/ makes data/nightly/wal), the first
// <data_dir>/<name>/wal holding log files; empty if none. Not when backups
// are kept in the data directory itself (wal.backup_dir): that is where
// they belong, and a first start beside them is a first start.
std::string log_beside(const tq::server::Config& config) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::equivalent(config.data_dir, config.backup_dir(), ec)) return "";
  fs::directory_iterator it(config.data_dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    // Not through a link: it may lead anywhere.
    if (it->symlink_status(type_ec).type() != fs::file_type::directory) continue;
    const std::string wal = it->path().string() + "/wal";
    if (has_log_files(wal)) return wal;
  }
  return "";
}

// A backup restored in the wrong place, when the log directory `dir`
// holds no log: where its log files are, and how they go in place.
struct MisplacedLog {
  std::string where;
  std::string fix;  // "(...)" in "a backup's wal directory goes in place of <dir> (...)"
};

// Log files inside an empty `dir` (data/wal/wal/..., a copy made inside it)
// or, with no `dir` at all, beside it (data/nightly/wal, a backup copied
// whole into the data directory); nullopt when `dir` holds a log, or no
// copy is near.
std::optional<MisplacedLog> misplaced_log(const tq::server::Config& config,
                                          const std::string& dir) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return std::nullopt;  // the start's own open says why
    std::string beside = log_beside(config);
    if (beside.empty()) return std::nullopt;
    return MisplacedLog{beside, "mv " + beside + " " + dir};
  }
  std::string nested;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || holds_a_log(dir, &nested) ||
      nested.empty()) {
    return std::nullopt;
  }
  // `dir` exists, so a cp -a into it as it is nests the copy again.
  return MisplacedLog{nested, "mv " + dir + " " + dir +
                                  ".old, then cp -a <backup_dir>/<name>/wal " + dir +
                                  ": the copy went inside it"};
}

int run(tq::server::Config config, const tq::server::ConfigSource& source,
        const std::vector<std::string>& notes) {
  // A certificate that cannot be used is a configuration error (exit 2:
  // starting again will not help), found before the log is replayed.
  if (std::string why = tls_problem(config); !why.empty()) {
    tq::server::log_plain(LogLevel::kError, "%s", why.c_str());
    return kExitBadSettings;
  }
  tq::server::set_log_level(config.log_level);
  for (const std::string& note : notes) LOG_WARN("%s", note.c_str());
  if (config.wal_enabled) {
    // A restore that put the log in the wrong place: starting would begin
    // an empty log, with job ids from 1 again, beside the one meant.
    const std::string dir = config.data_dir + "/wal";
    if (const std::optional<MisplacedLog> misplaced = misplaced_log(config, dir)) {
      LOG_ERROR(
          "there is no log in %s, but log files are in %s: a backup's wal directory goes in "
          "place of %s (%s); not starting an empty log beside it",
          dir.c_str(), misplaced->where.c_str(), dir.c_str(), misplaced->fix.c_str());
      return kExitBadLogData;  // until someone moves it
    }
  }
  const size_t requested_max_connections = config.max_connections;
  config.max_connections = tq::server::fit_open_file_limit(config.max_connections);
  tq::engine::SystemClock clock;
  tq::server::Daemon daemon(config, tq::wal::posix_file_system(), clock);
  daemon.reload_from(source, requested_max_connections);
  if (tq::server::StartRefusal refused = daemon.start();
      refused != tq::server::StartRefusal::kNone) {
    return exit_status(refused);
  }
  return daemon.run() ? 0 : 1;
}

// tqd --check-log: the start's replay, with every change it would make to
// the files kept in memory. 0 if a start would serve the log, 1 if not, 2
// if there is no log to check (wal.enabled: false), 3 if a tqd holds it, 4
// if there is no log there at all (a start would begin an empty one: for a
// backup being checked, a wrong path or a botched copy, not a good backup).
int check_log(const tq::server::Config& config) {
  tq::server::set_log_level(config.log_level);
  const std::string dir = config.data_dir + "/wal";
  if (!config.wal_enabled) {
    // A start would serve, from memory: there is nothing to check, and no
    // verdict on a log to give (exit 1 would say a start stops).
    tq::server::log_plain(LogLevel::kError,
                          "wal.enabled is false: a start keeps jobs in memory only and reads no "
                          "log, so there is no log to check");
    return 2;
  }
  // Only when nothing is there: a file in its place, a link to nowhere, or
  // a directory this user may not read is no new log to a start, which
  // refuses it (the check's own open of wal/LOCK says why).
  struct stat st {};
  if ((::lstat(dir.c_str(), &st) != 0 && errno == ENOENT) ||
      (S_ISDIR(st.st_mode) && !holds_a_log(dir, nullptr))) {
    if (const std::optional<MisplacedLog> misplaced = misplaced_log(config, dir)) {
      // Nor is it a good backup, but a start refuses it (exit 65).
      tq::server::log_plain(LogLevel::kError,
                            "there is no log in %s, but log files are in %s: a start would "
                            "refuse to begin an empty log beside them",
                            dir.c_str(), misplaced->where.c_str());
      tq::server::log_plain(LogLevel::kError, "a backup's wal directory goes in place of %s (%s)",
                            dir.c_str(), misplaced->fix.c_str());
    } else {
      tq::server::log_plain(LogLevel::kError,
                            "there is no log in %s: a start would begin a new, empty one",
                            dir.c_str());
    }
    return 4;
  }
  {
    // A tqd writing the log: no verdict on it (a check reads a log at rest),
    // and not one that says a start would refuse it.
    auto lock = tq::wal::posix_file_system().lock(dir + "/LOCK");
    if (!lock && lock.error().code() == tq::wal::Status::Code::kLocked) {
      tq::server::log_plain(LogLevel::kError,
                            "%s: it is in use; stop that tqd first, or check a copy of %s (cp -a)",
                            lock.error().message().c_str(), dir.c_str());
      return 3;
    }
  }
  tq::wal::OverlayFileSystem untouched(tq::wal::posix_file_system());
  tq::engine::SystemClock clock;
  bool opens = false;
  {
    tq::server::Daemon daemon(config, untouched, clock);
    opens = daemon.check_log();
  }
  if (opens) {
    std::printf(
        "tqd: the log in %s opens: a start would do what the lines above say (nothing was "
        "changed on disk)\n",
        dir.c_str());
  } else {
    std::printf("tqd: a start would stop as the lines above say (nothing was changed on disk)\n");
  }
  return opens ? 0 : 1;
}

// Started with standard input, output or error closed (`tqd 1>&- 2>&-`,
// some supervisors), the next files opened would take those numbers: libuv's
// own pipes then did, and closing them at exit aborted tqd (libuv asserts
// that it never closes 0-2), and log lines would go into whatever file got
// descriptor 2. /dev/null takes each missing one first.
void fill_standard_descriptors() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (null >= 0 && null != fd) {
      dup2(null, fd);
      close(null);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  fill_standard_descriptors();
  // A client that disconnects while we write must not kill the server.
  std::signal(SIGPIPE, SIG_IGN);
  // Until the server's handler is in place (after the log's replay, which
  // can take minutes), SIGHUP's default would kill tqd: a reload sent
  // during start-up is dropped instead.
  std::signal(SIGHUP, SIG_IGN);

  tq::server::ConfigSource flags;
  CLI::App app{"tqd: a durable task-queue server"};
  app.set_version_flag("--version", "tqd " TQ_VERSION);
  app.add_option("--config", flags.config_path, "read settings from this YAML file");
  app.add_option("--host", flags.host, "address to listen on (server.host)");
  app.add_option("--port", flags.port, "TCP port, 0 for any free one (server.port)")
      ->check(CLI::Range(0, 65535));  // checked first: CLI11 would say "Could not convert"
  app.add_option("--data-dir", flags.data_dir, "where the log lives (server.data_dir)");
  app.add_option("--log-level", flags.log_level, "debug, info, warn or error (server.log_level)");
  app.add_flag("--wal-recover", flags.wal_recover,
               "start even if the log is damaged, dropping (and logging) the damaged records");
  bool check_only = false;
  app.add_flag("--check-config", check_only,
               "read the settings (the file, flags and environment) and the TLS files, say "
               "whether tqd would start with them, and exit: 0 if so, 2 if not. Use it before "
               "a reload (SIGHUP)");
  bool check_log_only = false;
  app.add_flag("--check-log", check_log_only,
               "replay the log as a start would (with --wal-recover, as a recovery would), say "
               "what it finds and what a start would cut or drop, and exit without changing any "
               "file: 0 if a start would serve it, 1 if not, 2 for bad settings or no log to "
               "check (wal.enabled false), 3 if a running tqd holds it, 4 if there is no log there "
               "at all (a start would begin an empty one)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    tq::server::log_plain(LogLevel::kError, "%s (see tqd --help)", e.what());
    return kExitBadSettings;
  }

  tq::server::ConfigResult read = tq::server::read_config(flags);
  if (!read.config) {
    tq::server::log_plain(LogLevel::kError, "%s", read.error.c_str());
    return kExitBadSettings;
  }
  if (check_only) {
    if (std::string why = tls_problem(*read.config); !why.empty()) {
      tq::server::log_plain(LogLevel::kError, "%s", why.c_str());
      return 2;
    }
    // The addresses resolve, and do not collide (metrics.listen on the
    // protocol's port). Not whether a port is free: the check runs before a
    // reload, beside the tqd that holds them.
    if (std::string why; !tq::server::Server::check_addresses_apart(*read.config, &why)) {
      tq::server::log_plain(LogLevel::kError, "%s", why.c_str());
      return 2;
    }
    for (const std::string& note : read.notes) {
      tq::server::log_plain(LogLevel::kWarn, "note: %s", note.c_str());
    }
    std::printf("tqd: %s: the settings are good\n",
                flags.config_path.empty() ? "(defaults)" : flags.config_path.c_str());
    return 0;
  }
  if (check_log_only) return check_log(*read.config);
  return run(*read.config, flags, read.notes);
}
