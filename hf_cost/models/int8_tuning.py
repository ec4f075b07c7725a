"""Accuracy-aware int8: keep the quantized nodes that cost most accuracy in float until the paired
accuracy change's CI low end meets a bound (onnx_int8's `accuracy_aware:` block).

After Intel Neural Compressor's default "basic" tuning strategy (docs/source/tuning_strategies.md:
quantize everything, then "fallback OP one by one", then "fallback multiple OPs accumulated"),
for ONNX Runtime int8 through Optimum, with the exit test replaced by a paired confidence bound:

1. Score. The fp32 graph and the fully int8 graph (``quantize(())``) run on the same labelled
   rows through `onnxruntime.InferenceSession` (CPU, torch's thread count), tokenized as the
   accuracy kind tokenizes them (padded to the sequence length), ``batch_size`` rows a run
   (default 1: dynamic int8 scales each activation over the whole batch, so a row's prediction
   depends on its batch; alone, it is what single_stream serves). The change is accuracy(int8) -
   accuracy(fp32), in points, with a paired percentile bootstrap CI (quality/paired.py: each
   resample draws the same rows for both graphs).
2. If the CI low end >= ``min_delta_points``: done, no node stays float.
3. Rank. Every node ORT's dynamic quantizer turns int8 (MatMul; Gemm, which it rewrites to a
   MatMul named ``<gemm>_MatMul``; Gather of a float initializer, the embeddings) is quantized
   alone, every other node excluded, and scored by the mean |logit change| vs fp32 on the first
   ``ranking_samples`` rows: the harm that node does by itself. INC's fallback ranks by
   re-scoring accuracy with each op in float; the logit change is the continuous version of that
   signal, which a few dozen rows can resolve where an accuracy count cannot.
4. Greedy fallback. The k most harmful nodes are excluded (ORT ``nodes_to_exclude``), k = 1, 2,
   ..., the graph quantized again and re-scored on every row, until the bound holds or k reaches
   ``max_float_nodes``. If it never holds, the trial with the highest CI low end (fewest float
   nodes on a tie) is kept and ``bound_met`` is false. Every trial is kept raw: its float nodes,
   per-row predictions, the paired change with its CI, and its quantize and scoring time.

Each excluded node is checked to be float in the graph ORT wrote (the node of that name is still
a MatMul / Gather fed by no DequantizeLinear and no int8 initializer); ORT ignoring a name is an
error, not a silent no-op. What the float nodes cost in speed is measured by `speed_cost`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from hf_cost.errors import UserError
from hf_cost.quality.paired import paired_accuracy_difference

FLOAT_DTYPES = {1, 10, 11, 16}  # onnx TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
INT8_DTYPES = {2, 3}  # UINT8, INT8


@dataclass(frozen=True)
class Rows:
    """Labelled rows as the graphs read them: numpy int64 inputs (rows x sequence length)."""

    inputs: dict[str, Any]
    labels: list[int]
    description: str

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, n: int) -> dict[str, Any]:
        return {k: v[:n] for k, v in self.inputs.items()}


@dataclass
class Tuning:
    """What the loop found: the kept trial's float nodes and change, every trial and the ranking."""

    fp32_predictions: list[int]
    trials: list[dict[str, Any]]
    ranking: list[dict[str, Any]]
    kept: int  # index into trials
    bound_met: bool
    candidates: int
    time_s: float = 0.0

    @property
    def float_nodes(self) -> list[str]:
        return list(self.trials[self.kept]["float_nodes"])


def check_settings(cfg: Any, generative: bool, labels: list[str] | None, where: str) -> None:
    """Validate-time refusals: a causal LM, a source without a classification head, rows whose
    labels the source does not know (the data is read, nothing heavy loaded)."""
    from hf_cost.data.labelled import load_labelled

    if generative:
        raise UserError("scores a classifier's labels, and a causal LM (model.task: text-generation) has none",
                        where=where)
    if labels is None:
        raise UserError("the source has no classification head to score (fine-tune it first, or set model.task: "
                        "sequence-classification)", where=where)
    load_labelled(cfg.data, f"{where}.data", labels)


