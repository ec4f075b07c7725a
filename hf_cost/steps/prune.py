"""prune: structured pruning of attention heads and FFN neurons (Michel et al. 2019).

The `from` candidate (a classifier, loaded in float32) ranks its heads and FFN neurons by
|dL/dgate| over the labelled `data` (variants/importance.py). round(heads_fraction x heads)
of the lowest-ranked heads go, across the model, at least one kept per layer
(``model.prune_heads``); round(ffn_fraction x intermediate_size) of the lowest-ranked
neurons go in every layer, so one ``config.intermediate_size`` describes the result.
Rounding is half up (0.5 x 37 = 18.5 -> 19). The checkpoint is saved under
checkpoints/<name>/ (``config.pruned_heads`` makes transformers rebuild the pruned shapes
on load) and reloaded once to check it. FLOPs before and after are measured with
FlopCounterMode on one sample at the suite's sequence length. A `fine_tune` step with
`from: <name>` is a recovery fine-tune.
"""

from __future__ import annotations

import math
import time
from typing import Any

from hf_cost.config.building import PruneStep
from hf_cost.config.lineage import Lineage, Shape, label_names
from hf_cost.core.build_metrics import PruneMetrics
from hf_cost.errors import UserError
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan, source_labels

# BERT-layout encoders: encoder.layer[i].{attention.self, attention.output.dense,
# intermediate.dense, output.dense} and a working `prune_heads` (tests prune each one).
PRUNABLE = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "ernie", "data2vec-text",
            "megatron-bert", "xlm-roberta-xl")


def rounded(fraction: float, total: int) -> int:
    """round(fraction x total), half up."""
    return math.floor(fraction * total + 0.5)


def _bound(x: float, total: int, up: bool) -> str:
    """``x`` written with enough decimals (rounded towards safety) to hold for ``total`` items."""
    d = math.ceil(math.log10(4 * total)) + 2
    scaled = math.ceil(x * 10**d - 1e-9) if up else math.floor(x * 10**d + 1e-9)
    return f"{scaled / 10**d:.{d}f}".rstrip("0").rstrip(".")


def heads_to_prune(fraction: float, heads: int, layers: int, where: str) -> int:
    """The number of heads ``fraction`` removes, or a UserError at ``where``.heads_fraction."""
    if fraction == 0.0:
        return 0
    n = rounded(fraction, heads)
    if n == 0:
        raise UserError(
            f"heads_fraction {fraction:g} of {heads} heads rounds to 0 heads, so it prunes none: use at "
            f"least {_bound(0.5 / heads, heads, True)} ({1 / heads:.4g} prunes exactly one), or 0 to prune FFN neurons only",
            where=f"{where}.heads_fraction",
        )
    if n > heads - layers:
        raise UserError(
            f"heads_fraction {fraction:g} prunes {n} of {heads} heads, but at least one head stays in "
            f"each of the {layers} layers, so at most {heads - layers} can go: use at most "
            f"{_bound((heads - layers) / heads, heads, False)}",
            where=f"{where}.heads_fraction",
        )
    return n


def neurons_to_prune(fraction: float, intermediate: int, where: str) -> int:
    """FFN neurons ``fraction`` removes in each layer, or a UserError at ``where``.ffn_fraction."""
    if fraction == 0.0:
        return 0
    n = rounded(fraction, intermediate)
    if n == 0:
        raise UserError(
            f"ffn_fraction {fraction:g} of {intermediate} FFN neurons per layer rounds to 0, so it prunes "
            f"none: use at least {_bound(0.5 / intermediate, intermediate, True)}, or 0 to prune heads only",
            where=f"{where}.ffn_fraction",
        )
    if n >= intermediate:
        raise UserError(
            f"ffn_fraction {fraction:g} rounds to all {intermediate} FFN neurons of each layer: use at "
            f"most {_bound((intermediate - 1) / intermediate, intermediate, False)}, so at least one stays",
            where=f"{where}.ffn_fraction",
        )
    return n


