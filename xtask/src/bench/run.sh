#!/usr/bin/env bash
# ROCmForge's issue-7 benchmark, bundled by `cargo xtask bench --gpu`.
# Usage: bash bench-bundle/run.sh [all | 0.5b | 8b | TAG...]   (default: all)
#        bash bench-bundle/run.sh --start-llama   (only start llama.cpp's build in the background:
#        other work can run first; a later run.sh in the same call waits for that build)
#   TAGs: see `bin/xtask bench-rows` (0.5b-q8_0, 0.5b-q4_k_m, 8b-q4_0, 8b-q4_k_m, 8b-q8_0, 8b-f16).
# Synthesizes each model into $TMPDIR (default /tmp), runs `rocmforge bench` for its rows,
# deletes the model, and prints the table (t/s, llama.cpp's number, ratio, % of the decode
# floor). Results: bench-results.{json,md} and bench.log in $OUT (else bench-bundle/results).
# With llama-src.tgz in the bundle (`cargo xtask bench --gpu --llama`) and nvcc here, llama.cpp is
# built in the background on all cores but four (ROCmForge's runs are pinned to those four) and
# `llama-bench` runs on each file with the same -p/-n/-d as its ROCmForge rows (a file waits,
# kept, until the build is done, unless the disk runs short): the table's ratios then come from
# the same call; rows without one fall back to the recorded reference, marked as such.
# Environment: RF_BENCH_BUDGET (seconds for everything, default 540: rows that would start
# later are reported as skipped), RF_BENCH_REPS (default 3), RF_BENCH_DEVICE (default gpu).
# The llama.cpp build goes to $TMPDIR/rocmforge-llama and is reused when a finished build is
# there (a second call on a still-warm machine starts measuring at once).
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

start_only=0
[ "${1:-}" = --start-llama ] && { start_only=1; shift; }
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
# llama.cpp for the same-call ratios.
llama_dir="${TMPDIR:-/tmp}/rocmforge-llama"
llama_bin="$llama_dir/llama.cpp/build/bin/llama-bench"
pin=()
llama_state=none
ncpu=$(nproc 2>/dev/null || echo 1)
[ "$ncpu" -ge 8 ] && pin=(taskset -c "$(( ncpu - 4 ))-$(( ncpu - 1 ))")
if [ -f "$llama_dir/done" ] && [ "$(cat "$llama_dir/done")" = 0 ] && [ -x "$llama_bin" ]; then
  llama_state=ready
  say "llama.cpp: reusing the build in $llama_dir"
elif [ ! -f "$llama_dir/done" ] && [ -f "$llama_dir/pid" ] && kill -0 "$(cat "$llama_dir/pid")" 2>/dev/null; then
  # Started earlier in this call (`run.sh --start-llama`), still building: wait for it.
  llama_state=building
  say "llama.cpp: a build started earlier is running (pid $(cat "$llama_dir/pid")); ROCmForge pinned to ${pin[*]:2}"
elif [ -f "$here/llama-src.tgz" ] && command -v nvcc >/dev/null 2>&1 && [ "$ncpu" -ge 8 ]; then
  cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')"
  rm -rf "$llama_dir" && mkdir -p "$llama_dir" && tar xzf "$here/llama-src.tgz" -C "$llama_dir"
  build_cores="0-$(( ncpu - 5 ))"
  (
    cd "$llama_dir/llama.cpp" &&
      taskset -c "$build_cores" cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${cap:-90}" \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
        -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release >"$llama_dir/cmake.log" 2>&1 &&
      taskset -c "$build_cores" cmake --build build -j "$(( ncpu - 4 ))" --target llama-bench llama-batched-bench llama-perplexity \
        >"$llama_dir/build.log" 2>&1
    echo $? >"$llama_dir/done"
  ) &
  echo $! >"$llama_dir/pid"
  llama_state=building
  say "llama.cpp: building on cores $build_cores; ROCmForge pinned to ${pin[*]:2}"
fi
if [ "$start_only" = 1 ]; then
  say "llama.cpp: --start-llama: state $llama_state; the next run.sh in this call waits for it"
  exit 0
fi
t0=$(date +%s)
bash "$here/build-cubins.sh" "$work/nvcc" 2>&1 | tee -a "$log"
say "cubins: $(( $(date +%s) - t0 )) s"
if [ "$device" != cpu ] && ! ls "$here"/kernels/*/*/* >/dev/null 2>&1; then
  say "no kernel images: this bundle carries kernel sources only and this host has no nvcc (or no NVIDIA GPU); build the bundle with ROCMFORGE_PLATFORM=<targets> for prebuilt images"
  exit 1
fi

