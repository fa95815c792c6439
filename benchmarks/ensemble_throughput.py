"""Ensemble throughput of the paper model against this machine's matrix-multiply peak.

For the paper transformer (x+y mod 67, 50 % train, full batch, AdamW) it prints, per
ensemble size: compile time, member-steps per second, FLOPs per step (XLA's cost
analysis of one vmapped optimizer step) and achieved FLOP/s as a fraction of a float32
matrix-multiply peak measured in the same process; then the cost of one WanD step
relative to one AdamW step.

    python benchmarks/ensemble_throughput.py                 # sizes 1 and 8
    python benchmarks/ensemble_throughput.py --members 1 2 4 8 16 --steps 200
    python benchmarks/ensemble_throughput.py --json out.json
    python benchmarks/ensemble_throughput.py --torch     # and the PyTorch references

`--torch` also times benchmarks/pytorch_reference.py, the same model, data, full-batch
AdamW and step count in PyTorch, as many seeds as the largest ensemble one after
another, twice: eager, and with the model under `torch.compile` (compile time excluded
from the timed steps and printed apart; "torch.compile: skipped (reason)" if it fails).
Both run in torch's default number of threads, printed. It prints grokjax's ensemble
member-steps per second over each, from this one run.

Also printed: peak memory per member (XLA's memory analysis of the compiled chunk:
arguments, temporaries and outputs not aliased to inputs) and the speed-up of the
largest ensemble over one member.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import time

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.config import Config, Hparams
from grokjax.host.experiment import member_hparams, member_keys, over_members
from grokjax.train import make_train
from grokjax.xla_flags import use_recommended_cpu_flags

PEAK_SIZE = 2048  # matmul_peak's default n

# First, before any JAX computation: XLA reads XLA_FLAGS when its backend starts (the
# first computation, not `import jax`), and on CPU these flags make a step several times
# faster. A no-op for flags the user has set, and on GPU or TPU.
use_recommended_cpu_flags()


def matmul_peak(n: int = PEAK_SIZE, repeats: int = 10) -> float:
    """Best-of float32 FLOP/s of an n x n matrix product."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    f(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


_DEF = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (\w+)\[([\d,]*)\]")
_DOT = re.compile(r"= \w+\[[\d,]*\]\S* dot\(%?([\w.\-]+), %?([\w.\-]+)\)(.*)")


def _dims(attrs: str, name: str) -> tuple[int, ...]:
    found = re.search(name + r"=\{([\d,]*)\}", attrs)
    return tuple(int(d) for d in found.group(1).split(",") if d) if found else ()


def matmul_ceiling(hlo_text: str, repeats: int = 10) -> tuple[float, float, int]:
    """Time every dot of a compiled step alone, at its own shapes: (FLOPs, seconds, count).

    The sum of best-of times (less the dispatch time of an empty call) is what the
    step would cost if it were nothing but its matmuls, each as fast as XLA runs it
    alone: a ceiling for the step's FLOP rate.
    """
    shapes = {}
    for line in hlo_text.splitlines():
        found = _DEF.match(line)
        if found:
            shapes[found.group(1)] = tuple(int(d) for d in found.group(3).split(",") if d)
    total_flops, total_s, count = 0.0, 0.0, 0
    for line in hlo_text.splitlines():
        found = _DOT.search(line)
        if not found or found.group(1) not in shapes or found.group(2) not in shapes:
            continue
        lhs, rhs, attrs = shapes[found.group(1)], shapes[found.group(2)], found.group(3)
        dims = (
            (_dims(attrs, "lhs_contracting_dims"), _dims(attrs, "rhs_contracting_dims")),
            (_dims(attrs, "lhs_batch_dims"), _dims(attrs, "rhs_batch_dims")),
        )
        a = jnp.ones(lhs, jnp.float32)
        b = jnp.ones(rhs, jnp.float32)
        f = jax.jit(lambda a, b, dims=dims: jax.lax.dot_general(a, b, dims))
        out = f(a, b).block_until_ready()
        empty = jax.jit(lambda a, b: a.reshape(-1)[:1] + b.reshape(-1)[:1])
        empty(a, b).block_until_ready()
        dispatch = min(_timed(empty, a, b) for _ in range(repeats))
        best = max(min(_timed(f, a, b) for _ in range(repeats)) - dispatch, 1e-9)
        contracted = np.prod([lhs[d] for d in dims[0][0]])
        total_flops += 2.0 * out.size * contracted
        total_s += best
        count += 1
    return total_flops, total_s, count


def _timed(f, *args) -> float:
    t = time.perf_counter()
    f(*args).block_until_ready()
    return time.perf_counter() - t


