"""What following a run costs: member-steps per second of a running ensemble with the live
metrics stream on (live.jsonl and status.json after every chunk, what the dashboard
reads) and off, and with TensorBoard event files as well.

Each arm is a whole `run_ensemble` of the paper model (x+y mod 67, full batch, AdamW)
into a fresh directory; its speed is timed from the end of its first chunk (which
includes compilation) to the end of its last, so it counts the training, the
checkpoints and the stream, not the compile. The arms alternate, `--repeats` times.

    python benchmarks/live_overhead.py                         # 8 members, 3,000 steps
    python benchmarks/live_overhead.py --members 16 --steps 2000 --repeats 5 --tensorboard
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from grokjax.config import Config, Hparams
from grokjax.host.experiment import run_ensemble
from grokjax.train import chunk_schedule
from grokjax.xla_flags import use_recommended_cpu_flags

use_recommended_cpu_flags()  # before JAX starts its backend


def timed_run(cfg: Config, n_members: int, out: Path, **sinks) -> float:
    """Member-steps per second after the first chunk of one run."""
    stamps: list[float] = []
    run_ensemble(
        cfg,
        Hparams(learning_rate=1e-3, weight_decay=1.0),
        range(n_members),
        out,
        progress=False,
        member_batch=None,
        on_chunk=lambda c: stamps.append(time.perf_counter()),
        **sinks,
    )
    steps = chunk_schedule(cfg).sum(axis=1)[1:].sum()  # the chunks after the first
    return n_members * float(steps) / (stamps[-1] - stamps[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--modulus", type=int, default=67)
    parser.add_argument("--every", type=int, default=10, help="steps between evaluations")
    parser.add_argument("--chunk-evals", type=int, default=10, help="evaluations per chunk")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tensorboard", action="store_true", help="also an arm with it")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    cfg = Config(
        steps=args.steps,
        **{
            "data.modulus": args.modulus,
            "eval.every": args.every,
            "eval.chunk_evals": args.chunk_evals,
        },
    )
    if chunk_schedule(cfg).shape[0] < 2:
        parser.error("--steps / --every / --chunk-evals give one chunk: at least two are timed")
    arms = {"stream off": dict(live=False), "stream on": dict(live=True)}
    if args.tensorboard:
        arms["stream + tensorboard"] = dict(live=True, tensorboard=True)
    speeds: dict[str, list[float]] = {name: [] for name in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name, sinks in arms.items():
                out = Path(tmp) / f"{name.replace(' ', '-')}-{r}"
                speeds[name].append(timed_run(cfg, args.members, out, **sinks))
                print(f"repeat {r + 1} {name}: {speeds[name][-1]:,.0f} member-steps/s", flush=True)
    n_chunks = chunk_schedule(cfg).shape[0]
    print(
        f"\n{args.members} members, {args.steps:,} steps, x+y mod {args.modulus}, "
        f"{n_chunks} chunks of {args.chunk_evals} evaluations every {args.every} steps"
    )
    base = float(np.median(speeds["stream off"]))
    figures = {}
    for name, values in speeds.items():
        median = float(np.median(values))
        slower = 100.0 * (1.0 - median / base)
        figures[name] = {
            "median": median,
            "min": min(values),
            "max": max(values),
            "slower_%": slower,
        }
        print(
            f"{name:>22}: median {median:,.0f} member-steps/s (min {min(values):,.0f}, "
            f"max {max(values):,.0f}); {slower:+.2f} % slower than off"
        )
    on = figures["stream on"]["slower_%"]
    print(
        f"live stream overhead: {on:+.2f} % (target at most 2 %): {'met' if on <= 2 else 'not met'}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "arms": figures}, indent=1))


if __name__ == "__main__":
    main()
