#!/usr/bin/env python3
"""Log bytes a queue's schedule firings write.

Starts the given tqd on a fresh data directory, gives one queue 49 schedules
of 10,000 bytes that fire every 30 days and one of a byte that fires every
second, and reports what STATS says the log grew by over the given seconds
(ten one-byte jobs in ten seconds). Before SCHEDULE_FIRED every firing wrote
the queue's whole record, every schedule's payload included.

    bench/schedule_log_bytes.py build/tqd /tmp/sched-bench 10
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: schedule_log_bytes.py <tqd> <scratch dir> <seconds>")
    tqd, scratch, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    config = os.path.join(scratch, "tqd.yaml")
    with open(config, "w") as f:
        f.write(f"server:\n  port: 0\n  data_dir: {scratch}/data\n")
    log_path = os.path.join(scratch, "tqd.log")
    server = subprocess.Popen([tqd, "--config", config], stdout=open(log_path, "w"),
                              stderr=subprocess.STDOUT)
    try:
        port = None
        for _ in range(200):
            time.sleep(0.05)
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(log_path).read())
            if found:
                port = int(found.group(1))
                break
        if port is None:
            sys.exit("tqd did not start: see " + log_path)
        conn = socket.create_connection(("127.0.0.1", port))
        replies = conn.makefile("rb")

        def call(line, body=None):
            conn.sendall(line.encode() + b"\n" + (body + b"\n" if body is not None else b""))
            first = replies.readline().decode().rstrip("\n")
            if not first.startswith("OK"):
                sys.exit(f"{line}: {first}")
            return first

        def stats():
            count = int(call("STATS").split()[1])
            lines = [replies.readline().decode().split() for _ in range(count)]
            return {words[0]: words[1] for words in lines if len(words) == 2}

        call("CREATE q")
        big = b"b" * 10000
        for i in range(49):
            call(f"SCHEDULE q big{i} {len(big)} EVERY 30d", big)
            replies.readline()  # the schedule's line
        call("SCHEDULE q tick 1 EVERY 1s", b"t")
        replies.readline()
        before = stats()
        time.sleep(seconds)
        after = stats()
        grew = int(after["wal_bytes"]) - int(before["wal_bytes"])
        records = int(after["wal_records_total"]) - int(before["wal_records_total"])
        jobs = int(after["jobs_ready"])
        print(f"{seconds} s: {jobs} jobs put, {records} log records, {grew} log bytes "
              f"({grew // max(jobs, 1)} a job)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
