"""The apply step of a participant pull: staged rows -> synced records, EPs, changes.

Runs inside the one transaction of ``engine.apply_run``. Per batch of staged registrations:
one query for their synced records (by each of ``match_refs``: a record stored under a
row's fallback key is re-keyed to its registration id and stays the same EP), one for
their EPs, one write through ``events.writes.write_participants``. A record whose payload
is unchanged (same content hash) and which has nothing to write costs no write at all.

Bulk rows go set-based: new synced records and the run's changes are COPY streams
(``db.bulk.copy_rows``), not ORM objects; a record that already existed is still changed
through the ORM (other steps of the run, withdrawals and restores, load and lock it).
Lookups that cannot find anything are skipped: the Applier notes at its start whether the
tenant had synced records of this provider and whether the event had EPs with this
provider as their source, and afterwards only looks up what this run itself recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, selectinload

from racehub.core.context import TenantContext
from racehub.core.query import any_of
from racehub.db.bulk import copy_rows
from racehub.db.statistics import refresh_while_growing
from racehub.events.models import EventParticipant
from racehub.events.writes import ParticipantWrite, WriteOutcome, write_participants
from racehub.providers.base import ProviderWithdrawal
from racehub.sync import runs, staging
from racehub.sync.merge import decide, is_empty, record_conflicts
from racehub.sync.models import (
    CategoryLink,
    ChangeAction,
    EventLink,
    ProviderConnection,
    StagedRow,
    SyncChange,
    SyncedRecord,
    SyncRun,
)
from racehub.sync.withdrawals import apply_withdrawals, restore_participants

# The tables a first sync fills, ANALYZEd as it passes 2k, 4k, 8k... new registrations:
# the columns its batch lookups filter on (records by key, EPs by source, bib and id), not
# the payloads and the page sort keys. Persons whole: the person candidates' lookup needs
# the folded names' statistics (an expression index's), or it probes the name index even
# where most people share a few names, instead of the birth date's.
GROWING_TABLES: dict[str, tuple[str, ...]] = {
    "event_participants": ("tenant_id", "event_id", "source_provider", "source_id", "bib",
                           "status", "person_id"),
    "persons": (),
    "synced_records": ("tenant_id", "provider", "source_ref", "participant_id",
                       "withdrawn_at"),
}


def _python_value(field: str, value: Any) -> Any:
    """A synced (JSON) value as the write path takes it."""
    if value is None:
        return None
    if field == "birth_date" and isinstance(value, str):
        return date.fromisoformat(value)
    if field == "category_id" and isinstance(value, str):
        return uuid.UUID(value)
    return value


def _for_write(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _python_value(k, v) for k, v in values.items()}


@dataclass
class _Planned:
    """One registration of a batch, between the merge decision and the write."""

    data: dict[str, Any]
    record: SyncedRecord | None
    participant_id: uuid.UUID | None  # None: a new EP
    values: dict[str, Any]  # the provider's values now (JSON)
    conflicts: dict[str, tuple[Any, Any]]
    digest: str

    @property
    def ref(self) -> str:
        return str(self.data["ref"])


class Applier:
    def __init__(self, db: Session, ctx: TenantContext, *, run: SyncRun, link: EventLink,
                 connection: ProviderConnection, clock: Callable[[], datetime]) -> None:
        assert link.event_id is not None
        self.db, self.ctx, self.run, self.link = db, ctx, run, link
        self.event_id: uuid.UUID = link.event_id
        self.provider = connection.provider
        self.clock = clock
        self.origin = f"sync run {run.id}"
        self.newest: datetime | None = None  # the newest provider modification applied
        # The oldest modification of a registration the write path refused (a bib held by
        # another entry...): the cursor stays before it, so the next run reads it again.
        self.oldest_refused: datetime | None = None
        self.refused_undated = False  # a refused registration without a modification time
        self.created: dict[str, uuid.UUID] = {}  # source_ref -> new EP (transfers read it)
        run.created = run.updated = run.unchanged = run.withdrawn = run.conflicts = 0
        # What lookups can find: records of this tenant and provider made before this run
        # (else only the refs this run recorded), EPs of the event entered with this
        # provider as their source before this run (else none: this run's have records).
        self._records_before = bool(db.scalar(select(exists().where(
            SyncedRecord.tenant_id == run.tenant_id, SyncedRecord.provider == self.provider))))
        self._sourced_before = bool(db.scalar(select(exists().where(
            EventParticipant.tenant_id == run.tenant_id,
            EventParticipant.event_id == self.event_id,
            EventParticipant.source_provider == self.provider))))
        self._recorded: set[str] = set()  # source refs of the records this run wrote

    def skipped_unchanged(self, count: int, newest: datetime | None) -> None:
        """Registrations the staging step already found unchanged (same content hash, same
        values as last synced, nothing to restore) and did not stage: they count as
        unchanged, and their modification times move the cursor as an applied row's do."""
        self.run.unchanged += count
        self._seen(newest)

    def _seen(self, modified_at: datetime | None) -> None:
        if modified_at is not None and (self.newest is None or modified_at > self.newest):
            self.newest = modified_at

    # -- registrations ----------------------------------------------------------------------
    def apply_participants(self, rows: Sequence[staging.Staged]) -> None:
        db, run = self.db, self.run
        # A registration read twice (it changed between pages) counts once, as read last.
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            latest.pop(row.data["ref"], None)
            latest[row.data["ref"]] = row.data
        items = list(latest.values())
        refs = [ref for d in items for ref in (d["ref"], d.get("fallback_ref")) if ref]
        records = records_by_ref(db, run.tenant_id, self.provider, refs if self._records_before
                                 else [r for r in refs if r in self._recorded])
        adopted = self._eps_by_source([r for r in refs if r not in records]) \
            if self._sourced_before else {}
        categories = upsert_category_links(
            db, self.link, {d["event_ref"]: None for d in items if d.get("event_ref")})
        eps = eps_by_id(db, [r.participant_id for r in records.values()
                                    if r.participant_id] + list(adopted.values()))
        planned: list[_Planned] = []
        writes: list[ParticipantWrite] = []
        withdrawn: list[str] = []  # refs of records withdrawn before: they may come back
        for data in items:
            self._seen(staging.as_datetime(data.get("modified_at")))
            record, rekeyed = self._record_of(data, records)
            if record is not None and record.withdrawn_at is not None:
                withdrawn.append(data["ref"])
            ep = eps.get(record.participant_id) if record and record.participant_id else None
            if ep is None and record is None and data["ref"] in adopted:
                ep = eps.get(adopted[data["ref"]])  # entered by hand with this source
            # (the staged values are JSON already: only the category id is made text)
            category_id = categories.get(data.get("event_ref") or "")
            values = {**data["values"], "category_id": str(category_id) if category_id else None}
            digest = data.get("hash") or staging.content_hash(staging.payload(data))
            if ep is None:
                planned.append(_Planned(data, record, None, values, {}, digest))
                writes.append(ParticipantWrite(
                    participant_id=None, key=data["ref"], source=(self.provider, data["ref"]),
                    values=_for_write({k: v for k, v in values.items() if not is_empty(v)})))
                continue
            decision = decide(values, record.synced_values if record else {},
                              local_values(ep), ep.local_fields or [])
            if record is not None and not rekeyed and record.content_hash == digest \
                    and not decision.writes:
                run.unchanged += 1  # the provider sent what it sent last time: no write
                continue
            planned.append(_Planned(data, record, ep.id, values, dict(decision.conflicts),
                                    digest))
            if decision.writes or rekeyed:
                writes.append(ParticipantWrite(
                    participant_id=ep.id, key=data["ref"], values=_for_write(decision.writes),
                    # a re-keyed registration: the EP's source follows its new key
                    source=(self.provider, data["ref"]) if rekeyed else None))
        outcomes = {o.key: o for o in write_participants(
            db, self.ctx, event_id=self.event_id, rows=writes, origin=self.origin,
            mark_local=False)} if writes else {}
        created_before = run.created
        self._record(planned, outcomes)
        # A big first sync grows these tables faster than autovacuum notices: with the
        # statistics of an empty event, each batch's checks (sources, bibs, persons)
        # read the whole event through the wrong index, and the run slows as it grows.
        refresh_while_growing(db, GROWING_TABLES, rows_before=created_before,
                              rows_after=run.created)
        # Registrations active at the provider again after a withdrawal come back (only a
        # record withdrawn before can be: restore_participants picks those out again).
        restored = restore_participants(db, self.ctx, run=run, link=self.link,
                                        source_refs=withdrawn)
        run.updated += restored.restored
        run.problems += restored.problems

    def _record_of(self, data: dict[str, Any], records: dict[str, SyncedRecord]
                   ) -> tuple[SyncedRecord | None, bool]:
        """The registration's record, looked up by each of its keys; (record, re-keyed)."""
        ref, fallback = data["ref"], data.get("fallback_ref")
        record = records.get(ref)
        if record is not None or not fallback or fallback == ref:
            return record, False
        record = records.get(fallback)
        if record is None:
            return None, False
        # It gained its registration id: the same record, and so the same EP, re-keyed.
        del records[fallback]
        record.source_ref, record.ref_is_fallback = ref, bool(data["ref_is_fallback"])
        records[ref] = record
        return record, True

    def _eps_by_source(self, refs: list[str]) -> dict[str, uuid.UUID]:
        """EPs of this event entered by hand with this provider and id as their source and
        not synced yet: the sync takes them over instead of adding them twice."""
        if not refs:
            return {}
        return {source_id: ep_id for source_id, ep_id in self.db.execute(
            select(EventParticipant.source_id, EventParticipant.id).where(
                EventParticipant.tenant_id == self.run.tenant_id,
                EventParticipant.event_id == self.event_id,
                EventParticipant.source_provider == self.provider,
                any_of(EventParticipant.source_id, refs))) if source_id}

    def _record(self, planned: list[_Planned], outcomes: dict[str | None, WriteOutcome]
                ) -> None:
        """Synced records, changes, counts and conflicts of a written batch."""
        db, run, now = self.db, self.run, self.clock()
        changes: list[dict[str, Any]] = []
        new_records: list[dict[str, Any]] = []
        conflicted: list[tuple[_Planned, uuid.UUID]] = []
        for item in planned:
            outcome = outcomes.get(item.ref)
            record = item.record
            if outcome is not None and outcome.error:
                field = f"{outcome.error_field}: " if outcome.error_field else ""
                changes.append(change_row(
                    run, ChangeAction.PROBLEM, record_id=record.id if record else None,
                    participant_id=outcome.participant_id, source_ref=item.ref,
                    message=f"{item.ref}: {field}{outcome.error}"))
                run.problems += 1
                self._refused(staging.as_datetime(item.data.get("modified_at")))
                continue  # nothing recorded as synced: the next run tries it again
            participant_id = outcome.participant_id if outcome and outcome.participant_id \
                else item.participant_id
            modified_at = staging.as_datetime(item.data.get("modified_at"))
            if record is None:
                # A new record: a row of one COPY (no ORM object); no conflict can name it
                # (its EP is new or adopted as it is).
                record_id = uuid.uuid4()
                new_records.append({
                    "id": record_id, "tenant_id": run.tenant_id, "provider": self.provider,
                    "source_ref": item.ref,
                    "ref_is_fallback": bool(item.data["ref_is_fallback"]),
                    "connection_id": run.connection_id, "link_id": self.link.id,
                    "event_id": self.event_id, "participant_id": participant_id,
                    "provider_person_ref": item.data.get("person_ref"),
                    # (a field in conflict stays unsynced: none was synced before)
                    "synced_values": {k: (None if k in item.conflicts else v)
                                      for k, v in item.values.items()},
                    "content_hash": item.digest, "payload": item.data["raw"],
                    "payload_synced_at": now, "provider_modified_at": modified_at,
                    "last_synced_at": now,
                    "person_match": outcome.person_match if outcome else None})
            else:
                record_id = record.id
                if outcome is not None and outcome.created:
                    record.person_match = outcome.person_match  # its EP was gone: a new one
                synced = {k: v for k, v in item.values.items() if k not in item.conflicts}
                synced.update({k: (record.synced_values or {}).get(k) for k in item.conflicts})
                record.ref_is_fallback = bool(item.data["ref_is_fallback"])
                record.participant_id = participant_id
                record.connection_id, record.link_id = run.connection_id, self.link.id
                record.provider_person_ref = item.data.get("person_ref")
                record.synced_values = synced
                record.content_hash = item.digest
                record.payload = staging.payload(item.data)
                record.payload_synced_at = record.last_synced_at = now
                record.provider_modified_at = modified_at
            self._recorded.add(item.ref)
            shown = {k: [old, new] for k, (old, new) in (outcome.changes if outcome else {})
                     .items()}
            if outcome is not None and outcome.created:
                run.created += 1
                if participant_id is not None:
                    self.created[item.ref] = participant_id
                changes.append(change_row(run, ChangeAction.CREATED, record_id=record_id,
                                          participant_id=participant_id,
                                          source_ref=item.ref, changes=shown))
            elif outcome is not None and outcome.changes:
                run.updated += 1
                changes.append(change_row(run, ChangeAction.UPDATED, record_id=record_id,
                                          participant_id=participant_id,
                                          source_ref=item.ref, changes=shown))
            else:
                run.unchanged += 1
            if item.conflicts and participant_id is not None:
                item.participant_id = participant_id
                conflicted.append((item, record_id))
        copy_rows(db, SyncedRecord.__table__, new_records)
        db.flush()  # the records exist before conflicts and changes point at them
        for item, record_id in conflicted:
            assert item.participant_id is not None
            raised = record_conflicts(db, self.ctx, run_id=run.id, event_id=self.event_id,
                                      participant_id=item.participant_id,
                                      record_id=record_id, conflicts=item.conflicts)
            run.conflicts += raised
            if raised:
                changes.append(change_row(
                    run, ChangeAction.CONFLICT, record_id=record_id,
                    participant_id=item.participant_id, source_ref=item.ref,
                    changes={k: [ours, theirs] for k, (ours, theirs) in item.conflicts.items()},
                    message="changed at the provider and edited in racehub: racehub's value "
                            "stays until someone keeps it or takes the provider's"))
        write_changes(db, changes)

    # -- withdrawals and problems -----------------------------------------------------------
    def apply_withdrawals(self, rows: Sequence[StagedRow]) -> None:
        if not rows:
            return
        withdrawals = []
        for row in rows:
            data = row.data
            withdrawn_at = staging.as_datetime(data.get("withdrawn_at"))
            self._seen(withdrawn_at)
            withdrawals.append(ProviderWithdrawal(
                ref=data["ref"], event_ref=data.get("event_ref") or "",
                reason=data.get("reason"), withdrawn_at=withdrawn_at, raw=data.get("raw")))
        outcome = apply_withdrawals(self.db, self.ctx, run=self.run, link=self.link,
                                    withdrawals=withdrawals, created=self.created)
        self.run.withdrawn += outcome.withdrawn
        self.run.problems += outcome.problems

    def record_problems(self, rows: Sequence[StagedRow]) -> None:
        """Rows the adapter could not read (or a field it could not map), as changes naming
        the row's id and field; the run counted them while staging."""
        changes = []
        for row in rows:
            data = row.data
            where = data.get("ref") or (f"{data.get('what', 'row')} page {data.get('page')} "
                                        f"row {int(data.get('row') or 0) + 1}")
            field = f"{data['field']}: " if data.get("field") else ""
            changes.append(change_row(self.run, ChangeAction.PROBLEM,
                                             source_ref=data.get("ref"),
                                             message=f"{where}: {field}{data.get('message')}"))
        write_changes(self.db, changes)

    def leave_out(self, modified_at: datetime | None) -> None:
        """A staged row this run does not apply (a reviewer did not select it): the cursor
        stays before it, as before a refused one, so the next run reads it again."""
        self._refused(modified_at)

    def _refused(self, modified_at: datetime | None) -> None:
        if modified_at is None:
            self.refused_undated = True
        elif self.oldest_refused is None or modified_at < self.oldest_refused:
            self.oldest_refused = modified_at

    def finish(self) -> None:
        """Move the link's cursor to the newest change applied (never back), but not past
        a registration the write path refused: an incremental read would otherwise skip it
        until the provider changes it again."""
        link = self.link
        target = None if self.refused_undated else self.newest
        if target is not None and self.oldest_refused is not None:
            target = min(target, self.oldest_refused - timedelta(microseconds=1))
        if target is not None and (link.cursor is None or target > link.cursor):
            link.cursor = target
        self.run.cursor_after = link.cursor


