"""Fixtures for the inventory tests: a tenant, its context, a number type."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.models import Tenant
from racehub.inventory.models import NumberType
from tests.factories import make_number_type, make_tenant, system_ctx


@pytest.fixture
def tenant(db: Session) -> Tenant:
    return make_tenant(db)


@pytest.fixture
def ctx(tenant: Tenant) -> TenantContext:
    return system_ctx(tenant)


@pytest.fixture
def number_type(db: Session, tenant: Tenant) -> NumberType:
    return make_number_type(db, tenant, name="Marathon 2027", range_start=1, range_end=5000)
