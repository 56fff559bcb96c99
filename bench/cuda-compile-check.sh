#!/usr/bin/env bash
# CI step for machines with nvcc but (usually) no GPU: the CUDA addon and the kernel self-test
# must compile, the addon must load without libcuda, and its no-device contract must hold.
# Skips (exit 0) when nvcc or cmake is absent. Usage: bash bench/cuda-compile-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null || ! command -v cmake >/dev/null; then
  echo "cuda-compile-check: nvcc or cmake not found, skipping"; exit 0
fi
t0=$(date +%s)
npx cmake-js compile -d native/cuda -O build-cuda -p "$(nproc)" > /tmp/cuda-compile-check.log 2>&1 \
  || { tail -40 /tmp/cuda-compile-check.log; echo "cuda-compile-check: build FAILED"; exit 1; }
echo "cuda-compile-check: built in $(( $(date +%s) - t0 ))s"
if grep -E "spill stores" /tmp/cuda-compile-check.log | grep -vq " 0 bytes spill stores"; then
  echo "note: some kernel variants spill registers:"; grep -B1 "Registers are spilled" /tmp/cuda-compile-check.log | head -4
fi
node_file=build-cuda/Release/mother_cuda.node
[ -f "$node_file" ] || node_file=build-cuda/mother_cuda.node
# The CUDA runtime must be static: only the driver (libcuda, opened lazily) may be needed.
if ldd "$node_file" | grep -E "libcudart|libcuda\.so"; then echo "cuda-compile-check: links the CUDA runtime dynamically"; exit 1; fi
# Hopper SASS and compute_90 PTX: from cuobjdump where installed, else from the compile commands.
if command -v cuobjdump >/dev/null; then
  cuobjdump --list-elf "$node_file" | grep -q sm_90 || { echo "cuda-compile-check: no sm_90 SASS"; exit 1; }
  cuobjdump --list-ptx "$node_file" | grep -q sm_90 || { echo "cuda-compile-check: no compute_90 PTX"; exit 1; }
elif [ -f build-cuda/build.ninja ]; then
  cmds=$(cd build-cuda && ninja -t commands)
  grep -q 'arch=compute_90,code=\[sm_90\]' <<<"$cmds" || { echo "cuda-compile-check: no sm_90 SASS target"; exit 1; }
  grep -q 'arch=compute_90,code=\[compute_90\]' <<<"$cmds" || { echo "cuda-compile-check: no compute_90 PTX target"; exit 1; }
fi
# Undefined symbols other than Node-API and libc/libstdc++ would fail only at load time.
if nm -u "$node_file" | grep -v -E " (napi_|node_api_)|@GLIBC|@GLIBCXX|@CXXABI|@GCC_| w " | grep -q .; then
  nm -uC "$node_file" | grep -v -E " (napi_|node_api_)|@GLIBC|@GLIBCXX|@CXXABI|@GCC_| w "; echo "cuda-compile-check: unresolved symbols"; exit 1
fi
npx vitest run test/cuda-nodevice.test.ts test/cuda-parity.test.ts
echo "cuda-compile-check: OK"
