#!/usr/bin/env bash
# Side-by-side throughput: protoclust's bench, then the PyTorch reference on the same settings.
# Usage: bash bench/run.sh [config]   (from the repository root; PyTorch from pip for the second part)
set -euo pipefail
config=${1:-configs/swav_cifar10.toml}
cargo build --release -q
./target/release/protoclust bench "$config" --steps 5 --pipeline-batches 8
if python3 -c "import torch, torchvision" 2>/dev/null; then
  python3 bench/reference/swav_bench.py --width 8 --batch 128 --crops 2x32 --prototypes 512 --threads "$(nproc)"
else
  echo "(PyTorch not installed: pip install torch torchvision to add the reference rows)"
fi
