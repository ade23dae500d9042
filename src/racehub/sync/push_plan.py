"""What a start list push would send to one linked timing event: the plan.

The event's active EPs, each as the provider would receive it under the external id of the
event's timing identifier mode (exactly the id the E11 export writes: EPID -> the EP's id,
PERSON_ID -> its person's id, REGISTRATION_ID -> its registration id; never the bib),
compared with what was last pushed to that link (``TimingPushState``):

- new: an id the timing system does not hold (never pushed, or withdrawn there since);
- changed: the row the provider would receive differs from the one last sent (its hash);
- withdrawn: an id the timing system holds whose EP is no longer active, is gone, or now
  has another id (the mode changed, a registration id was corrected);
- problem: an EP that cannot be sent, with why (no registration id in REGISTRATION_ID mode,
  an id two EPs share, a row the provider's mapping refuses). Never skipped silently.

Reading only: the plan is what the preview shows and what a push run sends.
"""

from __future__ import annotations

import enum
import hashlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.exceptions import Invalid
from racehub.events.models import (
    BIB_LENGTH_KEY,
    BIB_MISSING_KEY,
    BIB_TEXT_KEY,
    PERSON_FIRST_NAME_KEY,
    PERSON_LAST_NAME_KEY,
    Category,
    Event,
    EventParticipant,
    Gender,
    ParticipantStatus,
    Person,
    TimingIdentifier,
)
from racehub.providers import catalog
from racehub.providers.base import ProviderAdapter, ProviderParticipant
from racehub.providers.errors import NotSupported
from racehub.providers.values import MappingError
from racehub.sync.models import EventLink, TimingPushState

EXTERNAL_ID_MAX = 200  # timing_push_states.external_id


class PushAction(enum.StrEnum):
    NEW = "new"
    CHANGED = "changed"
    WITHDRAWN = "withdrawn"
    PROBLEM = "problem"


# The EP's fields as a push sends them (and as the preview compares them), by the names
# the participants page and the run history use.
VALUE_FIELDS = ("first_name", "last_name", "bib", "gender", "birth_date", "team", "category",
                "email", "city", "region", "country")


@dataclass(frozen=True)
class PlannedRow:
    action: PushAction
    external_id: str | None
    participant_id: uuid.UUID | None
    name: str
    bib: str | None
    values: dict[str, Any] = field(default_factory=dict)  # what is sent, by VALUE_FIELDS
    previous: dict[str, Any] | None = None  # what was last sent (changed, withdrawn)
    content_hash: str | None = None  # of the provider's row (new, changed)
    participant: ProviderParticipant | None = None  # what is sent (new, changed)
    message: str | None = None  # a problem's reason
    field: str | None = None  # the field at fault (a problem)

    @property
    def changes(self) -> dict[str, list[Any]]:
        """{field: [last sent, now]} of a changed row; {} otherwise."""
        if self.previous is None or self.action is not PushAction.CHANGED:
            return {}
        return {k: [self.previous.get(k), self.values.get(k)] for k in VALUE_FIELDS
                if self.previous.get(k) != self.values.get(k)}


@dataclass
class PushPlan:
    link: EventLink
    event: Event
    mode: TimingIdentifier
    rows: list[PlannedRow]
    unchanged: int

    def of(self, action: PushAction) -> list[PlannedRow]:
        return [r for r in self.rows if r.action is action]

    @property
    def counts(self) -> dict[str, int]:
        found = Counter(r.action.value for r in self.rows)
        return {**{a.value: found.get(a.value, 0) for a in PushAction},
                "unchanged": self.unchanged}

    @property
    def sends_anything(self) -> bool:
        return any(r.action is not PushAction.PROBLEM for r in self.rows)

    @property
    def fingerprint(self) -> str:
        """Names what the plan sends: the same rows with the same content give the same
        value. A push confirmed from a preview carries it, and is refused if it changed."""
        parts = sorted(f"{r.action.value}|{r.external_id or ''}|{r.content_hash or ''}|"
                       f"{r.participant_id or ''}" for r in self.rows)
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def adapter_class(provider: str) -> type[ProviderAdapter]:
    spec = catalog.get_spec(provider.upper())
    if spec is None:
        raise NotSupported(f"unknown provider {provider!r}")
    return spec.adapter_class()


def content_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str,
                                     separators=(",", ":")).encode()).hexdigest()


GENDERS = {Gender.MALE: "M", Gender.FEMALE: "F", Gender.NON_BINARY: "X"}  # U: not said


def _external_id_column(mode: TimingIdentifier) -> Any:
    """As timing/service.export_query writes ExternalReferenceID for the mode."""
    ep = EventParticipant
    return {TimingIdentifier.EPID: cast(ep.id, String),
            TimingIdentifier.PERSON_ID: cast(ep.person_id, String),
            TimingIdentifier.REGISTRATION_ID: ep.registration_id}[mode]


def _participants(db: Session, ctx: TenantContext, event: Event,
                  mode: TimingIdentifier) -> list[Any]:
    ep, p = EventParticipant, Person
    return list(db.execute(
        select(ep.id, _external_id_column(mode).label("external_id"), ep.bib, ep.team,
               p.first_name, p.last_name, p.gender, p.birth_date, p.email, p.city, p.region,
               p.country, Category.name.label("category"))
        .select_from(ep).join(p, p.id == ep.person_id)
        .outerjoin(Category, Category.id == ep.category_id)
        .where(ep.tenant_id == ctx.tenant_id, ep.event_id == event.id,
               ep.status == ParticipantStatus.ACTIVE)
        .order_by(BIB_MISSING_KEY, BIB_LENGTH_KEY, BIB_TEXT_KEY, PERSON_LAST_NAME_KEY,
                  PERSON_FIRST_NAME_KEY, ep.id)))


