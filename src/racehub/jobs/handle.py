"""What a job body's service sees of its run: ``RunningJob``.

Services take a ``RunningJob`` (``job: RunningJob``), not the runner's ``JobHandle``:
this module imports nothing but the JobRun model, so a service can name the type at
module level without importing the runner, the queue and every domain's tasks. Tests
can pass their own implementation.
"""

from __future__ import annotations

from typing import Any, Protocol

from racehub.jobs.models import JobRun


class RunningJob(Protocol):
    """A JobRun being worked on by a task body (``jobs.runner.JobHandle`` implements it).

    The body commits through ``commit_batch`` only: the batch's rows with the checkpoint
    saying they are done, so a resumed or retried run continues where the last commit
    left it."""

    @property
    def run(self) -> JobRun: ...

    @property
    def checkpoint(self) -> dict[str, Any]:
        """What earlier attempts durably did (empty on the first attempt)."""
        ...

    @property
    def params(self) -> dict[str, Any]: ...

    @property
    def retries(self) -> int:
        """How many failed attempts of this run its kind's retry policy retried."""
        ...

    @property
    def is_retry(self) -> bool:
        """This attempt was started by the retry policy, after a failed attempt."""
        ...

    def set_progress(
        self, *, stage: str | None = None, done: int | None = None, total: int | None = None,
        message: str | None = None, counts: dict[str, Any] | None = None, commit: bool = True,
    ) -> None: ...

    def log(self, message: str, **data: Any) -> None: ...

    def commit_batch(
        self, *, checkpoint: dict[str, Any], done: int, counts: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> None:
        """Commit the batch's writes with its checkpoint, then honour pause/cancel."""
        ...

    def check_control(self) -> None:
        """Raise if the run was asked to pause or cancel, or its worker is stopping."""
        ...
