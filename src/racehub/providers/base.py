"""The adapter contract every provider implements, and the normalized records it returns.

An adapter is built from a plain connection config (``base_url``, ``credentials``,
``settings``, a rate limiter and an optional clock/sleep for tests) and speaks one
provider's wire format through :class:`racehub.providers.http.ProviderHttp`. Reads return
iterators of :class:`Page` objects; a row that cannot be mapped becomes a
:class:`RowProblem` on its page and the rest of the page still arrives.
"""

from __future__ import annotations

import enum
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import ValidationError

from racehub.core.logging import remember_secrets
from racehub.providers.errors import (
    AuthFailed,
    BadData,
    NotFound,
    NotSupported,
    PageLimitReached,
    ProviderDown,
    ProviderError,
    RepeatedPage,
    Throttled,
)
from racehub.providers.http import ProviderHttp
from racehub.providers.ratelimit import InMemoryRateLimiter, RateLimit, RateLimiter
from racehub.providers.settings import DEFAULT_MAX_PAGES, ProviderSettings, describe
from racehub.providers.values import MappingError

__all__ = [
    "AuthFailed", "BadData", "Capability", "CredentialCheck", "NotFound", "NotSupported",
    "Page", "PageGuard", "PageLimitReached", "ProviderAdapter", "ProviderDown", "ProviderError",
    "ProviderEvent", "ResultStatus",
    "ProviderParticipant", "ProviderResult", "ProviderWithdrawal", "PushReport", "RepeatedPage",
    "RowProblem", "Throttled",
]


class Capability(enum.StrEnum):
    CHECK_CREDENTIALS = "check_credentials"
    LIST_EVENTS = "list_events"
    LIST_PARTICIPANTS = "list_participants"
    LIST_WITHDRAWN = "list_withdrawn"
    PUSH_PARTICIPANTS = "push_participants"
    # Tell the provider a pushed participant is out (removed, or marked as not starting).
    WITHDRAW_PARTICIPANTS = "withdraw_participants"
    GET_RESULTS = "get_results"
    POST_RESULTS = "post_results"


@dataclass(frozen=True)
class RowProblem:
    """One row of a page that could not be (fully) mapped. ``row`` is its index in the page."""

    row: int
    message: str
    ref: str | None = None
    field: str | None = None
    raw: Any = None

    def __str__(self) -> str:
        where = f"row {self.row + 1}" + (f" ({self.ref})" if self.ref else "")
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"

    @classmethod
    def of(cls, index: int, exc: Exception, row: Any, ref_key: str) -> RowProblem:
        """The problem of row ``index`` that failed to map with ``exc``, named by the
        row's ``ref_key`` value when it has one: a MappingError names its field; anything
        else means the row is not the shape the provider documents."""
        ref = row.get(ref_key) if isinstance(row, dict) else None
        ref_text = None if ref in (None, "") else str(ref)
        if isinstance(exc, MappingError):
            return cls(index, exc.message, ref=ref_text, field=exc.field, raw=row)
        return cls(index, f"unexpected row shape ({type(exc).__name__}: {exc})", ref=ref_text,
                   raw=row)


@dataclass
class ProviderEvent:
    """What participants register for. ``ref`` is the adapter's opaque id for later calls."""

    ref: str
    name: str
    start_at: datetime | None = None  # UTC
    end_at: datetime | None = None  # UTC
    time_zone: str | None = None
    parent_ref: str | None = None  # e.g. RunSignUp race id, Race Roster event of a sub-event
    parent_name: str | None = None
    distance: str | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None
    modified_at: datetime | None = None  # UTC
    raw: Any = None
    # Where ``time_zone`` came from: "provider" (the provider gave it) or "setting" (the
    # provider gave none; the connection's time_zone setting was used). Set by default to
    # "provider" when a zone is given without saying.
    time_zone_source: str | None = None

    def __post_init__(self) -> None:
        if self.time_zone and self.time_zone_source is None:
            self.time_zone_source = "provider"


