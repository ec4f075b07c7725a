"""Quality under drift for every candidate (issue 19): a paired delta for every labelled period of a
drift step, the worst period per candidate, and the selection metrics that read them.

The run is written by hand: three candidates (`ref`, `good`, `bad`) scored by one drift step on
four labelled quarters of 100 rows (the first is the training window) and a fifth quarter whose
labels have not arrived. Each candidate's predictions are built from the reference's by turning
`k` of its right rows wrong and `m` of its wrong rows right, so each period's paired delta is
(m - k) / 100 by hand; `bad` loses 14 points on the middle quarter 2024-Q2 and at most 2 elsewhere.
The CIs are checked against a paired percentile bootstrap computed here with numpy (the
comparison's seed convention: the drift step's dataset seed, 1,000 resamples of row indices
drawn with numpy's default_rng, the same indices for both candidates).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hf_cost.cli import main
from hf_cost.config.selection import SelectBlock, SelectionSpec, direction_of, fmt, unknown_metric
from hf_cost.report.comparison import compare_candidates
from hf_cost.report.comparison_rows import comparison_rows
from hf_cost.report.schema import RunResult
from hf_cost.select.from_results import candidate_metrics
from hf_cost.select.pareto import Point, select

QUARTERS = ["2024-Q1", "2024-Q2", "2024-Q3", "2024-Q4"]
UNLABELLED = "2025-Q1"
N, REF_WRONG, SEED = 100, 10, 7
# candidate -> per labelled quarter (k: reference-right rows made wrong, m: reference-wrong rows made right)
CHANGES = {"ref": [(0, 0)] * 4,
           "good": [(0, 0), (1, 0), (0, 0), (0, 1)],
           "bad": [(1, 1), (15, 1), (2, 0), (1, 0)]}
HAND_DELTAS = {"good": [0.0, -0.01, 0.0, 0.01], "bad": [0.0, -0.14, -0.02, -0.01]}  # (m - k) / 100


def _references() -> list[int]:
    return [i % 2 for i in range(N)]


def _predictions(changes: list[tuple[int, int]]) -> list[list[int]]:
    """Per labelled quarter: the reference gets rows 0..9 wrong; m of those made right, k of rows 10.. made wrong."""
    out = []
    for k, m in changes:
        refs = _references()
        preds = [1 - r if i < REF_WRONG else r for i, r in enumerate(refs)]
        for i in range(m):
            preds[i] = refs[i]
        for i in range(REF_WRONG, REF_WRONG + k):
            preds[i] = 1 - refs[i]
        out.append(preds)
    return out


def _scored(value: float, n: int) -> dict[str, Any]:
    """A period's accuracy: the value is exact, the CI only fills the schema (the deltas do not read it)."""
    return {"value": value, "ci_low": max(0.0, value - 0.06), "ci_high": min(1.0, value + 0.06), "ci_level": 0.95,
            "n": n, "method": "percentile bootstrap, 1000 resamples, seed 7"}


def _drift_entry(candidate: str) -> dict[str, Any]:
    preds = _predictions(CHANGES[candidate])
    periods, raw = [], {"periods": [], "predictions": [], "references": [], "rows": []}
    for q, (quarter, p) in enumerate(zip(QUARTERS, preds)):
        acc = float(np.mean(np.asarray(p) == np.asarray(_references())))
        periods.append({"period": quarter, "position": float(q), "n": N, "labelled_rows": N, "rows_in_data": N,
                        "in_window": q == 0, "few_rows": False, "accuracy": _scored(acc, N)})
        raw["periods"] += [quarter] * N
        raw["predictions"] += p
        raw["references"] += _references()
        raw["rows"] += list(range(q * N, (q + 1) * N))
    periods.append({"period": UNLABELLED, "position": 4.0, "n": 20, "labelled_rows": 0, "rows_in_data": 20,
                    "in_window": False, "few_rows": False})
    raw["periods"] += [UNLABELLED] * 20
    raw["predictions"] += [0] * 20
    raw["references"] += [-1] * 20  # labels not arrived yet
    raw["rows"] += list(range(4 * N, 4 * N + 20))
    metrics = {"period_column": "date", "granularity": "quarter", "training_window": [QUARTERS[0]],
               "training_window_source": "given", "reference_rows": 50, "scored_rows": 4 * N + 20,
               "excluded_training_rows": 0, "id_rows": N, "unlabelled_rows": 20, "periods": periods, "decay": None,
               "duration_s": 1.0, "analysis_s": 1.0, "throughput_samples_per_s": 420.0}
    return {"name": "drift", "kind": "drift", "candidate": candidate, "status": "ok",
            "settings": {"dataset": {"path": "tickets.csv", "select": "all", "seed": SEED}}, "metrics": metrics,
            "raw": raw}


