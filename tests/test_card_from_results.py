"""hf_cost.cards.from_results / command: card sections, eval results and CO2 from a RunResult.

The results are written by hand as a dict (docs/results.md's keys, two candidates, an accuracy
step, a drift step, costs, a selection, energy on the fine-tuning step), validated as the loader
validates them; every expected string is worked out by hand in a comment. "Outside the markers"
is cut with this file's own regex; the model-index is read back through huggingface_hub.ModelCard.
The shipped card is copied, never modified.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from hf_cost.cards.command import push_card, update_card
from hf_cost.cards.from_results import (
    card_candidate,
    card_sections,
)
from hf_cost.cards.hub_metadata import co2_of, eval_results
from hf_cost.errors import UserError
from hf_cost.report.schema import RunResult

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "model_cards" / "all-MiniLM-L6-v2-support-tickets" / "README.md"
CSV = b"id,date,period,text,label\n1,2023-01-02,2023-H1,hello,praise\n"


def _ds(where: dict | None, select: str) -> dict:
    return {"id": None, "path": "../data/tickets.csv", "config": None, "split": "train", "revision": None,
            "text_column": "text", "label_column": "label", "where": where, "select": select,
            "holdout_fraction": 0.2, "max_samples": None, "stratify": True, "missing": "drop", "seed": 0}


def _acc(value, low, high, n):  # type: ignore[no-untyped-def]
    return {"value": value, "ci_low": low, "ci_high": high, "ci_level": 0.95, "n": n,
            "method": "percentile bootstrap, 1000 resamples, seed 0"}


def _cand(name, origin, parent, recipe, runtime, dtype, params, size, flops, source):  # type: ignore[no-untyped-def]
    return {"name": name, "origin": origin, "parent": parent, "recipe": recipe, "runtime": runtime, "dtype": dtype,
            "device": "cpu", "parameters": params, "parameter_bytes": params * 4, "size_on_disk_bytes": size,
            "path": None, "model": {}, "load_time_s": 1.0, "baseline_rss_mib": 500.0,
            "flops": {"measured_per_sample": flops, "source": source, "sequence_length": 128, "batch_size": 1,
                      "analytic_per_sample": None, "relative_difference": None, "by_operator": {},
                      "method": "FlopCounterMode"}}


def _summary(n, p50, p90):  # type: ignore[no-untyped-def]
    """A latency summary: only p50 and p90 are read here; the rest fills the schema."""
    return {"n": n, "mean_ms": p50, "stdev_ms": 1.0, "min_ms": p50 / 2, "max_ms": p90 * 2,
            "percentiles_ms": {"p50": p50, "p90": p90, "p95": p90, "p97": p90, "p99": p90, "p99.9": p90}}


def _memory(delta):  # type: ignore[no-untyped-def]
    return {"baseline_rss_mib": 500.0, "peak_rss_mib": 500.0 + delta, "peak_rss_delta_mib": delta, "rss_method": "VmHWM"}


def _stream(cand, p50, p90, n):  # type: ignore[no-untyped-def]
    metrics = {"queries": n, "duration_s": 10.0, "final_query_issued_s": 9.9, "latency_ms": _summary(n, p50, p90),
               "target_percentile": 0.9, "target_latency_ms": p90, "early_stopping_latency_ms": p90,
               "early_stopping": {"confidence": 0.99, "tolerance": 0.0, "min_queries": 64, "discarded_highest": 1,
                                  "estimate_index": 1, "detail": "x"},
               "qps_with_overhead": None, "qps_without_overhead": 1000 / p50, "achieved_gflops_per_s": None, "mfu": None}
    return {"name": "single_stream", "kind": "single_stream", "candidate": cand, "status": "ok",
            "settings": {"batch_size": 1}, "metrics": metrics, "raw": {"latencies_ms": [p50] * 9 + [p90]},
            "validity": {"result": "VALID", "reduced_settings": False}, "memory": _memory(26.0)}


def _offline(cand, bs, rate, samples):  # type: ignore[no-untyped-def]
    metrics = {"samples": samples, "batches": samples // bs, "duration_s": samples / rate,
               "throughput_samples_per_s": rate, "throughput_tokens_per_s": rate * 128,
               "batch_latency_ms": _summary(samples // bs, 1000 * bs / rate, 1000 * bs / rate),
               "achieved_gflops_per_s": None, "mfu": None}
    return {"name": f"offline[bs={bs}]", "kind": "offline", "candidate": cand, "status": "ok",
            "settings": {"batch_size": bs}, "metrics": metrics, "raw": {}, "memory": _memory(90.0)}


def _period(name, position, n, in_window, acc, f1):  # type: ignore[no-untyped-def]
    return {"period": name, "position": position, "n": n, "rows_in_data": n, "in_window": in_window, "few_rows": False,
            "accuracy": acc, "f1_macro": f1}


def _drift_entry(cand: str, early: float, late: float) -> dict:
    periods = [_period("2023-H1", 0.0, 120, True, _acc(early, early - 0.02, min(1.0, early + 0.01), 120),
                       _acc(0.99, 0.97, 1.0, 120)),
               _period("2025-H1", 4.0, 600, False, _acc(late, late - 0.03, late + 0.03, 600), _acc(0.80, 0.77, 0.83, 600))]
    slope = {"value": -0.021, "ci_low": -0.028, "ci_high": -0.014, "ci_level": 0.95, "ols_ci_low": None,
             "ols_ci_high": None, "ols_p_value": None, "periods": 2, "unit": "per half"}
    decay = {"metric": "accuracy", "method": "bootstrap", "ci_level": 0.95, "periods": [], "in_distribution": None,
             "out_of_distribution": None, "drop": None, "worst_drop": None, "changes": [], "slope": slope}
    metrics = {"period_column": "date", "granularity": "half", "training_window": ["2023-H1"],
               "training_window_source": "the fine-tuning step's train rows", "reference_rows": 100, "scored_rows": 720,
               "excluded_training_rows": 0, "id_rows": 120, "periods": periods, "decay": decay,
               "label_distribution_reference": {}, "duration_s": 1.0, "analysis_s": 1.0, "throughput_samples_per_s": 720.0}
    raw = {"periods": ["2023-H1", "2025-H1"], "predictions": [0, 1], "references": [0, 1], "rows": [0, 1]}
    return {"name": "drift", "kind": "drift", "candidate": cand, "status": "ok", "settings": {"dataset": _ds(None, "all")},
            "metrics": metrics, "raw": raw}


def _accuracy(cand, value, low, n):  # type: ignore[no-untyped-def]
    metrics = {"n": n, "accuracy": _acc(value, low, 1.0, n), "f1_macro": _acc(value, low, 1.0, n),
               "precision_macro": _acc(value, low, 1.0, n), "recall_macro": _acc(value, low, 1.0, n), "per_class": {},
               "duration_s": 1.0, "throughput_samples_per_s": 120.0}
    return {"name": "acc-early", "kind": "accuracy", "candidate": cand, "status": "ok",
            "settings": {"dataset": _ds({"period": "2023-H1"}, "holdout")}, "metrics": metrics,
            "raw": {"predictions": [0] * n, "references": [0] * n}}


def _fine_tune() -> dict:
    run = {"seed": 0, "converged": True, "stop_reason": "target reached", "time_to_target_s": 29.66, "wall_s": 30.0,
           "eval_s": 1.0, "steps": 40, "samples": 640, "tokens": 20000, "final_quality": 0.95, "final_quality_step": 40,
           "evaluated_after_stop": False, "train_samples_per_s": 21.3, "peak_rss_delta_mib": 800.0}
    metrics = {"time_to_target_s": 29.66, "converged": True, "runs": [run],
               "scoring": {"score_s": 29.66, "valid": True, "run_count": 1, "converged_runs": 1, "kept_times_s": [29.66],
                           "method": "mean of 1 run(s)"},
               "train_samples_per_s": 21.3, "train_tokens_per_s": 660.0, "train_flops_per_sample": None,
               "train_flops_per_sample_3x_forward_estimate": None, "train_flops_total": None,
               "achieved_train_gflops_per_s": None, "final_quality_median": 0.95, "saved_checkpoint": None,
               "saved_step": None, "saved_quality": None, "saved_run_index": None}
    energy = {"energy_kwh": 0.004, "cpu_energy_kwh": None, "gpu_energy_kwh": None, "ram_energy_kwh": None,
              "emissions_kg_co2eq": 0.0015, "duration_s": 30.0, "method": "estimate (constant power)", "detail": "",
              "region": "FRA", "carbon_intensity_g_per_kwh": None, "covers": ["ft"]}
    return {"name": "ft", "kind": "fine_tune", "candidate": "ft", "status": "ok", "settings": {}, "metrics": metrics,
            "raw": {}, "energy": energy}


def _cell(scenario, acc, low, high, n, delta=None):  # type: ignore[no-untyped-def]
    return {"scenario": scenario, "accuracy": acc, "ci_low": low, "ci_high": high, "n": n,
            "delta_vs_reference": delta, "agreement_with_reference": None}


def _selection() -> dict:
    spec = {"constraints": [], "objectives": [{"metric": "p90_latency_ms", "direction": "min"}]}
    return {"spec": spec, "files": ["results.json"], "points": {}, "recommended": "ft-int8",
            "reason": "fastest among those meeting accuracy >= 0.95", "ties": [], "frontier": ["ft", "ft-int8"],
            "feasible": ["ft", "ft-int8"], "verdicts": {"ft-int8": "feasible, recommended", "ft": "feasible, slower"},
            "checks": {}, "mixed_hardware": False}


def results_dict(tmp_path: Path) -> dict:
    """A run of scenarios/run.yaml under tmp_path, whose dataset is tmp_path/data/tickets.csv: the
    figures the card reads are written by hand, the rest only fills the schema."""
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "tickets.csv").write_bytes(CSV)
    (tmp_path / "scenarios").mkdir(exist_ok=True)
    ft_recipe = {"name": "ft", "from": "base", "kind": "fine_tune", "train": _ds({"period": "2023-H1"}, "train"),
                 "target": {"metric": "accuracy", "value": 0.9}, "learning_rate": 1e-4, "batch_size": 16,
                 "max_steps": 150, "runs": 1, "seed": 0}
    q_recipe = {"name": "ft-int8", "from": "ft", "kind": "onnx_int8", "mode": "dynamic", "per_channel": False}
    delta = {"value": -0.016666, "ci_low": -0.041666, "ci_high": 0.0, "mcnemar_p": 0.5}
    rows = [
        {"candidate": "ft", "status": "ok", "origin": "fine-tuned", "parent": "base", "runtime": "torch", "dtype": "float32",
         "parameters": 22714371, "size_on_disk_bytes": 90869492, "flops_per_sample": 2869201152, "flops_source": "measured",
         "peak_rss_delta_mib": 183.08, "p50_ms": 29.125179, "p90_ms": 32.909824, "latency_queries": 341,
         "throughput_samples_per_s": {"32": 55.37, "4": 41.31}, "interleaved_speedup": None,
         "quality": [_cell("acc-early", 0.991666, 0.975, 1.0, 120), _cell("drift:2025-H1", 0.886666, 0.86, 0.91, 600)]},
        {"candidate": "ft-int8", "status": "ok", "origin": "variant", "parent": "ft", "runtime": "onnxruntime",
         "dtype": "int8", "parameters": 22714371, "size_on_disk_bytes": 23030849, "flops_per_sample": 2869201152,
         "flops_source": "inherited", "peak_rss_delta_mib": 157.2, "p50_ms": 5.3236, "p90_ms": 6.3861, "latency_queries": 1803,
         "throughput_samples_per_s": {"4": 194.7}, "interleaved_speedup": {
             "scenario": "compare", "mode": "single_stream", "reference": "ft", "ratio": 3.90116, "ci_low": 3.55708,
             "ci_high": 4.27852, "rounds": 10},
         "quality": [_cell("acc-early", 0.975, 0.95, 1.0, 120, delta), _cell("drift:2025-H1", 0.885, 0.86, 0.91, 600)]},
    ]
    usd = {"unit": "USD", "derived_from": "x"}
    return {
        "schema_version": "4.0", "hf_cost_version": "0.1.0", "created_utc": "2026-12-01T21:57:40+00:00",
        "scenario_file": str(tmp_path / "scenarios" / "run.yaml"),
        "suite": {"name": "run", "scenarios": [
            {"name": "acc-early", "kind": "accuracy", "dataset": _ds({"period": "2023-H1"}, "holdout")},
            {"name": "drift", "kind": "drift", "dataset": _ds(None, "all")}]},
        "environment": {"hf_cost_version": "0.1.0", "git_commit": "abc123", "python": "3.11.7", "platform": "Linux",
                        "libraries": {"torch": "2.13.0+cpu", "transformers": "4.57.6", "onnxruntime": "1.32.0"},
                        "cpu": {"model": "AMD EPYC", "logical_cores": 2, "physical_cores": 2, "torch_threads": 2},
                        "memory_total_mib": 16000, "gpus": [], "hub_offline": True},
        "model": {"id": "sentence-transformers/all-MiniLM-L6-v2", "path": None, "revision": "main", "commit": None,
                  "source": "Hub cache", "task": "feature-extraction", "architecture": "bert"},
        "candidates": {"ft": _cand("ft", "fine-tuned", "base", ft_recipe, "torch", "float32", 22714371, 90869492,
                                   2869201152, "measured"),
                       "ft-int8": _cand("ft-int8", "variant", "ft", q_recipe, "onnxruntime", "int8", 22714371,
                                        23030849, 2869201152, "inherited")},
        "inputs": {"sequence_length": 128},
        "scenarios": [_fine_tune(), _stream("ft", 29.125179, 32.909824, 341), _stream("ft-int8", 5.3236, 6.3861, 1803),
                      _offline("ft", 4, 41.31, 529), _offline("ft", 32, 55.37, 701), _offline("ft-int8", 4, 194.7, 2471),
                      _accuracy("ft", 0.991666, 0.975, 120), _accuracy("ft-int8", 0.975, 0.95, 120),
                      _drift_entry("ft", 0.991666, 0.886666), _drift_entry("ft-int8", 0.975, 0.885)],
        "comparison": {"reference": "ft", "rows": rows, "method": "by hand"},
        "costs": {"currency": "USD", "price_per_hour": 0.5, "workload": {}, "budget": {}, "rows": [
            {"candidate": "ft", "per_million_at_throughput": {**usd, "value": 2.5083,
                                                              "derived_from": "1e6 / 55.4 samples/s / 3600 × 0.5 USD/h"},
             "per_million_p90_single_stream": {**usd, "value": 4.5708, "derived_from": "p90 basis"},
             "verdicts": ["serving: 75.25 USD per month is within the budget of 100 USD (75 %)"]},
            {"candidate": "ft-int8", "per_million_at_throughput": {**usd, "value": 0.71337}}]},
        "selection": _selection(),
    }


def run_of(results: dict) -> RunResult:
    """The hand-written results, validated as the loader validates them."""
    return RunResult.model_validate(results)


def _write(tmp_path: Path, results: dict, name: str = "results.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(results), encoding="utf-8")
    return path


def _outside(data: bytes) -> tuple[dict, bytes]:
    """(front matter, body with every hf_cost section's content cut out)."""
    end = data.index(b"\n---\n", 3) + 5
    cut = re.sub(rb"(<!-- hf_cost:begin ([a-z_-]+) -->).*?(<!-- hf_cost:end \2 -->)", rb"\1\3", data[end:],
                 flags=re.DOTALL)
    return yaml.safe_load(data[4:end - 5]), cut


def test_sections_hold_the_hand_computed_figures(tmp_path):
    s = card_sections(run_of(results_dict(tmp_path)), results_path="out/results.json", card_path="card/README.md")
    assert list(s) == ["cost", "quality", "drift", "variants", "selection", "reproduce"]
    # p50 29.125179 -> 29.13, p90 32.909824 -> 32.91; batch sizes in numeric order (4 before 32);
    # 90869492 B / 2^20 = 86.66 MiB; 22714371 -> 22.71M; 2869201152 FLOP -> 2.869 GFLOP.
    assert ("| **ft** (this model, reference) | torch · float32 | 29.13 / 32.91 ms (n=341, VALID) | "
            "bs 4: 41.3/s (n=529); bs 32: 55.4/s (n=701) | 2.869 (measured) | 22.71M | 86.7 MiB | 183 MiB | "
            "2.508 USD / 4.571 USD / — |") in s["cost"]
    assert "| ft-int8 | onnxruntime · int8 | 5.32 / 6.39 ms (n=1803, VALID) | bs 4: 194.7/s (n=2471) |" in s["cost"]
    assert "0.7134 USD / — / — |" in s["cost"]  # no p90 cost figure for it, and no server step
    assert "- ft: serving: 75.25 USD per month is within the budget of 100 USD (75 %)" in s["cost"]
    assert "Measured on AMD EPYC (2 logical / 2 physical cores, 2 torch threads), no GPU; torch 2.13.0+cpu" in s["cost"]
    assert "hf_cost 0.1.0 (commit abc123)" in s["cost"]
    # holdout 0.2 -> "holdout 20% (seed 0)"; Δ -0.016666 -> -0.017 [-0.042, +0.000]
    assert ("| ft-int8 | acc-early: period=2023-H1, holdout 20% (seed 0) | 0.975 [0.950, 1.000] | 120 | "
            "-0.017 [-0.042, +0.000] | 0.5 | — |") in s["quality"]
    assert "| **ft** (this model, reference) | drift:2025-H1 | 0.887 [0.860, 0.910] | 600 | — |" in s["quality"]
    # slope -0.021 per half, CI [-0.028, -0.014]: loses 2.1 points, CI 1.4–2.8
    assert "loses 2.1 points per half-year (95 % CI 1.4–2.8)" in s["drift"]
    assert "| 2023-H1 (training window) | 120 | 0.975 [0.955, 0.985] | 0.990 [0.970, 1.000] |" in s["drift"]
    assert "| 2025-H1 | 600 | 0.887 [0.857, 0.917] | 0.800 [0.770, 0.830] |" in s["drift"]
    assert "3.90x [3.56, 4.28] (single_stream, 10 rounds)" in s["variants"]
    assert "onnx_int8: mode=dynamic, per_channel=false" in s["variants"]
    assert "fine_tune: learning_rate=0.0001, batch_size=16, max_steps=150, runs=1, seed=0, trained on " \
           "period=2023-H1, train 80% (seed 0), target accuracy ≥ 0.9" in s["variants"]
    assert "time to target 29.7 s (1 run(s), converged)" in s["variants"]
    assert s["selection"].splitlines()[0] == "Recommended: **ft-int8**. fastest among those meeting accuracy >= 0.95"
    assert s["selection"].endswith("- ft: feasible, slower\n- ft-int8: feasible, recommended")  # candidates' order
    assert "python -m hf_cost run " + str(tmp_path / "scenarios" / "run.yaml") + "\n" in s["reproduce"]
    assert "python -m hf_cost card out/results.json --card card/README.md\n" in s["reproduce"]
    assert "hf_cost 0.1.0" in s["reproduce"]


def _server_entry(cand: str, probes: list[tuple[float, bool]], peak: float | None) -> dict:
    """A find_peak server entry (probes: (target QPS, VALID?)); only the probes' results and the peak are read."""
    def probe(qps: float, ok: bool) -> dict:
        return {"target_qps": qps, "result": "VALID" if ok else "INVALID", "why": [] if ok else ["latency bound missed"],
                "queries": 10, "scheduled_qps": qps, "completed_qps": qps, "latency_ms": _summary(10, 5.0, 9.0),
                "target_latency_ms": 9.0 if ok else 80.0, "overlatency_queries": 0 if ok else 5,
                "perf_constraints_met": ok, "min_duration_met": True, "min_queries_met": True,
                "early_stopping_met": True, "early_stopping_detail": "x", "batches": 10, "mean_batch_size": 1.0,
                "batch_size_histogram": {"1": 10}, "queue_ms": _summary(10, 0.1, 0.2),
                "issue_delay_ms": _summary(10, 0.1, 0.2), "batch_service_ms": _summary(10, 5.0, 9.0), "log_dir": None}

    metrics = {"target_qps": probes[0][0], "latency_bound_ms": 50.0, "latency_percentile": 0.99, "search": "find_peak",
               "search_stopped": "bracketed within 5%", "max_probes": 8, "probes": [probe(q, ok) for q, ok in probes],
               "reported_probe": next((j for j, (q, _) in enumerate(probes) if q == peak), 0), "peak_qps": peak,
               "lowest_invalid_qps": None, "queries": 10 * len(probes), "max_batch_size": 1, "max_queue_delay_ms": 0.0,
               "workers": 1, "torch_threads_available": 2, "torch_threads_per_worker": 2, "latency_source": "LoadGen"}
    return {"name": "server_peak", "kind": "server", "candidate": cand, "status": "ok", "settings": {},
            "metrics": metrics, "raw": {"latencies_ms": [5.0] * 10 * len(probes),
                                        "probe": [j for j in range(len(probes)) for _ in range(10)]},
            "validity": {"result": "VALID" if peak else "INVALID", "reduced_settings": True}}


def test_cost_section_shows_the_cost_at_the_latency_bound(tmp_path):
    """ft-int8's server step kept 200 QPS VALID at p99 <= 50 ms: 1e6 / 200 = 5,000 s = 1.389 h x 0.5 USD/h
    = 0.6944 USD per 1M, the third figure of its per-1M cell and a line of the cost list; ft had no VALID probe."""
    r = results_dict(tmp_path)
    r["scenarios"] += [_server_entry("ft-int8", [(100.0, True), (200.0, True), (400.0, False)], 200.0),
                       _server_entry("ft", [(100.0, False), (50.0, False)], None)]
    basis = "1e6 / peak 200 QPS with p99 ≤ 50 ms (server step server_peak, 3 probes, LoadGen VALID) / 3600 × 0.5 USD/h"
    r["costs"]["rows"][1]["per_million_at_slo"] = {"unit": "USD", "value": 1e6 / 200 / 3600 * 0.5, "derived_from": basis}
    s = card_sections(run_of(r))
    assert "| per 1M inferences: offline / one stream p90 / at the latency bound |" in s["cost"]
    assert "2.508 USD / 4.571 USD / — |" in s["cost"]
    assert "0.7134 USD / — / 0.6944 USD |" in s["cost"]
    assert (f"- ft-int8, per 1M inferences, at the server's peak QPS under its latency bound: 0.6944 USD ({basis})"
            in s["cost"])


def test_optional_blocks_and_single_candidate_runs(tmp_path):
    r = results_dict(tmp_path)
    for key in ("costs", "selection", "comparison"):
        del r[key]
    r["scenarios"] = [x for x in r["scenarios"] if x["kind"] != "drift" and x["candidate"] == "ft"]
    del r["candidates"]["ft-int8"]
    s = card_sections(run_of(r))
    assert list(s) == ["cost", "quality", "variants", "reproduce"]
    assert "29.13 / 32.91 ms (n=341, VALID)" in s["cost"] and "per 1M" not in s["cost"]
    assert "| **ft** (this model) | acc-early: period=2023-H1, holdout 20% (seed 0) | 0.992 [0.975, 1.000] | 120 |" \
           in s["quality"]
    # no comparison (one candidate): the rows are built from the results, the same way the run builds them
    assert [e["metric_value"] for e in eval_results(run_of(r), "ft")] == [0.991666]
    assert co2_of(run_of(r), "ft")["emissions"] == 1.5
    r["scenarios"][0].pop("energy")
    assert co2_of(run_of(r), "ft") is None


def test_eval_results_round_trip_through_the_card(tmp_path):
    from huggingface_hub import ModelCard

    from hf_cost.cards.card_target import upsert_card

    r = run_of(results_dict(tmp_path))
    evals = eval_results(r, "ft-int8", results_path="runs/results.json")
    card = tmp_path / "README.md"
    upsert_card(card, card_sections(r), eval_results=evals, co2_eq_emissions=co2_of(r, "ft"))
    got = ModelCard.load(card).data.eval_results
    revision = "sha256:" + hashlib.sha256(CSV).hexdigest()[:12]
    assert [(e.metric_value, e.dataset_split, e.dataset_revision, e.source_name, e.source_url) for e in got] == [
        (0.975, "period=2023-H1, holdout 20% (seed 0)", revision, "hf_cost", "runs/results.json"),
        (0.885, "2025-H1", revision, "hf_cost", "runs/results.json")]
    assert {e.dataset_type for e in got} == {"local/tickets.csv"}
    assert got[0].metric_name == "accuracy (95% CI 0.950–1.000, n=120)"
    assert got[1].dataset_name == "tickets 2025-H1"  # no README beside the file: no "(synthetic)"
    assert ModelCard.load(card).data.co2_eq_emissions == {
        "emissions": 1.5, "source": "codecarbon via hf_cost (estimate (constant power))",
        "training_type": "fine-tuning", "hardware_used": "AMD EPYC (2 logical / 2 physical cores, 2 torch threads), no GPU",
        "geographical_location": "FRA"}
    (tmp_path / "data" / "tickets.csv").unlink()  # unreadable: no revision rather than a wrong one
    assert all("dataset_revision" not in e for e in eval_results(r, "ft"))


def test_update_twice_is_a_no_op_and_hand_text_of_the_shipped_card_survives(tmp_path):
    card = tmp_path / "card" / "README.md"
    card.parent.mkdir()
    shutil.copyfile(SHIPPED, card)
    shipped = SHIPPED.read_bytes()
    results = _write(tmp_path, results_dict(tmp_path))
    changed, names = update_card(results, card)
    assert changed is True and names == ["cost", "quality", "drift", "variants", "selection", "reproduce"]
    first = card.read_bytes()
    assert update_card(results, card) == (False, names)
    assert card.read_bytes() == first
    fm_shipped, out_shipped = _outside(shipped)
    fm_first, out_first = _outside(first)
    assert out_first == out_shipped  # every hand byte of the body, markers included
    ours = ("model-index", "co2_eq_emissions")  # hf_cost's metadata; the shipped card may already have it
    assert {k: v for k, v in fm_first.items() if k not in ours} == {k: v for k, v in fm_shipped.items() if k not in ours}
    assert fm_first["model-index"][0]["name"] == "all-MiniLM-L6-v2-support-tickets"
    assert SHIPPED.read_bytes() == shipped

    # New figures: only section contents and metric values change.
    r = results_dict(tmp_path)
    r["comparison"]["rows"][0]["p50_ms"] = 30.0
    r["comparison"]["rows"][0]["quality"][0].update(accuracy=0.95, ci_low=0.9, ci_high=0.98)
    del r["selection"]
    assert update_card(_write(tmp_path, r), card)[0] is True
    second = card.read_bytes()
    fm_second, out_second = _outside(second)
    assert out_second == out_first
    fm_first["model-index"][0]["results"][0]["metrics"][0].update(value=0.95, name="accuracy (95% CI 0.900–0.980, n=120)")
    assert fm_second == fm_first
    text = second.decode()
    assert "30.00 / 32.91 ms (n=341, VALID)" in text and "29.13" not in text
    assert "<!-- hf_cost:begin selection -->\n<!-- hf_cost:end selection -->" in text  # no stale selection


def test_a_new_card_gets_a_title_and_other_candidates(tmp_path):
    card = tmp_path / "new" / "README.md"
    card.parent.mkdir()
    results = _write(tmp_path, results_dict(tmp_path))
    update_card(results, card, candidate="ft-int8", title="Quantized")
    text = card.read_text()
    assert "\n# Quantized\n" in text and "| **ft-int8** (this model) |" in text
    assert f"python -m hf_cost card {results} --card {card} --candidate ft-int8" in text


def test_unknown_candidate_and_bad_results_are_user_errors(tmp_path):
    r = results_dict(tmp_path)
    with pytest.raises(UserError, match=r"unknown candidate 'nope'; the results have: ft, ft-int8"):
        card_candidate(run_of(r), "nope")
    assert card_candidate(run_of(r), None) == "ft"
    r2 = copy.deepcopy(r)
    del r2["comparison"]
    r2["candidates"] = dict(reversed(r2["candidates"].items()))
    assert card_candidate(run_of(r2), None) == "ft-int8"  # no reference: the first candidate
    with pytest.raises(UserError, match="unknown candidate"):
        update_card(_write(tmp_path, r), tmp_path / "c.md", candidate="nope")
    assert not (tmp_path / "c.md").exists()


def test_push_offline_is_one_line_and_touches_no_network(tmp_path, monkeypatch):
    import requests
    from huggingface_hub import ModelCard

    card = tmp_path / "README.md"
    update_card(_write(tmp_path, results_dict(tmp_path)), card)

    def no_network(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("the network was touched")

    monkeypatch.setattr(ModelCard, "push_to_hub", no_network)
    monkeypatch.setattr(requests.Session, "request", no_network)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    expected = f"--push: the Hub is not reachable (offline); the card was updated locally at {card}"
    with pytest.raises(UserError) as err:
        push_card(card, "someone/model")
    assert str(err.value) == expected

    def unreachable(*a, **k):  # type: ignore[no-untyped-def]
        raise requests.exceptions.ConnectionError("Max retries exceeded\nwith url: /api/validate-yaml")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(ModelCard, "push_to_hub", unreachable)
    with pytest.raises(UserError) as err:
        push_card(card, "someone/model")
    assert str(err.value) == expected


def test_run_card_block_must_name_a_card_inside_model_cards(tmp_path, capsys):
    """A scenario file cannot point a run at any file: only an existing model_cards/*/README.md."""
    from hf_cost.cli import main

    elsewhere = tmp_path / "notes" / "README.md"
    elsewhere.parent.mkdir()
    elsewhere.write_text("# mine\n")
    for target in ("notes/README.md", "model_cards/x/README.md", "model_cards/x/other.md"):
        scenario = tmp_path / "s.yaml"
        scenario.write_text(
            "model: {id: org/none}\nscenarios: [{kind: offline}]\n"
            f"card: {{path: {target}}}\n", encoding="utf-8")
        assert main(["validate", str(scenario)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "card.path" in err and "model_cards" in err, err
    assert elsewhere.read_text() == "# mine\n"


def test_run_plots_are_copied_next_to_the_card_and_linked(tmp_path):
    """selection.png and drift-*.png from the run's plots/ land in <card dir>/plots/ under names
    that carry their sha256 prefix, and are linked from their sections; a second update copies
    nothing and changes nothing; new plots get new names and the old copies go, but only files
    whose bytes still match their name (a user's files are never touched)."""
    def copy_name(stem: str, data: bytes) -> str:  # sha256 prefix, computed here independently
        return f"hf_cost-{stem}-{hashlib.sha256(data).hexdigest()[:12]}.png"

    run = tmp_path / "run"
    (run / "plots").mkdir(parents=True)
    (run / "plots" / "selection.png").write_bytes(b"\x89PNG selection")
    (run / "plots" / "drift-drift.png").write_bytes(b"\x89PNG drift")
    (run / "plots" / "other.png").write_bytes(b"\x89PNG not shown")
    results = _write(run, results_dict(tmp_path))
    card = tmp_path / "card" / "README.md"
    mine = card.parent / "plots"
    mine.mkdir(parents=True)
    (mine / "selection.png").write_bytes(b"the user's own plot")  # same name as the run's: untouched
    (mine / "notes.txt").write_text("mine")
    fake = copy_name("drift-old", b"something else")
    (mine / fake).write_bytes(b"not the bytes its name says")  # looks like hf_cost's, is not: kept
    update_card(results, card)
    text = card.read_text()
    sel, drift = copy_name("selection", b"\x89PNG selection"), copy_name("drift-drift", b"\x89PNG drift")
    assert f"![selection](plots/{sel})" in text and f"![drift-drift](plots/{drift})" in text
    assert (mine / sel).read_bytes() == b"\x89PNG selection" and (mine / drift).read_bytes() == b"\x89PNG drift"
    assert (mine / "selection.png").read_bytes() == b"the user's own plot"
    assert (mine / "notes.txt").read_text() == "mine" and (mine / fake).exists()
    assert not any("other" in p.name for p in mine.iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in mine.iterdir()}
    assert update_card(results, card)[0] is False
    assert {p.name: p.stat().st_mtime_ns for p in mine.iterdir()} == before

    (run / "plots" / "selection.png").write_bytes(b"\x89PNG selection, new run")
    assert update_card(results, card)[0] is True
    new_sel = copy_name("selection", b"\x89PNG selection, new run")
    assert f"plots/{new_sel}" in card.read_text() and f"plots/{sel}" not in card.read_text()
    assert sorted(p.name for p in mine.iterdir()) == sorted([new_sel, drift, "selection.png", "notes.txt", fake])
