"""A causal LM on LoadGen's SingleStream and Offline with token latencies (``use_token_latencies``).

The SUT is engines/loadgen.py's inline one (LoadGen calls ``issue_queries`` on the main thread
and the batch runs there), with one ``candidate.generate`` per batch instead of a forward:
- SingleStream: each query's one sample is one ``generate``. As soon as its first new token is
  on the host (the candidate's ``on_first_token``) the sample is reported with
  ``FirstTokenComplete``; when the generation returned it is completed with
  ``QuerySamplesComplete`` carrying its output token count (``n_tokens``, EOS included when
  emitted). LoadGen's TTFT is from the query's scheduled time to the first call, its latency
  to the second, its TPOT (latency - TTFT) / (n_tokens - 1) in integer ns (logging.cc,
  RecordSampleCompletion). Its percentiles and early stopping are then on TTFT and TPOT (early
  stopping: TPOT first, TTFT when that passed), not on the request latency (results.cc).
- Offline: LoadGen's one query is cut into batches of ``batch_size`` as for an encoder; each
  batch is one ``generate`` and each sample is completed with its own n_tokens when its batch
  returns. LoadGen asks for no first token in Offline, and states result_tokens_per_second =
  the tokens / its longest sample latency (the test's duration).

LoadGen refuses n_tokens < 2 (logged as an error, the sample's tokens counted as 0): the steps
require ``generation.min_new_tokens >= 2`` (`check_two_new_tokens`). A sample never served (the
candidate raised, or Ctrl-C) gets its first token and 0 tokens at once, so LoadGen finishes; the
run then raises as for an encoder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_cost.engines.loadgen import LoadGenRun, TestPlan, _InlineSut, run_offline, run_stream
from hf_cost.engines.loadgen_log import LoadGenFigures, TraceSample
from hf_cost.errors import ConfigError


def check_two_new_tokens(generation: Any, what: str) -> None:
    """Refused at validate: a request that can end after one token (LoadGen needs n_tokens >= 2)."""
    if generation.max_new_tokens < 2 or (generation.min_new_tokens or 1) < 2:
        raise ConfigError(f"a causal LM on LoadGen's {what} needs at least 2 new tokens per request (its TPOT is "
                          "(latency - TTFT) / (n_tokens - 1) and it refuses n_tokens < 2): set "
                          "generation.min_new_tokens: 2 or more", where="generation.min_new_tokens")


@dataclass
class TokenRun(LoadGenRun):
    """A LoadGen run of a causal LM: ``output_tokens`` per trace sample (same order: LoadGen's
    issue order), the n_tokens it was completed with; ``generated``: each batch's
    models.lm_candidate.Generated, in the order run (``batches`` holds their sample indices)."""

    output_tokens: list[int] = field(default_factory=list)
    generated: list[Any] = field(default_factory=list)


class _TokenSut(_InlineSut):
    """The inline SUT with ``generate``: first tokens reported (not in Offline), each sample
    completed with its token count."""

    def __init__(self, candidate: Any, first_tokens: bool):
        super().__init__(candidate)
        self.first_tokens = first_tokens
        self.order: list[tuple[Any, int]] = []  # (LoadGen's sample id, sample index), in LoadGen's issue order
        self.tokens: dict[Any, int] = {}  # LoadGen's sample id -> n_tokens sent
        self.generated: list[Any] = []

    def issued(self, samples: list[Any]) -> None:
        super().issued(samples)
        self.order += [(s.id, s.index) for s in samples]

    def serve(self, lg: Any, samples: list[Any], inputs: Any) -> None:
        sent: list[bool] = []

        def first_token(_tokens: Any) -> None:
            sent.append(True)
            if self.first_tokens:
                lg.FirstTokenComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in samples])

        if self.failure is None and not self.signals:
            try:
                t0 = time.perf_counter()
                out = self.candidate.generate(inputs, on_first_token=first_token)  # synchronizes before it returns
                done = time.perf_counter()
                if not sent:
                    raise RuntimeError("generate returned without a first token: LoadGen could not be given a TTFT")
                self.batches.append(([s.index for s in samples], done - t0, done - self.start))
                self.generated.append(out)
                self.tokens.update((s.id, n) for s, n in zip(samples, out.output_tokens))
            except Exception as exc:  # noqa: BLE001 - completed below, raised after the test
                self.failure = exc
        if self.failure is not None or self.signals:
            self.unserved += len(samples)
            if self.first_tokens and not sent:  # LoadGen reads a first token before any completion
                lg.FirstTokenComplete([lg.QuerySampleResponse(s.id, 0, 0) for s in samples])
        lg.QuerySamplesComplete([lg.QuerySampleResponse(s.id, 0, 0, self.tokens.get(s.id, 0)) for s in samples])

    def result(self, found: LoadGenFigures, samples: list[TraceSample], folder: Path) -> TokenRun:
        if len(self.order) != len(samples) or any(ix != s.sample_index for (_, ix), s in zip(self.order, samples)):
            raise RuntimeError(f"LoadGen's trace ({len(samples)} samples) and the samples it issued "
                               f"({len(self.order)}) do not pair up in issue order")
        return TokenRun(found, samples, folder, self.batches,
                        output_tokens=[self.tokens[i] for i, _ in self.order], generated=self.generated)


def run_token_stream(candidate: Any, pset: Any, plan: TestPlan, log_dir: Path | None) -> TokenRun:
    """One SingleStream test of a generating candidate with token latencies."""
    if plan.scenario != "SingleStream" or not plan.token_latencies:
        raise ValueError("run_token_stream runs SingleStream with token_latencies")
    return run_stream(candidate, pset, plan, log_dir, sut=_TokenSut(candidate, first_tokens=True))


def run_token_offline(candidate: Any, pset: Any, plan: TestPlan, batch_size: int, log_dir: Path | None,
                      bucket_by_length: bool = False) -> TokenRun:
    """One Offline test of a generating candidate, each sample completed with its token count."""
    if plan.scenario != "Offline" or not plan.token_latencies:
        raise ValueError("run_token_offline runs Offline with token_latencies")
    return run_offline(candidate, pset, plan, batch_size, log_dir, bucket_by_length=bucket_by_length,
                       sut=_TokenSut(candidate, first_tokens=False))
