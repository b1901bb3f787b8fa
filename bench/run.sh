#!/usr/bin/env bash
# Side by side in one run: protoclust's bench, then the PyTorch reference on the same settings.
# Usage: bash bench/run.sh [--quick]   (from the repository root; PyTorch from pip for the
# reference rows). Prints the CPU, then per setting: the SwAV step, protoclust (its kernels) and
# PyTorch eager alternating for $rounds rounds (a shared machine drifts: compare the medians),
# protoclust with burn-flex's own ops, the per-op rows of both and the peak RSS. The alternating
# block also runs protoclust with glibc's default heap policy (PROTOCLUST_MALLOC=default), the
# measurement behind src/allocator.rs. ROUNDS=N sets the number of alternating rounds.
set -euo pipefail
steps=5
rounds=${ROUNDS:-3}
[ "${1:-}" = "--quick" ] && { steps=2; rounds=1; }
cargo build --release -q
bin=./target/release/protoclust
# The CPU and the vector features the kernels and PyTorch's oneDNN dispatch on, printed before
# every table (numbers from different CPUs are not comparable).
cpu_line() {
  local model family features
  model=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  family=$(awk -F': ' '/^cpu family/ {f=$2} /^model\t/ {m=$2} END {print "family " f " model " m}' /proc/cpuinfo)
  features=$(grep -m1 "^flags" /proc/cpuinfo | tr ' ' '\n' \
    | grep -E '^(avx2|fma|avx512f|avx512_bf16|avx512_fp16|avx512_vnni|amx_bf16|amx_tile|amx_int8)$' \
    | tr '\n' ' ')
  echo "CPU: $model ($family), $(nproc) threads; features: ${features:-none of avx2/avx512/amx}"
}
cpu_line
torch=0
python3 -c "import torch, torchvision" 2>/dev/null && torch=1
[ $torch = 1 ] || echo "(PyTorch not installed: pip install torch torchvision to add the reference rows)"
for wb in "8 128" "16 256" "64 64"; do
  set -- $wb
  echo
  echo "## SwAV 2x32, width $1, batch $2"
  cpu_line
  args=(configs/swav_cifar10.toml --set swav.backbone.width="$1" --set loader.batch_size="$2" --steps "$steps" --pipeline-batches 2)
  "$bin" bench "${args[@]}" --ops
  echo "(burn-flex's own ops:)"
  PROTOCLUST_KERNELS=burn "$bin" bench "${args[@]}" | grep "training step"
  if [ $torch = 1 ]; then
    python3 bench/reference/swav_bench.py --width "$1" --batch "$2" --crops 2x32 --prototypes 512 \
      --threads "$(nproc)" --steps "$steps"
    python3 bench/reference/ops_bench.py --width "$1" --images $(( 2 * $2 )) --size 32 --threads "$(nproc)"
    echo "(alternating, $rounds rounds:)"
    for _ in $(seq "$rounds"); do
      "$bin" bench "${args[@]}" | grep "training step"
      PROTOCLUST_MALLOC=default "$bin" bench "${args[@]}" | grep "training step" | sed 's/(protoclust)/(protoclust, glibc default heap)/'
      python3 bench/reference/swav_bench.py --width "$1" --batch "$2" --crops 2x32 --prototypes 512 \
        --threads "$(nproc)" --steps "$steps" --pipeline-images 256 | grep "training step"
    done
  fi
done
echo
echo "## JigClu and SlotCon steps (protoclust kernels, then burn-flex's ops)"
cpu_line
for cfg in configs/jigclu_cifar10.toml configs/slotcon_camvid.toml; do
  "$bin" bench "$cfg" --steps "$steps" --pipeline-batches 2 | grep "training step"
  PROTOCLUST_KERNELS=burn "$bin" bench "$cfg" --steps "$steps" --pipeline-batches 2 | grep "training step"
done
echo
echo "## k-means (issue #3's row)"
cpu_line
"$bin" bench --kmeans 50000x256x1000
[ $torch = 1 ] && python3 bench/reference/kmeans_bench.py --shape 50000x256x1000 || true
