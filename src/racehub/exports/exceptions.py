"""Errors of the exports domain."""

from racehub.core.exceptions import Conflict, DomainError, NotFound


class ExportNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("export not found")


class ExportNotReady(Conflict):
    """Download asked before the file exists (queued, running, failed, cancelled)."""


class ExportExpired(DomainError):
    status_code = 410
    title = "Export expired"


class ExportStorageUnavailable(DomainError):
    status_code = 503
    title = "Export storage unavailable"


class ExportTooLarge(DomainError):
    """The chosen format cannot hold this many rows (XLSX: 1,048,576 per sheet)."""

    status_code = 422
    title = "Export too large for the format"
