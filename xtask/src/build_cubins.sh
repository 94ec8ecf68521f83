#!/usr/bin/env bash
# Shared by gpu-bundle/ and bench-bundle/ (written there by xtask): on an NVIDIA host with
# nvcc, builds cubins for this GPU from kernels-src/ into kernels/nvidia/sm_XY/ (the bundled
# PTX is the fallback). Usage: bash build-cubins.sh LOG-DIR
here="$(cd "$(dirname "$0")" && pwd)"
logs="${1:-$here}"
mkdir -p "$logs"
command -v nvidia-smi >/dev/null 2>&1 || exit 0
cap="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')"
nvcc_bin="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
[ -n "$cap" ] && [ -x "$nvcc_bin" ] || exit 0
mkdir -p "$here/kernels/nvidia/sm_$cap"
pids=()
for src in "$here"/kernels-src/*.hip; do
  name="$(basename "$src" .hip)"
  # Built earlier in this call from the same sources: keep it.
  cubin="$here/kernels/nvidia/sm_$cap/$name.cubin"
  [ "$cubin" -nt "$src" ] && [ -z "$(find "$here/kernels-src/include" -newer "$cubin" -print -quit)" ] && continue
  (
    if ! "$nvcc_bin" -cubin -arch="sm_$cap" -O3 -std=c++17 -x cu -I "$here/kernels-src/include" \
         -o "$here/kernels/nvidia/sm_$cap/$name.cubin" "$src" 2>"$logs/nvcc-$name.log"; then
      echo "nvcc failed for $name (see $logs/nvcc-$name.log); using PTX"
      cat "$logs/nvcc-$name.log"
    fi
  ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
