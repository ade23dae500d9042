"""The RunSignUp adapter against its simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from racehub.providers.base import ProviderParticipant, ProviderResult, ResultStatus
from racehub.providers.errors import AuthFailed, BadData, NotFound, ProviderDown
from racehub.providers.registry import build_adapter
from racehub.providers.runsignup import RunSignUpAdapter
from racehub.providers.runsignup.simulator import RunSignUpSimulator, make_app
from tests.providers.clock import on_fake_time

KEY, SECRET = "rsu-key-0a1b2c", "rsu-secret-9z8y7x"


@dataclass
class Rsu:
    sim: RunSignUpSimulator
    base_url: str

    def adapter(self, *, secret: str = SECRET, **settings: Any) -> RunSignUpAdapter:
        options = {"backoff_base": 0.01, "backoff_max": 0.05, **settings}
        adapter = build_adapter("RUNSIGNUP", base_url=self.base_url,
                                credentials={"api_key": KEY, "api_secret": secret},
                                settings=options)
        assert isinstance(adapter, RunSignUpAdapter)
        return adapter

    def event_ref(self, race_index: int = 0, event_index: int = 0) -> str:
        race = sorted(self.sim.races.values(), key=lambda r: r["race_id"])[race_index]
        return f"{race['race_id']}:{race['events'][event_index]['event_id']}"

    def rows(self, ref: str) -> list[dict[str, Any]]:
        return self.sim.participants[int(ref.split(":")[1])]


@pytest.fixture
def make_rsu(serve_app: Callable[[Any], str]) -> Callable[..., Rsu]:
    def make(**kwargs: Any) -> Rsu:
        sim = RunSignUpSimulator(api_key=KEY, api_secret=SECRET, **kwargs)
        return Rsu(sim, serve_app(make_app(simulator=sim)) + "/Rest")

    return make


@pytest.fixture
def rsu(make_rsu: Callable[..., Rsu]) -> Rsu:
    return make_rsu(seed=7, races=2, events_per_race=2, participants_per_event=320)


def test_valid_keys_are_accepted(rsu: Rsu) -> None:
    check = rsu.adapter().check_credentials()
    assert check.ok, check.message


def test_the_secret_goes_in_a_header_unless_query_auth_is_asked_for(rsu: Rsu) -> None:
    assert rsu.adapter().check_credentials().ok
    assert rsu.adapter(auth_style="query").check_credentials().ok
    header_call, query_call = rsu.sim.faults.requests[-2:]
    assert "rsu_api_key" in header_call.params and "api_secret" not in header_call.params
    assert {"api_key", "api_secret"} <= set(query_call.params)
    with pytest.raises(BadData, match="settings.auth_style: must be one of header, query"):
        rsu.adapter(auth_style="cookie")


def test_an_oauth_access_token_is_sent_as_a_bearer_token(rsu: Rsu) -> None:
    def with_token(token: str) -> RunSignUpAdapter:
        adapter = build_adapter("RUNSIGNUP", base_url=rsu.base_url,
                                credentials={"access_token": token})
        assert isinstance(adapter, RunSignUpAdapter)
        return adapter

    assert with_token(rsu.sim.access_token).check_credentials().ok
    assert "api_key" not in rsu.sim.faults.requests[-1].params
    refused = with_token("expired-token-4242").check_credentials()
    assert not refused.ok and "error 6" in refused.message
    assert "expired-token-4242" not in refused.message


def test_without_a_key_pair_or_a_token_the_missing_field_is_named(rsu: Rsu) -> None:
    with pytest.raises(AuthFailed, match=r"missing credential field\(s\): api_secret \(or give"):
        build_adapter("RUNSIGNUP", base_url=rsu.base_url, credentials={"api_key": KEY})


def test_valid_keys_without_rights_on_the_race_are_reported(rsu: Rsu) -> None:
    race_id = rsu.event_ref().split(":")[0]
    assert rsu.adapter(race_ids=[race_id]).check_credentials().ok
    check = rsu.adapter(race_ids=["999999"]).check_credentials()
    assert not check.ok and "Race not found" in check.message


def test_a_wrong_secret_is_refused_without_echoing_it(rsu: Rsu) -> None:
    adapter = rsu.adapter(secret="wrong-secret-123")
    check = adapter.check_credentials()
    assert not check.ok
    assert "error 6" in check.message and "wrong-secret-123" not in check.message
    with pytest.raises(AuthFailed) as info:
        next(adapter.list_participants(rsu.event_ref()))
    assert "wrong-secret-123" not in str(info.value)
    assert not info.value.retryable


def test_unknown_race_is_not_found(rsu: Rsu) -> None:
    with pytest.raises(NotFound, match="error 201"):
        next(rsu.adapter().list_participants("424242:1"))


def test_events_come_from_every_race_with_times_in_utc(rsu: Rsu) -> None:
    events = [e for page in rsu.adapter().list_events() for e in page.items]
    assert len(events) == 4
    denver = [e for e in events if e.time_zone == "America/Denver"]
    assert denver, "the second seeded race is in Denver"
    event = denver[0]
    raw_start = event.raw["event"]["start_time"]  # "M/D/YYYY 7:30", Denver local
    assert raw_start.endswith(" 7:30")
    # October: Mountain Daylight Time is UTC-6.
    assert event.start_at == datetime(event.start_at.year, event.start_at.month,
                                      event.start_at.day, 13, 30, tzinfo=UTC)
    assert event.parent_ref and event.ref.startswith(event.parent_ref + ":")


def test_races_are_paged_to_the_last_page(make_rsu: Callable[..., Rsu]) -> None:
    rsu = make_rsu(seed=5, races=3, events_per_race=1, participants_per_event=5)
    pages = list(rsu.adapter(races_per_page=2).list_events())
    assert [(len(p.items), p.is_last) for p in pages] == [(2, False), (1, True)]
    assert len({e.parent_ref for p in pages for e in p.items}) == 3


def test_configured_races_limit_the_events(rsu: Rsu) -> None:
    race_id = rsu.event_ref(1).split(":")[0]
    pages = list(rsu.adapter(race_ids=[race_id]).list_events())
    assert [e.parent_ref for p in pages for e in p.items] == [race_id, race_id]
    # The connection's chosen events name their races too (race_id:event_id refs).
    by_events = list(rsu.adapter(eventIds=[rsu.event_ref(1, 0), rsu.event_ref(1, 1)])
                     .list_events())
    assert [e.parent_ref for p in by_events for e in p.items] == [race_id, race_id]


def test_participants_are_paged_to_the_last_page_once_each(rsu: Rsu) -> None:
    ref = rsu.event_ref()
    expected = {str(r["registration_id"]) for r in rsu.rows(ref)}
    pages = list(rsu.adapter(results_per_page=100).list_participants(ref))
    assert [p.is_last for p in pages] == [False] * (len(pages) - 1) + [True]
    refs = [p.ref for page in pages for p in page.items]
    assert len(refs) == len(set(refs)) and set(refs) == expected
    assert all(not page.problems for page in pages)
    assert all(p.event_ref == ref for page in pages for p in page.items)


def test_an_exactly_full_last_page_ends_on_the_empty_page_after_it(
        make_rsu: Callable[..., Rsu]) -> None:
    rsu = make_rsu(seed=3, races=1, events_per_race=1, participants_per_event=203)
    ref = rsu.event_ref()
    assert len(rsu.rows(ref)) == 200  # 3 were withdrawn by the seed
    pages = list(rsu.adapter(results_per_page=100).list_participants(ref))
    assert [len(p.items) for p in pages] == [100, 100, 0]


def test_participant_fields_are_normalized(rsu: Rsu) -> None:
    ref = rsu.event_ref()
    row = rsu.rows(ref)[0]
    row.update({"bib_num": 1234, "amount_paid": "$1,057.75", "imported": "T",
                "registration_date": "3/8/2026 3:30"})  # just after the DST jump
    row["user"].update({"dob": "1984-02-29", "gender": "F"})
    first = next(rsu.adapter().list_participants(ref)).items[0]
    assert first.ref == str(row["registration_id"])
    assert first.bib == "1234"
    assert str(first.amount_paid) == "1057.75"
    assert first.extra["imported"] is True
    assert first.birth_date.isoformat() == "1984-02-29"  # type: ignore[union-attr]
    assert first.gender == "F"
    assert first.registered_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # EDT = UTC-4
    assert first.modified_at == datetime.fromtimestamp(row["last_modified"], tz=UTC)
    assert first.raw["registration_id"] == row["registration_id"]


def test_incremental_read_returns_only_rows_changed_since(rsu: Rsu) -> None:
    ref = rsu.event_ref()
    newest = max(int(r["last_modified"]) for rows in rsu.sim.participants.values()
                 for r in rows)
    since = datetime.fromtimestamp(newest + 1, tz=UTC)
    assert [p for page in rsu.adapter().list_participants(ref, since) for p in page.items] == []
    rows = rsu.rows(ref)
    rsu.sim.modify(rows[10]["registration_id"], last_name="Married-Name")
    added = rsu.sim.add_participant(int(ref.split(":")[1]))
    changed = [p for page in rsu.adapter().list_participants(ref, since) for p in page.items]
    assert {p.ref for p in changed} == {str(rows[10]["registration_id"]),
                                        str(added["registration_id"])}
    assert "Married-Name" in {p.last_name for p in changed}


def test_provider_throttle_waits_retry_after_then_continues(rsu: Rsu) -> None:
    rsu.sim.faults.arm("throttle", 1, retry_after=1)
    adapter = rsu.adapter(results_per_page=200)
    clock = on_fake_time(adapter)
    pages = list(adapter.list_participants(rsu.event_ref()))
    assert sum(len(p.items) for p in pages) == len(rsu.rows(rsu.event_ref()))
    # Retry-After once, first; after it only the rate limit's short waits (time stands still).
    assert clock.sleeps[0] == 1.0 and all(s < 1.0 for s in clock.sleeps[1:])


def test_provider_throttle_without_retry_after_backs_off_and_recovers(rsu: Rsu) -> None:
    rsu.sim.faults.arm("throttle", 2)
    adapter = rsu.adapter(results_per_page=2500)
    pages = list(adapter.list_participants(rsu.event_ref()))
    assert len(pages) == 1 and adapter.http.attempts_made == 3


def test_server_errors_are_retried_then_fail_as_provider_down(rsu: Rsu) -> None:
    rsu.sim.faults.arm("http_500", -1)
    with pytest.raises(ProviderDown) as info:
        next(rsu.adapter(max_attempts=3).list_participants(rsu.event_ref()))
    assert info.value.retryable
    assert len(rsu.sim.faults.seen("/participants")) == 3


def test_a_timeout_mid_paging_is_retried(rsu: Rsu) -> None:
    adapter = rsu.adapter(results_per_page=100, read_timeout=0.8)
    pages = adapter.list_participants(rsu.event_ref())
    first = next(pages)
    rsu.sim.faults.arm("slow", 1, seconds=2.0)
    rest = list(pages)
    assert adapter.http.attempts_made >= len(rest) + 2  # the timed-out attempt was repeated
    assert len(first.items) + sum(len(p.items) for p in rest) == len(rsu.rows(rsu.event_ref()))


def test_malformed_rows_are_reported_per_row_and_the_page_goes_on(rsu: Rsu) -> None:
    ref = rsu.event_ref()
    rsu.sim.faults.arm("malformed_rows", 1, rows=[0, 1, 2, 3])
    pages = list(rsu.adapter(results_per_page=100).list_participants(ref))
    first = pages[0]
    assert len(first.items) == 96 and first.row_count == 100
    assert [(p.row, p.field) for p in first.problems] == [
        (0, "registration_date"), (1, "user.dob"), (2, "amount_paid"), (3, "user")]
    assert all(p.ref for p in first.problems)
    assert "1990-13-45" in first.problems[1].message
    assert sum(len(p.items) for p in pages) == len(rsu.rows(ref)) - 4


def test_records_changed_between_pages_are_neither_skipped_nor_doubled(rsu: Rsu) -> None:
    ref = rsu.event_ref()
    rows = sorted(rsu.rows(ref), key=lambda r: r["registration_id"])
    first_of_page_two = rows[100]["registration_id"]
    rsu.sim.faults.arm("change_between_pages", 1)
    pages = list(rsu.adapter(results_per_page=100).list_participants(ref))
    refs = [p.ref for page in pages for p in page.items]
    assert len(refs) == len(set(refs)) == len(rows)  # the one removed was read on page 1
    changed = next(p for page in pages for p in page.items if p.ref == str(first_of_page_two))
    assert changed.last_name.endswith("-Changed")


def test_withdrawn_registrations_are_listed_with_reason_and_time(rsu: Rsu) -> None:
    ref = rsu.event_ref()
    victim = rsu.rows(ref)[0]["registration_id"]
    before = datetime.now(UTC) - timedelta(days=3650)
    rsu.sim.remove(victim, reason="Injury")
    withdrawn = [w for page in rsu.adapter().list_withdrawn(ref, before) for w in page.items]
    assert len(withdrawn) == 4  # three from the seed and this one
    mine = next(w for w in withdrawn if w.ref == str(victim))
    assert mine.reason == "Injury" and mine.withdrawn_at is not None
    assert mine.event_ref == ref


def test_bib_and_chip_assignment_reports_refused_rows(rsu: Rsu) -> None:
    ref = rsu.event_ref()
    a, b = rsu.rows(ref)[:2]
    taken = next(r["bib_num"] for r in rsu.rows(ref)[2:] if r["bib_num"])
    report = rsu.adapter().push_participants(ref, [
        ProviderParticipant(ref=str(a["registration_id"]), event_ref=ref, bib="777", chip="C1"),
        ProviderParticipant(ref=str(b["registration_id"]), event_ref=ref, bib=str(taken)),
        ProviderParticipant(ref="12", event_ref=ref, bib="A-12"),
    ])
    assert report.accepted == 1
    assert a["bib_num"] == 777 and a["chip_num"] == "C1"
    assert [(p.row, p.field) for p in report.problems] == [(2, "bib_num"), (1, None)]
    assert "already assigned" in report.problems[1].message


def test_results_round_trip_through_a_new_result_set(rsu: Rsu) -> None:
    ref = rsu.event_ref(0, 1)
    existing = [r for page in rsu.adapter().get_results(ref) for r in page.items]
    assert len(existing) == 50 and existing[0].place == 1
    assert existing[0].clock_time is not None and existing[0].chip_time is not None
    runners = [r for r in rsu.rows(ref) if r["bib_num"]][:3]
    sent = [
        ProviderResult(event_ref=ref, bib=str(runners[0]["bib_num"]), place=1,
                       clock_time=timedelta(minutes=28, seconds=1.123),
                       chip_time=timedelta(minutes=27, seconds=59),
                       splits={"101": timedelta(minutes=10)}),
        ProviderResult(event_ref=ref, participant_ref=str(runners[1]["registration_id"]),
                       status=ResultStatus.DNF),
        ProviderResult(event_ref=ref, bib="99999999", place=3,
                       clock_time=timedelta(minutes=40)),
        ProviderResult(event_ref=ref, place=4, clock_time=timedelta(minutes=41)),
    ]
    report = rsu.adapter(result_set_name="racehub").post_results(ref, sent)
    assert report.accepted == 2
    assert [(p.row, p.field) for p in report.problems] == [(3, "bib"), (2, None)]
    new_set = rsu.sim.result_sets[int(ref.split(":")[1])][-1]
    assert new_set["individual_result_set_name"] == "racehub"
    stored = {r["bib"]: r for r in new_set["results"]}
    assert stored[runners[0]["bib_num"]]["clock_time"] == "0:28:01.123"
    assert stored[runners[0]["bib_num"]]["split-101"] == "0:10:00.000"
    assert stored[runners[1]["bib_num"]]["clock_time"] == "DNF"
    fetched = [r for page in rsu.adapter().get_results(ref) for r in page.items]
    assert len(fetched) == 52  # both result sets
    dnfs = [r for r in fetched if r.status is ResultStatus.DNF]
    assert [(r.participant_ref, r.clock_time) for r in dnfs] == [
        (str(runners[1]["registration_id"]), None)]


def test_fifty_thousand_participants_page_at_the_documented_maximum(
        make_rsu: Callable[..., Rsu]) -> None:
    rsu = make_rsu(seed=11, races=1, events_per_race=1, participants_per_event=50_003,
                   with_results=False)
    ref = rsu.event_ref()
    adapter = rsu.adapter(results_per_page=10_000)  # capped to RunSignUp's 2,500
    count = pages = 0
    for page in adapter.list_participants(ref):
        pages += 1
        count += len(page.items)
        assert not page.problems
    assert count == 50_000 and pages == 21  # 20 full pages and the empty one after
    assert {s.params["results_per_page"] for s in rsu.sim.faults.seen("/participants")} == {
        "2500"}


OTHER_SECRET = "other-secret-42"


def test_no_secret_appears_in_logs_during_failures(
        rsu: Rsu, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    rsu.sim.faults.arm("http_500", 1)
    rsu.sim.faults.arm("throttle", 1)
    with rsu.adapter(results_per_page=2500) as adapter:
        list(adapter.list_participants(rsu.event_ref()))
    # The wrong secret is a name here: a traceback quoting this line must not count as a leak.
    with rsu.adapter(secret=OTHER_SECRET) as adapter, pytest.raises(AuthFailed) as info:
        next(adapter.list_participants(rsu.event_ref()))
    out, err = capsys.readouterr()
    captured = caplog.text + out + err + str(info.value)
    assert "provider_retry" in captured and "HTTP Request" in caplog.text
    for secret in (SECRET, KEY, OTHER_SECRET):
        assert secret not in captured


def test_a_results_post_answered_500_is_not_sent_again_by_the_adapter(rsu: Rsu) -> None:
    """The platform may have stored the rows before failing: sending them again would add
    them twice (a publish reads the set back first instead)."""
    ref = rsu.event_ref(0, 1)
    set_id = rsu.adapter().create_result_set(ref, "racehub")
    runner = next(r for r in rsu.rows(ref) if r["bib_num"])
    rsu.sim.faults.arm("results_500_mid_batch", rows=1)

    with pytest.raises(ProviderDown):
        rsu.adapter().post_results(ref, [ProviderResult(
            event_ref=ref, participant_ref=str(runner["registration_id"]), place=1,
            clock_time=timedelta(minutes=20))], result_set_id=set_id)

    posts = [r for r in rsu.sim.faults.requests if r.path.endswith("/full-results")]
    assert len(posts) == 1
    [stored] = [r for page in rsu.adapter().read_result_set(ref, set_id) for r in page.items]
    assert stored.participant_ref == str(runner["registration_id"]) and stored.ref
    assert (set_id, "racehub") in rsu.adapter().result_sets(ref)
