#!/usr/bin/env bash
# The GPU check of issue #13, in one call on a GPU machine that builds and downloads nothing
# (the lent H200: driver 580, NVRTC 13.0, PyTorch with CUDA). Prepare here with
# `scripts/gpu_pack.sh` (the cuda build, fixtures and CIFAR-10 into gpu/), then on the machine,
# from the repository root:
#
#   bash scripts/gpu_check.sh                        # device cuda, the sizes of the issue
#   bash scripts/gpu_check.sh --device wgpu          # a Vulkan/Metal/DX12 GPU (pack --wgpu)
#   bash scripts/gpu_check.sh --device wgpu --tiny   # lavapipe in CI: tiny sizes (pack --wgpu)
#   bash scripts/gpu_check.sh --cpu-dry-run          # device flex, tiny sizes (pack --cpu)
#
# The half precision column is bf16 on cuda and flex, f16 on wgpu (WGSL has no bfloat16).
# Steps, each under its own time limit and all under one deadline (7 min 50 s: a step that
# would start past it is skipped and reported), so the whole stays within 8 minutes:
#   1. the parity runner on the device (every golden fixture, f32);
#   2. the SwAV step in img/s: ResNet-18 width 64, 2x32, batch 512; ResNet-50, 2x224 + 6x96,
#      batch 64; protoclust in f32 and bf16 (train.precision), with its host reads per step,
#      beside bench/reference/swav_bench.py in f32 and bf16 autocast on the same device;
#   3. a short full-width SwAV training on CIFAR-10 data_batch_1, kNN on 2,000 images of
#      data_batch_2;
#   4. two steps of every other method (ODC, DeepCluster, JigClu, SlotCon) in f32 and bf16.
# Two files go to $OUT (the device tool's output folder) or ./gpu_check_out: summary.md (the
# tables, also printed) and steps.log (every step's output). Exit status: non-zero if a step
# failed.
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
pc_device=cuda
while [ $# -gt 0 ]; do
  case $1 in
    --cpu-dry-run) dry=1; pc_device=flex ;;
    --tiny) dry=1 ;;
    --device) pc_device=${2:?--device needs cuda, wgpu, vulkan, metal or flex}; shift ;;
    *) echo "error: unknown argument $1 (--device NAME, --tiny, --cpu-dry-run)" >&2; exit 2 ;;
  esac
  shift
done
case $pc_device in
  cuda) half=bf16; device=cuda ;;
  flex) half=bf16; device=cpu ;;
  wgpu | vulkan | metal) half=f16; device=none ;; # PyTorch has no wgpu device: its columns are skipped
  *) echo "error: --device $pc_device: expected cuda, wgpu, vulkan, metal or flex" >&2; exit 2 ;;
esac
export PROTOCLUST_DEVICE=$pc_device
out=${OUT:-gpu_check_out}
mkdir -p "$out"
summary=$out/summary.md
: >"$summary"
: >"$out/steps.log"
logs=$(mktemp -d /tmp/gpu_check_logs.XXXXXX)
failed=0
say() { printf '%s\n' "$*" | tee -a "$summary"; }
deadline=$((SECONDS + 470))
step() { # name, seconds, command...: runs with a time limit (cut to the deadline); its output in $logs/NAME and steps.log
  local name=$1 limit=$2
  shift 2
  local left=$((deadline - SECONDS))
  if [ $left -lt 15 ]; then
    failed=1
    say "- step $name SKIPPED: the 8 minutes are spent"
    return 1
  fi
  [ $limit -gt $left ] && limit=$left
  local t0=$SECONDS
  timeout "$limit" "$@" >"$logs/$name" 2>&1
  local rc=$?
  { echo "=== $name (exit $rc, $((SECONDS - t0)) s): $*"; cat "$logs/$name"; } >>"$out/steps.log"
  [ $rc = 0 ] || { failed=1; say "- step $name FAILED (exit $rc$([ $rc = 124 ] && echo ", over its ${limit} s"); see steps.log)"; }
  return $rc
}

