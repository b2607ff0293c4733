#!/usr/bin/env bash
# Runs clang-tidy (the project's .clang-tidy) over the core: src/base, src/isa,
# src/asm, src/interp (their .cpp files and, through them, their headers).
#
#   scripts/tidy.sh              every core file; exit status 1 if any warning
#   scripts/tidy.sh FILE...      only these files (paths relative to the repository)
#
# Configures build-tidy (clang, compile_commands.json only: nothing is built)
# so that the compile commands are clang's (a g++ build's flags, such as
# -mmemset-strategy, are not understood by clang-tidy). Installs clang-tidy-14
# (Debian package) when it is missing. Headers outside the core (src/abi, ...)
# are not reported: HeaderFilterRegex is narrowed to the core's folders.
#
# Environment: BUILD (default build-tidy), JOBS (parallel clang-tidy processes,
# default 2).
# Time (2 cores shared with other builds): about 3 min for the whole core
# (interp.cpp alone about 1 min: its handler table expands the opcode table).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-tidy}
JOBS=${JOBS:-2}
CORE=(src/base src/isa src/asm src/interp)

TIDY=$(command -v clang-tidy-14 || command -v clang-tidy || true)
if [ -z "$TIDY" ]; then
  echo "tidy: installing clang-tidy-14" >&2
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y clang-tidy-14 >&2
  TIDY=$(command -v clang-tidy-14)
fi

start=$(date +%s)
if [ ! -f "$BUILD/compile_commands.json" ]; then
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DUSERBPF_BUILD_BENCH=OFF >/dev/null
fi

if [ $# -gt 0 ]; then
  FILES=("$@")
else
  mapfile -t FILES < <(cd "$ROOT" && find "${CORE[@]}" -name '*.cpp' | sort)
fi

OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
cd "$ROOT"
printf '%s\n' "${FILES[@]}" |
  xargs -P "$JOBS" -I{} "$TIDY" -p "$BUILD" --quiet --header-filter='src/(base|isa|asm|interp)/' {} >>"$OUT" 2>/dev/null ||
  true
# one line per warning, then the notes that belong to them
warnings=$(grep -c ': warning: ' "$OUT" || true)
errors=$(grep -c ': error: ' "$OUT" || true)
cat "$OUT"
echo "tidy: ${#FILES[@]} files, $warnings warnings, $errors errors, $(($(date +%s) - start)) s"
[ "$warnings" = 0 ] && [ "$errors" = 0 ]
