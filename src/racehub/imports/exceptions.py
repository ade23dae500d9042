"""Errors of the import pipeline."""

from racehub.core.exceptions import DomainError, Invalid, NotFound


class ImportNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("import not found")


class RejectedUpload(DomainError):
    """The upload cannot become an import (wrong type, unreadable, missing column): 400,
    and no job is created."""

    status_code = 400
    title = "Upload rejected"


class UnreadableFile(Invalid):
    """The uploaded file cannot be imported at all; ``detail`` says why, for the operator."""
