"""Members sharded over several devices give the numbers of an unsharded run.

JAX reads the virtual device count once, at start-up, so the check runs in a fresh
interpreter with XLA_FLAGS=--xla_force_host_platform_device_count=4.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from grokjax.config import Config, Hparams
    from grokjax.host.experiment import member_mesh, run_ensemble

    assert jax.device_count() == 4, jax.devices()
    out = sys.argv[1]
    # Momentum SGD: AdamW would amplify the round-off between differently compiled
    # programs (sharded or not, vmapped or not) to ~1e-3 in 30 steps, more so on CPUs
    # without AVX-512; SGD keeps it near 1e-6, so the comparison can stay tight.
    cfg = Config(steps=30, **{"data.modulus": 11, "model.d_model": 32, "model.n_heads": 4,
                              "model.d_mlp": 64, "eval.every": 10, "eval.chunk_evals": 2,
                              "optim.name": "sgd"})
    hp = Hparams(learning_rate=np.array([0.03, 0.1, 0.2, 0.03, 0.1, 0.2]),
                 weight_decay=1.0)
    seeds = [0, 0, 0, 1, 1, 1]  # 6 members on 4 devices: padded to 8, padding dropped
    one = run_ensemble(cfg, hp, seeds, out + "/one", progress=False, devices=None)
    four = run_ensemble(cfg, hp, seeds, out + "/four", progress=False, devices=4)
    batched = run_ensemble(cfg, hp, seeds, out + "/b", progress=False, devices=4,
                           member_batch=None)
    def rel(a, b):  # difference relative to the value (1 + |b|: absolute near zero)
        return float(np.max(np.abs(a - b) / (1.0 + np.abs(b))))
    diffs = {k: rel(four.histories[k], one.histories[k]) for k in one.histories}
    diffs_b = {k: rel(batched.histories[k], one.histories[k]) for k in one.histories}
    print(json.dumps({
        "mesh": member_mesh("auto").size,
        "diffs": diffs,
        "diffs_vmapped": diffs_b,
        "shape": list(four.histories["test_acc"].shape),
        "state_members": int(four.state.step.shape[0]),
        "steps_equal": all(
            a[k] == b[k]
            for a, b in zip(four.summary["members"], one.summary["members"])
            for k in ("memorisation_step", "generalisation_step", "seed")
        ),
    }))
    """
)


def test_sharded_run_equals_unsharded_on_four_virtual_devices(tmp_path):
    env = {
        **os.environ,
        # the caller's flags too (an instruction-set cap, the recommended CPU flags)
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["mesh"] == 4 and result["shape"] == [6, 4] and result["state_members"] == 6
    for kind in ("diffs", "diffs_vmapped"):  # sharded one at a time, and vmapped
        for name, diff in result[kind].items():
            assert diff <= 1e-5, (kind, name, diff)
    assert result["steps_equal"]
