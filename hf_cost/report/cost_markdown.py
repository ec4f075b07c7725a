"""report.md's cost section: one table per candidate figure set, each figure with its basis."""

from __future__ import annotations

from typing import Any

FIELDS = (
    ("per_million_at_throughput", "per 1M inferences, at the offline throughput"),
    ("per_million_p90_single_stream", "per 1M inferences, one stream at p90"),
    ("per_million_at_slo", "per 1M inferences, at the server's peak QPS under its latency bound"),
    ("per_million_output_tokens_at_throughput", "per 1M output tokens, at the offline token rate"),
    ("per_million_output_tokens_single_stream", "per 1M output tokens, one request at a time"),
    ("per_million_output_tokens_at_slo", "per 1M output tokens, at the server's VALID rate under its bounds"),
    ("serving_per_month", "serving the workload, 30 days"),
    ("inference_flops_per_day", "C_infer per day"),
    ("training_machine_hours", "training machine-hours (as run)"),
    ("training_cost", "training cost (as run)"),
    ("workload_training_hours", "training hours (workload)"),
    ("workload_training_cost", "training cost (workload)"),
    ("train_flops_measured", "C_train measured"),
    ("train_flops_3x_forward", "C_train, 3·C_fwd estimate"),
    ("energy_per_1k_inferences", "energy per 1k inferences"),
    ("co2_per_1k_inferences", "CO2-eq per 1k inferences"),
    ("training_energy", "energy of the training step"),
    ("training_co2", "CO2-eq of the training step"),
)


def cost_sections(costs: Any) -> list[str]:
    if costs is None:
        return []
    price = "no price (hardware.price_per_hour)" if costs.price_per_hour is None else (
        f"{costs.price_per_hour:g} {costs.currency}/hour")
    lines = ["", "## Cost", "", f"Machine price: {price}. Workload: "
             + ", ".join(f"{k} {v:g}" for k, v in costs.workload.items() if v is not None) + ".", ""]
    lines += ["| candidate | figure | value | derived from |", "|---|---|---|---|"]
    for row in costs.rows:
        for key, label in FIELDS:
            f = getattr(row, key)
            if f is not None:
                lines.append(f"| {row.candidate} | {label} | {_value(f)} | {f.derived_from} |")
        for v in row.verdicts:
            lines.append(f"| {row.candidate} | budget | {v} | budget block |")
    lines += ["", costs.method]
    return lines


def _value(f: Any) -> str:
    if f.unit == "FLOP":
        return f"{f.value / 1e12:.4g} TFLOP"
    if f.unit == "kWh":
        return f"{f.value:.3g} kWh ({f.value * 3.6e6:.3g} J)"
    if f.unit == "h":
        return f"{f.value:.4g} h"
    return f"{f.value:.4g} {f.unit}"
