#!/usr/bin/env bash
# Reproduce the CPU entropy landscape of docs/results.md ("Entropy landscapes"): AdamW
# and WanD training runs of the landscape-cpu-windows network (x+y mod 23, 70 % train,
# an MLP of embedding 16 and width 64; 4 seeds each, 6,000 steps), then the
# landscape-cpu-windows WLMD run (seed 0, or SEED) with both median paths drawn on it.
# About 30 minutes on a 2-core CPU (the landscape alone 29).
# Usage: bash scripts/landscape_results.sh [OUT_DIR] [SEED]
set -euo pipefail
out=${1:-runs/landscape-cpu-windows}
seed=${2:-0}
mkdir -p "$out"
model=(--set model.name=mlp --set data.modulus=23 --set data.train_fraction=0.7 --set model.d_model=16
  --set model.d_mlp=64 --set steps=6000)
if [ ! -f "$out/adamw/summary.json" ]; then
  grokjax run "${model[@]}" --set learning_rate=3e-3 --seeds 4 --out "$out/adamw" \
    --overwrite --no-progress | tee "$out/adamw.txt"
fi
if [ ! -f "$out/wand/summary.json" ]; then
  grokjax run --preset wand-capped-add "${model[@]}" --seeds 4 --out "$out/wand" \
    --overwrite --no-progress | tee "$out/wand.txt"
fi
grokjax landscape --preset landscape-cpu-windows --set seed="$seed" \
  --out "$out/landscape-seed$seed" --no-progress \
  --trajectory AdamW="$out/adamw" --trajectory WanD="$out/wand" | tee "$out/landscape-seed$seed.txt"
