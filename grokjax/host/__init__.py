"""Everything that touches disk, devices and processes: the one host loop, run
directories, checkpoints, device mapping, and the jobs built on them (ensembles,
sweeps, comparisons, landscape measurements)."""
