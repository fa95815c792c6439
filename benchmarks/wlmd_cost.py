"""Cost of a WLMD landscape step against a plain gradient step of the same model.

For the paper transformer (x+y mod 67, 50 % train; the `landscape-add` preset) it times,
per number of walkers (vmapped, best of --repeats calls of --steps steps each):

  wlmd        one sampler step: both collective variables (ln L on the training set,
              smoothed accuracy on the test set), one vjp for the force, the thermostat,
              the walls, the Gaussian deposit into the 2-D estimate and the histogram;
  cv-grad     a plain gradient step on the same two collective variables (the same
              forward and backward work, no Wang-Landau bookkeeping): the fair
              reference for "the bookkeeping is negligible";
  train-grad  a plain gradient step on the training loss only (what a training step
              costs; the 2-D landscape also needs the test set, so it reads ~2x more).

It prints walker-steps per second, the ratios, FLOPs per walker-step (XLA's cost
analysis), the fraction of a float32 matrix-multiply peak measured in the same process,
and an estimate of a 60-million-walker-step landscape on one H200 (stated assumptions)
against the paper's reported cost (about 100 GPU-hours per million steps per walker).

    python benchmarks/wlmd_cost.py                     # 1 and 8 walkers
    python benchmarks/wlmd_cost.py --walkers 1 --modulus 23 --steps 5 --json out.json

--peak-size sets n of the n x n matmul whose FLOP/s is the peak (2048; smaller for a
quick check of the script).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ensemble_throughput import PEAK_SIZE, matmul_peak  # noqa: E402

from grokjax.landscape import collective_variables, init_walkers, make_landscape_sampler  # noqa: E402
from grokjax.presets import get_preset  # noqa: E402
from grokjax.problem.metrics import cross_entropy  # noqa: E402
from grokjax.xla_flags import use_recommended_cpu_flags  # noqa: E402

# First, before any JAX computation: XLA reads XLA_FLAGS when its backend starts (the
# first computation, not `import jax`), and on CPU these flags make a step several times
# faster. A no-op for flags the user has set, and on GPU or TPU.
use_recommended_cpu_flags()

H200_FP32_PEAK = 67e12  # NVIDIA's H200 datasheet, FP32 (non-tensor-core) FLOP/s
PAPER_GPU_HOURS_PER_MILLION_WALKER_STEPS = 100.0
LANDSCAPE_WALKER_STEPS = 60e6


def best_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile and warm up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t)
    return best


def flops_of(fn, *args) -> float:
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, list):
        cost = cost[0]
    return float(cost["flops"])


def bench(lcfg, n_walkers: int, steps: int, repeats: int) -> dict:
    lcfg = lcfg.replace(walkers=n_walkers)
    sampler, init_params = make_landscape_sampler(lcfg)
    walkers, estimates = jax.jit(lambda: init_walkers(lcfg, sampler, init_params))()
    cv_fn, _ = collective_variables(lcfg)
    from grokjax.problem import data as data_lib
    from grokjax.problem.models import make_model

    net = lcfg.model
    model = make_model(net.model, net.data.spec)
    ds = data_lib.make(jax.random.key(net.data.split_seed or 0), net.data)

    def train_loss(params):
        return cross_entropy(model.apply(params, ds.train_inputs), ds.train_labels)

    def cv_objective(params):
        return jnp.sum(cv_fn(params) * jnp.array([1.0, -1.0]))

    def gradient_step(objective):
        def one(params):
            grads = jax.grad(objective)(params)
            return jax.tree.map(lambda p, g: p - 1e-5 * g, params, grads)

        return jax.vmap(one)

    vstep = jax.vmap(sampler.step)

    def scan(fn):
        return jax.jit(lambda c: jax.lax.scan(lambda c, _: (fn(c), None), c, length=steps)[0])

    runs = {
        "wlmd": (scan(lambda c: vstep(*c)[:2]), (walkers, estimates)),
        "cv-grad": (scan(gradient_step(cv_objective)), walkers.params),
        "train-grad": (scan(gradient_step(train_loss)), walkers.params),
    }
    out = {"walkers": n_walkers}
    for name, (fn, carry) in runs.items():
        seconds = best_time(fn, carry, repeats=repeats)
        out[f"{name}_walker_steps_per_s"] = n_walkers * steps / seconds
    out["flops_per_walker_step"] = (
        flops_of(lambda c: vstep(*c)[:2], (walkers, estimates)) / n_walkers
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--walkers", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=20, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modulus", type=int, default=67)
    parser.add_argument(
        "--peak-size",
        type=int,
        default=PEAK_SIZE,
        help="n of the n x n float32 matmul whose FLOP/s is the peak",
    )
    parser.add_argument("--json", help="also write the record to this file")
    args = parser.parse_args()

    lcfg = get_preset("landscape-add", "landscape").config
    lcfg = lcfg.replace(model=lcfg.model.replace(**{"data.modulus": args.modulus}))
    peak = matmul_peak(args.peak_size)
    rows = [bench(lcfg, w, args.steps, args.repeats) for w in args.walkers]
    peak_after = matmul_peak(args.peak_size)
    print(
        f"backend {jax.default_backend()} ({platform.processor() or platform.machine()}), "
        f"x+y mod {args.modulus}, paper transformer"
    )
    print(
        f"float32 matmul peak ({args.peak_size}^3) {peak / 1e9:.1f} GFLOP/s (before), "
        f"{peak_after / 1e9:.1f} (after)"
    )
    print(
        f"{'walkers':>7s} {'wlmd w-steps/s':>14s} {'cv-grad':>9s} {'train-grad':>10s} "
        f"{'wlmd/cv-grad':>12s} {'wlmd/train':>10s} {'GFLOP/w-step':>12s} {'% peak':>6s}"
    )
    for r in rows:
        wl, cv, tr = (r[f"{k}_walker_steps_per_s"] for k in ("wlmd", "cv-grad", "train-grad"))
        r["cost_vs_cv_grad"] = cv / wl
        r["cost_vs_train_grad"] = tr / wl
        r["fraction_of_peak"] = wl * r["flops_per_walker_step"] / max(peak, peak_after)
        print(
            f"{r['walkers']:>7d} {wl:>14.1f} {cv:>9.1f} {tr:>10.1f} "
            f"{r['cost_vs_cv_grad']:>12.3f} {r['cost_vs_train_grad']:>10.3f} "
            f"{r['flops_per_walker_step'] / 1e9:>12.2f} {100 * r['fraction_of_peak']:>6.1f}"
        )
    best = max(rows, key=lambda r: r["fraction_of_peak"])
    seconds = (
        LANDSCAPE_WALKER_STEPS
        * best["flops_per_walker_step"]
        / (best["fraction_of_peak"] * H200_FP32_PEAK)
    )
    paper_hours = LANDSCAPE_WALKER_STEPS / 1e6 * PAPER_GPU_HOURS_PER_MILLION_WALKER_STEPS
    estimate = {
        "walker_steps": LANDSCAPE_WALKER_STEPS,
        "assumption": "H200 float32 peak 67 TFLOP/s at the fraction of peak measured here",
        "h200_hours": seconds / 3600,
        "paper_gpu_hours": paper_hours,
    }
    print(
        f"estimate: {LANDSCAPE_WALKER_STEPS:.0e} walker-steps on one H200 ~ "
        f"{estimate['h200_hours']:.1f} h ({estimate['assumption']}); the paper reports "
        f"~{paper_hours:,.0f} GPU-hours for as many walker-steps"
    )
    record = {
        "backend": jax.default_backend(),
        "modulus": args.modulus,
        "peak_flops": peak,
        "peak_flops_after": peak_after,
        "rows": rows,
        "h200_estimate": estimate,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