def load_rows(cfg: Any, tokenizer: Any, labels: list[str], sequence_length: int, where: str) -> Rows:
    from hf_cost.data.labelled import load_labelled

    data = load_labelled(cfg.data, f"{where}.data", labels)
    tensors = data.tokenize(tokenizer, sequence_length)
    return Rows({k: v.numpy().astype("int64") for k, v in tensors.items()}, data.labels, data.description)


def quantizable_nodes(fp32_path: Path, operators: Sequence[str], static: bool) -> list[str]:
    """The nodes ORT's quantizer makes int8, by the name ``nodes_to_exclude`` takes, in graph order."""
    import onnx

    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    floats = {t.name for t in graph.initializer if t.data_type in FLOAT_DTYPES}
    names = []
    for node in graph.node:
        if node.op_type == "MatMul" and "MatMul" in operators:
            names.append(node.name)
        elif node.op_type == "Gemm" and not static and "MatMul" in operators and _plain_gemm(node):
            names.append(f"{node.name}_MatMul")  # ORT's dynamic quantizer rewrites it first (onnx_model.py)
        elif node.op_type == "Gemm" and static and "Gemm" in operators:
            names.append(node.name)
        elif node.op_type == "Gather" and "Gather" in operators and node.input[0] in floats:
            names.append(node.name)
    return names


def still_quantized(graph_path: Path, names: Sequence[str]) -> list[str]:
    """Of ``names``, those that are not a float MatMul / Gemm / Gather in the graph at ``graph_path``."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False).graph
    int8 = {t.name for t in graph.initializer if t.data_type in INT8_DTYPES}
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    float_nodes = {n.name for n in graph.node if n.op_type in ("MatMul", "Gemm", "Gather")
                   and not any(i in int8 or i in dequantized for i in n.input)}
    return [name for name in names if name not in float_nodes]


def graph_logits(path: Path, inputs: dict[str, Any], batch_size: int) -> Any:
    """The graph's first output (logits) for every row, batch by batch, as float32 (rows, classes)."""
    import numpy as np
    import onnxruntime

    from hf_cost.models.onnx_candidate import PROVIDER, session_options

    session = onnxruntime.InferenceSession(str(path), session_options(), providers=[PROVIDER])
    wanted = [i.name for i in session.get_inputs()]
    n = len(next(iter(inputs.values())))
    parts = [session.run(None, {k: inputs[k][s:s + batch_size] for k in wanted})[0] for s in range(0, n, batch_size)]
    return np.concatenate(parts, axis=0).astype(np.float32)


