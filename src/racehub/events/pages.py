"""HTML pages for events, categories and participants."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.deps import DB, require
from racehub.core.exceptions import DomainError
from racehub.core.rbac import Perm
from racehub.events import bulk, service
from racehub.events.exceptions import EventInUse
from racehub.events.models import (
    Category,
    Event,
    EventParticipant,
    EventStatus,
    Gender,
    ParticipantStatus,
    TimingIdentifier,
)
from racehub.events.schemas import (
    BulkEditRequest,
    CategoryCreate,
    CategoryUpdate,
    EventCreate,
    EventUpdate,
    ParticipantCreate,
    ParticipantUpdate,
)
from racehub.events.service import ParticipantFilter, ParticipantSort
from racehub.providers.catalog import PROVIDERS
from racehub.sync import candidates as sync_candidates
from racehub.sync import links as sync_links
from racehub.web.pages import (
    PostedForm,
    form_error,
    parse_form,
    query_uuid,
    render,
    validate_model,
)
from racehub.web.templating import is_htmx

router = APIRouter(tags=["pages"], include_in_schema=False)

ReadEvents = Annotated[TenantContext, Depends(require(Perm.EVENTS_EVENT_READ))]
WriteEvents = Annotated[TenantContext, Depends(require(Perm.EVENTS_EVENT_WRITE))]
WriteParticipants = Annotated[TenantContext, Depends(require(Perm.EVENTS_PARTICIPANT_WRITE))]

PAGE_SIZE = 50
TIMEZONES = ["UTC", "America/New_York", "America/Chicago", "America/Denver",
             "America/Los_Angeles", "America/Toronto", "Europe/London", "Europe/Paris",
             "Europe/Berlin", "Europe/Madrid", "Australia/Sydney"]


def _choices() -> dict[str, Any]:
    return {"statuses": list(EventStatus), "identifiers": list(TimingIdentifier),
            "timezones": TIMEZONES, "genders": list(Gender),
            "participant_statuses": list(ParticipantStatus),
            "providers": list(PROVIDERS.values())}


@router.get("/events")
def events_page(
    request: Request, db: DB, ctx: ReadEvents, q: str | None = None, cursor: str | None = None,
    archived: str | None = None,
) -> Response:
    show_archived = archived == "1"
    events, next_cursor = service.list_events(db, ctx, q=q, archived=show_archived,
                                              cursor=cursor, limit=PAGE_SIZE)
    counts = service.participant_counts(db, ctx, event_ids=[e.id for e in events])
    next_url = None
    if next_cursor:
        next_url = "/events?" + urlencode({k: v for k, v in {
            "q": q or "", "archived": "1" if show_archived else "", "cursor": next_cursor,
        }.items() if v})
    return render(request, db, ctx, "events/list.html", events=events, counts=counts, q=q or "",
                  archived=show_archived, next_url=next_url,
                  can_write=ctx.can(Perm.EVENTS_EVENT_WRITE), **_timing_export_context(ctx))


def _timing_export_context(ctx: TenantContext) -> dict[str, Any]:
    """What the E11 export button needs: may the caller export, and their role (tooltip)."""
    return {"can_export_timing": ctx.can(Perm.TIMING_EXPORT),
            "role": ctx.role.value if ctx.role else "none"}


@router.get("/events/new")
def new_event_page(request: Request, db: DB, ctx: WriteEvents) -> Response:
    return render(request, db, ctx, "events/form.html", event=None, values={}, **_choices())


@router.post("/events/new")
def create_event(request: Request, db: DB, ctx: WriteEvents, form: PostedForm) -> Response:
    values = dict(form)
    try:
        data = parse_form(EventCreate, values)
        event = service.create_event(db, ctx, data=data)
    except DomainError as exc:
        db.rollback()
        return render(request, db, ctx, "events/form.html", status_code=exc.status_code,
                      event=None, values=values, **form_error(exc, EventCreate), **_choices())
    db.commit()
    return RedirectResponse(f"/events/{event.id}?flash=Event+created", status_code=303)


@router.get("/events/{event_id}/edit")
def edit_event_page(event_id: uuid.UUID, request: Request, db: DB, ctx: WriteEvents) -> Response:
    event = service.get_event_or_raise(db, ctx, event_id=event_id)
    return render(request, db, ctx, "events/form.html", event=event, values=_event_values(event),
                  **_choices())


def _event_values(event: Event) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    local = event.start_at.astimezone(ZoneInfo(event.timezone))
    return {"name": event.name, "start_at": local.strftime("%Y-%m-%dT%H:%M"),
            "timezone": event.timezone, "location": event.location,
            "status": event.status.value,
            "preferred_timing_identifier": event.preferred_timing_identifier.value}


@router.post("/events/{event_id}/edit")
def update_event(
    event_id: uuid.UUID, request: Request, db: DB, ctx: WriteEvents, form: PostedForm
) -> Response:
    event = service.get_event_or_raise(db, ctx, event_id=event_id)
    values: dict[str, Any] = dict(form)
    values["acknowledge_override"] = values.get("acknowledge_override") == "on"
    values["confirm_full_repush"] = values.get("confirm_full_repush") == "on"
    try:
        data = parse_form(EventUpdate, values)
        if data.start_at is not None and data.start_at.tzinfo is None:
            from zoneinfo import ZoneInfo

            data.start_at = data.start_at.replace(
                tzinfo=ZoneInfo(data.timezone or event.timezone))
        service.update_event(db, ctx, event_id=event_id, data=data)
    except DomainError as exc:
        db.rollback()
        event = service.get_event_or_raise(db, ctx, event_id=event_id)
        return render(request, db, ctx, "events/form.html", status_code=exc.status_code,
                      event=event, values=values, **form_error(exc, EventUpdate),
                      **_choices())
    db.commit()
    return RedirectResponse(f"/events/{event_id}?flash=Event+saved", status_code=303)


@router.post("/events/{event_id}/archive")
def archive_event(event_id: uuid.UUID, db: DB, ctx: WriteEvents) -> Response:
    service.set_event_archived(db, ctx, event_id=event_id, archived=True)
    db.commit()
    return RedirectResponse(f"/events/{event_id}?flash=Event+archived", status_code=303)


@router.post("/events/{event_id}/unarchive")
def unarchive_event(event_id: uuid.UUID, db: DB, ctx: WriteEvents) -> Response:
    service.set_event_archived(db, ctx, event_id=event_id, archived=False)
    db.commit()
    return RedirectResponse(f"/events/{event_id}?flash=Event+brought+back", status_code=303)


@router.post("/events/{event_id}/delete")
def delete_event(event_id: uuid.UUID, request: Request, db: DB, ctx: WriteEvents) -> Response:
    event = service.get_event_or_raise(db, ctx, event_id=event_id)
    name = event.name
    try:
        service.delete_event(db, ctx, event_id=event_id)
    except EventInUse as exc:
        # The event page again, saying why (its address stays the event's).
        db.rollback()
        event = service.get_event_or_raise(db, ctx, event_id=event_id)
        return _detail_page(request, db, ctx, event, _participants_context(db, ctx, event_id, {}),
                            status_code=exc.status_code, event_error=exc.detail)
    db.commit()
    return RedirectResponse("/events?" + urlencode({"flash": f"{name} deleted"}),
                            status_code=303)


def _participants_context(
    db: Session, ctx: TenantContext, event_id: uuid.UUID, params: dict[str, str]
) -> dict[str, Any]:
    try:
        sort = ParticipantSort(params.get("sort") or ParticipantSort.LAST_NAME)
    except ValueError:
        sort = ParticipantSort.LAST_NAME
    descending = params.get("desc") == "1"
    status = params.get("status") or None
    category = params.get("category") or None
    flt = ParticipantFilter(
        q=params.get("q") or None,
        status=ParticipantStatus(status) if status in ParticipantStatus._value2member_map_
        else None,
        category_id=uuid.UUID(category) if category and _is_uuid(category) else None,
    )
    rows, next_cursor, total = service.list_participants(
        db, ctx, event_id=event_id, flt=flt, sort=sort, descending=descending,
        cursor=params.get("cursor") or None, limit=PAGE_SIZE,
    )
    base = {k: v for k, v in {"q": flt.q, "status": status, "category": category,
                              "sort": sort.value, "desc": "1" if descending else None}.items()
            if v}

    def url(**overrides: str | None) -> str:
        merged = {**base, **overrides}
        return f"/events/{event_id}?" + urlencode({k: v for k, v in merged.items() if v})

    def sort_url(column: str) -> str:
        flip = column == sort.value and not descending
        return url(sort=column, desc="1" if flip else None, cursor=None)

    return {
        "participants": rows, "total": total, "filters": base, "sort": sort.value,
        "descending": descending, "sort_url": sort_url,
        "next_url": url(cursor=next_cursor) if next_cursor else None,
        "first_url": url(cursor=None) if params.get("cursor") else None,
    }


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@router.get("/events/{event_id}")
def event_page(event_id: uuid.UUID, request: Request, db: DB, ctx: ReadEvents) -> Response:
    event = service.get_event_or_raise(db, ctx, event_id=event_id)
    table = _participants_context(db, ctx, event_id, dict(request.query_params))
    if is_htmx(request) and request.headers.get("hx-target") == "participants":
        return _participants_partial(request, db, ctx, event, table)
    return _detail_page(request, db, ctx, event, table)


def _participants_partial(request: Request, db: Session, ctx: TenantContext, event: Event,
                          table: dict[str, Any], status_code: int = 200,
                          **extra: Any) -> Response:
    """The participants table alone (htmx): its bulk bar needs the event's categories."""
    can_write = ctx.can(Perm.EVENTS_PARTICIPANT_WRITE)
    categories = service.list_categories(db, ctx, event_id=event.id) if can_write else []
    return render(request, db, ctx, "events/_participants.html", status_code=status_code,
                  event=event, categories=categories, can_write_participants=can_write,
                  **table, **extra)