def _values(row: Any) -> dict[str, Any]:
    return {"first_name": row.first_name, "last_name": row.last_name, "bib": row.bib,
            "gender": GENDERS.get(row.gender) if row.gender else None,
            "birth_date": row.birth_date.isoformat() if row.birth_date else None,
            "team": row.team, "category": row.category, "email": row.email,
            "city": row.city, "region": row.region, "country": row.country}


def provider_participant(values: dict[str, Any], *, external_id: str,
                         event_ref: str) -> ProviderParticipant:
    birth = values.get("birth_date")
    return ProviderParticipant(
        ref=external_id, event_ref=event_ref, first_name=values.get("first_name") or "",
        last_name=values.get("last_name") or "", bib=values.get("bib"),
        gender=values.get("gender"), birth_date=date.fromisoformat(birth) if birth else None,
        team=values.get("team"), email=values.get("email"), city=values.get("city"),
        region=values.get("region"), country=values.get("country"),
        extra={"category": values["category"]} if values.get("category") else {})


def _name(values: dict[str, Any]) -> str:
    return " ".join(n for n in (values.get("first_name"), values.get("last_name")) if n)


def states_of(db: Session, link: EventLink) -> dict[str, TimingPushState]:
    return {s.external_id: s for s in db.scalars(
        select(TimingPushState).where(TimingPushState.link_id == link.id,
                                      TimingPushState.tenant_id == link.tenant_id))}


def build_plan(db: Session, ctx: TenantContext, *, link: EventLink, event: Event,
               mode: TimingIdentifier | None = None) -> PushPlan:
    """The plan of a push of ``event``'s start list to ``link`` (``mode``: the event's)."""
    mode = TimingIdentifier(mode or event.preferred_timing_identifier)
    cls = adapter_class(link.provider)
    rows: list[PlannedRow] = []
    wanted: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for ep in _participants(db, ctx, event, mode):
        values = _values(ep)
        external_id = (ep.external_id or "").strip()
        if not external_id:
            rows.append(PlannedRow(
                PushAction.PROBLEM, None, ep.id, _name(values), ep.bib, values,
                field="registrationId",
                message="no registration id: in the event's REGISTRATION_ID mode it has no "
                        "external id, so it is not sent. Assign its registration id, or "
                        "change the event's timing identifier"))
            continue
        if len(external_id) > EXTERNAL_ID_MAX:
            rows.append(PlannedRow(
                PushAction.PROBLEM, external_id[:EXTERNAL_ID_MAX], ep.id, _name(values),
                ep.bib, values, field="registrationId",
                message=f"the external id is longer than {EXTERNAL_ID_MAX} characters"))
            continue
        wanted.setdefault(external_id, []).append((ep, values))
    states = states_of(db, link)
    unchanged = 0
    for external_id, eps in wanted.items():
        if len(eps) > 1:
            # Sending one of them would be a guess: none goes, each says why.
            for ep, values in eps:
                others = ", ".join(_name(v) + (f" (#{o.bib})" if o.bib else "")
                                   for o, v in eps if o.id != ep.id)
                rows.append(PlannedRow(
                    PushAction.PROBLEM, external_id, ep.id, _name(values), ep.bib, values,
                    field=_mode_field(mode),
                    message=f"external id {external_id} is shared with {others}: none of "
                            "them is sent until the ids differ"))
            continue
        ep, values = eps[0]
        participant = provider_participant(values, external_id=external_id,
                                           event_ref=link.provider_event_ref)
        try:
            wire = cls.push_row(participant)
        except MappingError as exc:
            rows.append(PlannedRow(PushAction.PROBLEM, external_id, ep.id, _name(values),
                                   ep.bib, values, field=exc.field, message=exc.message))
            continue
        except ValueError as exc:  # the link's ref is not the provider's shape
            raise Invalid(f"providerEventRef: {exc}", field="providerEventRef") from None
        digest = content_hash(wire)
        state = states.get(external_id)
        if state is None or state.withdrawn_at is not None:
            action = PushAction.NEW
        elif state.content_hash != digest:
            action = PushAction.CHANGED
        else:
            unchanged += 1
            continue
        rows.append(PlannedRow(action, external_id, ep.id, _name(values), ep.bib, values,
                               previous=dict(state.pushed_values) if state else None,
                               content_hash=digest, participant=participant))
    for external_id, state in states.items():
        if state.withdrawn_at is None and external_id not in wanted:
            previous = dict(state.pushed_values or {})
            rows.append(PlannedRow(PushAction.WITHDRAWN, external_id, state.participant_id,
                                   _name(previous), previous.get("bib"), previous,
                                   previous=previous))
    return PushPlan(link=link, event=event, mode=mode, rows=rows, unchanged=unchanged)


def _mode_field(mode: TimingIdentifier) -> str:
    return {TimingIdentifier.EPID: "id", TimingIdentifier.PERSON_ID: "personId",
            TimingIdentifier.REGISTRATION_ID: "registrationId"}[mode]


def anything_pushed(db: Session, ctx: TenantContext, *, event_id: uuid.UUID) -> bool:
    """Whether a timing system holds ids pushed from this event (not withdrawn since)."""
    return db.scalar(
        select(TimingPushState.id).join(EventLink, EventLink.id == TimingPushState.link_id)
        .where(TimingPushState.tenant_id == ctx.tenant_id, EventLink.event_id == event_id,
               TimingPushState.withdrawn_at.is_(None)).limit(1)) is not None
