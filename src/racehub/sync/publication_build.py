"""Building a results publication: the rows of one link, their validation, their diff.

The rows are the event's results whose participant (EP) this link's provider event feeds:
an EP mapped to a registration of this link (``SyncedRecord``), or one mapped to no
registration of the provider at all (a result racehub has that the platform cannot take:
a warning, the row is not sent). EPs mapped to another link of the provider belong to that
link's publication. The place sent is the category place when the EP has a category (a
platform event is one distance), else the overall place.

Validation says, per row and by bib and name, what is wrong:

- errors (the version cannot be approved): a DNF/DNS/DQ with a place or a time, a finisher
  without a place or without a time, one place given to two finishers with different times;
- warnings (approved only when named): a missing gender or age (the platform's gender and
  age-group placings need them), a gap in a category's places, a tie, a result whose EP is
  not mapped to a registration on the platform (not sent), rows published before that this
  version drops (RunSignUp offers no call to delete a result row).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.events.models import Category, Event, EventParticipant, Person
from racehub.sync.models import EventLink, PublicationRow, RowChange, SyncedRecord
from racehub.timing.models import Result, ResultStatus
from racehub.timing.results import format_ms

ERROR = "error"
WARNING = "warning"
# What a warning code means, for the approval form and the API (approving names them).
WARNING_CODES = {
    "missing_gender": "a result without the participant's gender",
    "missing_age": "a result without the participant's birth date (age)",
    "place_gap": "a category's places skip a number",
    "tied_place": "two finishers share a place with the same time",
    "not_on_platform": "a result whose participant is not a registration on the platform "
                       "(not sent)",
    "removed_rows": "rows published before that this version drops (they stay on the "
                    "platform: remove them there)",
}
ERROR_CODES = {
    "status_with_place": "a DNF, DNS or DQ with a place",
    "status_with_time": "a DNF, DNS or DQ with a time",
    "finished_without_place": "a finisher without a place",
    "finished_without_time": "a finisher without a time",
    "duplicate_place": "one place given to finishers with different times",
}
# The fields a diff compares (and a removed row keeps).
COMPARED = ("registration_ref", "bib", "status", "place", "chip_ms", "gun_ms", "category")


@dataclass
class Draft:
    """One row of a version being built."""

    participant_id: uuid.UUID | None
    registration_ref: str | None
    bib: str | None
    name: str
    category: str | None
    status: str
    place: int | None
    chip_ms: int | None
    gun_ms: int | None
    gender: str | None
    age: int | None
    change: RowChange = RowChange.ADDED
    previous: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ranking_ms(self) -> int | None:
        return self.chip_ms if self.chip_ms is not None else self.gun_ms

    @property
    def label(self) -> str:
        return (f"bib {self.bib} ({self.name})" if self.bib else self.name)

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COMPARED}


@dataclass
class Issue:
    code: str
    severity: str
    message: str
    seq: int | None = None  # the row (1-based, in the version's order)
    category: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "seq": self.seq, "category": self.category}


def _age(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def gather(db: Session, ctx: TenantContext, *, link: EventLink) -> list[Draft]:
    """The link's rows in publication order: by category name, finishers by place, then
    DNF, DQ, DNS, each by bib."""
    event = db.get(Event, link.event_id)
    assert event is not None and event.tenant_id == ctx.tenant_id
    records: dict[uuid.UUID, list[tuple[uuid.UUID | None, str]]] = defaultdict(list)
    for participant_id, link_id, source_ref in db.execute(
            select(SyncedRecord.participant_id, SyncedRecord.link_id, SyncedRecord.source_ref)
            .where(SyncedRecord.tenant_id == ctx.tenant_id,
                   SyncedRecord.event_id == event.id,
                   SyncedRecord.provider == link.provider,
                   SyncedRecord.participant_id.is_not(None))
            .order_by(SyncedRecord.created_at, SyncedRecord.id)):
        if participant_id is not None:
            records[participant_id].append((link_id, source_ref))
    ep = EventParticipant
    rows = db.execute(
        select(Result, ep.bib, ep.category_id, Person.first_name, Person.last_name,
               Person.gender, Person.birth_date, Category.name)
        .join(ep, ep.id == Result.event_participant_id)
        .join(Person, Person.id == ep.person_id)
        .outerjoin(Category, Category.id == ep.category_id)
        .where(Result.tenant_id == ctx.tenant_id, Result.event_id == event.id))
    drafts = []
    on = event.start_at.date()
    for result, bib, category_id, first, last, gender, birth, category in rows:
        mapped = records.get(result.event_participant_id, [])
        mine = [ref for link_id, ref in mapped if link_id == link.id]
        if not mine and any(link_id is not None for link_id, _ in mapped):
            continue  # another provider event of the event feeds this EP
        drafts.append(Draft(
            participant_id=result.event_participant_id,
            registration_ref=mine[0] if mine else None,
            bib=bib, name=" ".join(n for n in (first, last) if n), category=category,
            status=result.status.value,
            place=result.category_place if category_id is not None else result.overall_place,
            chip_ms=result.chip_ms, gun_ms=result.gun_ms,
            gender=gender.value if gender is not None else None, age=_age(birth, on)))
    order = {ResultStatus.FINISHED.value: 0, ResultStatus.DNF.value: 1,
             ResultStatus.DQ.value: 2, ResultStatus.DNS.value: 3}
    drafts.sort(key=lambda d: (d.category or "", order[d.status],
                               d.place if d.place is not None else 2**31,
                               d.bib or "", str(d.participant_id)))
    return drafts


def validate(drafts: list[Draft]) -> list[Issue]:
    """Every problem of every row (each also noted in the row's ``problems``)."""
    issues: list[Issue] = []

    def note(seq: int, draft: Draft, code: str, message: str) -> None:
        severity = ERROR if code in ERROR_CODES else WARNING
        draft.problems.append(code)
        issues.append(Issue(code, severity, f"{draft.label}: {message}", seq, draft.category))

    by_place: dict[tuple[str | None, int], list[tuple[int, Draft]]] = defaultdict(list)
    for seq, draft in enumerate(drafts, start=1):
        finished = draft.status == ResultStatus.FINISHED.value
        if not finished and draft.place is not None:
            note(seq, draft, "status_with_place", f"{draft.status} with place {draft.place}")
        if not finished and draft.ranking_ms is not None:
            note(seq, draft, "status_with_time",
                 f"{draft.status} with time {format_ms(draft.ranking_ms)}")
        if finished and draft.place is None:
            note(seq, draft, "finished_without_place", "finished without a place")
        if finished and draft.ranking_ms is None:
            note(seq, draft, "finished_without_time", "finished without a chip or gun time")
        if finished and draft.place is not None:
            by_place[(draft.category, draft.place)].append((seq, draft))
        if draft.gender is None:
            note(seq, draft, "missing_gender", "no gender")
        if draft.age is None:
            note(seq, draft, "missing_age", "no birth date (age)")
        if draft.registration_ref is None:
            note(seq, draft, "not_on_platform",
                 "not mapped to a registration on the platform: not sent")
    for (_category, place), holders in sorted(by_place.items(),
                                             key=lambda kv: (kv[0][0] or "", kv[0][1])):
        if len(holders) < 2:
            continue
        times = {d.ranking_ms for _, d in holders}
        code = "tied_place" if len(times) == 1 else "duplicate_place"
        for seq, draft in holders:
            note(seq, draft, code, f"place {place} is also given to "
                 f"{', '.join(d.label for s, d in holders if s != seq)}"
                 + (" (same time)" if code == "tied_place" else ""))
    places: dict[str | None, set[int]] = defaultdict(set)
    for category, place in by_place:
        places[category].add(place)
    for category, taken in sorted(places.items(), key=lambda kv: kv[0] or ""):
        missing = sorted(set(range(1, max(taken) + 1)) - taken)
        if missing:
            shown = ", ".join(str(p) for p in missing[:10]) + ("..." if len(missing) > 10 else "")
            issues.append(Issue("place_gap", WARNING,
                                f"{category or 'no category'}: place(s) {shown} given to "
                                "no finisher", None, category))
    return issues


def diff(drafts: list[Draft], base: list[PublicationRow]) -> list[Draft]:
    """Mark each draft added, changed (``previous``: the old value of each changed field)
    or unchanged against the base version's rows; the base's rows missing here come back
    as removed drafts (their old values), appended."""
    old = {row.participant_id: row for row in base if row.change != RowChange.REMOVED}
    for draft in drafts:
        before = old.pop(draft.participant_id, None)
        if before is None:
            draft.change = RowChange.ADDED
            continue
        changed = {name: getattr(before, name) for name in COMPARED
                   if getattr(before, name) != getattr(draft, name)}
        draft.change = RowChange.CHANGED if changed else RowChange.UNCHANGED
        draft.previous = changed
    removed = []
    for row in sorted(old.values(), key=lambda r: r.seq):
        removed.append(Draft(
            participant_id=row.participant_id, registration_ref=row.registration_ref,
            bib=row.bib, name=row.name, category=row.category, status=row.status,
            place=row.place, chip_ms=row.chip_ms, gun_ms=row.gun_ms, gender=row.gender,
            age=row.age, change=RowChange.REMOVED, problems=["removed_rows"],
            previous={name: getattr(row, name) for name in COMPARED}))
    return drafts + removed


def removal_issue(removed: int, base_version: int | None) -> Issue | None:
    if not removed:
        return None
    return Issue("removed_rows", WARNING,
                 f"{removed} row(s) published in version {base_version} are not in this one; "
                 "the platform offers no call to delete a result row: they stay there until "
                 "removed on the platform")