# The table's filter and sort as the bulk form sends them back (as the list's query has them).
TABLE_PARAMS = ("q", "status", "category", "sort", "desc")
REFUSALS_IN_FLASH = 3


@router.post("/events/{event_id}/participants/bulk")
def bulk_edit_participants(
    event_id: uuid.UUID, request: Request, db: DB, ctx: WriteParticipants, form: PostedForm
) -> Response:
    """The bulk bar of the participants table: the ticked rows (``ids``), or with
    ``scope=filter`` every row matching the table's filter (sent back as the table shows
    it, evaluated by the service). Done: the table again with the summary (htmx), else a
    redirect to it saying so; queued as a job: its page."""
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    params = {k: values[k] for k in TABLE_PARAMS if values.get(k)}
    everything = values.get("scope") == "filter"
    try:
        data = validate_model(BulkEditRequest, {
            **({"action": values["action"]} if values.get("action") else {}),
            "ids": None if everything else [v for v in form.getlist("ids") if isinstance(v, str)],
            "filter": {"q": params.get("q"), "status": params.get("status"),
                       "category_id": params.get("category")} if everything else None,
            "category_id": values.get("category_id") or None,
            "first_bib": values.get("first_bib") or None,
            "reason": values.get("reason") or None,
        })
        outcome = bulk.start_bulk_edit(db, ctx, event_id=event_id, data=data,
                                       inline_max=request.app.state.settings.bulk_edit_inline_max)
    except DomainError as exc:
        db.rollback()
        event = service.get_event_or_raise(db, ctx, event_id=event_id)
        table = _participants_context(db, ctx, event_id, params)
        if is_htmx(request):
            return _participants_partial(request, db, ctx, event, table,
                                         status_code=exc.status_code, bulk_error=exc.detail)
        return _detail_page(request, db, ctx, event, table, status_code=exc.status_code,
                            bulk_error=exc.detail)
    db.commit()
    if outcome.job is not None:
        if is_htmx(request):
            return Response(headers={"HX-Redirect": f"/jobs/{outcome.job.id}"})
        return RedirectResponse(f"/jobs/{outcome.job.id}", status_code=303)
    summary = outcome.summary
    assert summary is not None
    if is_htmx(request):
        event = service.get_event_or_raise(db, ctx, event_id=event_id)
        return _participants_partial(request, db, ctx, event,
                                     _participants_context(db, ctx, event_id, params),
                                     bulk_result=summary)
    flash = summary.text() + "".join(
        f"; {r.text()}" for r in summary.refusals[:REFUSALS_IN_FLASH]) + (
        f"; and {summary.refused - REFUSALS_IN_FLASH} more refused"
        if summary.refused > REFUSALS_IN_FLASH else "")
    return RedirectResponse(f"/events/{event_id}?" + urlencode({**params, "flash": flash}),
                            status_code=303)


