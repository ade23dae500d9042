"""The RunSignUp simulator's control routes: the demo's way to change a registration as a
registrant would, which the adapter then reads like any provider change."""

from __future__ import annotations

from starlette.testclient import TestClient

from racehub.providers.runsignup.simulator import RunSignUpSimulator, make_app


def simulator() -> tuple[RunSignUpSimulator, TestClient]:
    sim = RunSignUpSimulator(seed=3, races=1, events_per_race=2, participants_per_event=12)
    return sim, TestClient(make_app(simulator=sim))


def test_a_registration_changed_through_the_control_route_is_newer() -> None:
    sim, client = simulator()
    event_id = min(sim.participants)
    row = sim.participants[event_id][0]
    before = row["last_modified"]

    reply = client.post(f"/_sim/registrations/{row['registration_id']}",
                        json={"team_name": "Demo Striders", "first_name": "Alex"})

    assert reply.status_code == 200
    assert reply.json()["team_name"] == "Demo Striders"
    assert row["user"]["first_name"] == "Alex" and row["last_modified"] > before
    assert client.post("/_sim/registrations/1", json={"team_name": "x"}).status_code == 404
    assert client.post(f"/_sim/registrations/{row['registration_id']}",
                       json={}).status_code == 400


def test_registrations_are_added_and_removed_through_the_control_routes() -> None:
    sim, client = simulator()
    event_id = min(sim.participants)
    count = len(sim.participants[event_id])

    added = client.post(f"/_sim/events/{event_id}/registrations").json()
    assert len(sim.participants[event_id]) == count + 1
    removed = client.delete(f"/_sim/registrations/{added['registration_id']}",
                            params={"reason": "Refunded"})

    assert removed.status_code == 200
    assert len(sim.participants[event_id]) == count
    assert sim.removed[event_id][-1]["removed_reason"] == "Refunded"
    assert client.post("/_sim/events/42/registrations").status_code == 404
    assert client.delete(f"/_sim/registrations/{added['registration_id']}").status_code == 404
