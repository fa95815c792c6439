"""Probe WanD's dynamics on x+y mod 67, printing every 100 steps per seed: x = ln L_train,
test and train accuracy, weight norm |w|, the entropy slope g = dS/dx at x, and |v|.

    python scripts/wand_probe.py STEPS SEEDS [CONFIG_JSON [HPARAMS_JSON]]
    python scripts/wand_probe.py 2000 0,1                          # the paper's literal WanD
    python scripts/wand_probe.py 3000 0,1 '{"wand_force_cap": 80000}'
    python scripts/wand_probe.py 3000 0,1 '{"wand_force_cap": 80000}' '{"temperature": 0.25}'
"""

import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import grokjax as gj
from grokjax.optim import wand_grid
from grokjax.optim.wand import WandState
from grokjax.wanglandau.entropy import slopes_at

gj.use_recommended_cpu_flags()  # before JAX starts, for the plain jax.jit below
steps = int(sys.argv[1])
seeds = [int(s) for s in sys.argv[2].split(",")]
overrides = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
hp_over = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
cfg = gj.get_preset("paper-wand-add").config.replace(steps=steps, **overrides)
hp = gj.get_preset("paper-wand-add").hparams._replace(**hp_over)
tr = gj.make_train(cfg)
grid = wand_grid(cfg.optim.wand)
init = jax.jit(jax.vmap(tr.init, in_axes=(0, None)))
run = jax.jit(lambda s, h: jax.lax.map(lambda a: tr.run(a, h, jnp.array([10], jnp.int32)), s))
state = init(gj.member_keys(seeds), hp)


def wstate(opt_state):
    for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, WandState)):
        if isinstance(leaf, WandState):
            return leaf


t0 = time.time()
for k in range(steps // 10):
    state, m = run(state, hp)
    ws = wstate(state.opt_state)
    x = np.asarray(m["ln_train_loss"][:, 0])
    wcfg = cfg.optim.wand
    g = [  # dS/dx as WanD reads it: the same rules (grokjax.wanglandau.entropy.slopes_at)
        float(
            slopes_at(
                ws.deposits[j],
                [grid],
                jnp.float32(xj)[None],
                bias_strength=wcfg.bias_strength,
                bias_floor=wcfg.loss_floor,
                edge_strength=wcfg.edge_strength,
            )[0]
        )
        for j, xj in enumerate(x)
    ]
    vnorm = np.asarray(jax.vmap(optax.tree.norm)(ws.velocity))
    if k % 10 == 9:
        cols = {
            "x": np.round(x, 2),
            "test": np.round(np.asarray(m["test_acc"][:, 0]), 3),
            "train": np.round(np.asarray(m["train_acc"][:, 0]), 3),
            "|w|": np.round(np.asarray(m["weight_norm"][:, 0]), 1),
            "g": np.round(g, 0),
            "|v|": np.round(vnorm, 1),
        }
        line = " ".join(f"{name} {value}" for name, value in cols.items())
        print(f"step {(k + 1) * 10:5d} {line}", flush=True)
print("time", time.time() - t0)
