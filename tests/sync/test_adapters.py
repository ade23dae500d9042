"""The adapter a stored connection opens: the real RunSignUp adapter against its simulator,
drawing on a request budget kept in Postgres (shared by every process)."""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import Keyring
from racehub.providers.ratelimit import PostgresRateLimiter
from racehub.providers.runsignup.simulator import make_app
from racehub.providers.simulator import serve_in_thread
from racehub.sync import adapters, service
from racehub.sync.models import ConnectionStatus
from racehub.sync.schemas import ConnectionCreate


def test_a_connection_check_goes_through_the_shared_postgres_budget(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    app = make_app(races=1, events_per_race=1, participants_per_event=5,
                   api_key="key-for-the-budget-test", api_secret="secret-for-the-budget-test")
    with serve_in_thread(app) as server:
        connection = service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
            provider="runsignup", name="RunSignUp budget",
            credentials={"api_key": SecretStr("key-for-the-budget-test"),
                         "api_secret": SecretStr("secret-for-the-budget-test")}))
        connection.base_url = f"{server}/Rest"  # as a platform admin would point it
        db.flush()

        result = service.check_connection(db, ctx, keyring=keyring,
                                          connection_id=connection.id)

    assert result.ok, result.message
    assert connection.status == ConnectionStatus.OK
    # The budget row was written (and committed) on the limiter's own connection, keyed
    # by the connection id: every process using this connection draws from it.
    key = {"key": str(connection.id)}
    tokens = db.scalar(text("SELECT tokens FROM provider_rate_limits WHERE key = :key"), key)
    with db.get_bind().engine.begin() as own:  # committed outside the test's transaction
        own.execute(text("DELETE FROM provider_rate_limits WHERE key = :key"), key)
    assert tokens is not None and tokens < 10


def test_one_limiter_per_database_is_shared_by_every_session(db: Session) -> None:
    first = adapters.rate_limiter_for(db)
    assert isinstance(first, PostgresRateLimiter)
    assert adapters.rate_limiter_for(db) is first
