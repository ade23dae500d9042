"""Job kinds: which task runs a kind, which permission controls it, what to call it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from racehub.core.rbac import Perm


@dataclass(frozen=True)
class JobKind:
    kind: str
    label: str
    permission: Perm
    task: Any
    lock: str | None = None  # "{tenant_id}" etc.: runs sharing a lock key run one at a time


JOB_KINDS: dict[str, JobKind] = {}


def get_kind(kind: str) -> JobKind:
    from racehub.jobs.queue import load_tasks

    load_tasks()  # task modules fill JOB_KINDS when imported
    return JOB_KINDS[kind]


def label_of(kind: str) -> str:
    job_kind = JOB_KINDS.get(kind)
    return job_kind.label if job_kind else kind