@dataclass
class ProviderParticipant:
    ref: str  # the provider's stable registration id: the natural key, never the bib
    event_ref: str
    first_name: str = ""
    last_name: str = ""
    middle_name: str | None = None
    email: str | None = None
    birth_date: date | None = None
    gender: str | None = None  # "M", "F", "X" (non-binary/other) or None
    age: int | None = None
    bib: str | None = None
    chip: str | None = None
    phone: str | None = None
    team: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    registered_at: datetime | None = None  # UTC
    modified_at: datetime | None = None  # UTC
    amount_paid: Decimal | None = None
    person_ref: str | None = None  # the provider's id of the person, when it has one
    extra: dict[str, Any] = field(default_factory=dict)  # answers to custom questions etc.
    raw: Any = None
    # A row without the provider's registration id is keyed by a fallback (RunSignUp: the
    # person's user id within the event): ``ref`` is then that key and ``ref_is_fallback``
    # says so. A row WITH its registration id still names its fallback in ``fallback_ref``,
    # so a record stored under the fallback is recognised as this registration (see
    # ``match_refs``) instead of becoming a second one.
    ref_is_fallback: bool = False
    fallback_ref: str | None = None

    def match_refs(self) -> tuple[str, ...]:
        """Every key a stored record of this registration may be under, the best first:
        look a row up by each in turn, and re-key a record found by the fallback."""
        return tuple(dict.fromkeys(r for r in (self.ref, self.fallback_ref) if r))


@dataclass
class ProviderWithdrawal:
    ref: str  # registration id, as in ProviderParticipant.ref
    event_ref: str
    reason: str | None = None
    withdrawn_at: datetime | None = None  # UTC
    raw: Any = None


class ResultStatus(enum.StrEnum):
    FINISHED = "FIN"
    DNF = "DNF"
    DNS = "DNS"
    DQ = "DQ"
    RUNNING = "RUN"  # started, not finished yet: no place, no time (a later read has them)


@dataclass
class ProviderResult:
    event_ref: str
    ref: str | None = None  # the provider's result id, when it has one (edits use it)
    participant_ref: str | None = None
    bib: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    gender: str | None = None
    age: int | None = None
    place: int | None = None
    clock_time: timedelta | None = None
    chip_time: timedelta | None = None
    status: ResultStatus = ResultStatus.FINISHED
    splits: dict[str, timedelta] = field(default_factory=dict)
    division: str | None = None
    # Columns the provider sends beyond the ones above, by their label (e.g. a division's
    # place, a team name): kept as text so nothing the provider reads out is lost.
    extra: dict[str, str] = field(default_factory=dict)
    raw: Any = None


T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    """One provider page: mapped items, per-row problems and where we are."""

    items: list[T]
    problems: list[RowProblem] = field(default_factory=list)
    # Rows that ARE among ``items`` but read with a caveat (an unknown code left empty, a
    # time zone not given): each names its row and field like a problem.
    warnings: list[RowProblem] = field(default_factory=list)
    number: int = 1
    is_last: bool = True
    total: int | None = None  # rows on all pages, when the provider says
    raw: Any = None  # the decoded response, for audit/debugging

    @property
    def row_count(self) -> int:
        return len(self.items) + len(self.problems)


