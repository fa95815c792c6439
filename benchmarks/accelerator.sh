#!/usr/bin/env bash
# The benchmark set on an accelerator, in under five minutes: device and versions,
# ensemble scaling 1..64 members (member-steps/s, FLOP/s against a matmul peak measured
# in the same run, compile time, memory per member), WanD against AdamW, the PyTorch
# references (eager and torch.compile) when torch is installed, and the WLMD step against
# a gradient step.
# Usage: bash benchmarks/accelerator.sh [--dry-run] [OUT_DIR]   (JSON records land in OUT_DIR)
#   --dry-run  every stage on CPU at tiny sizes (x+y mod 11, 1 and 2 members, 3 steps,
#              1 repeat, 1 walker, a 256^3 matmul peak, the PyTorch stage included), in
#              about a minute on an idle CPU: checks that the script runs end to end and
#              writes its records, not speed.
set -euo pipefail
dry_run=false
if [[ ${1:-} == --dry-run ]]; then
  dry_run=true
  shift
fi
out=${1:-${OUT:-runs/accelerator}}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)
if $dry_run; then
  export JAX_PLATFORMS=cpu
  # Timeouts that only catch a hang: a loaded CPU can take minutes where an idle one
  # takes seconds, and the dry run checks that the stages run, not how fast.
  throughput_timeout=400
  throughput=(--modulus 11 --peak-size 256 --members 1 2 --steps 3 --repeats 1)
  wlmd_timeout=200
  wlmd=(--modulus 11 --peak-size 256 --walkers 1 --steps 2 --repeats 1)
else
  throughput_timeout=200
  # PyTorch runs on the host, one seed after another: 4 seeds keep it inside the timeout
  throughput=(--members 1 2 4 8 16 32 64 --steps 200 --repeats 3 --torch-seeds 4)
  wlmd_timeout=80
  wlmd=(--steps 50 --repeats 3)
fi
python - <<'PY'
import jax, platform
print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
print(f"host {platform.node()} {platform.machine()}")
PY
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true
timeout "$throughput_timeout" python "$here/ensemble_throughput.py" "${throughput[@]}" \
  --torch --json "$out/throughput.json"
timeout "$wlmd_timeout" python "$here/wlmd_cost.py" "${wlmd[@]}" --json "$out/wlmd_cost.json"
echo "paper's PyTorch figure for context: about 72 s per 1,000 AdamW steps on an RTX 4090"