def accuracy_aware(cfg: Any, fp32: Path, full_int8: Path, quantize: Callable[[Sequence[str], Path], Path],
                   rows: Rows, quantizer_cfg: Any, scratch: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Tune, then put the kept graph at ``full_int8``'s path (the fully int8 graph already there is
    timed against it first). ``quantize(nodes_to_exclude, directory)`` writes a graph into
    ``directory`` and returns its file. Returns the metrics block, the raw trials and a note."""
    import os
    import shutil

    candidates = quantizable_nodes(fp32, list(quantizer_cfg.operators_to_quantize), quantizer_cfg.is_static)
    trials_dir = scratch / "trial"
    try:
        tuning = tune(fp32, lambda excluded: quantize(excluded, trials_dir), rows, cfg, candidates, say)
        speed = None
        if tuning.float_nodes:
            kept = quantize(tuning.float_nodes, scratch / "kept")
            say(f"timing the fully int8 and the tuned graph at batch 1: {cfg.speed_rounds} rounds x "
                f"{cfg.speed_queries} queries each")
            speed = speed_cost(full_int8, kept, rows, cfg.speed_rounds, cfg.speed_queries)
            os.replace(kept, full_int8)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _report(cfg, tuning, rows, speed)


def _report(cfg: Any, tuning: Tuning, rows: Rows, speed: dict[str, Any] | None) -> dict[str, Any]:
    import statistics

    kept, full = tuning.trials[tuning.kept], tuning.trials[0]
    points = {k: 100 * kept["delta"][k] for k in ("value", "ci_low", "ci_high")}
    metrics = {
        "float_nodes": tuning.float_nodes, "bound_met": tuning.bound_met, "min_delta_points": cfg.min_delta_points,
        "rows": len(rows), "confidence": cfg.confidence, "fp32_accuracy": kept["delta"]["accuracy_a"],
        "accuracy": kept["accuracy"], "delta_points": points["value"], "delta_ci_low_points": points["ci_low"],
        "delta_ci_high_points": points["ci_high"], "full_int8_delta_points": 100 * full["delta"]["value"],
        "full_int8_delta_ci_low_points": 100 * full["delta"]["ci_low"], "tuning_trials": len(tuning.trials),
        "quantizable_nodes": tuning.candidates, "ranked_nodes": len(tuning.ranking),
        "ranking_samples": min(cfg.ranking_samples, len(rows)), "tuning_time_s": tuning.time_s,
        "kept_trial": tuning.kept,
    }
    raw: dict[str, list[Any]] = {
        "accuracy_aware_labels": rows.labels, "accuracy_aware_fp32_predictions": tuning.fp32_predictions,
        "accuracy_aware_trials": tuning.trials, "accuracy_aware_ranking": tuning.ranking}
    verdict = "met" if tuning.bound_met else "NOT met: the trial with the best CI low end kept"
    note = (f"accuracy-aware int8 on {len(rows)} rows of {rows.description}: {len(tuning.float_nodes)} node(s) "
            f"kept float; change vs fp32 {points['value']:+.2f} points [{points['ci_low']:+.2f}, "
            f"{points['ci_high']:+.2f}] ({cfg.confidence:.0%} paired bootstrap, {cfg.resamples} resamples), bound "
            f">= {cfg.min_delta_points:g} {verdict}")
    if speed is not None:
        ratio = speed["ratio"]
        metrics.update({
            "speedup_vs_full_int8": ratio.ratio_geomean, "speedup_ci_low": ratio.ci_low,
            "speedup_ci_high": ratio.ci_high,
            "speed_rounds": ratio.rounds, "speed_queries_per_round": speed["queries_per_round"],
            "full_int8_p50_ms": statistics.median(speed["p50_ms_per_round"]["full_int8"]),
            "kept_p50_ms": statistics.median(speed["p50_ms_per_round"]["tuned"]), "speed_method": ratio.method,
        })
        raw["accuracy_aware_speed_rounds"] = speed["per_round"]
        ci = "" if ratio.ci_low is None else f" [{ratio.ci_low:.2f}, {ratio.ci_high:.2f}]"
        note += (f"; speed vs the fully int8 graph at batch 1: {ratio.ratio_geomean:.2f}x{ci} "
                 f"({ratio.rounds} alternating rounds x {speed['queries_per_round']} queries, ratio of p50s)")
    return {"metrics": metrics, "raw": raw, "note": note}


def tune(fp32_path: Path, quantize: Callable[[Sequence[str]], Path], rows: Rows, cfg: Any, candidates: list[str],
         say: Callable[[str], None]) -> Tuning:
    """The loop in the module docstring; ``quantize(nodes_to_exclude)`` writes a graph, returns its file."""
    started = time.perf_counter()
    reference = graph_logits(fp32_path, rows.inputs, cfg.batch_size)
    fp32_preds = reference.argmax(-1).tolist()
    tuning = Tuning(fp32_preds, [], [], 0, False, len(candidates))

    def trial(excluded: Sequence[str]) -> dict[str, Any]:
        t0 = time.perf_counter()
        path = quantize(tuple(excluded))
        quantize_s = time.perf_counter() - t0
        if missed := still_quantized(path, excluded):
            raise UserError(f"accuracy_aware: ONNX Runtime's quantizer did not keep {missed[0]} in float "
                            f"({len(missed)} of {len(excluded)} excluded nodes)")
        t1 = time.perf_counter()
        preds = graph_logits(path, rows.inputs, cfg.batch_size).argmax(-1).tolist()
        delta = paired_accuracy_difference(fp32_preds, preds, rows.labels, n_resamples=cfg.resamples,
                                           seed=cfg.seed, confidence=cfg.confidence)
        met = 100 * delta["ci_low"] >= cfg.min_delta_points
        record = {"float_nodes": list(excluded), "accuracy": delta["accuracy_b"], "delta": delta, "bound_met": met,
                  "predictions": preds, "quantize_s": quantize_s, "score_s": time.perf_counter() - t1}
        tuning.trials.append(record)
        say(f"trial {len(tuning.trials) - 1}: {len(excluded)} float node(s), change {100 * delta['value']:+.2f} "
            f"points [{100 * delta['ci_low']:+.2f}, {100 * delta['ci_high']:+.2f}]: bound "
            + ("met" if met else "not met"))
        return record

    if not trial(())["bound_met"]:
        tuning.ranking = rank_nodes(quantize, candidates, rows.take(cfg.ranking_samples),
                                    reference[:cfg.ranking_samples], cfg.batch_size, say)
        order = [r["node"] for r in tuning.ranking]
        for k in range(1, min(cfg.max_float_nodes, len(order)) + 1):
            if trial(order[:k])["bound_met"]:
                break
    met = [i for i, t in enumerate(tuning.trials) if t["bound_met"]]
    tuning.bound_met = bool(met)
    tuning.kept = met[0] if met else max(range(len(tuning.trials)),
                                         key=lambda i: (tuning.trials[i]["delta"]["ci_low"], -i))
    tuning.time_s = time.perf_counter() - started
    return tuning


def rank_nodes(quantize: Callable[[Sequence[str]], Path], candidates: list[str], inputs: dict[str, Any],
               reference: Any, batch_size: int, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Each node quantized alone (every other one excluded), most harmful first: the mean |logit
    change| vs fp32 over ``inputs``' rows (ties keep graph order)."""
    import numpy as np

    say(f"ranking {len(candidates)} quantizable nodes, each quantized alone, on {len(reference)} rows")
    ranking = []
    for node in candidates:
        t0 = time.perf_counter()
        path = quantize(tuple(c for c in candidates if c != node))
        change = float(np.abs(graph_logits(path, inputs, batch_size) - reference).mean())
        ranking.append({"node": node, "mean_abs_logit_change": change, "time_s": time.perf_counter() - t0})
    return sorted(ranking, key=lambda r: -r["mean_abs_logit_change"])


