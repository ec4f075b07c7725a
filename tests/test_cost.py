"""Cost arithmetic on a hand-computed case (report/cost.py), and the config it reads."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest
from pydantic import ValidationError

from hf_cost.config.cost import Budget, Pricing, Workload
from hf_cost.core.build_metrics import TrainingMetrics, TrainingRun
from hf_cost.core.candidate_info import FlopsInfo
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


def _info(mean=None):
    return NS(flops=FlopsInfo.model_construct(measured_per_sample=int(1.0e9), mean_per_sample=mean, source="measured",
                                              sequence_length=128))


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


def test_inference_flops_use_the_mean_over_natural_lengths() -> None:
    """With natural lengths the average sample is shorter than the one counted at the median:
    C_infer = M x the mean FLOPs per sample (FlopsInfo.per_sample)."""
    row = build_costs(_suite(price=None, inferences_per_day=10.0), _results(), {"a": _info(mean=4.0e8)}).rows[0]
    assert row.inference_flops_per_day.value == pytest.approx(4e9)  # 10 x 0.4 GFLOP


def _server(name, probes, *, peak=None, search="find_peak", candidate="a", bound=100.0, percentile=0.99):
    """A server entry: the real ServerMetrics model (its slo_rate hook answers), probes as (QPS, VALID?)."""
    from hf_cost.core.server_metrics import ServerMetrics, ServerProbe

    metrics = ServerMetrics.model_construct(
        search=search, peak_qps=peak, latency_bound_ms=bound, latency_percentile=percentile,
        probes=[ServerProbe.model_construct(target_qps=q, result="VALID" if ok else "INVALID") for q, ok in probes])
    return ScenarioResult.model_construct(kind="server", status="ok", candidate=candidate, name=name, settings={},
                                          energy=None, memory=None, raw={}, notes=[], metrics=metrics)


def test_cost_at_the_latency_bound_from_the_servers_peak() -> None:
    """Peak 50 QPS VALID at p99 <= 100 ms: 1e6 / 50 = 20,000 s = 5.556 h x 3.6 EUR/h = 20.00 EUR per 1M.
    The other figures are as before; the monthly figure stays at the offline throughput."""
    peak = _server("server_peak", [(25, True), (50, True), (100, False), (75, False)], peak=50.0)
    row = build_costs(_suite(inferences_per_day=2e6), [*_results(), peak], {"a": _info()}).rows[0]
    assert row.per_million_at_slo.value == pytest.approx(20.0)
    assert row.per_million_at_slo.unit == "EUR"
    assert row.per_million_at_slo.derived_from == (
        "1e6 / peak 50 QPS with p99 ≤ 100 ms (server step server_peak, 4 probes, LoadGen VALID) / 3600 × 3.6 EUR/h")
    assert row.per_million_at_throughput.value == pytest.approx(10.0)
    assert row.per_million_p90_single_stream.value == pytest.approx(20.0)
    assert row.serving_per_month.value == pytest.approx(600.0)


def test_cost_at_the_latency_bound_takes_the_highest_valid_peak_and_says_which() -> None:
    # two server steps: 40 QPS at p99 <= 50 ms, 80 QPS at p99 <= 200 ms -> 1e6 / 80 / 3600 x 3.6 = 12.50 EUR
    tight = _server("tight", [(20, True), (40, True), (80, False)], peak=40.0, bound=50.0)
    loose = _server("loose", [(40, True), (80, True), (160, False)], peak=80.0, bound=200.0)
    row = build_costs(_suite(), [tight, loose], {}).rows[0]
    assert row.per_million_at_slo.value == pytest.approx(12.5)
    assert "peak 80 QPS with p99 ≤ 200 ms (server step loose, 3 probes" in row.per_million_at_slo.derived_from
    assert row.per_million_at_slo.derived_from.endswith(
        "/ 3600 × 3.6 EUR/h; the highest of 2 server steps' VALID rates (tight 40, loose 80 QPS)")


def test_cost_at_the_latency_bound_is_none_without_a_valid_probe() -> None:
    # find_peak where every probe was INVALID (peak null), and a single INVALID run: no rate under the bound
    searched = _server("server_peak", [(50, False), (25, False)], peak=None)
    single = _server("server", [(50, False)], search="single", candidate="b")
    report = build_costs(_suite(), [*_results(), searched, single], {"a": _info()})
    assert [r.per_million_at_slo for r in report.rows] == [None, None]
    assert report.rows[0].per_million_at_throughput.value == pytest.approx(10.0)  # the rest is unchanged
    # without a price there is no money, even with a VALID peak
    priced_out = build_costs(_suite(price=None, inferences_per_day=1.0), [_server("s", [(50, True)], peak=50.0)], {})
    assert priced_out.rows[0].per_million_at_slo is None


def test_a_single_valid_server_run_is_a_lower_bound_on_the_peak_and_says_so() -> None:
    # find_peak off, one VALID run at 30 QPS, p90 <= 20 ms: 1e6 / 30 / 3600 x 3.6 = 33.33 EUR
    single = _server("server", [(30, True)], search="single", bound=20.0, percentile=0.9)
    fig = build_costs(_suite(), [single], {}).rows[0].per_million_at_slo
    assert fig.value == pytest.approx(100 / 3)
    assert fig.derived_from == ("1e6 / a single run at 30 QPS with p90 ≤ 20 ms (server step server, 1 probe, LoadGen "
                                "VALID; find_peak off, so at most the peak) / 3600 × 3.6 EUR/h")


def test_cost_markdown_shows_the_figure_at_the_latency_bound() -> None:
    from hf_cost.report.cost_markdown import cost_sections

    peak = _server("server_peak", [(50, True), (100, False)], peak=50.0)
    text = "\n".join(cost_sections(build_costs(_suite(), [*_results(), peak], {"a": _info()})))
    assert ("| a | per 1M inferences, at the server's peak QPS under its latency bound | 20 EUR | 1e6 / peak 50 QPS "
            "with p99 ≤ 100 ms (server step server_peak, 2 probes, LoadGen VALID) / 3600 × 3.6 EUR/h |") in text
