"""SHA-256 of every metric column of short preset runs: proof that a refactor kept the numbers.

    python scripts/metrics_fingerprint.py --out before.json
    (change the code)
    python scripts/metrics_fingerprint.py --compare before.json

Each preset runs `--steps` updates on 2 seeds through the `grokjax run` command; a column
is compared by the hash of its float64 bytes, so "equal" means bit-identical. Columns that
exist on one side only are listed, not compared.
"""

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

PRESETS = (
    "paper-adamw-add",
    "paper-wand-add",
    "wand-adamw-add",
    "digits-omnigrok",
    "parity-merrill",
)


def fingerprint(preset: str, steps: int, work: Path) -> dict[str, str]:
    out = work / preset
    command = [
        sys.executable,
        "-m",
        "grokjax.cli",
        "run",
        "--preset",
        preset,
        "--steps",
        str(steps),
        "--seeds",
        "2",
        "--set",
        "eval.every=10",
        "--set",
        "eval.chunk_evals=2",
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True, capture_output=True)
    frame = pd.read_parquet(out / "metrics.parquet")
    return {
        column: hashlib.sha256(frame[column].to_numpy().astype("float64").tobytes()).hexdigest()[
            :16
        ]
        for column in frame.columns
        if pd.api.types.is_numeric_dtype(frame[column])
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", help="write the fingerprints to this JSON file")
    parser.add_argument("--compare", help="compare against fingerprints written earlier")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        now = {p: fingerprint(p, args.steps, Path(work)) for p in PRESETS}
    if args.out:
        Path(args.out).write_text(json.dumps(now, indent=1))
    if not args.compare:
        return 0
    before = json.loads(Path(args.compare).read_text())
    failed = False
    for preset, columns in before.items():
        common = sorted(set(columns) & set(now[preset]))
        differ = [c for c in common if columns[c] != now[preset][c]]
        extra = sorted(set(now[preset]) - set(columns))
        missing = sorted(set(columns) - set(now[preset]))
        failed |= bool(differ or missing)
        print(
            f"{preset}: {len(common) - len(differ)}/{len(common)} columns bit-identical"
            + (f"; differ: {differ}" if differ else "")
            + (f"; new: {extra}" if extra else "")
            + (f"; missing: {missing}" if missing else "")
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
