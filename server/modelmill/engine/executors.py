"""Where candidates run: one interface, two executors (this process here, a Ray cluster in distributed.py).

The search submits jobs and waits for finished ones; it never knows where they ran.
"""

from __future__ import annotations

from typing import Protocol

from modelmill.engine.candidate import CANDIDATE_FAILURES, CandidateJob, CandidateOutcome, execute_candidate
from modelmill.engine.chain import Chain
from modelmill.engine.events import EventBus
from modelmill.engine.plan import Plan


class Executor(Protocol):
    """Runs candidate jobs, up to ``capacity`` at once."""

    capacity: int
    running: list[CandidateJob]

    def submit(self, job: CandidateJob) -> None: ...

    def wait(self) -> list[tuple[CandidateJob, CandidateOutcome | BaseException]]:
        """Block until at least one running job finished (or failed); return the finished ones."""
        ...

    def cancel_all(self) -> None: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Runs candidates one at a time in this process (the default host)."""

    capacity = 1

    def __init__(self, plan: Plan, bus: EventBus, chain: Chain) -> None:
        self.plan, self.bus, self.chain = plan, bus, chain
        self.running: list[CandidateJob] = []
        self._done: list[tuple[CandidateJob, CandidateOutcome | BaseException]] = []

    def submit(self, job: CandidateJob) -> None:
        self.running.append(job)
        try:
            self._done.append((job, execute_candidate(self.plan, self.chain, self.bus, job)))
        except CANDIDATE_FAILURES as exc:
            self._done.append((job, exc))

    def wait(self) -> list[tuple[CandidateJob, CandidateOutcome | BaseException]]:
        done, self._done = self._done, []
        for job, _ in done:
            self.running.remove(job)
        return done

    def cancel_all(self) -> None:
        pass

    def close(self) -> None:
        pass
