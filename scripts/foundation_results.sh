#!/usr/bin/env bash
# Reproduce the figures of docs/results.md ("Foundation"): the paper's AdamW baseline on
# x+y mod 67 over 4 seeds, and the ensemble throughput benchmark. About 20 minutes on a
# 2-core CPU. Usage: bash scripts/foundation_results.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/foundation}
mkdir -p "$out"
grokjax run --preset paper-adamw-add --seeds 4 --out "$out/paper-adamw-add" --no-progress \
  | tee "$out/paper-adamw-add.txt"
python benchmarks/ensemble_throughput.py --json "$out/throughput.json" | tee "$out/throughput.txt"
