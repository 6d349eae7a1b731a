"""An executor for search tests that runs no pass: each candidate's one metric is computed from its parameters.

What it leaves to the real code is everything around the passes: the samplers' proposals, pass-by-pass order,
goals, the best candidate and the Pareto front (``modelmill.engine.search.Search``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelmill.engine.candidate import CandidateJob, CandidateOutcome
from modelmill.engine.model import ModelRef
from modelmill.evaluate.results import EvaluationResult, MetricValue

Score = Callable[[dict[str, Any]], float]


class FakeExecutor:
    """``capacity`` candidates in flight; each ``wait()`` finishes one, the newest (``order="lifo"``) or the oldest
    (``"fifo"``), scored ``score(params)`` as the metric ``name-sub_type`` (lower is better by default)."""

    def __init__(self, score: Score, capacity: int = 1, order: str = "fifo", name: str = "size",
                 sub_type: str = "bytes", higher_is_better: bool = False) -> None:
        self.score, self.capacity, self.order = score, capacity, order
        self.metric = (name, sub_type, higher_is_better)
        self.running: list[CandidateJob] = []
        self.submitted: list[CandidateJob] = []
        self.most_in_flight = 0

    def submit(self, job: CandidateJob) -> None:
        self.running.append(job)
        self.submitted.append(job)
        self.most_in_flight = max(self.most_in_flight, len(self.running))

    def wait(self) -> list[tuple[CandidateJob, CandidateOutcome]]:
        job = self.running.pop(-1 if self.order == "lifo" else 0)
        name, sub_type, higher_is_better = self.metric
        value = MetricValue(name, sub_type, self.score(job.params), higher_is_better=higher_is_better, priority=1)
        evaluation = EvaluationResult(job.id, [value])
        return [(job, CandidateOutcome(ModelRef("onnx", Path(f"/fake/{job.id}")), [job.id], None, [], evaluation,
                                       0.0))]

    def cancel_all(self) -> None:
        self.running.clear()

    def close(self) -> None:
        pass