def speed_cost(full_int8: Path, tuned: Path, rows: Rows, rounds: int, queries: int) -> dict[str, Any]:
    """Batch-1 latency of the tuned graph vs the fully int8 one, in alternating rounds (ABBA order,
    measure/interleave.py): each round times ``queries`` queries of each graph (rows in turn), and
    the speed-up is the ratio of the rounds' p50s (fully int8 p50 / tuned p50: below 1, the float
    nodes cost speed), summarised with a Student t CI on the log ratios (RatioSummary)."""
    import onnxruntime

    from hf_cost.measure.interleave import RatioSummary, round_orders
    from hf_cost.measure.latency import percentile
    from hf_cost.measure.timing import Query, run_queries
    from hf_cost.models.onnx_candidate import PROVIDER, session_options

    sessions = {name: onnxruntime.InferenceSession(str(p), session_options(), providers=[PROVIDER])
                for name, p in (("full_int8", full_int8), ("tuned", tuned))}
    wanted = [i.name for i in sessions["tuned"].get_inputs()]
    one = [{k: rows.inputs[k][i:i + 1] for k in wanted} for i in range(len(rows))]
    latencies: dict[str, list[list[float]]] = {name: [] for name in sessions}
    for name, session in sessions.items():  # warm-up, not timed
        for sample in one[:2]:
            session.run(None, sample)
    per_round = []
    for order in round_orders(list(sessions), rounds):
        for name in order:
            session = sessions[name]
            timed = run_queries(lambda x, s=session: s.run(None, x), lambda: None,
                                [Query([i % len(one)], one[i % len(one)]) for i in range(queries)])
            latencies[name].append(timed.latency_ms)
        per_round.append({"order": order, **{f"{name}_latencies_ms": latencies[name][-1] for name in order},
                          **{f"{name}_p50_ms": percentile(sorted(latencies[name][-1]), 0.5) for name in order}})
    p50 = {name: [r[f"{name}_p50_ms"] for r in per_round] for name in sessions}
    ratio = RatioSummary.from_rounds(p50["tuned"], p50["full_int8"], higher_is_better=False, ci_level=0.95)
    return {"ratio": ratio, "p50_ms_per_round": p50, "per_round": per_round, "queries_per_round": queries}


def _plain_gemm(node: Any) -> bool:
    """A Gemm ORT's dynamic quantizer rewrites to MatMul: alpha = beta = 1 and A not transposed."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 and attrs.get("transA", 0) == 0
