"""The knowledge-distillation loss of Hinton et al. (2015), "Distilling the Knowledge in a
Neural Network":

    loss = alpha * CE(z_s, y) + (1 - alpha) * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))

averaged over the batch. The T^2 factor keeps the soft-target gradients on the same scale
as the hard-label ones when the temperature changes (the paper's section 2). The teacher's
logits are taken as constants (no gradient flows into the teacher).
"""

from __future__ import annotations

from typing import Any


def kd_loss(student_logits: Any, teacher_logits: Any, labels: Any, *, alpha: float, temperature: float) -> Any:
    """Batch-mean distillation loss; logits are (batch, classes), labels (batch,) class ids.

    Computed in float32 whatever the logits' dtype (mixed precision), so the soft targets
    of a low-precision teacher do not underflow.
    """
    import torch.nn.functional as F

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z_s = student_logits.float()
    z_t = teacher_logits.detach().float()
    hard = F.cross_entropy(z_s, labels)
    log_p_s = F.log_softmax(z_s / temperature, dim=-1)
    log_p_t = F.log_softmax(z_t / temperature, dim=-1)
    # KL(p_t || p_s) = sum_c p_t (log p_t - log p_s); "batchmean" divides the sum by the batch.
    soft = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
    return alpha * hard + (1.0 - alpha) * temperature**2 * soft
