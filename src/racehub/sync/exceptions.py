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


class SyncRunNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("sync run not found")
