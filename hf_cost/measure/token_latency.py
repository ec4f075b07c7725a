"""A causal LM's per-request figures: time to first token, time per output token, output tokens.

Inputs are the raw per-request lists (what results.json keeps), so every figure here can be
recomputed from the file. TTFT and TPOT get LoadGen's percentiles and the MLPerf early-stopping
estimate at the step's target percentile, as request latency does.
"""

from __future__ import annotations

from typing import Any

from hf_cost.measure.early_stopping import early_stopping_estimate
from hf_cost.measure.latency import LatencyStats


def token_metrics(
    latencies_ms: list[float],
    ttft_ms: list[float],
    tpot_ms: list[float | None],
    output_tokens: list[int],
    prompt_tokens: list[int],
    target_percentile: float,
) -> dict[str, Any]:
    """The `tokens` block of a single-stream result (core.metrics.TokenLatencies) from raw lists,
    one entry per request; a TPOT of None (a one-token answer) is left out of the TPOT figures."""
    n = len(latencies_ms)
    if not n or any(len(x) != n for x in (ttft_ms, tpot_ms, output_tokens, prompt_tokens)):
        raise ValueError("token_metrics: one entry per request in every list")
    tpots = [t for t in tpot_ms if t is not None]
    total = sum(output_tokens)
    return {
        "ttft_ms": LatencyStats.from_values(ttft_ms).to_dict(),
        "tpot_ms": LatencyStats.from_values(tpots).to_dict() if tpots else None,
        "ttft_early_stopping_ms": early_stopping_estimate(sorted(ttft_ms), target_percentile).estimate_ms,
        "tpot_early_stopping_ms": (
            early_stopping_estimate(sorted(tpots), target_percentile).estimate_ms if tpots else None),
        "output_tokens": {"total": total, "mean": total / n, "min": min(output_tokens), "max": max(output_tokens)},
        "output_tokens_per_s": total / (sum(latencies_ms) / 1e3) if sum(latencies_ms) > 0 else 0.0,
        "prompt_tokens_mean": sum(prompt_tokens) / n,
    }
