// Builds the connections and threads of a run, releases them together, and
// watches from the main thread: it stops a mixed run at its deadline (or any
// run at its time limit) and fails one whose server stops answering.
#include "bench/workload.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <memory>
#include <thread>

#include "bench/blocking_socket.h"
#include "bench/load_loop.h"
#include "bench/protocol_adapter.h"
#include "bench/run_control.h"
#include "bench/thread_tally.h"
#include "bench/tls_stream.h"

namespace tq::bench {
namespace {

constexpr uint64_t kStallTimeoutNs = 10'000'000'000;  // no job completed for this long: fail

struct ConnectionPlan {
  Role role;
  size_t home_queue;
};

// Producers first, then consumers; each role's connections take the queues
// in turn, so Q queues get equal shares when the count divides evenly.
std::vector<ConnectionPlan> plan_connections(const Options& o) {
  int producers = 0;
  switch (o.phase) {
    case Phase::kProduce:
    case Phase::kReplay:
      producers = o.connections;
      break;
    case Phase::kConsume:
    case Phase::kStall:  // not a workload: bench/stall.h
      producers = 0;
      break;
    case Phase::kMixed:
      producers = o.producers >= 0 ? o.producers : o.connections / 2;
      break;
  }
  std::vector<ConnectionPlan> plan;
  for (int i = 0; i < o.connections; ++i) {
    const bool producer = i < producers;
    const int index_in_role = producer ? i : i - producers;
    plan.push_back({producer ? Role::kProducer : Role::kConsumer,
                    static_cast<size_t>(index_in_role % o.queues)});
  }
  return plan;
}

}  // namespace

std::vector<std::string> queue_names(const Options& options) {
  if (options.queues == 1) return {options.queue_prefix};
  std::vector<std::string> names;
  for (int i = 0; i < options.queues; ++i) {
    names.push_back(options.queue_prefix + "." + std::to_string(i));
  }
  return names;
}

Result<WorkloadResult> run_workload(const Options& o) {
  std::unique_ptr<ProtocolAdapter> adapter = make_adapter(o.target);
  LoadSpec spec;
  spec.adapter = adapter.get();
  spec.target = target_name(o.target);
  spec.queues = queue_names(o);
  spec.pipeline = static_cast<size_t>(o.pipeline);
  spec.payloads = PayloadMaker(o.payload_bytes);

  std::shared_ptr<const TlsTrust> tls;
  if (!o.tls_ca.empty()) {
    auto loaded = TlsTrust::load(o.tls_ca);
    if (!loaded) return loaded.error();
    tls = std::move(*loaded);
  }

  WorkloadResult result;
  auto admin = BlockingSocket::connect(o.host, o.port, tls.get());
  if (!admin) return admin.error();
  if (auto prepared = run_setup(*admin, adapter->prepare_target(spec.queues)); !prepared) {
    return Error{"preparing the queues: " + prepared.error().message};
  }

  const bool unlimited = o.phase == Phase::kMixed;
  const bool produces = o.phase != Phase::kConsume;
  const bool consumes = o.phase == Phase::kConsume || o.phase == Phase::kMixed;
  RunControl control(unlimited ? UINT64_MAX : (produces ? o.jobs : 0),
                     unlimited ? UINT64_MAX : (consumes ? o.jobs : 0));

  const int thread_count = std::max(1, std::min(o.threads, o.connections));
  std::vector<std::unique_ptr<ThreadTally>> tallies;
  std::vector<std::unique_ptr<LoadLoop>> loops;
  for (int t = 0; t < thread_count; ++t) {
    tallies.push_back(std::make_unique<ThreadTally>());
    loops.push_back(std::make_unique<LoadLoop>(control));
  }
  const std::vector<ConnectionPlan> plan = plan_connections(o);
  for (size_t i = 0; i < plan.size(); ++i) {
    auto socket = BlockingSocket::connect(o.host, o.port, tls.get());
    if (!socket) return socket.error();
    auto steps = adapter->prepare_connection(plan[i].role, spec.queues, plan[i].home_queue);
    if (auto ready = run_setup(*socket, steps); !ready) {
      return Error{"setting up a connection: " + ready.error().message};
    }
    if (socket->buffered() != 0) return Error{"the server sent more than the setup asked for"};
    const size_t t = i % static_cast<size_t>(thread_count);
    loops[t]->add(std::make_unique<LoadConnection>(socket->release(), plan[i].role,
                                                   plan[i].home_queue, spec, control, *tallies[t]));
  }
  for (auto& loop : loops) {
    if (auto ok = loop->prepare(); !ok) return ok.error();
  }

  if (o.target == Target::kTq) {
    if (auto stats = fetch_tq_stats(*admin); stats) result.tq_before = std::move(*stats);
  }
  std::latch start(thread_count + 1);
  std::atomic<int> loops_done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      loops[static_cast<size_t>(t)]->run();
      loops_done.fetch_add(1);
    });
  }

  if (o.server_pid) result.server_before = read_process_usage(*o.server_pid);
  const double cpu_before = own_cpu_seconds();
  start.arrive_and_wait();
  const uint64_t started_ns = monotonic_ns();

  double stop_after = o.phase == Phase::kMixed ? o.duration_seconds : o.time_limit_seconds;
  const uint64_t stop_at_ns =
      stop_after > 0 ? started_ns + static_cast<uint64_t>(stop_after * 1e9) : UINT64_MAX;
  uint64_t last_progress = 0;
  uint64_t last_progress_ns = started_ns;
  while (loops_done.load() < thread_count) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const uint64_t now = monotonic_ns();
    if (now >= stop_at_ns) control.stop();
    uint64_t progress = 0;
    for (auto& tally : tallies) progress += tally->progress.load(std::memory_order_relaxed);
    if (progress != last_progress) {
      last_progress = progress;
      last_progress_ns = now;
    } else if (now - last_progress_ns > kStallTimeoutNs && !control.stopping()) {
      control.fail(
          "no job completed for 10 s: the server stopped answering, or holds fewer "
          "jobs than --jobs");
    }
  }
  for (std::thread& t : threads) t.join();
  const uint64_t finished_ns = monotonic_ns();
  result.client_cpu_seconds = own_cpu_seconds() - cpu_before;
  if (o.server_pid) result.server_after = read_process_usage(*o.server_pid);

  uint64_t last_completion_ns = 0;
  for (auto& tally : tallies) {
    result.produced += tally->produced;
    result.consumed += tally->consumed;
    result.empty_replies += tally->empty_replies;
    result.produce_latency.merge(tally->produce_latency);
    result.consume_latency.merge(tally->consume_latency);
    last_completion_ns = std::max(last_completion_ns, tally->last_completion_ns);
  }
  // The loops notice the end within a scan interval; the last reply is the
  // true end of a run that ran out of work.
  const uint64_t end_ns = last_completion_ns > started_ns ? last_completion_ns : finished_ns;
  result.seconds = static_cast<double>(end_ns - started_ns) / 1e9;
  result.failure = control.failure();
  if (o.target == Target::kTq) {
    if (auto stats = fetch_tq_stats(*admin); stats) result.tq_after = std::move(*stats);
  }
  return result;
}

}  // namespace tq::bench
