"""COPY-based bulk writes (db.bulk.copy_rows): every value arrives as it was, in the
session's transaction, and a violated constraint writes nothing."""

from __future__ import annotations

import uuid

import pytest
from psycopg.errors import UniqueViolation
from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.models import Tenant
from racehub.db.bulk import copy_rows
from racehub.inventory.models import RaceNumber, RaceNumberLogEntry, RaceNumberState, Tag
from tests.factories import make_number_type

AWKWARD = "tab\there, new\nline, back\\slash, quote \" and ' , \\N, Zoë 🏃"


def test_rows_arrive_with_every_value_as_it_was(db: Session, tenant: Tenant) -> None:
    number_type = make_number_type(db, tenant)
    tag_id, number_id = uuid.uuid4(), uuid.uuid4()
    copy_rows(db, Tag.__table__, [{"id": tag_id, "tenant_id": tenant.id, "code": AWKWARD}])
    copy_rows(db, RaceNumber.__table__, [
        {"id": number_id, "tenant_id": tenant.id, "number_type_id": number_type.id,
         "sequence": 2**62, "number": "0007", "state": RaceNumberState.RETIRED,
         "tag_id": tag_id},
        {"id": uuid.uuid4(), "tenant_id": tenant.id, "number_type_id": number_type.id,
         "sequence": 8, "number": "", "state": RaceNumberState.MANUFACTURED, "tag_id": None}])
    copy_rows(db, RaceNumberLogEntry.__table__, [
        {"tenant_id": tenant.id, "race_number_id": number_id, "action": "manufactured",
         "from_state": None, "to_state": RaceNumberState.MANUFACTURED,
         "detail": {"note": AWKWARD, "row": 3, "barcode": None}, "actor_user_id": None,
         "actor_label": "system", "job_run_id": None}])

    assert db.scalar(select(Tag.code).where(Tag.id == tag_id)) == AWKWARD
    numbers = {n.sequence: n for n in db.scalars(
        select(RaceNumber).where(RaceNumber.number_type_id == number_type.id))}
    assert (numbers[2**62].state, numbers[2**62].tag_id, numbers[2**62].number) == (
        RaceNumberState.RETIRED, tag_id, "0007")
    assert (numbers[8].tag_id, numbers[8].number) == (None, "")  # NULL and '' stay apart
    assert numbers[8].created_at is not None  # server defaults still apply
    entry = db.scalar(select(RaceNumberLogEntry).where(
        RaceNumberLogEntry.race_number_id == number_id))
    assert entry is not None and entry.id is not None and entry.from_state is None
    assert entry.detail == {"note": AWKWARD, "row": 3, "barcode": None}


def test_a_violated_constraint_writes_nothing(db: Session, tenant: Tenant) -> None:
    copy_rows(db, Tag.__table__, [{"id": uuid.uuid4(), "tenant_id": tenant.id, "code": "A"}])
    db.commit()
    with pytest.raises(UniqueViolation):
        copy_rows(db, Tag.__table__, [
            {"id": uuid.uuid4(), "tenant_id": tenant.id, "code": "B"},
            {"id": uuid.uuid4(), "tenant_id": tenant.id, "code": "A"}])
    db.rollback()
    assert db.scalars(select(Tag.code).where(Tag.tenant_id == tenant.id)).all() == ["A"]

