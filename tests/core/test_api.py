from racehub.core.models import Role
from tests.factories import auth, make_tenant


def test_me_reports_the_tokens_tenant_and_role(client, db):
    tenant = make_tenant(db)
    response = client.get("/api/me", headers=auth(db, tenant, Role.RESULTS_OFFICER))
    assert response.status_code == 200
    body = response.json()
    assert body["tenant"]["slug"] == tenant.slug
    assert body["role"] == "RESULTS_OFFICER"
    assert "events:participant:write" in body["permissions"]
    assert "events:event:write" not in body["permissions"]


def test_unauthenticated_api_call_is_401_problem_json(client):
    response = client.get("/api/events")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == response.headers["x-request-id"]
