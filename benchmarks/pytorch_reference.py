"""A minimal PyTorch reference of the paper's training loop, eager and torch.compile'd.

Written for this benchmark, the way PyTorch grokking code is usually written (Nanda et
al.'s one-layer transformer: token and position embeddings, 4-head causal attention
over the three positions, a ReLU MLP, the unembedding read at the last position; no
LayerNorm), full batch, AdamW with betas (0.9, 0.98), a 10-step linear warm-up and
weight decay 1, one seed after another. It does the work grokjax's trainer does per
step (forward and backward over the whole training set, one AdamW update) and one
evaluation at the end of each timed call. PyTorch is an optional benchmark dependency
(`pip install torch==2.13.0`); `available()` says whether it is installed.

Two variants, timed the same way (one untimed warm-up step per seed, then `steps`
steps and one evaluation, in torch's default number of threads unless told):

  eager          the loop as written;
  torch.compile  the model wrapped in `torch.compile` (inductor; on CPU it needs a C++
                 compiler), so the forward and backward passes of the step and the
                 evaluation run compiled; compiled once, its parameters re-initialised in
                 place for each seed. The AdamW update stays eager: compiled as well it
                 was no faster here, and torch 2.13's compiled Adam turns the parameters
                 into NaN at a learning rate of 0, the warm-up's first step. Compilation
                 happens in the first seed's warm-up; its wall time is `compile_s`, not
                 part of the timed steps, which may not recompile (they raise if they
                 would).

    python benchmarks/pytorch_reference.py --steps 100 --seeds 2
    python benchmarks/pytorch_reference.py --steps 100 --seeds 2 --compile
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def modular_data(p: int, train_fraction: float, seed: int = 0):
    """x+y mod p as (x, y, '=') token triples: a shuffled split, as numpy arrays."""
    x, y = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    tokens = np.stack([x.ravel(), y.ravel(), np.full(p * p, p)], axis=1)
    labels = (x.ravel() + y.ravel()) % p
    order = np.random.default_rng(seed).permutation(p * p)
    n_train = int(round(train_fraction * p * p))
    train, test = order[:n_train], order[n_train:]
    return tokens[train], labels[train], tokens[test], labels[test]


def make_model(p: int, d_model: int = 128, n_heads: int = 4, d_mlp: int = 512):
    import torch
    from torch import nn

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            vocab, d, k = p + 1, d_model, d_model // n_heads
            self.n_heads, self.d_head = n_heads, k
            self.embed = nn.Parameter(torch.randn(vocab, d) / math.sqrt(d))
            self.pos = nn.Parameter(torch.randn(3, d) / math.sqrt(d))
            self.qkv = nn.Linear(d, 3 * d, bias=False)
            self.out = nn.Linear(d, d, bias=False)
            self.mlp_in = nn.Linear(d, d_mlp)
            self.mlp_out = nn.Linear(d_mlp, d)
            self.unembed = nn.Linear(d, vocab, bias=False)
            self.register_buffer("mask", torch.tril(torch.ones(3, 3, dtype=torch.bool)))

        def forward(self, tokens):
            b, t = tokens.shape
            x = self.embed[tokens] + self.pos[None, :t]
            q, k, v = self.qkv(x).split(x.shape[-1], dim=-1)

            def heads(z):
                return z.view(b, t, self.n_heads, self.d_head).transpose(1, 2)

            q, k, v = heads(q), heads(k), heads(v)
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
            scores = scores.masked_fill(~self.mask[:t, :t], float("-inf"))
            z = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, -1)
            x = x + self.out(z)
            x = x + self.mlp_out(torch.relu(self.mlp_in(x)))
            return self.unembed(x[:, -1])

    return Transformer()


def _data(p: int):
    import torch

    return tuple(torch.as_tensor(a) for a in modular_data(p, 0.5))


def _loop(forward, params, data, lr: float):
    """(step, evaluate) of one seed: a full-batch AdamW step of `forward` (the model,
    eager or compiled) with the 10-step warm-up, and test accuracy without gradients."""
    import torch

    x_tr, y_tr, x_te, y_te = data
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / 10, 1.0))

    def step():
        loss = torch.nn.functional.cross_entropy(forward(x_tr), y_tr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return loss

    def evaluate() -> float:
        with torch.no_grad():
            return (forward(x_te).argmax(-1) == y_te).float().mean().item()

    return step, evaluate


def _timed(step, evaluate, steps: int) -> tuple[float, float]:
    """(seconds for `steps` steps plus one evaluation, final train loss)."""
    t = time.perf_counter()
    for _ in range(steps):
        loss = step()
    evaluate()
    return time.perf_counter() - t, float(loss.detach())


def train_seconds(p: int, steps: int, seed: int, lr: float = 3e-3) -> tuple[float, float]:
    """Eager: (seconds for `steps` AdamW steps plus one evaluation, final train loss),
    timed after one warm-up step."""
    import torch

    torch.manual_seed(seed)
    data = _data(p)
    model = make_model(p)
    step, evaluate = _loop(model, model.parameters(), data, lr)
    step()
    return _timed(step, evaluate, steps)


def compiled_train_seconds(p: int, steps: int, seeds: int, lr: float = 3e-3) -> tuple[list, float]:
    """torch.compile: (seconds per seed as `train_seconds` times them, compile seconds).

    One model is compiled (`dynamic=False`: one graph for the training set with
    gradients, one for the test set without) and, for each seed, re-initialised in place
    to the parameters `make_model` draws for that seed, so every seed starts where its
    eager run does and no seed recompiles. Compile seconds: the wall time of the first
    seed's warm-up step and evaluation, which trigger compilation (one step's work
    included). Raises whatever torch.compile raises, and if a timed step would recompile.
    """
    import torch

    data = _data(p)
    torch.manual_seed(0)
    model = make_model(p)
    forward = torch.compile(model, dynamic=False)
    times, compile_s = [], 0.0
    for seed in range(seeds):
        torch.manual_seed(seed)
        with torch.no_grad():
            model.load_state_dict(make_model(p).state_dict())
        step, evaluate = _loop(forward, model.parameters(), data, lr)
        t = time.perf_counter()
        step()  # the untimed warm-up step every seed has; the first seed's compiles
        if seed == 0:
            evaluate()  # and compiles the evaluation
            compile_s = time.perf_counter() - t
        with torch.compiler.set_stance("fail_on_recompile"):
            times.append(_timed(step, evaluate, steps)[0])
    return times, compile_s


def member_steps_per_second(
    p: int, steps: int, seeds: int, threads: int | None = None, compiled: bool = False
) -> dict:
    """One seed after another, as PyTorch grokking code runs: total steps / total time,
    eager or (`compiled`) through torch.compile (then also `compile_s`, not in `seconds`).
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    row = {"torch": torch.__version__, "variant": "torch.compile" if compiled else "eager"}
    if compiled:
        times, row["compile_s"] = compiled_train_seconds(p, steps, seeds)
    else:
        times = [train_seconds(p, steps, seed)[0] for seed in range(seeds)]
    return row | {
        "threads": torch.get_num_threads(),
        "seeds": seeds,
        "steps": steps,
        "seconds": float(sum(times)),
        "member_steps_per_s": seeds * steps / float(sum(times)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modulus", type=int, default=67)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="time the torch.compile variant")
    args = parser.parse_args()
    if not available():
        raise SystemExit("PyTorch is not installed: pip install torch==2.13.0")
    row = member_steps_per_second(args.modulus, args.steps, args.seeds, compiled=args.compile)
    compile_note = f", compile {row['compile_s']:.1f} s not timed" if args.compile else ""
    print(
        f"PyTorch {row['torch']} {row['variant']}, {row['threads']} threads, p={args.modulus}: "
        f"{row['member_steps_per_s']:.1f} member-steps/s ({args.seeds} seeds x {args.steps} "
        f"steps{compile_note})"
    )


if __name__ == "__main__":
    main()