class PageGuard:
    """The bound and the end checks of one paging loop, the same in every adapter.

    ::

        guard = self.page_guard("GET events")
        for number in guard:          # 1, 2, ...; past max_pages: PageLimitReached
            rows = ...                # fetch page ``number``
            last = guard.done(rows, total=stated_total)   # RepeatedPage if it repeats
            yield Page(..., number=number, is_last=last)
            if last:
                return

    A read ends normally on an empty page, on a page with nothing new (``new=0``: e.g. a
    reader that re-reads one row of overlap), or once the rows read reach the total the
    provider stated. A page shorter than some assumed page size is NOT an end: providers
    cap pages below what we ask without saying so. ``max_pages`` bounds the loop; reaching
    it raises :class:`PageLimitReached`. A non-empty page equal to the page before it
    raises :class:`RepeatedPage`.
    """

    def __init__(self, where: str, *, provider: str = "",
                 max_pages: int = DEFAULT_MAX_PAGES) -> None:
        self.where = where
        self.provider = provider
        self.max_pages = max_pages
        self.rows_read = 0  # rows counted so far (``new`` of each page)
        self.total: int | None = None  # the provider's last stated total
        self._previous: str | None = None

    def __iter__(self) -> Iterator[int]:
        yield from range(1, self.max_pages + 1)
        raise PageLimitReached(
            f"{self.where}: more than {self.max_pages} pages without an end (max_pages); "
            f"stopped after {self.rows_read} row(s) rather than return part of the list",
            provider=self.provider)

    def done(self, rows: Sequence[Any], *, total: int | None = None,
             new: int | None = None) -> bool:
        """Check page ``rows`` and say whether it is the last. ``total``: the number of rows
        the provider says the whole list has (when it says); ``new``: how many of ``rows``
        are new to this read (default all of them)."""
        if rows:
            digest = hashlib.sha256(json.dumps(list(rows), sort_keys=True, default=str)
                                    .encode()).hexdigest()
            if digest == self._previous:
                raise RepeatedPage(
                    f"{self.where}: a page repeated the previous one after {self.rows_read} "
                    "row(s); the provider is not paging, so the read stops here",
                    provider=self.provider)
            self._previous = digest
        count = len(rows) if new is None else new
        self.rows_read += count
        if total is not None:
            self.total = total
        return count == 0 or (self.total is not None and self.rows_read >= self.total)


@dataclass
class PushReport:
    """What a push/post accepted; refused rows are problems naming the row."""

    accepted: int
    problems: list[RowProblem] = field(default_factory=list)
    raw: Any = None


@dataclass
class CredentialCheck:
    ok: bool
    message: str
    account: str | None = None  # who the provider says we are, when it says


