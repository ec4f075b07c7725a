"""Checkpoint selection on hand-built candidate sets: frontier, CI-aware ties, constraints, spec
validation and the plot. Every expected answer is worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from hf_cost.config.selection import Constraint, SelectionSpec, fmt, load_selection_spec
from hf_cost.errors import ConfigError
from hf_cost.select.pareto import Measure, Point, dominates, pareto_frontier, select
from hf_cost.select.plot import plot_selection

LAT, ACC = "p90_latency_ms", "accuracy"


def pt(name: str, lat=None, acc=None, *, env: str = "", source: str = "", **extra) -> Point:
    """lat/acc: a number (no CI) or a (value, lo, hi) tuple."""
    metrics = {}
    for metric, v in ((LAT, lat), (ACC, acc), *extra.items()):
        if v is None:
            continue
        metrics[metric] = Measure(*v) if isinstance(v, tuple) else Measure(v)
    return Point(name, metrics, source=source, environment=env)


def spec(objectives=((ACC, "max"), (LAT, "min")), constraints=()) -> SelectionSpec:
    return SelectionSpec.model_validate(
        {"objectives": [{"metric": m, "direction": d} for m, d in objectives], "constraints": list(constraints)}
    )


# ---------------------------------------------------------------- frontier


def test_frontier_hand_set():
    # min latency, max accuracy.
    #   A (10, .80)  nothing is faster; only F ties it on latency and F is less accurate -> frontier
    #   B (20, .90)  most accurate (shared with C) -> frontier
    #   C (20, .90)  equal to B: neither dominates the other -> frontier
    #   D (30, .85)  B is faster and more accurate -> dominated
    #   F (10, .78)  A: equal latency, more accurate -> dominated (equal on one, better on the other)
    points = [pt("A", 10, 0.80), pt("B", 20, 0.90), pt("C", 20, 0.90), pt("D", 30, 0.85), pt("F", 10, 0.78)]
    objs = spec(((LAT, "min"), (ACC, "max"))).objectives
    assert pareto_frontier(points, objs) == ["A", "B", "C"]
    assert select(points, spec(((LAT, "min"), (ACC, "max")))).frontier == ["A", "B", "C"]
    assert dominates(points[1], points[3], objs) and not dominates(points[1], points[2], objs)
    assert dominates(points[0], points[4], objs) and not dominates(points[4], points[0], objs)


def test_missing_objective_metric_excluded_from_frontier_and_recommendation():
    # "nolat" would be best on accuracy but has no latency: not on the frontier, not recommended.
    points = [pt("nolat", None, 0.99), pt("ok", 10, 0.80)]
    sel = select(points, spec())
    assert sel.frontier == ["ok"]
    assert sel.recommended == "ok"
    assert "p90_latency_ms not measured" in sel.verdicts["nolat"]
    assert "nolat" in sel.feasible  # no constraints: feasible, just not rankable


def test_nan_counts_as_not_measured():
    points = [pt("nan", math.nan, 0.99), pt("ok", 10, 0.80)]
    sel = select(points, spec())
    assert sel.recommended == "ok" and "not measured" in sel.verdicts["nan"]


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="unique"):
        select([pt("a", 1, 0.5), pt("a", 2, 0.6)], spec())


# ---------------------------------------------------------------- ties


def test_overlapping_ci_is_a_tie_broken_by_latency():
    # Y has the higher accuracy value (.881 vs .879) but the CIs [.86,.90] and [.85,.90] overlap:
    # a tie. Latency breaks it: X [12.0, 12.8] vs Y [28, 30] do not overlap -> X, although a
    # pick by point value on the deciding metric would have said Y.
    points = [pt("Y", (29.1, 28.0, 30.0), (0.881, 0.86, 0.90)), pt("X", (12.4, 12.0, 12.8), (0.879, 0.85, 0.90))]
    sel = select(points, spec())
    assert sel.recommended == "X"
    assert sel.ties == ["Y"]
    assert sel.verdicts["Y"].startswith("tied with X on accuracy, lost on the tie-break p90_latency_ms")
    assert "29.1 [28.0, 30.0] ms vs 12.4 [12.0, 12.8] for X, CIs do not overlap" in sel.verdicts["Y"]
    assert "tie-break" in sel.reason and "CIs overlap" in sel.reason


def test_full_tie_has_no_winner():
    points = [pt("A", (12.4, 11.0, 14.0), (0.881, 0.86, 0.90)), pt("B", (13.0, 12.0, 15.0), (0.879, 0.85, 0.90))]
    sel = select(points, spec())
    assert sel.recommended is None
    assert sel.reason == (
        "tie between A and B on accuracy (0.881 [0.860, 0.900] vs 0.879 [0.850, 0.900]) "
        "and on p90_latency_ms; no winner"
    )
    assert sorted(sel.ties) == ["A", "B"]
    assert set(sel.verdicts) == {"A", "B"} and all("no winner" in v for v in sel.verdicts.values())


def test_non_overlapping_ci_gives_a_winner_without_ties():
    points = [pt("lo", (5.0, 4.0, 6.0), (0.88, 0.86, 0.90)), pt("hi", (30.0, 29.0, 31.0), (0.95, 0.94, 0.96))]
    sel = select(points, spec())
    assert sel.recommended == "hi" and sel.ties == []
    assert sel.reason == "hi: has the highest accuracy (0.950 [0.940, 0.960] vs 0.880 [0.860, 0.900] for lo, CIs do not overlap)"
    assert sel.verdicts["lo"].startswith("feasible, but lower accuracy than hi")


def test_without_ci_only_equal_values_tie():
    # .880 vs .879 without CIs: not a tie (no evidence either way, so values decide, and say so).
    sel = select([pt("a", 10, 0.880), pt("b", 5, 0.879)], spec())
    assert sel.recommended == "a" and sel.ties == []
    assert "no CI for a and b, so point values compared" in sel.reason
    # equal values tie, then latency decides
    sel = select([pt("a", 10, 0.88), pt("b", 5, 0.88)], spec())
    assert sel.recommended == "b" and sel.ties == ["a"]


def test_tie_is_with_the_best_only_not_transitive():
    # best A [.90,.94]; B [.88,.91] overlaps A -> tied; C [.85,.89] overlaps B but not A -> out.
    # C is the fastest, so a transitive tie would wrongly make it the winner.
    points = [pt("A", 30, (0.92, 0.90, 0.94)), pt("B", 20, (0.895, 0.88, 0.91)), pt("C", 5, (0.87, 0.85, 0.89))]
    sel = select(points, spec())
    assert sel.recommended == "B" and sel.ties == ["A"]
    assert sel.verdicts["C"].startswith("feasible, but lower accuracy than A")


def test_dominated_loser_verdict():
    # "slow" is worse on accuracy (CIs apart) and on latency than "fast".
    points = [pt("fast", 5.3, (0.95, 0.94, 0.96)), pt("slow", 29.1, (0.80, 0.78, 0.82))]
    sel = select(points, spec())
    assert sel.verdicts["slow"].startswith("dominated by fast (worse on accuracy and p90_latency_ms")


# ---------------------------------------------------------------- constraints


def test_conservative_bound_uses_ci_high_for_max_and_ci_low_for_min():
    # lat 18 [15, 22] vs max 20: value passes, upper bound 22 fails.
    # acc .86 [.83, .89] vs min .85: value passes, lower bound .83 fails.
    p = pt("p", (18.0, 15.0, 22.0), (0.86, 0.83, 0.89))
    cons = [{"metric": LAT, "max": 20}, {"metric": ACC, "min": 0.85}]
    sel = select([p], spec(constraints=cons))
    lat_check, acc_check = sel.checks["p"]
    assert (lat_check["figure_used"], lat_check["compared"], lat_check["ok"]) == ("ci_high", 22.0, False)
    assert (acc_check["figure_used"], acc_check["compared"], acc_check["ok"]) == ("ci_low", 0.83, False)
    assert lat_check["op"] == "<=" and acc_check["op"] == ">=" and lat_check["limit"] == 20
    assert sel.feasible == [] and sel.recommended is None
    assert "violates p90_latency_ms <= 20.0 (upper CI bound 22.0)" in sel.reason


def test_value_and_ci_low_modes():
    p = pt("p", (18.0, 15.0, 22.0), (0.86, 0.83, 0.89))
    by_value = select([p], spec(constraints=[{"metric": LAT, "max": 20, "bound": "value"}]))
    assert by_value.checks["p"][0]["figure_used"] == "value" and by_value.checks["p"][0]["compared"] == 18.0
    assert by_value.recommended == "p"
    by_low = select([p], spec(constraints=[{"metric": LAT, "max": 16, "bound": "ci_low"}]))
    assert (by_low.checks["p"][0]["compared"], by_low.checks["p"][0]["ok"]) == (15.0, True)
    by_high = select([p], spec(constraints=[{"metric": ACC, "min": 0.88, "bound": "ci_high"}]))
    assert (by_high.checks["p"][0]["compared"], by_high.checks["p"][0]["ok"]) == (0.89, True)


def test_conservative_without_ci_falls_back_to_value_and_says_so():
    sel = select([pt("p", 25, 0.9)], spec(constraints=[{"metric": LAT, "max": 20}]))
    check = sel.checks["p"][0]
    assert check["figure_used"] == "value" and check["figure_wanted"] == "ci_high" and not check["ok"]
    assert "(value 25.0, no upper CI bound measured)" in sel.reason


def test_missing_metric_fails_constraint_and_no_feasible_names_closest():
    # far: misses both limits; near: only misses latency (by 10%); blind: accuracy not measured.
    points = [pt("far", 40, 0.70), pt("near", 22, 0.90), pt("blind", 10)]
    cons = [{"metric": LAT, "max": 20}, {"metric": ACC, "min": 0.85}]
    sel = select(points, spec(constraints=cons))
    assert sel.checks["blind"][1] == {
        "metric": ACC, "limit": 0.85, "op": ">=", "compared": None,
        "figure_used": None, "figure_wanted": "ci_low", "ok": False,
    }
    assert sel.verdicts["blind"].startswith("accuracy not measured")
    assert sel.recommended is None and sel.feasible == []
    assert sel.reason.startswith("no candidate meets every constraint; closest is near (1 of 2 failed")
    assert set(sel.verdicts) == {"far", "near", "blind"}


def test_every_loser_has_a_verdict_and_reason_names_constraints():
    points = [
        pt("student-3l", (12.4, 12.0, 12.9), (0.90, 0.88, 0.92), size_mb=60.0),
        pt("finetune", (29.1, 28.0, 30.2), (0.91, 0.89, 0.93), size_mb=420.0),
        pt("tiny", (3.0, 2.9, 3.1), (0.70, 0.67, 0.73), size_mb=10.0),
        pt("fat", (31.2, 30.0, 33.0), (0.93, 0.91, 0.95), size_mb=900.0),
    ]
    cons = [{"metric": ACC, "min": 0.85}, {"metric": "size_mb", "max": 500}, {"metric": LAT, "max": 40}]
    sel = select(points, spec(((LAT, "min"), (ACC, "max")), cons))
    # feasible: student-3l, finetune (tiny fails accuracy, fat fails size); fastest feasible: student-3l
    assert sel.feasible == ["student-3l", "finetune"]
    assert sel.recommended == "student-3l"
    assert sel.reason == (
        "student-3l: meets all 3 constraints and has the lowest p90_latency_ms "
        "(12.4 [12.0, 12.9] ms vs 29.1 [28.0, 30.2] for finetune, CIs do not overlap)"
    )
    assert set(sel.verdicts) == {"finetune", "tiny", "fat"}
    assert sel.verdicts["tiny"] == "violates accuracy >= 0.850 (lower CI bound 0.670)"
    assert sel.verdicts["fat"] == "violates size_mb <= 500 (value 900, no upper CI bound measured)"
    assert sel.verdicts["finetune"].startswith("feasible, but higher p90_latency_ms than student-3l (29.1")
    assert sel.mixed_hardware is False


def test_mixed_hardware_flag():
    same = select([pt("a", 1, 0.5, env="A100"), pt("b", 2, 0.6, env="A100"), pt("c", 3, 0.4)], spec())
    assert same.mixed_hardware is False and "environments" not in same.reason
    mixed = select([pt("a", 1, 0.5, env="A100"), pt("b", 2, 0.6, env="T4")], spec())
    assert mixed.mixed_hardware is True and "2 different environments" in mixed.reason


def test_empty_input():
    sel = select([], spec())
    assert sel.recommended is None and sel.reason == "no candidates given" and sel.verdicts == {}


@pytest.mark.parametrize(
    "x, text", [(12345, "12300"), (0.00012345, "0.000123"), (9.996, "10.0"), (0.881, "0.881"), (20, "20.0"), (-3.14159, "-3.14")]
)
def test_three_significant_figures(x, text):
    assert fmt(x) == text


# ---------------------------------------------------------------- spec validation


def test_constraint_needs_exactly_one_limit():
    with pytest.raises(ValidationError, match="exactly one of 'max' or 'min' \\(got both\\)"):
        Constraint(metric=ACC, max=1.0, min=0.5)
    with pytest.raises(ValidationError, match="got neither"):
        Constraint(metric=ACC)


def test_unknown_key_is_named():
    with pytest.raises(ValidationError, match="constraint"):
        SelectionSpec.model_validate({"objectives": [{"metric": ACC, "direction": "max"}], "constraint": []})
    with pytest.raises(ValidationError):
        SelectionSpec.model_validate({"objectives": []})
    with pytest.raises(ValidationError, match="twice"):
        spec(((ACC, "max"), (ACC, "max")))


# ---------------------------------------------------------------- directions, from the results models


def test_directions_come_from_the_models_higher_is_better(monkeypatch):
    from hf_cost.config.selection import direction_of
    from hf_cost.core.metrics import AccuracyMetrics

    # accuracy, speed-up, throughput and the drift slope are better higher; latency lower (their
    # fields say so); size, parameters, FLOPs, memory and cost have no field and default to lower
    assert [direction_of(m) for m in (ACC, "accuracy:drift:2025-H1", "speedup", "throughput_samples_per_s",
                                      "accuracy_slope_pts_per_period")] == ["max"] * 5
    assert [direction_of(m) for m in (LAT, "p50_latency_ms", "size_mb", "peak_rss_mib", "cost_per_million")] == \
        ["min"] * 5
    assert direction_of("acuracy") is None
    # the schema is the one source: flip the field's flag and selection's direction follows
    extra = dict(AccuracyMetrics.model_fields["accuracy"].json_schema_extra)
    monkeypatch.setattr(AccuracyMetrics.model_fields["accuracy"], "json_schema_extra", {**extra, "higher_is_better": False})
    assert direction_of(ACC) == "min"


def test_an_objective_without_direction_takes_the_metrics_own():
    s = SelectionSpec.model_validate({"objectives": [{"metric": "accuracy:drift:2025-H1"}, {"metric": LAT},
                                                     {"metric": "size_mb"}]})
    assert [o.direction for o in s.objectives] == ["max", "min", "min"]
    with pytest.raises(ValidationError, match="unknown metric 'acuracy'; did you mean 'accuracy'"):
        SelectionSpec.model_validate({"objectives": [{"metric": "acuracy"}]})


def test_a_direction_against_the_models_is_refused():
    with pytest.raises(ValidationError, match=r"accuracy is better higher \(AccuracyMetrics.accuracy\), so 'min' "
                                              "would rank the worst first; write max"):
        spec(((ACC, "min"),))
    with pytest.raises(ValidationError, match=r"p90_latency_ms is better lower \(SingleStreamMetrics"):
        spec(((LAT, "max"),))
    # a derived metric's default is only a default: the largest model under a limit is a fair question
    assert spec((("size_mb", "max"),)).objectives[0].direction == "max"
    assert spec((("a", "min"),)).objectives[0].direction == "min"  # a name the spec alone cannot check


def test_yaml_errors_name_file_and_key(tmp_path):
    good = tmp_path / "sel.yaml"
    good.write_text("objectives:\n  - {metric: accuracy, direction: max}\nconstraints:\n  - {metric: p90_latency_ms, max: 20}\n")
    loaded = load_selection_spec(good)
    assert loaded.constraints[0].max == 20.0 and loaded.constraints[0].bound == "conservative"

    bad = tmp_path / "constraints.sel.yaml"
    bad.write_text(
        "objectives:\n  - {metric: accuracy, direction: max}\n"
        "constraints:\n  - {metric: size_mb, max: 500}\n  - {metric: p90_latency_ms, max: fast}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_selection_spec(bad)
    assert str(err.value).startswith(f"{bad}: constraints[1].max: Input should be a valid number")

    typo = tmp_path / "typo.yaml"
    typo.write_text("objectives:\n  - {metric: accuracy, direction: max}\nconstraints:\n  - {metric: x, maxx: 1}\n")
    with pytest.raises(ConfigError) as err:
        load_selection_spec(typo)
    assert str(err.value) == f"{typo}: constraints[0].maxx: unknown key 'maxx'; did you mean 'max'?"

    both = tmp_path / "both.yaml"
    both.write_text("objectives: [{metric: a, direction: min}]\nconstraints: [{metric: a, max: 1, min: 0}]\n")
    with pytest.raises(ConfigError, match=r"both\.yaml: constraints\[0\]: give exactly one"):
        load_selection_spec(both)


# ---------------------------------------------------------------- plot


def _is_png(path) -> bool:
    data = path.read_bytes()
    return len(data) > 100 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_full_set(tmp_path):
    points = [
        pt("student-3l", (12.4, 12.0, 12.9), (0.90, 0.88, 0.92), size_mb=60.0, source="a.json", env="A100"),
        pt("finetune", (29.1, 28.0, 30.2), (0.91, 0.89, 0.93), size_mb=420.0, source="b.json", env="T4"),
        pt("tiny", 3.0, 0.70, source="a.json"),
        pt("no-acc", 4.0, source="a.json"),
    ]
    s = spec(((LAT, "min"), (ACC, "max")), [{"metric": ACC, "min": 0.85}, {"metric": LAT, "max": 25}])
    sel = select(points, s)
    out = plot_selection(points, sel, s, tmp_path / "sub" / "sel.png", x=LAT, y=ACC, size="size_mb", title="pick")
    assert out == tmp_path / "sub" / "sel.png" and _is_png(out)


def test_plot_one_point_without_ci(tmp_path):
    points = [pt("only", 10.0, 0.8)]
    s = spec()
    out = plot_selection(points, select(points, s), s, tmp_path / "one.png", x=LAT, y=ACC)
    assert _is_png(out)


# ---------------------------------------------------------------- the server's peak and the cost at its bound


def _server_run(price: float, peaks: dict[str, float | None]):
    """A run whose candidates each ran one server find_peak (None: no probe VALID), read through
    select/from_results.candidate_metrics: the real ServerMetrics hook and the real cost report."""
    from types import SimpleNamespace as NS

    from hf_cost.config.cost import Budget, Pricing, Workload
    from hf_cost.core.candidate_info import CandidateInfo
    from hf_cost.core.results import ScenarioResult
    from hf_cost.core.server_metrics import ServerMetrics, ServerProbe
    from hf_cost.report.cost import build_costs
    from hf_cost.select.from_results import candidate_metrics

    def server(name: str, peak: float | None) -> ScenarioResult:
        probes = [(25.0, peak is not None), *(((peak, True), (peak * 2, False)) if peak else ())]
        return ScenarioResult.model_construct(
            kind="server", status="ok", candidate=name, name="server_peak", settings={}, energy=None, memory=None,
            raw={}, notes=[], metrics=ServerMetrics.model_construct(
                search="find_peak", peak_qps=peak, latency_bound_ms=100.0, latency_percentile=0.99,
                probes=[ServerProbe.model_construct(target_qps=q, result="VALID" if ok else "INVALID")
                        for q, ok in probes]))

    scenarios = [server(name, peak) for name, peak in peaks.items()]
    suite = NS(hardware=Pricing(price_per_hour=price, currency="EUR"), workload=Workload(), budget=Budget())
    run = NS(candidates={n: CandidateInfo.model_construct(size_on_disk_bytes=None, parameters=1_000_000, flops=None)
                         for n in peaks},
             scenarios=scenarios, costs=build_costs(suite, scenarios, {}), comparison=NS(rows=[], reference=None))
    return candidate_metrics(run)


def test_server_peak_max_picks_the_higher_peak_and_cost_at_slo_min_the_cheaper():
    # two machines: "cpu" at 3.6 EUR/h keeps 50 QPS VALID at p99 <= 100 ms -> 1e6/50/3600 x 3.6 = 20.00 EUR per 1M;
    # "gpu" at 14.4 EUR/h keeps 100 QPS -> 1e6/100/3600 x 14.4 = 40.00 EUR. The faster is not the cheaper.
    # "never" had no VALID probe: neither metric, so it is not ranked.
    cpu, gpu = _server_run(3.6, {"cpu": 50.0, "never": None}), _server_run(14.4, {"gpu": 100.0})
    assert (cpu["cpu"]["server_peak_qps"].value, gpu["gpu"]["server_peak_qps"].value) == (50.0, 100.0)
    assert cpu["cpu"]["cost_per_million_at_slo"].value == pytest.approx(20.0)
    assert gpu["gpu"]["cost_per_million_at_slo"].value == pytest.approx(40.0)
    assert "server_peak_qps" not in cpu["never"] and "cost_per_million_at_slo" not in cpu["never"]
    points = [Point("cpu", cpu["cpu"]), Point("never", cpu["never"]), Point("gpu", gpu["gpu"])]
    # the directions come from the model (ServerMetrics.peak_qps is better higher) and the derived default
    by_peak = select(points, SelectionSpec.model_validate({"objectives": [{"metric": "server_peak_qps"}]}))
    by_cost = select(points, SelectionSpec.model_validate({"objectives": [{"metric": "cost_per_million_at_slo"}]}))
    assert by_peak.recommended == "gpu" and by_cost.recommended == "cpu"
    assert "server_peak_qps not measured" in by_peak.verdicts["never"]
    # limits on both: 20 EUR per 1M passes at most 25, 40 does not; 50 and 100 QPS pass at least 40; never has neither
    s = spec((("cost_per_million_at_slo", "min"),), [{"metric": "cost_per_million_at_slo", "max": 25},
                                                      {"metric": "server_peak_qps", "min": 40}])
    assert select(points, s).feasible == ["cpu"]


def test_server_peak_qps_direction_is_the_models():
    from hf_cost.config.selection import direction_of

    assert direction_of("server_peak_qps") == "max" and direction_of("cost_per_million_at_slo") == "min"
    with pytest.raises(ValidationError, match=r"server_peak_qps is better higher \(ServerMetrics.peak_qps\)"):
        spec((("server_peak_qps", "min"),))
