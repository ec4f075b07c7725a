"""Cost and affordability per candidate, derived from the measured figures of a run.

Every figure says what it is derived from. Serving cost:

- at the measured throughput: hours per 1M = 1e6 / (samples/s) / 3600, at the best offline
  batch size measured (the machine kept busy, batching allowed);
- p90-bound single stream: one query at a time, each budgeted at its p90 latency, so
  hours per 1M = 1e6 x p90_s / 3600 (no batching: an interactive service's cost);
- at the latency bound: hours per 1M = 1e6 / QPS / 3600 at the highest target QPS a server step
  kept LoadGen VALID (its percentile latency within the bound; `KindMetrics.slo_rate`), the
  highest over the candidate's server steps (a service that must meet its latency SLO).
  `serving_per_month` stays the throughput figure's.

Training: machine-hours of the building step (every run, every process) x price, and for the
workload's N samples x epochs, N/throughput hours. Compute beside it, as the seeds write it:
C_train = N (C_fwd + C_bwd), measured per sample (FlopCounterMode, forward + backward) and the
3 C_fwd estimate; C_infer = M C_fwd for M inferences a day.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hf_cost.core.format import percentile_key

DAYS_PER_MONTH = 30


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Figure(_Out):
    value: float
    unit: str
    derived_from: str


class CandidateCost(_Out):
    candidate: str
    per_million_at_throughput: Figure | None = Field(None, description="money per 1M inferences, offline rate")
    per_million_p90_single_stream: Figure | None = Field(None, description="money per 1M, one stream at p90")
    per_million_at_slo: Figure | None = Field(None, description="money per 1M at the highest QPS a server step "
                                              "kept VALID under its latency bound; absent in older files")
    per_million_output_tokens_at_throughput: Figure | None = Field(
        None, description="a causal LM: money per 1M new tokens at the best offline output tokens/s")
    per_million_output_tokens_single_stream: Figure | None = Field(
        None, description="a causal LM: money per 1M new tokens, one request at a time (single_stream tokens/s)")
    per_million_output_tokens_at_slo: Figure | None = Field(
        None, description="a causal LM: money per 1M new tokens at the server's VALID rate under its bounds")
    serving_per_month: Figure | None = Field(None, description="the workload for 30 days at the throughput figure")
    inference_flops_per_day: Figure | None = Field(None, description="C_infer = M x C_fwd")
    training_machine_hours: Figure | None = Field(None, description="the building step as run")
    training_cost: Figure | None = None
    workload_training_hours: Figure | None = Field(None, description="N x epochs / training samples/s")
    workload_training_cost: Figure | None = None
    train_flops_measured: Figure | None = Field(None, description="N x epochs x (C_fwd + C_bwd), measured")
    train_flops_3x_forward: Figure | None = Field(None, description="N x epochs x 3 C_fwd")
    energy_per_1k_inferences: Figure | None = Field(None, description="codecarbon kWh over an inference step")
    co2_per_1k_inferences: Figure | None = None
    training_energy: Figure | None = Field(None, description="codecarbon kWh over the building step")
    training_co2: Figure | None = None
    verdicts: list[str] = Field(default_factory=list, description="against the budget, when one is given")


class CostReport(_Out):
    currency: str
    price_per_hour: float | None
    workload: dict[str, Any]
    budget: dict[str, Any]
    rows: list[CandidateCost]
    method: str = (
        "per 1M at throughput = 1e6 / best offline samples/s / 3600 × price; p90-bound single stream = "
        "1e6 × p90 / 3600 × price (one query at a time); at the latency bound = 1e6 / the highest target QPS a "
        "server step kept LoadGen VALID / 3600 × price; a causal LM's inference is one request, and its cost per 1M output tokens = 1e6 / new tokens/s (the same three rates) / 3600 × price; training: wall time of every run × processes × "
        "price; C_train = N·(C_fwd + C_bwd) measured per sample, beside 3·C_fwd; C_infer = M·C_fwd"
    )


def build_costs(suite: Any, results: list[Any], candidates: dict[str, Any]) -> CostReport | None:
    """Cost rows for every candidate measured or built; None when nothing has a price or a workload."""
    hw, wl, budget = suite.hardware, suite.workload, suite.budget
    energy = any(r.energy for r in results if r.ok)
    if hw.price_per_hour is None and wl.inferences_per_day is None and not energy:
        return None
    names = list(dict.fromkeys([*candidates, *(r.candidate for r in results if r.status == "ok")]))
    rows = [_row(n, candidates.get(n), [r for r in results if r.candidate == n and r.ok], suite)
            for n in names]
    return CostReport(currency=hw.currency, price_per_hour=hw.price_per_hour,
                      workload=wl.model_dump(), budget=budget.model_dump(), rows=rows)


def _row(name: str, info: Any, mine: list[Any], suite: Any) -> CandidateCost:
    hw, wl, budget = suite.hardware, suite.workload, suite.budget
    price, cur = hw.price_per_hour, hw.currency
    row = CandidateCost(candidate=name)
    rates = [(r, r.metrics.serving_rate(r)) for r in mine]
    rates = [(r, rate) for r, rate in rates if rate is not None]
    if rates:
        best, rate = max(rates, key=lambda x: x[1].samples_per_s)
        basis = f"{rate.samples_per_s:.1f} samples/s ({best.name}, batch {rate.batch_size}, {rate.samples} samples)"
        if price is not None:
            row.per_million_at_throughput = Figure(value=1e6 / rate.samples_per_s / 3600 * price, unit=cur,
                                                   derived_from=f"1e6 / {basis} / 3600 × {price:g} {cur}/h")
            if wl.inferences_per_day is not None:
                month = row.per_million_at_throughput.value * wl.inferences_per_day / 1e6 * DAYS_PER_MONTH
                row.serving_per_month = Figure(value=month, unit=cur, derived_from=(
                    f"{wl.inferences_per_day:g}/day × {DAYS_PER_MONTH} days at the throughput cost per 1M"))
    stream = next(((r, r.metrics.latency()) for r in mine if r.metrics.latency() is not None), None)
    if stream is not None and price is not None:
        r, latency = stream
        p90 = latency.p90_ms
        row.per_million_p90_single_stream = Figure(value=1e6 * p90 / 1000 / 3600 * price, unit=cur, derived_from=(
            f"1e6 × p90 {p90:.2f} ms ({latency.queries} queries, {r.name}) / 3600 × {price:g} {cur}/h"))
    if price is not None:
        row.per_million_at_slo = _at_slo(mine, price, cur)
        _per_output_token(row, mine, price, cur)
    flops = info.flops.per_sample if info is not None and info.flops is not None else None
    if flops is not None and wl.inferences_per_day is not None:
        row.inference_flops_per_day = Figure(value=wl.inferences_per_day * flops, unit="FLOP", derived_from=(
            f"M = {wl.inferences_per_day:g} × C_fwd {flops / 1e9:.4g} GFLOP ({info.flops.source}, "
            + ("mean over the samples' natural lengths)" if info.flops.mean_per_sample not in (None, info.flops.measured_per_sample)
               else f"sequence length {info.flops.sequence_length})")))
    build = next((r for r in mine if r.metrics.training() is not None), None)
    if build is not None:
        _training(row, build, wl, price, cur)
    _energy(row, mine)
    _verdicts(row, budget, cur)
    return row


def _at_slo(mine: list[Any], price: float, cur: str) -> Figure | None:
    """Money per 1M at the highest VALID rate under a latency bound over the candidate's steps (first on a tie)."""
    rates = [rate for r in mine if (rate := r.metrics.slo_rate(r)) is not None]
    if not rates:
        return None
    best = max(rates, key=lambda rate: rate.qps)  # max keeps the first of equal rates
    what = "peak" if best.searched else "a single run at"
    bound = best.bounds or f"{percentile_key(best.percentile)} ≤ {best.latency_bound_ms:g} ms"
    basis = (f"{what} {best.qps:g} QPS with {bound} "
             f"(server step {best.step}, {best.probes} probe{'s' if best.probes != 1 else ''}, LoadGen VALID"
             + ("" if best.searched else "; find_peak off, so at most the peak") + ")")
    which = "" if len(rates) == 1 else (f"; the highest of {len(rates)} server steps' VALID rates ("
                                        + ", ".join(f"{rate.step} {rate.qps:g}" for rate in rates) + " QPS)")
    return Figure(value=1e6 / best.qps / 3600 * price, unit=cur,
                  derived_from=f"1e6 / {basis} / 3600 × {price:g} {cur}/h{which}")


