"""A minimal PyTorch eager reference of the paper's training loop, for speed comparisons.

Written for this benchmark, the way PyTorch grokking code is usually written (Nanda et
al.'s one-layer transformer: token and position embeddings, 4-head causal attention
over the three positions, a ReLU MLP, the unembedding read at the last position; no
LayerNorm), full batch, AdamW with betas (0.9, 0.98), a 10-step linear warm-up and
weight decay 1, one seed after another. It does the work grokjax's trainer does per
step (forward and backward over the whole training set, one AdamW update) and one
evaluation at the end of each timed call. PyTorch is an optional benchmark dependency
(`pip install torch==2.13.0`); `available()` says whether it is installed.

    python benchmarks/pytorch_reference.py --steps 100 --seeds 2
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


def train_seconds(p: int, steps: int, seed: int, lr: float = 3e-3) -> tuple[float, float]:
    """(seconds for `steps` AdamW steps plus one evaluation, final train loss), timed
    after one warm-up step."""
    import torch

    torch.manual_seed(seed)
    x_tr, y_tr, x_te, y_te = (torch.as_tensor(a) for a in modular_data(p, 0.5))
    model = make_model(p)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(s / 10, 1.0))

    def step():
        loss = torch.nn.functional.cross_entropy(model(x_tr), y_tr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return loss

    step()
    t = time.perf_counter()
    for _ in range(steps):
        loss = step()
    with torch.no_grad():
        (model(x_te).argmax(-1) == y_te).float().mean().item()
    return time.perf_counter() - t, float(loss.detach())


def member_steps_per_second(p: int, steps: int, seeds: int, threads: int | None = None) -> dict:
    """One seed after another, as PyTorch grokking code runs: total steps / total time."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    times = [train_seconds(p, steps, seed)[0] for seed in range(seeds)]
    return {
        "torch": torch.__version__,
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
    args = parser.parse_args()
    if not available():
        raise SystemExit("PyTorch is not installed: pip install torch==2.13.0")
    row = member_steps_per_second(args.modulus, args.steps, args.seeds)
    print(
        f"PyTorch {row['torch']} eager, {row['threads']} threads, p={args.modulus}: "
        f"{row['member_steps_per_s']:.1f} member-steps/s ({args.seeds} seeds x {args.steps} steps)"
    )


if __name__ == "__main__":
    main()
