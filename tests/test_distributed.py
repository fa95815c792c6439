"""Two processes train one ensemble: the numbers and the run directory of one process.

Each process is a fresh interpreter with two virtual CPU devices
(`--xla_force_host_platform_device_count=2`), joined by `jax.distributed.initialize`
on 127.0.0.1 and JAX's gloo CPU collectives, so the mesh has four devices in two
processes and six members are padded to eight. Both processes first run the CLI
(`grokjax run --distributed --coordinator ...`), then the library: `run_ensemble` over
seeds x learning rates, stopped after its first chunk and resumed. A third process
trains the same members alone, unsharded, as the reference. Threshold steps must be
equal; float metrics equal within a tolerance that covers CPUs with and without
AVX-512 (run with XLA_FLAGS=--xla_cpu_max_isa=AVX2 to check: the flags of the test's
environment are passed on).
"""

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
from test_experiment import RUN_FILES  # what a run writes besides checkpoints/

from grokjax.host.lock import LOCK_FILE

COMMON = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import jax
    import numpy as np

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # Every run after the first loads its programs from the persistent cache.
    jax.config.update("jax_compilation_cache_dir", sys.argv[-1] + "-cache")
    out = Path(sys.argv[-1])
    # x+y mod 11 on the MLP (it traces and compiles in half the transformer's time):
    # 30 steps, 4 evaluations in 2 chunks. A sharded program rounds a few last bits
    # differently from an unsharded one (1e-7 relative); in few steps, at learning
    # rates that do not amplify them (the transformer at seed 0 and 3e-3 turns them
    # into 1e-2 by step 30), they stay far inside the tolerance. The memorisation
    # threshold is low, so some members reach it (steps to compare) and some do not,
    # each at least one example away from it at every evaluation.
    SETTINGS = ["model.name=mlp", "data.modulus=11", "model.d_model=32", "model.d_mlp=64",
                "steps=30", "eval.every=10", "eval.chunk_evals=2", "eval.memorise_threshold=0.5",
                "learning_rate=1e-2"]
    CLI_ARGS = ["run", "--preset", "default", "--seeds", "6", "--no-progress"]
    CLI_ARGS += [part for item in SETTINGS for part in ("--set", item)]
    SEEDS = [0, 0, 1, 1, 2, 2]
    LEARNING_RATES = [1e-3, 1e-2] * 3

    def library_members():
        from grokjax.config import apply_overrides
        from grokjax.presets import get_preset

        preset = get_preset("default")
        cfg, hp = apply_overrides(preset.config, preset.hparams, SETTINGS)
        return cfg, hp._replace(learning_rate=np.array(LEARNING_RATES))

    T0 = time.perf_counter()

    def mark(what):  # in the log: where the time goes
        print(f"[{time.perf_counter() - T0:.1f} s] {what}", flush=True)

    def dump(result, name):
        (out / name).write_text(json.dumps({
            "histories": {k: v.tolist() for k, v in result.histories.items()},
            "summary": result.summary.to_dict(),
            "state_members": int(result.state.step.shape[0]),
            "processes": jax.process_count(),
            "devices": jax.device_count(),
        }))
    """
)

WORKER = COMMON + textwrap.dedent(
    """
    process_id, address = int(sys.argv[1]), sys.argv[2]
    from grokjax import cli
    from grokjax.host.experiment import run_ensemble

    rc = cli.main([*CLI_ARGS, "--out", str(out / "cli"), "--distributed", "--coordinator",
                   address, "--num-processes", "2", "--process-id", str(process_id)])
    assert rc == 0, rc
    mark("cli run")
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 4, 2)

    class Interrupted(Exception):
        pass

    def interrupt(chunk):
        if chunk.chunk == 0:
            raise Interrupted

    cfg, hp = library_members()
    try:
        run_ensemble(cfg, hp, SEEDS, out / "lib", progress=False, on_chunk=interrupt)
        raise SystemExit("the run was not interrupted")
    except Interrupted:
        mark("library run, interrupted")
    dump(run_ensemble(cfg, hp, SEEDS, out / "lib", progress=False, resume=True),
         f"process-{process_id}.json")
    mark("library run, resumed")
    """
)

REFERENCE = COMMON + textwrap.dedent(
    """
    from grokjax import cli
    from grokjax.host.experiment import run_ensemble

    assert jax.process_count() == 1
    assert cli.main([*CLI_ARGS, "--out", str(out / "cli"), "--devices", "1"]) == 0
    mark("cli run")
    cfg, hp = library_members()
    dump(run_ensemble(cfg, hp, SEEDS, out / "lib", progress=False, devices=None),
         "reference.json")
    mark("library run")
    """
)

TIMEOUT_S = 240  # a safety net: the test takes about a minute on two cores
RTOL, ATOL = 1e-4, 1e-5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(**extra: str) -> dict:
    """The test's environment (its XLA_FLAGS kept, so a capped ISA applies), on CPU,
    importing this checkout, without proxies: gRPC would send 127.0.0.1 through them.

    XLA optimises less (`--xla_backend_optimization_level=0`, for all three processes):
    it compiles the trainer in a fraction of the time, and three processes may share two
    cores. The comparisons are between programs compiled alike.
    """
    env = {k: v for k, v in os.environ.items() if "_proxy" not in k.lower()}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    flags = ["--xla_backend_optimization_level=0", os.environ.get("XLA_FLAGS", "")]
    flags.append(extra.pop("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = " ".join(f for f in flags if f)
    env.update(extra)
    return env


def _launch(tmp_path: Path) -> dict[str, tuple[int, str]]:
    """Run both workers and the reference at once; (return code, output) by name.

    All three are killed if any fails or the time runs out, so a worker waiting for a
    dead partner cannot hang the test.
    """
    address = f"127.0.0.1:{_free_port()}"
    devices = "--xla_force_host_platform_device_count=2"
    commands = {
        f"process {i}": ([sys.executable, "-c", WORKER, str(i), address], _env(XLA_FLAGS=devices))
        for i in range(2)
    }
    commands["reference"] = ([sys.executable, "-c", REFERENCE], _env())
    procs = {}
    for name, (argv, env) in commands.items():
        log = open(tmp_path / f"{name.replace(' ', '-')}.log", "w+")
        argv = [*argv, str(tmp_path / ("ref" if name == "reference" else "dist"))]
        procs[name] = (subprocess.Popen(argv, env=env, stdout=log, stderr=log), log)
    deadline = time.monotonic() + TIMEOUT_S
    codes = {}
    try:
        while len(codes) < len(procs) and time.monotonic() < deadline:
            for name, (proc, _) in procs.items():
                if name not in codes and proc.poll() is not None:
                    codes[name] = proc.returncode
            if any(codes.values()):
                break
            time.sleep(0.2)
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    done = {}
    for name, (_, log) in procs.items():
        log.seek(0)
        done[name] = (codes.get(name, "killed"), log.read())
        log.close()
    return done


def _assert_json_close(got, want, where="summary"):
    """Integers, strings and None (censored) exactly; floats within the tolerance."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            _assert_json_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_json_close(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool) and got is not None:
        assert math.isclose(got, want, rel_tol=RTOL, abs_tol=ATOL) or (
            math.isnan(got) and math.isnan(want)
        ), (where, got, want)
    else:
        assert got == want and type(got) is type(want), (where, got, want)


