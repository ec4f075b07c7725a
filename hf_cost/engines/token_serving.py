"""A causal LM behind the Server scenario's batcher, reporting token latencies to LoadGen.

Each batch the batcher hands over is one ``candidate.generate`` call on the batch's prompts
(left-padded to the longest, as the performance set builds every LM batch). As soon as the
first decoding step's tokens are on the host (the candidate's ``on_first_token``), every sample
of the batch is reported with ``FirstTokenComplete``: LoadGen's TTFT is from the query's
scheduled time to that call. When the batch is done, each sample is completed with
``QuerySamplesComplete`` carrying its own output token count (``n_tokens``, EOS included when
emitted): LoadGen's TPOT for the sample is (its latency - its TTFT) / (n_tokens - 1), so a
sample that ended before the batch's longest answer still waits for the batch, as it would in
a static-batching server. LoadGen refuses n_tokens < 2 (the step requires min_new_tokens >= 2).
"""

from __future__ import annotations

from typing import Any


class TokenServing:
    """``run_batch`` and ``complete`` for engines/batcher.Batcher, for a generating candidate."""

    def __init__(self, lg: Any, candidate: Any, pset: Any):
        self.lg, self.candidate, self.pset = lg, candidate, pset
        self.device = next(iter(pset.tensors.values())).device
        self.output_tokens: dict[Any, int] = {}  # LoadGen's query id -> the tokens it was completed with

    def run_batch(self, requests: list[Any]) -> None:
        import torch

        lg = self.lg
        indices = torch.tensor([r.index for r in requests], dtype=torch.long, device=self.device)
        sent: list[bool] = []

        def first_token(_tokens: Any) -> None:
            sent.append(True)
            lg.FirstTokenComplete([lg.QuerySampleResponse(r.key, 0, 0) for r in requests])

        out = self.candidate.generate(self.pset.batch(indices), on_first_token=first_token)
        if not sent:
            raise RuntimeError("generate returned without a first token: LoadGen could not be given a TTFT")
        for r, n in zip(requests, out.output_tokens):
            self.output_tokens[r.key] = n

    def complete(self, done: list[Any]) -> None:
        """Each completed sample with its output token count (0 for one never served: LoadGen logs
        an error, and the run raises once the test has returned)."""
        lg = self.lg
        lg.QuerySamplesComplete([lg.QuerySampleResponse(c.key, 0, 0, self.output_tokens.get(c.key, 0))
                                 for c in done])