# The packed binaries and data.
[ -f gpu/protoclust.xz ] || { echo "error: gpu/protoclust.xz missing: run scripts/gpu_pack.sh$([ $dry = 1 ] && echo " --cpu") first and carry gpu" >&2; exit 1; }
bin=$(mktemp -d /tmp/gpu_check.XXXXXX)
xz -dc gpu/protoclust.xz >"$bin/protoclust" && xz -dc gpu/parity.xz >"$bin/parity" && chmod +x "$bin"/*
tar -C "$bin" -xJf gpu/fixtures.tar.xz
train_data=gpu/data/data_batch_1.bin
test_data=gpu/data/test_2000.bin
knn_train=$train_data
pc=$bin/protoclust

if [ $dry = 1 ]; then
  # Tiny sizes: same settings' shapes scaled down.
  r18=(--set swav.backbone.width=8 --set loader.batch_size=64)
  r18_py=(--depth 18 --width 8 --batch 64 --crops 2x32 --prototypes 512)
  r50=(--set swav.backbone.width=8 --set loader.batch_size=4 --set swav.prototypes=32)
  r50_py=(--depth 50 --width 8 --batch 4 --crops 2x224,6x96 --prototypes 32)
  train=(--set swav.backbone.width=8 --set data.limit=256 --set train.epochs=1 --set swav.freeze_prototypes_iterations=1)
  knn_train=gpu/data/train_2000.bin
  steps=2
else
  r18=(--set swav.backbone.width=64 --set loader.batch_size=512)
  r18_py=(--depth 18 --width 64 --batch 512 --crops 2x32 --prototypes 512)
  r50=(--set loader.batch_size=64)
  r50_py=(--depth 50 --width 64 --batch 64 --crops 2x224,6x96 --prototypes 3000)
  train=(--set swav.backbone.width=64 --set train.epochs=5)
  steps=10
fi
cifar=(--set data.kind=cifar10 --set "data.paths=[\"$train_data\"]")
# 224-px crops need images larger than CIFAR's: the built-in synthetic scenes at 256 px.
scenes=(--set data.kind=synthetic --set data.len=128 --set data.size=256)

say "# GPU check ($(cat gpu/BUILD | tr '\n' ' '); $(date -u +%Y-%m-%dT%H:%MZ))"
say ""
if [ "$pc_device" = cuda ]; then
  say "- machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
else
  say "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores (device $pc_device$([ $dry = 1 ] && echo ", tiny sizes"))"
fi
if [ "$device" != none ] && python3 -c 'import torch, torchvision' 2>/dev/null; then
  torch=1
  say "- PyTorch: $(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>&1)"
else
  torch=0 # CI: the reference columns are skipped, not failed
  say "- PyTorch: $([ "$device" = none ] && echo "no $pc_device device" || echo "not installed"); its columns are skipped"
fi

# 1. Parity on the device.
say ""
say "## 1. Golden fixtures on $PROTOCLUST_DEVICE (f32)"
step parity 150 env PROTOCLUST_FIXTURES="$bin/fixtures" "$bin/parity"
say "- $(grep -E '^[0-9]+ passed' "$logs/parity" | tail -1)"

# 2. The SwAV step.
say ""
say "## 2. SwAV training step, img/s (device $pc_device)"
say ""
say "| setting | protoclust f32 | protoclust $half | PyTorch f32 | PyTorch bf16 autocast | protoclust host reads per step |"
say "|---|---|---|---|---|---|"
ips() { # the img/s column of a bench table row, or why there is none
  if [ -f "$logs/$2" ]; then grep -E "$1" "$logs/$2" | head -1 | awk -F'|' '{gsub(/ /, "", $3); print $3}'; else echo "–"; fi
}
for setting in r18 r50; do
  if [ $setting = r18 ]; then
    cfg=configs/swav_cifar10.toml; data=("${cifar[@]}"); pc_args=("${r18[@]}"); py_args=("${r18_py[@]}"); label="ResNet-18 width ${r18[1]#*=}, 2x32, batch ${r18[3]#*=}"
  else
    cfg=configs/swav_imagenet.toml; data=("${scenes[@]}"); pc_args=("${r50[@]}"); py_args=("${r50_py[@]}"); label="ResNet-50 width ${py_args[3]}, 2x224+6x96, batch ${py_args[5]}"
  fi
  step "bench_${setting}_pc" 120 "$pc" bench "$cfg" "${data[@]}" "${pc_args[@]}" --steps "$steps" --pipeline-batches 1
  step "bench_${setting}_pc_half" 120 "$pc" bench "$cfg" "${data[@]}" "${pc_args[@]}" --set train.precision=$half \
    --steps "$steps" --pipeline-batches 1
  if [ $torch = 1 ]; then
    step "bench_${setting}_py" 120 python3 bench/reference/swav_bench.py "${py_args[@]}" --device "$device" \
      --steps "$steps" --no-pipeline --threads "$(nproc)"
    step "bench_${setting}_py_amp" 120 python3 bench/reference/swav_bench.py "${py_args[@]}" --device "$device" \
      --steps "$steps" --no-pipeline --threads "$(nproc)" --amp
  fi
  reads=$([ -f "$logs/bench_${setting}_pc" ] && grep -E '^\| phases' "$logs/bench_${setting}_pc" | awk -F'|' '{gsub(/ /, "", $7); print $7}')
  say "| $label | $(ips 'swav training step' "bench_${setting}_pc") | $(ips 'swav training step' "bench_${setting}_pc_half") | $(ips 'training step' "bench_${setting}_py") | $(ips 'training step' "bench_${setting}_py_amp") | ${reads:-–} |"
done

# 3. A short SwAV training at full width, kNN on held-out images.
say ""
say "## 3. SwAV on CIFAR-10 data_batch_1, kNN on 2,000 images of data_batch_2 (train side: $(basename "$knn_train"))"
run=$logs/train_run
t0=$SECONDS
if step train 240 "$pc" train configs/swav_cifar10.toml "${cifar[@]}" "${train[@]}" \
  --set monitor.every_epochs=0 --set "train.run_dir=\"$run\"" --quiet; then
  wall=$((SECONDS - t0))
  step knn 90 "$pc" eval knn "$run/checkpoints/last.safetensors" --train "cifar10:$knn_train" --test "cifar10:$test_data"
  say "- config: configs/swav_cifar10.toml ${train[*]}; training wall time ${wall} s"
  grep -E '^kNN' "$logs/knn" | while read -r line; do say "- $line"; done
fi

# 4. Every other method on the device, f32 and bf16: two steps each on the built-in synthetic
# images (ODC, DeepCluster and DeepCluster-v2 start with their whole-data-set pass and k-means).
say ""
say "## 4. ODC, DeepCluster, DeepCluster-v2, JigClu and SlotCon: 2 steps each on the device, f32 and $half"
say ""
say "| method | f32, wall s of 2 steps | $half, wall s of 2 steps |"
say "|---|---|---|"
tiny=(--set data.kind=synthetic --set data.len=128 --set data.size=64 --set loader.batch_size=32
  --set train.epochs=1 --set train.stop_after_iterations=2 --set monitor.every_epochs=0)
for m in odc deepcluster deepclusterv2 jigclu slotcon; do
  case $m in
    odc) cfg=(configs/odc_cifar10.toml --set odc.clusters=8 --set odc.min_cluster=4) ;;
    deepcluster) cfg=(configs/deepcluster_cifar10.toml --set deepcluster.clusters=8) ;;
    deepclusterv2) cfg=(configs/deepclusterv2_cifar10.toml --set 'deepclusterv2.prototypes=[8,8,8]') ;;
    jigclu) cfg=(configs/jigclu_cifar10.toml) ;;
    slotcon) cfg=(configs/slotcon_camvid.toml)
      # Its width-16 dense heads take over a minute for two steps on lavapipe.
      [ $dry = 1 ] && cfg+=(--set slotcon.backbone.width=8 --set slotcon.views.size=32) ;;
  esac
  row="| $m |"
  for p in f32 $half; do
    if step "method_${m}_$p" 60 "$pc" train "${cfg[@]}" "${tiny[@]}" --set train.precision=$p \
      --set "train.run_dir=\"$logs/run_${m}_$p\"" --quiet; then
      row="$row $(grep -Eo 'in [0-9.]+s' "$logs/method_${m}_$p" | tail -1 | sed 's/in //') |"
    else
      row="$row failed |"
    fi
  done
  say "$row"
done
rm -rf "$bin" "$logs"
say ""
say "Every step's output: steps.log"
exit $failed
