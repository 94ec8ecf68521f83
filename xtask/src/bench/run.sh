#!/usr/bin/env bash
# ROCmForge's issue-7 benchmark, bundled by `cargo xtask bench --gpu`.
# Usage: bash bench-bundle/run.sh [all | 0.5b | 8b | TAG...]   (default: all)
#   TAGs: see `bin/xtask bench-rows` (0.5b-q8_0, 0.5b-q4_k_m, 8b-q4_0, 8b-q4_k_m, 8b-q8_0, 8b-f16).
# Synthesizes each model into $TMPDIR (default /tmp), runs `rocmforge bench` for its rows,
# deletes the model, and prints the table (t/s, llama.cpp's number, ratio, % of the decode
# floor). Results: bench-results.{json,md} and bench.log in $OUT (else bench-bundle/results).
# Environment: RF_BENCH_BUDGET (seconds for everything, default 540: rows that would start
# later are reported as skipped), RF_BENCH_REPS (default 3), RF_BENCH_DEVICE (default gpu).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$here/results}"
work="${TMPDIR:-/tmp}/rocmforge-bench"
budget="${RF_BENCH_BUDGET:-540}"
reps="${RF_BENCH_REPS:-3}"
device="${RF_BENCH_DEVICE:-gpu}"
start=$(date +%s)
rm -rf "$work"
mkdir -p "$out" "$work"
log="$out/bench.log"
: >"$log"
export ROCMFORGE_KERNEL_DIR="$here/kernels"
say() { echo "$*" | tee -a "$log"; }
elapsed() { echo $(( $(date +%s) - start )); }

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(all)
selected() {
  local tag="$1" w
  for w in "${want[@]}"; do
    case "$w" in
      all) return 0 ;;
      0.5b|8b) [ "${tag%%-*}" = "$w" ] && return 0 ;;
      *) [ "$tag" = "$w" ] && return 0 ;;
    esac
  done
  return 1
}

say "=== $(date -u +%FT%TZ) rows: ${want[*]}; budget ${budget}s; reps $reps; device $device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null | tee -a "$log"
t0=$(date +%s)
bash "$here/build-cubins.sh" "$work/nvcc" 2>&1 | tee -a "$log"
say "cubins: $(( $(date +%s) - t0 )) s"

"$here/bin/xtask" bench-rows >"$work/rows.tsv"
prev=""
while IFS=$'\t' read -r tag shape type key np ng depth; do
  selected "$tag" || continue
  model="$work/$tag.gguf"
  if [ "$tag" != "$prev" ]; then
    [ -n "$prev" ] && rm -f "$work/$prev.gguf"
    prev="$tag"
    if [ "$(elapsed)" -ge "$budget" ]; then
      say "--- $tag: skipped (time budget, $(elapsed) s used)"
    else
      t0=$(date +%s)
      "$here/bin/xtask" synth-model --shape "$shape" --type "$type" --vocab-dir "$here/vocab" "$model" 2>&1 | tee -a "$log"
      echo $(( $(date +%s) - t0 )) >"$work/$tag.synth_s"
      say "--- $tag synthesized in $(cat "$work/$tag.synth_s") s"
    fi
  fi
  stem="$work/$tag-$key"
  left=$(( budget - $(elapsed) ))
  if [ ! -f "$model" ] || [ "$left" -le 5 ]; then
    echo skipped >"$stem.status"
    say "--- $tag $key: skipped"
    continue
  fi
  args=(bench --model "$model" -p "$np" -n "$ng" -r "$reps" --device "$device" --json --quiet)
  [ "$depth" -gt 0 ] && args+=(--depth "$depth")
  t0=$(date +%s)
  timeout "$left" "$here/bin/rocmforge" "${args[@]}" >"$stem.json" 2>"$stem.err"
  echo $? >"$stem.status"
  say "--- $tag $key: exit $(cat "$stem.status") in $(( $(date +%s) - t0 )) s: $(tail -c 600 "$stem.json")"
  tail -n 5 "$stem.err" | tee -a "$log"
done <"$work/rows.tsv"
[ -n "$prev" ] && rm -f "$work/$prev.gguf"

machine="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)"
"$here/bin/xtask" bench-report --results "$work" --out "$out" --machine "${machine:-$(uname -n)}, $(date -u +%F)" | tee -a "$log"
say "total: $(elapsed) s"
