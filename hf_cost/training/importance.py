"""Importance of attention heads and FFN neurons (Michel et al. 2019, "Are Sixteen Heads
Really Better than One?"), and which of them to prune.

How it is measured: every head and every FFN neuron gets a gate, a mask value of 1.0 with
``requires_grad``. The labelled set runs through the model in eval mode (no dropout) in
batches; each batch's loss (the classifier's cross-entropy on its labels) is backpropagated
and |dL/dmask| is added up over the batches, as the paper's code does. Head scores are then
normalised per layer (divided by the L2 norm of the layer's scores); neuron scores are
ranked within their layer only, so they are kept as accumulated.

The gates are forward hooks rather than transformers' ``head_mask=`` argument: a head gate
multiplies that head's slice of the attention context (the input of ``attention.output.dense``),
which is what ``head_mask`` does (it scales the head's attention probabilities, and the context
is linear in them), so the gradients are the same (tests check them against ``head_mask`` on
eager attention). Unlike ``head_mask`` the hooks work with any attention implementation (SDPA
included) and with a model whose layers already have different head counts (one pruned
before). An FFN gate multiplies the neuron's activation (the output of ``intermediate``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Importance:
    heads: list[list[float]]  # per layer, per current head: normalised (L2 over the layer's heads)
    heads_unnormalised: list[list[float]]  # per layer: accumulated |dL/d head gate|
    neurons: list[list[float]]  # per layer, per FFN neuron: accumulated |dL/d neuron gate|
    n_samples: int
    n_batches: int


def encoder_layers(model: Any) -> list[Any]:
    """The transformer layers of a BERT-layout encoder (``base_model.encoder.layer``)."""
    return list(model.base_model.encoder.layer)


def heads_in(layer: Any) -> int:
    return int(layer.attention.self.num_attention_heads)


def normalise_per_layer(scores: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each layer's scores divided by their L2 norm (the 1e-20 of the paper's code avoids 0/0)."""
    return [s / (s.pow(2).sum().sqrt() + 1e-20) for s in scores]


def compute_importance(model: Any, batches: Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]]) -> Importance:
    """Accumulate |dL/dgate| for every head and FFN neuron over ``batches`` of (inputs, labels)."""
    layers = encoder_layers(model)
    device = next(model.parameters()).device
    head_gates = [torch.ones(heads_in(l), device=device, requires_grad=True) for l in layers]
    neuron_gates = [
        torch.ones(l.intermediate.dense.out_features, device=device, requires_grad=True) for l in layers
    ]
    head_sum = [torch.zeros_like(g) for g in head_gates]
    neuron_sum = [torch.zeros_like(g) for g in neuron_gates]
    hooks = []
    for layer, hg, ng in zip(layers, head_gates, neuron_gates):
        hooks.append(layer.attention.output.dense.register_forward_pre_hook(_head_gate(hg)))
        hooks.append(layer.intermediate.register_forward_hook(_neuron_gate(ng)))
    was_training = model.training
    grad_flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():  # gradients flow to the gates only: no weight gradients
        p.requires_grad_(False)
    samples = n_batches = 0
    try:
        for inputs, labels in batches:
            loss = model(**inputs, labels=labels).loss
            loss.backward()
            for gates, sums in ((head_gates, head_sum), (neuron_gates, neuron_sum)):
                for g, s in zip(gates, sums):
                    s += g.grad.abs().detach()
                    g.grad = None
            samples += int(labels.shape[0])
            n_batches += 1
    finally:
        for h in hooks:
            h.remove()
        for p, flag in zip(model.parameters(), grad_flags):
            p.requires_grad_(flag)
        model.train(was_training)
    return Importance(
        heads=[s.tolist() for s in normalise_per_layer(head_sum)],
        heads_unnormalised=[s.tolist() for s in head_sum],
        neurons=[s.tolist() for s in neuron_sum],
        n_samples=samples,
        n_batches=n_batches,
    )


def _head_gate(gate: torch.Tensor) -> Any:
    def hook(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x = args[0]  # (batch, seq, heads * head_dim): the heads' contexts, side by side
        gated = (x.unflatten(-1, (gate.shape[0], -1)) * gate[:, None]).flatten(-2)
        return (gated, *args[1:])

    return hook


def _neuron_gate(gate: torch.Tensor) -> Any:
    def hook(module: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        return output * gate

    return hook


def select_heads(scores: list[list[float]], count: int) -> dict[int, list[int]]:
    """The ``count`` lowest-scoring heads across all layers, never a layer's last one.

    Heads are taken in increasing score (ties: lower layer, then lower head first); a head
    is skipped when its layer has only one head left. Returns {layer: [head, ...]} in
    the layers' current head numbering, layers with nothing pruned left out.
    """
    order = sorted((s, layer, head) for layer, row in enumerate(scores) for head, s in enumerate(row))
    left = [len(row) for row in scores]
    chosen: dict[int, list[int]] = {}
    for _, layer, head in order:
        if sum(len(v) for v in chosen.values()) == count:
            break
        if left[layer] > 1:
            chosen.setdefault(layer, []).append(head)
            left[layer] -= 1
    if sum(len(v) for v in chosen.values()) != count:
        raise ValueError(f"cannot prune {count} heads and keep one in each of {len(scores)} layers")
    return {layer: sorted(heads) for layer, heads in sorted(chosen.items())}


def select_neurons(scores: list[list[float]], count: int) -> list[list[int]]:
    """Per layer, the ``count`` lowest-scoring FFN neurons (ties: lower index first), sorted."""
    return [sorted(sorted(range(len(row)), key=lambda j: (row[j], j))[:count]) for row in scores]


def prune_ffn(model: Any, pruned: list[list[int]]) -> None:
    """Remove FFN neurons: rows of ``intermediate.dense``, columns of ``output.dense``; every
    layer must lose the same number, so ``config.intermediate_size`` describes them all."""
    from transformers.pytorch_utils import prune_linear_layer

    layers = encoder_layers(model)
    sizes = {layer.intermediate.dense.out_features - len(p) for layer, p in zip(layers, pruned)}
    if len(sizes) != 1:
        raise ValueError(f"every layer must keep the same FFN width, got {sorted(sizes)}")
    for layer, drop in zip(layers, pruned):
        if not drop:
            continue
        gone = set(drop)
        keep = torch.tensor([j for j in range(layer.intermediate.dense.out_features) if j not in gone],
                            dtype=torch.long, device=layer.intermediate.dense.weight.device)
        layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, keep, dim=0)
        layer.output.dense = prune_linear_layer(layer.output.dense, keep, dim=1)
    model.config.intermediate_size = sizes.pop()


def original_head_ids(layer: Any, total_heads: int) -> list[int]:
    """The layer's current heads, in order, by their index in the unpruned model (what
    ``prune_heads`` and ``config.pruned_heads`` use)."""
    gone = set(layer.attention.pruned_heads)
    return [h for h in range(total_heads) if h not in gone]
