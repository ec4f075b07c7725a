"""A causal LM's Server probe from its per-request values: TTFT and TPOT as LoadGen computes
them, output tokens, and goodput (the requests that met both bounds).

Per request, from LoadGen's trace: TTFT = scheduled time -> FirstTokenComplete; latency =
scheduled time -> QuerySamplesComplete; TPOT = (latency - TTFT) / (n_tokens - 1) in integer
nanoseconds, the division LoadGen makes (logging.cc, RecordSampleCompletion), so the
percentiles of these lists are LoadGen's result_first_token_* and result_time_per_output_token_*.
A request meets the bounds when its own TTFT <= ttft_bound_ms and its own TPOT <= tpot_bound_ms;
goodput_qps = LoadGen's completed QPS x the share that met both.
"""

from __future__ import annotations

from typing import Any

from hf_cost.measure.latency import LatencyStats


def per_request_tpot_ms(latency_ms: float, ttft_ms: float, output_tokens: int) -> float:
    """LoadGen's TPOT of one request: (latency - TTFT) / (n_tokens - 1), integer ns."""
    if output_tokens < 2:
        raise ValueError(f"TPOT needs at least 2 output tokens, got {output_tokens}")
    return ((round(latency_ms * 1e6) - round(ttft_ms * 1e6)) // (output_tokens - 1)) / 1e6


def met_bounds(ttft_ms: list[float], tpot_ms: list[float], ttft_bound_ms: float, tpot_bound_ms: float) -> list[bool]:
    """Per request: its TTFT and its TPOT both within their bounds."""
    return [a <= ttft_bound_ms and b <= tpot_bound_ms for a, b in zip(ttft_ms, tpot_ms)]


def probe_tokens(ttft_ms: list[float], tpot_ms: list[float], output_tokens: list[int], completed_qps: float,
                 completed_tokens_per_s: float | None, ttft_bound_ms: float, tpot_bound_ms: float) -> dict[str, Any]:
    """The `tokens` block of one probe (core.server_metrics.ServerTokens)."""
    n = len(ttft_ms)
    if not n or len(tpot_ms) != n or len(output_tokens) != n:
        raise ValueError("probe_tokens: one TTFT, TPOT and token count per request")
    good = sum(met_bounds(ttft_ms, tpot_ms, ttft_bound_ms, tpot_bound_ms))
    return {
        "ttft_ms": LatencyStats.from_values(ttft_ms).to_dict(),
        "tpot_ms": LatencyStats.from_values(tpot_ms).to_dict(),
        "output_tokens": sum(output_tokens),
        "output_tokens_mean": sum(output_tokens) / n,
        "output_tokens_per_s": completed_tokens_per_s,
        "goodput_requests": good,
        "goodput_share": good / n,
        "goodput_qps": completed_qps * good / n,
    }
