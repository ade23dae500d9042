"""The Copernico simulator's finish control: the race is run for the athletes racehub
pushed, and the results the adapter reads hold them (the demo's and the browser tests' way
to have results for a pushed start list)."""

from __future__ import annotations

from datetime import timedelta

from starlette.testclient import TestClient

from racehub.providers.base import ProviderParticipant
from racehub.providers.base import ResultStatus as Status
from racehub.providers.copernico import mapping as m
from racehub.providers.copernico.simulator import CopernicoSimulator, make_app


def _pushed(client: TestClient, race_id: str, event_id: str, n: int) -> list[str]:
    rows = [m.participant_to_registration(ProviderParticipant(
        ref=f"ep-{i}", event_ref=m.event_ref(race_id, event_id), first_name=f"Runner{i}",
        last_name="Test", gender="F" if i % 2 else "M", bib=str(100 + i)), race_id, event_id)
        for i in range(n)]
    reply = client.post(f"/race-registrations/{race_id}", json=rows)
    assert reply.status_code == 200 and reply.json()["data"]["created"] == n
    return [r["id"] for r in rows]


def test_finish_gives_results_to_the_pushed_athletes_only_once() -> None:
    sim = CopernicoSimulator(seed=4, races=1, registrations_per_event=5, finishers_per_event=3)
    client = TestClient(make_app(simulator=sim))
    race_id = next(iter(sim.races))
    event_id = next(iter(sim.races[race_id]["events"]))
    ids = _pushed(client, race_id, event_id, 60)

    reply = client.post(f"/_sim/races/{race_id}/finish", params={"event": event_id})

    assert reply.status_code == 200
    counts = reply.json()
    assert sum(counts.values()) == 60 and counts["finished"] > 40
    assert counts["dnf"] + counts["dns"] > 0  # 60 draws: some do not finish
    rows = sim.results[(race_id, event_id)]
    mapped = [m.map_result(r, m.event_ref(race_id, event_id)) for r in rows]
    ours = [r for r in mapped if r.participant_ref in ids]
    assert len(ours) == 60
    finished = [r for r in mapped if r.status is Status.FINISHED]
    # Places ranked by time over every finisher, the seeded ones included.
    assert [r.place for r in sorted(finished, key=lambda r: r.clock_time or timedelta(0))] == list(
        range(1, len(finished) + 1))
    assert all(r.place is None and r.clock_time is None for r in ours
               if r.status is not Status.FINISHED)
    # A 10K-ish time for a "Maratón"/"10K" event: minutes, not milliseconds of nothing.
    assert all(r.clock_time.total_seconds() > 60 * 25 for r in ours
               if r.status is Status.FINISHED and r.clock_time is not None)

    assert client.post(f"/_sim/races/{race_id}/finish").json() == {
        "finished": 0, "dnf": 0, "dns": 0}  # nobody left to finish
    assert client.post("/_sim/races/nope/finish").status_code == 404
    assert client.post(f"/_sim/races/{race_id}/finish",
                       params={"event": "nope"}).status_code == 404
