#!/usr/bin/env bash
# Side by side in one run: protoclust's bench, then the PyTorch reference on the same settings.
# Usage: bash bench/run.sh [--quick]   (from the repository root; PyTorch from pip for the
# reference rows). Prints the CPU, then per setting: the SwAV step, protoclust (its kernels) and
# PyTorch eager alternating for $rounds rounds (a shared machine drifts: compare the medians),
# protoclust with burn-flex's own ops, the per-op rows of both and the peak RSS. The alternating
# block also runs protoclust with glibc's default heap policy (PROTOCLUST_MALLOC=default), the
# measurement behind src/allocator.rs. ROUNDS=N sets the number of alternating rounds.
# Then the full-width rows (issue #38): ResNet-50 pooled-feature inference at 224 px (the
# folded network, burn's modules, PyTorch NCHW and channels-last; in bf16 beside PyTorch's
# bf16 autocast where the CPU has avx512_bf16), `extract` of $JPEGS JPEGs
# end to end against a torchvision DataLoader (2 workers) plus PyTorch, and the SwAV ResNet-50
# multi-crop step (2x224+6x96, batch 16); each with the peak RSS. FULL=0 skips them.
# Where the CPU has avx512_bf16, every SwAV step row also runs in bf16 (train.precision) beside
# PyTorch's bf16 autocast (issue #40).
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
bf16=0
grep -qw avx512_bf16 /proc/cpuinfo && bf16=1
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
      if [ $bf16 = 1 ]; then
        "$bin" bench "${args[@]}" --set train.precision=bf16 | grep "training step" \
          | sed 's/(protoclust)/(protoclust, bf16)/'
        python3 bench/reference/swav_bench.py --width "$1" --batch "$2" --crops 2x32 --prototypes 512 \
          --threads "$(nproc)" --steps "$steps" --no-pipeline --amp | grep "training step"
      fi
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
if [ "${FULL:-1}" = 1 ]; then
  echo
  echo "## ResNet-50, 224 px: pooled-feature inference, batch 32 (img/s, peak RSS; alternating, $rounds rounds)"
  cpu_line
  echo "| what | images/s | peak RSS |"
  echo "|---|---|---|"
  # bf16 (issue #40) where the CPU has AVX512-BF16: protoclust's bf16 products beside PyTorch's
  # bf16 autocast.
  for _ in $(seq "$rounds"); do
    "$bin" bench --infer --depth 50 --width 64 --size 224 --batch 32 --path folded
    "$bin" bench --infer --depth 50 --width 64 --size 224 --batch 32 --path modules
    [ $torch = 1 ] && python3 bench/reference/infer_bench.py --depth 50 --width 64 --size 224 \
      --batch 32 --threads "$(nproc)"
    if [ $bf16 = 1 ]; then
      "$bin" bench --infer --depth 50 --width 64 --size 224 --batch 32 --path folded --precision bf16
      [ $torch = 1 ] && python3 bench/reference/infer_bench.py --bf16 --depth 50 --width 64 \
        --size 224 --batch 32 --threads "$(nproc)"
    fi
  done
  data=../shared/data
  if [ $torch = 1 ] && [ -d "$data" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    count=${JPEGS:-2000}
    python3 bench/make_jpegs.py "$work/jpegs" --count "$count" --data "$data" >/dev/null
    # A released-style file: torchvision's resnet50() state dict (random weights).
    python3 -c "import torch, torchvision; torch.manual_seed(0); torch.save(torchvision.models.resnet50().state_dict(), '$work/rn50.pth')"
    echo
    echo "## extract end to end: $count JPEGs of 500x375 px, ResNet-50 (Resize 256, CenterCrop 224)"
    cpu_line
    echo "| what | images/s | peak RSS |"
    echo "|---|---|---|"
    for _ in $(seq "$rounds"); do
      start=$(date +%s.%N)
      /usr/bin/time -f "%M" -o "$work/rss" "$bin" extract "$work/rn50.pth" --data "folder:$work/jpegs" \
        --out "$work/features.safetensors" >/dev/null 2>&1
      end=$(date +%s.%N)
      echo "| protoclust extract (model load, decode, network, write) | $(echo "$count / ($end - $start)" | bc -l | xargs printf %.1f) | $(( $(cat "$work/rss") / 1024 )) MB |"
      for layout in nchw channels-last; do
        python3 bench/reference/infer_bench.py --folder "$work/jpegs" --batch 32 --threads "$(nproc)" \
          --workers 2 --layout "$layout" | grep "|"
      done
      if [ $bf16 = 1 ]; then
        start=$(date +%s.%N)
        /usr/bin/time -f "%M" -o "$work/rss" "$bin" extract "$work/rn50.pth" --precision bf16 \
          --data "folder:$work/jpegs" --out "$work/features.safetensors" >/dev/null 2>&1
        end=$(date +%s.%N)
        echo "| protoclust extract --precision bf16 | $(echo "$count / ($end - $start)" | bc -l | xargs printf %.1f) | $(( $(cat "$work/rss") / 1024 )) MB |"
        python3 bench/reference/infer_bench.py --folder "$work/jpegs" --batch 32 --threads "$(nproc)" \
          --workers 2 --layout channels-last --bf16 | grep "|"
      fi
    done
  else
    echo "(the end-to-end extract rows need PyTorch and $data)"
  fi
  echo
  echo "## SwAV step, ResNet-50, 2x224+6x96 crops, batch 16"
  cpu_line
  args=(configs/swav_imagenet.toml --set data.kind=synthetic --set 'data.paths=[]' --set data.size=256 --set data.len=256 --set loader.batch_size=16 --steps 3 --pipeline-batches 1)
  for _ in $(seq "$rounds"); do
    "$bin" bench "${args[@]}" | grep -E "training step|peak RSS"
    [ $torch = 1 ] && python3 bench/reference/swav_bench.py --depth 50 --width 64 --batch 16 \
      --crops 2x224,6x96 --prototypes 3000 --threads "$(nproc)" --steps 3 --no-pipeline | grep "training step"
    if [ $bf16 = 1 ]; then
      "$bin" bench "${args[@]}" --set train.precision=bf16 | grep -E "training step|peak RSS" \
        | sed 's/(protoclust)/(protoclust, bf16)/'
      [ $torch = 1 ] && python3 bench/reference/swav_bench.py --depth 50 --width 64 --batch 16 \
        --crops 2x224,6x96 --prototypes 3000 --threads "$(nproc)" --steps 3 --no-pipeline --amp \
        | grep "training step"
    fi
  done
fi
echo
echo "## k-means (issue #3's row)"
cpu_line
"$bin" bench --kmeans 50000x256x1000
[ $torch = 1 ] && python3 bench/reference/kmeans_bench.py --shape 50000x256x1000 || true