def _detail_page(
    request: Request, db: Session, ctx: TenantContext, event: Event, table: dict[str, Any],
    status_code: int = 200, **extra: Any,
) -> Response:
    categories = service.list_categories(db, ctx, event_id=event.id)
    return render(
        request, db, ctx, "events/detail.html", status_code=status_code, event=event,
        categories=categories, links=sync_links.list_event_links(db, ctx, event_id=event.id),
        # Provider events of the tenant's connections starting near this event, to link.
        provider_candidates=(sync_candidates.list_candidates(db, ctx, near_event_id=event.id)
                             if ctx.can(Perm.SYNC_CONNECTION_READ) else []),
        can_link=ctx.can(Perm.SYNC_LINK_MANAGE),
        can_read_connections=ctx.can(Perm.SYNC_CONNECTION_READ),
        can_write_event=ctx.can(Perm.EVENTS_EVENT_WRITE),
        can_write_participants=ctx.can(Perm.EVENTS_PARTICIPANT_WRITE), **table,
        **_timing_export_context(ctx), **extra,
    )


@router.post("/events/{event_id}/categories")
def create_category(
    event_id: uuid.UUID, request: Request, db: DB, ctx: WriteEvents, form: PostedForm
) -> Response:
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        data = parse_form(CategoryCreate, values)
        service.create_category(db, ctx, event_id=event_id, data=data)
    except DomainError as exc:
        # Back to the event page with the problem beside the category form, values kept.
        db.rollback()
        event = service.get_event_or_raise(db, ctx, event_id=event_id)
        return _detail_page(request, db, ctx, event, _participants_context(db, ctx, event_id, {}),
                            status_code=exc.status_code, category_values=values,
                            **form_error(exc, CategoryCreate))
    db.commit()
    return RedirectResponse(f"/events/{event_id}?flash=Category+added", status_code=303)


