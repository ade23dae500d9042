"""Fixtures for the jobs tests (``tenant`` and ``ctx`` come from tests/conftest.py): the
tenant admin's API headers, an event and a category. Importing ``tests.jobs.helpers``
registers the ``tests.record_items`` job kind."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from racehub.core.models import Role, Tenant
from racehub.events.models import Category, Event
from tests.factories import auth, make_category, make_event
from tests.jobs import helpers  # noqa: F401 - registers the test job kind


@pytest.fixture
def headers(db: Session, tenant: Tenant) -> dict[str, str]:
    return auth(db, tenant, Role.TENANT_ADMIN)


@pytest.fixture
def event(db: Session, tenant: Tenant) -> Event:
    return make_event(db, tenant, name="Lyon Trail")


@pytest.fixture
def category(db: Session, event: Event) -> Category:
    return make_category(db, event, "21K")
