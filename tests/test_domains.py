"""racehub.domains is the one list of what each domain plugs in: a tasks.py, models.py or
importers.py (or an export view) it does not declare would silently never be loaded, so
these tests fail instead."""

from __future__ import annotations

import importlib
from pathlib import Path

import racehub
from racehub.domains import DOMAINS
from racehub.jobs.queue import load_tasks

SRC = Path(racehub.__file__).parent
# db/models.py is not a domain's models: it loads every domain's (for Alembic and tests).
NOT_DOMAIN_FILES = {"racehub.db.models"}

# The queue stores a job's task by this name: renaming one orphans the jobs waiting for it.
TASK_NAMES = {"alerts:deliver", "alerts:evaluate", "events:assign_bibs", "events:bulk_edit",
              "exports:expire", "exports:run", "imports:run",
              "sync:results_publish", "sync:results_publish_prepare",
              "jobs:recover_stalled", "sync:discover_events", "sync:participants",
              "sync:results_pull", "sync:retention:purge_payloads", "sync:schedule:tick",
              "sync:start_list_push"}


def _module_of(path: Path) -> str:
    return ".".join(("racehub", *path.relative_to(SRC).with_suffix("").parts))


def _modules_named(file_name: str) -> set[str]:
    found = {_module_of(path) for path in SRC.rglob(file_name)}
    return found - NOT_DOMAIN_FILES


def test_every_tasks_models_and_importers_module_is_declared_by_a_domain() -> None:
    declared_tasks = {d.tasks for d in DOMAINS if d.tasks}
    declared_models = {d.models for d in DOMAINS if d.models}
    declared_importers = {m for d in DOMAINS for m in d.import_types}

    assert _modules_named("tasks.py") - declared_tasks == set(), "add it to racehub.domains"
    assert _modules_named("models.py") - declared_models == set(), "add it to racehub.domains"
    assert _modules_named("importers.py") - declared_importers == set(), (
        "add it to its domain's import_types in racehub.domains")


def test_every_export_view_module_is_declared_by_a_domain() -> None:
    views = {_module_of(p) for p in (SRC / "exports" / "views").glob("*.py")
             if p.name != "__init__.py"}
    declared = [m for d in DOMAINS for m in d.export_views]

    assert views - set(declared) == set(), "add it to its domain's export_views"
    assert len(declared) == len(set(declared)), "a view module declared twice"


def test_declared_modules_exist_and_a_domain_is_its_package() -> None:
    names = [d.name for d in DOMAINS]
    assert len(names) == len(set(names))
    for domain in DOMAINS:
        assert (SRC / domain.name / "__init__.py").is_file(), domain.name
        for module in filter(None, (domain.models, domain.tasks)):
            assert module.startswith(f"racehub.{domain.name}."), module
            importlib.import_module(module)
        for module in (*domain.import_types, *domain.export_views):
            importlib.import_module(module)


def test_every_declared_domains_tasks_are_in_the_queue_under_their_names() -> None:
    app = load_tasks()
    ours = {name for name in app.tasks
            if ":" in name and name.split(":", 1)[0] in {d.name for d in DOMAINS}}

    assert ours == TASK_NAMES
