"""Model-card sections from an hf_cost results file, read as a typed RunResult (the Hub metadata:
cards/hub_metadata.py).

Why: a card's figures should be the measured run's, each with its n, CI and method as in
report.md, and regenerate byte-identically from the same results. Sections (SECTIONS, in card
order): ``drift`` only with a step that scores dated periods, ``selection`` only with a selection.
Every figure is read through the results' models and their hooks (core/results.KindMetrics),
never by asking which kind a step is; the candidates' rows are the run's comparison
(report/comparison.py), built the same way for a run of one candidate. Only the results are
read, plus, for an eval result's ``dataset_revision`` and name, the local dataset file's bytes
(sha256 prefix) and the README.md beside it, when they are readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hf_cost.cards.drift_section import drift_section
from hf_cost.cards.generation import generation_section
from hf_cost.cards.quality_section import quality_section
from hf_cost.errors import UserError
from hf_cost.report.cost_markdown import FIELDS as _COST_FIELDS
from hf_cost.report.schema import RunResult

SECTIONS = ("cost", "generation", "quality", "drift", "variants", "selection", "reproduce")


def card_candidate(results: RunResult, candidate: str | None) -> str:
    """The candidate a card is about: `candidate`, else the comparison's reference, else the first."""
    names = list(results.candidates)
    if candidate is None:
        ref = results.comparison.reference if results.comparison is not None else None
        if ref is not None and ref not in names:  # its building step failed: never describe another one silently
            failed = next((s for s in results.scenarios if s.candidate == ref and not s.ok), None)
            why = f"step {failed.name} failed: {failed.error}" if failed else "it is not among the candidates"
            raise UserError(f"the run's reference {ref!r} cannot be described ({why}"[:400] + "); name the candidate "
                            f"the card is about with --candidate ({', '.join(names) or 'none'})")
        if names:
            return ref if ref is not None and ref in names else names[0]
        raise UserError("the results have no candidates")
    if candidate not in names:
        raise UserError(f"unknown candidate {candidate!r}; the results have: {', '.join(names) or 'none'}",
                        where="--candidate")
    return candidate


def md_safe(results: RunResult) -> RunResult:
    """A copy of `results` to print from: every text in it (keys too) one bounded, inert line of
    Markdown (report/safe_text.md_text). Not validated again: an escaped text may no longer be
    one a field allows (`<=` is `&lt;=`), and the copy is only ever printed."""
    return _inert(results.model_copy(deep=True))


