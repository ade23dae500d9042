"""Errors of the inventory domain."""

from racehub.core.exceptions import Conflict, NotFound


class NumberTypeNotFound(NotFound):
    def __init__(self, field: str | None = None) -> None:
        super().__init__("number type not found", field=field)


class RaceNumberNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("race number not found")


class NumberTypeNameTaken(Conflict):
    pass
