// Formatting of results. Human text uses adaptive units (us, ms, s; KiB,
// MiB); JSON uses fixed ones (seconds, microseconds, bytes) so scripts need
// no parsing of units.
#include "bench/report.h"

#include <cstdio>

#include "bench/replay.h"
#include "bench/stall.h"

namespace tq::bench {
namespace {

std::string printf_string(const char* format, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, format, args...);
  return buf;
}

std::string duration_text(double nanos) {
  if (nanos < 1e3) return printf_string("%.0f ns", nanos);
  if (nanos < 1e6) return printf_string("%.1f us", nanos / 1e3);
  if (nanos < 1e9) return printf_string("%.2f ms", nanos / 1e6);
  return printf_string("%.2f s", nanos / 1e9);
}

std::string bytes_text(uint64_t bytes) {
  if (bytes < 10 * 1024) return printf_string("%llu B", static_cast<unsigned long long>(bytes));
  if (bytes < 10ull << 20) return printf_string("%.1f KiB", static_cast<double>(bytes) / 1024);
  return printf_string("%.1f MiB", static_cast<double>(bytes) / (1 << 20));
}

double per_second(uint64_t count, double seconds) {
  return seconds > 0 ? static_cast<double>(count) / seconds : 0;
}

JsonObject latency_json(const LatencyHistogram& h) {
  JsonObject o;
  o.add("p50", static_cast<double>(h.percentile(50)) / 1e3)
      .add("p99", static_cast<double>(h.percentile(99)) / 1e3)
      .add("p999", static_cast<double>(h.percentile(99.9)) / 1e3)
      .add("max", static_cast<double>(h.max()) / 1e3)
      .add("mean", h.mean() / 1e3);
  return o;
}

std::string latency_text(const LatencyHistogram& h) {
  return "p50 " + duration_text(static_cast<double>(h.percentile(50))) + "  p99 " +
         duration_text(static_cast<double>(h.percentile(99))) + "  p99.9 " +
         duration_text(static_cast<double>(h.percentile(99.9))) + "  max " +
         duration_text(static_cast<double>(h.max())) + "  mean " + duration_text(h.mean());
}

JsonObject side_json(uint64_t jobs, double seconds, const LatencyHistogram& h) {
  JsonObject o;
  o.add("jobs", jobs)
      .add("jobs_per_sec", per_second(jobs, seconds))
      .add("latency_us", latency_json(h));
  return o;
}

// The headline of a phase: what one job means in it.
struct Headline {
  uint64_t jobs;
  const LatencyHistogram* latency;
};

Headline headline(const Options& o, const WorkloadResult& r) {
  if (o.phase == Phase::kProduce || o.phase == Phase::kReplay)
    return {r.produced, &r.produce_latency};
  return {r.consumed, &r.consume_latency};  // consume, and mixed: jobs all the way through
}

double server_cpu(const WorkloadResult& r) {
  return r.server_before && r.server_after
             ? r.server_after->cpu_seconds - r.server_before->cpu_seconds
             : 0;
}

uint64_t stat_delta(const WorkloadResult& r, const std::string& name) {
  if (!r.tq_before || !r.tq_after) return 0;
  return stat_number(*r.tq_after, name) - stat_number(*r.tq_before, name);
}

}  // namespace

