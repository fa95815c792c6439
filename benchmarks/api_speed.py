"""The README's Python API example, timed with plain `jax.jit` and with `grokjax.jit`.

The example trains 8 seeds of a width-32 transformer on x+y mod 23 (70 % train, 1,500
full-batch AdamW steps) in one vmapped program. This script runs it twice in one
process, from the same keys: compiled by `jax.jit` (XLA's defaults: on CPU its YNNPACK
fusions) and by `grokjax.jit` (the same plus grokjax's per-compilation options,
`grokjax.xla_flags.compiler_options()`), and prints compile and run seconds, member-steps
per second, the speed-up, and whether the two results agree. Run it without `XLA_FLAGS`
set, or the "before" figure already has the option.

    python benchmarks/api_speed.py                       # the README's sizes
    python benchmarks/api_speed.py --steps 200 --json api.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import numpy as np

import grokjax as gj


def readme_trainer(steps: int, every: int) -> gj.Trainer:
    """The README example's config and optimizer (README.md, "Python API")."""
    import optax

    cfg = gj.Config(
        data=gj.DataConfig(task="x+y", modulus=23, train_fraction=0.7),
        model=gj.ModelConfig(d_model=32, d_mlp=128),
        steps=steps,
        eval=gj.EvalConfig(every=every),
    )

    def optimizer(hp: gj.Hparams, key: jax.Array) -> optax.GradientTransformation:
        return optax.chain(
            optax.clip_by_global_norm(1.0),
            optax.adamw(
                gj.warmup(hp.learning_rate, 10), b1=0.9, b2=0.98, weight_decay=hp.weight_decay
            ),
        )

    return gj.make_train(cfg, optimizer=optimizer)


def timed(jit, trainer: gj.Trainer, keys, hp, repeats: int) -> dict:
    fn = jit(jax.vmap(trainer.train, in_axes=(0, None)))
    t = time.perf_counter()
    compiled = fn.lower(keys, hp).compile()
    compile_s = time.perf_counter() - t
    best, out = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        out = jax.block_until_ready(compiled(keys, hp))
        best = min(best, time.perf_counter() - t)
    return {"compile_s": compile_s, "run_s": best, "metrics": jax.device_get(out[1])}


def _cpu_name() -> str:
    """The CPU's model name (Linux), with 'AVX-512' when it has it."""
    try:
        info = open("/proc/cpuinfo").read()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), platform.machine())  # fmt: skip
    return f"{name}{', AVX-512' if 'avx512f' in info else ''}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)

    trainer = readme_trainer(args.steps, args.every)
    keys = gj.member_keys(range(args.members))
    hp = gj.Hparams(learning_rate=1e-2, weight_decay=1.0)
    member_steps = args.members * args.steps
    cpu = _cpu_name()
    print(f"device: {jax.devices()[0].device_kind}; cpu: {cpu}")
    print(
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; grokjax.jit adds {gj.compiler_options()}"
    )
    record: dict = {"steps": args.steps, "members": args.members, "cpu": cpu}
    record["backend"] = jax.default_backend()
    results = {}
    for name, jit in (("jax.jit", jax.jit), ("grokjax.jit", gj.jit)):
        res = timed(jit, trainer, keys, hp, args.repeats)
        results[name] = res
        rate = member_steps / res["run_s"]
        record[name] = {
            "compile_s": res["compile_s"],
            "run_s": res["run_s"],
            "member_steps_s": rate,
        }
        print(
            f"{name:12s} compile {res['compile_s']:6.1f} s   run {res['run_s']:7.2f} s   "
            f"{rate:8.0f} member-steps/s"
        )
    speedup = results["jax.jit"]["run_s"] / results["grokjax.jit"]["run_s"]
    a, b = (results[n]["metrics"]["test_acc"] for n in ("jax.jit", "grokjax.jit"))
    record["speedup"] = speedup
    record["largest_test_acc_difference"] = float(np.max(np.abs(a - b)))
    print(f"speed-up of grokjax.jit over jax.jit: {speedup:.2f}x")
    difference = record["largest_test_acc_difference"]
    print(f"largest test-accuracy difference between the two: {difference:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return record


if __name__ == "__main__":
    main()