def _candidate(name: str) -> dict[str, Any]:
    return {"name": name, "origin": "base" if name == "ref" else "variant", "parent": None if name == "ref" else "ref",
            "recipe": {}, "runtime": "torch", "dtype": "float32", "device": "cpu", "parameters": 1_000_000,
            "parameter_bytes": 4_000_000, "size_on_disk_bytes": 4_000_000, "path": None, "model": {},
            "load_time_s": 1.0, "baseline_rss_mib": 100.0}


def results_dict() -> dict[str, Any]:
    """The run as results.json holds it, its comparison built the way the run builds it (reference `ref`)."""
    data = {
        "schema_version": "4.0", "hf_cost_version": "0.1.0", "created_utc": "2026-12-03T18:00:00+00:00",
        "scenario_file": "scenarios/drift.yaml",
        "suite": {"name": "drift-deltas", "scenarios": [{"name": "drift", "kind": "drift"}]},
        "environment": {"hf_cost_version": "0.1.0", "git_commit": None, "python": "3.11", "platform": "Linux",
                        "libraries": {}, "cpu": {"model": "x", "logical_cores": 2, "physical_cores": 2,
                                                 "torch_threads": 2},
                        "memory_total_mib": 1000, "gpus": [], "hub_offline": True},
        "model": {"id": None, "path": "tiny", "revision": None, "commit": None, "source": "local",
                  "task": "text-classification", "architecture": "bert"},
        "candidates": {n: _candidate(n) for n in CHANGES}, "inputs": {},
        "scenarios": [_drift_entry(n) for n in CHANGES],
    }
    run = RunResult.model_validate(data)
    comparison = compare_candidates(run.scenarios, run.candidates, "ref", {})
    data["comparison"] = comparison.model_dump(mode="json")
    return data


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    return results_dict()


@pytest.fixture(scope="module")
def run(data: dict[str, Any]) -> RunResult:
    return RunResult.model_validate(data)


def _paired_bootstrap(ref: list[int], mine: list[int], refs: list[int]) -> tuple[float, float]:
    """Percentile bootstrap of mean([mine right] - [ref right]) over rows, indices shared by both."""
    r = np.asarray(refs)
    d = (np.asarray(mine) == r).astype(float) - (np.asarray(ref) == r).astype(float)
    idx = np.random.default_rng(SEED).integers(0, len(r), size=(1000, len(r)))
    low, high = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    return float(low), float(high)


def _independent_cis(candidate: str) -> list[tuple[float, float]]:
    ref, mine = _predictions(CHANGES["ref"]), _predictions(CHANGES[candidate])
    return [_paired_bootstrap(a, b, _references()) for a, b in zip(ref, mine)]


def test_every_labelled_period_has_a_paired_delta(run: RunResult) -> None:
    rows = {r.candidate: r for r in run.comparison.rows}
    for name in ("good", "bad"):
        cells = rows[name].quality
        # every labelled quarter, in order; the quarter without labels has no cell
        assert [q.scenario for q in cells] == [f"drift:{p}" for p in QUARTERS]
        assert [q.period for q in cells] == QUARTERS and {q.step for q in cells} == {"drift"}
        # the tables show the training window (Q1) and the latest labelled quarter (Q4)
        assert [q.in_tables for q in cells] == [True, False, False, True]
        for q, hand, (low, high) in zip(cells, HAND_DELTAS[name], _independent_cis(name)):
            d = q.delta_vs_reference
            assert d["value"] == pytest.approx(hand, abs=1e-12) and d["n"] == N
            assert (d["ci_low"], d["ci_high"]) == pytest.approx((low, high), abs=1e-12)
    assert all(q.delta_vs_reference is None for q in rows["ref"].quality)