class ProviderAdapter:
    """Base class of every adapter.

    Subclasses set ``provider``, ``capabilities``, ``credential_fields``,
    ``default_base_url``, ``default_rate_limit`` and ``default_field_mapping`` and override
    the operations they support; the others raise :class:`NotSupported`.
    """

    provider: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    credential_fields: ClassVar[tuple[str, ...]] = ()
    optional_credential_fields: ClassVar[tuple[str, ...]] = ()
    default_base_url: ClassVar[str] = ""
    default_rate_limit: ClassVar[RateLimit] = RateLimit(per_second=5.0, burst=10)
    # Normalized field name -> provider field path (dotted), shown in the mapping UI.
    default_field_mapping: ClassVar[Mapping[str, str]] = {}
    # What ``settings`` may hold: the adapter reads ``self.settings.<name>`` only.
    settings_model: ClassVar[type[ProviderSettings]] = ProviderSettings
    # A pushed participant is changed by removing it and adding it again (Copernico), not
    # updated in place: a removal can drop what the provider recorded for it (detections),
    # so callers guard such a change while the event is live. ``withdraw_participants``
    # removes too where this is set.
    changes_by_removal: ClassVar[bool] = False

    def __init__(
        self,
        *,
        base_url: str | None = None,
        credentials: Mapping[str, str],
        settings: Mapping[str, Any] | ProviderSettings | None = None,
        limiter: RateLimiter | None = None,
        rate_key: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        transport: Any = None,
    ) -> None:
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.settings = self.read_settings(settings)
        missing = [f for f in self.credential_fields if not (credentials.get(f) or "").strip()]
        if missing:
            raise AuthFailed(f"missing credential field(s): {', '.join(missing)}",
                             provider=self.provider)
        self.credentials = {k: str(v) for k, v in credentials.items() if v is not None}
        remember_secrets(self.credentials.values())  # masked in every log line from now on
        self.clock = clock
        self.sleep = sleep
        # A bound on every paging loop, so a provider that never says "last page" ends.
        self.max_pages = self.settings.max_pages
        rate = self.settings.rate_per_second
        burst = self.settings.rate_burst
        self.rate_limit = RateLimit(
            per_second=float(rate) if rate else self.default_rate_limit.per_second,
            burst=int(burst) if burst else self.default_rate_limit.burst,
        )
        self.http = ProviderHttp(
            provider=self.provider,
            base_url=self.base_url,
            limiter=limiter or InMemoryRateLimiter(clock=clock, sleep=sleep),
            rate_key=rate_key or f"{self.provider}:{self.base_url}",
            rate_limit=self.rate_limit,
            secrets=[v for v in self.credentials.values() if v],
            sleep=sleep,
            max_attempts=self.settings.max_attempts,
            max_retry_after=self.settings.max_retry_after,
            backoff_base=self.settings.backoff_base,
            backoff_max=self.settings.backoff_max,
            connect_timeout=self.settings.connect_timeout,
            read_timeout=self.settings.read_timeout,
            error_hook=self.inspect_response,
            on_unauthorized=(self.refresh_auth
                             if type(self).refresh_auth is not ProviderAdapter.refresh_auth
                             else None),
            transport=transport,
        )

    @classmethod
    def read_settings(cls, settings: Mapping[str, Any] | ProviderSettings | None
                      ) -> Any:
        """``settings`` checked by the adapter's ``settings_model``; BadData names each
        field at fault (an unknown key among them)."""
        if isinstance(settings, cls.settings_model):
            return settings
        given = settings.model_dump() if isinstance(settings, ProviderSettings) else (
            settings or {})
        try:
            return cls.settings_model.model_validate(dict(given))
        except ValidationError as exc:
            raise BadData(f"settings refused: {describe(exc)}",
                          provider=cls.provider) from None

    @staticmethod
    def bounded_page_size(value: int | None, cap: int, *, default: int | None = None,
                  minimum: int = 1) -> int:
        """A page size setting's ``value`` (rows per request), kept within ``minimum`` and
        the provider's ``cap``: a server that quietly sends fewer rows than asked would
        look like a last page."""
        return max(minimum, min(value if value is not None
                                else cap if default is None else default, cap))

    def page_guard(self, where: str) -> PageGuard:
        """A :class:`PageGuard` for one paging loop, bounded by this connection's
        ``max_pages``; its errors name ``where`` (e.g. ``"GET events"``)."""
        return PageGuard(where, provider=self.provider, max_pages=self.max_pages)

    @classmethod
    def participant_from_raw(cls, raw: Any, event_ref: str) -> ProviderParticipant:
        """One record as ``list_participants`` keeps it in ``ProviderParticipant.raw``, read
        again by the adapter's default mapping (the preview of a pasted sample). Raises
        MappingError naming the field, or NotSupported."""
        raise NotSupported("this provider's records are read only from the provider",
                           provider=cls.provider)

    @classmethod
    def check_start_list_ref(cls, event_ref: str) -> None:
        """Raise ValueError (saying the expected form) unless ``event_ref`` names what a
        start list is pushed to and results are read from (a timing link's provider event).
        Timing adapters override it."""

    @classmethod
    def push_row(cls, participant: ProviderParticipant) -> dict[str, Any]:
        """The row ``push_participants`` sends for ``participant`` (to its ``event_ref``),
        as the provider receives it: what a caller hashes to tell a change. Raises
        MappingError naming the field when the participant cannot be sent."""
        raise NotSupported("this provider does not take pushed participants",
                           provider=cls.provider)

    # -- what a read costs (the sync schedule plans the request budget with it) ----------
    # Requests a read makes besides its pages (a token, say).
    auth_calls: ClassVar[int] = 0

    @classmethod
    def participant_page_size(cls, settings: Any) -> int:
        """Registrations per page of ``list_participants`` with these settings (the
        adapter's own model). Adapters listing participants override it."""
        return 100

    @classmethod
    def estimated_read_calls(cls, settings: Mapping[str, Any] | None, *, rows: int) -> int:
        """About how many requests one participant read of ``rows`` registrations costs:
        its pages (the last one says so, hence one more than full pages), those of
        ``list_withdrawn`` where offered, and ``auth_calls``. Settings the adapter refuses
        count as its defaults (the run itself reports them)."""
        try:
            checked = cls.read_settings(settings)
        except BadData:
            checked = cls.settings_model()
        pages = max(0, rows) // max(1, cls.participant_page_size(checked)) + 1
        reads = 2 if Capability.LIST_WITHDRAWN in cls.capabilities else 1
        return pages * reads + cls.auth_calls

    # -- hooks -------------------------------------------------------------------------
    def inspect_response(self, status: int, body: Any) -> None:
        """Raise a typed error for failures a provider reports inside a 2xx body."""

    def refresh_auth(self) -> None:
        """Override for token-based providers: fetch a new token and set it on
        ``self.http.client.headers``. Called once when a request gets 401, then the request
        is sent again."""

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ProviderAdapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def _unsupported(self, capability: Capability) -> NotSupported:
        return NotSupported(f"{capability.value} is not offered by this provider",
                            provider=self.provider)

    # -- the contract --------------------------------------------------------------------
    def check_credentials(self) -> CredentialCheck:
        raise self._unsupported(Capability.CHECK_CREDENTIALS)

    def list_events(self, since: datetime | None = None) -> Iterator[Page[ProviderEvent]]:
        raise self._unsupported(Capability.LIST_EVENTS)

    def list_participants(
        self, event_ref: str, since: datetime | None = None
    ) -> Iterator[Page[ProviderParticipant]]:
        raise self._unsupported(Capability.LIST_PARTICIPANTS)

    def list_withdrawn(
        self, event_ref: str, since: datetime | None = None
    ) -> Iterator[Page[ProviderWithdrawal]]:
        raise self._unsupported(Capability.LIST_WITHDRAWN)

    def push_participants(
        self, event_ref: str, participants: Sequence[ProviderParticipant], *,
        replace_existing: bool = True,
    ) -> PushReport:
        """Send ``participants`` (``ref``: racehub's stable id, never the bib). A provider
        that already holds a ref updates it; where an update is a removal and a re-add
        (``changes_by_removal``) that happens only with ``replace_existing``, else the
        provider's refusal (e.g. Copernico's DUPLICATED) is that row's problem."""
        raise self._unsupported(Capability.PUSH_PARTICIPANTS)

    def withdraw_participants(self, event_ref: str, refs: Sequence[str]) -> PushReport:
        """Tell the provider the participants pushed under ``refs`` are out: removed, or
        marked as not starting, per provider (its docstring says which). A ref the provider
        no longer holds counts as withdrawn; a refusal is that row's problem."""
        raise self._unsupported(Capability.WITHDRAW_PARTICIPANTS)

    def get_results(self, event_ref: str) -> Iterator[Page[ProviderResult]]:
        raise self._unsupported(Capability.GET_RESULTS)

    def post_results(self, event_ref: str, results: Sequence[ProviderResult], *,
                     result_set_id: str | None = None) -> PushReport:
        """Post ``results``; into the provider's result set ``result_set_id`` when given
        (a result with ``ref`` edits that row of it), else where the adapter decides."""
        raise self._unsupported(Capability.POST_RESULTS)

    def result_sets(self, event_ref: str) -> list[tuple[str, str]]:
        """(id, name) of the event's result sets, as the provider lists them."""
        raise self._unsupported(Capability.POST_RESULTS)

    def create_result_set(self, event_ref: str, name: str) -> str:
        """A new, empty result set of the event: its id."""
        raise self._unsupported(Capability.POST_RESULTS)

    def read_result_set(self, event_ref: str, result_set_id: str
                        ) -> Iterator[Page[ProviderResult]]:
        """The rows of one result set (each with the provider's row id in ``ref``)."""
        raise self._unsupported(Capability.POST_RESULTS)