# --- reads and writes of a batch ------------------------------------------------------------


def upsert_category_links(db: Session, link: EventLink,
                          refs: Mapping[str, str | None]) -> dict[str, uuid.UUID | None]:
    """The category of each provider race/distance ref; a ref seen the first time gets an
    unmapped CategoryLink (an operator maps it; until then its participants get none)."""
    if refs:
        db.execute(pg_insert(CategoryLink).values([
            {"id": uuid.uuid4(), "tenant_id": link.tenant_id, "link_id": link.id,
             "provider_ref": ref, "provider_name": name} for ref, name in refs.items()])
            .on_conflict_do_nothing(constraint="uq_category_links_link_id_provider_ref"))
    return {ref: category_id for ref, category_id in db.execute(
        select(CategoryLink.provider_ref, CategoryLink.category_id)
        .where(CategoryLink.link_id == link.id, CategoryLink.provider_ref.in_(list(refs))))}


def local_values(ep: EventParticipant) -> dict[str, Any]:
    """The EP's (and its person's) values now, as JSON, comparable with synced values."""
    person = ep.person
    return staging.json_object({
        "first_name": person.first_name, "last_name": person.last_name,
        "birth_date": person.birth_date,
        "gender": person.gender.value if person.gender else None,
        "email": person.email, "city": person.city, "region": person.region,
        "country": person.country, "bib": ep.bib, "team": ep.team,
        "registration_id": ep.registration_id, "category_id": ep.category_id})


