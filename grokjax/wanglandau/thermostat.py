"""The Langevin thermostat shared by WanD (`grokjax.optim.wand`) and WLMD
(`grokjax.wanglandau.wlmd`).

One step of the discrete Langevin velocity update (a BAOAB-like friction step with the
force kick folded in), per coordinate:

    v <- (1 - c_f) v + a dt + sqrt(c_f (2 - c_f) kT) xi,     xi ~ N(0, 1)

with c_f in (0, 1] the friction per step, a the force, dt the timestep and kT the
temperature. Without a force the velocity relaxes to a stationary variance of exactly
kT: Var' = (1 - c_f)^2 Var + c_f (2 - c_f) kT has the fixed point Var = kT (the
fluctuation-dissipation relation for this discrete step), which is why the thermal
initial velocity is N(0, kT). The same per-leaf standard normals also serve the SGLD
noise of `grokjax.optim.baselines.langevin_noise`.

All three are pure functions of their arguments; timestep, friction and temperature may
be traced arrays (one per vmapped member).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def normal_like(key: jax.Array, tree: Any) -> Any:
    """Standard normals like each leaf of `tree`, one split key per leaf in
    `jax.tree.leaves` order (the stream of `optax.tree.random_like`)."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    noise = [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)]
    return jax.tree.unflatten(treedef, noise)


def thermal_velocity(key: jax.Array, params: Any, temperature, thermal: bool = True) -> Any:
    """The initial velocity like `params`: N(0, kT) per coordinate, or zeros (`thermal`
    False: a walker at rest)."""
    if not thermal:
        return jax.tree.map(jnp.zeros_like, params)
    std = jnp.sqrt(jnp.asarray(temperature, jnp.float32))
    return jax.tree.map(lambda xi: (std * xi).astype(xi.dtype), normal_like(key, params))


def langevin_step(velocity: Any, force: Any, key: jax.Array, timestep, friction, temperature):
    """One thermostat step (module docstring) of the pytree v under the force a (an
    acceleration: unit mass), xi from `normal_like(key, velocity)`; dtypes kept."""
    c_f = jnp.asarray(friction, jnp.float32)
    noise_std = jnp.sqrt(c_f * (2.0 - c_f) * temperature)
    noise = normal_like(key, velocity)

    def one(v, a, xi):
        return ((1.0 - c_f) * v + a * timestep + noise_std * xi).astype(v.dtype)

    return jax.tree.map(one, velocity, force, noise)
