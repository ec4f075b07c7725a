"""fine_tune: builds a candidate by training, timed to a quality target (MLPerf-Training style).

Runs `runs` times with seeds seed, seed+1, ... and scores time-to-target the
MLPerf-Training way (olympic). The model of the first converged run (else the last)
is saved under <output>/checkpoints/<name>/ and becomes the candidate `<name>`.

The training session (context, data, the seeded runs, saving and the typed result) is
hf_cost/training/ (session.py, result.py; fine_tune's own session: training/fine_tune.py);
distill composes the same functions with its teacher.
"""

from __future__ import annotations

from pathlib import Path

from hf_cost.config.building import FineTuneScenario
from hf_cost.core.build_metrics import TrainingMetrics
from hf_cost.core.results import ScenarioResult
from hf_cost.steps.base import BuildContext, BuildStep, Built, Plan
from hf_cost.training.fine_tune import fine_tune
from hf_cost.training.session import TrainingContext, training_context


class FineTuneBuilder(BuildStep):
    kind = "fine_tune"
    config = FineTuneScenario
    metrics = TrainingMetrics
    all_processes = True  # under `accelerate launch`, every process trains

    def check(self, step: FineTuneScenario, plan: Plan, where: str) -> list[str] | None:
        from hf_cost.data.labelled import load_labelled

        labels = load_labelled(step.train, f"{where}.train").label_names
        load_labelled(step.eval, f"{where}.eval", labels)
        return labels

    def build(self, step: FineTuneScenario, ctx: BuildContext) -> Built | None:
        result, path = self.run(step, training_context(step, ctx))
        if path is None:
            return None
        return Built(
            name=step.name or self.kind, parent=step.source, origin="fine-tuned",
            recipe=step.model_dump(mode="json", by_alias=True), result=result, checkpoint_dir=path,
        )

    def run(self, step: FineTuneScenario, ctx: TrainingContext) -> tuple[ScenarioResult, Path | None]:
        """The training session; the staged checkpoint, None off the main process."""
        return fine_tune(step, ctx)
