"""The merge rule (decide) by its properties, and conflicts stored one open per EP+field."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.models import Tenant
from racehub.sync.merge import SYNCED_FIELDS, decide, is_empty, record_conflicts
from racehub.sync.models import ConflictStatus, SyncConflict
from tests.factories import make_event, make_participant

# Few distinct values, so that provider, last-synced and local values often coincide.
VALUES = st.sampled_from([None, "", " ", "a", "b", "c"])
FIELDS = st.sampled_from(SYNCED_FIELDS)
SIDE = st.dictionaries(FIELDS, VALUES, max_size=len(SYNCED_FIELDS))
OWNED = st.sets(FIELDS)


@given(SIDE, SIDE, SIDE, OWNED)
def test_decide_never_writes_an_empty_value_nor_an_owned_field(
    provider: dict[str, Any], synced: dict[str, Any], local: dict[str, Any], owned: set[str]
) -> None:
    decision = decide(provider, synced, local, owned)
    assert not any(is_empty(v) for v in decision.writes.values())
    assert not any(is_empty(theirs) for _, theirs in decision.conflicts.values())
    assert set(decision.writes).isdisjoint(owned)
    assert set(decision.conflicts) <= owned


@given(SIDE, SIDE, SIDE, OWNED)
def test_decide_leaves_alone_what_the_provider_did_not_change(
    provider: dict[str, Any], synced: dict[str, Any], local: dict[str, Any], owned: set[str]
) -> None:
    decision = decide(provider, synced, local, owned)
    unchanged = {f for f, v in provider.items() if v == synced.get(f)}
    assert unchanged.isdisjoint(decision.writes)
    assert unchanged.isdisjoint(decision.conflicts)


@given(SIDE, SIDE, SIDE, OWNED)
def test_decide_again_after_applying_its_writes_writes_nothing(
    provider: dict[str, Any], synced: dict[str, Any], local: dict[str, Any], owned: set[str]
) -> None:
    first = decide(provider, synced, local, owned)
    applied = {**local, **first.writes}
    again = decide(provider, synced, applied, owned)
    assert again.writes == {}
    assert again.conflicts == first.conflicts
    # Every provider-owned change made it: racehub now holds the provider's value.
    changed = {f for f, v in provider.items() if not is_empty(v) and v != synced.get(f)}
    assert all(applied.get(f) == provider[f] for f in changed - owned)


@given(SIDE, SIDE, SIDE, OWNED)
def test_a_conflict_is_a_provider_change_racehub_does_not_hold(
    provider: dict[str, Any], synced: dict[str, Any], local: dict[str, Any], owned: set[str]
) -> None:
    decision = decide(provider, synced, local, owned)
    for name, (ours, theirs) in decision.conflicts.items():
        assert ours == local.get(name) and theirs == provider[name]
        assert theirs != ours and theirs != synced.get(name)


def test_decide_examples_of_the_rule() -> None:
    provider = {"bib": "12", "team": "", "first_name": "Ada", "city": "Lyon", "email": None}
    synced = {"bib": "10", "team": "Harriers", "first_name": "Ada", "city": "Paris",
              "email": "ada@example.test"}
    local = {"bib": "7", "team": "Harriers", "first_name": "Adele", "city": "Paris",
             "email": "ada@example.test"}
    decision = decide(provider, synced, local, owned={"bib", "first_name"})
    # bib: owned and changed by the provider -> conflict; team: empty never blanks;
    # first_name: the provider did not change it (P == S), the local edit stays;
    # city: provider-owned and changed -> written; email: None never blanks.
    assert decision.conflicts == {"bib": ("7", "12")}
    assert decision.writes == {"city": "Lyon"}


def test_decide_compares_values_as_json_stores_them() -> None:
    category = uuid.uuid4()
    born = date(1990, 5, 17)
    decision = decide({"category_id": category, "birth_date": born},
                      {"category_id": str(category)}, {"birth_date": born.isoformat()},
                      owned=set())
    assert decision.writes == {} and decision.conflicts == {}


def test_decide_ignores_fields_that_are_not_synced() -> None:
    decision = decide({"status": "withdrawn", "chip": "X1"}, {}, {}, owned=set())
    assert decision.writes == {} and decision.conflicts == {}


def test_record_conflicts_keeps_one_open_conflict_per_participant_and_field(
    db: Session, tenant: Tenant, ctx: TenantContext
) -> None:
    event = make_event(db, tenant)
    ep = make_participant(db, event, bib="7", team="Harriers")
    args: dict[str, Any] = {"run_id": None, "event_id": event.id, "participant_id": ep.id,
                            "record_id": None}

    assert record_conflicts(db, ctx, conflicts={"bib": ("7", "12"), "team": ("Harriers", "B")},
                            **args) == 2
    # The same provider values again: nothing new, nothing changed.
    assert record_conflicts(db, ctx, conflicts={"bib": ("7", "12")}, **args) == 0
    # The provider changed the bib again: the open conflict is updated in place.
    assert record_conflicts(db, ctx, conflicts={"bib": ("7", "14")}, **args) == 1

    rows = db.scalars(select(SyncConflict).where(SyncConflict.participant_id == ep.id)
                      .order_by(SyncConflict.field)).all()
    assert [(c.field, c.local_value, c.provider_value, c.status) for c in rows] == [
        ("bib", "7", "14", ConflictStatus.OPEN), ("team", "Harriers", "B", ConflictStatus.OPEN)]
    assert all(c.tenant_id == tenant.id and c.event_id == event.id for c in rows)


def test_a_resolved_conflict_does_not_stop_a_new_one_on_the_same_field(
    db: Session, tenant: Tenant, ctx: TenantContext
) -> None:
    event = make_event(db, tenant)
    ep = make_participant(db, event, bib="7")
    args: dict[str, Any] = {"run_id": None, "event_id": event.id, "participant_id": ep.id,
                            "record_id": None}
    record_conflicts(db, ctx, conflicts={"bib": ("7", "12")}, **args)
    db.execute(update(SyncConflict).values(status=ConflictStatus.KEPT))

    assert record_conflicts(db, ctx, conflicts={"bib": ("7", "13")}, **args) == 1
    statuses = db.scalars(select(SyncConflict.status).where(SyncConflict.participant_id == ep.id)
                          .order_by(SyncConflict.created_at)).all()
    assert sorted(statuses) == sorted([ConflictStatus.KEPT, ConflictStatus.OPEN])
