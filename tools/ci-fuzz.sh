#!/usr/bin/env bash
# CI smoke fuzzing (~1 minute): installs clang with libFuzzer if missing (Debian/Ubuntu apt-get),
# builds the harnesses of native/fuzz with ASan + UBSan and runs each one briefly from the seed
# corpus. Exits non-zero on a build failure or any crash, sanitizer report or leak.
#   tools/ci-fuzz.sh [SECONDS]     (default 45, split between the harnesses)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
seconds="${1:-45}"

have_fuzzer_clang() {
  local cxx
  for cxx in clang++ clang++-16 clang++-15 clang++-14; do
    command -v "$cxx" >/dev/null || continue
    local probe
    probe=$(mktemp)
    if echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long){return 0;}' |
      "$cxx" -x c++ -fsanitize=fuzzer,address - -o "$probe" 2>/dev/null; then
      rm -f "$probe"
      export CXX="$cxx"
      return 0
    fi
    rm -f "$probe"
  done
  return 1
}

if ! have_fuzzer_clang; then
  echo "ci-fuzz: installing clang-14 and libclang-rt-14-dev (libFuzzer runtime)"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null
  have_fuzzer_clang || { echo "ci-fuzz: clang with -fsanitize=fuzzer still unavailable" >&2; exit 2; }
fi

export FUZZ_OUT="${FUZZ_OUT:-$root/build-fuzz}"
native/fuzz/build.sh
native/fuzz/run.sh "$seconds"
