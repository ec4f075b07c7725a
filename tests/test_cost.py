"""Cost arithmetic on a hand-computed case (report/cost.py), and the config it reads."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
from pydantic import ValidationError

from hf_cost.config.cost import Budget, Pricing, Workload
from hf_cost.core.build_metrics import TrainingMetrics, TrainingRun
from hf_cost.core.metrics import LatencySummary, OfflineMetrics, SingleStreamMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.report.cost import build_costs


def _suite(price=3.6, currency="EUR", **workload):
    budget = workload.pop("budget", Budget())
    return NS(hardware=Pricing(price_per_hour=price, currency=currency), workload=Workload(**workload), budget=budget)


def _results():
    """Real result models (the kinds' own hooks answer), built without the fields cost does not read."""
    def entry(kind, name, settings, metrics):
        return ScenarioResult.model_construct(kind=kind, status="ok", candidate="a", name=name, settings=settings,
                                              energy=None, memory=None, raw={}, notes=[], metrics=metrics)

    offline = lambda rate, bs: entry("offline", f"offline[bs={bs}]", {"batch_size": bs},  # noqa: E731
                                     OfflineMetrics.model_construct(throughput_samples_per_s=rate, samples=500))
    stream = entry("single_stream", "single_stream", {}, SingleStreamMetrics.model_construct(
        queries=400, latency_ms=LatencySummary.model_construct(percentiles_ms={"p50": 15.0, "p90": 20.0})))
    run = lambda: TrainingRun.model_construct(wall_s=90.0, samples=1000, steps=10)  # noqa: E731
    train = entry("fine_tune", "a", {"num_processes": 2}, TrainingMetrics.model_construct(
        runs=[run(), run()], train_samples_per_s=40.0, train_flops_per_sample=3.3e9,
        train_flops_per_sample_3x_forward_estimate=3.0e9))
    return [offline(60.0, 1), offline(100.0, 32), stream, train]


def _info():
    return NS(flops=NS(measured_per_sample=1.0e9, source="measured", sequence_length=128))


def test_hand_computed_costs() -> None:
    suite = _suite(inferences_per_day=2e6, training_samples=36000, epochs=2,
                   budget=Budget(serving_per_month=500, training_per_run=2))
    report = build_costs(suite, _results(), {"a": _info()})
    row = report.rows[0]
    # best offline rate 100/s: 1e6 / 100 = 10,000 s = 2.778 h x 3.6 EUR/h = 10.00 EUR per 1M
    assert row.per_million_at_throughput.value == pytest.approx(10.0)
    assert "batch 32" in row.per_million_at_throughput.derived_from
    # one stream at p90 20 ms: 1e6 x 0.02 s = 20,000 s = 5.556 h x 3.6 = 20.00 EUR per 1M
    assert row.per_million_p90_single_stream.value == pytest.approx(20.0)
    # 2M a day = 2 x 10 EUR a day, x 30 days = 600 EUR
    assert row.serving_per_month.value == pytest.approx(600.0)
    assert row.inference_flops_per_day.value == pytest.approx(2e15)  # 2e6 x 1 GFLOP
    # training as run: 180 s wall x 2 processes = 360 s = 0.1 h; x 3.6 = 0.36 EUR
    assert row.training_machine_hours.value == pytest.approx(0.1)
    assert row.training_cost.value == pytest.approx(0.36)
    # workload: 36,000 x 2 epochs = 72,000 samples / 40 per s = 1,800 s = 0.5 h -> 1.8 EUR
    assert row.workload_training_hours.value == pytest.approx(0.5)
    assert row.workload_training_cost.value == pytest.approx(1.8)
    assert row.train_flops_measured.value == pytest.approx(72000 * 3.3e9)
    assert row.train_flops_3x_forward.value == pytest.approx(72000 * 3.0e9)
    # 600 > 500 -> over (120 %); 1.8 <= 2 -> within (90 %)
    assert row.verdicts == [
        "serving: 600 EUR per month is OVER the budget of 500 EUR (120 %)",
        "training: 1.8 EUR per run is within the budget of 2 EUR (90 %)",
    ]
    assert report.currency == "EUR"


def test_training_samples_default_to_what_the_step_processed() -> None:
    row = build_costs(_suite(), _results(), {"a": _info()}).rows[0]
    assert row.workload_training_hours.value == pytest.approx(2000 / 40 / 3600)  # 2 runs x 1000 samples
    assert "samples a processed" in row.workload_training_hours.derived_from


def test_no_price_and_no_workload_gives_no_cost_report() -> None:
    assert build_costs(_suite(price=None), _results(), {"a": _info()}) is None


def test_workload_without_price_gives_flops_but_no_money() -> None:
    row = build_costs(_suite(price=None, inferences_per_day=10.0), _results(), {"a": _info()}).rows[0]
    assert row.per_million_at_throughput is None and row.training_cost is None
    assert row.inference_flops_per_day.value == pytest.approx(1e10)


def test_budget_without_a_figure_says_not_checked() -> None:
    suite = _suite(budget=Budget(serving_per_month=5))
    row = build_costs(suite, _results(), {"a": _info()}).rows[0]
    assert row.verdicts == ["serving: not measured, so not checked against 5 EUR per month"]


@pytest.mark.parametrize("bad", ["usd", "EURO", "€"])
def test_currency_must_be_an_iso_code(bad: str) -> None:
    with pytest.raises(ValidationError, match="ISO 4217"):
        Pricing(currency=bad)
