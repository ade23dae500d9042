"""Every domain, declared once: its models, its tasks, the import types and export views
it plugs in.

The job queue (``jobs.queue``), the job kinds (``jobs.registry``), the import types
(``imports.registry``), the export views (``exports.views``) and the schema that Alembic
and the tests see (``db.models``) all read this list, so a domain is never known to one
of them and silently missing from another. tests/test_domains.py fails when a package
has a tasks.py, models.py or importers.py, or exports/views a module, that is not
declared here.

Module paths, not modules: importing a domain's tasks imports the job runner and the
services, which import this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Domain:
    """``name`` is the package under racehub and the procrastinate namespace of its tasks:
    a task is named ``<name>:<task name>`` in the queue, so it must never change while jobs
    of it may be waiting."""

    name: str
    models: str | None = None  # its SQLAlchemy models
    tasks: str | None = None  # a module with a procrastinate ``blueprint``
    import_types: tuple[str, ...] = ()  # modules calling imports.registry.register
    export_views: tuple[str, ...] = ()  # modules calling exports.views.register
    # A module saying what of this domain keeps an event or a category from being deleted
    # (``event_blockers``, ``category_blockers``; see events.service.delete_event).
    guards: str | None = None


# Lists of import types and export views show them in this order.
DOMAINS: tuple[Domain, ...] = (
    Domain("events", models="racehub.events.models", tasks="racehub.events.tasks",
           export_views=("racehub.exports.views.participants",)),
    Domain("inventory", models="racehub.inventory.models",
           import_types=("racehub.inventory.importers",),
           export_views=("racehub.exports.views.race_numbers",)),
    Domain("imports", models="racehub.imports.models", tasks="racehub.imports.tasks",
           export_views=("racehub.exports.views.imports",), guards="racehub.imports.guards"),
    Domain("core", models="racehub.core.models",
           export_views=("racehub.exports.views.audit",)),
    Domain("timing", models="racehub.timing.models",
           import_types=("racehub.timing.importers",),
           export_views=("racehub.exports.views.results",), guards="racehub.timing.guards"),
    Domain("jobs", models="racehub.jobs.models", tasks="racehub.jobs.tasks"),
    Domain("exports", models="racehub.exports.models", tasks="racehub.exports.tasks",
           guards="racehub.exports.guards"),
    Domain("providers", models="racehub.providers.models"),
    Domain("sync", models="racehub.sync.models", tasks="racehub.sync.tasks",
           export_views=("racehub.exports.views.webhook_deliveries",
                         "racehub.exports.views.sync_runs"),
           guards="racehub.sync.guards"),
    Domain("alerts", models="racehub.alerts.models", tasks="racehub.alerts.tasks"),
)


def task_modules() -> Iterator[tuple[str, ModuleType]]:
    """(namespace, module) of every domain with tasks."""
    for domain in DOMAINS:
        if domain.tasks:
            yield domain.name, importlib.import_module(domain.tasks)


def load_models() -> None:
    for domain in DOMAINS:
        if domain.models:
            importlib.import_module(domain.models)


def load_import_types() -> None:
    for domain in DOMAINS:
        for module in domain.import_types:
            importlib.import_module(module)


def load_export_views() -> None:
    for domain in DOMAINS:
        for module in domain.export_views:
            importlib.import_module(module)


def guard_modules() -> Iterator[ModuleType]:
    """Every domain's guards module (what keeps an event or a category from deletion)."""
    for domain in DOMAINS:
        if domain.guards:
            yield importlib.import_module(domain.guards)
