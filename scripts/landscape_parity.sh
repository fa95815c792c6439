#!/usr/bin/env bash
# The entropy landscape of a task beyond modular arithmetic (docs/results.md, "Beyond
# modular arithmetic"): AdamW on the landscape-parity network (sparse parity n = 12,
# k = 3, 200 train, one hidden layer of 32; 4 seeds, 3,000 steps), then the
# landscape-parity WLMD run (seed 0, or SEED) with AdamW's median path drawn on it.
# Usage: bash scripts/landscape_parity.sh [OUT_DIR] [SEED]
set -euo pipefail
out=${1:-runs/landscape-parity}
seed=${2:-0}
mkdir -p "$out"
net=(--set data.task=parity --set data.parity_bits=12 --set data.train_size=200
  --set data.test_size=200 --set model.name=mlp --set model.n_layers=1 --set model.d_mlp=32
  --set steps=3000 --set learning_rate=3e-3)
if [ ! -f "$out/adamw/summary.json" ]; then
  grokjax run "${net[@]}" --seeds 4 --out "$out/adamw" --overwrite --no-progress \
    | tee "$out/adamw.txt"
fi
grokjax landscape --preset landscape-parity --set seed="$seed" \
  --out "$out/landscape-seed$seed" --no-progress \
  --trajectory AdamW="$out/adamw" | tee "$out/landscape-seed$seed.txt"
