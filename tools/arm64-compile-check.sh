#!/usr/bin/env bash
# Compiles every CPU-addon source for arm64 (aarch64) with Debian's cross compiler, so the arm64
# build path (scalar kernels, no x86 intrinsics) keeps compiling. Object files only: nothing runs.
# Installs g++-aarch64-linux-gnu with apt-get when missing and allowed (root); else skips.
set -euo pipefail
cd "$(dirname "$0")/.."
CXX=aarch64-linux-gnu-g++
if ! command -v $CXX >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++-aarch64-linux-gnu) >/tmp/arm64-apt.log 2>&1 \
      || { echo "arm64-compile-check: could not install the cross compiler, skipping"; exit 0; }
  else
    echo "arm64-compile-check: $CXX not found, skipping"; exit 0
  fi
fi
napi=$(node -p "require('node-addon-api').include_dir")
node_inc=$(node -p "require('path').join(process.execPath, '../../include/node')")
out=$(mktemp -d)
n=0
for f in $(node tools/list-sources.cjs); do
  $CXX -std=c++17 -O2 -Wall -Inative -I"$napi" -I"$node_inc" -DNAPI_VERSION=8 -c "$f" -o "$out/$n.o"
  n=$((n + 1))
done
rm -rf "$out"
echo "arm64-compile-check: $n sources compiled for aarch64"
