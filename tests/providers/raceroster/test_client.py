"""The Race Roster adapter against its simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from racehub.providers.base import ResultStatus
from racehub.providers.errors import AuthFailed, ProviderDown
from racehub.providers.raceroster import RaceRosterAdapter
from racehub.providers.raceroster.simulator import (
    BASE_PATH,
    DEMO_CREDENTIALS,
    RaceRosterSimulator,
    make_app,
)
from racehub.providers.registry import build_adapter
from tests.providers.clock import on_fake_time

CREDENTIALS = {"client_id": "rr-client-7f3a", "client_secret": "rr-client-secret-51c9",
               "username": "ops@timing.example", "password": "rr-password-e0d2"}
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "rate_per_second": 500, "rate_burst": 50}


@dataclass
class Rr:
    sim: RaceRosterSimulator
    base_url: str

    def adapter(self, **settings: Any) -> RaceRosterAdapter:
        credentials = {**CREDENTIALS, **settings.pop("credentials", {})}
        adapter = build_adapter("RACE_ROSTER", base_url=self.base_url, credentials=credentials,
                                settings={**FAST, **settings})
        assert isinstance(adapter, RaceRosterAdapter)
        return adapter

    def event_id(self, index: int = 0) -> int:
        return sorted(self.sim.events)[index]

    def sub_ref(self, index: int = 0, sub: int = 0) -> str:
        event = self.sim.events[self.event_id(index)]
        return f"{event['eventId']}:{event['subEvents']['data'][sub]['subEventId']}"

    def active(self, index: int = 0) -> list[dict[str, Any]]:
        return [r for r in self.sim.registrations[self.event_id(index)]
                if r["status"] == "active"]

    def token_calls(self) -> int:
        return len(self.sim.faults.seen("/oauth/authorize"))


@pytest.fixture
def make_rr(serve_app: Callable[[Any], str]) -> Callable[..., Rr]:
    def make(**kwargs: Any) -> Rr:
        sim = RaceRosterSimulator(**CREDENTIALS, **kwargs)
        return Rr(sim, serve_app(make_app(simulator=sim)) + BASE_PATH)

    return make


@pytest.fixture
def rr(make_rr: Callable[..., Rr]) -> Rr:
    return make_rr(seed=5, events=2, sub_events_per_event=2, participants_per_event=330)


def test_valid_credentials_get_a_token_and_can_read_events(rr: Rr) -> None:
    adapter = rr.adapter()
    check = adapter.check_credentials()
    assert check.ok, check.message
    assert adapter.token.access_token in rr.sim.access_tokens
    assert adapter.http.client.headers["Authorization"] == f"Bearer {adapter.token.access_token}"


def test_a_wrong_password_is_refused_with_the_reason_and_never_echoed(rr: Rr) -> None:
    adapter = rr.adapter(credentials={"password": "not-the-password-99"})
    check = adapter.check_credentials()
    assert not check.ok
    assert "invalid_grant" in check.message and "credentials were incorrect" in check.message
    assert "not-the-password-99" not in check.message
    with pytest.raises(AuthFailed) as info:
        next(adapter.list_events())
    assert not info.value.retryable and "not-the-password-99" not in str(info.value)


def test_a_wrong_client_secret_is_refused_without_looping(rr: Rr) -> None:
    adapter = rr.adapter(credentials={"client_secret": "other-client-secret-1"})
    check = adapter.check_credentials()
    assert not check.ok and "invalid_client" in check.message
    assert rr.token_calls() == 1  # the 401 from the token endpoint is not "refreshed"


def test_a_missing_credential_field_is_named(rr: Rr) -> None:
    with pytest.raises(AuthFailed, match=r"missing credential field\(s\): password"):
        build_adapter("RACE_ROSTER", base_url=rr.base_url,
                      credentials={k: v for k, v in CREDENTIALS.items() if k != "password"})


def test_a_token_expiring_mid_paging_is_refreshed_once_and_paging_continues(rr: Rr) -> None:
    adapter = rr.adapter(page_size=50)
    pages = adapter.list_participants(str(rr.event_id()))
    first = next(pages)
    old_token = adapter.token.access_token
    rr.sim.faults.arm("expire_token", 1)
    rest = list(pages)
    assert adapter.token.access_token != old_token and old_token not in rr.sim.access_tokens
    assert rr.token_calls() == 2  # the password grant, then one refresh
    refs = [p.ref for page in [first, *rest] for p in page.items]
    assert len(refs) == len(set(refs)) == len(rr.active())


def test_a_refused_refresh_token_falls_back_to_the_password_grant(rr: Rr) -> None:
    adapter = rr.adapter()
    assert adapter.check_credentials().ok
    rr.sim.refresh_tokens.clear()  # revoked on the provider's side
    rr.sim.faults.arm("expire_token", 1)
    events = [e for page in adapter.list_events() for e in page.items]
    assert len(events) == 4
    assert rr.token_calls() == 3  # password, refused refresh, password again


def test_sub_events_are_events_with_start_times_in_utc(rr: Rr) -> None:
    events = [e for page in rr.adapter().list_events() for e in page.items]
    assert [e.ref for e in events] == [rr.sub_ref(0, 0), rr.sub_ref(0, 1),
                                       rr.sub_ref(1, 0), rr.sub_ref(1, 1)]
    toronto = events[0]
    assert toronto.time_zone == "America/Toronto" and toronto.raw["event"]["startDate"].endswith(
        "T07:30:00-04:00")
    assert toronto.start_at == datetime(2026, 9, 29, 11, 30, tzinfo=UTC)  # EDT = UTC-4
    assert (toronto.region, toronto.country, toronto.distance) == ("ON", "CA", "5K")
    assert toronto.parent_ref == str(rr.event_id()) and toronto.parent_name


def test_events_are_paged_to_the_last_page(make_rr: Callable[..., Rr]) -> None:
    rr = make_rr(seed=2, events=130, sub_events_per_event=1, participants_per_event=1,
                 with_results=False)
    pages = list(rr.adapter().list_events())
    # A short page is not the end (the real cap may be smaller than asked): an empty one is.
    assert [(len(p.items), p.is_last) for p in pages] == [(100, False), (30, False), (0, True)]
    assert [s.params["offset"] for s in rr.sim.faults.seen("/events")] == ["0", "100", "130"]


def test_registrations_are_paged_to_the_last_page_once_each(rr: Rr) -> None:
    pages = list(rr.adapter(page_size=40).list_participants(str(rr.event_id())))
    assert [p.is_last for p in pages] == [False] * (len(pages) - 1) + [True]
    refs = [p.ref for page in pages for p in page.items]
    assert len(refs) == len(set(refs))
    assert set(refs) == {str(r["registrationId"]) for r in rr.active()}
    assert all(not page.problems for page in pages)
    # Each request starts at the previous page's last row: 330 rows in 39-row steps, and
    # the list ends with a page holding only that row (nothing new), never a short page.
    offsets = [int(s.params["offset"]) for s in rr.sim.faults.seen("/registrations")]
    assert offsets == [*range(0, 330, 39), 329]


def test_a_sub_event_ref_reads_only_that_sub_event(rr: Rr) -> None:
    ref = rr.sub_ref(0, 1)
    people = [p for page in rr.adapter().list_participants(ref) for p in page.items]
    sub_id = int(ref.split(":")[1])
    assert {p.ref for p in people} == {str(r["registrationId"]) for r in rr.active()
                                       if r["subEventId"] == sub_id}
    assert {p.event_ref for p in people} == {ref}


def test_registration_fields_and_gender_codes_are_normalized(rr: Rr) -> None:
    rows = rr.sim.registrations[rr.event_id()][:5]
    for row, code in zip(rows, [0, 1, 2, 8, 9], strict=True):
        row.update({"gender": code, "status": "active"})
    rows[0].update({"dateOfBirth": "1988-02-29", "bibNumber": "0042",
                    "lastModifiedDate": "2026-03-08T03:30:00-04:00"})
    people = next(rr.adapter().list_participants(str(rr.event_id()))).items[:5]
    assert [p.gender for p in people] == [None, "M", "F", None, "X"]
    assert [p.extra["gender_code"] for p in people] == [0, 1, 2, 8, 9]
    first = people[0]
    assert first.ref == str(rows[0]["registrationId"])
    assert first.birth_date is not None and first.birth_date.isoformat() == "1988-02-29"
    assert first.bib == "0042"  # bibs are text: leading zeros survive
    assert first.modified_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert first.raw["registrationId"] == rows[0]["registrationId"]


def test_incremental_read_returns_only_registrations_changed_since(rr: Rr) -> None:
    event_id = rr.event_id()
    newest = max(datetime.fromisoformat(r["lastModifiedDate"])
                 for r in rr.sim.registrations[event_id])
    since = newest + timedelta(seconds=1)
    adapter = rr.adapter()
    assert [p for page in adapter.list_participants(str(event_id), since)
            for p in page.items] == []
    changed_row = rr.active()[20]
    rr.sim.modify(changed_row["registrationId"], lastName="Married-Name")
    added = rr.sim.add_registration(event_id)
    changed = [p for page in adapter.list_participants(str(event_id), since)
               for p in page.items]
    assert {p.ref for p in changed} == {str(changed_row["registrationId"]),
                                        str(added["registrationId"])}
    seen = rr.sim.faults.seen("/registrations")[-1]
    assert seen.params["lastModifiedDateFrom"] == since.isoformat()


def test_cancelled_registrations_are_withdrawals_not_participants(rr: Rr) -> None:
    event_id = rr.event_id()
    victim = rr.active()[0]
    rr.sim.modify(victim["registrationId"], status="refunded")
    withdrawn = [w for page in rr.adapter().list_withdrawn(str(event_id)) for w in page.items]
    assert len(withdrawn) == 4  # three cancelled by the seed and this refund
    mine = next(w for w in withdrawn if w.ref == str(victim["registrationId"]))
    assert mine.reason == "refunded" and mine.withdrawn_at is not None
    people = {p.ref for page in rr.adapter().list_participants(str(event_id))
              for p in page.items}
    assert not people & {w.ref for w in withdrawn}


def test_throttling_waits_the_retry_after_then_continues(rr: Rr) -> None:
    adapter = rr.adapter(page_size=100)
    assert adapter.check_credentials().ok  # the throttled call is a data call, not the token's
    rr.sim.faults.arm("http_429", 1, retry_after=1)
    clock = on_fake_time(adapter)
    people = [p for page in adapter.list_participants(str(rr.event_id())) for p in page.items]
    assert len(people) == len(rr.active())
    # Retry-After once, first; after it only the rate limit's short waits (time stands still).
    assert clock.sleeps[0] == 1.0 and all(s < 1.0 for s in clock.sleeps[1:])


def test_server_errors_are_retried_then_fail_as_provider_down(rr: Rr) -> None:
    adapter = rr.adapter(max_attempts=3)
    assert adapter.check_credentials().ok
    rr.sim.faults.clear()
    rr.sim.faults.arm("http_500", -1)
    with pytest.raises(ProviderDown) as info:
        next(adapter.list_participants(str(rr.event_id())))
    assert info.value.retryable and info.value.status == 500
    assert len(rr.sim.faults.seen("/registrations")) == 3


def test_malformed_rows_are_reported_per_row_and_the_page_goes_on(rr: Rr) -> None:
    event_id = rr.event_id()
    rr.sim.faults.arm("malformed_rows", 1, rows=[0, 1, 2, 3])
    pages = list(rr.adapter(page_size=100).list_participants(str(event_id)))
    first = pages[0]
    assert [(p.row, p.field) for p in first.problems] == [
        (0, "dateOfBirth"), (1, "gender"), (2, "lastModifiedDate"), (3, "firstName")]
    assert all(p.ref for p in first.problems)
    assert "1990-13-45" in first.problems[0].message and "5" in first.problems[1].message
    assert len(first.items) == len([r for r in rr.sim.registrations[event_id][:100]
                                    if r["status"] == "active"]) - 4
    assert sum(len(p.items) for p in pages) == len(rr.active()) - 4


def test_registrations_deleted_between_pages_do_not_make_later_rows_skip(rr: Rr) -> None:
    rows = rr.sim.registrations[rr.event_id()]
    first_after_page_one = rows[100]["registrationId"]
    expected = {str(r["registrationId"]) for r in rr.active()}
    rr.sim.faults.arm("change_between_pages", 1)
    pages = list(rr.adapter(page_size=100).list_participants(str(rr.event_id())))
    refs = [p.ref for page in pages for p in page.items]
    assert len(refs) == len(set(refs))
    assert set(refs) == expected  # the deleted one was read on page 1
    offsets = [int(s.params["offset"]) for s in rr.sim.faults.seen("/registrations")]
    assert offsets[:3] == [0, 99, 0]  # the shifted page was noticed and read again
    changed = next(p for page in pages for p in page.items if p.ref == str(first_after_page_one))
    assert changed.last_name.endswith("-Changed")


def test_results_are_paged_with_status_and_times(rr: Rr) -> None:
    ref = rr.sub_ref(1, 0)
    pages = list(rr.adapter(results_api="v1", results_per_page=25).get_results(ref))
    assert [(len(p.items), p.is_last) for p in pages] == [(25, False), (25, False), (12, False),
                                                          (0, True)]
    results = [r for page in pages for r in page.items]
    finished = [r for r in results if r.status is ResultStatus.FINISHED]
    assert len(finished) == 60 and finished[0].place == 1
    assert finished[0].clock_time is not None and finished[0].chip_time is not None
    assert finished[0].clock_time - finished[0].chip_time == timedelta(seconds=3.25)
    dnf = [r for r in results if r.status is ResultStatus.DNF]
    assert len(dnf) == 2 and all(r.place is None and r.clock_time is None for r in dnf)


def test_fifty_thousand_registrations_are_read_incrementally(
        make_rr: Callable[..., Rr]) -> None:
    rr = make_rr(seed=9, events=1, sub_events_per_event=3, participants_per_event=50_000,
                 with_results=False)
    event_id = rr.event_id()
    rows = rr.sim.registrations[event_id]
    assert len(rows) == 50_000
    since = datetime(2026, 9, 2, tzinfo=UTC)  # after every seeded change
    rr.sim.set_clock(since)
    changed = {str(rows[i]["registrationId"]) for i in range(0, 50_000, 199)
               if rows[i]["status"] == "active"}
    for ref in changed:
        rr.sim.modify(int(ref), email=f"new.{ref}@example.ca")
    pages = list(rr.adapter().list_participants(str(event_id), since))
    assert {p.ref for page in pages for p in page.items} == changed
    # 252 changed rows: 100, 99 and 53 new per page, then the last row alone (nothing new).
    assert len(pages) == 4 and not pages[-1].items
    assert not any(page.problems for page in pages)


def test_no_secret_or_token_appears_in_logs(rr: Rr, caplog: pytest.LogCaptureFixture,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = rr.adapter(page_size=100)
    rr.sim.faults.arm("http_500", 1)
    rr.sim.faults.arm("expire_token", 1)
    list(adapter.list_participants(str(rr.event_id())))
    tokens = [adapter.token.access_token or "", adapter.token.refresh_token or ""]
    with pytest.raises(AuthFailed) as info:
        next(rr.adapter(credentials={"password": "other-password-42"}).list_events())
    out, err = capsys.readouterr()
    captured = caplog.text + out + err + str(info.value)
    assert "provider_retry" in captured and "HTTP Request" in caplog.text
    for secret in (*CREDENTIALS.values(), "other-password-42", *tokens):
        if secret not in (CREDENTIALS["client_id"], CREDENTIALS["username"]):
            assert secret not in captured


def test_fifty_thousand_registrations_page_through_once_each(
        make_rr: Callable[..., Rr]) -> None:
    rr = make_rr(seed=9, events=1, sub_events_per_event=3, participants_per_event=50_000,
                 with_results=False)
    count = pages = 0
    for page in rr.adapter().list_participants(str(rr.event_id())):
        pages += 1
        count += len(page.items)
        assert not page.problems
    # 99 new rows per 100-row page, then the last row alone: nothing new, the end.
    assert count == 50_000 - 3 and pages == 507
    assert {s.params["limit"] for s in rr.sim.faults.seen("/registrations")} == {"100"}


def test_deleting_the_tail_while_paging_still_reads_every_remaining_row(rr: Rr) -> None:
    adapter = rr.adapter(page_size=100)
    pages = adapter.list_participants(str(rr.event_id()))
    first = next(pages)
    rows = rr.sim.registrations[rr.event_id()]
    for row in list(rows[50:300]):  # 80 rows are left: the next offset, 99, is past the end
        rr.sim.delete(row["registrationId"])
    rest = list(pages)
    refs = {p.ref for page in [first, *rest] for p in page.items}
    assert {str(r["registrationId"]) for r in rr.active()} <= refs
    offsets = [int(s.params["offset"]) for s in rr.sim.faults.seen("/registrations")]
    # The empty page sent us back to the start; the end is a page with nothing new.
    assert offsets == [0, 99, 0, 79]
    assert len(refs) == sum(len(page.items) for page in [first, *rest])


def test_the_demo_server_accepts_its_demo_credentials(serve_app: Callable[[Any], str]) -> None:
    app = make_app()
    adapter = build_adapter("RACE_ROSTER", base_url=serve_app(app) + BASE_PATH,
                            credentials=DEMO_CREDENTIALS)
    assert adapter.check_credentials().ok
    events = [e for page in adapter.list_events() for e in page.items]
    assert len(events) == 4
    first = next(adapter.list_participants(events[0].ref))
    assert first.items and not first.problems
    assert len(app.state.simulator.registrations[int(events[0].parent_ref or 0)]) >= 300


def test_a_token_near_its_expiry_is_refreshed_before_the_call(rr: Rr) -> None:
    now = [1000.0]
    adapter = build_adapter("RACE_ROSTER", base_url=rr.base_url, credentials=CREDENTIALS,
                            settings=FAST, clock=lambda: now[0])
    assert len(list(adapter.list_events())) == 2 and rr.token_calls() == 1  # + empty page
    now[0] += 86_400 - 30  # inside the last minute of the token's day
    assert len(list(adapter.list_events())) == 2
    assert rr.token_calls() == 2  # refreshed up front: no call was refused first
    assert len(rr.sim.faults.seen("/events")) == 4  # no call was refused and re-sent
