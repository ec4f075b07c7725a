"""Model-card sections from an hf_cost results.json dict (the Hub metadata: cards/hub_metadata.py).

Why: a card's figures should be the measured run's, each with its n, CI and method as in
report.md, and regenerate byte-identically from the same results. Sections (SECTIONS, in card
order): ``drift`` only with a drift result, ``selection`` only with a ``selection`` block.
Only the results are read, plus, for an eval result's ``dataset_revision`` and name, the local
dataset file's bytes (sha256 prefix) and the README.md beside it, when they are readable.
"""

from __future__ import annotations

from typing import Any

from hf_cost.errors import UserError
from hf_cost.report.cost_markdown import FIELDS as _COST_FIELDS

SECTIONS = ("cost", "quality", "drift", "variants", "selection", "reproduce")
_GRAN = {"half": "half-year"}
BUILD_KINDS = ("fine_tune", "distill", "onnx", "onnx_int8", "quanto", "prune")
_KEYS = {"fine_tune": ("learning_rate", "batch_size", "max_steps", "max_time_s", "sequence_length", "runs", "seed"),
         "distill": ("student_layers", "alpha", "temperature", "learning_rate", "batch_size", "max_steps",
                     "max_time_s", "runs", "seed")}


def card_candidate(results: dict, candidate: str | None) -> str:
    """The candidate a card is about: `candidate`, else the comparison's reference, else the first."""
    names = list(results.get("candidates") or {})
    if candidate is None:
        ref = (results.get("comparison") or {}).get("reference")
        if ref is not None and ref not in names:  # its building step failed: never describe another one silently
            failed = next((s for s in results.get("scenarios") or [] if s.get("candidate") == ref
                           and s.get("status") == "failed"), None)
            why = f"step {failed.get('name')} failed: {failed.get('error')}" if failed else "it is not among the candidates"
            raise UserError(f"the run's reference {ref!r} cannot be described ({why}"[:400] + "); name the candidate "
                            f"the card is about with --candidate ({', '.join(names) or 'none'})")
        if names:
            return ref if ref in names else names[0]
        raise UserError("the results have no candidates")
    if candidate not in names:
        raise UserError(f"unknown candidate {candidate!r}; the results have: {', '.join(names) or 'none'}",
                        where="--candidate")
    return candidate


def card_sections(results: dict, *, candidate: str | None = None, results_path: str = "results.json",
                  card_path: str = "README.md") -> dict[str, str]:
    """Section name -> markdown, in SECTIONS order (drift and selection only when the run has them)."""
    from hf_cost.report.safe_text import md_safe_tree, md_text

    raw_file = results.get("scenario_file")
    card_candidate(results, candidate)  # an unknown name is refused by its own spelling
    results = md_safe_tree(results)  # every text from the results is bounded and inert from here on
    candidate = None if candidate is None else md_text(candidate)
    me, rows = card_candidate(results, candidate), _rows(results)
    out = {"cost": _cost(results, rows, me), "quality": _quality(results, rows, me), "drift": _drift(results),
           "variants": _variants(results, rows, me), "selection": _selection(results),
           "reproduce": _reproduce(results, raw_file, candidate, results_path, card_path)}
    return {k: v for k, v in out.items() if v}


def _rows(results: dict) -> list[dict]:
    """The comparison's rows; with a single candidate (no comparison) the same figures, rebuilt."""
    if (results.get("comparison") or {}).get("rows"):
        return results["comparison"]["rows"]
    rows = []
    for name, c in (results.get("candidates") or {}).items():
        mine = [s for s in _ok(results) if s.get("candidate") == name and s["kind"] not in BUILD_KINDS]
        ss, flops = next((s for s in mine if s["kind"] == "single_stream"), None), c.get("flops") or {}
        pct = ss["metrics"]["latency_ms"]["percentiles_ms"] if ss else {}
        peaks = [s["memory"]["peak_rss_delta_mib"] for s in mine
                 if (s.get("memory") or {}).get("peak_rss_delta_mib") is not None]
        row = {k: c.get(k) for k in ("origin", "parent", "runtime", "dtype", "parameters", "size_on_disk_bytes")}
        row.update(candidate=name, status="ok", flops_per_sample=flops.get("measured_per_sample"),
                   flops_source=flops.get("source"), peak_rss_delta_mib=max(peaks, default=None),
                   p50_ms=pct.get("p50"), p90_ms=pct.get("p90"), latency_queries=ss and ss["metrics"]["queries"])
        row["throughput_samples_per_s"] = {str(s["settings"]["batch_size"]): s["metrics"]["throughput_samples_per_s"]
                                           for s in mine if s["kind"] == "offline"}
        row["quality"] = [{"scenario": s["name"], "n": a["n"], "accuracy": a["value"], "ci_low": a["ci_low"],
                           "ci_high": a["ci_high"]} for s in mine if s["kind"] == "accuracy"
                          for a in [s["metrics"]["accuracy"]]]
        rows.append(row)
    return rows


