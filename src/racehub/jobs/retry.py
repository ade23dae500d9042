"""Retry policies: which failures of a job kind pass, and when to try again.

A kind declares its policy with ``job_task(..., retry=PROVIDER_OUTAGES)``. When an
attempt fails, the runner asks the policy: a failure it retries leaves the run QUEUED,
"Retrying at 14:32 UTC (attempt 2 of 4)", with ``JobRun.retry_at`` set and its checkpoint
kept, and raises ``RetryScheduled``; procrastinate's retry machinery (``JobRetryStrategy``)
then puts the queue's job back with ``scheduled_at`` at that time. Any other failure, or
one past the last retry, fails the run for good.

The policy decides in the runner, not in procrastinate's strategy, because the run must
say that it waits (and until when) in the same step that decides it, and only the
runner holds the run's row and the count of its retries (the queue's ``attempts`` also
counts restarts after a worker shutdown or crash, and starts again at 0 on a resume).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from procrastinate import BaseRetryStrategy, RetryDecision
from procrastinate.exceptions import JobAborted
from procrastinate.jobs import Job

from racehub.providers.errors import ProviderDown, Throttled

# A provider's Retry-After longer than the backoff is honoured, up to this.
MAX_RETRY_AFTER = timedelta(hours=1)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry failures of the ``retry_on`` types, waiting ``delays[n]`` before retry n+1:
    as many retries as delays, then the run is a permanent failure."""

    retry_on: tuple[type[Exception], ...]
    delays: tuple[timedelta, ...]

    @property
    def max_retries(self) -> int:
        return len(self.delays)

    def retries(self, error: BaseException) -> bool:
        """Whether ``error`` is of a kind this policy retries (however many retries are left)."""
        return isinstance(error, self.retry_on)

    def next_attempt_at(self, error: BaseException, *, retries: int,
                        now: datetime) -> datetime | None:
        """When to try again after ``error`` ended the attempt that followed ``retries``
        retries; None: do not (a permanent error, or no retry left)."""
        if not self.retries(error) or retries >= self.max_retries:
            return None
        delay = self.delays[retries]
        # Throttled and ProviderDown carry the provider's Retry-After, when it sent one.
        asked = getattr(error, "retry_after", None)
        if asked:
            delay = max(delay, min(timedelta(seconds=asked), MAX_RETRY_AFTER))
        return now + delay


# A provider that is down, times out, refuses connections (all ProviderDown) or throttles:
# 2, 4 and 8 minutes, then give up. AuthFailed, NotFound and BadData are not retried:
# another attempt would fail the same way.
PROVIDER_OUTAGES = RetryPolicy(
    retry_on=(ProviderDown, Throttled),
    delays=(timedelta(minutes=2), timedelta(minutes=4), timedelta(minutes=8)),
)


class RetryScheduled(Exception):
    """The attempt failed and the run waits for its retry at ``retry_at`` (raised by the
    runner from the failure, after saving the run as waiting)."""

    def __init__(self, retry_at: datetime) -> None:
        super().__init__(f"retrying at {retry_at.isoformat()}")
        self.retry_at = retry_at


class JobRetryStrategy(BaseRetryStrategy):
    """procrastinate's retry decision for every job kind's task.

    A run the runner scheduled for a retry goes back to the queue for that time. A job
    stopped at a batch boundary because its worker shuts down goes back at once, however
    often that happens (procrastinate asks only for aborts at shutdown, never for a job
    the user aborted). Nothing else is retried."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, RetryScheduled):
            return RetryDecision(retry_at=exception.retry_at)
        if isinstance(exception, JobAborted):
            return RetryDecision()
        return None


JOB_RETRY = JobRetryStrategy()
