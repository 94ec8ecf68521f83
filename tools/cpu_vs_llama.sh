#!/bin/bash
# ROCmForge's CPU backend against llama.cpp's on the same pinned cores, alternating ours and
# llama.cpp per model, ROUNDS rounds (BENCHMARKS.md, "CPU backend (issue 16)"). Usage:
#   tools/cpu_vs_llama.sh ROCMFORGE_BIN LLAMA_BENCH_BIN MODEL.gguf...
# Environment (all optional):
#   CORES=0,1      cores to pin both engines to (taskset -c); threads = how many are listed
#   ROUNDS=2       whole list repeated this many times (ours, llama.cpp per model each round)
#   REPS=3         repetitions per bench (-r)
#   BEFORE=BIN     an older rocmforge binary run first per model (same arguments)
# llama-bench's shared libraries are looked up next to it. Prints the machine's CPU model,
# flags and load average with every model, and ours' decode-weights / host-bandwidth lines.
set -u
if [ $# -lt 3 ]; then
  sed -n '2,11p' "$0" >&2
  exit 2
fi
OURS=$1
LB=$2
shift 2
CORES=${CORES:-0,1}
THREADS=$(echo "$CORES" | tr ',' '\n' | wc -l)
ROUNDS=${ROUNDS:-2}
ARGS=(-p 128 -n 32 -r "${REPS:-3}")
export LD_LIBRARY_PATH="$(dirname "$LB"):${LD_LIBRARY_PATH:-}"
for f in "$OURS" "$LB" "$@"; do
  [ -e "$f" ] || { echo "not found: $f" >&2; exit 2; }
done
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2- | tr ' ' '\n' |
  grep -E '^(avx|fma|f16c|amx)' | tr '\n' ' ')"
echo "cores $CORES, $THREADS threads; ours $("$OURS" --version 2>/dev/null)"
ours() {
  RAYON_NUM_THREADS=$THREADS taskset -c "$CORES" "$1" bench --device cpu --model "$2" \
    "${ARGS[@]}" 2>&1 | grep -E "pp128|tg32|GB/s"
}
for round in $(seq 1 "$ROUNDS"); do
  for m in "$@"; do
    echo "=== round $round $(basename "$m") $(date -u +%H:%M:%S) load $(cut -d ' ' -f 1-3 /proc/loadavg)"
    if [ -n "${BEFORE:-}" ]; then
      echo "--- before ($BEFORE)"
      ours "$BEFORE" "$m"
    fi
    echo "--- ours"
    ours "$OURS" "$m"
    echo "--- llama.cpp"
    taskset -c "$CORES" "$LB" -m "$m" -t "$THREADS" -ngl 0 "${ARGS[@]}" 2>&1 |
      grep -E "pp128|tg32"
  done
done
echo "=== end $(date -u +%H:%M:%S) load $(cut -d ' ' -f 1-3 /proc/loadavg)"