def _ok(results: dict) -> list[dict]:
    return [s for s in results.get("scenarios", []) if s.get("status", "ok") == "ok"]


_COST_HEAD = ("candidate", "runtime · dtype", "latency p50 / p90, batch 1 (n, validity)",
              "offline throughput (n samples)", "GFLOP / sample", "parameters", "size on disk", "peak RSS Δ")
_COST_HOW = (
    "How: latency from hf_cost's single-stream run (one query at a time, batch 1, inputs padded to {seq} tokens); "
    "p50/p90 are LoadGen's sorted[int(n·p)] over n queries; VALID = LoadGen's minimum duration and query count and "
    "MLPerf early stopping met. Throughput from offline runs at each batch size. GFLOP per sample: torch "
    "FlopCounterMode over one forward (inherited = counted on the parent, same graph). Size: the weight files on "
    "disk (MiB = 2^20 bytes). Peak RSS Δ: highest resident-memory growth over the candidate's measurement runs. "
    "Sequential runs carry the machine's drift: quote the interleaved speed-ups in the variants section."
)


def _cost(results: dict, rows: list[dict], me: str) -> str:
    costs = results.get("costs") or {}
    by_cost = {r["candidate"]: r for r in costs.get("rows", [])}
    head = list(_COST_HEAD) + (["per 1M inferences: offline / one stream p90"] if costs else [])
    lines = [_tr(head), "|" + "---|" * len(head)]
    for r in rows:
        name = _label(r["candidate"], me, results)
        if r.get("status") == "failed":
            lines.append(_tr([name, f"FAILED: {r.get('error')}"] + ["—"] * (len(head) - 2)))
            continue
        mine = [s for s in _ok(results) if s.get("candidate") == r["candidate"]]
        ss = next((s for s in mine if s["kind"] == "single_stream"), None)
        valid = ((ss or {}).get("validity") or {}).get("result") or "validity n/a"
        n_of = {str(s["settings"].get("batch_size")): s["metrics"].get("samples")
                for s in mine if s["kind"] == "offline"}
        rates = sorted((r.get("throughput_samples_per_s") or {}).items(), key=lambda x: int(x[0]))
        flops = r.get("flops_per_sample")
        cells = [name, f"{r.get('runtime')} · {r.get('dtype')}",
                 "—" if r.get("p50_ms") is None else
                 f"{r['p50_ms']:.2f} / {_num(r.get('p90_ms'), '.2f')} ms (n={r.get('latency_queries')}, {valid})",
                 "; ".join(f"bs {b}: {v:.1f}/s (n={n_of.get(b, '?')})" for b, v in rates) or "—",
                 "—" if flops is None else f"{flops / 1e9:.4g} ({r.get('flops_source')})",
                 _num(r.get("parameters"), ".2f", 1e-6, "M"), _num(r.get("size_on_disk_bytes"), ".1f", 2**-20, " MiB"),
                 _num(r.get("peak_rss_delta_mib"), ".0f", 1, " MiB")]
        if costs:
            c = by_cost.get(r["candidate"], {})
            cells.append(f"{_fig(c.get('per_million_at_throughput'))} / {_fig(c.get('per_million_p90_single_stream'))}")
        lines.append(_tr(cells))
    lines += ["", _COST_HOW.format(seq=(results.get("inputs") or {}).get("sequence_length"))]
    if costs:
        price, cur = costs.get("price_per_hour"), costs.get("currency")
        lines += ["", "Cost at " + ("no price" if price is None else f"{price:g} {cur}/hour") + ":"]
        for r in costs.get("rows", []):
            lines += [f"- {r['candidate']}, {label}: {_fig(r[key])} ({r[key]['derived_from']})"
                      for key, label in _COST_FIELDS if r.get(key)]
            lines += [f"- {r['candidate']}: {v}" for v in r.get("verdicts") or []]
    env = results.get("environment") or {}
    libs = env.get("libraries") or {}
    soft = ", ".join(f"{k} {libs[k]}" for k in ("torch", "transformers", "onnxruntime") if libs.get(k))
    lines += ["", f"Measured on {_hardware(results)}; {soft or 'library versions not recorded'}, Python "
                  f"{env.get('python', '?')}; run {results.get('created_utc')}; hf_cost "
                  f"{results.get('hf_cost_version')} (commit {env.get('git_commit') or 'n/a'})."]
    return "\n".join(lines)


