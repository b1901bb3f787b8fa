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
# JigClu: one backbone pass per image over montages (issue #4's row; compare with SwAV's above).
./target/release/protoclust bench configs/jigclu_cifar10.toml --steps 5 --pipeline-batches 8
# k-means on 50,000 x 256 features into 1,000 clusters (issue #3's benchmark row).
./target/release/protoclust bench --kmeans 50000x256x1000
python3 bench/reference/kmeans_bench.py --shape 50000x256x1000 || true
