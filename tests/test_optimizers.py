"""The shared battery every entry of the optimizer table passes.

One row of `SETTINGS` per entry of `grokjax.optim.OPTIMIZERS` (the numbers that train the
tiny model); a new optimizer is one table entry and one row here.
"""

import chex
import jax
import numpy as np
import pytest

from grokjax.config import Config, Hparams
from grokjax.errors import ConfigError
from grokjax.optim import NOISY_OPTIMIZERS, OPTIMIZERS, readout_names
from grokjax.train import make_train, metric_names

SETTINGS = {
    "adamw": Hparams(learning_rate=1e-2, weight_decay=0.1),
    "adam": Hparams(learning_rate=1e-2),
    "sgd": Hparams(learning_rate=1e-1, weight_decay=1e-3),
    "sgld": Hparams(learning_rate=1e-1, weight_decay=1e-3, temperature=1e-6),
    "wand": Hparams(learning_rate=3e-3, temperature=0.05, friction=0.5),
    "wand-adamw": Hparams(learning_rate=3e-3, weight_decay=0.1, temperature=0.05),
    "muon": Hparams(learning_rate=1e-2, weight_decay=0.1),
}


def test_every_optimizer_has_a_row():
    assert set(SETTINGS) == set(OPTIMIZERS)


def test_the_config_takes_exactly_the_table():
    for name in OPTIMIZERS:
        assert Config(**{"optim.name": name}).optim.name == name
    with pytest.raises(ConfigError, match="optim.name='lion' is not allowed: one of adamw, adam"):
        Config(**{"optim.name": "lion"})


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_each_optimizer_trains_records_its_readouts_and_vmaps(tiny_cfg, name):
    cfg = tiny_cfg.replace(**{"optim.name": name, "optim.wand.force_cap": 1.2e5}, steps=40)
    hp = SETTINGS[name]
    assert set(OPTIMIZERS[name].readouts) <= set(metric_names(cfg))
    assert readout_names(cfg.optim) == OPTIMIZERS[name].readouts
    trainer = make_train(cfg)
    keys = jax.random.split(jax.random.key(0), 2)
    _, members = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)))(keys, hp)
    chex.assert_tree_all_finite(members)
    assert np.all(members["train_loss"][:, -1] < members["train_loss"][:, 0])
    _, single = jax.jit(trainer.train)(keys[1], hp)
    for metric in ("train_loss", "test_acc", "weight_norm"):
        np.testing.assert_allclose(members[metric][1], single[metric], rtol=2e-4, atol=1e-5)
    assert (name in NOISY_OPTIMIZERS) == OPTIMIZERS[name].noisy
