"""The preview of a staged sync run: what applying it would do, registration by
registration, computed from the staged rows without writing anything.

The same reads and the same merge rule as the apply step (``apply.records_by_ref``,
``apply.eps_by_id``, ``apply.local_values``, ``merge.decide``), so the preview says what
the apply would do *now*; the apply decides again with the values of its own time (a
participant edited in between is merged as it is then). Per registration: its action
(created / updated / withdrawn / conflict / unchanged) and, per changed field, the
provider's value, the value last synced from it and racehub's value. Only the fields the
participants page shows carry values (``runs.HISTORY_FIELDS``); the other changed fields
(contact data, birth date) are named without their values, and raw payloads never appear.

A reviewer applies all of it or only some registrations (``choose``): the others are left
out of the apply (``kept``), and the link's cursor stays before the oldest of them, so the
next run reads them again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.core.pagination import SortKey, apply_keyset, check_limit, split_page
from racehub.core.query import any_of, scoped
from racehub.events.models import EventParticipant
from racehub.sync import staging
from racehub.sync.apply import eps_by_id, local_values, records_by_ref
from racehub.sync.merge import as_json, decide, is_empty
from racehub.sync.models import (
    CategoryLink,
    EventLink,
    PreviewAction,
    StagedKind,
    StagedRow,
    SyncPreviewItem,
    SyncRun,
)
from racehub.sync.runs import HISTORY_FIELDS

MESSAGE_MAX = 1000
NAME_MAX = 300
REFS_NAMED = 5  # unknown refs an error names before "and N more"


def _shown(changes: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """(the fields shown with their values, the names of the others)."""
    shown = {k: v for k, v in changes.items() if k in HISTORY_FIELDS}
    return shown, sorted(k for k in changes if k not in HISTORY_FIELDS)


def _diff(field: str, provider: Any, synced: dict[str, Any], local: dict[str, Any] | None
          ) -> dict[str, Any]:
    return {"provider": as_json(provider), "synced": as_json(synced.get(field)),
            "local": as_json(local.get(field)) if local is not None else None}


def _name(first: Any, last: Any) -> str | None:
    name = " ".join(str(v) for v in (first, last) if not is_empty(v))
    return name[:NAME_MAX] or None


class _Builder:
    """Computes a run's preview batch by batch and inserts its items."""

    def __init__(self, db: Session, run: SyncRun, link: EventLink) -> None:
        assert link.event_id is not None
        self.db, self.run, self.link = db, run, link
        self.event_id: uuid.UUID = link.event_id
        self.seq = 0

    def _item(self, kind: StagedKind, ref: str, action: PreviewAction, *,
              participant_id: uuid.UUID | None = None, name: str | None = None,
              changes: dict[str, dict[str, Any]] | None = None,
              message: str | None = None) -> dict[str, Any]:
        self.seq += 1
        fields, others = _shown(changes or {})
        return {"tenant_id": self.run.tenant_id, "run_id": self.run.id, "seq": self.seq,
                "source_ref": ref, "kind": kind, "action": action,
                "participant_id": participant_id, "name": name, "fields": fields,
                "other_fields": others, "selected": True,
                "message": message[:MESSAGE_MAX] if message else None}

    def _eps_by_source(self, refs: list[str]) -> dict[str, uuid.UUID]:
        """EPs entered by hand with this provider and id as their source (the apply takes
        them over): as ``Applier._eps_by_source`` reads them."""
        if not refs:
            return {}
        return {source_id: ep_id for source_id, ep_id in self.db.execute(
            select(EventParticipant.source_id, EventParticipant.id).where(
                EventParticipant.tenant_id == self.run.tenant_id,
                EventParticipant.event_id == self.event_id,
                EventParticipant.source_provider == self.link.provider,
                any_of(EventParticipant.source_id, refs))) if source_id}

    def _categories(self, refs: Collection[str]) -> dict[str, uuid.UUID | None]:
        """The category each provider race maps to; a race not seen yet maps to none (the
        apply adds it unmapped)."""
        if not refs:
            return {}
        return {ref: category_id for ref, category_id in self.db.execute(
            select(CategoryLink.provider_ref, CategoryLink.category_id).where(
                CategoryLink.link_id == self.link.id,
                any_of(CategoryLink.provider_ref, list(refs))))}

    def participants(self, rows: Sequence[StagedRow]) -> list[dict[str, Any]]:
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:  # read twice in a batch: counted once, as read last (as applied)
            latest.pop(row.data["ref"], None)
            latest[row.data["ref"]] = row.data
        items = list(latest.values())
        refs = [ref for d in items for ref in (d["ref"], d.get("fallback_ref")) if ref]
        records = records_by_ref(self.db, self.run.tenant_id, self.link.provider, refs)
        adopted = self._eps_by_source([r for r in refs if r not in records])
        categories = self._categories({d["event_ref"] for d in items if d.get("event_ref")})
        eps = eps_by_id(self.db, [r.participant_id for r in records.values()
                                  if r.participant_id] + list(adopted.values()))
        out = []
        for data in items:
            ref, fallback = data["ref"], data.get("fallback_ref")
            record, rekeyed = records.get(ref), False
            if record is None and fallback and fallback != ref and fallback in records:
                record, rekeyed = records[fallback], True  # it gained its registration id
            ep = eps.get(record.participant_id) if record and record.participant_id else None
            if ep is None and record is None and ref in adopted:
                ep = eps.get(adopted[ref])
            values = staging.jsonable({**data["values"], "category_id": categories.get(
                data.get("event_ref") or "")})
            name = _name(values.get("first_name"), values.get("last_name"))
            if ep is None:
                out.append(self._item(StagedKind.PARTICIPANT, ref, PreviewAction.CREATED,
                                      name=name, changes={
                    k: _diff(k, v, {}, None) for k, v in values.items() if not is_empty(v)}))
                continue
            synced = (record.synced_values if record else None) or {}
            local = local_values(ep)
            decision = decide(values, synced, local, ep.local_fields or [])
            changes = {k: _diff(k, v, synced, local) for k, v in decision.writes.items()}
            changes.update({k: _diff(k, theirs, synced, local)
                            for k, (_, theirs) in decision.conflicts.items()})
            same = (record is not None and not rekeyed and not decision.writes
                    and record.content_hash == staging.content_hash(data["raw"]))
            action = (PreviewAction.UNCHANGED if same or not (changes or rekeyed)
                      else PreviewAction.CONFLICT if decision.conflicts
                      else PreviewAction.UPDATED)
            message = None
            if same:
                changes = {}
            elif rekeyed:
                message = f"gained its registration id (was {fallback}): the same participant"
            if record is not None and record.withdrawn_at is not None \
                    and record.event_id == self.event_id:
                # Active at the provider again: the apply restores it.
                changes["status"] = {"provider": "active", "synced": "withdrawn",
                                     "local": as_json(ep.status)}
                message = "active at the provider again: restored"
                if action == PreviewAction.UNCHANGED:
                    action = PreviewAction.UPDATED
            out.append(self._item(StagedKind.PARTICIPANT, ref, action, participant_id=ep.id,
                                  name=_name(ep.person.first_name, ep.person.last_name) or name,
                                  changes=changes, message=message))
        return out

    def withdrawals(self, rows: Sequence[StagedRow]) -> list[dict[str, Any]]:
        latest = {row.data["ref"]: row.data for row in rows}
        records = records_by_ref(self.db, self.run.tenant_id, self.link.provider,
                                 list(latest))
        eps = eps_by_id(self.db, [r.participant_id for r in records.values()
                                  if r.participant_id])
        out = []
        for ref, data in latest.items():
            record = records.get(ref)
            reason = data.get("reason") or "withdrawn at the provider"
            if record is None or record.withdrawn_at is not None \
                    or record.event_id != self.event_id:
                out.append(self._item(StagedKind.WITHDRAWAL, ref, PreviewAction.UNCHANGED,
                                      message=f"{reason}: never synced into this event, or "
                                              "withdrawn already (left alone)"))
                continue
            ep = eps.get(record.participant_id) if record.participant_id else None
            changes = {"status": {"provider": "withdrawn", "synced": None,
                                  "local": as_json(ep.status) if ep else None}}
            out.append(self._item(
                StagedKind.WITHDRAWAL, ref, PreviewAction.WITHDRAWN,
                participant_id=ep.id if ep else None,
                name=_name(ep.person.first_name, ep.person.last_name) if ep else None,
                changes=changes, message=reason))
        return out


