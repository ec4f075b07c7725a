"""Measurements: latency statistics, early stopping, memory, FLOPs, environment."""
