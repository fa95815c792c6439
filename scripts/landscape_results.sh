#!/usr/bin/env bash
# Reproduce the CPU entropy landscape of docs/results.md ("Entropy landscapes"): AdamW
# and WanD training runs of the landscape-cpu network (x+y mod 23, 70 % train, the
# width-32 transformer; 4 seeds each), then the landscape-cpu WLMD run with both median
# paths drawn on it. About 35 minutes on a 2-core CPU.
# Usage: bash scripts/landscape_results.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/landscape-cpu}
mkdir -p "$out"
model=(--set modulus=23 --set train_fraction=0.7 --set d_model=32 --set d_mlp=128)
grokjax run "${model[@]}" --steps 3000 --seeds 4 --out "$out/adamw" --no-progress \
  | tee "$out/adamw.txt"
grokjax run --preset wand-capped-add "${model[@]}" --steps 3000 --seeds 4 \
  --out "$out/wand" --no-progress | tee "$out/wand.txt"
grokjax landscape --preset landscape-cpu --out "$out/landscape" --no-progress \
  --trajectory AdamW="$out/adamw" --trajectory WanD="$out/wand" | tee "$out/landscape.txt"
