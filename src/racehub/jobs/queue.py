"""The procrastinate app. Each domain declares its tasks on a Blueprint in its tasks.py,
and the module in ``racehub.domains``.

The app's connector gets its pool only in the worker (``racehub worker``). Web code
defers jobs on its own SQLAlchemy connection (``defer_on``), so a job is committed, or
rolled back, together with the row that asked for it.
"""

from __future__ import annotations

from typing import Any

import procrastinate
from sqlalchemy.orm import Session

from racehub import domains

queue_app = procrastinate.App(connector=procrastinate.PsycopgConnector())

_loaded = False


def load_tasks() -> procrastinate.App:
    """Import every domain's tasks and bind them to the app (once per process).

    Lazy, because task modules import the job runner, which imports services that
    import this module.
    """
    global _loaded
    if not _loaded:
        for namespace, module in domains.task_modules():
            queue_app.add_tasks_from(module.blueprint, namespace=namespace)
        _loaded = True
    return queue_app


# Deferring on our own (sync psycopg) connection takes procrastinate's sync connector. The
# app's connector will not do: in a worker it holds an async pool, and then treats any
# connection it is given as an async one (a job deferred by a job, such as the schedule's
# tick, failed with "'Cursor' object does not support the asynchronous context manager").
_on_our_connection = procrastinate.manager.JobManager(
    connector=procrastinate.SyncPsycopgConnector())


def defer_on(db: Session, task: Any, **configure: Any) -> Any:
    """A deferrer bound to the session's connection (and therefore its transaction), in
    the web process and in a worker alike."""
    load_tasks()
    raw_connection = db.connection().connection.driver_connection
    deferrer = task.configure(connection=raw_connection, **configure)
    deferrer.job_manager = _on_our_connection
    return deferrer
