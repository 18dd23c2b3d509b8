// CLIENTS against a real tqd: an operator looking for the worker that holds
// jobs, or the ones parked on a queue, sees each connection as it is.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/integration/line_call.h"
#include "tests/support/tqd_process.h"

namespace clients_test {

using tq::testing::call;
using tq::testing::TqdOptions;
using tq::testing::TqdProcess;

namespace {

// "id=3 addr=... cmd=DEQUEUE ..." -> {"id": "3", "addr": "...", ...}
std::map<std::string, std::string> fields_of(const std::string& line) {
  std::map<std::string, std::string> fields;
  size_t start = 0;
  while (start < line.size()) {
    size_t end = line.find(' ', start);
    if (end == std::string::npos) end = line.size();
    const std::string word = line.substr(start, end - start);
    const size_t eq = word.find('=');
    if (eq != std::string::npos) fields[word.substr(0, eq)] = word.substr(eq + 1);
    start = end + 1;
  }
  return fields;
}

std::vector<std::map<std::string, std::string>> clients(tq::client::LineSocket& s) {
  const std::string head = call(s, "CLIENTS");
  REQUIRE(head.rfind("OK ", 0) == 0);
  std::vector<std::map<std::string, std::string>> rows;
  for (size_t i = 0, n = std::stoul(head.substr(3)); i < n; ++i) {
    auto line = s.read_line();
    REQUIRE(line.ok());
    rows.push_back(fields_of(*line));
  }
  return rows;
}

}  // namespace

TEST_SUITE("clients") {
  TEST_CASE(
      "at log_level debug the log names each connection by its CLIENTS id, with its address") {
    TqdOptions o;
    o.config_yaml = "server:\n  log_level: debug\n";
    TqdProcess tqd(o);
    auto s = tqd.socket();
    const auto rows = clients(s);
    REQUIRE(rows.size() == 1);
    const std::string id = rows[0].at("id");
    const std::string addr = rows[0].at("addr");
    CHECK(tqd.wait_for_log("connection " + id + ": accepted from " + addr));
    REQUIRE(call(s, "QUIT").rfind("OK", 0) == 0);
    CHECK(tqd.wait_for_log("connection " + id + ": closed"));
  }

  TEST_CASE("CLIENTS shows who holds jobs, who waits on which queues, and the one asking") {
    TqdProcess tqd;
    auto admin = tqd.socket();
    REQUIRE(call(admin, "CREATE emails") == "OK created emails");
    REQUIRE(call(admin, "CREATE orders") == "OK created orders");

    // A worker holding two jobs, one of which it finishes.
    auto holder = tqd.socket();
    REQUIRE(call(holder, "ENQUEUE emails one") == "OK 1");
    REQUIRE(call(holder, "ENQUEUE emails two") == "OK 2");
    REQUIRE(call(holder, "ENQUEUE emails three") == "OK 3");
    REQUIRE(call(holder, "DEQUEUE emails").rfind("OK 1 ", 0) == 0);
    REQUIRE(call(holder, "DEQUEUE emails").rfind("OK 2 ", 0) == 0);
    REQUIRE(call(holder, "ACK 1") == "OK acked 1");
    REQUIRE(call(holder, "DEQUEUE emails").rfind("OK 3 ", 0) == 0);
    // Job 3 goes back to the queue: no longer this worker's.
    REQUIRE(call(admin, "NACK 3") == "OK nacked 3");

    // A worker parked on two queues (orders is empty; emails has job 3 ready,
    // so it waits on orders alone).
    auto waiter = tqd.socket();
    REQUIRE(waiter.send("DEQUEUE orders WAIT 30s\n").ok());
    std::vector<std::map<std::string, std::string>> rows;
    for (int tries = 0; tries < 500; ++tries) {  // until the server has parked it
      rows = clients(admin);
      if (rows.size() == 3 && rows[2]["wait"] == "orders") break;
    }
    REQUIRE(rows.size() == 3);

    // In connection order: admin, holder, waiter.
    CHECK(rows[0]["cmd"] == "CLIENTS");
    CHECK(rows[0]["leases"] == "0");
    CHECK(rows[1]["cmd"] == "DEQUEUE");
    CHECK(rows[1]["leases"] == "1");  // job 2: job 1 acked, job 3 given back
    CHECK(rows[1]["wait"] == "-");
    CHECK(rows[2]["cmd"] == "DEQUEUE");
    CHECK(rows[2]["wait"] == "orders");
    CHECK(std::stoul(rows[0]["id"]) < std::stoul(rows[1]["id"]));
    CHECK(std::stoul(rows[1]["id"]) < std::stoul(rows[2]["id"]));
    for (auto& row : rows) {
      CHECK(row["addr"].rfind("127.0.0.1:", 0) == 0);
      CHECK(row["unsent"] == "0");
      CHECK(row["age"].back() == 's');
    }

    // Served: the waiter holds its job and waits no more.
    REQUIRE(call(admin, "ENQUEUE orders ship") == "OK 4");
    auto served = waiter.read_line();
    REQUIRE(served.ok());
    CHECK(*served == "OK 4 ship");
    rows = clients(admin);
    REQUIRE(rows.size() == 3);
    CHECK(rows[2]["wait"] == "-");
    CHECK(rows[2]["leases"] == "1");

    // A closed connection leaves the list.
    const std::string holder_id = rows[1]["id"];
    holder = tqd.socket();  // the old socket closes; a new one takes its place
    bool gone = false;
    for (int tries = 0; tries < 500 && !gone; ++tries) {
      rows = clients(admin);
      gone = rows.size() == 3 && rows[1]["id"] != holder_id;
    }
    REQUIRE(gone);
    CHECK(rows[1]["wait"] == "-");  // the waiter, served above
    CHECK(rows[2]["cmd"] == "-");   // the new one has sent nothing yet
    CHECK(rows[2]["leases"] == "0");
  }
}

}  // namespace clients_test
