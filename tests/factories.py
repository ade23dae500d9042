"""Build rows through the services (so audit and rules apply), with a tenant for each."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from racehub.core import service as core_service
from racehub.core.context import TenantContext
from racehub.core.models import Role, Tenant, User
from racehub.core.schemas import ApiTokenCreate
from racehub.events import service as events_service
from racehub.events.models import Category, Event, EventParticipant
from racehub.events.schemas import CategoryCreate, EventCreate, ParticipantCreate, PersonIn
from racehub.inventory import service as inventory_service
from racehub.inventory.models import NumberType
from racehub.inventory.schemas import NumberTypeCreate
from racehub.inventory.service import ManufacturedRow, RowResult
from racehub.sync.models import SyncedRecord

PASSWORD = "correct horse battery"
_seq = itertools.count(1)


def make_tenant(db: Session, name: str | None = None) -> Tenant:
    n = next(_seq)
    return core_service.create_tenant(db, name=name or f"Timing Co {n}", slug=f"tenant-{n}-x")


def make_user(
    db: Session, tenant: Tenant | None = None, role: Role | None = Role.VIEWER, *,
    email: str | None = None, password: str = PASSWORD, platform_admin: bool = False,
) -> User:
    user = core_service.create_user(db, email=email or f"user{next(_seq)}@example.test",
                                    password=password, is_platform_admin=platform_admin)
    if tenant is not None and role is not None:
        core_service.set_membership(db, tenant=tenant, user=user, role=role)
    return user


def system_ctx(tenant: Tenant) -> TenantContext:
    return TenantContext.system(tenant.id, label="test")


def make_token(db: Session, tenant: Tenant, role: Role = Role.TENANT_ADMIN) -> str:
    _, secret = core_service.create_api_token(
        db, system_ctx(tenant), data=ApiTokenCreate(name=f"t{next(_seq)}", role=role)
    )
    return secret


def auth(db: Session, tenant: Tenant, role: Role = Role.TENANT_ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(db, tenant, role)}"}


def make_event(db: Session, tenant: Tenant, **fields: Any) -> Event:
    data = {"name": f"Race {next(_seq)}", "start_at": datetime(2026, 6, 1, 8, tzinfo=UTC),
            **fields}
    return events_service.create_event(db, system_ctx(tenant), data=EventCreate(**data))


def make_category(db: Session, event: Event, name: str | None = None, **fields: Any) -> Category:
    ctx = TenantContext.system(event.tenant_id, label="test")
    return events_service.create_category(
        db, ctx, event_id=event.id, data=CategoryCreate(name=name or f"{next(_seq)}K", **fields)
    )


def make_participant(
    db: Session, event: Event, *, first_name: str = "Ada", last_name: str | None = None,
    birth_date: date | None = None, **fields: Any,
) -> EventParticipant:
    ctx = TenantContext.system(event.tenant_id, label="test")
    person = PersonIn(first_name=first_name, last_name=last_name or f"Runner{next(_seq)}",
                      birth_date=birth_date)
    return events_service.create_participant(
        db, ctx, event_id=event.id, data=ParticipantCreate(person=person, **fields)
    )


def make_number_type(db: Session, tenant: Tenant, name: str | None = None,
                     **fields: Any) -> NumberType:
    return inventory_service.create_number_type(
        db, system_ctx(tenant),
        data=NumberTypeCreate(name=name or f"Bibs {next(_seq)}", **fields))


def onboard(db: Session, number_type: NumberType, *rows: tuple[str, str, str],
            duplicates: frozenset[int] = frozenset()) -> list[RowResult]:
    """Onboard (sequence, number, barcode) rows as a manufacturer's file would list them."""
    ctx = TenantContext.system(number_type.tenant_id, label="test")
    return inventory_service.onboard_manufactured_numbers(
        db, ctx, number_type=number_type, duplicate_sequences=duplicates,
        rows=[ManufacturedRow(n, *row) for n, row in enumerate(rows, start=2)])


def store_starts_out_of_range(db: Session, event: Event, category: Category,
                              category_start: str) -> None:
    """Store what input bounds now refuse, as rows written before them (or by hand) hold:
    the event at year 10000, the category at ``category_start`` ('infinity', '-infinity')."""
    db.execute(text("UPDATE events SET start_at = '9999-12-31T23:59:59-14:00', "
                    "timezone = 'Pacific/Kiritimati' WHERE id = :id"), {"id": event.id})
    db.execute(text("UPDATE categories SET start_at = CAST(:start AS timestamptz) "
                    "WHERE id = :id"), {"id": category.id, "start": category_start})


def make_synced_record(db: Session, participant: EventParticipant, *,
                       provider: str = "RUNSIGNUP", source_ref: str | None = None,
                       **fields: Any) -> SyncedRecord:
    """A provider registration as a sync would have left it behind ``participant``."""
    values = {"tenant_id": participant.tenant_id, "event_id": participant.event_id,
              "participant_id": participant.id, "provider": provider,
              "source_ref": source_ref or f"reg-{next(_seq)}", "content_hash": "0" * 64,
              "person_match": "new", "synced_values": {}, **fields}
    record = SyncedRecord(**values)
    db.add(record)
    db.flush()
    return record