def step_flops(trainer, state, hp) -> float:
    """FLOPs of one vmapped optimizer step, from XLA's cost analysis."""
    compiled = jax.jit(jax.vmap(trainer.step)).lower(state, hp).compile()
    cost = compiled.cost_analysis()
    if isinstance(cost, list):  # older jax returns one dict per computation
        cost = cost[0]
    return float(cost["flops"])


def bench_members(
    cfg: Config, n_members: int, steps: int, repeats: int, member_batch: int | None
) -> dict:
    trainer = make_train(cfg)
    hp = member_hparams(Hparams(learning_rate=3e-3, weight_decay=1.0), n_members)
    if cfg.optim.name == "wand":
        hp = hp._replace(weight_decay=jnp.zeros_like(hp.weight_decay))
    init = jax.jit(jax.vmap(trainer.init))
    state = init(member_keys(range(n_members)), hp)
    run = jax.jit(
        lambda s, h, segs: over_members(lambda a, b: trainer.run(a, b, segs), member_batch)(s, h)
    )
    segs = jnp.asarray([steps], jnp.int32)  # `steps` updates, then one evaluation

    t = time.perf_counter()
    compiled = run.lower(state, hp, segs).compile()
    compile_s = time.perf_counter() - t
    state, _ = compiled(state, hp, segs)  # warm-up
    jax.block_until_ready(state)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        state, metrics = compiled(state, hp, segs)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t)
    best = min(times)
    flops = step_flops(trainer, state, hp)
    memory = compiled.memory_analysis()
    per_member = None
    if memory is not None:
        total = memory.argument_size_in_bytes + memory.temp_size_in_bytes
        per_member = (total + memory.output_size_in_bytes - memory.alias_size_in_bytes) / n_members
    return {
        "bytes_per_member": per_member,
        "members": n_members,
        "member_batch": "all" if member_batch is None else member_batch,
        "compile_s": compile_s,
        "seconds_per_call": best,
        "member_steps_per_s": n_members * steps / best,
        "flops_per_step": flops,
        "flops_per_s": flops * steps / best,
    }


