"""The Haku adapter against its simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from racehub.providers.errors import AuthFailed, ProviderDown, Throttled
from racehub.providers.haku import HakuAdapter
from racehub.providers.haku.simulator import (
    BASE_PATH,
    DEMO_CREDENTIALS,
    HakuSimulator,
    demo_settings,
    make_app,
)
from racehub.providers.registry import build_adapter
from tests.providers.clock import on_fake_time

CREDENTIALS = {"client_id": "haku-client-4b7e", "client_secret": "haku-client-secret-c2d8"}
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "rate_per_second": 500, "rate_burst": 50}


@dataclass
class Haku:
    sim: HakuSimulator
    base_url: str

    def adapter(self, **settings: Any) -> HakuAdapter:
        credentials = {**CREDENTIALS, **settings.pop("credentials", {})}
        adapter = build_adapter("HAKU", base_url=self.base_url, credentials=credentials,
                                settings={**FAST, **settings})
        assert isinstance(adapter, HakuAdapter)
        return adapter

    def event_id(self, index: int = 0) -> int:
        return sorted(self.sim.events)[index]

    def active(self, index: int = 0) -> list[dict[str, Any]]:
        return [r for r in self.sim.registrations[self.event_id(index)]
                if not r["is_cancelled"]]

    def detail_calls(self) -> int:
        return sum(1 for r in self.sim.faults.requests if "/registrations/" in r.path)

    def list_calls(self) -> int:
        return len(self.sim.faults.seen("/participants"))


@pytest.fixture
def make_haku(serve_app: Callable[[Any], str]) -> Callable[..., Haku]:
    def make(**kwargs: Any) -> Haku:
        sim = HakuSimulator(**{**CREDENTIALS, **kwargs})
        return Haku(sim, serve_app(make_app(simulator=sim)) + BASE_PATH)

    return make


@pytest.fixture
def haku(make_haku: Callable[..., Haku]) -> Haku:
    return make_haku(seed=4, events=2, participants_per_event=230)


def test_the_default_budget_is_about_500_calls_an_hour() -> None:
    limit = HakuAdapter.default_rate_limit
    assert round(limit.per_second * 3600) == 500
    assert limit.burst + limit.per_second * 3600 <= 550  # a burst cannot double the hour


def test_production_gets_its_token_from_the_auth_host() -> None:
    adapter = build_adapter("HAKU", credentials=CREDENTIALS)
    assert isinstance(adapter, HakuAdapter)
    assert adapter.token.url == "https://prod-auth.hakuapp.com/oauth2/token"
    assert adapter.base_url == "https://api.hakuapp.com"


def test_valid_credentials_get_a_token_sent_raw(haku: Haku) -> None:
    adapter = haku.adapter()
    check = adapter.check_credentials()
    assert check.ok, check.message
    assert adapter.http.client.headers["Authorization"] == adapter.token.access_token
    assert adapter.token.access_token in haku.sim.tokens


def test_a_bearer_prefix_is_refused_by_the_api(haku: Haku) -> None:
    adapter = haku.adapter()
    assert adapter.check_credentials().ok
    adapter.http.client.headers["Authorization"] = f"Bearer {adapter.token.access_token}"
    response = adapter.http.client.get(f"{haku.base_url}/events")
    assert response.status_code == 401


def test_a_wrong_secret_is_refused_and_never_echoed(haku: Haku) -> None:
    adapter = haku.adapter(credentials={"client_secret": "wrong-secret-777"})
    check = adapter.check_credentials()
    assert not check.ok and "invalid_client" in check.message
    assert "wrong-secret-777" not in check.message
    with pytest.raises(AuthFailed) as info:
        next(adapter.list_events())
    assert not info.value.retryable and "wrong-secret-777" not in str(info.value)


def test_an_expired_token_is_replaced_once_mid_paging(haku: Haku) -> None:
    adapter = haku.adapter(per_page=50)
    pages = adapter.list_participants(str(haku.event_id()))
    first = next(pages)
    haku.sim.faults.arm("expire_token", 1)
    rest = list(pages)
    assert haku.sim.tokens_issued == 2
    refs = [p.ref for page in [first, *rest] for p in page.items]
    assert len(refs) == len(set(refs)) == len(haku.active())


def test_events_are_paged_to_the_last_page_with_start_times_in_utc(
        make_haku: Callable[..., Haku]) -> None:
    haku = make_haku(seed=3, events=7, participants_per_event=2)
    pages = list(haku.adapter(per_page=3).list_events())
    # A short page is not the end (the real cap is unknown): an empty page is.
    assert [(len(p.items), p.is_last) for p in pages] == [(3, False), (3, False), (1, False),
                                                          (0, True)]
    nashville = next(e for p in pages for e in p.items if e.ref == str(haku.event_id()))
    assert nashville.raw["event_date"].endswith("T07:00:00-05:00")  # CDT
    assert nashville.start_at == datetime(2026, 10, 6, 12, 0, tzinfo=UTC)
    assert nashville.time_zone == "America/Chicago"


def test_participants_are_paged_to_the_last_page_with_one_detail_call_each(haku: Haku) -> None:
    adapter = haku.adapter(per_page=50)
    pages = list(adapter.list_participants(str(haku.event_id())))
    refs = [p.ref for page in pages for p in page.items]
    assert len(refs) == len(set(refs))
    assert set(refs) == {r["registration_number"] for r in haku.active()}
    assert [p.is_last for p in pages] == [False] * (len(pages) - 1) + [True]
    # 230 rows: 5 list pages and the empty one that ends the list, then the top re-read
    # once for rows changed meanwhile.
    assert haku.list_calls() == 7 and len(pages) == 7 and not pages[-1].items
    assert haku.detail_calls() == adapter.detail_calls == len(haku.active())


def test_bib_chip_and_birth_date_come_from_the_detail_call(haku: Haku) -> None:
    record = haku.sim.registrations[haku.event_id()][0]
    haku.sim.modify(record["registration_number"], tag_number="0457", chip_number="E2X1",
                    dob="1979-06-30", gender="female", first_name="Ana María",
                    last_name="López", created_at=datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
                    amount=57.75)
    first = next(haku.adapter().list_participants(str(haku.event_id()))).items[0]
    assert first.ref == record["registration_number"]  # the newest change comes first
    assert (first.bib, first.chip, first.gender) == ("0457", "E2X1", "F")
    assert (first.first_name, first.last_name) == ("Ana María", "López")
    assert first.birth_date is not None and first.birth_date.isoformat() == "1979-06-30"
    # Sent as Central local time with its offset; stored in UTC.
    assert first.raw["row"]["registered_at"] == "2026-03-08T01:30:00-06:00"
    assert first.registered_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert str(first.amount_paid) == "57.75"
    assert first.raw["detail"]["registration_number"] == record["registration_number"]


def test_with_since_only_new_or_changed_registrations_cost_a_detail_call(haku: Haku) -> None:
    event_id = haku.event_id()
    haku.sim.set_clock(datetime(2026, 9, 2, tzinfo=UTC))  # after every seeded change
    since = datetime(2026, 9, 1, 23, 0, tzinfo=UTC)
    adapter = haku.adapter(per_page=50)
    assert [p for page in adapter.list_participants(str(event_id), since)
            for p in page.items] == []
    assert (haku.list_calls(), haku.detail_calls()) == (1, 0)  # one list page, no details
    changed = haku.active()[100]
    haku.sim.modify(changed["registration_number"], last_name="Married-Name")
    added = haku.sim.add_registration(event_id)
    people = [p for page in adapter.list_participants(str(event_id), since)
              for p in page.items]
    assert {p.ref for p in people} == {changed["registration_number"],
                                       added["registration_number"]}
    assert "Married-Name" in {p.last_name for p in people}
    assert (haku.list_calls(), haku.detail_calls()) == (2, 2)


def test_cancelled_registrations_are_withdrawals_without_detail_calls(haku: Haku) -> None:
    event_id = haku.event_id()
    victim = haku.active()[0]
    haku.sim.modify(victim["registration_number"], is_cancelled=True)
    withdrawn = [w for page in haku.adapter().list_withdrawn(str(event_id))
                 for w in page.items]
    assert len(withdrawn) == 4  # three from the seed and this one
    mine = next(w for w in withdrawn if w.ref == victim["registration_number"])
    assert mine.withdrawn_at == victim["updated_at"] and mine.event_ref == str(event_id)
    assert haku.detail_calls() == 0


def test_throttling_waits_the_retry_after_then_continues(haku: Haku) -> None:
    adapter = haku.adapter(per_page=100)
    clock = on_fake_time(adapter)
    assert adapter.check_credentials().ok
    haku.sim.faults.arm("http_429", 1, retry_after=1)
    people = [p for page in adapter.list_participants(str(haku.event_id()))
              for p in page.items]
    assert len(people) == len(haku.active())
    # Retry-After once, first; after it only the rate limit's short waits (time stands still).
    assert clock.sleeps[0] == 1.0 and all(s < 1.0 for s in clock.sleeps[1:])


def test_the_hourly_budget_of_the_provider_is_honoured(make_haku: Callable[..., Haku]) -> None:
    haku = make_haku(seed=8, events=1, participants_per_event=20, calls_per_hour=5)
    adapter = haku.adapter(max_retry_after=30)
    with pytest.raises(Throttled) as info:
        list(adapter.list_participants(str(haku.event_id())))
    # The provider asked for most of an hour: we give up at once rather than block a worker.
    assert info.value.retryable and info.value.status == 429
    assert info.value.retry_after is not None and info.value.retry_after > 3000
    api_calls = [r for r in haku.sim.faults.requests if "oauth2" not in r.path]
    assert len(api_calls) == 6  # the 5 the hour allows and the refused one, not retried


def test_server_errors_are_retried_then_fail_as_provider_down(haku: Haku) -> None:
    adapter = haku.adapter(max_attempts=3)
    assert adapter.check_credentials().ok
    haku.sim.faults.arm("http_503", -1)
    with pytest.raises(ProviderDown) as info:
        next(adapter.list_participants(str(haku.event_id())))
    assert info.value.retryable and info.value.status == 503
    assert haku.list_calls() == 3


def test_malformed_rows_and_details_are_reported_per_row(haku: Haku) -> None:
    haku.sim.faults.arm("malformed_rows", 1, rows=[0, 1, 2, 3])
    haku.sim.faults.arm("malformed_details", 1)
    first = next(haku.adapter(per_page=50).list_participants(str(haku.event_id())))
    assert [(p.row, p.field) for p in first.problems] == [
        (0, "detail.participant.dob"), (1, "transaction_amount"), (2, "age"),
        (3, "registration_number")]
    assert first.problems[0].ref and "31/02/1990" in first.problems[0].message
    assert "forty" in first.problems[1].message
    cancelled = sum(1 for r in first.raw if r["is_cancelled"])
    assert len(first.items) == 50 - 4 - cancelled


def test_rows_changed_while_paging_are_caught_by_the_second_look(haku: Haku) -> None:
    event_id = haku.event_id()
    ordered = sorted(haku.sim.registrations[event_id],
                     key=lambda r: (r["updated_at"], r["registration_number"]), reverse=True)
    mover = ordered[50]  # the first row of page two: it jumps to the top after page one
    haku.sim.faults.arm("change_between_pages", 1)
    pages = list(haku.adapter(per_page=50).list_participants(str(event_id)))
    refs = [p.ref for page in pages for p in page.items]
    assert set(refs) == {r["registration_number"] for r in haku.active()}
    assert refs.count(mover["registration_number"]) == 1  # read once, in its new version
    assert pages[-1].is_last and [p.last_name for p in pages[-1].items] == [
        mover["last_name"]]
    assert mover["last_name"].endswith("-Changed")


def test_no_secret_or_token_appears_in_logs(haku: Haku, caplog: pytest.LogCaptureFixture,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    adapter = haku.adapter(per_page=100)
    haku.sim.faults.arm("http_500", 1)
    haku.sim.faults.arm("expire_token", 1)
    list(adapter.list_events())
    with pytest.raises(AuthFailed) as info:
        next(haku.adapter(credentials={"client_secret": "other-secret-42"}).list_events())
    out, err = capsys.readouterr()
    captured = caplog.text + out + err + str(info.value)
    assert "provider_retry" in captured and "HTTP Request" in caplog.text
    for secret in (CREDENTIALS["client_secret"], "other-secret-42",
                   adapter.token.access_token or "", adapter._basic):
        assert secret not in captured



def test_fifty_thousand_registrations_list_without_detail_calls(
        make_haku: Callable[..., Haku]) -> None:
    haku = make_haku(seed=6, events=1, participants_per_event=50_000)
    withdrawn = [w for page in haku.adapter().list_withdrawn(str(haku.event_id()))
                 for w in page.items]
    assert len(withdrawn) == 3
    # 500 full pages, the empty one after them, and the second look at the top.
    assert haku.list_calls() == 502 and haku.detail_calls() == 0


def test_the_demo_server_accepts_its_demo_credentials(serve_app: Callable[[Any], str]) -> None:
    app = make_app()
    server = serve_app(app)
    adapter = build_adapter("HAKU", base_url=server + BASE_PATH, credentials=DEMO_CREDENTIALS,
                            settings=demo_settings(server))
    assert adapter.check_credentials().ok
    events = [e for page in adapter.list_events() for e in page.items]
    assert len(events) == 2
    withdrawn = [w for page in adapter.list_withdrawn(events[0].ref) for w in page.items]
    assert withdrawn and len(app.state.simulator.registrations[int(events[0].ref)]) >= 300



def test_a_registration_gone_before_its_detail_call_is_a_row_problem(haku: Haku) -> None:
    haku.sim.faults.arm("detail_gone", 1)
    first = next(haku.adapter(per_page=100).list_participants(str(haku.event_id())))
    (problem,) = first.problems
    assert (problem.row, problem.field) == (0, "registration_number")
    assert problem.ref == first.raw[0]["registration_number"]
    assert "registration detail" in problem.message and "404" in problem.message
    assert len(first.items) == 100 - 1 - sum(1 for r in first.raw if r["is_cancelled"])
