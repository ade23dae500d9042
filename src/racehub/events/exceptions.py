"""Errors of the events domain."""

from racehub.core.exceptions import Conflict, NotFound


class EventNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("event not found")


class CategoryNotFound(NotFound):
    def __init__(self, field: str | None = None) -> None:
        super().__init__("category not found in this event", field=field)


class ParticipantNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("participant not found")


class BibTaken(Conflict):
    pass


class SourceTaken(Conflict):
    """Another participant of the tenant already came from this provider record."""


class TimingIdentifierLocked(Conflict):
    pass


class PersonShared(Conflict):
    """A person field edit of an entry whose Person other entries share: the caller says
    whether the edit is for all of them or for this entry alone (``personScope``)."""


class EventInUse(Conflict):
    """An event with entries, results, provider links or running jobs: never deleted."""


class CategoryInUse(Conflict):
    """A category with entries (or provider races mapped to it), deleted without a
    category to move them to."""
