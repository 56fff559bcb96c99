#!/usr/bin/env bash
# ONE script for a GPU machine (H100 / sm_90 target): builds the CUDA code, checks the kernels
# against float64 references, runs the CUDA-vs-CPU parity tests when Node.js is there, times the
# kernels against device-to-device copy and torch.cdist, and prints a short table last.
# Usage, from the package root:  bash bench/gpu-check.sh        (about 3-5 minutes; hard cap 8)
# Works without Node.js: then only the standalone self-test (native/cuda/selftest.cu) runs.
set -u
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT=${GPU_CHECK_LOG:-/tmp/gpu-check}
mkdir -p "$OUT"
say() { printf '\n== [%3ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
status=0

say "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv,noheader 2>&1 || echo "nvidia-smi failed"
command -v nvcc >/dev/null && nvcc --version | tail -1 || { echo "nvcc not found: cannot build"; exit 1; }
cmake --version | head -1
HAVE_NODE=0
if command -v node >/dev/null && [ -d node_modules/node-addon-api ] && [ -d node_modules/cmake-js ]; then
  HAVE_NODE=1; echo "node $(node --version)"
else
  echo "node (or node_modules) NOT available: building and running the standalone self-test only"
fi
JOBS=$(nproc 2>/dev/null || echo 4)

say "build"
if [ $HAVE_NODE = 1 ]; then
  # The CPU addon is the parity reference; build it if this copy of the tree lacks it.
  if [ ! -f build/Release/mother_cpu.node ]; then
    (npx node-gyp configure >/dev/null && npx node-gyp build -j "$JOBS") > "$OUT/cpu-build.log" 2>&1 \
      || { echo "CPU addon build failed (tail of $OUT/cpu-build.log):"; tail -20 "$OUT/cpu-build.log"; status=1; }
  fi
  t0=$(date +%s)
  if timeout 300 npx cmake-js compile -d native/cuda -O build-cuda -p "$JOBS" > "$OUT/cuda-build.log" 2>&1; then
    echo "CUDA addon + selftest built in $(( $(date +%s) - t0 ))s"
  else
    echo "CUDA build failed (tail of $OUT/cuda-build.log):"; tail -30 "$OUT/cuda-build.log"; exit 1
  fi
  SELFTEST=build-cuda/mother_cuda_selftest
  [ -x "$SELFTEST" ] || SELFTEST=$(find build-cuda -name mother_cuda_selftest -type f | head -1)
else
  t0=$(date +%s)
  if timeout 300 sh -c "cmake -S native/cuda -B build-cuda-selftest -DMOTHER_CUDA_ADDON=OFF -DCMAKE_BUILD_TYPE=Release && cmake --build build-cuda-selftest -j $JOBS" > "$OUT/cuda-build.log" 2>&1; then
    echo "selftest built in $(( $(date +%s) - t0 ))s"
  else
    echo "selftest build failed (tail of $OUT/cuda-build.log):"; tail -30 "$OUT/cuda-build.log"; exit 1
  fi
  SELFTEST=build-cuda-selftest/mother_cuda_selftest
fi
grep -E "spill|error" "$OUT/cuda-build.log" | grep -v "0 bytes spill" | head -5

say "kernel self-test vs float64 reference + kernel bench"
timeout 200 "$SELFTEST" --bench 2>&1 | tee "$OUT/selftest.log" | grep -v "^BENCH" | tail -45
st=${PIPESTATUS[0]}
[ "$st" = 0 ] || { echo "selftest exit status $st"; status=1; }

say "torch.cdist on the same shapes"
timeout 120 python3 bench/gpu-torch.py 2>&1 | tee "$OUT/torch.log" | tail -5

if [ $HAVE_NODE = 1 ]; then
  say "parity tests (CUDA addon vs CPU addon)"
  timeout 200 npx vitest run test/cuda-parity.test.ts test/cuda-nodevice.test.ts > "$OUT/vitest.log" 2>&1
  vt=$?
  grep -E "✓|×|FAIL|Tests|Test Files|AssertionError|Error:" "$OUT/vitest.log" | head -40
  [ "$vt" = 0 ] || { echo "parity tests failed (exit $vt): see $OUT/vitest.log"; status=1; }
  say "end-to-end computeStats (files -> result), CPU vs CUDA"
  timeout 120 node bench/gpu-bench.js 8 32 2>&1 | tee "$OUT/e2e.log" | tail -8
fi

say "summary"
get() { grep -h "^$1 " "$OUT"/selftest.log "$OUT"/torch.log 2>/dev/null | head -1 | sed -n "s/.*$2=\([0-9.]*\).*/\1/p"; }
copy_gbps=$(get "BENCH d2d_copy" GBps); kurt_pct=$(get "BENCH kurtosis" pct_of_copy); kurt_gbps=$(get "BENCH kurtosis" GBps)
l2=$(get "BENCH pairwise_l2" ms); l1=$(get "BENCH pairwise_l1" ms); li=$(get "BENCH pairwise_linf" ms); a4=$(get "BENCH pairwise_all4" ms)
t2=$(get "TORCH cdist_p2" ms); t1=$(get "TORCH cdist_p1" ms); ti=$(get "TORCH cdist_pinf" ms)
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }' || echo "n/a"; }
verdict() { [ -n "$1" ] && awk -v r="${1%x}" -v t="$2" 'BEGIN { print (r >= t ? "PASS" : "MISS") }' || echo "n/a"; }
r2=$(ratio "$t2" "$l2"); r1=$(ratio "$t1" "$l1"); ri=$(ratio "$ti" "$li")
printf '%-34s %-22s %-10s %s\n' "check (N=32 x 4M float32)" "measured" "target" "verdict"
printf '%-34s %-22s %-10s %s\n' "selftest parity" "$(grep -h '^selftest:' "$OUT/selftest.log" | sed 's/selftest: //')" "0 failed" "$([ "$st" = 0 ] && echo PASS || echo FAIL)"
printf '%-34s %-22s %-10s %s\n' "kurtosis vs d2d copy ($copy_gbps GB/s)" "${kurt_gbps:-n/a} GB/s = ${kurt_pct:-n/a}%" ">= 60%" "$(verdict "${kurt_pct:-}" 60)"
printf '%-34s %-22s %-10s %s\n' "pairwise L2 vs torch.cdist p=2" "${l2:-?} vs ${t2:-?} ms = $r2" ">= 2x" "$(verdict "${r2#n/a}" 2)"
printf '%-34s %-22s %-10s %s\n' "pairwise L1 vs torch.cdist p=1" "${l1:-?} vs ${t1:-?} ms = $r1" ">= 5x" "$(verdict "${r1#n/a}" 5)"
printf '%-34s %-22s %-10s %s\n' "pairwise Linf vs torch.cdist p=inf" "${li:-?} vs ${ti:-?} ms = $ri" ">= 5x" "$(verdict "${ri#n/a}" 5)"
printf '%-34s %-22s\n' "pairwise all 4 sums, one pass" "${a4:-?} ms"
[ $HAVE_NODE = 1 ] && printf '%-34s %s\n' "parity tests (vitest)" "$([ "${vt:-1}" = 0 ] && echo PASS || echo FAIL)"
grep -h "^E2E" "$OUT/e2e.log" 2>/dev/null
echo "logs: $OUT   total $(( $(date +%s) - START ))s"
exit $status
