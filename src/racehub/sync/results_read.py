"""Reading a timing system's results for a pull: every page first, then E08's rows.

``read_results`` reads the whole result list of one linked race (and, for ChronoTrack, its
entry list: see below) before anything is stored, so a failed read leaves nothing
half-written. ``to_parsed_rows`` then turns what was read into E08's ``ParsedRow``s, so
the rows go through the same resolution, buckets and places as a result file.

The external id. racehub sends each participant to the timing system with the id of the
event's timing identifier mode (what E11 writes as ExternalReferenceID); a result is
resolved by that id, never by its bib:
- Copernico: a result row's ``id`` IS the id racehub pushed (PROVIDERS.md).
- ChronoTrack: a result row names ChronoTrack's own entry (``results_entry_id``); the id
  racehub pushed is that entry's ``entry_external_id``. The race's entries are read to map
  one to the other. A row whose entry is not in the entry list, or has no external id (an
  athlete entered in ChronoTrack by hand), is unmatched with that reason: never guessed.

Rows that are not results: an athlete on the course (status RUN; ChronoTrack: an entry
with split rows and no finish row) is counted as on the course and not stored. ChronoTrack
sends a split as a row of its own (another interval): it is added to its entry's finish
row. A row the adapter could not read is a problem naming its page and row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from racehub.providers.base import (
    Capability,
    ProviderAdapter,
    ProviderResult,
    RowProblem,
)
from racehub.providers.base import ResultStatus as ProviderStatus
from racehub.timing.models import ResultStatus
from racehub.timing.results import ParsedRow, duplicate_ids, external_key

# Providers whose result rows name their own entry id, mapped to racehub's external id
# through the entry list (``list_participants``: ``extra["external_id"]``).
EXTERNAL_ID_BY_ENTRY = frozenset({"CHRONOTRACK"})
# Providers whose result rows carry racehub's external id themselves (``participant_ref``).
EXTERNAL_ID_ON_ROW = frozenset({"COPERNICO"})
PULLABLE = EXTERNAL_ID_BY_ENTRY | EXTERNAL_ID_ON_ROW

# What each provider calls the fields named in reasons.
ROW_ID_FIELD = {"CHRONOTRACK": "results_entry_id", "COPERNICO": "id"}

_STATUS = {ProviderStatus.FINISHED: ResultStatus.FINISHED, ProviderStatus.DNF: ResultStatus.DNF,
           ProviderStatus.DNS: ResultStatus.DNS, ProviderStatus.DQ: ResultStatus.DQ}
MAX_BIB = 20
MAX_SPLIT_NAME = 60


@dataclass(frozen=True)
class Entry:
    """A timing-system entry: the external id racehub pushed, if it has one."""

    external_id: str | None


@dataclass
class PullRead:
    """Everything one pull read, before anything is stored."""

    results: list[ProviderResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # rows the adapter could not read
    problem_refs: list[str | None] = field(default_factory=list)
    fetched: int = 0  # result rows read, unreadable ones included
    # ChronoTrack: entry id -> entry; None for providers whose rows carry the id.
    entries: dict[str, Entry] | None = None
    entry_problems: dict[str, str] = field(default_factory=dict)  # entry id -> why unread


def _where(page: int, problem: RowProblem, what: str) -> str:
    return f"{what} page {page}, {problem}"


def read_results(adapter: ProviderAdapter, event_ref: str, provider: str) -> PullRead:
    """The race's results, every page (and ChronoTrack's entries). Provider errors
    propagate: the pull then stores nothing."""
    if provider not in PULLABLE or not adapter.supports(Capability.GET_RESULTS):
        raise ValueError(f"{provider} results cannot be pulled (not a timing system racehub "
                         "reads results from)")
    read = PullRead()
    for page in adapter.get_results(event_ref):
        read.results += page.items
        read.fetched += page.row_count
        for problem in page.problems:
            read.problems.append(_where(page.number, problem, "results"))
            read.problem_refs.append(problem.ref)
    if provider in EXTERNAL_ID_BY_ENTRY:
        read.entries = {}
        for entries in adapter.list_participants(event_ref):
            for entry in entries.items:
                external = entry.extra.get("external_id")
                read.entries[entry.ref] = Entry(str(external).strip() if external else None)
            for problem in entries.problems:
                if problem.ref:
                    read.entry_problems[problem.ref] = str(problem)
    return read


# --- what was read -> E08's rows ---------------------------------------------------------------


@dataclass(frozen=True)
class Pulled:
    """One result to store, as E08 row ``parsed.row_number``, with what the provider said."""

    parsed: ParsedRow
    source_ref: str | None  # the provider's id of the row's athlete/entry
    label: str  # bib and name as the provider gave them, for messages


@dataclass(frozen=True)
class Invalid:
    source_ref: str | None
    label: str
    reason: str


@dataclass
class PullRows:
    rows: list[Pulled] = field(default_factory=list)
    duplicates: frozenset[str] = frozenset()
    # Row number -> why the row has no external id (E08 then lists it unmatched).
    blank_reasons: dict[int, str] = field(default_factory=dict)
    invalid: list[Invalid] = field(default_factory=list)
    on_course: int = 0


def _ms(value: timedelta | None, name: str) -> int | None:
    if value is None:
        return None
    ms = round(value.total_seconds() * 1000)
    if ms < 0:
        raise ValueError(f"{name} {value} is negative")
    return ms


def _label(result: ProviderResult) -> str:
    name = " ".join(n for n in (result.first_name, result.last_name) if n)
    bib = f"bib {result.bib}" if result.bib else "no bib"
    return f"{bib}, {name}" if name else bib


def _split_only(result: ProviderResult) -> bool:
    """A row of an intermediate timing point (ChronoTrack sends each as a row)."""
    return (result.status is ProviderStatus.FINISHED and result.chip_time is None
            and result.clock_time is None and result.place is None and bool(result.splits))


def _external_id(result: ProviderResult, read: PullRead, provider: str) -> tuple[str, str]:
    """(external id, "") or ("", why there is none)."""
    ref = result.participant_ref
    field_name = ROW_ID_FIELD.get(provider, "id")
    if not ref:
        return "", f"the row has no {field_name}: it names no participant"
    if read.entries is None:
        return ref, ""
    entry = read.entries.get(ref)
    if entry is None:
        unread = read.entry_problems.get(ref)
        if unread:
            return "", f"its entry {ref} could not be read ({unread})"
        return "", f"its entry {ref} is not in the race's entry list"
    if not entry.external_id:
        return "", (f"its entry {ref} has no external id: racehub did not send it (entered "
                    "in the timing system by hand?); not matched by bib")
    return entry.external_id, ""


def to_parsed_rows(read: PullRead, provider: str) -> PullRows:
    """E08 rows of what was read: split rows joined to their finish row, athletes on the
    course counted, rows that break E08's rules invalid with the reason."""
    out = PullRows()
    main: list[ProviderResult] = []
    splits: dict[str, dict[str, timedelta]] = {}
    for result in read.results:
        if result.status is ProviderStatus.RUNNING:
            out.on_course += 1
        elif _split_only(result) and result.participant_ref:
            splits.setdefault(result.participant_ref, {}).update(result.splits)
        else:
            main.append(result)
    finished_refs = {r.participant_ref for r in main if r.participant_ref}
    # An entry with splits and no finish row is on the course.
    out.on_course += sum(1 for ref in splits if ref not in finished_refs)
    for number, result in enumerate(main, start=1):
        label = _label(result)
        try:
            parsed, blank = _parse(number, result, read, provider,
                                   splits.get(result.participant_ref or "", {}))
        except ValueError as exc:
            out.invalid.append(Invalid(result.participant_ref, label, str(exc)))
            continue
        if blank:
            out.blank_reasons[number] = blank
        out.rows.append(Pulled(parsed, result.participant_ref, label))
    out.duplicates = frozenset(duplicate_ids(p.parsed.external_id for p in out.rows))
    return out


