"""Two-seed probes of WanD variants on x+y mod 67: thresholds per seed, every 10 steps.

    python scripts/wand_variants.py STEPS VARIANT[,VARIANT...] [SEEDS]
    python scripts/wand_variants.py 2000 kT0            # the entropy force without noise
    python scripts/wand_variants.py 2500 L0m3,L0m4      # the bias floor raised

Every variant starts from `wand-capped-add` (dt 3e-3, kT 0.5, c_f 0.5, L0 -8, force cap
1.2e5) and changes one thing; blends mix it with the paper's AdamW (weight decay 1).
Prints, per seed: memorisation step (train >= 99 %), first steps at test >= 90 / 95 /
99 % (None: not within STEPS), the final test accuracy, the lowest test accuracy of
the last 500 steps and the final weight norm.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import grokjax as gj
from grokjax import xla_flags as gj_flags
from grokjax.optim import make_optimizer, warmup
from grokjax.optim.blend import blend, ramp_weight
from grokjax.stats.summary import first_crossing

BASE = gj.get_preset("wand-capped-add")


def wand_with(**changes):
    cfg = BASE.config.replace(**changes)
    return lambda hp, key: make_optimizer(cfg.optim, hp, key)


def adamw(hp, key):
    return optax.adamw(warmup(hp.learning_rate, 10), b1=0.9, b2=0.98, weight_decay=1.0)


def mixed(weight, **kwargs):
    return lambda hp, key: blend(wand_with()(hp, key), adamw(hp, key), weight, **kwargs)


# name: (optimizer factory, hparam changes)
VARIANTS = {
    "wand": (wand_with(), {}),
    "kT0": (wand_with(), {"temperature": 0.0}),
    "kT1": (wand_with(), {"temperature": 1.0}),
    "L0m3": (wand_with(wand_loss_floor=-3.0), {}),
    "L0m4": (wand_with(wand_loss_floor=-4.0), {}),
    "mix50": (mixed(lambda o: 0.5 + 0.0 * o), {}),
    "lossramp": (mixed(ramp_weight(-3.0, 0.0), transform=jnp.log), {}),
    "lossramp2": (mixed(ramp_weight(-2.0, 1.0), transform=jnp.log), {}),
}


def main() -> None:
    steps = int(sys.argv[1])
    names = sys.argv[2].split(",")
    seeds = [int(s) for s in sys.argv[3].split(",")] if len(sys.argv) > 3 else [0, 1]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"variant {unknown} is not allowed: one of {', '.join(VARIANTS)}")
    cfg = BASE.config.replace(steps=steps, **{"eval.every": 10})
    steps_E = np.asarray(cfg.eval_steps)
    for name in names:
        factory, changes = VARIANTS[name]
        trainer = gj.make_train(cfg, optimizer=factory)
        hp = BASE.hparams._replace(**changes)
        t0 = time.time()
        train = trainer.train
        run = jax.jit(lambda keys, h, train=train: jax.lax.map(lambda k: train(k, h), keys))
        _, metrics = run(gj.member_keys(seeds), hp)
        m = jax.tree.map(np.asarray, metrics)
        for j, seed in enumerate(seeds):
            mem = first_crossing(m["train_acc"][j], steps_E, 0.99)
            gens = [first_crossing(m["test_acc"][j], steps_E, t) for t in (0.9, 0.95, 0.99)]
            print(
                f"{name:10s} seed {seed} memorised {mem} test 90/95/99 % at {gens} "
                f"final test {m['test_acc'][j, -1]:.3f} "
                f"lowest of the last 500 steps {m['test_acc'][j, -50:].min():.3f} "
                f"|w| {m['weight_norm'][j, -1]:.1f}",
                flush=True,
            )
        print(f"{name} took {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    gj_flags.use_recommended_cpu_flags()  # before JAX starts, for plain jax.jit too
    main()
