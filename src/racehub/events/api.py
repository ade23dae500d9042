"""JSON API for events, categories and participants. Thin: the service holds the rules."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import TypeAdapter

from racehub.core.context import TenantContext
from racehub.core.deps import DB, AppSettings, require
from racehub.core.pagination import Page
from racehub.core.rbac import Perm
from racehub.core.schemas import construct_trusted
from racehub.events import bulk, service
from racehub.events.models import EventStatus, ParticipantStatus
from racehub.events.schemas import (
    BibAssignmentRequest,
    BulkEditRequest,
    BulkEditResult,
    BulkRefusal,
    CategoryCreate,
    CategoryDeleted,
    CategoryRead,
    CategoryUpdate,
    EventCreate,
    EventRead,
    EventUpdate,
    ParticipantCreate,
    ParticipantCreated,
    ParticipantListItem,
    ParticipantRead,
    ParticipantUpdate,
    ParticipantUpdated,
)
from racehub.events.service import ParticipantFilter, ParticipantSort
from racehub.jobs.schemas import JobRunRead
from racehub.sync import people as sync_people

router = APIRouter(prefix="/api", tags=["events"])

ReadEvents = Annotated[TenantContext, Depends(require(Perm.EVENTS_EVENT_READ))]
WriteEvents = Annotated[TenantContext, Depends(require(Perm.EVENTS_EVENT_WRITE))]
ReadParticipants = Annotated[TenantContext, Depends(require(Perm.EVENTS_PARTICIPANT_READ))]
WriteParticipants = Annotated[TenantContext, Depends(require(Perm.EVENTS_PARTICIPANT_WRITE))]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/events", response_model=Page[EventRead])
def list_events(
    db: DB,
    ctx: ReadEvents,
    q: Annotated[str | None, Query(description="Search in name and location")] = None,
    status: EventStatus | None = None,
    archived: Annotated[bool, Query(
        description="true: the archived events only (left out otherwise)")] = False,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[EventRead]:
    rows, next_cursor = service.list_events(db, ctx, q=q, status=status, archived=archived,
                                            cursor=cursor, limit=limit)
    return Page[EventRead](items=[EventRead.model_validate(e) for e in rows],
                           next_cursor=next_cursor)


@router.post("/events", response_model=EventRead, status_code=201)
def create_event(data: EventCreate, db: DB, ctx: WriteEvents) -> EventRead:
    event = service.create_event(db, ctx, data=data)
    db.commit()
    return EventRead.model_validate(event)


@router.get("/events/{event_id}", response_model=EventRead)
def read_event(event_id: uuid.UUID, db: DB, ctx: ReadEvents) -> EventRead:
    return EventRead.model_validate(service.get_event_or_raise(db, ctx, event_id=event_id))


@router.patch("/events/{event_id}", response_model=EventRead)
def update_event(event_id: uuid.UUID, data: EventUpdate, db: DB, ctx: WriteEvents) -> EventRead:
    event = service.update_event(db, ctx, event_id=event_id, data=data)
    db.commit()
    return EventRead.model_validate(event)


@router.post("/events/{event_id}/archive", response_model=EventRead)
def archive_event(event_id: uuid.UUID, db: DB, ctx: WriteEvents) -> EventRead:
    """Out of the default lists (``GET /api/events?archived=true`` lists it); its data stays."""
    event = service.set_event_archived(db, ctx, event_id=event_id, archived=True)
    db.commit()
    return EventRead.model_validate(event)


@router.post("/events/{event_id}/unarchive", response_model=EventRead)
def unarchive_event(event_id: uuid.UUID, db: DB, ctx: WriteEvents) -> EventRead:
    event = service.set_event_archived(db, ctx, event_id=event_id, archived=False)
    db.commit()
    return EventRead.model_validate(event)


@router.delete("/events/{event_id}", status_code=204)
def delete_event(event_id: uuid.UUID, db: DB, ctx: WriteEvents) -> Response:
    """Only an event with no participants, results, provider links or running jobs (its
    categories go with it); otherwise 409 naming why."""
    service.delete_event(db, ctx, event_id=event_id)
    db.commit()
    return Response(status_code=204)


@router.get("/events/{event_id}/categories", response_model=list[CategoryRead])
def list_categories(event_id: uuid.UUID, db: DB, ctx: ReadEvents) -> list[CategoryRead]:
    return [CategoryRead.model_validate(c)
            for c in service.list_categories(db, ctx, event_id=event_id)]


@router.post("/events/{event_id}/categories", response_model=CategoryRead, status_code=201)
def create_category(
    event_id: uuid.UUID, data: CategoryCreate, db: DB, ctx: WriteEvents
) -> CategoryRead:
    category = service.create_category(db, ctx, event_id=event_id, data=data)
    db.commit()
    return CategoryRead.model_validate(category)


@router.patch("/events/{event_id}/categories/{category_id}", response_model=CategoryRead)
def update_category(
    event_id: uuid.UUID, category_id: uuid.UUID, data: CategoryUpdate, db: DB,
    ctx: WriteEvents,
) -> CategoryRead:
    category = service.update_category(db, ctx, event_id=event_id, category_id=category_id,
                                       data=data)
    db.commit()
    return CategoryRead.model_validate(category)


@router.delete("/events/{event_id}/categories/{category_id}", response_model=CategoryDeleted)
def delete_category(
    event_id: uuid.UUID, category_id: uuid.UUID, db: DB, ctx: WriteEvents,
    move_to: Annotated[uuid.UUID | None, Query(
        alias="moveTo", description="Another category of the event: the participants (and "
        "mapped provider races) of this one move there in the same step")] = None,
) -> CategoryDeleted:
    """Refused (409, naming them) while participants are in it, unless ``moveTo`` is given."""
    moved = service.delete_category(db, ctx, event_id=event_id, category_id=category_id,
                                    move_to=move_to)
    db.commit()
    return CategoryDeleted(moved_to=move_to, participants_moved=moved)


@router.post("/events/{event_id}/categories/{category_id}/assign-bibs",
             response_model=JobRunRead, status_code=202)
def assign_bibs(
    event_id: uuid.UUID, category_id: uuid.UUID, data: BibAssignmentRequest, db: DB,
    ctx: WriteParticipants,
) -> JobRunRead:
    """Queue a job numbering the category's active participants that have no bib yet."""
    run = service.start_bib_assignment(db, ctx, event_id=event_id, category_id=category_id,
                                       first_bib=data.first_bib)
    db.commit()
    return JobRunRead.model_validate(run)