def _per_output_token(row: CandidateCost, mine: list[Any], price: float, cur: str) -> None:
    """A causal LM's cost per 1M new tokens at its best offline token rate, one request at a
    time, and at the server's VALID rate under its bounds: 1e6 / tokens/s / 3600 × price."""
    def figure(tokens_per_s: float, basis: str) -> Figure:
        return Figure(value=1e6 / tokens_per_s / 3600 * price, unit=cur,
                      derived_from=f"1e6 / {basis} / 3600 × {price:g} {cur}/h")

    offline = [(r, rate) for r in mine if (rate := r.metrics.serving_rate(r)) is not None and rate.output_tokens_per_s]
    if offline:
        best, rate = max(offline, key=lambda x: x[1].output_tokens_per_s)
        row.per_million_output_tokens_at_throughput = figure(rate.output_tokens_per_s, (
            f"{rate.output_tokens_per_s:.1f} output tokens/s ({best.name}, batch {rate.batch_size}, "
            f"{rate.samples} requests)"))
    stream = [(r, lat.tokens) for r in mine if (lat := r.metrics.latency()) is not None and lat.tokens is not None
              and lat.tokens.output_tokens_per_s > 0]
    if stream:
        r, t = stream[0]
        row.per_million_output_tokens_single_stream = figure(t.output_tokens_per_s, (
            f"{t.output_tokens_per_s:.1f} output tokens/s one request at a time ({r.name}, "
            f"{t.output_tokens_mean:.1f} new tokens per request)"))
    slo = [rate for r in mine if (rate := r.metrics.slo_rate(r)) is not None and rate.output_tokens_per_s]
    if slo:
        best_slo = max(slo, key=lambda rate: rate.qps)
        row.per_million_output_tokens_at_slo = figure(best_slo.output_tokens_per_s, (
            f"{best_slo.output_tokens_per_s:.1f} output tokens/s at {best_slo.qps:g} QPS, LoadGen VALID under "
            f"{best_slo.bounds or 'its bound'} (server step {best_slo.step})"))


