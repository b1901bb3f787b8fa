#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs on a GPU machine that can build and download nothing
# (issue #13): the protoclust binary and the parity runner, built here with `--features cuda`
# (CUDARC_CUDA_VERSION=13000), stripped and xz-compressed, plus the golden fixtures and the
# CIFAR-10 batches, into gpu/ (ignored by git). Name `gpu` in the device tool's `carry`; the
# working tree and gpu/ together stay under 64 MiB (about 50 MiB).
#
#   scripts/gpu_pack.sh          the cuda build (about 19 minutes of build on 2 cores)
#   scripts/gpu_pack.sh --cpu    the default build, for `scripts/gpu_check.sh --cpu-dry-run`
#   scripts/gpu_pack.sh --wgpu   `-p protoclust --features wgpu` (as CI's lavapipe pass builds),
#                                for `scripts/gpu_check.sh --device wgpu`
set -euo pipefail
cd "$(dirname "$0")/.."
features=(--features cuda)
case "${1:-}" in
  # The whole workspace's feature set, as the README's test command builds: CI's dry run then
  # reuses that build instead of compiling everything a second time.
  --cpu) features=(--workspace) ;;
  --wgpu) features=(-p protoclust --features wgpu) ;;
  "") export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000} ;;
  *) echo "error: unknown argument $1 (--cpu, --wgpu or nothing for cuda)" >&2; exit 2 ;;
esac
data=${PROTOCLUST_DATA:-../shared/data}
fixtures=${PROTOCLUST_FIXTURES:-../shared/fixtures}
for f in "$data/cifar10/data_batch_1.bin" "$data/cifar10/data_batch_2.bin" "$fixtures"; do
  [ -e "$f" ] || { echo "error: $f not found (the ../shared folder beside the checkout)" >&2; exit 1; }
done
# One build gives both: the parity runner's test binary and the protoclust binary cargo builds
# for the integration tests.
cargo test --release "${features[@]}" --test parity --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json, sys
exe = {}
for m in map(json.loads, sys.stdin):
    if m.get("executable"):
        exe[(m["target"]["name"], m["target"]["kind"][0])] = m["executable"]
print(exe[("protoclust", "bin")]); print(exe[("parity", "test")])' >gpu.paths
{ read -r binary; read -r parity; } <gpu.paths
rm -f gpu.paths
rm -rf gpu.tmp && mkdir -p gpu.tmp/data
strip -o gpu.tmp/protoclust "$binary"
strip -o gpu.tmp/parity "$parity"
xz -T0 -6 gpu.tmp/protoclust gpu.tmp/parity
# The shared fixtures and the project's own (crates/protoclust/tests/fixtures), in one folder.
mkdir -p gpu.tmp/stage/fixtures
cp -r "$fixtures"/. gpu.tmp/stage/fixtures/
cp -r crates/protoclust/tests/fixtures/. gpu.tmp/stage/fixtures/
tar -C gpu.tmp/stage -cJf gpu.tmp/fixtures.tar.xz fixtures
rm -rf gpu.tmp/stage
cp "$data/cifar10/data_batch_1.bin" gpu.tmp/data/
# kNN's test side: the first 2,000 records of data_batch_2 (3,073 bytes each).
head -c $((2000 * 3073)) "$data/cifar10/data_batch_2.bin" > gpu.tmp/data/test_2000.bin
# The tiny check's kNN train side: the first 2,000 records of data_batch_1 (lavapipe sorts each
# test row's similarities, which takes over 90 s against all 10,000).
head -c $((2000 * 3073)) "$data/cifar10/data_batch_1.bin" > gpu.tmp/data/train_2000.bin
echo "${features[*]:-default}" > gpu.tmp/BUILD
git rev-parse --short HEAD >> gpu.tmp/BUILD
rm -rf gpu && mv gpu.tmp gpu
if [ "${features[*]}" != "--workspace" ]; then
  # Leave the default (flex) binary in place for the rest of the tooling, built as the README's
  # test command builds it (`--workspace`: the same features, so CI's build is reused).
  cargo test --release --workspace --test parity --no-run >/dev/null 2>&1
fi
du -sh gpu; ls -la gpu gpu/data
