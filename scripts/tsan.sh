#!/usr/bin/env bash
# Runs the concurrency tests under ThreadSanitizer.
#
#   scripts/tsan.sh            configure build-tsan (clang, -fsanitize=thread), build only
#                              the test binaries that hold multi-threaded or multi-process
#                              tests, run those tests, end with ctest's summary
#
# The tests (ctest names, gtest Suite.Test):
#   maps:    every MapConcurrency.* (LRU, LPM, queue under threads and processes),
#            Maps.Threads* / TwoProcessesShareAPinnedMap / CpuSlotsAreExclusive,
#            MapTypes.RingBuf* / SpinLockValues / PerfEventArrayAndPerfBuffer,
#            RingBufWakeup.* (commit racing a consumer going to sleep)
#   engines: InterpThreads.*, JitThreads.* (one program, many concurrent runs)
#   helpers: Process.* (per-thread task, comm, pid/tgid)
#   runtime (skipped with TSAN_QUICK=1: runtime_test pulls in the loader, the
#            verifier and BPF objects, which nearly doubles the build):
#            Runtime.ThreadsRunOneProgramLosingNoUpdate, Runtime.PerCpuMapsFromPrograms,
#            Runtime.PinnedProgramAndMapAcrossProcesses
# JIT-compiled code is not instrumented (TSan sees the helpers and map code it calls).
#
# Environment: BUILD (default build-tsan), JOBS (ninja -j, default 2), TSAN_QUICK=1,
# TSAN_OPTIONS (default: halt_on_error=1 second_deadlock_stack=1).
# Exit status: ctest's (nonzero when a test fails or TSan reports a race).
# Time (2 cores shared with other builds, load 5-8): from scratch 414 s (build 406 s,
# 25 tests 8 s); TSAN_QUICK=1 234 s (22 tests).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-tsan}
JOBS=${JOBS:-2}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}

TARGETS=(map_concurrency_test maps_test map_types_test ringbuf_wakeup_test interp_test jit_test helpers_test)
[ "${TSAN_QUICK:-0}" = 1 ] || TARGETS+=(runtime_test)
TESTS='^(MapConcurrency\.|Maps\.(Threads|TwoProcessesShareAPinnedMap|CpuSlotsAreExclusive)|MapTypes\.(RingBuf|SpinLockValues|PerfEventArrayAndPerfBuffer)|RingBufWakeup\.|InterpThreads\.|JitThreads\.|Process\.|Runtime\.(ThreadsRunOneProgramLosingNoUpdate|PerCpuMapsFromPrograms|PinnedProgramAndMapAcrossProcesses))'
[ "${TSAN_QUICK:-0}" = 1 ] || { TARGETS+=(timer_run_test); TESTS="${TESTS%)}|TimerRun\.(Interpreter|Jit))"; }  # bpf_timer thread (docs/timers.md)

start=$(date +%s)
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DUSERBPF_SANITIZE=thread -DUSERBPF_BUILD_BENCH=OFF >/dev/null
fi
ninja -C "$BUILD" -j"$JOBS" "${TARGETS[@]}"
built=$(date +%s)
echo "tsan: built in $((built - start)) s"
status=0
(cd "$BUILD" && ctest -R "$TESTS" -j"$JOBS" --output-on-failure) || status=$?
echo "tsan: tests ran in $(($(date +%s) - built)) s (total $(($(date +%s) - start)) s)"
exit $status
