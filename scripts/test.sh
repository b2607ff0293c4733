#!/bin/sh
# The README's second command: set up, build and run every test.
#  1. g++ RelWithDebInfo build, whole suite (kernel-oracle tests skip themselves
#     where the kernel's bpf() is unavailable).
#  2. clang build with AddressSanitizer + UndefinedBehaviorSanitizer, whole suite.
#  3. clang build with ThreadSanitizer of the concurrency tests (scripts/tsan.sh).
# Ends with one line: "N passed, M failed".
set -u
cd "$(dirname "$0")/.."
sh scripts/setup.sh || exit 1
jobs="$(nproc 2>/dev/null || echo 2)"
total_pass=0
total_fail=0
run_suite() {  # name build_dir cmake-args...
  name="$1"; dir="$2"; shift 2
  echo "==== [$name] build ($dir)"
  if ! sh scripts/build.sh "$dir" "$@"; then
    echo "==== [$name] BUILD FAILED"
    total_fail=$((total_fail + 1))
    return
  fi
  echo "==== [$name] ctest"
  ctest --test-dir "$dir" -j "$jobs" --output-on-failure --timeout 900 >"$dir/ctest.log" 2>&1
  grep -E "tests passed|tests failed|\*\*\*Failed|\*\*\*Timeout|Exception|Not Run" "$dir/ctest.log" | tail -40
  summary="$(grep -E '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$dir/ctest.log" | tail -1)"
  if [ -z "$summary" ]; then
    echo "==== [$name] no ctest summary (no tests ran?)"; tail -30 "$dir/ctest.log"
    total_fail=$((total_fail + 1))
    return
  fi
  failed="$(echo "$summary" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')"
  all="$(echo "$summary" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/')"
  [ "$failed" -gt 0 ] && sed -n '/The following tests FAILED/,$p' "$dir/ctest.log"
  grep -c "Skipped" "$dir/ctest.log" >/dev/null 2>&1 && echo "==== [$name] skipped: $(grep -c '\*\*\*Skipped' "$dir/ctest.log")"
  total_pass=$((total_pass + all - failed))
  total_fail=$((total_fail + failed))
}
run_suite gcc build
run_suite clang-asan-ubsan build-asan -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DUSERBPF_SANITIZE=address,undefined -DUSERBPF_BUILD_BENCH=OFF
echo "==== [clang-tsan] build and run the concurrency tests (build-tsan)"
mkdir -p build-tsan
if bash scripts/tsan.sh >build-tsan/tsan.log 2>&1; then :; fi
grep -E "tests passed|tests failed|\*\*\*Failed|WARNING: ThreadSanitizer|tsan:" build-tsan/tsan.log | tail -20
summary="$(grep -E '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' build-tsan/tsan.log | tail -1)"
if [ -z "$summary" ]; then
  echo "==== [clang-tsan] no ctest summary (build failed?)"; tail -30 build-tsan/tsan.log
  total_fail=$((total_fail + 1))
else
  failed="$(echo "$summary" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/')"
  all="$(echo "$summary" | sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/')"
  total_pass=$((total_pass + all - failed))
  total_fail=$((total_fail + failed))
fi
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
