"""Find the database (external URL or embedded server) and migrate it."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from racehub.db import embedded
from racehub.db.session import sqlalchemy_url
from racehub.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    """Autogenerate filter: procrastinate's tables come from its own SQL, not our models."""
    return not (name and name.startswith("procrastinate_"))


def database_url(settings: Settings) -> str:
    """The configured server, or the embedded one (started on first use in this process)."""
    if settings.database_url:
        return sqlalchemy_url(settings.database_url)
    return sqlalchemy_url(embedded.start(settings.data_dir))


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logging"] = False
    return cfg


def migrate(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
