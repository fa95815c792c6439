"""Wang-Landau molecular dynamics: the grid and entropy estimate, the Langevin
thermostat, and the sampler. Pure JAX; WanD (`grokjax.optim.wand`) and the landscape
program (`grokjax.landscape`) both build on it."""