@router.get("/events/{event_id}/categories/{category_id}/edit")
def edit_category_page(
    event_id: uuid.UUID, category_id: uuid.UUID, request: Request, db: DB, ctx: WriteEvents
) -> Response:
    category = service.get_category_or_raise(db, ctx, event_id=event_id, category_id=category_id)
    return _category_form_page(request, db, ctx, category, _category_values(category))


def _category_values(category: Category) -> dict[str, Any]:
    def text(value: Any) -> str:
        return "" if value is None else str(value)

    return {"name": category.name, "distance_m": text(category.distance_m),
            "bib_range_start": text(category.bib_range_start),
            "bib_range_end": text(category.bib_range_end)}


def _category_form_page(
    request: Request, db: Session, ctx: TenantContext, category: Category,
    values: dict[str, Any], status_code: int = 200, **extra: Any,
) -> Response:
    others = [c for c in service.list_categories(db, ctx, event_id=category.event_id)
              if c.id != category.id]
    entries = service.participant_counts_by_category(db, ctx, category_id=category.id)
    return render(request, db, ctx, "events/category_form.html", status_code=status_code,
                  category=category, event=category.event, values=values, others=others,
                  entries=entries, **extra)


# The category form's inputs; an emptied optional input clears its field.
CATEGORY_FORM_FIELDS = ("name", "distance_m", "bib_range_start", "bib_range_end")


