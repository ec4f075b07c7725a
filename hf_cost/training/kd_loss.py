"""The loss pieces of a distillation, pure functions of tensors.

- `kd_loss`, Hinton et al. (2015), "Distilling the Knowledge in a Neural Network":

      loss = alpha * CE(z_s, y) + (1 - alpha) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

  The KL term is averaged over every row of the batch; the CE term over the rows with a hard
  label only: a label of -100 (``NO_LABEL``, PyTorch's ``ignore_index`` convention) marks a row
  that has only the teacher's soft label (augmented or unlabelled text), and a batch without
  any labelled row has no CE term at all. The T^2 factor keeps the soft-target gradients on the
  same scale as the hard-label ones when the temperature changes (the paper's section 2).
- `hidden_mse`, TinyBERT's hidden-state loss (Jiao et al. 2020, eq. 7-8): the mean squared error
  between the student's hidden states and the hidden states of the teacher layers they imitate,
  the embedding output included, over real (non-padding) tokens only.
- `attention_kl`, MiniLM's attention transfer (Wang et al. 2020, eq. 1): the KL divergence of the
  student's self-attention distributions from the teacher's, per head and query token, over real
  query tokens; applied to every mapped layer (MiniLM takes the last one only).

The teacher's tensors are constants (detached); everything is computed in float32 whatever the
inputs' dtype (mixed precision), so the soft targets of a low-precision teacher do not underflow.
"""

from __future__ import annotations

from typing import Any

NO_LABEL = -100  # a row with no hard label: only the soft-label and alignment losses see it


def hard_label_ce(student_logits: Any, labels: Any) -> Any:
    """Cross-entropy averaged over the rows whose label is not ``NO_LABEL``; 0 when none is."""
    import torch.nn.functional as F

    labelled = labels != NO_LABEL
    if not bool(labelled.any()):
        return student_logits.float().sum() * 0.0  # keeps the graph; no hard label in this batch
    return F.cross_entropy(student_logits.float()[labelled], labels[labelled])


def kd_loss(student_logits: Any, teacher_logits: Any, labels: Any, *, alpha: float, temperature: float) -> Any:
    """Batch-mean distillation loss; logits are (batch, classes), labels (batch,) class ids or NO_LABEL."""
    import torch.nn.functional as F

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z_s = student_logits.float()
    z_t = teacher_logits.detach().float()
    hard = hard_label_ce(z_s, labels)
    log_p_s = F.log_softmax(z_s / temperature, dim=-1)
    log_p_t = F.log_softmax(z_t / temperature, dim=-1)
    # KL(p_t || p_s) = sum_c p_t (log p_t - log p_s); "batchmean" divides the sum by the batch.
    soft = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return alpha * hard + (1.0 - alpha) * temperature**2 * soft


def hidden_pairs(layer_map: list[int]) -> list[tuple[int, int]]:
    """(student, teacher) indices into ``hidden_states`` tuples: the embedding output (0, 0), then
    student layer j's output (j + 1) against teacher layer layer_map[j]'s output (layer_map[j] + 1)."""
    return [(0, 0)] + [(j + 1, i + 1) for j, i in enumerate(layer_map)]


def hidden_mse(student_states: Any, teacher_states: Any, layer_map: list[int], attention_mask: Any) -> Any:
    """Mean over the pairs of `hidden_pairs` of the MSE over real tokens and hidden units.

    ``*_states``: sequences of (batch, seq, hidden) tensors (``output_hidden_states``);
    ``attention_mask``: (batch, seq), 1 for a real token. Same width on both sides (the student
    is the teacher's own config), so no projection is learned.
    """
    pairs = hidden_pairs(layer_map)
    mask = attention_mask.float().unsqueeze(-1)  # (batch, seq, 1)
    total = 0.0
    for s, t in pairs:
        a, b = student_states[s].float(), teacher_states[t].detach().float()
        if a.shape != b.shape:
            raise ValueError(f"hidden states of student {s} {tuple(a.shape)} and teacher {t} {tuple(b.shape)} differ")
        total = total + (((a - b) ** 2) * mask).sum() / (mask.sum() * a.shape[-1])
    return total / len(pairs)


def attention_kl(student_attentions: Any, teacher_attentions: Any, layer_map: list[int], attention_mask: Any) -> Any:
    """Mean over the student's layers j of KL(teacher layer layer_map[j] || student layer j),
    each averaged over heads and real query tokens; ``*_attentions``: sequences of
    (batch, heads, seq, seq) probabilities (``output_attentions``, eager attention).

    Padding keys have probability 0 on both sides and add nothing (0 log 0 = 0)."""
    import torch

    query = attention_mask.float()[:, None, :]  # (batch, 1, seq): which query rows count
    total = 0.0
    for j, i in enumerate(layer_map):
        p_s, p_t = student_attentions[j].float(), teacher_attentions[i].detach().float()
        if p_s.shape != p_t.shape:
            raise ValueError(f"attention of student layer {j} {tuple(p_s.shape)} and teacher layer {i} "
                             f"{tuple(p_t.shape)} differ (pruned heads?)")
        log_s = torch.log(p_s.clamp_min(1e-12))
        per_row = (torch.xlogy(p_t, p_t) - p_t * log_s).sum(-1)  # (batch, heads, seq)
        total = total + (per_row * query).sum() / (query.sum() * p_s.shape[1])
    return total / len(layer_map)
