"""TensorBoard event files of a run, one event stream per member, so TensorBoard overlays
the seeds: `tensorboard --logdir RUN_DIR/tensorboard`.

Opt-in (`run_ensemble(tensorboard=True)`, `grokjax run --tensorboard`); written with
tensorboardX, which needs neither TensorFlow nor PyTorch (`pip install
grokjax[tensorboard]`). Member m with seed s writes `tensorboard/member-m-seed-s/`, one
scalar per metric and evaluation, under the metric's name ('train_acc', 'msd@100', ...),
and the member's hyperparameters (its seed and every `Hparams` number) as TensorBoard's
HParams record, so the HParams dashboard lists the members side by side with their
final accuracies and losses. A resumed run writes its streams again from the first
evaluation, so they hold each evaluation once.
"""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from grokjax.errors import ConfigError

TENSORBOARD_DIR = "tensorboard"
HPARAM_METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")  # beside the hparams


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ConfigError(
            "tensorboard=True needs tensorboardX: pip install 'grokjax[tensorboard]'"
        ) from None
    return SummaryWriter


class TensorBoardStream:
    """The per-member event streams of a run: `append` after each chunk (the first call
    also writes the evaluations before it, restored by a resume), `finish` at the end."""

    def __init__(
        self,
        out_dir: Path,
        steps_E: np.ndarray,
        seeds: Sequence[int],
        hparams: Mapping[str, Sequence[float]] | None = None,
    ):
        self.writer_class = _summary_writer()  # fails before any compute if missing
        self.root = Path(out_dir) / TENSORBOARD_DIR
        self.steps_E = np.asarray(steps_E)
        self.seeds = [int(s) for s in seeds]
        self.names = [f"member-{m}-seed-{s}" for m, s in enumerate(self.seeds)]
        self.hparams = {k: np.asarray(v).reshape(-1) for k, v in (hparams or {}).items()}
        self.writers = None

    def _open(self) -> list:
        from tensorboardX.summary import hparams as hparams_summary

        if self.root.exists():  # a resumed run: start the streams afresh
            shutil.rmtree(self.root)
        writers = []
        for m, name in enumerate(self.names):
            writer = self.writer_class(str(self.root / name), flush_secs=10)
            numbers = {k: float(v[m] if v.size > 1 else v[0]) for k, v in self.hparams.items()}
            record = {"member": m, "seed": self.seeds[m], **numbers}
            for summary in hparams_summary(record, {k: 0.0 for k in HPARAM_METRICS}):
                writer.file_writer.add_summary(summary)
            writers.append(writer)
        return writers

    def append(self, lo: int, hi: int, histories: Mapping[str, np.ndarray]) -> None:
        first = self.writers is None
        if first:
            self.writers = self._open()
        start = 0 if first else lo
        for m, writer in enumerate(self.writers):
            for e in range(start, hi):
                step = int(self.steps_E[e])
                for name, values in histories.items():
                    value = float(values[m, e])
                    if not math.isnan(value):
                        writer.add_scalar(name, value, step)
            writer.flush()

    def finish(self, diverged_members: Sequence[int] = ()) -> None:
        for writer in self.writers or []:
            writer.close()

    def interrupted(self, error: BaseException | None = None) -> None:
        with contextlib.suppress(OSError):
            self.finish()
