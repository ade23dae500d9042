"""Errors of the alerts domain."""

from racehub.core.exceptions import Conflict, NotFound


class AlertNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("alert not found")


class AlertResolved(Conflict):
    def __init__(self) -> None:
        super().__init__("the alert is resolved already: there is nothing to acknowledge")
