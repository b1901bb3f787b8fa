#!/usr/bin/env bash
# Writes the CamVid tuning protocol's two list files (issue #16, docs/results.md):
#   configs/splits/camvid_train_part.txt  sequences 0001TP + 0016E5 of camvid/train (266 frames)
#   configs/splits/camvid_tune_part.txt   sequence 0006R0 of camvid/train (101 frames), held out
# The split is by sequence (the file-name prefix), not by frame, because neighbouring frames of
# one sequence are near-duplicates; 0006R0 is the sequence that camvid/val (all 0016E5) lacks.
# Deterministic: no seed is involved. Run from the repository root.
set -euo pipefail
data=${1:-../shared/data/camvid}
[ -d "$data/train" ] || { echo "error: $data/train not found (the CamVid folder of ../shared/data)" >&2; exit 1; }
out=configs/splits
mkdir -p "$out"
write() { # file, grep flag, header
    local tmp
    tmp=$(mktemp "$out/.split.XXXXXX")
    {
        printf '%s\n' "$3"
        echo "# (made by scripts/camvid_split.sh; paths relative to this file)"
        ls "$data/train" | grep $2 '^0006R0_' | sed 's|^|../../../shared/data/camvid/train/|'
    } >"$tmp"
    mv "$tmp" "$1"
}
write "$out/camvid_train_part.txt" -v "# CamVid train, training part of the tuning protocol (issue #16): sequences 0001TP and 0016E5 (266 frames)"
write "$out/camvid_tune_part.txt" "" "# CamVid train, held-out tuning part of the protocol (issue #16): sequence 0006R0 (101 frames)"
echo "train part: $(grep -vc '^#' "$out/camvid_train_part.txt") frames; tuning part: $(grep -vc '^#' "$out/camvid_tune_part.txt") frames"