def _parse(number: int, result: ProviderResult, read: PullRead, provider: str,
           extra_splits: dict[str, timedelta]) -> tuple[ParsedRow, str]:
    status = _STATUS[result.status]
    chip = _ms(result.chip_time, "chip time")
    gun = _ms(result.clock_time, "gun time")
    if status is ResultStatus.FINISHED and chip is None and gun is None:
        raise ValueError("a finished result needs a chip or a gun time; the row has neither")
    bib = (result.bib or "").strip()
    if len(bib) > MAX_BIB:
        raise ValueError(f"bib {bib[:30]!r} is longer than {MAX_BIB} characters")
    if result.place is not None and result.place < 1:
        raise ValueError(f"place {result.place} is not a place (a whole number from 1)")
    external, blank = _external_id(result, read, provider)
    splits = {name[:MAX_SPLIT_NAME]: round(t.total_seconds() * 1000)
              for name, t in {**extra_splits, **result.splits}.items()}
    parsed = ParsedRow(row_number=number, external_id=external_key(external) if external else "",
                       number=bib, status=status, chip_ms=chip, gun_ms=gun,
                       overall_place=result.place, gender_place=None, category_place=None,
                       splits=splits)
    return parsed, blank


def participant_ids(values: Iterable[uuid.UUID | None]) -> set[uuid.UUID]:
    return {v for v in values if v is not None}