def _energy(row: CandidateCost, mine: list[Any]) -> None:
    """kWh and g CO2-eq per 1k inferences from the step of the lowest `energy_rank` with a reading
    (offline, all its batch sizes, before single-stream); per training step from its building
    step. The label says how it was measured."""
    ranked = sorted({r.metrics.energy_rank for r in mine if r.energy and r.metrics.energy_rank is not None})
    if ranked:
        step = [r for r in mine if r.energy and r.metrics.energy_rank == ranked[0]]
        e = step[0].energy
        covered = [r for r in step if r.name in e.covers]
        n = sum(r.metrics.inferences() or 0 for r in covered)
        if e.energy_kwh is not None and n > 0:
            basis = (f"{e.energy_kwh:.3g} kWh over {', '.join(r.name for r in covered)} ({n} inferences, "
                     f"{e.duration_s:.1f} s, warm-up included), {e.method}")
            row.energy_per_1k_inferences = Figure(value=e.energy_kwh / n * 1000, unit="kWh", derived_from=basis)
            if e.emissions_kg_co2eq is not None:
                row.co2_per_1k_inferences = Figure(value=e.emissions_kg_co2eq * 1000 / n * 1000, unit="g CO2-eq",
                                                   derived_from=f"{basis}; {e.region}")
    build = next((r for r in mine if r.energy and r.metrics.training() is not None), None)
    if build is not None and build.energy.energy_kwh is not None:
        e = build.energy
        basis = f"codecarbon over step {build.name} ({e.duration_s:.1f} s), {e.method}"
        row.training_energy = Figure(value=e.energy_kwh, unit="kWh", derived_from=basis)
        if e.emissions_kg_co2eq is not None:
            row.training_co2 = Figure(value=e.emissions_kg_co2eq * 1000, unit="g CO2-eq",
                                      derived_from=f"{basis}; {e.region}")


def _training(row: CandidateCost, build: Any, wl: Any, price: float | None, cur: str) -> None:
    t = build.metrics.training()
    procs = int(build.settings.get("num_processes") or 1)
    wall = sum(t.wall_s_per_run)
    row.training_machine_hours = Figure(value=wall * procs / 3600, unit="h", derived_from=(
        f"{len(t.wall_s_per_run)} run(s) of {build.name}, {wall:.1f} s wall in all × {procs} process(es)"))
    if price is not None:
        row.training_cost = Figure(value=row.training_machine_hours.value * price, unit=cur,
                                   derived_from=f"machine-hours × {price:g} {cur}/h")
    samples = wl.training_samples or sum(t.samples_per_run)
    n = samples * wl.epochs
    source = "workload.training_samples" if wl.training_samples else f"samples {build.name} processed"
    hours = n / t.train_samples_per_s / 3600
    row.workload_training_hours = Figure(value=hours, unit="h", derived_from=(
        f"N = {samples} ({source}) × {wl.epochs:g} epoch(s) / {t.train_samples_per_s:.1f} training samples/s"))
    if price is not None:
        row.workload_training_cost = Figure(value=hours * price, unit=cur, derived_from=f"hours × {price:g} {cur}/h")
    if t.train_flops_per_sample:
        row.train_flops_measured = Figure(value=n * t.train_flops_per_sample, unit="FLOP", derived_from=(
            f"N × epochs × (C_fwd + C_bwd) = {n:g} × {t.train_flops_per_sample / 1e9:.4g} GFLOP (measured)"))
    if t.train_flops_per_sample_3x_forward_estimate:
        est = t.train_flops_per_sample_3x_forward_estimate
        row.train_flops_3x_forward = Figure(value=n * est, unit="FLOP",
                                            derived_from=f"N × epochs × 3 C_fwd = {n:g} × {est / 1e9:.4g} GFLOP")


def _verdicts(row: CandidateCost, budget: Any, cur: str) -> None:
    checks = [("serving", row.serving_per_month, budget.serving_per_month, "per month"),
              ("training", row.workload_training_cost, budget.training_per_run, "per run")]
    for what, figure, limit, per in checks:
        if limit is None:
            continue
        if figure is None:
            row.verdicts.append(f"{what}: not measured, so not checked against {limit:g} {cur} {per}")
            continue
        ok = figure.value <= limit
        row.verdicts.append(f"{what}: {figure.value:.4g} {cur} {per} is {'within' if ok else 'OVER'} the budget "
                            f"of {limit:g} {cur} ({figure.value / limit * 100:.0f} %)")