class PruneBuilder(BuildStep):
    kind = "prune"
    config = PruneStep
    metrics = PruneMetrics

    @classmethod
    def shape_after(cls, step: Any, parent: Shape) -> Shape:
        """round(heads_fraction x heads) heads go (then unevenly across layers), and
        round(ffn_fraction x intermediate) neurons in every layer."""
        heads = parent.heads
        if heads is not None and step.heads_fraction:
            heads -= rounded(step.heads_fraction, heads)
        intermediate = parent.intermediate
        if intermediate is not None and step.ffn_fraction:
            intermediate -= rounded(step.ffn_fraction, intermediate)
        return Shape(parent.layers, heads, intermediate, parent.uniform and not step.heads_fraction)

    def check(self, step: Any, plan: Plan, where: str) -> list[str] | None:
        from hf_cost.data.labelled import load_labelled

        labels = source_labels(step, plan, where, needs_head=True)
        model_type = getattr(plan.model_config, "model_type", None)
        if model_type not in PRUNABLE:
            raise UserError(
                f"prune removes heads and FFN neurons of BERT-layout encoders ({', '.join(PRUNABLE)}); "
                f"'{step.source}' is a {model_type!r} model",
                where=f"{where}.from",
            )
        shape = Lineage.of(plan).shape(step.source, where)
        if shape.heads is not None:
            heads_to_prune(step.heads_fraction, shape.heads, shape.layers, where)
        neurons_to_prune(step.ffn_fraction, shape.intermediate, where)
        load_labelled(step.data, f"{where}.data", labels)
        return labels

    def build(self, step: Any, ctx: BuildContext) -> Built | None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from hf_cost.data.labelled import load_labelled
        from hf_cost.models.load import load_error, pick_device
        from hf_cost.training import importance as imp

        t0 = time.perf_counter()
        if ctx.output is None:
            return None
        store, name = ctx.store, step.name or self.kind
        ckpt = store.checkpoint_of(step.source)
        device = pick_device(store.spec.device)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                ckpt.reference, **ckpt.pretrained_kwargs(), dtype=torch.float32,
                attn_implementation=store.spec.attn_implementation,
            ).to(device).eval()
            tokenizer = AutoTokenizer.from_pretrained(ckpt.reference, **ckpt.pretrained_kwargs())
        except Exception as exc:  # noqa: BLE001 - a checkpoint that does not load is the user's to fix
            raise load_error(ckpt.reference, exc) from None
        labels = label_names(model.config)
        data = load_labelled(step.data, f"{ctx.where}.data", labels)
        seq = step.sequence_length or store.suite.inputs.sequence_length
        layers = imp.encoder_layers(model)
        total_heads = model.config.num_attention_heads
        heads_before = [imp.heads_in(layer) for layer in layers]
        n_heads = heads_to_prune(step.heads_fraction, sum(heads_before), len(layers), ctx.where)
        n_neurons = neurons_to_prune(step.ffn_fraction, model.config.intermediate_size, ctx.where)
        flop_seq = store.suite.inputs.sequence_length
        before = _sizes(model, flop_seq)

        ctx.progress.say(f"[{name}] ranking {sum(heads_before)} heads and {len(layers)}x"
                         f"{model.config.intermediate_size} FFN neurons on {len(data)} samples ({data.description})")
        scores = imp.compute_importance(model, _batches(data.tokenize(tokenizer, seq), data.labels,
                                                        step.batch_size, device))
        ids = [imp.original_head_ids(layer, total_heads) for layer in layers]
        current = imp.select_heads(scores.heads, n_heads) if n_heads else {}
        pruned_heads = [[ids[i][h] for h in current.get(i, [])] for i in range(len(layers))]
        if n_heads:
            model.prune_heads({i: heads for i, heads in enumerate(pruned_heads) if heads})
        if n_neurons:
            imp.prune_ffn(model, imp.select_neurons(scores.neurons, n_neurons))
        after = _sizes(model, flop_seq)
        ctx.progress.say(f"[{name}] pruned {n_heads} heads and {n_neurons} FFN neurons per layer: "
                         f"{before['parameters']} -> {after['parameters']} parameters")

        target = ctx.output.path_in_stage(f"checkpoints/{name}")
        target.mkdir(parents=True, exist_ok=False)
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        _check_reload(model, target)
        metrics = {
            "heads_total": sum(heads_before),
            "heads_pruned_count": n_heads,
            "heads_pruned": pruned_heads,
            "heads_per_layer_before": heads_before,
            "heads_per_layer_after": [imp.heads_in(layer) for layer in imp.encoder_layers(model)],
            "ffn_neurons_pruned_per_layer": n_neurons,
            "intermediate_size_before": before["intermediate"],
            "intermediate_size_after": after["intermediate"],
            "parameters_before": before["parameters"],
            "parameters_after": after["parameters"],
            "encoder_parameters_before": before["encoder"],
            "encoder_parameters_after": after["encoder"],
            "sparsity": (before["encoder"] - after["encoder"]) / before["encoder"],
            "flops_per_sample_before": before["flops"],
            "flops_per_sample_after": after["flops"],
            "flops_sequence_length": flop_seq,
            "importance_samples": scores.n_samples,
            "saved_checkpoint": str(ctx.output.final_path(target)),
            "build_time_s": time.perf_counter() - t0,
        }
        return Built(
            name=name, parent=step.source, origin="variant",
            recipe=step.model_dump(mode="json", by_alias=True), checkpoint_dir=target,
            result=_result(step, name, metrics, scores, ids, labels, seq, str(device), data.description),
        )