def build_preview(db: Session, run: SyncRun, link: EventLink) -> dict[str, int]:
    """Compute and store the run's preview (replacing one computed before); its counts."""
    db.execute(delete(SyncPreviewItem).where(SyncPreviewItem.run_id == run.id))
    builder = _Builder(db, run, link)
    steps: list[tuple[StagedKind, Callable[[Sequence[StagedRow]], list[dict[str, Any]]]]] = [
        (StagedKind.PARTICIPANT, builder.participants),
        (StagedKind.WITHDRAWAL, builder.withdrawals)]
    for kind, build in steps:
        for rows in staging.staged_rows(db, run.id, kind):
            items = build(rows)
            if items:
                db.execute(insert(SyncPreviewItem), items)
    return counts(db, run.id)


# --- reading ------------------------------------------------------------------------------


def counts(db: Session, run_id: uuid.UUID) -> dict[str, int]:
    """Items per action (every action named, 0 when none)."""
    found = dict(db.execute(select(SyncPreviewItem.action, func.count())
                            .where(SyncPreviewItem.run_id == run_id)
                            .group_by(SyncPreviewItem.action)).all())
    return {action.value: int(found.get(action, 0)) for action in PreviewAction}


def list_items(db: Session, ctx: TenantContext, *, run_id: uuid.UUID,
               action: PreviewAction | None = None, cursor: str | None = None,
               limit: int = 100) -> tuple[list[SyncPreviewItem], str | None]:
    """A page of the run's preview in the order read (``action`` filters)."""
    check_limit(limit)
    stmt = scoped(ctx, SyncPreviewItem).where(SyncPreviewItem.run_id == run_id)
    if action is not None:
        stmt = stmt.where(SyncPreviewItem.action == action)
    rows = db.scalars(apply_keyset(stmt, SortKey(columns=[SyncPreviewItem.seq]), cursor,
                                   limit)).all()
    return split_page(rows, limit, lambda item: [item.seq])