llama_ready() { [ -f "$llama_dir/done" ] && [ "$(cat "$llama_dir/done")" = 0 ] && [ -x "$llama_bin" ]; }
# llama-bench on a model's file for each of its rows (args from rows.tsv), then the file goes;
# batched rows (streams > 1) take llama-batched-bench (-npp 128 -ntg 128, S_TG).
llama_rows() {
  local tag="$1" t sh ty key np ng depth streams
  while IFS=$'\t' read -r t sh ty key np ng depth streams; do
    [ "$t" = "$tag" ] || continue
    local left=$(( budget - $(elapsed) ))
    [ "$left" -le 5 ] && { say "--- llama.cpp $tag $key: skipped (time budget)"; continue; }
    local stem="$work/$tag-$key" rc
    if [ "${streams:-1}" -gt 1 ]; then
      timeout "$left" ${pin[@]+"${pin[@]}"} "${llama_bin%-bench}-batched-bench" -m "$work/$tag.gguf" \
        -c $(( streams * 300 )) -npp 128 -ntg "$ng" -npl "$streams" -fa on -ngl 99 \
        --output-format jsonl >"$stem.llama.jsonl" 2>"$stem.llama.err"
      rc=$?
      grep '"speed_tg"' "$stem.llama.err" >>"$stem.llama.jsonl"  # its LOG may go to stderr
      say "--- llama.cpp $tag $key: exit $rc ($(grep -o '"speed_tg": [0-9.]*' "$stem.llama.jsonl" | head -n1))"
      continue
    fi
    local la=(-m "$work/$tag.gguf" -p "$np" -n "$ng" -fa 1 -ngl 99 -r "$reps" -o json)
    [ "$depth" -gt 0 ] && la+=(-d "$depth")
    timeout "$left" ${pin[@]+"${pin[@]}"} "$llama_bin" "${la[@]}" >"$stem.llama.json" 2>"$stem.llama.err"
    rc=$?
    say "--- llama.cpp $tag $key: exit $rc ($(grep -o '"avg_ts": [0-9.]*' "$stem.llama.json" | tr '\n' ' '))"
  done <"$work/rows.tsv"
}
pending=()
# A model's ROCmForge rows are done: measure llama.cpp on it now, or keep it for later.
finish_model() {
  local tag="$1"
  if [ "$llama_state" = building ] && llama_ready; then llama_state=ready; fi
  if [ "$llama_state" = ready ]; then
    llama_rows "$tag"
  elif [ "$llama_state" = building ] && [ "$(df -Pk "$work" | awk 'NR==2 {print $4}')" -gt 20000000 ]; then
    pending+=("$tag")
    return
  fi
  rm -f "$work/$tag.gguf"
}

"$here/bin/xtask" bench-rows >"$work/rows.tsv"
prev=""
while IFS=$'\t' read -r tag shape type key np ng depth streams; do
  selected "$tag" || continue
  model="$work/$tag.gguf"
  if [ "$tag" != "$prev" ]; then
    [ -n "$prev" ] && finish_model "$prev"
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
  [ "${streams:-1}" -gt 1 ] && args=(bench --model "$model" -p "$np" -n "$ng" -r 1 --depth "$depth" \
    --concurrency "$streams" --device "$device" --json --quiet)
  t0=$(date +%s)
  timeout "$left" ${pin[@]+"${pin[@]}"} "$here/bin/rocmforge" "${args[@]}" >"$stem.json" 2>"$stem.err"
  echo $? >"$stem.status"
  say "--- $tag $key: exit $(cat "$stem.status") in $(( $(date +%s) - t0 )) s: $(tail -c 600 "$stem.json")"
  tail -n 5 "$stem.err" | tee -a "$log"
done <"$work/rows.tsv"
[ -n "$prev" ] && finish_model "$prev"
if [ "${#pending[@]}" -gt 0 ]; then
  while [ "$llama_state" = building ] && ! [ -f "$llama_dir/done" ] && [ "$(elapsed)" -lt "$budget" ]; do sleep 5; done
  if llama_ready; then llama_state=ready; else say "llama.cpp: build $( [ -f "$llama_dir/done" ] && echo "failed (see $llama_dir/build.log)" || echo "unfinished") at $(elapsed) s"; tail -n 5 "$llama_dir/build.log" 2>/dev/null | tee -a "$log"; fi
  for tag in "${pending[@]}"; do
    [ "$llama_state" = ready ] && llama_rows "$tag"
    rm -f "$work/$tag.gguf"
  done
fi

machine="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)"
"$here/bin/xtask" bench-report --results "$work" --out "$out" --machine "${machine:-$(uname -n)}, $(date -u +%F)" | tee -a "$log"
say "total: $(elapsed) s"
