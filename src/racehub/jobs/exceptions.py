"""Errors of the jobs domain, and the signals tasks raise between batches."""

from racehub.core.exceptions import Conflict, NotFound


class JobNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("job not found")


class JobStateConflict(Conflict):
    pass


class JobCancelled(Exception):  # noqa: N818 - a signal, not an error
    """Raised at a batch boundary when cancel was requested."""


class JobPaused(Exception):  # noqa: N818 - a signal, not an error
    """Raised at a batch boundary when pause was requested."""


class JobInterrupted(Exception):  # noqa: N818 - a signal, not an error
    """Raised at a batch boundary when the worker is shutting down: the run goes back to
    the queue and continues from its checkpoint on the next worker."""
