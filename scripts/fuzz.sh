#!/usr/bin/env bash
# Runs every libFuzzer target of fuzz/ for SECONDS each (default 60), one after
# the other, at nice 19.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]        targets: isa_asm asm_text loader verifier exec cbpf filter
#   scripts/fuzz.sh --merge [TARGET...]          minimize the working corpora into fuzz/corpus/<target>
#   scripts/fuzz.sh --kdiff N [SEED]             N generated programs against the kernel's verifier
#   scripts/fuzz.sh --xdiff N [SEED]             N generated programs executed by the kernel
#                                                (BPF_PROG_TEST_RUN) and by userbpf's runtime
#
# Environment: BUILD (default build-fuzz: clang, -DUSERBPF_FUZZ=ON, ASan+UBSan;
# configured and built here when missing), JOBS (ninja -j, default 2),
# FUZZ_ARGS (extra libFuzzer flags).
# FUZZ_CPU (pin the fuzzer and its children to these CPUs, taskset -c; e.g. 1),
# FUZZ_NO_BUILD=1 (run the binaries as they are, without rebuilding them first),
# FUZZ_TIMEOUT (libFuzzer -timeout: wall seconds one input may take, default 30;
# the verifier target also fails an input whose verification takes more than
# 10 s of CPU, fuzz/targets/verifier.cpp, which a loaded machine cannot trip).
# Working corpora and crash artifacts live in $BUILD/fuzz/{corpus,artifacts}/<target>;
# each run appends `target,start,wall seconds,CPU seconds` to $BUILD/fuzz/runs.csv
# (CPU: user + system of the fuzzer and every child it ran, /usr/bin/time). A crash prints the
# command that reproduces it; store the input under fuzz/regressions/<target>/
# with a NAME.txt description (see docs/fuzzing.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-fuzz}
JOBS=${JOBS:-2}
ALL_TARGETS=(isa_asm asm_text loader verifier exec cbpf filter)

configure() {
  if [ ! -f "$BUILD/build.ninja" ]; then
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
      -DUSERBPF_FUZZ=ON -DUSERBPF_SANITIZE=address,undefined -DUSERBPF_BUILD_BENCH=OFF >/dev/null
  fi
  [ "${FUZZ_NO_BUILD:-0}" = 1 ] && return 0
  local t=()
  for x in "$@"; do t+=("fuzz_$x"); done
  nice -n 19 ninja -C "$BUILD" -j"$JOBS" "${t[@]}" userbpf_fuzz_seeds userbpf-fuzz-gen >/dev/null
}

mode=run
if [ "${1:-}" = "--merge" ]; then mode=merge; shift; fi
if [ "${1:-}" = "--kdiff" ]; then
  shift
  configure
  exec "$BUILD/bin/userbpf-fuzz-gen" kdiff "${1:-1000}" "${2:-1}" "$BUILD/fuzz/kdiff"
fi
if [ "${1:-}" = "--xdiff" ]; then
  shift
  configure
  exec "$BUILD/bin/userbpf-fuzz-gen" xdiff "${1:-1000}" "${2:-1}" "$BUILD/fuzz/xdiff"
fi
SECONDS_PER=60
if [ "$mode" = run ] && [[ "${1:-}" =~ ^[0-9]+$ ]]; then SECONDS_PER=$1; shift; fi
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")
configure "${TARGETS[@]}"

status=0
for t in "${TARGETS[@]}"; do
  work=$BUILD/fuzz/corpus/$t
  art=$BUILD/fuzz/artifacts/$t
  mkdir -p "$work" "$art"
  seeds=()
  for d in "$ROOT/fuzz/corpus/$t" "$BUILD/fuzz/seeds/$t" "$ROOT/fuzz/regressions/$t"; do
    [ -d "$d" ] && seeds+=("$d")
  done
  dict=()
  [ -f "$ROOT/fuzz/dict/$t.dict" ] && dict=(-dict="$ROOT/fuzz/dict/$t.dict")
  if [ "$mode" = merge ]; then
    mkdir -p "$ROOT/fuzz/corpus/$t"
    nice -n 19 "$BUILD/bin/fuzz_$t" -merge=1 "${dict[@]}" "$ROOT/fuzz/corpus/$t" "$work" 2>&1 | tail -1
    continue
  fi
  echo "== $t: ${SECONDS_PER}s"
  log=$BUILD/fuzz/$t.log
  start=$(date +%s)
  stamp=$BUILD/fuzz/$t.start
  touch "$stamp"
  set +e
  # -fork=1 keeps fuzzing after a crash (each crash is saved in $art).
  pin=()
  [ -n "${FUZZ_CPU:-}" ] && pin=(taskset -c "$FUZZ_CPU")
  nice -n 19 /usr/bin/time -f '%U %S' -o "$BUILD/fuzz/$t.cpu" "${pin[@]}" "$BUILD/bin/fuzz_$t" \
    -max_total_time="$SECONDS_PER" -timeout="${FUZZ_TIMEOUT:-30}" -rss_limit_mb=2048 \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -artifact_prefix="$art/" "${dict[@]}" \
    ${FUZZ_ARGS:-} "$work" "${seeds[@]}" >"$log" 2>&1
  set -e
  end=$(date +%s)
  cpu=$(tail -1 "$BUILD/fuzz/$t.cpu" | awk '{printf "%.0f", $1 + $2}')
  echo "$t,$start,$((end - start)),$cpu" >>"$BUILD/fuzz/runs.csv"
  echo "   wall $((end - start)) s, CPU $cpu s"
  grep -E "^#[0-9]+.*(DONE|pulse|NEW)" "$log" | tail -1 || true
  # findings of this run only (the artifact folder keeps earlier runs' files)
  crashes=$(find "$art" -type f -newer "$stamp" \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  if [ "$crashes" -gt 0 ]; then
    status=1
    echo "   $crashes finding(s) in $art; reproduce with: $BUILD/bin/fuzz_$t <file>"
    find "$art" -type f -newer "$stamp" | sed 's/^/     /'
    { grep -h "FINDING\|ERROR: AddressSanitizer\|runtime error" "$log" || true; } | sort | uniq -c | head -5
  fi
done
exit $status
