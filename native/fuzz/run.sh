#!/usr/bin/env bash
# Runs every harness for SECONDS in total (default 60), split evenly, one after another.
#   native/fuzz/run.sh 60            # after native/fuzz/build.sh
#   FUZZ_ONLY=mapping native/fuzz/run.sh 300
# Seeds stay in native/fuzz/corpus/<harness>/ (committed); what the fuzzer finds grows in
# native/fuzz/corpus-out/<harness>/ (ignored). Crashes are written to native/fuzz/crash-<harness>-*
# and make the script exit 1. A per-harness summary (executions, corpus size) is printed at the end.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
total="${1:-60}"
bin="${FUZZ_OUT:-$root/build-fuzz}"
harnesses=(${FUZZ_ONLY:-header json mapping gguf})
each=$(( total / ${#harnesses[@]} ))
[ "$each" -ge 1 ] || each=1
status=0
summary=()
export TMPDIR="${TMPDIR:-/tmp}"
for h in "${harnesses[@]}"; do
  exe="$bin/fuzz_$h"
  [ -x "$exe" ] || { echo "run.sh: $exe missing: run native/fuzz/build.sh first" >&2; exit 2; }
  work="native/fuzz/corpus-out/$h"
  mkdir -p "$work"
  log="$(mktemp "${TMPDIR}/mother-fuzz-$h.XXXXXX")"
  # detect_leaks: leaks are findings. timeout: one input may not take 10 s. max_len: small files
  # reach every branch of the parser; bigger ones only slow the search.
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    "$exe" "$work" "native/fuzz/corpus/$h" -dict=native/fuzz/fuzz.dict -max_total_time="$each" \
      -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="native/fuzz/crash-$h-" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "=== fuzz_$h FAILED (exit $rc); log: $log" >&2
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -20 >&2
  else
    rm -f "$log"
  fi
  summary+=("fuzz_$h: ${each}s, ${execs:-?} executions, ${cov:-cov ?}, corpus $(ls "$work" | wc -l) files, exit $rc")
done
printf '%s\n' "${summary[@]}"
exit $status
