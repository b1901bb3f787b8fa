#!/usr/bin/env bash
# Builds the `cuda` feature with nothing fetched beyond the package registries (issue #13),
# then checks the binary on this machine: the flex device runs when asked, and without an
# NVIDIA driver PROTOCLUST_DEVICE=cuda is one `error:` line (no panic). About 19 minutes of
# build on 2 cores; not part of CI for that reason.
#
# How it builds offline: cubecl-cuda compiles kernels through CUDA C++ and NVRTC (its `cpp`
# feature, enabled by protoclust's `cuda` feature), and the workspace's [patch.crates-io]
# replaces cubecl-llvm (whose build script downloads an LLVM bundle) by offline/cubecl-llvm.
# CUDARC_CUDA_VERSION picks the CUDA API cudarc binds (13000 = CUDA 13.0, as the lent H200
# machines have); NVRTC and the driver are loaded at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
cargo build --release --features cuda
bin=target/release/protoclust
echo "built: $(du -h "$bin" | cut -f1); linked: $(ldd "$bin" | awk '{print $1}' | tr '\n' ' ')"
PROTOCLUST_DEVICE=flex "$bin" bench configs/swav_cifar10.toml --steps 1 --pipeline-batches 1 \
  | grep "training step"
if ! ls /dev/nvidia0 >/dev/null 2>&1; then
  set +e
  out=$(PROTOCLUST_DEVICE=cuda "$bin" bench configs/swav_cifar10.toml --steps 1 2>&1)
  rc=$?
  set -e
  lines=$(printf '%s\n' "$out" | grep -c .)
  echo "without a GPU, PROTOCLUST_DEVICE=cuda: exit $rc, $lines line(s): $out"
  [ "$rc" != 0 ] && [ "$lines" = 1 ] && [[ "$out" == error:* ]] || { echo "FAILED: expected one error line"; exit 1; }
fi
# Leave the default (flex) binary in place for the rest of the tooling.
cargo build --release
echo "ok"
