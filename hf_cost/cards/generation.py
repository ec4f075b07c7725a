"""The card's generation section: a causal LM's figures per candidate, each with how it was
measured. Empty for a run of encoders.

Per candidate: TTFT and TPOT p50 / p90 over n single-stream requests (with the run's validity),
new tokens per request, new tokens/s one request at a time and at the best offline batch,
prefill and decode FLOPs (FlopCounterMode, checked against the Llama formula) and KV-cache bytes
per token, perplexity with its bootstrap CI, zero-shot exact match with the unparseable
share, and free-text scores (ROUGE-L or chrF) with their bootstrap CIs. What the weights are (a de-quantised GGUF) is said above the table.
"""

from __future__ import annotations

from typing import Any

HEAD = ("candidate", "TTFT p50 / p90 (n requests, validity)", "TPOT p50 / p90", "new tokens per request",
        "new tokens/s: one stream · offline (batch)", "prefill GFLOP · decode GFLOP/token · KV bytes/token",
        "perplexity [95% CI] (n docs)", "exact match [95% CI] · unparseable", "free text [95% CI]")
HOW = (
    "How: TTFT = a request's issue to its first new token (prefill and the first sampling); TPOT = (last token's time − "
    "first token's) / (new tokens − 1), over requests of 2 or more new tokens; p50/p90 are LoadGen's sorted[int(n·p)] "
    "over the single-stream requests (one at a time, greedy unless the scenario samples). New tokens/s: one stream = "
    "new tokens / the sum of request latencies; offline = new tokens / duration at the batch size with the most. "
    "FLOPs: torch FlopCounterMode over the prefill of a median-length prompt (as generate runs it: LM head on the last "
    "position) and one decoding step at the KV lengths shown; = analytic means equal to the Llama formula. Perplexity "
    "= exp(Σ NLL / Σ predicted tokens) over documents, 95% CI by a percentile bootstrap over documents. Exact match: "
    "the answer parsed to a label equals the reference (95% CI by bootstrap over rows); an unparseable answer counts "
    "as wrong. Free text: each free_text step's headline score against its reference column (ROUGE-L F-measure 0..1 "
    "through rouge-score, or sacrebleu's corpus chrF 0..100), 95% CI by a percentile bootstrap over rows."
)


def generation_section(card: Any, tr: Any) -> str:
    """Markdown for the card's `generation` section, or '' when no candidate generates."""
    rows = [_row(card, r, tr) for r in card.rows if r.status != "failed"]
    rows = [r for r in rows if r is not None]
    if not rows:
        return ""
    notes = dict.fromkeys(c.model.get("weights_note") for c in card.run.candidates.values() if c.model.get("weights_note"))
    gen = card.run.suite.get("generation") or {}
    settings = (f"Decoding: {'sampling' if gen.get('do_sample') else 'greedy'}, at most {gen.get('max_new_tokens')} new "
                f"tokens, stop at EOS; chat template {'on' if gen.get('chat_template', True) else 'off'}.")
    lines = [f"**{n}**" for n in notes] + ([""] if notes else []) + [settings, "", tr(list(HEAD)),
                                                                       "|" + "---|" * len(HEAD)]
    return "\n".join(lines + rows + ["", HOW])


def _row(card: Any, r: Any, tr: Any) -> str | None:
    mine = [s for s in card.ok if s.candidate == r.candidate]
    stream = next(((s, lat) for s in mine if (lat := s.metrics.latency()) is not None and lat.tokens is not None), None)
    rates = [(rate.output_tokens_per_s, rate.batch_size) for s in mine
             if (rate := s.metrics.serving_rate(s)) is not None and rate.output_tokens_per_s]
    info = card.run.candidates.get(r.candidate)
    flops = info.lm_flops if info is not None else None
    ppl = next((f for s in mine if (f := s.metrics.perplexity_figure()) is not None), None)
    answers = next(((s, a) for s in mine if (a := s.metrics.answer_figures()) is not None), None)
    texts = [t for s in mine if (t := s.metrics.text_quality(s)) is not None]
    if stream is None and not rates and flops is None and ppl is None and answers is None and not texts:
        return None
    cells = [card.label(r.candidate)]
    if stream is None:
        cells += ["—", "—", "—"]
    else:
        s, lat = stream
        t = lat.tokens
        valid = s.validity.result if s.validity is not None else "validity n/a"
        cells += [f"{t.ttft_p50_ms:.1f} / {t.ttft_p90_ms:.1f} ms (n={lat.queries}, {valid})",
                  "—" if t.tpot_p50_ms is None else f"{t.tpot_p50_ms:.1f} / {t.tpot_p90_ms:.1f} ms",
                  f"{t.output_tokens_mean:.1f}"]
    one = "—" if stream is None else f"{stream[1].tokens.output_tokens_per_s:.1f}"
    best = max(rates) if rates else None
    cells.append(f"{one} · " + ("—" if best is None else f"{best[0]:.1f} (batch {best[1]})"))
    if flops is not None and flops.get("counted"):
        pre, dec = flops["prefill"][0], flops["decode"][0]
        check = "= analytic" if flops.get("all_agree") else "≠ analytic"
        if flops.get("source") == "inherited":  # ONNX, quanto int8: the counter cannot see the graph's matmuls
            check += ", inherited from the source"
        cells.append(f"{pre['generate']['measured'] / 1e9:.3g} ({pre['prompt_len']} tokens) · "
                     f"{dec['measured_per_token'] / 1e9:.3g} (KV {dec['kv_len']}) · {flops['kv_cache_bytes_per_token']:,} "
                     f"({check})")
    else:
        cells.append("—" if flops is None else f"not counted: {flops.get('reason', 'see results.json')}")
    cells.append("—" if ppl is None else f"{ppl.value:.3g} [{ppl.ci_low:.3g}, {ppl.ci_high:.3g}] (n={ppl.n})")
    if answers is None:
        cells.append("—")
    else:
        s, a = answers
        em = a.exact_match
        cells.append(f"{em.value:.3f} [{em.ci_low:.3f}, {em.ci_high:.3f}] on {s.name} (n={em.n}) · "
                     f"{a.unparseable_share:.0%}")
    cells.append("; ".join(_text(t) for t in texts) or "—")
    return tr(cells)


def _text(t: Any) -> str:
    f = ".3f" if t.score.scale == 1 else ".1f"
    name = "rougeL" if t.metric == "rouge" else ("chrF++" if t.options.get("word_order") else "chrF")
    return f"{name} {t.score.value:{f}} [{t.score.ci_low:{f}}, {t.score.ci_high:{f}}] on {t.cell} (n={t.score.n})"