_QUALITY_HOW = (
    "Accuracy: share of rows predicted right; 95% CI by {method}. Δ = this candidate − the reference ({ref}) on the "
    "very same rows: paired bootstrap CI and an exact McNemar test; agreement = same predicted class, Wilson CI. "
    "Cells named DRIFT:PERIOD come from the drift step (the candidate's training rows not scored)."
)


def _quality(results: dict, rows: list[dict], me: str) -> str:
    head = ["candidate", "evaluated on", "accuracy [95% CI]", "n", "Δ vs reference [95% CI]", "McNemar p",
            "agreement [95% CI]"]
    lines = [_tr(head), "|" + "---|" * len(head)]
    for r in rows:
        for q in r.get("quality") or []:
            d, a = q.get("delta_vs_reference"), q.get("agreement_with_reference")
            cell = q["scenario"] if ":" in q["scenario"] else (
                f"{q['scenario']}: {_split(_dataset_block(results, q['scenario']))}")
            lines.append(_tr([_label(r["candidate"], me, results), cell,
                              _ci(q["accuracy"], q["ci_low"], q["ci_high"]), str(q["n"]),
                              "—" if d is None else f"{d['value']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]",
                              "—" if d is None or d.get("mcnemar_p") is None else f"{d['mcnemar_p']:.2g}",
                              "—" if a is None else _ci(a["value"], a["ci_low"], a["ci_high"])]))
    if len(lines) == 2:
        return "No accuracy or drift step in this run."
    method = next((s["metrics"]["accuracy"].get("method") for s in _ok(results) if s["kind"] == "accuracy"), None)
    ref = (results.get("comparison") or {}).get("reference")
    return "\n".join(lines + ["", _QUALITY_HOW.format(method=method or "bootstrap over rows", ref=ref or "none")])


def _drift(results: dict) -> str:
    from hf_cost.drift.decay import describe_slope

    lines: list[str] = []
    for s in (s for s in _ok(results) if s["kind"] == "drift"):
        m = s["metrics"]
        decay, gran = m.get("decay") or {}, m.get("granularity", "period")
        trend = (f"accuracy {describe_slope(decay['slope'], gran)}; least-squares slope over period positions, "
                 "CI by bootstrap over rows" if decay.get("slope") else "no trend (fewer than 2 scored periods)")
        if drop := decay.get("drop"):
            trend += (f"; in-window minus out-of-window average {drop['value'] * 100:+.1f} points "
                      f"[{drop['ci_low'] * 100:+.1f}, {drop['ci_high'] * 100:+.1f}]")
        window = ", ".join(m.get("training_window") or []) or "none"
        lines += [f"**{s['candidate']}** ({s['name']}, periods from `{m.get('period_column')}` by "
                  f"{_GRAN.get(gran, gran)}; training window {window}): {trend}.", "",
                  _tr(["period", "n", "accuracy [95% CI]", "macro-F1 [95% CI]"]), "|---|---|---|---|"]
        for p in m.get("periods") or []:
            a, f = p.get("accuracy"), p.get("f1_macro")
            label = p["period"] + (" (training window)" if p.get("in_window") else "") + (
                " ⚠ few rows" if p.get("few_rows") else "")
            lines.append(_tr([label, str(p.get("n", 0)),
                              "not scored" if a is None else _ci(a["value"], a["ci_low"], a["ci_high"]),
                              "—" if f is None else _ci(f["value"], f["ci_low"], f["ci_high"])]))
        lines.append("")
    if not lines:
        return ""
    return "\n".join(lines + ["CIs: percentile bootstrap over the period's rows. Rows the candidate was trained on "
                              "are not scored. See the dataset's README for the drift built into its periods."])