# The participants page as JSON, encoded in one pass: displays poll it, and FastAPI would
# validate the returned page again (on a thread of its own) before encoding it.
PARTICIPANT_PAGE = TypeAdapter(Page[ParticipantListItem])


@router.get("/events/{event_id}/participants", response_model=Page[ParticipantListItem])
def list_participants(
    event_id: uuid.UUID,
    db: DB,
    ctx: ReadParticipants,
    q: Annotated[str | None, Query(description="Name, e-mail (part), bib or registration id")]
    = None,
    status: ParticipantStatus | None = None,
    category_id: Annotated[uuid.UUID | None, Query(alias="categoryId")] = None,
    sort: ParticipantSort = ParticipantSort.LAST_NAME,
    desc: bool = False,
    cursor: str | None = None,
    limit: Limit = 50,
    count: Annotated[bool, Query(
        description="Also count every matching participant into `total` (null otherwise): "
        "a scan of the event's matches, so ask once, not on every poll")] = False,
) -> Response:
    rows, next_cursor, total = service.list_participants(
        db, ctx, event_id=event_id,
        flt=ParticipantFilter(q=q, status=status, category_id=category_id),
        sort=sort, descending=desc, cursor=cursor, limit=limit, with_total=count,
    )
    # Each entry's provider registrations (where a runner came from): one query for the
    # page, not one per entry.
    sources = sync_people.sources_of(db, ctx, participant_ids=[row.id for row in rows])
    items = [construct_trusted(ParticipantListItem,
                               {**row.__dict__, "sources": sources.get(row.id, [])})
             for row in rows]
    page = Page[ParticipantListItem].model_construct(items=items, next_cursor=next_cursor,
                                                     total=total)
    return Response(PARTICIPANT_PAGE.dump_json(page, by_alias=True),
                    media_type="application/json")


@router.post("/events/{event_id}/participants", response_model=ParticipantCreated,
             status_code=201)
def create_participant(
    event_id: uuid.UUID, data: ParticipantCreate, db: DB, ctx: WriteParticipants
) -> ParticipantCreated:
    """A new entry. A new ``person`` is matched to the tenant's persons as the sync does
    (``matchPerson`` false: never); ``personMatch`` says how the person was chosen."""
    ep, match = service.add_participant(db, ctx, event_id=event_id, data=data)
    db.commit()
    return ParticipantCreated.model_validate(ep).model_copy(update={
        "person_match": match, "person_match_reason": service.PERSON_MATCH_REASONS[match]})


@router.get("/participants/{participant_id}", response_model=ParticipantRead)
def read_participant(participant_id: uuid.UUID, db: DB, ctx: ReadParticipants) -> ParticipantRead:
    return ParticipantRead.model_validate(
        service.get_participant_or_raise(db, ctx, participant_id=participant_id)
    )


@router.patch("/participants/{participant_id}", response_model=ParticipantUpdated)
def update_participant(
    participant_id: uuid.UUID, data: ParticipantUpdate, db: DB, ctx: WriteParticipants
) -> ParticipantUpdated:
    """Change an entry and its person. A person field change of a person other entries
    share (matched across events or providers) needs ``personScope``: 409 without it,
    naming them; ``personSharedWith`` says how many others the change reached."""
    ep, shared_with = service.edit_participant(db, ctx, participant_id=participant_id,
                                               data=data)
    db.commit()
    return ParticipantUpdated.model_validate(ep).model_copy(
        update={"person_shared_with": shared_with})


@router.post("/events/{event_id}/participants/bulk", response_model=BulkEditResult,
             responses={202: {"model": BulkEditResult,
                              "description": "Queued as a job (`job`)"}})
def bulk_edit_participants(
    event_id: uuid.UUID, data: BulkEditRequest, db: DB, ctx: WriteParticipants,
    settings: AppSettings, response: Response,
) -> BulkEditResult:
    """Withdraw, reinstate, move to a category, clear or assign the bibs of the
    participants in ``ids`` or of all matching ``filter``, as one audited change through
    the participants' write path (what it changes becomes racehub-owned: a sync raises a
    conflict rather than overwrite it). Up to RACEHUB_BULK_EDIT_INLINE_MAX rows: done
    now (200, with the counts and each refused row's reason); more: 202 with the job."""
    outcome = bulk.start_bulk_edit(db, ctx, event_id=event_id, data=data,
                                   inline_max=settings.bulk_edit_inline_max)
    db.commit()
    if outcome.job is not None:
        response.status_code = 202
        return BulkEditResult(action=data.action, selected=outcome.job.total or 0, changed=0,
                              unchanged=0, refused=0, refusals=[],
                              job=JobRunRead.model_validate(outcome.job))
    summary = outcome.summary
    assert summary is not None
    return BulkEditResult(action=summary.action, **summary.counts(), refusals=[
        BulkRefusal(participant_id=r.participant_id, name=r.name, bib=r.bib, field=r.field,
                    reason=r.reason) for r in summary.refusals])
