"""What a candidate is: its parameters, size, origin and FLOPs (per length, with the formula's
terms), as `RunResult.candidates` holds them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from hf_cost.core.bounds import Count, NonNegative, Out, Parameters


class AnalyticTerms(Out):
    """The analytic formula's FLOPs of one sample as a polynomial of its length S:
    ``quadratic * S^2 + linear * S + constant`` (measure/flops.analytic_encoder_terms)."""

    quadratic: Count = Field(description="4*L*H: Q K^T and A V, per token pair")
    linear: Count = Field(description="L*(8H^2 + 4HI): projections and FFN, per token")
    constant: Count = Field(description="2H^2 for the pooler + 2H*labels for a head, per sample")

    def at(self, length: int) -> int:
        return self.quadratic * length * length + self.linear * length + self.constant


class FlopsAtLength(Out):
    """One length the FLOPs were counted at (natural lengths): measured vs the analytic formula."""

    sequence_length: int
    samples: Count = Field(description="samples of the performance set with this length")
    measured_per_sample: Count
    analytic_per_sample: int | None
    relative_difference: float | None = Field(description="|measured - analytic| / analytic")


class FlopsInfo(Out):
    sequence_length: int = Field(
        description="the length measured_per_sample was counted at: inputs.sequence_length (fixed lengths) "
        "or the performance set's median length (natural lengths)"
    )
    batch_size: int
    measured_per_sample: Count = Field(
        description="torch FlopCounterMode, matmul-class ops incl. attention, over one forward of one sample "
        "of sequence_length tokens (natural lengths: the median; the mean is mean_per_sample)"
    )
    analytic_per_sample: int | None = Field(description="closed-form encoder formula; None for non-encoders")
    relative_difference: float | None
    by_operator: dict[str, int]
    source: Literal["measured", "inherited"] = Field(
        "measured", description="counted on this candidate, or taken from its parent (same graph)"
    )
    method: str
    analytic_terms: AnalyticTerms | None = Field(
        None, description="the analytic formula as a polynomial of the length; None for non-encoders and older files"
    )
    mean_per_sample: float | None = Field(
        None, description="FLOPs per sample averaged over the performance set, each sample at the length it runs "
        "at (fixed: all at sequence_length, so equal to measured_per_sample); what MFU uses. None in older files"
    )
    per_sample_from: Literal["measured", "analytic"] | None = Field(
        None, description="where the per-length FLOPs behind mean_per_sample come from: the analytic formula "
        "per length (natural lengths, when it agrees with the counts at measured_at_lengths) or counts"
    )
    per_length: dict[str, int] | None = Field(
        None, description="natural lengths: FLOPs of one sample at each length in the performance set "
        "(inputs.length_distribution.histogram gives how many samples have it)"
    )
    measured_at_lengths: list[FlopsAtLength] | None = Field(
        None, description="natural lengths: the lengths counted with FlopCounterMode (min, median, max), each "
        "cross-checked against the analytic formula"
    )

    @property
    def per_sample(self) -> float:
        """FLOPs of an average sample of the run: mean_per_sample (natural lengths), else the count."""
        return self.mean_per_sample if self.mean_per_sample is not None else self.measured_per_sample


class CandidateInfo(Out):
    """What a candidate is, where it came from, and what it weighs. Runners never look inside
    a candidate; reports read this."""

    name: str
    origin: Literal["base", "fine-tuned", "variant"]
    parent: str | None = Field(None, description="The candidate it was built from")
    recipe: dict[str, Any] = Field(default_factory=dict, description="The building step's settings")
    runtime: Literal["torch", "onnxruntime"]
    dtype: str = Field(description="Weights' data type; a quantized candidate says what is int8")
    device: str
    parameters: Parameters
    parameter_bytes: Count
    size_on_disk_bytes: Count | None = Field(description="Weight files on disk (the files it loads)")
    path: str | None = Field(description="Where its files are after the run")
    model: dict[str, Any] = Field(description="Loader details: class, commit, source, attention")
    load_time_s: NonNegative
    baseline_rss_mib: NonNegative = Field(description="RSS after imports and this model's load; memory deltas are over it")
    flops: FlopsInfo | None = None
    lm_flops: dict[str, Any] | None = Field(
        None, description="a causal LM: prefill FLOPs at the performance set's median prompt length and decode "
        "FLOPs per token at KV lengths, measured (FlopCounterMode) and analytic (measure/lm_flops), and KV-cache "
        "bytes per token; None for encoders")