# --- choosing what is applied --------------------------------------------------------------


def choose(db: Session, run: SyncRun, *, source_refs: Collection[str] | None) -> int:
    """Mark which registrations the apply takes: all (``None``) or those of
    ``source_refs`` (422 naming the refs the preview does not hold). Registrations the
    preview shows unchanged need no decision and are always taken. Returns how many
    registrations with a change are taken."""
    items = SyncPreviewItem.__table__
    if source_refs is None:
        db.execute(update(SyncPreviewItem).where(SyncPreviewItem.run_id == run.id)
                   .values(selected=True).execution_options(synchronize_session=False))
    else:
        wanted = sorted(set(source_refs))
        known = set(db.scalars(_refs_in(run.id, wanted)))
        unknown = [ref for ref in wanted if ref not in known]
        if unknown:
            more = f" and {len(unknown) - REFS_NAMED} more" if len(unknown) > REFS_NAMED else ""
            raise Invalid("sourceRefs: not in this run's preview: "
                          + ", ".join(unknown[:REFS_NAMED]) + more, field="sourceRefs")
        db.execute(update(SyncPreviewItem).where(SyncPreviewItem.run_id == run.id).values(
            selected=any_of(items.c.source_ref, wanted)
            | (items.c.action == PreviewAction.UNCHANGED))
            .execution_options(synchronize_session=False))
    return db.scalar(_chosen(run.id)) or 0


def _refs_in(run_id: uuid.UUID, refs: list[str]) -> Any:
    return (select(SyncPreviewItem.source_ref).distinct()
            .where(SyncPreviewItem.run_id == run_id, any_of(SyncPreviewItem.source_ref, refs)))


def _chosen(run_id: uuid.UUID) -> Any:
    return (select(func.count(func.distinct(SyncPreviewItem.source_ref)))
            .where(SyncPreviewItem.run_id == run_id, SyncPreviewItem.selected.is_(True),
                   SyncPreviewItem.action != PreviewAction.UNCHANGED))


class _HasData(Protocol):
    @property
    def data(self) -> dict[str, Any]: ...


_Row = TypeVar("_Row", bound=_HasData)


def left_out(db: Session, run_id: uuid.UUID) -> set[str]:
    """The registrations a reviewer did not select: not applied by this run."""
    return set(db.scalars(select(SyncPreviewItem.source_ref).where(
        SyncPreviewItem.run_id == run_id, SyncPreviewItem.selected.is_(False))))


def kept(rows: Iterable[_Row], left: Collection[str],
         leave_out: Callable[[datetime | None], None]) -> list[_Row]:
    """``rows`` without those of the ``left`` registrations; ``leave_out`` gets the
    provider time of each row dropped (the cursor stays before it)."""
    rows = list(rows)
    if not left:
        return rows
    out = []
    for row in rows:
        if row.data.get("ref") in left:
            leave_out(staging.as_datetime(row.data.get("modified_at")
                                          or row.data.get("withdrawn_at")))
        else:
            out.append(row)
    return out


def drop(db: Session, run_id: uuid.UUID) -> None:
    """The preview is gone with the staged rows (applied or discarded)."""
    db.execute(delete(SyncPreviewItem).where(SyncPreviewItem.run_id == run_id))