def eps_by_id(db: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, EventParticipant]:
    if not ids:
        return {}
    return {ep.id: ep for ep in db.scalars(
        select(EventParticipant).where(EventParticipant.id.in_(ids))
        .options(selectinload(EventParticipant.person))
        .execution_options(populate_existing=True))}


def records_by_ref(db: Session, tenant_id: uuid.UUID, provider: str,
                   refs: list[str]) -> dict[str, SyncedRecord]:
    if not refs:
        return {}
    return {r.source_ref: r for r in db.scalars(select(SyncedRecord).where(
        SyncedRecord.tenant_id == tenant_id, SyncedRecord.provider == provider,
        any_of(SyncedRecord.source_ref, refs)))}


def change_row(run: SyncRun, action: ChangeAction, *, record_id: uuid.UUID | None = None,
               participant_id: uuid.UUID | None = None, source_ref: str | None = None,
               changes: Mapping[str, Any] | None = None, message: str | None = None,
               ) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "tenant_id": run.tenant_id, "run_id": run.id,
            "record_id": record_id, "participant_id": participant_id,
            "source_ref": source_ref, "action": action,
            "changes": staging.json_text(runs.shown_changes(dict(changes or {}))),
            "message": message[:staging.MESSAGE_MAX] if message else None}


def write_changes(db: Session, rows: list[dict[str, Any]]) -> None:
    """The rows of ``change_row`` as one COPY stream."""
    copy_rows(db, SyncChange.__table__, rows)