def _assert_same_run_dir(got: Path, want: Path, cli: bool) -> None:
    names = {p.name for p in got.iterdir()}
    report = {"report.html"} if cli else set()  # the command writes it, the library not
    assert names == set(RUN_FILES) | {"checkpoints", LOCK_FILE} | report, names  # no temps
    assert sorted(p.name for p in (got / "checkpoints").iterdir()) == sorted(
        p.name for p in (want / "checkpoints").iterdir()
    )
    configs = [json.loads((d / "config.json").read_text()) for d in (got, want)]
    places = [config.pop("topology") for config in configs]
    assert configs[0] == configs[1]  # the same settings, jax version and backend
    assert (places[0]["processes"], places[0]["devices"], places[0]["padded_members"]) == (2, 4, 8)
    assert (places[1]["processes"], places[1]["devices"], places[1]["members"]) == (1, 1, 6)
    frames = [pd.read_parquet(d / "metrics.parquet") for d in (got, want)]
    assert list(frames[0].columns) == list(frames[1].columns)
    for column in frames[1].columns:
        a, b = frames[0][column].to_numpy(), frames[1][column].to_numpy()
        assert a.dtype == b.dtype, column
        if np.issubdtype(b.dtype, np.floating) and column not in ("step",):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=column)
        else:
            np.testing.assert_array_equal(a, b, err_msg=column)
    summaries = [json.loads((d / "summary.json").read_text()) for d in (got, want)]
    _assert_json_close(*summaries)


def test_two_processes_train_the_ensemble_of_one(tmp_path):
    done = _launch(tmp_path)
    report = "\n".join(f"--- {name}: {rc}\n{log[-3000:]}" for name, (rc, log) in done.items())
    assert all(rc == 0 for rc, _ in done.values()), report

    ref = json.loads((tmp_path / "ref" / "reference.json").read_text())
    assert (ref["processes"], ref["devices"]) == (1, 1)
    results = [json.loads((tmp_path / "dist" / f"process-{i}.json").read_text()) for i in (0, 1)]
    assert results[0] == results[1], "the processes gathered different numbers"
    got = results[0]
    assert (got["processes"], got["devices"], got["state_members"]) == (2, 4, 6)
    assert got["histories"].keys() == ref["histories"].keys()
    for name, values in ref["histories"].items():
        want = np.asarray(values, np.float32)
        assert want.shape == (6, 4), (name, want.shape)
        np.testing.assert_allclose(
            np.asarray(got["histories"][name], np.float32),
            want,
            rtol=RTOL,
            atol=ATOL,
            err_msg=name,
        )
    _assert_json_close(got["summary"], ref["summary"])
    steps = [m["memorisation_step"] for m in ref["summary"]["members"]]
    assert any(s is None for s in steps) and any(s is not None for s in steps), steps

    for run in ("cli", "lib"):
        _assert_same_run_dir(tmp_path / "dist" / run, tmp_path / "ref" / run, run == "cli")


def test_process_options_need_distributed(capsys):
    """Without --distributed the coordinator settings would be ignored: refused, before
    any JAX backend starts."""
    from grokjax import cli

    argv = ["run", "--coordinator", "127.0.0.1:1234", "--process-id", "1", "--steps", "1"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--coordinator, --process-id are not allowed without --distributed" in err