def _batches(tensors: dict[str, Any], labels: list[int], batch_size: int, device: Any) -> Any:
    import torch

    y = torch.tensor(labels, dtype=torch.long)
    for i in range(0, len(labels), batch_size):
        yield {k: v[i:i + batch_size].to(device) for k, v in tensors.items()}, y[i:i + batch_size].to(device)


def _sizes(model: Any, seq: int) -> dict[str, int]:
    """Parameters (all, encoder) and measured forward FLOPs of one sample of ``seq`` tokens."""
    import torch

    from hf_cost.measure.flops import count_forward_flops

    device = next(model.parameters()).device
    ids = torch.zeros(1, seq, dtype=torch.long, device=device)
    sample = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "encoder": sum(p.numel() for p in model.base_model.encoder.parameters()),
        "intermediate": int(model.config.intermediate_size),
        "flops": count_forward_flops(model, sample).total,
    }


def _check_reload(model: Any, target: Any) -> None:
    """The saved directory must give back the pruned shapes (config.pruned_heads round-trips)."""
    from transformers import AutoModelForSequenceClassification

    reloaded = AutoModelForSequenceClassification.from_pretrained(target)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in reloaded.state_dict().items()}
    if want != got:
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        raise RuntimeError(f"the pruned checkpoint in {target} reloads with other shapes: {diff[:5]}")


def _result(step: Any, name: str, metrics: dict[str, Any], scores: Any, ids: list[list[int]],
            labels: list[str], seq: int, device: str, described: str) -> Any:
    from hf_cost.core.results import ScenarioResult

    return ScenarioResult(
        name=name, kind="prune", candidate=name,
        settings={**step.model_dump(mode="json", by_alias=True), "sequence_length": seq,
                  "labels": labels, "device": device},
        metrics=metrics, validity=None,
        raw={
            "head_importance": scores.heads,
            "head_importance_unnormalised": scores.heads_unnormalised,
            "head_ids": ids,
            "neuron_importance": scores.neurons,
        },
        notes=[
            (f"importance: |dL/dgate| summed over {scores.n_samples} samples in {scores.n_batches} batches "
             f"({described}), eval mode, cross-entropy on the labels (Michel et al. 2019); head scores "
             "normalised per layer by their L2 norm, neuron scores ranked within their layer"),
            ("head_importance rows follow head_ids (the heads' indices in the unpruned model); "
             "heads_pruned uses the same indices, as config.pruned_heads does"),
            (f"FLOPs: FlopCounterMode over one forward of one sample of {metrics['flops_sequence_length']} "
             "tokens, before and after pruning; sparsity = share of encoder parameters removed"),
        ],
    )
