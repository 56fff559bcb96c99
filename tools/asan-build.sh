#!/usr/bin/env bash
# Builds the CPU addon with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/Release/mother_cpu.node (a separate folder: the normal build/ is untouched), from the
# same source list binding.gyp uses (tools/list-sources.cjs). Then run the tests against it:
#
#   tools/asan-build.sh
#   tools/asan-build.sh test [vitest args...]      # builds, then runs vitest under the sanitizers
#
# which is:
#   MOTHER_CPU_ADDON=build-asan/Release/mother_cpu.node LD_PRELOAD=$(g++ -print-file-name=libasan.so) \
#   ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 npx vitest run
#
# Node itself is not instrumented, so its allocations look like leaks to LeakSanitizer:
# detect_leaks=0 (the fuzz harnesses check our code for leaks instead). The addon's own memory
# errors (overflows, use-after-free, UB) still abort the test run with a report.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
CXX="${CXX:-g++}"
out="$root/build-asan/Release"
mkdir -p "$out/obj"
napi_inc="$(node -p "require('node-addon-api').include_dir")"
node_inc="${NODE_INCLUDE:-$(dirname "$(dirname "$(command -v node)")")/include/node}"
[ -f "$node_inc/node_api.h" ] || { echo "asan-build: node headers not found in $node_inc (set NODE_INCLUDE)" >&2; exit 2; }
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fPIC -fvisibility=hidden
       -fsanitize=address,undefined -fno-sanitize=vptr
       -Inative -I"$napi_inc" -I"$node_inc"
       -DNAPI_VERSION=8 -DNODE_ADDON_API_DISABLE_DEPRECATED -DNAPI_CPP_EXCEPTIONS -DBUILDING_NODE_EXTENSION
       -pthread -Wall -Wextra -Wno-unused-parameter)
mapfile -t sources < <(node tools/list-sources.cjs)
objs=()
pids=()
for src in "${sources[@]}"; do
  obj="$out/obj/$(echo "$src" | tr '/' '_').o"
  objs+=("$obj")
  # Rebuild when the source, any native header, or this script is newer than the object.
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$0" -nt "$obj" ] ||
     [ -n "$(find native -name '*.h' -newer "$obj" -print -quit)" ] ||
     [ -n "$(find native -name '*.inc' -newer "$obj" -print -quit)" ]; then
    "$CXX" "${flags[@]}" -c "$src" -o "$obj" & pids+=($!)
    if [ ${#pids[@]} -ge "${JOBS:-2}" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for p in "${pids[@]}"; do wait "$p"; done
# Node provides the napi_* symbols at load time, hence no -z defs.
"$CXX" -shared -fsanitize=address,undefined -pthread "${objs[@]}" -o "$out/mother_cpu.node"
echo "built $out/mother_cpu.node"

if [ "${1:-}" = "test" ]; then
  shift
  export MOTHER_CPU_ADDON="$out/mother_cpu.node"
  export LD_PRELOAD="$("$CXX" -print-file-name=libasan.so)${LD_PRELOAD:+:$LD_PRELOAD}"
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
  exec npx vitest run "$@"
fi
