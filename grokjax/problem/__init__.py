"""The problem a network learns: tasks, their data splits, the networks, the metrics."""
