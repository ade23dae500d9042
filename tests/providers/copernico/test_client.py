"""The Copernico adapter against its simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest

from racehub.providers.base import ProviderParticipant, ResultStatus
from racehub.providers.copernico import CopernicoAdapter
from racehub.providers.copernico.simulator import (
    DEMO_CREDENTIALS,
    CopernicoSimulator,
    demo_settings,
    make_app,
)
from racehub.providers.errors import AuthFailed, BadData, NotSupported, ProviderDown
from racehub.providers.registry import build_adapter
from tests.providers.clock import on_fake_time

KEY = "cop-key-5f1e9a2b7c"
OWNER = "crono@example.es"


@dataclass
class Cop:
    sim: CopernicoSimulator
    url: str

    def adapter(self, *, key: str | None = KEY, base_url: str | None = None,
                **settings: Any) -> CopernicoAdapter:
        options = {"backoff_base": 0.01, "backoff_max": 0.05, "preset_owner": OWNER,
                   "results_base_url": f"{self.url}/api", **settings}
        adapter = build_adapter("COPERNICO", base_url=base_url or self.url,
                                credentials={"api_key": key} if key else {}, settings=options)
        assert isinstance(adapter, CopernicoAdapter)
        return adapter

    def registered(self, ref: str) -> dict[str, dict[str, Any]]:
        return self.sim.registrations[ref.split(":")[0]]


@pytest.fixture
def make_cop(serve_app: Callable[[Any], str]) -> Callable[..., Cop]:
    def make(**kwargs: Any) -> Cop:
        sim = CopernicoSimulator(api_key=KEY, preset_owner=OWNER, **kwargs)
        return Cop(sim, serve_app(make_app(simulator=sim)))

    return make


@pytest.fixture
def cop(make_cop: Callable[..., Cop]) -> Cop:
    return make_cop(seed=5, races=2, registrations_per_event=300)


def person(ref: str, event_ref: str, **fields: Any) -> ProviderParticipant:
    return ProviderParticipant(ref=ref, event_ref=event_ref, **{
        "first_name": "Íñigo", "last_name": "Muñoz", **fields})


def test_the_api_key_is_checked_against_a_configured_race(cop: Cop) -> None:
    ref = cop.sim.race_ref()
    check = cop.adapter(eventIds=[ref]).check_credentials()
    assert check.ok and ref.split(":")[0] in check.message
    wrong = cop.adapter(key="cop-key-wrong-0001", eventIds=[ref]).check_credentials()
    assert not wrong.ok and "401" in wrong.message
    assert "cop-key-wrong-0001" not in wrong.message
    no_race = cop.adapter().check_credentials()
    assert not no_race.ok and "eventIds" in no_race.message


def test_without_a_key_the_push_still_works_as_documented(cop: Cop) -> None:
    ref = cop.sim.race_ref()
    adapter = cop.adapter(key=None)
    assert adapter.check_credentials().ok
    report = adapter.push_participants(ref, [person("ep-1", ref)])
    assert report.accepted == 1 and "ep-1" in cop.registered(ref)


def test_a_wrong_key_is_refused_on_push_without_echoing_it(cop: Cop) -> None:
    ref = cop.sim.race_ref()
    with pytest.raises(AuthFailed) as info:
        cop.adapter(key="cop-key-wrong-0002").push_participants(ref, [person("ep-1", ref)])
    assert "cop-key-wrong-0002" not in str(info.value) and not info.value.retryable
    assert "ep-1" not in cop.registered(ref)


def test_registrations_are_pushed_in_the_documented_shape(cop: Cop) -> None:
    ref = cop.sim.race_ref(0, 1)
    race_id, event_id = ref.split(":")
    report = cop.adapter().push_participants(ref, [
        person("ep-1", ref, birth_date=date(1988, 5, 17), gender="F", bib="0042",
               team="CA Retiro", extra={"document": "12345678Z"}),
        person("ep-2", ref, gender="X"),
        ProviderParticipant(ref="ep-3", event_ref=ref),
    ])
    assert report.accepted == 2
    assert [(p.row, p.field) for p in report.problems] == [(2, "name")]
    assert cop.registered(ref)["ep-1"] == {
        "id": "ep-1", "name": "Íñigo", "surname": "Muñoz", "raceId": race_id,
        "eventId": event_id, "birthdate": "1988-05-17", "gender": "female",
        "dorsal": "0042", "club": "CA Retiro", "document": "12345678Z"}
    assert "gender" not in cop.registered(ref)["ep-2"]  # no person gender for X


def test_rows_the_provider_refuses_are_reported_by_row(cop: Cop) -> None:
    race_id = cop.sim.race_ref().split(":")[0]
    ref = f"{race_id}:no-such-event"
    report = cop.adapter().push_participants(ref, [person("ep-1", ref), person("ep-2", ref)])
    assert report.accepted == 0
    assert [(p.row, p.ref, p.field) for p in report.problems] == [
        (0, "ep-1", "eventId"), (1, "ep-2", "eventId")]
    assert "no-such-event" in report.problems[0].message


def test_a_changed_registration_is_removed_and_added_again(cop: Cop) -> None:
    ref = cop.sim.race_ref()
    existing = next(r for r in cop.registered(ref).values()
                    if r["eventId"] == ref.split(":")[1])
    changed = person(existing["id"], ref, first_name="Nueva", bib="777")
    report = cop.adapter().push_participants(ref, [person("ep-new", ref), changed])
    assert report.accepted == 2 and not report.problems
    assert cop.sim.removals == [(ref.split(":")[0], existing["id"])]
    assert report.raw["re_added"] == [existing["id"]]
    stored = cop.registered(ref)[existing["id"]]
    assert (stored["name"], stored["dorsal"]) == ("Nueva", "777")
    # Two POSTs: everything, then the re-added row alone.
    assert [len(p) for p in cop.sim.pushes] == [2, 1]


def test_big_pushes_are_sent_in_batches(cop: Cop) -> None:
    ref = cop.sim.race_ref()
    people = [person(f"ep-{n:05d}", ref) for n in range(1_200)]
    report = cop.adapter(rate_per_second=100, rate_burst=100).push_participants(ref, people)
    assert report.accepted == 1_200
    assert [len(p) for p in cop.sim.pushes] == [500, 500, 200]


def test_a_429_on_push_waits_retry_after_then_succeeds(cop: Cop) -> None:
    ref = cop.sim.race_ref()
    cop.sim.faults.arm("http_429", 1, retry_after=1)
    adapter = cop.adapter()
    clock = on_fake_time(adapter)
    report = adapter.push_participants(ref, [person("ep-1", ref)])
    assert report.accepted == 1
    assert len(cop.sim.faults.seen("/race-registrations/" + ref.split(":")[0])) == 2
    assert clock.sleeps == [1.0]  # Retry-After, once


@pytest.mark.parametrize("shape", ["list", "data"])
def test_preset_results_in_milliseconds_in_either_shape(make_cop: Callable[..., Cop],
                                                        shape: str) -> None:
    cop = make_cop(seed=2, races=1, registrations_per_event=80, results_shape=shape)
    ref = cop.sim.race_ref()
    rows = cop.sim.results[tuple(ref.split(":"))]  # type: ignore[index]
    rows[0]["times.official_:::finish:::"] = 7_384_123
    rows[1].update({"status": "dnf", "times.official_:::finish:::": None, "position": None})
    [page] = list(cop.adapter().get_results(ref))
    assert page.is_last and len(page.items) == 50 and not page.problems
    first, second = page.items[:2]
    assert first.clock_time == timedelta(hours=2, minutes=3, seconds=4, milliseconds=123)
    assert first.place == 1 and first.bib == rows[0]["dorsal"]
    assert first.participant_ref == rows[0]["id"] and first.gender in ("M", "F")
    assert (second.status, second.clock_time, second.place) == (ResultStatus.DNF, None, None)
    assert isinstance(page.raw, list if shape == "list" else dict)


def test_results_come_from_the_results_host_not_the_push_api(cop: Cop) -> None:
    ref = cop.sim.race_ref()
    # The push API is unreachable (nothing listens on port 9); results still arrive.
    adapter = cop.adapter(base_url="http://127.0.0.1:9", max_attempts=1)
    assert sum(len(p.items) for p in adapter.get_results(ref)) == 50
    default = build_adapter("COPERNICO", credentials={}, settings={"preset_owner": OWNER})
    assert isinstance(default, CopernicoAdapter)
    assert default.results_url(ref).startswith(
        f"https://public-api.copernico.cloud/api/races/{ref.split(':')[0]}/preset/"
        f"{OWNER}:::results/")


def test_results_urls_are_encoded_and_use_slug_and_event_names(cop: Cop) -> None:
    ref = cop.sim.race_ref()
    race_id, event_id = ref.split(":")
    slug = cop.sim.races[race_id]["slug"]
    name = cop.sim.races[race_id]["events"][event_id]  # "Maratón"
    adapter = cop.adapter(race_slug=slug, event_names={event_id: name})
    assert adapter.results_url(ref).endswith(f"/races/{slug}/preset/{OWNER}:::results/Marat%C3%B3n")
    assert sum(len(p.items) for p in adapter.get_results(ref)) == 50


def test_results_need_the_preset_owner(cop: Cop) -> None:
    with pytest.raises(BadData, match="settings.preset_owner"):
        next(cop.adapter(preset_owner="").get_results(cop.sim.race_ref()))


def test_malformed_result_rows_are_reported_per_row_and_the_rest_arrive(cop: Cop) -> None:
    cop.sim.faults.arm("malformed_rows", 1, rows=[0, 1, 2])
    [page] = list(cop.adapter().get_results(cop.sim.race_ref()))
    assert len(page.items) == 47 and page.row_count == 50
    assert [(p.row, p.field) for p in page.problems] == [
        (0, "times.official_:::finish:::"), (1, "status"), (2, "gender")]
    assert all(p.ref for p in page.problems)
    assert "1:23:45" in page.problems[0].message


def test_server_errors_are_retried_then_fail_as_provider_down(cop: Cop) -> None:
    cop.sim.faults.arm("http_500", -1)
    with pytest.raises(ProviderDown) as info:
        next(cop.adapter(max_attempts=3).get_results(cop.sim.race_ref()))
    assert info.value.retryable
    assert len([r for r in cop.sim.faults.requests if "/preset/" in r.path]) == 3


def test_athlete_detail_needs_the_key(cop: Cop) -> None:
    ref = cop.sim.race_ref()
    athlete = next(iter(cop.registered(ref).values()))
    found = cop.adapter().get_athlete(ref, athlete["id"])
    assert (found.ref, found.first_name, found.bib) == (athlete["id"], athlete["name"],
                                                        athlete["dorsal"])
    assert found.birth_date == date.fromisoformat(athlete["birthdate"])
    with pytest.raises(AuthFailed, match="401"):
        cop.adapter(key=None).get_athlete(ref, athlete["id"])


def test_registrations_cannot_be_listed(cop: Cop) -> None:
    with pytest.raises(NotSupported):
        next(cop.adapter().list_participants(cop.sim.race_ref()))


def test_fifty_thousand_registrations_are_served(make_cop: Callable[..., Cop]) -> None:
    cop = make_cop(seed=9, races=1, registrations_per_event=50_000, finishers_per_event=0)
    ref = cop.sim.race_ref()
    assert len([r for r in cop.registered(ref).values()
                if r["eventId"] == ref.split(":")[1]]) == 50_000
    assert cop.adapter().push_participants(ref, [person("ep-50001", ref)]).accepted == 1


def test_no_key_appears_in_logs_during_failures(
        cop: Cop, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    ref = cop.sim.race_ref()
    cop.sim.faults.arm("http_500", 1)
    cop.adapter().push_participants(ref, [person("ep-1", ref)])
    with pytest.raises(AuthFailed) as info:
        cop.adapter(key="cop-key-other-4242").get_athlete(ref, "ep-1")
    out, err = capsys.readouterr()
    captured = caplog.text + out + err + str(info.value)
    assert "provider_retry" in captured
    for secret in (KEY, "cop-key-other-4242"):
        assert secret not in captured


def test_the_demo_settings_reach_the_default_simulator(serve_app: Callable[[Any], str]) -> None:
    server = serve_app(make_app())
    settings = demo_settings(server)
    adapter = build_adapter("COPERNICO", base_url=server, credentials=DEMO_CREDENTIALS,
                            settings=settings)
    assert adapter.check_credentials().ok
    assert sum(len(p.items) for p in adapter.get_results(settings["eventIds"][0])) == 50