_VARIANTS_HOW = (
    "Speed-up: hf_cost's compare step runs the candidates in alternating rounds on the same inputs; ratio of "
    "per-round figures (geometric mean, > 1 = faster), Student-t 95% CI on the log ratios over the rounds. "
    "Settings: the building step's recipe in results.json."
)


def _variants(results: dict, rows: list[dict], me: str) -> str:
    head = ["candidate", "origin", "built from", "how (step: key settings)", "parameters", "size on disk",
            "interleaved speed-up vs reference [95% CI]", "build"]
    lines = [_tr(head), "|" + "---|" * len(head)]
    model, ref = results.get("model") or {}, (results.get("comparison") or {}).get("reference")
    for r in rows:
        name, info = r["candidate"], (results.get("candidates") or {}).get(r["candidate"], {})
        step = next((s for s in results.get("scenarios", [])
                     if s.get("candidate") == name and s.get("kind") in BUILD_KINDS), None)
        how = (f"the scenario's checkpoint {model.get('id') or model.get('path')}@{model.get('revision')}"
               if r.get("origin") == "base" else _how(info.get("recipe") or {}, step))
        sp = r.get("interleaved_speedup")
        speed = "reference" if name == ref else "—" if not sp else (
            f"{sp['ratio']:.2f}x" + ("" if sp.get("ci_low") is None else f" [{sp['ci_low']:.2f}, {sp['ci_high']:.2f}]")
            + f" ({sp.get('mode')}, {sp.get('rounds')} rounds)")
        lines.append(_tr([_label(name, me, results), str(r.get("origin")), str(r.get("parent") or "—"), how,
                          _num(r.get("parameters"), ".2f", 1e-6, "M"),
                          _num(r.get("size_on_disk_bytes"), ".1f", 2**-20, " MiB"), speed, _build(step)]))
    return "\n".join(lines + ["", _VARIANTS_HOW])


def _how(recipe: dict, step: dict | None) -> str:
    kind = recipe.get("kind") or (step or {}).get("kind") or "?"
    keys = _KEYS.get(kind) or sorted(k for k, v in recipe.items() if k not in ("name", "from", "kind")
                                     and not isinstance(v, dict))
    parts = [f"{k}={_val(recipe[k])}" for k in keys if k in recipe]
    parts += [f"{k}={_val(v)}" for k, v in sorted(((step or {}).get("settings") or {}).items()) if k.endswith("_used")]
    if isinstance(recipe.get("train"), dict):
        parts.append(f"trained on {_split(recipe['train'])}")
    if isinstance(recipe.get("target"), dict):
        parts.append(f"target {recipe['target'].get('metric')} ≥ {_val(recipe['target'].get('value'))}")
    return f"{kind}: {', '.join(parts)}" if parts else kind


def _build(step: dict | None) -> str:
    if step is None or step.get("status", "ok") != "ok":
        return "—" if step is None else f"FAILED: {step.get('error')}"
    m = step.get("metrics") or {}
    if "runs" in m and m.get("time_to_target_s") is not None:
        return (f"time to target {m['time_to_target_s']:.1f} s ({len(m['runs'])} run(s), "
                f"{'converged' if m.get('converged') else 'not converged'})")
    return "—" if m.get("build_time_s") is None else f"{m['build_time_s']:.1f} s"


