"""Engines that drive candidates the way a serving system does: a dynamic batcher (batcher.py),
MLPerf LoadGen as the load generator around it (loadgen.py, its logs: loadgen_log.py), and the
search for the highest load that stays within a latency bound (peak.py).

Below the steps layer, beside cards/select/training: they take a Candidate and a performance
set, never a scenario model, and import torch and mlperf_loadgen inside the functions that
need them.
"""
