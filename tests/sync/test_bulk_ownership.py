"""A bulk edit owns what it changes, as a single edit does: the next participant sync from
the RunSignUp simulator (over HTTP) does not overwrite a bulk-moved category or a
bulk-cleared bib; the provider's new value becomes a conflict instead. A bulk withdrawal
stays too (the sync changes a status only when the provider withdraws or restores)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.events import bulk
from racehub.events.models import Event, EventParticipant, ParticipantStatus
from racehub.events.schemas import BulkEditRequest
from racehub.providers.runsignup.simulator import RunSignUpSimulator
from racehub.sync.models import (
    CategoryLink,
    EventLink,
    ProviderConnection,
    SyncConflict,
    SyncedRecord,
    SyncStatus,
)
from tests.factories import make_category
from tests.sync.engine_helpers import provider_event_id, sync


def _bulk(db: Session, ctx: TenantContext, event: Event, **request: Any) -> bulk.BulkSummary:
    outcome = bulk.start_bulk_edit(db, ctx, event_id=event.id, inline_max=300,
                                   data=BulkEditRequest.model_validate(request))
    assert outcome.summary is not None
    return outcome.summary


def test_a_sync_raises_conflicts_on_what_a_bulk_edit_changed_instead_of_overwriting(
    db: Session, ctx: TenantContext, keyring: Keyring, sim: tuple[RunSignUpSimulator, str],
    connection: ProviderConnection, event_link: EventLink, event: Event,
) -> None:
    simulator_ = sim[0]
    assert sync(db, ctx, keyring, connection, event_link).status == SyncStatus.SUCCEEDED
    rows = [r for r in simulator_.participants[provider_event_id(simulator_)]
            if r.get("bib_num") and not r.get("_keyless")]
    records = {r.source_ref: r.participant_id for r in db.scalars(select(SyncedRecord))}
    moved, cleared, withdrawn, left = (records[str(r["registration_id"])] for r in rows[:4])
    half, ten_k = make_category(db, event, "Half"), make_category(db, event, "10K")

    assert _bulk(db, ctx, event, action="move_category", ids=[str(moved)],
                 category_id=str(half.id)).changed == 1
    assert _bulk(db, ctx, event, action="clear_bibs", ids=[str(cleared)]).changed == 1
    assert _bulk(db, ctx, event, action="withdraw", ids=[str(withdrawn)]).changed == 1
    # The provider changes what the bulk edits changed: its race now maps to the 10K (every
    # registration's category; the moved one is edited there too), and the cleared entry
    # gets a new bib there.
    db.execute(update(CategoryLink).where(CategoryLink.link_id == event_link.id)
               .values(category_id=ten_k.id))
    simulator_.modify(rows[0]["registration_id"], last_name="Moved")
    simulator_.modify(rows[1]["registration_id"], bib_num=77777)

    run = sync(db, ctx, keyring, connection, event_link, full_refresh=True)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    db.expire_all()
    eps = {i: db.get_one(EventParticipant, i) for i in (moved, cleared, withdrawn, left)}
    assert eps[moved].category_id == half.id  # kept: racehub owns it
    assert eps[cleared].bib is None  # kept cleared
    assert eps[withdrawn].status == ParticipantStatus.WITHDRAWN
    assert eps[left].category_id == ten_k.id  # the provider owns the others' category
    conflicts = {(c.participant_id, c.field): (c.local_value, c.provider_value)
                 for c in db.scalars(select(SyncConflict))}
    assert conflicts == {(moved, "category_id"): (str(half.id), str(ten_k.id)),
                         (cleared, "bib"): (None, "77777")}
