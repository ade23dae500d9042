"""Every adapter method against its simulator in real-shapes mode: the shapes seen in real
responses (../shared/PROVIDERS.md, "seen in real responses"), which the plain simulators
do not send. Each case here failed before the adapter learned that shape (issue 16)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from racehub.providers.base import ProviderAdapter, ProviderParticipant, ResultStatus
from racehub.providers.chronotrack import ChronoTrackAdapter
from racehub.providers.chronotrack import simulator as ct_sim
from racehub.providers.copernico import CopernicoAdapter
from racehub.providers.copernico import simulator as cop_sim
from racehub.providers.demo import simulator_options
from racehub.providers.errors import NotSupported, RepeatedPage
from racehub.providers.haku import HakuAdapter
from racehub.providers.haku import simulator as haku_sim
from racehub.providers.raceroster import RaceRosterAdapter
from racehub.providers.raceroster import simulator as rr_sim
from racehub.providers.registry import build_adapter

FAST = {"backoff_base": 0.01, "backoff_max": 0.05}


def test_every_simulator_of_this_set_offers_real_shapes() -> None:
    for module in (cop_sim, rr_sim, haku_sim, ct_sim):
        assert simulator_options(module) == {"real_shapes": True}


# -- Copernico ------------------------------------------------------------------------------

@pytest.fixture
def cop(serve_app: Callable[[Any], str]) -> tuple[cop_sim.CopernicoSimulator, CopernicoAdapter]:
    app = cop_sim.make_app(real_shapes=True, seed=3, races=1, registrations_per_event=60)
    url = serve_app(app)
    adapter = build_adapter("COPERNICO", base_url=url, credentials=cop_sim.DEMO_CREDENTIALS,
                            settings={**FAST, **cop_sim.demo_settings(url)})
    assert isinstance(adapter, CopernicoAdapter)
    return app.state.simulator, adapter


def test_copernico_test_connection_accepts_code_1(cop: Any) -> None:
    _, adapter = cop
    check = adapter.check_credentials()
    assert check.ok, check.message


def test_copernico_athlete_detail_in_both_shapes_and_both_chip_forms(cop: Any) -> None:
    sim, adapter = cop
    ref = sim.race_ref()
    race_id, event_id = ref.split(":")
    # One athlete of each of the simulator's four shapes: each detail is a rate-limited call.
    one_of_each_shape = {sum(r["id"].encode()) % 4: r for r in sim.registrations[race_id]
                         .values() if r["eventId"] == event_id}
    rows = list(one_of_each_shape.values())
    assert len(rows) == 4
    shapes, chip_forms = set(), set()
    for row in rows:
        data = sim.athlete_data(race_id, row)
        shapes.add("nested" if "events" in data else "flat")
        chip_forms.add(type((data["events"][-1] if "events" in data else data)["chip"][0]))
        athlete = adapter.get_athlete(ref, row["id"])
        assert isinstance(athlete, ProviderParticipant)
        assert (athlete.ref, athlete.bib, athlete.chip) == (row["id"], row["dorsal"],
                                                            row["chip"][0])
        assert athlete.extra["chips"] == row["chip"]
        assert athlete.extra["category"].endswith("-Senior")
        assert athlete.extra["status"] == "registered"
    assert shapes == {"nested", "flat"} and chip_forms == {int, str}


def test_copernico_bib_keeps_its_text(cop: Any) -> None:
    sim, adapter = cop
    ref = sim.race_ref()
    race_id = ref.split(":")[0]
    row = next(iter(sim.registrations[race_id].values()))
    row["dorsal"] = "0042"
    assert adapter.get_athlete(ref, row["id"]).bib == "0042"


def test_copernico_results_with_runners_on_course_and_negative_offsets(cop: Any) -> None:
    sim, adapter = cop
    [page] = list(adapter.get_results(sim.race_ref()))
    assert not page.problems, [str(p) for p in page.problems]
    running = [r for r in page.items if r.status is ResultStatus.RUNNING]
    assert len(running) == 3
    assert all(r.place is None and r.clock_time is None for r in running)
    assert running[0].splits["start"] == timedelta(milliseconds=-120)
    finished = [r for r in page.items if r.status is ResultStatus.FINISHED]
    assert len(finished) == 50 and finished[0].splits["start"] == timedelta(milliseconds=-250)


def test_copernico_has_no_registration_list(cop: Any) -> None:
    _, adapter = cop
    with pytest.raises(NotSupported):
        next(adapter.list_participants(cop[0].race_ref()))


def test_copernico_push_reads_the_code_1_reply(cop: Any) -> None:
    sim, adapter = cop
    ref = sim.race_ref()
    report = adapter.push_participants(ref, [ProviderParticipant(
        ref="rh-new-1", event_ref=ref, first_name="Ane", last_name="Etxeberria", bib="0007")])
    assert (report.accepted, report.problems) == (1, [])
    assert sim.registrations[ref.split(":")[0]]["rh-new-1"]["dorsal"] == "0007"


def test_copernico_withdrawal_removes_and_a_new_push_never_replaces(cop: Any) -> None:
    sim, adapter = cop
    ref = sim.race_ref()
    race_id = ref.split(":")[0]
    held = next(iter(sim.registrations[race_id]))
    kept = ProviderParticipant(ref=held, event_ref=ref, first_name="Not", last_name="Me")
    report = adapter.push_participants(ref, [kept], replace_existing=False)
    assert report.accepted == 0 and sim.removals == []
    [problem] = report.problems
    assert (problem.row, problem.ref, problem.field) == (0, held, "id")
    assert problem.message.startswith("DUPLICATED")
    gone = adapter.withdraw_participants(ref, [held, "rh-never-there"])
    assert (gone.accepted, gone.problems) == (2, [])  # one gone already counts as removed
    assert held not in sim.registrations[race_id] and sim.removals == [(race_id, held)]


# -- Race Roster ----------------------------------------------------------------------------

class RrReal:
    def __init__(self, serve_app: Callable[[Any], str], **kwargs: Any) -> None:
        self.app = rr_sim.make_app(real_shapes=True, **kwargs)
        self.sim: rr_sim.RaceRosterSimulator = self.app.state.simulator
        self.server = serve_app(self.app)

    def adapter(self, **settings: Any) -> RaceRosterAdapter:
        adapter = build_adapter("RACE_ROSTER", base_url=self.server + rr_sim.BASE_PATH,
                                credentials=rr_sim.DEMO_CREDENTIALS,
                                settings={**FAST, **rr_sim.demo_settings(self.server),
                                          **settings})
        assert isinstance(adapter, RaceRosterAdapter)
        return adapter

    def sub_ref(self, event: int = 0, sub: int = 0) -> str:
        event_id = sorted(self.sim.events)[event]
        sub_id = self.sim.events[event_id]["subEvents"]["data"][sub]["subEventId"]
        return f"{event_id}:{sub_id}"


@pytest.fixture
def rr(serve_app: Callable[[Any], str]) -> RrReal:
    return RrReal(serve_app, seed=4, events=2, participants_per_event=400)


def test_race_roster_token_reply_in_a_one_item_list_is_accepted(rr: RrReal) -> None:
    check = rr.adapter().check_credentials()
    assert check.ok, check.message


def test_race_roster_events_past_a_smaller_real_page_cap(serve_app: Callable[[Any], str]
                                                         ) -> None:
    many = RrReal(serve_app, seed=5, events=90, sub_events_per_event=1,
                  participants_per_event=1, with_results=False)
    pages = list(many.adapter().list_events())
    assert len({e.ref for page in pages for e in page.items}) == 90
    assert [len(p.items) for p in pages] == [40, 40, 10, 0] and pages[-1].is_last


def test_race_roster_registrations_past_a_smaller_real_page_cap(rr: RrReal) -> None:
    event_id = sorted(rr.sim.events)[0]
    rows = rr.sim.registrations[event_id]
    adapter = rr.adapter()
    people = [p.ref for page in adapter.list_participants(str(event_id)) for p in page.items]
    gone = [w.ref for page in adapter.list_withdrawn(str(event_id)) for w in page.items]
    assert sorted(people) == sorted(str(r["registrationId"]) for r in rows
                                    if r["status"] == "active")
    assert sorted(gone) == sorted(str(r["registrationId"]) for r in rows
                                  if r["status"] != "active")


def test_race_roster_v2_results_map_ids_names_gender_and_keep_other_columns(
        serve_app: Callable[[Any], str]) -> None:
    big = RrReal(serve_app, seed=6, events=1, participants_per_event=1200)
    ref = big.sub_ref()
    expected = big.sim.results_v2[int(ref.split(":")[1])]
    assert len(expected) > 250  # more than the real cap of one page
    pages = list(big.adapter().get_results(ref))
    results = [r for page in pages for r in page.items]
    assert not any(page.problems for page in pages)
    assert [r.ref for r in results] == [row["id"] for row in expected]
    assert pages[0].total == len(expected) and pages[-1].is_last
    first = results[0]
    assert first.first_name and first.last_name
    assert f"{first.first_name} {first.last_name}" == expected[0]["name"].strip()
    assert first.bib is None and first.place == 1
    assert first.chip_time is not None and first.clock_time is not None
    assert first.clock_time - first.chip_time == timedelta(seconds=4.2)
    labels = {row["genderSexId"] for row in expected}
    genders = {r.gender for r in results}
    assert {"Male", "Female"} <= labels and {"M", "F"} <= genders
    assert first.extra["divisionPlace"].startswith("1 / ")
    assert first.extra["overallPace"] == "4:41" and first.extra["fromCity"] == "Toronto"
    for row, result in zip(expected, results, strict=True):
        if row["genderSexId"] == "Non-binary":
            assert result.gender == "X"
        if row["genderSexId"] in ("", "Co-ed"):
            assert result.gender is None
        if row["genderSexId"] == "Co-ed":
            assert result.extra["genderSexId"] == "Co-ed"


def test_race_roster_v2_results_send_no_login(rr: RrReal) -> None:
    adapter = rr.adapter()
    list(adapter.list_events())  # logged in for the API
    list(adapter.get_results(rr.sub_ref()))
    assert adapter.http.client.headers["Authorization"].startswith("Bearer ")
    assert rr.sim.faults.seen("/results")


@pytest.mark.parametrize("read", ["events", "registrations", "results"])
def test_race_roster_a_repeated_page_ends_the_read_with_an_error(
        serve_app: Callable[[Any], str], read: str) -> None:
    many = RrReal(serve_app, seed=7, events=90, sub_events_per_event=1,
                  participants_per_event=1200)
    many.sim.faults.arm("repeat_page", -1)
    adapter = many.adapter()
    calls: dict[str, Callable[[], Iterator[Any]]] = {"events": lambda: adapter.list_events(),
             "registrations": lambda: adapter.list_participants(str(sorted(many.sim.events)[0])),
             "results": lambda: adapter.get_results(many.sub_ref())}
    with pytest.raises(RepeatedPage, match="repeated the previous one"):
        list(calls[read]())


# -- Haku -----------------------------------------------------------------------------------

class HakuReal:
    def __init__(self, serve_app: Callable[[Any], str], **kwargs: Any) -> None:
        self.app = haku_sim.make_app(real_shapes=True, **kwargs)
        self.sim: haku_sim.HakuSimulator = self.app.state.simulator
        self.server = serve_app(self.app)

    def adapter(self, **settings: Any) -> HakuAdapter:
        adapter = build_adapter("HAKU", base_url=self.server + haku_sim.BASE_PATH,
                                credentials=haku_sim.DEMO_CREDENTIALS,
                                settings={**FAST, **haku_sim.demo_settings(self.server),
                                          "rate_per_second": 500, "rate_burst": 100,
                                          **settings})
        assert isinstance(adapter, HakuAdapter)
        return adapter


def test_haku_events_past_the_spec_page_cap(serve_app: Callable[[Any], str]) -> None:
    haku = HakuReal(serve_app, seed=2, events=60, participants_per_event=1)
    adapter = haku.adapter()
    assert adapter.check_credentials().ok
    pages = list(adapter.list_events())
    assert len({e.ref for page in pages for e in page.items}) == 60
    assert [len(p.raw) for p in pages] == [25, 25, 10, 0] and pages[-1].is_last


def test_haku_participants_and_withdrawals_past_the_spec_page_cap(
        serve_app: Callable[[Any], str]) -> None:
    haku = HakuReal(serve_app, seed=3, events=1, participants_per_event=120)
    event_id = sorted(haku.sim.events)[0]
    records = haku.sim.registrations[event_id]
    adapter = haku.adapter()
    people = [p.ref for page in adapter.list_participants(str(event_id)) for p in page.items]
    gone = [w.ref for page in adapter.list_withdrawn(str(event_id)) for w in page.items]
    assert sorted(people) == sorted(r["registration_number"] for r in records
                                    if not r["is_cancelled"])
    assert sorted(gone) == sorted(r["registration_number"] for r in records
                                  if r["is_cancelled"])


@pytest.mark.parametrize("read", ["events", "participants"])
def test_haku_a_repeated_page_ends_the_read_with_an_error(serve_app: Callable[[Any], str],
                                                          read: str) -> None:
    haku = HakuReal(serve_app, seed=4, events=60, participants_per_event=60)
    haku.sim.faults.arm("repeat_page", -1)
    adapter = haku.adapter()
    event_id = str(sorted(haku.sim.events)[0])
    reads: dict[str, Callable[[], Iterator[Any]]] = {"events": lambda: adapter.list_events(),
             "participants": lambda: adapter.list_participants(event_id)}
    with pytest.raises(RepeatedPage, match="repeated the previous one"):
        list(reads[read]())


# -- ChronoTrack ----------------------------------------------------------------------------

class CtReal:
    def __init__(self, serve_app: Callable[[Any], str], **kwargs: Any) -> None:
        self.app = ct_sim.make_app(real_shapes=True, **kwargs)
        self.sim: ct_sim.ChronoTrackSimulator = self.app.state.simulator
        self.server = serve_app(self.app)

    def adapter(self, **settings: Any) -> ChronoTrackAdapter:
        adapter = build_adapter("CHRONOTRACK", base_url=self.server + ct_sim.BASE_PATH,
                                credentials=ct_sim.DEMO_CREDENTIALS,
                                settings={**FAST, "rate_per_second": 500, "rate_burst": 100,
                                          **settings})
        assert isinstance(adapter, ChronoTrackAdapter)
        return adapter

    def race_ref(self, index: int = 0) -> str:
        race_id = sorted(self.sim.races)[index]
        return f"{self.sim.event_of_race[race_id]}:{race_id}"


@pytest.fixture
def ct(serve_app: Callable[[Any], str]) -> CtReal:
    return CtReal(serve_app, seed=2, events=1, races_per_event=2, entries_per_race=120)


def test_chronotrack_sex_u_is_unknown_not_non_binary(ct: CtReal) -> None:
    adapter = ct.adapter(page_size=50)
    assert adapter.check_credentials().ok
    assert len([e for page in adapter.list_events() for e in page.items]) == 2
    ref = ct.race_ref()
    rows = {r["entry_id"]: r for r in ct.sim.entries[int(ref.split(":")[1])]}
    pages = list(adapter.list_participants(ref))
    people = [p for page in pages for p in page.items]
    assert not any(page.problems for page in pages) and len(people) == len(rows)
    unknown = [p for p in people if rows[p.ref]["athlete_sex"] == "U"]
    assert unknown and all(p.gender is None for p in unknown)
    results = [r for page in adapter.get_results(ref) for r in page.items]
    assert {r.gender for r in results if r.participant_ref in {p.ref for p in unknown}} == {None}
    report = adapter.push_participants(ref, [ProviderParticipant(
        ref=f"rh-{n}", event_ref=ref, first_name="Sam", last_name=f"Doe {n}", bib=f"9{n:03d}",
        gender=None) for n in range(3)])
    assert report.accepted == 3 and not report.problems
    # Withdrawn: kept and marked DNS; an id the race does not hold is that row's problem.
    out = adapter.withdraw_participants(ref, ["rh-1", "rh-unknown"])
    assert out.accepted == 1 and [(p.row, p.ref) for p in out.problems] == [(1, "rh-unknown")]
    held = {r["entry_external_id"]: r for r in ct.sim.entries[int(ref.split(":")[1])]}
    assert held["rh-1"]["entry_status"] == "DNS" and held["rh-0"]["entry_status"] == "CONF"


@pytest.mark.parametrize("read", ["events", "entries", "results"])
def test_chronotrack_a_repeated_page_ends_the_read_with_an_error(
        serve_app: Callable[[Any], str], read: str) -> None:
    ct = CtReal(serve_app, seed=3, events=15, races_per_event=1, entries_per_race=60)
    ct.sim.faults.arm("repeat_page", -1)
    adapter = ct.adapter(page_size=10)
    reads: dict[str, Callable[[], Iterator[Any]]] = {"events": lambda: adapter.list_events(),
             "entries": lambda: adapter.list_participants(ct.race_ref()),
             "results": lambda: adapter.get_results(ct.race_ref())}
    with pytest.raises(RepeatedPage, match="repeated the previous one"):
        list(reads[read]())


def test_every_adapter_method_of_this_set_is_covered_here() -> None:
    """A new adapter method must get a real-shapes case above (this lists them)."""
    offered = {cls.provider: sorted(c.value for c in cls.capabilities)
               for cls in (CopernicoAdapter, RaceRosterAdapter, HakuAdapter,
                           ChronoTrackAdapter)}
    assert offered == {
        "COPERNICO": ["check_credentials", "get_results", "push_participants",
                      "withdraw_participants"],
        "RACE_ROSTER": ["check_credentials", "get_results", "list_events",
                        "list_participants", "list_withdrawn"],
        "HAKU": ["check_credentials", "list_events", "list_participants", "list_withdrawn"],
        "CHRONOTRACK": ["check_credentials", "get_results", "list_events",
                        "list_participants", "push_participants", "withdraw_participants"],
    }
    assert issubclass(HakuAdapter, ProviderAdapter)
