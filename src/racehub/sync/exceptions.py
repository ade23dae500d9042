"""Errors of the sync domain (provider connections)."""

from racehub.core.exceptions import Conflict, Forbidden, Invalid, NotFound


class ConnectionNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("provider connection not found")


class ConnectionNameTaken(Conflict):
    def __init__(self, name: str) -> None:
        super().__init__(f"a connection named {name!r} already exists", field="name")


class BaseUrlForbidden(Forbidden):
    def __init__(self) -> None:
        super().__init__("baseUrl: only a platform admin may change a connection's base URL",
                         field="baseUrl")


class InvalidCredentials(Invalid):
    """A credential field missing, unknown or empty (named in ``field``)."""


class SampleUnavailable(Invalid):
    """No sample could be fetched for the mapping preview (the message says why)."""


class LinkNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("link not found")


class ProviderEventLinked(Conflict):
    """A provider event feeds at most one racehub event per connection."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="providerEventRef")


class LinkSyncing(Conflict):
    """A link whose run is queued, running or retrying keeps its event until the run ends."""


class ConnectionSyncing(Conflict):
    """A connection whose link has a queued, running or retrying run stays until it ends."""


class SyncConflictNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("sync conflict not found in this event")


class ConflictAlreadyResolved(Conflict):
    """Keep ours / take theirs on a conflict someone already resolved."""


class NothingToSplit(Conflict):
    """Splitting a participant whose person no other entry shares."""


class SyncRunNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("sync run not found")