@router.post("/events/{event_id}/categories/{category_id}/edit")
def update_category(
    event_id: uuid.UUID, category_id: uuid.UUID, request: Request, db: DB, ctx: WriteEvents,
    form: PostedForm,
) -> Response:
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        data = validate_model(CategoryUpdate, {
            k: (values.get(k, "").strip() or None) for k in CATEGORY_FORM_FIELDS})
        service.update_category(db, ctx, event_id=event_id, category_id=category_id, data=data)
    except DomainError as exc:
        db.rollback()
        category = service.get_category_or_raise(db, ctx, event_id=event_id,
                                                 category_id=category_id)
        return _category_form_page(request, db, ctx, category, values,
                                   status_code=exc.status_code,
                                   **form_error(exc, CategoryUpdate))
    db.commit()
    return RedirectResponse(f"/events/{event_id}?flash=Category+saved", status_code=303)


@router.post("/events/{event_id}/categories/{category_id}/delete")
def delete_category(
    event_id: uuid.UUID, category_id: uuid.UUID, request: Request, db: DB, ctx: WriteEvents,
    form: PostedForm,
) -> Response:
    move_to = str(form.get("move_to") or "").strip() or None
    category = service.get_category_or_raise(db, ctx, event_id=event_id, category_id=category_id)
    name = category.name
    try:
        target = query_uuid(move_to, "moveTo")
        moved = service.delete_category(db, ctx, event_id=event_id, category_id=category_id,
                                        move_to=target)
    except DomainError as exc:
        db.rollback()
        category = service.get_category_or_raise(db, ctx, event_id=event_id,
                                                 category_id=category_id)
        return _category_form_page(request, db, ctx, category, _category_values(category),
                                   status_code=exc.status_code, delete_error=exc.detail,
                                   move_to=move_to or "")
    db.commit()
    flash = f"{name} deleted" + (f"; {moved} participant{'' if moved == 1 else 's'} moved"
                                 if moved else "")
    return RedirectResponse(f"/events/{event_id}?" + urlencode({"flash": flash}),
                            status_code=303)


@router.post("/events/{event_id}/categories/{category_id}/assign-bibs")
def assign_bibs(
    event_id: uuid.UUID,
    category_id: uuid.UUID,
    db: DB,
    ctx: WriteParticipants,
    first_bib: Annotated[int | None, Form(ge=1)] = None,
) -> Response:
    run = service.start_bib_assignment(db, ctx, event_id=event_id, category_id=category_id,
                                       first_bib=first_bib)
    db.commit()
    return RedirectResponse(f"/jobs/{run.id}", status_code=303)


@router.get("/events/{event_id}/participants/new")
def new_participant_page(
    event_id: uuid.UUID, request: Request, db: DB, ctx: WriteParticipants
) -> Response:
    event = service.get_event_or_raise(db, ctx, event_id=event_id)
    return _participant_form_page(request, db, ctx, event, None, {"status": "active"})


@router.post("/events/{event_id}/participants/new")
def create_participant(
    event_id: uuid.UUID, request: Request, db: DB, ctx: WriteParticipants, form: PostedForm
) -> Response:
    """A walk-up entry: a new person in this event (synced entries come from providers)."""
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    person, ep_fields = _participant_form(values)
    # An entry registered at a provider but not synced yet: its source, so the next sync
    # matches it instead of adding the runner twice. Only when adding (a sync owns it after).
    ep_fields |= {k: values.get(k, "").strip() or None for k in SOURCE_FORM_FIELDS}
    try:
        data = validate_model(ParticipantCreate, {**ep_fields, "person": person})
        ep, match = service.add_participant(db, ctx, event_id=event_id, data=data)
    except DomainError as exc:
        db.rollback()
        event = service.get_event_or_raise(db, ctx, event_id=event_id)
        return _participant_form_page(request, db, ctx, event, None, values,
                                      status_code=exc.status_code,
                                      **form_error(exc, ParticipantCreate))
    db.commit()
    name = f"{ep.person.first_name} {ep.person.last_name}"
    matched = f" ({service.PERSON_MATCH_REASONS[match]})" if match != "new" else ""
    return RedirectResponse(f"/events/{event_id}?" + urlencode(
        {"flash": f"{name} added{matched}", "q": ep.bib or ep.registration_id or name}),
        status_code=303)


