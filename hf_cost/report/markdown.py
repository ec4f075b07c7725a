"""report.md: a human summary of results.json (same data, nothing extra)."""

from __future__ import annotations

from typing import Any

from hf_cost.core.format import gflop
from hf_cost.report.schema import RunResult
from hf_cost.report.summary import COLUMNS, busy_warnings, summary_row


def cell(text: str) -> str:
    """A table cell: one bounded line (an error message or a label from the data may hold line
    breaks, HTML or comment markers), its `<` and `|` escaped."""
    from hf_cost.report.safe_text import plain_text

    return plain_text(text).replace("<", "&lt;").replace("|", "\\|")


def render_markdown(result: RunResult) -> str:
    env = result.environment
    lines = [
        f"# hf_cost report: {result.suite.get('name')}",
        "",
        f"Scenario file `{result.scenario_file}` · hf_cost {result.hf_cost_version} "
        f"(commit {env.git_commit or 'n/a'}) · {result.created_utc} · schema {result.schema_version}",
        "",
        "## Models",
        "",
        f"Checkpoint: **{_where_from(result.model)}**",
        "",
    ]
    for name, c in result.candidates.items():
        m = c.model
        disk = "n/a" if c.size_on_disk_bytes is None else f"{c.size_on_disk_bytes / 2**20:.1f} MiB"
        lines += [
            f"- **{name}** ({_origin(c, result)})",
            f"  - {c.runtime}, {m.get('model_class', '')}, {c.parameters:,} parameters, "
            f"{c.parameter_bytes / 2**20:.1f} MiB of parameters, {disk} of weights on disk; "
            f"{c.dtype} on {c.device}, loaded in {c.load_time_s:.2f} s",
        ]
        if m.get("weights_note"):
            lines.append(f"  - **{m['weights_note']}**")
        if c.lm_flops is not None and c.lm_flops.get("counted"):
            lines.append("  - " + _lm_flops(c.lm_flops))
        if c.flops is not None:
            f = c.flops
            diff = "n/a" if f.relative_difference is None else f"{f.relative_difference * 100:.3f}%"
            analytic = "n/a" if f.analytic_per_sample is None else gflop(f.analytic_per_sample)
            lines.append(
                f"  - FLOPs per sample at sequence length {f.sequence_length} ({f.source}): "
                f"{gflop(f.measured_per_sample)}, analytic {analytic} (difference {diff})"
                + _flops_over_lengths(f)
            )
    lines += [
        "",
        "## Environment",
        "",
        f"- CPU: {env.cpu.model} ({env.cpu.logical_cores} logical cores, "
        f"{env.cpu.torch_threads} torch threads); GPUs: "
        + (", ".join(g.name for g in env.gpus) or "none"),
        "- " + ", ".join(f"{k} {v}" for k, v in env.libraries.items() if v) + f", Python {env.python}",
        f"- inputs: {result.inputs.get('source', result.inputs.get('kind'))}: {result.inputs.get('num_samples')} samples"
        + _lengths(result.inputs) + f", seed {result.inputs.get('seed')}",
        "- peak for MFU: "
        + (f"{result.peak_tflops} TFLOP/s ({result.peak_source})" if result.peak_tflops
           else "peak unknown (set hardware.peak_tflops)"),
    ]
    lines += ["", "## Results", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in result.scenarios:
        row = summary_row(r)
        lines.append("| " + " | ".join(cell(row[c]) for c in COLUMNS) + " |")
    if result.comparison is not None:
        from hf_cost.report.comparison_rows import COMPARISON_COLUMNS, comparison_rows

        lines += ["", f"## Candidates compared (reference: {result.comparison.reference})", "",
                  "| " + " | ".join(COMPARISON_COLUMNS) + " |", "|" + "---|" * len(COMPARISON_COLUMNS)]
        for row in comparison_rows(result.comparison):
            lines.append("| " + " | ".join(cell(row[c]) for c in COMPARISON_COLUMNS) + " |")
        lines += ["", f"How: {result.comparison.method}. Δ accuracy and agreement are on the same samples "
                  "(paired); [a, b] are 95% CIs; a p50 ratio from sequential runs has no CI and carries "
                  "the machine's drift, so quote the interleaved speed-up. A drift step's accuracy cells here are its "
                  "training window's periods and its latest; worst period Δ is, of every labelled period, the one "
                  "whose paired Δ has the lowest CI low end (every period's Δ is in results.json)."]
    from hf_cost.report.cost_markdown import cost_sections
    from hf_cost.report.drift_markdown import drift_sections

    lines += drift_sections(result.scenarios)
    lines += cost_sections(result.costs)
    from hf_cost.report.selection_markdown import selection_markdown

    lines += selection_markdown(result.selection, "plots/selection.png")
    lines += ["", "ES = MLPerf early-stopping estimate (confidence 0.99, tolerance 0). "
              "Percentiles are LoadGen's `sorted[int(n·p)]`. Raw samples are in results.json."]
    failed = [r for r in result.scenarios if r.status == "failed"]
    if failed:
        lines += ["", "## Failed steps", "", "Every other step still ran; these give no figures.", ""]
        lines += [f"- **{r.name}** ({r.kind}, candidate {r.candidate}): {r.error}" for r in failed]
    noted = [r for r in result.scenarios if r.validity and r.validity.recommendations]
    if noted:
        lines += ["", "## Validity notes", ""]
        for r in noted:
            for rec in r.validity.recommendations:  # type: ignore[union-attr]
                lines.append(f"- **{r.name}** ({r.validity.result}): {rec}")  # type: ignore[union-attr]
    lines += _machine_load_section(result)
    compute = [(r, r.metrics.compute()) for r in result.scenarios if r.ok]
    compute = [(r, c) for r, c in compute if c is not None]
    if compute:
        lines += [
            "", "## Achieved compute", "",
            "GFLOP/s = measured FLOPs per sample × the rate named beside it; MFU = that / peak FLOP/s."
            + (" With natural lengths, FLOPs per sample are the mean over the samples that ran, each at its "
               "own length (useful work: padding not counted)." if result.inputs.get("lengths") == "natural" else ""),
            "", "| scenario | GFLOP/s | MFU | rate it comes from |", "|---|---|---|---|",
        ]
        for r, c in compute:
            lines.append(
                f"| {r.name} | {c.gflops_per_s:.1f} | "
                f"{'peak unknown' if c.mfu is None else f'{c.mfu * 100:.2f}%'} | {c.basis} |"
            )
    return "\n".join(lines) + "\n"


def _machine_load_section(result: RunResult) -> list[str]:
    """'Machine load': every result measured while other processes used the CPU, with the figure."""
    warnings = busy_warnings(result.scenarios)
    if not warnings:
        return []
    first = next(r.machine_load for r in result.scenarios if r.machine_load and r.machine_load.busy)
    return ["", "## Machine load", "",
            ("Other processes used the CPU while these were measured, so their timings carry that load "
             f"(flagged above {first.threshold_cores:g} cores or {first.steal_threshold * 100:g} % steal, "
             "beyond the counters' resolution; figures in results.json `machine_load`):"),
            ""] + [f"- {cell(w)}" for w in warnings]


def _lengths(inputs: dict[str, Any]) -> str:
    """' × 128 tokens' (fixed, as before natural lengths), or the natural lengths' distribution."""
    seq, dist = inputs.get("sequence_length"), inputs.get("length_distribution")
    if not isinstance(dist, dict) or (inputs.get("lengths") != "natural" and dist.get("min") == seq):
        return f" × {seq} tokens"  # fixed with no padding (synthetic), or a file before natural lengths
    spread = (f"min {dist.get('min')}, p50 {dist.get('p50')}, p90 {dist.get('p90')}, max {dist.get('max')}, "
              f"mean {dist.get('mean', 0):.1f} tokens")
    share = inputs.get("padded_token_share_at_sequence_length")
    padding = "" if share is None else f"; padding to {seq} would be {share * 100:.0f}% of tokens"
    if inputs.get("lengths") == "natural":
        return (f", natural lengths (each sample at its own tokenised length, truncated at {seq}; a batch "
                f"padded to its longest member): {spread}{padding}")
    return f" × {seq} tokens (fixed lengths: every sample padded to {seq}; its own lengths: {spread})"


def _flops_over_lengths(f: Any) -> str:
    """'; mean over the set's lengths 0.91 GFLOP (analytic per length, counted at 9, 28, 62)'."""
    if not f.measured_at_lengths or f.mean_per_sample is None:
        return ""
    counted = ", ".join(
        f"{a.sequence_length}" + ("" if a.relative_difference is None else f" ({a.relative_difference * 100:.3f}%)")
        for a in f.measured_at_lengths)
    return (f"; mean over the samples' own lengths {gflop(f.mean_per_sample)} ({f.per_sample_from} per length; "
            f"counted at lengths {counted}, analytic difference in brackets)")


def _lm_flops(f: dict[str, Any]) -> str:
    """A causal LM's prefill and decode FLOPs, measured against the analytic count."""
    pre = f["prefill"][0]
    dec = ", ".join(f"{gflop(d['measured_per_token'])} at KV {d['kv_len']}" for d in f["decode"])
    return (f"FLOPs: prefill of a {pre['prompt_len']}-token prompt {gflop(pre['generate']['measured'])} (as generate "
            f"runs it; {gflop(pre['forward']['measured'])} with logits at every position), decode per token {dec}; "
            f"measured {'=' if f['all_agree'] else '≠'} analytic (Llama formula)"
            + ("; inherited from the source (the counter cannot see this candidate's matmuls)"
               if f.get("source") == "inherited" else "") + "; KV cache "
            f"{f['kv_cache_bytes_per_token']:,} bytes per token ({f['kv_dtype']})")


def _origin(c: Any, result: RunResult) -> str:
    if c.origin == "base":
        return "the scenario file's checkpoint: " + _where_from(result.model)
    step = c.recipe.get("kind", "a building step")
    where = f"saved at `{c.path}`" if c.path is not None else "in memory (nothing saved)"
    return f"{c.origin} from {c.parent} by {step}, {where}"


def _where_from(m: Any) -> str:
    """'org/name@main (commit abc…, Hub cache)' or the local path."""
    if m.id:
        commit = f"commit `{m.commit[:12]}`, " if m.commit else ""
        return f"{m.id}@{m.revision} ({commit}{m.source})"
    return f"`{m.path}` ({m.source})"