def _selection(results: dict) -> str:
    sel = results.get("selection")
    if not sel:
        return ""
    lines = [f"Recommended: **{sel.get('recommended') or 'none'}**. {sel.get('reason') or ''}".rstrip(), ""]
    for key, label in (("ties", "Tied with it"), ("frontier", "Pareto frontier"),
                       ("feasible", "Meets every constraint")):
        lines.append(f"- {label}: {', '.join(sel.get(key) or []) or 'none'}")
    verdicts, names = sel.get("verdicts") or {}, list(results.get("candidates") or {})
    if isinstance(verdicts, dict):
        order = [n for n in names if n in verdicts] + sorted(n for n in verdicts if n not in names)
        verdicts = [f"{n}: {verdicts[n]}" for n in order]
    return "\n".join(lines + (["", "Verdicts:", ""] + [f"- {v}" for v in verdicts] if verdicts else []))


def _reproduce(results: dict, scenario_file: Any, candidate: str | None, results_path: str, card_path: str) -> str:
    env = results.get("environment") or {}
    pick = f" --candidate {_shell(candidate)}" if candidate else ""
    return "\n".join([f"Made with hf_cost {results.get('hf_cost_version')} (commit "
                      f"{env.get('git_commit') or 'n/a'}). To rerun the measurements and regenerate these sections:",
                      "", "```bash", f"python -m hf_cost run {_shell(scenario_file)}",
                      f"python -m hf_cost card {_shell(results_path)} --card {_shell(card_path)}{pick}", "```", "",
                      "Figures from other hardware will differ: compare its environment with the line under the "
                      "cost table."])


def _shell(value: Any) -> str:
    """`value` as one shell word inside a code block: quoted, one line, no backtick fence."""
    import shlex

    from hf_cost.report.safe_text import plain_text

    return shlex.quote(plain_text(value, 300).replace("`", "'"))


def _dataset_block(results: dict, scenario: str) -> dict:
    """The `dataset` block of the step named `scenario`: the resolved suite's, else a result's settings."""
    suite = (results.get("suite") or {}).get("scenarios", [])
    blocks = [s.get("dataset") for s in suite if s.get("name") == scenario]
    blocks += [(s.get("settings") or {}).get("dataset") for s in results.get("scenarios", [])
               if s.get("name") == scenario]
    return next((b for b in blocks if isinstance(b, dict)), {})



def _split(ds: dict) -> str:
    """'period=2023-H1, holdout 20% (seed 0)' from a dataset block's split/where/select."""
    parts = [str(ds["split"])] if ds.get("id") and ds.get("split") else []
    parts += [f"{k}={_val(v)}" for k, v in sorted((ds.get("where") or {}).items())]
    frac, sel = ds.get("holdout_fraction"), ds.get("select") or "all"
    if sel in ("train", "holdout") and frac is not None:
        parts.append(f"{sel} {(1 - frac if sel == 'train' else frac) * 100:.0f}% (seed {ds.get('seed')})")
    if ds.get("max_samples"):
        parts.append(f"max {ds['max_samples']} samples")
    return ", ".join(parts) or "all rows"


def _hardware(results: dict) -> str:
    env = results.get("environment") or {}
    cpu, gpus = env.get("cpu") or {}, env.get("gpus") or []
    gpu = ", ".join(f"{g.get('name')} ({g['memory_mib'] / 1024:.0f} GiB)" if g.get("memory_mib") else str(g.get("name"))
                    for g in gpus) or "no GPU"
    return (f"{cpu.get('model', '?')} ({cpu.get('logical_cores', '?')} logical / {cpu.get('physical_cores', '?')} "
            f"physical cores, {cpu.get('torch_threads', '?')} torch threads), {gpu}")


def _label(name: str, me: str, results: dict) -> str:
    tags = [t for t, on in (("this model", name == me),
                            ("reference", name == (results.get("comparison") or {}).get("reference"))) if on]
    return f"**{name}** ({', '.join(tags)})" if tags else name


def _tr(cells: list[str]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def _ci(value: float, low: float, high: float) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _num(value: Any, fmt: str, scale: float = 1.0, unit: str = "") -> str:
    return "—" if value is None else f"{value * scale:{fmt}}{unit}"


def _fig(f: dict | None) -> str:
    if not f:
        return "—"
    unit, v = f.get("unit"), float(f["value"])
    return f"{v / 1e12:.4g} TFLOP" if unit == "FLOP" else f"{v:.4g} {unit}"


def _val(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    return "none" if v is None else str(v)