@router.get("/participants/{participant_id}/edit")
def edit_participant_page(
    participant_id: uuid.UUID, request: Request, db: DB, ctx: WriteParticipants
) -> Response:
    ep = service.get_participant_or_raise(db, ctx, participant_id=participant_id)
    return _participant_form_page(request, db, ctx, ep.event, ep, _participant_values(ep))


def _participant_form_page(
    request: Request, db: Session, ctx: TenantContext, event: Event,
    ep: EventParticipant | None, values: dict[str, Any], status_code: int = 200, **extra: Any,
) -> Response:
    """The participant form: editing ``ep``, or adding one to ``event`` when ``ep`` is None;
    an edited entry whose person others share asks whom a person change is for."""
    sharing = service.entries_sharing_person(db, ctx, ep=ep) if ep is not None else []
    return render(request, db, ctx, "events/participant_form.html", status_code=status_code,
                  ep=ep, event=event, values=values, sharing=sharing,
                  categories=service.list_categories(db, ctx, event_id=event.id),
                  **extra, **_choices())


def _participant_values(ep: Any) -> dict[str, Any]:
    p = ep.person
    return {
        "first_name": p.first_name, "last_name": p.last_name,
        "birth_date": p.birth_date.isoformat() if p.birth_date else "",
        "gender": p.gender.value if p.gender else "", "email": p.email or "",
        "nationality": p.nationality or "", "city": p.city or "", "region": p.region or "",
        "country": p.country or "", "bib": ep.bib or "",
        "registration_id": ep.registration_id or "",
        "team": ep.team or "", "status": ep.status.value,
        "category_id": str(ep.category_id) if ep.category_id else "",
    }


PERSON_FORM_FIELDS = ("first_name", "last_name", "birth_date", "gender", "email", "nationality",
                      "city", "region", "country")
ENTRY_FORM_FIELDS = ("bib", "registration_id", "team", "category_id", "status")
SOURCE_FORM_FIELDS = ("source_provider", "source_id")


def _participant_form(values: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The person and the entry fields of the participant form. An emptied input clears
    its field (every field of the form is sent); an absent status keeps the default."""
    person = {k: values.get(k, "").strip() or None for k in PERSON_FORM_FIELDS}
    entry = {k: values.get(k, "").strip() or None for k in ENTRY_FORM_FIELDS}
    if entry["status"] is None:
        del entry["status"]
    return person, entry


@router.post("/participants/{participant_id}/edit")
def update_participant(
    participant_id: uuid.UUID, request: Request, db: DB, ctx: WriteParticipants, form: PostedForm
) -> Response:
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    person, ep_fields = _participant_form(values)
    scope = values.get("person_scope", "").strip() or None
    try:
        data = validate_model(ParticipantUpdate, {**ep_fields, "person": person,
                                                  "person_scope": scope})
        ep = service.update_participant(db, ctx, participant_id=participant_id, data=data)
    except DomainError as exc:
        db.rollback()
        ep = service.get_participant_or_raise(db, ctx, participant_id=participant_id)
        return _participant_form_page(request, db, ctx, ep.event, ep, values,
                                      status_code=exc.status_code,
                                      **form_error(exc, ParticipantUpdate))
    db.commit()
    return RedirectResponse(f"/events/{ep.event_id}?"
                            + urlencode({"flash": "Participant saved", "q": ep.bib or ""}),
                            status_code=303)