def test_the_worst_period_is_the_middle_one_with_its_paired_ci(run: RunResult) -> None:
    rows = {r.candidate: r for r in run.comparison.rows}
    assert rows["ref"].worst_period_delta is None  # the reference is what the others are compared to
    (worst,) = rows["bad"].worst_period_delta
    low, high = _independent_cis("bad")[1]
    assert (worst.scenario, worst.period, worst.n, worst.periods) == ("drift", "2024-Q2", N, 4)
    assert worst.delta == pytest.approx(-0.14, abs=1e-12)
    assert (worst.ci_low, worst.ci_high) == pytest.approx((low, high), abs=1e-12)
    # good's worst is whichever quarter has the lowest independent CI low end
    cis = _independent_cis("good")
    lowest = min(range(4), key=lambda i: (cis[i][0], HAND_DELTAS["good"][i]))
    (g,) = rows["good"].worst_period_delta
    assert g.period == QUARTERS[lowest] and g.ci_low == pytest.approx(cis[lowest][0], abs=1e-12)


def test_report_table_keeps_window_and_latest_and_names_the_worst(run: RunResult) -> None:
    table = {r["candidate"]: r for r in comparison_rows(run.comparison)}
    bad = table["bad"]
    assert "drift:2024-Q1" in bad["accuracy"] and "drift:2024-Q4" in bad["accuracy"]
    assert "2024-Q2" not in bad["accuracy"] and "2024-Q3" not in bad["Δ accuracy vs ref"]
    low, high = _independent_cis("bad")[1]
    assert bad["worst period Δ"] == f"drift: 2024-Q2 -0.1400 [{low:+.4f}, {high:+.4f}] n=100 (worst of 4)"
    assert table["ref (reference)"]["worst period Δ"] == "reference"


def test_card_shows_the_worst_period_beside_the_window_and_latest(run: RunResult) -> None:
    from hf_cost.cards.from_results import card_sections

    quality = card_sections(run, candidate="bad")["quality"]
    body = [line for line in quality.splitlines() if line.startswith("| ") and "candidate" not in line]
    # 3 candidates x (Q1, Q2: bad's worst, Q4); Q3 is in results.json only (nobody's worst)
    assert len(body) == 9, quality
    assert "2024-Q3" not in quality
    assert sum("(worst period)" in line for line in body) == 2  # bad's Q2 and good's (Q2 too)
    assert any("drift:2024-Q2 (worst period)" in line and "-0.140" in line for line in body), quality


def test_selection_reads_the_deltas_in_points(run: RunResult) -> None:
    m = candidate_metrics(run)
    low, high = _independent_cis("bad")[1]
    w = m["bad"]["worst_period_delta"]
    assert (w.value, w.ci_low, w.ci_high) == pytest.approx((-14.0, low * 100, high * 100), abs=1e-9)
    d = m["bad"]["accuracy_delta:drift:2024-Q4"]
    assert d.value == pytest.approx(-1.0, abs=1e-9)
    # the reference: 0 exactly, so no constraint on a delta ever drops it
    zero = m["ref"]["worst_period_delta"]
    assert (zero.value, zero.ci_low, zero.ci_high) == (0.0, 0.0, 0.0)
    assert m["ref"]["accuracy_delta:drift:2024-Q2"].value == 0.0
    # `accuracy` stays the first cell the tables show (the training window's quarter)
    assert m["bad"]["accuracy"].value == pytest.approx(0.9, abs=1e-12)


def test_a_worst_period_constraint_drops_what_the_latest_period_keeps(run: RunResult) -> None:
    points = [Point(name, metrics) for name, metrics in candidate_metrics(run).items()]

    def feasible(metric: str) -> list[str]:
        spec = SelectionSpec.model_validate({"constraints": [{"metric": metric, "min": -6}],
                                             "objectives": [{"metric": metric}]})
        return sorted(select(points, spec).feasible)

    # bad's latest quarter: -1 point, CI low end above -6 (1 discordant row of 100); its Q2: -14
    assert feasible("accuracy_delta:drift:2024-Q4") == ["bad", "good", "ref"]
    assert feasible("worst_period_delta") == ["good", "ref"]


