"""Fixtures for the events tests: a tenant, its admin's API headers, an event."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.events.models import Event
from tests.factories import auth, make_event


@pytest.fixture
def headers(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.TENANT_ADMIN)


@pytest.fixture
def event(db: Session, tenant: Tenant) -> Event:
    return make_event(db, tenant, name="Paris 10K", timezone="Europe/Paris")
