"""Job kinds: which task runs a kind, who may read and control it, what to call it.

A kind declares the permission controlling it (pause, resume, cancel), the one reading it,
and its subject: the row a run works on (an import, an export, a category), with the rule
saying what that row adds (an import of manufactured numbers needs the inventory
permission; an export of the audit log needs the audit permission). ``jobs.service.
access_of`` applies all of it, for every route that reads or controls a run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from racehub.core.rbac import Perm
from racehub.jobs.queue import load_tasks
from racehub.jobs.retry import RetryPolicy


@dataclass(frozen=True)
class Needs:
    """Permissions one subject adds to its kind's: to read the run, and to control it."""

    read: frozenset[Perm] = frozenset()
    control: frozenset[Perm] = frozenset()


@dataclass(frozen=True)
class Subject:
    """What a kind's runs work on. ``type`` is stored on the run (``subject_type``).

    With a rule, ``key`` is the column of the subject's table the rule reads (an import's
    type, an export's view), ``known_keys`` every value it knows and ``needs`` what each value
    adds. A run whose subject is missing or has a key the rule does not know needs what
    every key needs together (the strictest case)."""

    type: str
    key: Any = None  # an ORM column of the subject's model, e.g. Import.import_type
    known_keys: Callable[[], Iterable[str]] | None = None
    needs: Callable[[str], Needs] | None = None

    @property
    def has_rule(self) -> bool:
        return self.key is not None and self.known_keys is not None and self.needs is not None


@dataclass(frozen=True)
class Owner:
    """What a run belongs to, as its page links back to it: ``what`` names the kind of
    thing ("Event", "Number type", "Connection"), ``name`` the thing itself."""

    what: str
    name: str
    url: str


# What one run belongs to (its page's links back), read with the run's own tenant context.
BelongsTo = Callable[[Any, Any, Any], list[Owner]]  # (db, ctx, run) -> owners
# The runs of a kind that belong to one event, as a filter on JobRun: (ctx, event_id).
OfEvent = Callable[[Any, Any], Any]


def owner_of(lookup: Callable[[], Owner | None]) -> list[Owner]:
    """``[lookup()]``, or nothing when the row is gone (deleted since, or a malformed id in
    an old run's params): a run's page still shows, without that link."""
    from racehub.core.exceptions import NotFound

    try:
        owner = lookup()
    except (NotFound, ValueError, TypeError, KeyError):
        return []
    return [owner] if owner is not None else []


@dataclass(frozen=True)
class JobKind:
    kind: str
    label: str
    permission: Perm  # controlling a run (pause, resume, cancel), on top of reading it
    task: Any
    lock: str | None = None  # "{tenant_id}" etc.: runs sharing a lock key run one at a time
    read_permission: Perm = Perm.JOBS_RUN_READ  # reading a run (list, page, API)
    subject: Subject | None = field(default=None)
    retry: RetryPolicy | None = None  # which failed attempts are tried again (jobs.retry)
    belongs_to: BelongsTo | None = None  # the event, number type, connection... of a run
    of_event: OfEvent | None = None  # None: its runs belong to no event


JOB_KINDS: dict[str, JobKind] = {}


def load_kinds() -> dict[str, JobKind]:
    load_tasks()  # task modules fill JOB_KINDS when imported
    return JOB_KINDS


def get_kind(kind: str) -> JobKind:
    return load_kinds()[kind]


def label_of(kind: str) -> str:
    job_kind = load_kinds().get(kind)
    return job_kind.label if job_kind else kind
