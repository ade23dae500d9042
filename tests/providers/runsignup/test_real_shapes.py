"""Contract tests: every RunSignUp adapter method against the simulator serving the shapes
seen in real RunSignUp replies (``real_shapes=True``; PROVIDERS.md "seen in real
responses"): rows without ``registration_id``, races without ``timezone`` or ``events``,
result columns named in ``results_headers``, bibs with leading zeros, unknown gender codes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from racehub.providers.base import ProviderParticipant, ProviderResult
from racehub.providers.catalog import get_spec
from racehub.providers.demo import simulator_options
from racehub.providers.errors import PageLimitReached, RepeatedPage
from racehub.providers.registry import build_adapter
from racehub.providers.runsignup import RunSignUpAdapter
from racehub.providers.runsignup import mapping as m
from racehub.providers.runsignup import simulator as rsu_sim
from racehub.providers.runsignup.simulator import RunSignUpSimulator, make_app

KEY, SECRET = "rsu-key-0a1b2c", "rsu-secret-9z8y7x"


@dataclass
class Real:
    sim: RunSignUpSimulator
    base_url: str

    def adapter(self, **settings: Any) -> RunSignUpAdapter:
        adapter = build_adapter("RUNSIGNUP", base_url=self.base_url,
                                credentials={"api_key": KEY, "api_secret": SECRET},
                                settings={"backoff_base": 0.01, "backoff_max": 0.05, **settings})
        assert isinstance(adapter, RunSignUpAdapter)
        return adapter

    def race(self, index: int) -> dict[str, Any]:
        return sorted(self.sim.races.values(), key=lambda r: r["race_id"])[index]

    def event_ref(self, race_index: int = 0, event_index: int = 0) -> str:
        race = self.race(race_index)
        return f"{race['race_id']}:{race['events'][event_index]['event_id']}"

    def rows(self, ref: str) -> list[dict[str, Any]]:
        return self.sim.participants[int(ref.split(":")[1])]


@pytest.fixture
def real(serve_app: Callable[[Any], str]) -> Real:
    sim = RunSignUpSimulator(api_key=KEY, api_secret=SECRET, seed=7, races=2,
                             events_per_race=2, participants_per_event=43, real_shapes=True)
    return Real(sim, serve_app(make_app(simulator=sim)) + "/Rest")


def test_the_demo_serves_runsignup_in_real_shapes() -> None:
    assert simulator_options(rsu_sim) == {"real_shapes": True}
    assert make_app(**simulator_options(rsu_sim)).state.simulator.real_shapes


def participants(adapter: RunSignUpAdapter, ref: str) -> list[ProviderParticipant]:
    return [p for page in adapter.list_participants(ref) for p in page.items]


# -- participants ---------------------------------------------------------------------------
@pytest.mark.parametrize("per_page", [4, 7, 2500])
def test_rows_without_a_registration_id_are_read_keyed_by_user_within_the_event(
        real: Real, per_page: int) -> None:
    ref = real.event_ref()
    event_id = ref.split(":")[1]
    rows = real.rows(ref)
    keyless = [r for r in rows if r.get("_keyless")]
    assert keyless, "real shapes serve rows without registration_id"
    # Small pages end on a row without a registration id: the read must page on anyway.
    pages = list(real.adapter(results_per_page=per_page).list_participants(ref))
    assert all(not page.problems for page in pages)
    read = [p for page in pages for p in page.items]
    assert len(read) == len(rows) == len({p.ref for p in read})
    by_user = {p.person_ref: p for p in read}
    for row in keyless:
        p = by_user[str(row["user"]["user_id"])]
        assert p.ref == f"user:{row['user']['user_id']}@{event_id}" and p.ref_is_fallback
    keyed = next(p for p in read if not p.ref_is_fallback)
    assert keyed.ref.isdigit() and keyed.fallback_ref == f"user:{keyed.person_ref}@{event_id}"


def test_a_row_that_gains_its_registration_id_is_the_same_registration(real: Real) -> None:
    ref = real.event_ref()
    row = next(r for r in real.rows(ref) if r.get("_keyless"))
    before = next(p for p in participants(real.adapter(), ref)
                  if p.person_ref == str(row["user"]["user_id"]))
    stored = {before.ref: "the EP made from the row without registration_id"}
    real.sim.give_registration_id(row["registration_id"])
    after = next(p for p in participants(real.adapter(), ref)
                 if p.person_ref == str(row["user"]["user_id"]))
    assert after.ref == str(row["registration_id"]) and not after.ref_is_fallback
    # The sync's rule: look a row up by each of its keys; the fallback finds the stored EP.
    assert after.match_refs() == (after.ref, before.ref)
    found = next((stored[k] for k in after.match_refs() if k in stored), None)
    assert found == "the EP made from the row without registration_id"


def test_match_refs_never_confuse_two_people_or_two_events() -> None:
    a = m.map_participant({"event_id": 5, "user": {"user_id": 9, "first_name": "A"}}, "1")
    b = m.map_participant({"event_id": 5, "user": {"user_id": 10, "first_name": "B"}}, "1")
    other_event = m.map_participant({"event_id": 6, "user": {"user_id": 9, "first_name": "A"}},
                                    "1")
    keyed = m.map_participant({"registration_id": 77, "event_id": 5,
                               "user": {"user_id": 9, "first_name": "A"}}, "1")
    assert len({a.ref, b.ref, other_event.ref}) == 3
    assert set(keyed.match_refs()) & set(a.match_refs()) == {a.ref}
    assert not set(keyed.match_refs()) & set(other_event.match_refs())
    with pytest.raises(m.MappingError, match="no user.user_id"):
        m.map_participant({"event_id": 5, "user": {"first_name": "A"}}, "1")


def test_an_unknown_gender_code_keeps_the_row_with_a_warning(real: Real) -> None:
    ref = real.event_ref()
    row = real.rows(ref)[2]
    assert row["user"]["gender"] == "U"
    [page] = list(real.adapter().list_participants(ref))
    person = next(p for p in page.items if p.person_ref == str(row["user"]["user_id"]))
    assert person.gender is None
    [warning] = [w for w in page.warnings if w.field == "user.gender"]
    assert warning.row == 2 and "'U'" in warning.message and "unknown" in warning.message


def test_bibs_keep_their_leading_zeros_read_and_pushed_back(real: Real) -> None:
    ref = real.event_ref()
    row = real.rows(ref)[1]
    assert row["bib_num"] == "0042"
    person = next(p for p in participants(real.adapter(), ref)
                  if p.person_ref == str(row["user"]["user_id"]))
    assert person.bib == "0042"
    target = next(r for r in real.rows(ref) if not r.get("_keyless") and r is not row)
    report = real.adapter().push_participants(ref, [ProviderParticipant(
        ref=str(target["registration_id"]), event_ref=ref, bib="0007")])
    assert report.accepted == 1 and target["bib_num"] == "0007"


def test_a_row_keyed_by_its_fallback_is_refused_by_the_bib_push_naming_it(real: Real) -> None:
    ref = real.event_ref()
    keyless = next(p for p in participants(real.adapter(), ref) if p.ref_is_fallback)
    report = real.adapter().push_participants(ref, [keyless])
    assert report.accepted == 0
    [problem] = report.problems
    assert problem.field == "registration_id" and keyless.ref in problem.message


def test_question_responses_are_asked_for_when_the_mapping_reads_them(real: Real) -> None:
    ref = real.event_ref()
    [plain] = list(real.adapter().list_participants(ref))
    assert "include_questions" not in real.sim.faults.seen("/participants")[-1].params
    assert all("question_responses" not in p.raw for p in plain.items)
    [asked] = list(real.adapter(mapping_sources=["user.first_name",
                                                 "question_responses.0.response"])
                   .list_participants(ref))
    assert real.sim.faults.seen("/participants")[-1].params["include_questions"] == "T"
    assert all(p.extra["question_responses"] for p in asked.items)


def test_withdrawals_of_rows_without_a_registration_id_use_the_same_key(real: Real) -> None:
    ref = real.event_ref()
    row = next(r for r in real.rows(ref) if r.get("_keyless"))
    person = next(p for p in participants(real.adapter(), ref)
                  if p.person_ref == str(row["user"]["user_id"]))
    real.sim.remove(row["registration_id"], reason="Injury")
    withdrawn = [w for page in real.adapter().list_withdrawn(ref) for w in page.items]
    assert person.ref in {w.ref for w in withdrawn}


# -- events ---------------------------------------------------------------------------------
def test_a_race_without_a_time_zone_leaves_it_unknown_and_says_so(real: Real) -> None:
    race = real.race(1)
    assert "timezone" not in race
    pages = list(real.adapter(race_ids=[str(race["race_id"])]).list_events())
    events = [e for p in pages for e in p.items]
    assert len(events) == 2
    assert all(e.time_zone is None and e.start_at is None for e in events)
    [warning] = [w for p in pages for w in p.warnings]
    assert warning.field == "race.timezone" and warning.ref == str(race["race_id"])
    assert "no time zone" in warning.message
    assert m.ASSUMED["race_time_zone"] is None  # listed as an assumption, not a guess


def test_a_race_without_a_time_zone_takes_the_connection_setting(real: Real) -> None:
    race = real.race(1)
    adapter = real.adapter(race_ids=[str(race["race_id"])], time_zone="America/Chicago")
    pages = list(adapter.list_events())
    event = pages[0].items[0]
    assert event.time_zone == "America/Chicago"
    assert event.start_at is not None and event.start_at.utcoffset() is not None
    local = m.format_local(event.start_at, ZoneInfo("America/Chicago"))
    assert local == race["events"][0]["start_time"]
    assert "America/Chicago" in pages[0].warnings[0].message


def test_the_time_zone_setting_must_name_a_zone() -> None:
    spec = get_spec("RUNSIGNUP")
    assert spec is not None
    field = spec.setting("time_zone")
    assert field is not None and field.clean(" America/Chicago ") == "America/Chicago"
    with pytest.raises(ValueError, match="time zone name"):
        field.clean("Eastern")


def test_races_listed_without_events_are_read_from_the_race(real: Real) -> None:
    pages = list(real.adapter().list_events())
    refs = {e.ref for p in pages for e in p.items}
    assert refs == {real.event_ref(r, e) for r in (0, 1) for e in (0, 1)}
    assert not [p for page in pages for p in page.problems]


def test_a_race_with_no_events_anywhere_is_a_problem_naming_it(real: Real) -> None:
    race = real.race(0)
    del race["events"]
    pages = list(real.adapter().list_events())
    [problem] = [p for page in pages for p in page.problems]
    assert problem.ref == str(race["race_id"]) and problem.field == "race.events"
    assert race["name"] in problem.message
    assert {e.parent_ref for p in pages for e in p.items} == {str(real.race(1)["race_id"])}


# -- test connection ------------------------------------------------------------------------
def test_test_connection_checks_the_configured_event(real: Real) -> None:
    race_id = real.race(0)["race_id"]
    assert real.adapter(eventIds=[real.event_ref(0, 1)]).check_credentials().ok
    assert real.sim.faults.seen("/participants")[-1].params["event_id"] == (
        real.event_ref(0, 1).split(":")[1])
    check = real.adapter(eventIds=[f"{race_id}:999999"]).check_credentials()
    assert not check.ok and "Event not found" in check.message


# -- paging ---------------------------------------------------------------------------------
@pytest.mark.parametrize("per_page", [4, 10])
def test_a_repeated_participants_page_ends_the_read_with_an_error(real: Real,
                                                                   per_page: int) -> None:
    pages = real.adapter(results_per_page=per_page).list_participants(real.event_ref())
    next(pages)
    real.sim.faults.arm("repeat_page", 1)
    with pytest.raises(RepeatedPage, match="repeated the previous one"):
        list(pages)


def test_a_repeated_races_page_ends_the_read_with_an_error(real: Real) -> None:
    pages = real.adapter(races_per_page=1).list_events()
    next(pages)
    real.sim.faults.arm("repeat_page", 1)
    with pytest.raises(RepeatedPage, match="GET races"):
        list(pages)


def test_participants_never_page_past_max_pages_silently(real: Real) -> None:
    with pytest.raises(PageLimitReached, match="max_pages"):
        list(real.adapter(results_per_page=4, max_pages=3).list_participants(real.event_ref()))


# -- results --------------------------------------------------------------------------------
def test_result_columns_named_in_results_headers_are_kept_by_their_label(real: Real) -> None:
    ref = real.event_ref(0, 1)
    [result_set] = real.sim.result_sets[int(ref.split(":")[1])]
    headers = result_set["results_headers"]
    team_col = next(k for k in headers if k.startswith("custom-field-"))
    division_col = next(k for k in headers if k.startswith("division-"))
    results = [r for page in real.adapter().get_results(ref) for r in page.items]
    assert len(results) == len(result_set["results"])
    by_result = {r.ref: r for r in results}
    for row in result_set["results"]:
        got = by_result[str(row["result_id"])]
        assert got.extra["Age Group Place"] == str(row[division_col])
        assert got.extra.get("Team") == (row[team_col] or None)
        assert team_col not in got.extra and division_col not in got.extra
        assert got.chip_time is not None or row["chip_time"] == ""
    # Rows of participants without a registration id still carry their bib.
    assert all(r.bib for r in results)


def test_a_repeated_results_page_ends_the_read_with_an_error(real: Real) -> None:
    ref = real.event_ref(0, 1)
    m.ASSUMED["results_per_page"], saved = 20, m.ASSUMED["results_per_page"]
    try:
        pages = real.adapter().get_results(ref)
        next(pages)
        real.sim.faults.arm("repeat_page", 1)
        with pytest.raises(RepeatedPage):
            list(pages)
    finally:
        m.ASSUMED["results_per_page"] = saved


def test_results_posted_by_bib_with_leading_zeros_match_their_participant(real: Real) -> None:
    ref = real.event_ref()
    row = real.rows(ref)[1]
    assert row["bib_num"] == "0042"
    report = real.adapter(result_set_name="racehub").post_results(ref, [ProviderResult(
        event_ref=ref, bib="0042", place=1, clock_time=timedelta(minutes=30))])
    assert report.accepted == 1 and not report.problems
    fetched = [r for page in real.adapter().get_results(ref) for r in page.items]
    assert [r.bib for r in fetched if r.clock_time == timedelta(minutes=30)] == ["0042"]
    assert real.sim.result_sets[int(ref.split(":")[1])][-1]["results"][0]["bib"] == "0042"
