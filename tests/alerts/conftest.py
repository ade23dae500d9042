"""Fixtures of the alert tests: settings with a real key (webhooks to loopback allowed:
the receivers are local servers), a keyring, and helpers to evaluate at a given time and
read what came out."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.alerts import service
from racehub.alerts.models import Alert, AlertDelivery
from racehub.core.crypto import Keyring, keyring_from_settings
from racehub.settings import Settings


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path, log_json=True,
                    log_level="WARNING", secret_keys=SecretStr(Fernet.generate_key().decode()),
                    alert_webhook_allow_private=True)


@pytest.fixture
def keyring(settings: Settings) -> Keyring:
    return keyring_from_settings(settings)


class Evaluator:
    """``evaluator(at)``: one evaluation at ``at``, in the test's transaction."""

    def __init__(self, db: Session, settings: Settings, keyring: Keyring) -> None:
        self.db, self.settings, self.keyring = db, settings, keyring

    def __call__(self, at: datetime) -> service.Evaluation:
        report = service.evaluate(self.db, now=at, settings=self.settings, keyring=self.keyring)
        assert report is not None
        self.db.flush()
        return report


@pytest.fixture
def evaluate(db: Session, settings: Settings, keyring: Keyring) -> Evaluator:
    return Evaluator(db, settings, keyring)


def alerts_of(db: Session, rule: str) -> list[Alert]:
    """The rule's alerts by when their condition began (rows made in one test transaction
    share their created_at)."""
    return list(db.scalars(select(Alert).where(Alert.rule == rule)
                           .order_by(Alert.active_since, Alert.id)
                           .execution_options(populate_existing=True)))


def deliveries_of(db: Session, alert: Alert) -> list[tuple[str, str]]:
    """(channel, kind) of each delivery of ``alert``, oldest first."""
    return [(d.channel, d.kind.value) for d in db.scalars(
        select(AlertDelivery).where(AlertDelivery.alert_id == alert.id)
        .order_by(AlertDelivery.created_at, AlertDelivery.kind, AlertDelivery.channel))]
