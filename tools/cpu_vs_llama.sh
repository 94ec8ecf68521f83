#!/bin/bash
# ROCmForge's CPU backend against llama.cpp's on the same two cores, back to back per model,
# two rounds (BENCHMARKS.md, "CPU backend"). Usage:
#   LLAMA_BENCH=/path/to/llama-bench [BEFORE=/path/to/older/rocmforge] \
#     tools/cpu_vs_llama.sh [target/release/rocmforge] MODEL.gguf...
# BEFORE, when set, runs with ROCMFORGE_CPU_SCALAR=1 (the portable scalar matmul).
set -u
OURS=${1:-target/release/rocmforge}
shift
LB=${LLAMA_BENCH:?set LLAMA_BENCH to the llama-bench binary of llama.cpp}
export LD_LIBRARY_PATH="$(dirname "$LB"):${LD_LIBRARY_PATH:-}"
ARGS=(-p 128 -n 32 -r 2)
for round in 1 2; do
  for m in "$@"; do
    echo "=== round $round $(basename "$m") $(date -u +%H:%M:%S) load $(cut -d ' ' -f 1 /proc/loadavg)"
    if [ -n "${BEFORE:-}" ]; then
      echo "--- before (ROCMFORGE_CPU_SCALAR=1 $BEFORE)"
      ROCMFORGE_CPU_SCALAR=1 RAYON_NUM_THREADS=2 taskset -c 0,1 "$BEFORE" bench --device cpu \
        --model "$m" "${ARGS[@]}" -q 2>&1 | grep -E "pp128|tg32"
    fi
    echo "--- ours"
    RAYON_NUM_THREADS=2 taskset -c 0,1 "$OURS" bench --device cpu --model "$m" "${ARGS[@]}" -q \
      2>&1 | grep -E "pp128|tg32"
    echo "--- llama.cpp"
    taskset -c 0,1 "$LB" -m "$m" -t 2 -ngl 0 "${ARGS[@]}" 2>&1 | grep -E "pp128|tg32"
  done
done
