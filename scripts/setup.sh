#!/bin/sh
# Installs every build and test dependency of userbpf from Debian 12's packages.
# Idempotent; safe to run again. Needs root (or sudo) on a fresh machine.
set -eu
PKGS="build-essential cmake ninja-build pkg-config git python3
  clang-14 clang llvm lld libclang-rt-14-dev clang-format clang-tidy
  clang-19
  libfmt-dev libcli11-dev nlohmann-json3-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  libelf-dev zlib1g-dev libbpf-dev libpcap-dev libseccomp-dev
  libxbyak-dev libcapstone-dev libzydis-dev
  bpftool iproute2"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
else
  echo "setup: all dependencies present"
fi