def _inert(node: Any) -> Any:
    from pydantic import BaseModel

    from hf_cost.report.safe_text import md_text

    if isinstance(node, str):
        return md_text(node)
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            setattr(node, name, _inert(getattr(node, name)))
        return node
    if isinstance(node, dict):
        return {(md_text(k) if isinstance(k, str) else k): _inert(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_inert(v) for v in node]
    return node


@dataclass(frozen=True)
class _Card:
    """What every section reads: the (made-safe) run, the card's candidate, the candidates' rows."""

    run: RunResult
    me: str
    rows: list[Any]  # report/comparison.CandidateRow

    @property
    def reference(self) -> str | None:
        """The run's reference; None for a run of one candidate (it has no comparison)."""
        return self.run.comparison.reference if self.run.comparison is not None else None

    @property
    def ok(self) -> list[Any]:
        return [s for s in self.run.scenarios if s.ok]

    def label(self, name: str) -> str:
        tags = [t for t, on in (("this model", name == self.me), ("reference", name == self.reference)) if on]
        return f"**{name}** ({', '.join(tags)})" if tags else name


def card_sections(results: RunResult, *, candidate: str | None = None, results_path: str = "results.json",
                  card_path: str = "README.md") -> dict[str, str]:
    """Section name -> markdown, in SECTIONS order (drift and selection only when the run has them)."""
    from hf_cost.report.comparison import run_comparison
    from hf_cost.report.safe_text import md_text

    raw_file = results.scenario_file
    card_candidate(results, candidate)  # an unknown name is refused by its own spelling
    run = md_safe(results)  # every text from the results is bounded and inert from here on
    candidate = None if candidate is None else md_text(candidate)
    comparison = run_comparison(run)
    card = _Card(run, card_candidate(run, candidate), [] if comparison is None else comparison.rows)
    out = {"cost": _cost(card), "generation": generation_section(card, _tr), "quality": quality_section(card, _tr, _ci, _evaluated_on), "drift": drift_section(card, _tr, _ci), "variants": _variants(card),
           "selection": _selection(card), "reproduce": _reproduce(card, raw_file, candidate, results_path, card_path)}
    return {k: v for k, v in out.items() if v}


_COST_HEAD = ("candidate", "runtime · dtype", "latency p50 / p90, batch 1 (n, validity)",
              "offline throughput (n samples)", "GFLOP / sample", "parameters", "size on disk", "peak RSS Δ")
_COST_HOW = (
    "How: latency from hf_cost's single-stream run (one query at a time, batch 1, {inputs}); "
    "p50/p90 are LoadGen's sorted[int(n·p)] over n queries; VALID = LoadGen's minimum duration and query count and "
    "MLPerf early stopping met. Throughput from offline runs at each batch size. GFLOP per sample: torch "
    "FlopCounterMode over one forward, averaged over the samples' lengths (inherited = counted on the parent, same graph). Size: the weight files on "
    "disk (MiB = 2^20 bytes). Peak RSS Δ: highest resident-memory growth over the candidate's measurement runs. "
    "Sequential runs carry the machine's drift: quote the interleaved speed-ups in the variants section."
)


def _cost(card: _Card) -> str:
    run, costs = card.run, card.run.costs
    by_cost = {r.candidate: r for r in costs.rows} if costs is not None else {}
    head = list(_COST_HEAD) + (["per 1M inferences: offline / one stream p90 / at the latency bound"]
                               if costs is not None else [])
    lines = [_tr(head), "|" + "---|" * len(head)]
    for r in card.rows:
        name = card.label(r.candidate)
        if r.status == "failed":
            lines.append(_tr([name, f"FAILED: {r.error}"] + ["—"] * (len(head) - 2)))
            continue
        mine = [s for s in card.ok if s.candidate == r.candidate]
        stream = next((s for s in mine if s.metrics.latency() is not None), None)  # the row's latency figures
        valid = (stream.validity.result if stream is not None and stream.validity is not None else None) or "validity n/a"
        n_of = {str(rate.batch_size): rate.samples for s in mine if (rate := s.metrics.serving_rate(s)) is not None}
        rates = sorted(r.throughput_samples_per_s.items(), key=lambda x: int(x[0]))
        flops = r.flops_per_sample
        cells = [name, f"{r.runtime} · {r.dtype}",
                 "—" if r.p50_ms is None else
                 f"{r.p50_ms:.2f} / {_num(r.p90_ms, '.2f')} ms (n={r.latency_queries}, {valid})",
                 "; ".join(f"bs {b}: {v:.1f}/s (n={n_of.get(b, '?')})" for b, v in rates) or "—",
                 "—" if flops is None else f"{flops / 1e9:.4g} ({r.flops_source})",
                 _num(r.parameters, ".2f", 1e-6, "M"), _num(r.size_on_disk_bytes, ".1f", 2**-20, " MiB"),
                 _num(r.peak_rss_delta_mib, ".0f", 1, " MiB")]
        if costs is not None:
            c = by_cost.get(r.candidate)
            cells.append("— / — / —" if c is None else " / ".join(_fig(f) for f in (
                c.per_million_at_throughput, c.per_million_p90_single_stream, c.per_million_at_slo)))
        lines.append(_tr(cells))
    lines += ["", _COST_HOW.format(inputs=_inputs_phrase(run.inputs))]
    if costs is not None:
        price, cur = costs.price_per_hour, costs.currency
        lines += ["", "Cost at " + ("no price" if price is None else f"{price:g} {cur}/hour") + ":"]
        for c in costs.rows:
            lines += [f"- {c.candidate}, {label}: {_fig(f)} ({f.derived_from})"
                      for key, label in _COST_FIELDS if (f := getattr(c, key)) is not None]
            lines += [f"- {c.candidate}: {v}" for v in c.verdicts]
    env = run.environment
    libs = env.libraries
    soft = ", ".join(f"{k} {libs[k]}" for k in ("torch", "transformers", "onnxruntime") if libs.get(k))
    lines += ["", f"Measured on {env.describe_hardware(detailed=True)}; {soft or 'library versions not recorded'}, Python "
                  f"{env.python}; run {run.created_utc}; hf_cost {run.hf_cost_version} "
                  f"(commit {env.git_commit or 'n/a'})."]
    return "\n".join(lines)


_VARIANTS_HOW = (
    "Speed-up: hf_cost's compare step runs the candidates in alternating rounds on the same inputs; ratio of "
    "per-round figures (geometric mean, > 1 = faster), Student-t 95% CI on the log ratios over the rounds. "
    "Settings: the building step's recipe in results.json."
)


def _variants(card: _Card) -> str:
    from hf_cost.report.comparison import building_steps

    head = ["candidate", "origin", "built from", "how (step: key settings)", "parameters", "size on disk",
            "interleaved speed-up vs reference [95% CI]", "build"]
    lines = [_tr(head), "|" + "---|" * len(head)]
    model, built_by = card.run.model, building_steps(card.run.scenarios)
    for r in card.rows:
        name, info = r.candidate, card.run.candidates.get(r.candidate)
        step = next((s for s in card.run.scenarios if s.candidate == name and s.name == built_by.get(name)), None)
        how = (f"the scenario's checkpoint {model.id or model.path}@{model.revision}"
               if r.origin == "base" else _how(info.recipe if info is not None else {}, step))
        sp = r.interleaved_speedup  # KindMetrics.speedup's figures
        speed = "reference" if name == card.reference else "—" if not sp else (
            f"{sp['ratio']:.2f}x" + ("" if sp["ci_low"] is None else f" [{sp['ci_low']:.2f}, {sp['ci_high']:.2f}]")
            + f" ({sp['mode']}, {sp['rounds']} rounds)")
        lines.append(_tr([card.label(name), str(r.origin), str(r.parent or "—"), how,
                          _num(r.parameters, ".2f", 1e-6, "M"), _num(r.size_on_disk_bytes, ".1f", 2**-20, " MiB"),
                          speed, _build(step)]))
    return "\n".join(lines + ["", _VARIANTS_HOW])


def _how(recipe: dict[str, Any], step: Any) -> str:
    """'KIND: key=value, ...': the settings the kind's metrics model names (`card_settings`), else
    every scalar one; the settings the step resolved (`*_used`); what it trained on, and its target."""
    from hf_cost.core.registry import metrics_model

    kind = recipe.get("kind") or (step.kind if step is not None else None) or "?"
    model = metrics_model(str(kind))
    keys = (model.card_settings if model is not None else None) or sorted(
        k for k, v in recipe.items() if k not in ("name", "from", "kind") and not isinstance(v, dict))
    parts = [f"{k}={_val(recipe[k])}" for k in keys if k in recipe]
    settings = step.settings if step is not None else {}
    parts += [f"{k}={_val(v)}" for k, v in sorted(settings.items()) if k.endswith("_used")]
    if isinstance(recipe.get("train"), dict):
        parts.append(f"trained on {_split(recipe['train'])}")
    if isinstance(recipe.get("target"), dict):
        parts.append(f"target {recipe['target'].get('metric')} ≥ {_val(recipe['target'].get('value'))}")
    return f"{kind}: {', '.join(parts)}" if parts else str(kind)


def _build(step: Any) -> str:
    """What building the candidate took: time to target for a training step, else build time."""
    if step is None:
        return "—"
    if not step.ok:
        return f"FAILED: {step.error}"
    outcome = step.metrics.training_outcome()
    if outcome is not None and outcome.time_to_target_s is not None:
        return (f"time to target {outcome.time_to_target_s:.1f} s ({outcome.runs} run(s), "
                f"{'converged' if outcome.converged else 'not converged'})")
    built = step.metrics.build_summary()
    return "—" if built is None or built.time_s is None else f"{built.time_s:.1f} s"


def _selection(card: _Card) -> str:
    sel = card.run.selection
    if sel is None:
        return ""
    lines = [f"Recommended: **{sel.recommended or 'none'}**. {sel.reason}".rstrip(), ""]
    for names, label in ((sel.ties, "Tied with it"), (sel.frontier, "Pareto frontier"),
                         (sel.feasible, "Meets every constraint")):
        lines.append(f"- {label}: {', '.join(names) or 'none'}")
    candidates = list(card.run.candidates)
    order = [n for n in candidates if n in sel.verdicts] + sorted(n for n in sel.verdicts if n not in candidates)
    verdicts = [f"{n}: {sel.verdicts[n]}" for n in order]
    return "\n".join(lines + (["", "Verdicts:", ""] + [f"- {v}" for v in verdicts] if verdicts else []))


def _reproduce(card: _Card, scenario_file: Any, candidate: str | None, results_path: str, card_path: str) -> str:
    run = card.run
    pick = f" --candidate {_shell(candidate)}" if candidate else ""
    return "\n".join([f"Made with hf_cost {run.hf_cost_version} (commit "
                      f"{run.environment.git_commit or 'n/a'}). To rerun the measurements and regenerate these "
                      "sections:", "", "```bash", f"python -m hf_cost run {_shell(scenario_file)}",
                      f"python -m hf_cost card {_shell(results_path)} --card {_shell(card_path)}{pick}", "```", "",
                      "Figures from other hardware will differ: compare its environment with the line under the "
                      "cost table."])


def _shell(value: Any) -> str:
    """`value` as one shell word inside a code block: quoted, one line, no backtick fence."""
    import shlex

    from hf_cost.report.safe_text import plain_text

    return shlex.quote(plain_text(value, 300).replace("`", "'"))


def _evaluated_on(run: RunResult, scenario: str) -> str:
    """Where the step named `scenario` was scored: its dataset block's split, e.g. 'period=2023-H1, holdout 20%'."""
    return _split(_dataset_block(run, scenario))


def _dataset_block(run: RunResult, scenario: str) -> dict[str, Any]:
    """The `dataset` block of the step named `scenario`: the resolved suite's, else a result's settings."""
    suite = run.suite.get("scenarios") or []
    blocks = [s.get("dataset") for s in suite if isinstance(s, dict) and s.get("name") == scenario]
    blocks += [s.settings.get("dataset") for s in run.scenarios if s.name == scenario]
    return next((b for b in blocks if isinstance(b, dict)), {})


def _split(ds: dict[str, Any]) -> str:
    """'period=2023-H1, holdout 20% (seed 0)' from a dataset block's split/where/select."""
    parts = [str(ds["split"])] if ds.get("id") and ds.get("split") else []
    parts += [f"{k}={_val(v)}" for k, v in sorted((ds.get("where") or {}).items())]
    frac, sel = ds.get("holdout_fraction"), ds.get("select") or "all"
    if sel in ("train", "holdout") and frac is not None:
        parts.append(f"{sel} {(1 - frac if sel == 'train' else frac) * 100:.0f}% (seed {ds.get('seed')})")
    if ds.get("max_samples"):
        parts.append(f"max {ds['max_samples']} samples")
    return ", ".join(parts) or "all rows"


def _tr(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _ci(value: float, low: float, high: float) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _num(value: Any, fmt: str, scale: float = 1.0, unit: str = "") -> str:
    return "—" if value is None else f"{value * scale:{fmt}}{unit}"


def _fig(f: Any) -> str:
    """A cost figure (report/cost.Figure), or — without one."""
    if f is None:
        return "—"
    return f"{f.value / 1e12:.4g} TFLOP" if f.unit == "FLOP" else f"{f.value:.4g} {f.unit}"


def _val(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    return "none" if v is None else str(v)


def _inputs_phrase(inputs: dict) -> str:
    """'inputs padded to 128 tokens', or their natural lengths with the distribution (inputs.lengths)."""
    seq = inputs.get("sequence_length")
    dist = inputs.get("length_distribution") or {}
    if inputs.get("lengths") != "natural" or not dist:
        return f"inputs padded to {seq} tokens"
    return (f"inputs at their natural lengths: p50 {dist.get('p50')}, p90 {dist.get('p90')}, max {dist.get('max')} "
            f"tokens (cut at {seq})")
