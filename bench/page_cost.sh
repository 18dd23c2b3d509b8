#!/usr/bin/env bash
# bench/page_cost.sh: what a fresh page of memory costs on this machine.
# A server that stores a backlog takes fresh memory for every job it holds
# (tqd: about 190 bytes a 100-byte job), so this cost sets how fast any of
# them can produce into an empty server. On bare metal a 4 KiB page fault,
# the kernel zeroing the page, is a fraction of a microsecond; under some
# hypervisors it is tens of times that (RESULTS.md, notes of 2026-12-07).
#
# Maps 256 MiB, writes a byte a page (first touch), again (resident), then
# gives it back with MADV_DONTNEED and touches it once more; three rounds,
# in 4 KiB pages and then with transparent huge pages asked for. Prints
# microseconds per 4 KiB of memory. Needs a C++ compiler (g++ or c++).
#
# usage: bench/page_cost.sh
set -euo pipefail

compiler=$(command -v g++ || command -v c++ || true)
[ -n "$compiler" ] || { echo "page_cost.sh: needs g++ or c++" >&2; exit 2; }
dir=$(mktemp -d /tmp/tq-page-cost.XXXXXX)
trap 'rm -rf "$dir"' EXIT

cat > "$dir/page_cost.cc" <<'EOF'
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBytes = size_t{256} << 20;
constexpr size_t kPage = 4096;

double touch_us_per_page(char* memory, char value) {
  const auto start = Clock::now();
  for (size_t i = 0; i < kBytes; i += kPage) static_cast<volatile char*>(memory)[i] = value;
  const std::chrono::duration<double, std::micro> took = Clock::now() - start;
  return took.count() / static_cast<double>(kBytes / kPage);
}

void rounds(int advice, const char* what) {
  for (int round = 1; round <= 3; ++round) {
    void* mapped = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) std::exit(1);
    char* memory = static_cast<char*>(mapped);
    madvise(memory, kBytes, advice);
    const double first = touch_us_per_page(memory, 1);
    const double resident = touch_us_per_page(memory, 2);
    madvise(memory, kBytes, MADV_DONTNEED);
    const double again = touch_us_per_page(memory, 3);
    std::printf("%-12s round %d: first touch %6.2f us, resident %5.3f us, after MADV_DONTNEED %6.2f us\n",
                what, round, first, resident, again);
    munmap(memory, kBytes);
  }
}

}  // namespace

int main() {
  std::printf("microseconds per 4 KiB page, 256 MiB a round\n");
  rounds(MADV_NOHUGEPAGE, "4 KiB pages");
  rounds(MADV_HUGEPAGE, "huge pages");
}
EOF
"$compiler" -O2 -std=c++17 -o "$dir/page_cost" "$dir/page_cost.cc"
"$dir/page_cost"
grep -H . /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || true
