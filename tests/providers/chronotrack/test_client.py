"""The ChronoTrack Live adapter against its simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from racehub.providers.base import ProviderParticipant
from racehub.providers.chronotrack import ChronoTrackAdapter
from racehub.providers.chronotrack.simulator import ChronoTrackSimulator, make_app
from racehub.providers.errors import AuthFailed, NotFound, ProviderDown
from racehub.providers.registry import build_adapter
from tests.providers.clock import on_fake_time

CLIENT, USER, PASSWORD = "ct-client-51", "timer@example.org", "ct-Password-77aa"


@dataclass
class Ct:
    sim: ChronoTrackSimulator
    base_url: str

    def adapter(self, *, password: str = PASSWORD, **settings: Any) -> ChronoTrackAdapter:
        options = {"backoff_base": 0.01, "backoff_max": 0.05, **settings}
        adapter = build_adapter("CHRONOTRACK", base_url=self.base_url, credentials={
            "client_id": CLIENT, "user_id": USER, "user_pass": password}, settings=options)
        assert isinstance(adapter, ChronoTrackAdapter)
        return adapter

    def race_ref(self, index: int = 0) -> str:
        race_id = sorted(self.sim.races)[index]
        return f"{self.sim.event_of_race[race_id]}:{race_id}"

    def rows(self, ref: str) -> list[dict[str, str]]:
        return self.sim.entries[int(ref.split(":")[1])]


@pytest.fixture
def make_ct(serve_app: Callable[[Any], str]) -> Callable[..., Ct]:
    def make(**kwargs: Any) -> Ct:
        sim = ChronoTrackSimulator(client_id=CLIENT, user_id=USER, password=PASSWORD, **kwargs)
        return Ct(sim, serve_app(make_app(simulator=sim)) + "/api")

    return make


@pytest.fixture
def ct(make_ct: Callable[..., Ct]) -> Ct:
    return make_ct(seed=7, events=2, races_per_event=2, entries_per_race=320)


def test_the_login_is_accepted_and_the_password_travels_only_as_its_sha1(ct: Ct) -> None:
    check = ct.adapter().check_credentials()
    assert check.ok, check.message
    assert check.account == USER
    [seen] = ct.sim.faults.seen("/event")
    assert seen.params["client_id"] == CLIENT and seen.params["user_id"] == USER
    assert seen.params["format"] == "json"
    assert "user_pass" in seen.params  # masked by the recorder; the server checked the hash


def test_a_wrong_password_is_refused_without_echoing_it_or_its_hash(ct: Ct) -> None:
    adapter = ct.adapter(password="not-the-password-1")
    check = adapter.check_credentials()
    assert not check.ok and "401" in check.message
    with pytest.raises(AuthFailed) as info:
        next(adapter.list_participants(ct.race_ref()))
    digest = hashlib.sha1(b"not-the-password-1").hexdigest()
    assert "not-the-password-1" not in str(info.value) and digest not in str(info.value)
    assert not info.value.retryable


def test_an_unknown_race_is_not_found(ct: Ct) -> None:
    with pytest.raises(NotFound):
        next(ct.adapter().list_participants("31000:99999"))


def test_events_list_every_race_with_the_start_in_utc(ct: Ct) -> None:
    events = [e for page in ct.adapter(page_size=1).list_events() for e in page.items]
    assert len(events) == 4
    denver = [e for e in events if e.time_zone == "America/Denver"]
    assert [e.name for e in denver] == ["5K", "10K"]
    # 7:00 in Salt Lake City in October (MDT, UTC-6) is 13:00 UTC; the 10K starts 30' later.
    assert [(e.start_at.hour, e.start_at.minute) for e in denver] == [(13, 0), (13, 30)]  # type: ignore[union-attr]
    assert all(e.start_at.tzinfo is UTC for e in denver)  # type: ignore[union-attr]
    assert denver[0].parent_name and denver[0].ref.startswith(f"{denver[0].parent_ref}:")


def test_configured_event_ids_limit_the_events(ct: Ct) -> None:
    second = sorted(ct.sim.events)[1]
    pages = list(ct.adapter(eventIds=[str(second)]).list_events())
    assert {e.parent_ref for p in pages for e in p.items} == {str(second)}
    assert pages[-1].is_last


def test_entries_are_paged_by_the_ctlive_headers_to_the_last_page(ct: Ct) -> None:
    ref = ct.race_ref()
    pages = list(ct.adapter(page_size=100).list_participants(ref))
    # 320 rows: the headers say 4 pages, so the full first three do not end the loop and
    # no empty fifth page is asked for.
    assert [(len(p.items), p.is_last) for p in pages] == [
        (100, False), (100, False), (100, False), (20, True)]
    assert all(p.total == 320 for p in pages)
    refs = [p.ref for page in pages for p in page.items]
    assert len(set(refs)) == 320 == len(ct.sim.faults.seen("/entry")) * 80


def test_an_exactly_full_last_page_needs_no_extra_request(make_ct: Callable[..., Ct]) -> None:
    ct = make_ct(seed=3, events=1, races_per_event=1, entries_per_race=200)
    pages = list(ct.adapter(page_size=100).list_participants(ct.race_ref()))
    assert [len(p.items) for p in pages] == [100, 100]
    assert len(ct.sim.faults.seen("/entry")) == 2


def test_without_paging_headers_an_empty_page_ends_the_list(make_ct: Callable[..., Ct]) -> None:
    # A short page is not the end: a server capping pages below `size` sends short pages
    # all along (issue 16). Without headers only an empty page says "no more".
    ct = make_ct(seed=4, events=1, races_per_event=1, entries_per_race=250,
                 paging_headers=False)
    pages = list(ct.adapter(page_size=100).list_participants(ct.race_ref()))
    assert [(len(p.items), p.is_last, p.total) for p in pages] == [
        (100, False, None), (100, False, None), (50, False, None), (0, True, None)]


def test_a_whole_event_lists_the_entries_of_every_race(ct: Ct) -> None:
    event_id = ct.race_ref().split(":")[0]
    people = [p for page in ct.adapter(page_size=250).list_participants(event_id)
              for p in page.items]
    assert len(people) == 640
    assert {p.event_ref for p in people} == {ct.race_ref(0), ct.race_ref(1)}


def test_string_values_are_normalized(ct: Ct) -> None:
    ref = ct.race_ref()
    row = ct.rows(ref)[0]
    row.update({"entry_bib": "0042", "entry_race_age": "39", "athlete_birthdate": "1984-02-29",
                "athlete_sex": "F", "entry_external_id": "rh-123"})
    first = next(ct.adapter().list_participants(ref)).items[0]
    assert first.ref == row["entry_id"]
    assert first.bib == "0042"  # bibs stay text: leading zeros are meaningful
    assert first.age == 39 and first.birth_date == date(1984, 2, 29) and first.gender == "F"
    assert first.extra["external_id"] == "rh-123"
    assert first.modified_at == datetime.fromtimestamp(int(row["entry_modified_time"]), tz=UTC)


def test_incremental_read_returns_only_entries_changed_since(ct: Ct) -> None:
    ref = ct.race_ref()
    newest = max(int(r["entry_modified_time"]) for rows in ct.sim.entries.values()
                 for r in rows)
    since = datetime.fromtimestamp(newest + 1, tz=UTC)
    assert [p for page in ct.adapter().list_participants(ref, since) for p in page.items] == []
    rows = ct.rows(ref)
    ct.sim.modify(rows[10]["entry_id"], athlete_last_name="Married-Name")
    added = ct.sim.add_entry(int(ref.split(":")[1]))
    changed = [p for page in ct.adapter().list_participants(ref, since) for p in page.items]
    assert {p.ref for p in changed} == {rows[10]["entry_id"], added["entry_id"]}
    assert "Married-Name" in {p.last_name for p in changed}
    assert {s.params.get("modified_after") for s in ct.sim.faults.seen("/entry")} >= {
        str(int(since.timestamp()))}


def test_a_429_waits_retry_after_then_continues(ct: Ct) -> None:
    ct.sim.faults.arm("http_429", 1, retry_after=1)
    adapter = ct.adapter(page_size=250)
    clock = on_fake_time(adapter)
    pages = list(adapter.list_participants(ct.race_ref()))
    assert sum(len(p.items) for p in pages) == 320
    # Retry-After once, first; after it only the rate limit's short waits (time stands still).
    assert clock.sleeps[0] == 1.0 and all(s < 1.0 for s in clock.sleeps[1:])


def test_server_errors_are_retried_then_fail_as_provider_down(ct: Ct) -> None:
    ct.sim.faults.arm("http_500", -1)
    with pytest.raises(ProviderDown) as info:
        next(ct.adapter(max_attempts=3).list_participants(ct.race_ref()))
    assert info.value.retryable
    assert len(ct.sim.faults.seen("/entry")) == 3


def test_a_single_server_error_is_retried_transparently(ct: Ct) -> None:
    ct.sim.faults.arm("http_503", 1)
    adapter = ct.adapter(page_size=250)
    assert sum(len(p.items) for p in adapter.list_participants(ct.race_ref())) == 320
    assert adapter.http.attempts_made == 3  # two pages and the repeated first


def test_malformed_rows_are_reported_per_row_and_the_page_goes_on(ct: Ct) -> None:
    ref = ct.race_ref()
    ct.sim.faults.arm("malformed_rows", 1, rows=[0, 1, 2, 3])
    pages = list(ct.adapter(page_size=100).list_participants(ref))
    first = pages[0]
    assert len(first.items) == 96 and first.row_count == 100
    assert [(p.row, p.field) for p in first.problems] == [
        (0, "athlete_birthdate"), (1, "athlete_sex"), (2, "entry_race_age"), (3, "row")]
    assert [p.ref for p in first.problems[:3]] == [r["entry_id"] for r in ct.rows(ref)[:3]]
    assert "1990-13-45" in first.problems[0].message
    assert sum(len(p.items) for p in pages) == 316


def test_entries_changed_between_pages_are_neither_skipped_nor_doubled(ct: Ct) -> None:
    ref = ct.race_ref()
    rows = list(ct.rows(ref))
    shifted_past = rows[100]["entry_id"]  # moves to page 1 once rows[0] is removed
    ct.sim.faults.arm("change_between_pages", 1)
    pages = list(ct.adapter(page_size=100).list_participants(ref))
    refs = [p.ref for page in pages for p in page.items]
    assert len(refs) == len(set(refs)) == 320  # the removed one was read on page 1
    assert shifted_past in refs
    changed = next(p for page in pages for p in page.items if p.ref == shifted_past)
    assert changed.last_name.endswith("-Changed")
    assert [p.is_last for p in pages] == [False] * (len(pages) - 1) + [True]


def test_entries_upload_with_a_stable_external_id_and_strings_only(ct: Ct) -> None:
    ref = ct.race_ref(1)
    taken = ct.rows(ref)[0]["entry_bib"]
    people = [
        ProviderParticipant(ref="ep-0001", event_ref=ref, first_name="Ada", last_name="Lovelace",
                            bib="9001", gender="F", birth_date=date(1990, 12, 10), age=35),
        ProviderParticipant(ref="ep-0002", event_ref=ref, first_name="Alan", last_name="Turing",
                            bib=taken),
        ProviderParticipant(ref="ep-0003", event_ref=ref),
    ]
    report = ct.adapter().push_participants(ref, people)
    assert report.accepted == 1
    assert [(p.row, p.field) for p in report.problems] == [
        (1, "entry_bib"), (2, "athlete_first_name")]
    [upload] = ct.sim.uploads
    assert all(isinstance(v, str) for row in upload["rows"] for v in row.values())
    stored = next(r for r in ct.rows(ref) if r["entry_external_id"] == "ep-0001")
    assert stored["entry_bib"] == "9001" and stored["athlete_birthdate"] == "1990-12-10"
    # The same participant again, with a new bib: updated in place, found by its id.
    people[0].bib = "9002"
    again = ct.adapter().push_participants(ref, people[:1])
    assert again.accepted == 1 and not again.problems
    assert [r["entry_bib"] for r in ct.rows(ref) if r["entry_external_id"] == "ep-0001"] == [
        "9002"]


def test_entries_upload_to_a_whole_event_is_refused(ct: Ct) -> None:
    with pytest.raises(ValueError, match="event_id:race_id"):
        ct.adapter().push_participants("31000", [])
    assert ct.sim.faults.seen() == []


def test_results_of_a_race_with_times_and_ranks(ct: Ct) -> None:
    ref = ct.race_ref()
    ct.sim.results[int(ref.split(":")[1])][1]["results_time"] = "DNF"
    results = [r for page in ct.adapter(page_size=20).get_results(ref) for r in page.items]
    assert len(results) == 50
    first = results[0]
    assert first.place == 1 and first.chip_time == timedelta(minutes=18, seconds=13.5)
    assert first.clock_time == timedelta(minutes=18, seconds=19.5)
    assert first.participant_ref == ct.rows(ref)[0]["entry_id"]
    assert results[1].status.value == "DNF" and results[1].chip_time is None


def test_fifty_thousand_entries_page_at_the_assumed_maximum(make_ct: Callable[..., Ct]) -> None:
    ct = make_ct(seed=11, events=1, races_per_event=1, entries_per_race=50_000,
                 results_per_race=0)
    # Capped to the assumed 250; the polite default budget (3/s) would make this a minute.
    adapter = ct.adapter(page_size=10_000, rate_per_second=500, rate_burst=500)
    count = pages = 0
    for page in adapter.list_participants(ct.race_ref()):
        pages += 1
        count += len(page.items)
        assert not page.problems
    assert count == 50_000 and pages == 200
    assert {s.params["size"] for s in ct.sim.faults.seen("/entry")} == {"250"}


def test_no_secret_appears_in_logs_during_failures(
        ct: Ct, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    ct.sim.faults.arm("http_500", 1)
    list(ct.adapter(page_size=250).list_participants(ct.race_ref()))
    with pytest.raises(AuthFailed) as info:
        next(ct.adapter(password="other-pass-42").list_participants(ct.race_ref()))
    out, err = capsys.readouterr()
    captured = caplog.text + out + err + str(info.value)
    assert "provider_retry" in captured and "HTTP Request" in caplog.text
    for secret in (PASSWORD, "other-pass-42", hashlib.sha1(PASSWORD.encode()).hexdigest(),
                   hashlib.sha1(b"other-pass-42").hexdigest()):
        assert secret not in captured