std::string workload_text(const Options& o, const WorkloadResult& r) {
  std::string out = printf_string(
      "tq-bench %s: %s at %s:%u%s, %d connection%s x pipeline %d, %d thread%s, %zu-byte payloads, "
      "%d queue%s\n",
      phase_name(o.phase), target_name(o.target), o.host.c_str(), o.port,
      o.tls_ca.empty() ? "" : " (TLS)", o.connections, o.connections == 1 ? "" : "s", o.pipeline,
      o.threads, o.threads == 1 ? "" : "s", o.payload_bytes, o.queues, o.queues == 1 ? "" : "s");
  if (r.produced > 0 || o.phase == Phase::kProduce || o.phase == Phase::kMixed) {
    out += printf_string("  produced  %llu jobs in %.3f s: %.0f jobs/s\n",
                         static_cast<unsigned long long>(r.produced), r.seconds,
                         per_second(r.produced, r.seconds));
    out += "            enqueue latency " + latency_text(r.produce_latency) + "\n";
  }
  if (r.consumed > 0 || o.phase == Phase::kConsume || o.phase == Phase::kMixed) {
    out += printf_string(
        "  consumed  %llu jobs in %.3f s: %.0f jobs/s (%llu dequeues found nothing)\n",
        static_cast<unsigned long long>(r.consumed), r.seconds, per_second(r.consumed, r.seconds),
        static_cast<unsigned long long>(r.empty_replies));
    out += "            dequeue-to-ack latency " + latency_text(r.consume_latency) + "\n";
  }
  if (r.server_before && r.server_after) {
    out += printf_string("  server    %.2f s CPU (%.2f cores), RSS %s, peak RSS %s\n",
                         server_cpu(r), r.seconds > 0 ? server_cpu(r) / r.seconds : 0.0,
                         bytes_text(r.server_after->rss_bytes).c_str(),
                         bytes_text(r.server_after->peak_rss_bytes).c_str());
  }
  const Headline h = headline(o, r);
  out += printf_string("  client    %.2f s CPU (%.2f cores, %.2f us per job)\n",
                       r.client_cpu_seconds, r.seconds > 0 ? r.client_cpu_seconds / r.seconds : 0.0,
                       h.jobs > 0 ? r.client_cpu_seconds * 1e6 / static_cast<double>(h.jobs) : 0.0);
  if (r.tq_after && wal_disabled(*r.tq_after)) {
    out += "  tq wal    disabled (wal.enabled: false): jobs in memory only\n";
  } else if (r.tq_after) {
    out +=
        printf_string("  tq wal    %llu fsyncs, %llu write batches, wal_bytes %s (fsync=%s)\n",
                      static_cast<unsigned long long>(stat_delta(r, "wal_fsyncs_total")),
                      static_cast<unsigned long long>(stat_delta(r, "wal_batches_total")),
                      bytes_text(stat_number(*r.tq_after, "wal_bytes")).c_str(),
                      r.tq_after->count("wal_fsync") ? r.tq_after->at("wal_fsync").c_str() : "?");
  }
  if (r.failure) out += "  FAILED    " + *r.failure + "\n";
  return out;
}

JsonObject workload_json(const Options& o, const WorkloadResult& r) {
  const Headline h = headline(o, r);
  JsonObject j;
  j.add("target", target_name(o.target))
      .add("phase", phase_name(o.phase))
      .add("host", o.host)
      .add("port", static_cast<int>(o.port))
      .add("tls", !o.tls_ca.empty())
      .add("connections", o.connections)
      .add("pipeline", o.pipeline)
      .add("threads", o.threads)
      .add("size", static_cast<uint64_t>(o.payload_bytes))
      .add("queues", o.queues)
      .add("seconds", r.seconds)
      .add("jobs", h.jobs)
      .add("jobs_per_sec", per_second(h.jobs, r.seconds))
      .add("latency_us", latency_json(*h.latency))
      .add("produce", side_json(r.produced, r.seconds, r.produce_latency))
      .add("consume", side_json(r.consumed, r.seconds, r.consume_latency))
      .add("empty_replies", r.empty_replies)
      .add("client_cpu_seconds", r.client_cpu_seconds);
  if (r.server_before && r.server_after) {
    JsonObject s;
    s.add("cpu_seconds", server_cpu(r))
        .add("rss_bytes", r.server_after->rss_bytes)
        .add("peak_rss_bytes", r.server_after->peak_rss_bytes);
    j.add("server", s);
  } else {
    j.add_null("server");
  }
  if (r.tq_after) {
    JsonObject w;
    w.add("enabled", !wal_disabled(*r.tq_after))
        .add("fsyncs", stat_delta(r, "wal_fsyncs_total"))
        .add("batches", stat_delta(r, "wal_batches_total"))
        .add("wal_bytes", stat_number(*r.tq_after, "wal_bytes"));
    j.add("tq_wal", w);
  }
  if (r.failure) {
    j.add("error", *r.failure);
  } else {
    j.add_null("error");
  }
  return j;
}

std::string replay_text(const Options& o, const ReplayResult& r) {
  const double n = r.jobs > 0 ? static_cast<double>(r.jobs) : 1;
  std::string out =
      printf_string("tq-bench replay: %llu jobs of %zu bytes, data dir %s\n",
                    static_cast<unsigned long long>(r.jobs), o.payload_bytes, o.data_dir.c_str());
  out += printf_string(
      "  produce   %llu jobs in %.3f s%s: %.0f jobs/s, enqueue p99 %s\n",
      static_cast<unsigned long long>(r.produce.produced), r.produce.seconds,
      o.tls_ca.empty() ? "" : " over TLS", per_second(r.produce.produced, r.produce.seconds),
      duration_text(static_cast<double>(r.produce.produce_latency.percentile(99))).c_str());
  out += printf_string(
      "  restart   %.3f s from exec to STATS showing jobs_ready %llu "
      "(accepting after %.3f s",
      r.restart_seconds, static_cast<unsigned long long>(r.jobs), r.listening_seconds);
  out += r.tqd_replay_ms ? printf_string("; tqd logged the replay as %.0f ms)\n", *r.tqd_replay_ms)
                         : std::string(")\n");
  out += printf_string(
      "  wal       %.1f bytes/job by STATS wal_bytes (%s); files: %llu, %.1f bytes/job "
      "apparent (%s), %.1f bytes/job allocated (%s, segments are preallocated)\n",
      static_cast<double>(r.wal_bytes) / n, bytes_text(r.wal_bytes).c_str(),
      static_cast<unsigned long long>(r.wal_files), static_cast<double>(r.wal_apparent_bytes) / n,
      bytes_text(r.wal_apparent_bytes).c_str(), static_cast<double>(r.wal_allocated_bytes) / n,
      bytes_text(r.wal_allocated_bytes).c_str());
  if (r.after_restart) {
    out += printf_string("  memory    RSS %s (%.0f bytes/job) after the restart, peak %s",
                         bytes_text(r.after_restart->rss_bytes).c_str(),
                         static_cast<double>(r.after_restart->rss_bytes) / n,
                         bytes_text(r.after_restart->peak_rss_bytes).c_str());
  }
  if (r.after_produce) {
    out += printf_string("; first run after producing: RSS %s, peak %s",
                         bytes_text(r.after_produce->rss_bytes).c_str(),
                         bytes_text(r.after_produce->peak_rss_bytes).c_str());
  }
  out += "\n";
  if (r.produce.failure) out += "  FAILED    " + *r.produce.failure + "\n";
  return out;
}

