"""Background jobs of the alerts domain: the evaluation and the deliveries, each a
procrastinate periodic task (every minute), queued as ``alerts:evaluate`` and
``alerts:deliver``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

import structlog
from procrastinate import Blueprint
from sqlalchemy.orm import Session

from racehub.alerts import service
from racehub.core.crypto import Keyring, get_keyring
from racehub.jobs.runner import worker_sessionmaker
from racehub.settings import Settings, get_settings

log = structlog.get_logger(__name__)

blueprint = Blueprint()

MAX_DELIVERIES = 200  # a bound on one run's loop; the next minute takes the rest


@blueprint.periodic(cron="* * * * *")  # every minute
@blueprint.task(name="evaluate", queueing_lock="alerts_evaluate")
def evaluate_task(timestamp: int) -> int:
    """Evaluate every alert rule and move the alerts on (notices written, not sent)."""
    with worker_sessionmaker()() as db:
        report = service.evaluate(db, now=datetime.now(UTC), settings=get_settings(),
                                  keyring=get_keyring())
        db.commit()
    if report is not None and (report.fired or report.resolved or report.repeated):
        log.info("alerts.evaluated", fired=report.fired, resolved=report.resolved,
                 repeated=report.repeated, deliveries=report.deliveries)
    return report.fired + report.resolved + report.repeated if report else 0


def deliver_due(factory: Callable[[], AbstractContextManager[Session]], *, now: datetime,
                settings: Settings | None = None, keyring: Keyring | None = None) -> int:
    """Send every due delivery, one committed attempt each."""
    settings = settings or get_settings()
    keyring = keyring or get_keyring()
    sent = 0
    with factory() as db:
        for _ in range(MAX_DELIVERIES):
            delivery = service.deliver_next(db, now=now, settings=settings, keyring=keyring)
            db.commit()
            if delivery is None:
                break
            sent += 1
    return sent


@blueprint.periodic(cron="* * * * *")  # every minute: new notices and due retries
@blueprint.task(name="deliver", queueing_lock="alerts_deliver")
def deliver_task(timestamp: int) -> int:
    """Send the alert notices whose (next) attempt is due."""
    return deliver_due(worker_sessionmaker(), now=datetime.now(UTC))