def test_metric_names_and_directions() -> None:
    assert direction_of("worst_period_delta") == "max" and direction_of("accuracy_delta:drift:2024-Q2") == "max"
    assert unknown_metric("accuracy_delta:drift:2024-Q2", ["drift:2024-Q2"]) is None
    assert "unknown metric 'accuracy_delta:'" in unknown_metric("accuracy_delta:", [])
    with pytest.raises(ValueError, match="worst_period_delta is better higher"):
        SelectionSpec.model_validate({"objectives": [{"metric": "worst_period_delta", "direction": "min"}]})
    # a scenario's `select:` is validated before its run: any cell passes, a misspelt name does not
    block = {"constraints": [{"metric": "worst_period_delta", "min": -2}],
             "objectives": [{"metric": "accuracy_delta:drift:2025-H1"}]}
    assert SelectBlock.model_validate(block).objectives[0].direction == "max"
    with pytest.raises(ValueError, match="unknown metric 'worst_period_delt'; did you mean 'worst_period_delta'"):
        SelectBlock.model_validate({**block, "constraints": [{"metric": "worst_period_delt", "min": -2}]})


def _write(tmp_path: Path, data: dict[str, Any], constraints: str) -> tuple[Path, Path]:
    results = tmp_path / "results.json"
    results.write_text(json.dumps(data), encoding="utf-8")
    spec = tmp_path / "c.yaml"
    spec.write_text(constraints, encoding="utf-8")
    return results, spec


def test_cli_select_accepts_the_new_metrics(tmp_path: Path, data: dict[str, Any],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    results, spec = _write(tmp_path, data, "constraints: [{metric: worst_period_delta, min: -6}]\n"
                                           "objectives: [{metric: accuracy_delta:drift:2024-Q4}]\n")
    code = main(["select", str(results), "--constraints", str(spec)])
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    low = fmt(_independent_cis("bad")[1][0] * 100)  # bad's Q2, in points
    assert f"- bad: violates worst_period_delta >= -6.00 (lower CI bound {low})" in out.splitlines(), out
    assert "meet every constraint: ref, good" in out.splitlines(), out


def test_cli_select_refuses_an_unknown_cell_in_one_line(tmp_path: Path, data: dict[str, Any],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    results, spec = _write(tmp_path, data, "objectives: [{metric: accuracy_delta:drift:2024-Q9}]\n")
    code = main(["select", str(results), "--constraints", str(spec)])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("error:"), err
    assert "no quality cell 'drift:2024-Q9'" in lines[0] and "did you mean 'accuracy_delta:drift:2024-Q" in lines[0]


def test_the_worst_is_the_lowest_ci_low_end_not_the_lowest_delta() -> None:
    from hf_cost.report.comparison import QualityCell, worst_period_deltas

    def cell(period: str, value: float, low: float, high: float, n: int, step: str = "drift") -> QualityCell:
        return QualityCell(scenario=f"{step}:{period}", accuracy=0.9, ci_low=0.8, ci_high=0.95, n=n, step=step,
                           period=period, delta_vs_reference={"value": value, "ci_low": low, "ci_high": high, "n": n})

    cells = [cell("A", -0.05, -0.06, -0.04, 5000), cell("B", -0.03, -0.10, 0.04, 40), cell("C", 0.0, 0.0, 0.0, 10),
             cell("X", -0.5, -0.6, -0.4, 10, step="other"),
             QualityCell(scenario="acc", accuracy=0.5, ci_low=0.4, ci_high=0.6, n=10, step="acc",
                         delta_vs_reference={"value": -0.4, "ci_low": -0.5, "ci_high": -0.3, "n": 10})]
    drift, other = worst_period_deltas(cells)  # one per drift step; the accuracy step's cell is no period
    assert (drift.scenario, drift.period, drift.delta, drift.ci_low, drift.n, drift.periods) == (
        "drift", "B", -0.03, -0.10, 40, 3)
    assert (other.scenario, other.period, other.periods) == ("other", "X", 1)