def _load_reference():
    """benchmarks/pytorch_reference.py as a module, wherever this script runs from."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).with_name("pytorch_reference.py")
    spec = importlib.util.spec_from_file_location("pytorch_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torch_references(
    modulus: int, steps: int, members: list[int], rows: list[dict], seeds: int | None = None
):
    """PyTorch eager and torch.compile rows for `seeds` seeds one after another (default: as
    many as the largest ensemble), each with grokjax's best member-steps/s at the largest
    ensemble over its own (None when not run). A sequential loop's member-steps/s does not
    depend on how many seeds it runs, so a few seeds suffice where time is short."""
    ref = _load_reference()
    if not ref.available():
        print("PyTorch reference: skipped, torch is not installed (pip install torch==2.13.0)")
        print("torch.compile: skipped (torch is not installed)")
        return None, None
    largest = max(members)
    ours = max(r["member_steps_per_s"] for r in rows if r["members"] == largest)
    n = seeds or largest
    reference = ref.member_steps_per_second(modulus, steps, n)
    reference["grokjax_over_torch"] = ours / reference["member_steps_per_s"]
    print(
        f"PyTorch {reference['torch']} reference, {reference['threads']} threads (torch's "
        f"default), {n} seeds one after another, {steps} steps each:"
    )
    print(
        f"  eager: {reference['member_steps_per_s']:.1f} member-steps/s; "
        f"grokjax {largest}-member ensemble / PyTorch = {reference['grokjax_over_torch']:.2f}"
    )
    try:
        compiled = ref.member_steps_per_second(modulus, steps, n, compiled=True)
    except Exception as error:  # any failure of torch.compile: report it, keep going
        message = str(error).split("Set TORCHDYNAMO_VERBOSE")[0]  # torch's hint, not a reason
        reason = f"{type(error).__name__}: {' '.join(message.split())[:200] or 'no message'}"
        print(f"torch.compile: skipped ({reason})")
        reference["grokjax_over_torch_compile"] = None
        reference["torch_compile_skipped"] = reason
        return reference, None
    compiled["grokjax_over_torch_compile"] = ours / compiled["member_steps_per_s"]
    reference["grokjax_over_torch_compile"] = compiled["grokjax_over_torch_compile"]
    reference["torch_compile_skipped"] = None
    print(
        f"  torch.compile: {compiled['member_steps_per_s']:.1f} member-steps/s "
        f"({compiled['threads']} threads; compile {compiled['compile_s']:.1f} s, not timed); "
        f"grokjax {largest}-member ensemble / torch.compile = "
        f"{compiled['grokjax_over_torch_compile']:.2f}"
    )
    return reference, compiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--steps", type=int, default=100, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modulus", type=int, default=67)
    parser.add_argument(
        "--peak-size",
        type=int,
        default=PEAK_SIZE,
        help="n of the n x n float32 matmul whose FLOP/s is the peak",
    )
    parser.add_argument("--json", help="also write the record to this file")
    parser.add_argument(
        "--torch-seeds",
        type=int,
        help="seeds of the PyTorch references (default: as many as the largest ensemble)",
    )
    parser.add_argument(
        "--torch",
        action="store_true",
        help="also time the PyTorch reference (benchmarks/pytorch_reference.py), eager and "
        "under torch.compile, one seed after another, as many seeds as the largest ensemble",
    )
    args = parser.parse_args()

    cfg = Config(
        steps=args.steps,
        **{"data.modulus": args.modulus, "data.train_fraction": 0.5, "eval.every": args.steps},
    )
    peak = matmul_peak(args.peak_size)
    rows = []
    for m in args.members:
        # Every size fully vmapped, and (for ensembles) one member at a time via lax.map.
        for member_batch in [None] if m == 1 else [None, 1]:
            rows.append(bench_members(cfg, m, args.steps, args.repeats, member_batch))
    # The better of two measurements, before and after.
    peak = max(peak, matmul_peak(args.peak_size))

    trainer = make_train(cfg)
    hp = Hparams(learning_rate=3e-3, weight_decay=1.0)
    state = jax.jit(trainer.init)(jax.random.key(0), hp)
    hlo = jax.jit(trainer.step).lower(state, hp).compile().as_text()
    dot_flops, dot_s, n_dots = matmul_ceiling(hlo)

    print(
        f"backend {jax.default_backend()} ({jax.devices()[0].device_kind}), jax {jax.__version__}"
    )
    print(
        f"float32 matmul peak ({args.peak_size}^3, best of 10, before and after): "
        f"{peak / 1e9:.1f} GFLOP/s"
    )
    print(
        f"matmul ceiling of one step: its {n_dots} dots, each timed alone at its own shape, "
        f"{dot_flops / 1e9:.2f} GFLOP in {dot_s * 1e3:.2f} ms = {dot_flops / dot_s / 1e9:.1f} "
        f"GFLOP/s ({100 * dot_flops / dot_s / peak:.1f}% of peak)"
    )
    print(
        f"paper model: p={cfg.data.modulus}, {cfg.data.n_train} training examples, full batch, "
        "AdamW; "
        f"{args.steps} steps per call, best of {args.repeats}"
    )
    head = f"{'members':>7} {'vmapped':>7} {'compile s':>9} {'member-steps/s':>14} "
    head += f"{'GFLOP/step':>10} {'GFLOP/s':>8} {'% of peak':>9} {'MB/member':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        r["fraction_of_peak"] = r["flops_per_s"] / peak
        print(
            f"{r['members']:>7} {str(r['member_batch']):>7} {r['compile_s']:>9.2f} "
            f"{r['member_steps_per_s']:>14.1f} {r['flops_per_step'] / 1e9:>10.2f} "
            f"{r['flops_per_s'] / 1e9:>8.1f} {100 * r['fraction_of_peak']:>8.1f}% "
            f"{(r['bytes_per_member'] or float('nan')) / 2**20:>9.1f}"
        )
    one = [r for r in rows if r["members"] == 1]
    if one:
        for r in rows:
            r["speedup_over_one"] = r["member_steps_per_s"] / one[0]["member_steps_per_s"]
        largest = max(rows, key=lambda r: (r["members"], r["member_steps_per_s"]))
        print(
            f"{largest['members']} members against 1: "
            f"{largest['speedup_over_one']:.1f}x the member-steps per second"
        )
    reference = compiled = None
    if args.torch:
        reference, compiled = _torch_references(
            cfg.data.modulus, args.steps, args.members, rows, args.torch_seeds
        )
    # WanD against AdamW: one member, same model and data, side by side in this process.
    costs = {}
    for name in ("adamw", "wand"):
        row = bench_members(cfg.replace(**{"optim.name": name}), 1, args.steps, args.repeats, None)
        costs[name] = row["seconds_per_call"] / args.steps
    ratio = costs["wand"] / costs["adamw"]
    print(
        f"step cost, 1 member: AdamW {costs['adamw'] * 1e3:.2f} ms, WanD {costs['wand'] * 1e3:.2f} "
        f"ms, WanD/AdamW = {ratio:.3f}"
    )
    if args.json:
        record = {
            "machine": platform.processor() or platform.machine(),
            "backend": jax.default_backend(),
            "jax": jax.__version__,
            "matmul_peak_flops": peak,
            "matmul_ceiling": {"flops": dot_flops, "seconds": dot_s, "dots": n_dots},
            "rows": rows,
            "step_seconds": costs,
            "wand_over_adamw": ratio,
            "pytorch_reference": reference,
            "pytorch_compiled": compiled,
        }
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