JsonObject replay_json(const Options& o, const ReplayResult& r) {
  const double n = r.jobs > 0 ? static_cast<double>(r.jobs) : 1;
  JsonObject j;
  j.add("target", "tq")
      .add("phase", "replay")
      .add("tls", !o.tls_ca.empty())
      .add("jobs", r.jobs)
      .add("size", static_cast<uint64_t>(o.payload_bytes))
      .add("produce", workload_json(o, r.produce))
      .add("listening_seconds", r.listening_seconds)
      .add("restart_seconds", r.restart_seconds);
  if (r.tqd_replay_ms) {
    j.add("tqd_replay_ms", *r.tqd_replay_ms);
  } else {
    j.add_null("tqd_replay_ms");
  }
  j.add("wal_bytes", r.wal_bytes)
      .add("wal_bytes_per_job", static_cast<double>(r.wal_bytes) / n)
      .add("wal_files", r.wal_files)
      .add("wal_apparent_bytes", r.wal_apparent_bytes)
      .add("wal_apparent_bytes_per_job", static_cast<double>(r.wal_apparent_bytes) / n)
      .add("wal_allocated_bytes", r.wal_allocated_bytes)
      .add("wal_allocated_bytes_per_job", static_cast<double>(r.wal_allocated_bytes) / n);
  if (r.after_restart) {
    j.add("rss_bytes", r.after_restart->rss_bytes)
        .add("peak_rss_bytes", r.after_restart->peak_rss_bytes)
        .add("rss_bytes_per_job", static_cast<double>(r.after_restart->rss_bytes) / n);
  }
  if (r.after_produce) {
    j.add("first_run_rss_bytes", r.after_produce->rss_bytes)
        .add("first_run_peak_rss_bytes", r.after_produce->peak_rss_bytes);
  }
  if (r.produce.failure) {
    j.add("error", *r.produce.failure);
  } else {
    j.add_null("error");
  }
  return j;
}

std::string stall_text(const Options& o, const StallResult& r) {
  std::string out = printf_string("tq-bench stall: %s\n", o.command.c_str());
  out += printf_string("  reply     %s after %.3f s (jobs freed after %.3f s)\n", r.reply.c_str(),
                       r.seconds, r.freed_seconds);
  out +=
      printf_string("  others    %llu PINGs meanwhile: p50 %s  p99 %s  max %s (the longest wait)\n",
                    static_cast<unsigned long long>(r.pings.count()),
                    duration_text(static_cast<double>(r.pings.percentile(50))).c_str(),
                    duration_text(static_cast<double>(r.pings.percentile(99))).c_str(),
                    duration_text(static_cast<double>(r.pings.max())).c_str());
  out += printf_string("  tqd       loop_max_busy_us %llu (since it started)\n",
                       static_cast<unsigned long long>(r.loop_max_busy_us));
  return out;
}

JsonObject stall_json(const Options& o, const StallResult& r) {
  JsonObject j;
  j.add("target", "tq")
      .add("phase", "stall")
      .add("command", o.command)
      .add("reply", r.reply)
      .add("seconds", r.seconds)
      .add("pings", r.pings.count())
      .add("ping_p50_us", static_cast<double>(r.pings.percentile(50)) / 1e3)
      .add("ping_p99_us", static_cast<double>(r.pings.percentile(99)) / 1e3)
      .add("ping_max_us", static_cast<double>(r.pings.max()) / 1e3)
      .add("loop_max_busy_us", r.loop_max_busy_us)
      .add("freed_seconds", r.freed_seconds);
  return j;
}

}  // namespace tq::bench
