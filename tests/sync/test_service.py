"""Provider connections in the service: encryption, scoping, base URL rule, audit, checks,
rotation and the mapping preview."""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.core.crypto import DecryptError, Keyring
from racehub.core.exceptions import Forbidden, Invalid
from racehub.core.models import Tenant
from racehub.providers.catalog import PROVIDERS, Direction
from racehub.sync import service
from racehub.sync.exceptions import (
    BaseUrlForbidden,
    ConnectionNameTaken,
    ConnectionNotFound,
    InvalidCredentials,
    SampleUnavailable,
)
from racehub.sync.models import ConnectionStatus, ProviderConnection
from racehub.sync.schemas import ConnectionCreate, ConnectionUpdate
from racehub.sync.transforms import MappingRule, parse_transforms
from tests.factories import make_tenant, system_ctx
from tests.sync.conftest import (
    ROSTER_PASSWORD,
    RSU_KEY,
    RSU_SECRET,
    audit_entries,
    fake_factory,
)


def runsignup(name: str = "RunSignUp main", **kw: object) -> ConnectionCreate:
    return ConnectionCreate(provider="runsignup", name=name,
                            credentials={"api_key": SecretStr(RSU_KEY),
                                         "api_secret": SecretStr(RSU_SECRET)}, **kw)


def make(db: Session, ctx: TenantContext, keyring: Keyring, **kw: object) -> ProviderConnection:
    return service.create_connection(db, ctx, keyring=keyring, data=runsignup(**kw))


def test_credentials_are_stored_encrypted_and_read_back_only_as_hints(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make(db, ctx, keyring)

    raw = db.execute(text("SELECT to_jsonb(c)::text FROM provider_connections c WHERE id = :id"),
                     {"id": connection.id}).scalar_one()
    assert RSU_KEY not in raw and RSU_SECRET not in raw
    assert service.read_credentials(keyring, connection) == {"api_key": RSU_KEY,
                                                             "api_secret": RSU_SECRET}
    read = service.to_read(keyring, connection).model_dump_json(by_alias=True)
    assert RSU_KEY not in read and RSU_SECRET not in read
    hints = service.to_read(keyring, connection).credentials
    assert hints["api_key"].set and hints["api_key"].last4 == RSU_KEY[-4:]
    assert connection.base_url == PROVIDERS["RUNSIGNUP"].base_url
    assert connection.direction == Direction.REGISTRATION
    assert connection.status == ConnectionStatus.UNTESTED


def test_passwords_never_show_even_their_last_characters(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
        provider="RACE_ROSTER", name="Roster",
        credentials={"client_id": SecretStr("client-0001-abcd"),
                     "client_secret": SecretStr("short"),
                     "username": SecretStr("ops@timing.example"),
                     "password": SecretStr(ROSTER_PASSWORD)}))
    hints = service.to_read(keyring, connection).credentials
    assert hints["password"].set and hints["password"].last4 is None
    assert hints["client_secret"].set and hints["client_secret"].last4 is None  # too short
    assert hints["client_id"].last4 == "abcd"


def test_each_provider_takes_only_its_own_credential_fields(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    with pytest.raises(InvalidCredentials) as missing:
        service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
            provider="HAKU", name="Haku", credentials={"client_id": SecretStr("abc-123456")}))
    assert missing.value.field == "credentials.client_secret"
    with pytest.raises(InvalidCredentials) as unknown:
        service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
            provider="HAKU", name="Haku", credentials={
                "client_id": SecretStr("abc-123456"), "client_secret": SecretStr("x" * 12),
                "api_key": SecretStr("y" * 12)}))
    assert unknown.value.field == "credentials.api_key"
    assert "client_id, client_secret" in unknown.value.detail
    # Copernico's key is optional: a connection without credentials is fine.
    copernico = service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
        provider="COPERNICO", name="Copernico"))
    assert copernico.direction == Direction.SCORING
    assert service.to_read(keyring, copernico).credentials["api_key"].set is False


def test_runsignup_takes_a_key_pair_or_an_oauth_token(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    token = service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
        provider="RUNSIGNUP", name="RSU OAuth",
        credentials={"access_token": SecretStr("oauth-token-123456")}))
    assert service.read_credentials(keyring, token) == {"access_token": "oauth-token-123456"}
    with pytest.raises(InvalidCredentials) as half_a_pair:
        service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
            provider="RUNSIGNUP", name="RSU half", credentials={"api_key": SecretStr(RSU_KEY)}))
    assert half_a_pair.value.field == "credentials.api_secret"
    assert half_a_pair.value.detail == (
        "credentials.api_secret: RunSignUp needs an API key and API secret, or an OAuth "
        "access token")
    # Removing the token from a connection that has nothing else is refused too.
    with pytest.raises(InvalidCredentials):
        service.update_connection(
            db, ctx, keyring=keyring, connection_id=token.id,
            data=ConnectionUpdate(credentials={"access_token": SecretStr("")}))


def test_only_a_platform_admin_may_change_the_base_url(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    admin = dataclasses.replace(ctx, is_platform_admin=False)
    with pytest.raises(BaseUrlForbidden) as refused:
        make(db, admin, keyring, base_url="http://127.0.0.1:9000")
    assert refused.value.field == "baseUrl" and "baseUrl" in refused.value.detail
    # Sending the default address is not a change.
    connection = make(db, admin, keyring, base_url=PROVIDERS["RUNSIGNUP"].base_url + "/")
    with pytest.raises(BaseUrlForbidden):
        service.update_connection(db, admin, keyring=keyring, connection_id=connection.id,
                                  data=ConnectionUpdate(base_url="http://127.0.0.1:9000"))

    platform = dataclasses.replace(ctx, is_platform_admin=True)
    updated = service.update_connection(db, platform, keyring=keyring,
                                        connection_id=connection.id,
                                        data=ConnectionUpdate(base_url="http://127.0.0.1:9000/"))
    assert updated.base_url == "http://127.0.0.1:9000"
    assert service.to_read(keyring, updated).is_default_base_url is False
    with pytest.raises(Exception, match="baseUrl must be an http"):
        service.update_connection(db, platform, keyring=keyring, connection_id=connection.id,
                                  data=ConnectionUpdate(base_url="ftp://example.com"))


def test_provider_settings_are_checked_stored_audited_and_removed(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    tenant_admin = dataclasses.replace(ctx, is_platform_admin=False)
    connection = service.create_connection(db, tenant_admin, keyring=keyring, data=ConnectionCreate(
        provider="COPERNICO", name="Copernico", event_ids=["R1:E1"],
        settings={"preset_owner": " timer@example.com ",
                  "event_names": "E1 = marathon\n\nE2 = 10k"}))
    assert service.to_read(keyring, connection).settings == {
        "preset_owner": "timer@example.com", "event_names": {"E1": "marathon", "E2": "10k"}}
    assert service.to_read(keyring, connection).event_ids == ["R1:E1"]  # as a link row

    with pytest.raises(Invalid) as unknown:
        service.update_connection(db, tenant_admin, keyring=keyring, connection_id=connection.id,
                                  data=ConnectionUpdate(settings={"race_ids": "1"}))
    assert unknown.value.field == "settings.race_ids"
    assert ("results_base_url, preset_owner, preset, race_slug, event_names, rate_per_second"
            in unknown.value.detail)
    with pytest.raises(Invalid, match="settings.event_names: line 1: write key = value"):
        service.update_connection(db, tenant_admin, keyring=keyring, connection_id=connection.id,
                                  data=ConnectionUpdate(settings={"event_names": "no equals"}))
    # The results host receives the API key: moving it is a platform admin's right.
    with pytest.raises(Forbidden) as moved:
        service.update_connection(db, tenant_admin, keyring=keyring, connection_id=connection.id,
                                  data=ConnectionUpdate(settings={"results_base_url": "http://x.test"}))
    assert moved.value.field == "settings.results_base_url"
    platform = dataclasses.replace(ctx, is_platform_admin=True)
    service.update_connection(db, platform, keyring=keyring, connection_id=connection.id,
                              data=ConnectionUpdate(settings={"results_base_url": "http://x.test/api/",
                                                              "preset_owner": ""}))
    assert service.provider_settings(connection) == {
        "event_names": {"E1": "marathon", "E2": "10k"}, "results_base_url": "http://x.test/api"}
    assert connection.status == ConnectionStatus.UNTESTED
    (change,) = [e for e in audit_entries(db, "connection.update")
                 if e.target_id == str(connection.id)]
    assert change.before["settings"]["preset_owner"] == "timer@example.com"
    assert "preset_owner" not in change.after["settings"]


def test_every_setting_an_adapter_reads_is_stored_checked_by_its_model(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
        provider="RUNSIGNUP", name="RSU", credentials={
            "api_key": SecretStr("key-123456"), "api_secret": SecretStr("x" * 12)},
        settings={"race_ids": "12, 13", "results_per_page": "500", "max_pages": 20000,
                  "include_questions": "yes"}))
    assert service.provider_settings(connection) == {
        "race_ids": ["12", "13"], "results_per_page": 500, "max_pages": 20000,
        "include_questions": "yes"}
    for bad, field in (({"max_attempts": 50}, "settings.max_attempts"),
                       ({"race_ids": "12, next"}, "settings.race_ids"),
                       ({"eventIds": ["1:2"]}, "settings.eventIds"),
                       ({"mapping_sources": ["a"]}, "settings.mapping_sources")):
        with pytest.raises(Invalid) as refused:
            service.update_connection(db, ctx, keyring=keyring, connection_id=connection.id,
                                      data=ConnectionUpdate(settings=bad))
        assert refused.value.field == field, bad
    assert service.provider_settings(connection)["race_ids"] == ["12", "13"]


def test_only_a_platform_admin_may_move_an_oauth_token_endpoint(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    data = ConnectionCreate(provider="HAKU", name="Haku", credentials={
        "client_id": SecretStr("abc-123456"), "client_secret": SecretStr("x" * 12)},
        settings={"token_url": "https://auth.example.test/token"})
    with pytest.raises(Forbidden) as refused:
        service.create_connection(db, dataclasses.replace(ctx, is_platform_admin=False),
                                  keyring=keyring, data=data)
    assert refused.value.field == "settings.token_url"
    connection = service.create_connection(
        db, dataclasses.replace(ctx, is_platform_admin=True), keyring=keyring, data=data)
    assert service.provider_settings(connection) == {
        "token_url": "https://auth.example.test/token"}


def test_updating_one_credential_keeps_the_others_and_audits_which_changed(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make(db, ctx, keyring)
    service.update_connection(db, ctx, keyring=keyring, connection_id=connection.id,
                              data=ConnectionUpdate(credentials={
                                  "api_secret": SecretStr("new-secret-abcdefgh")}))
    assert service.read_credentials(keyring, connection) == {
        "api_key": RSU_KEY, "api_secret": "new-secret-abcdefgh"}
    assert connection.status == ConnectionStatus.UNTESTED

    [change] = audit_entries(db, "connection.credentials_change")
    assert change.after == {"changed": ["api_secret"], "cleared": []}
    [create] = audit_entries(db, "connection.create")
    assert create.after["credentials"] == ["api_key", "api_secret"]
    everything = json.dumps([e.after for e in audit_entries(db, "connection.create")]
                            + [change.after, change.before])
    assert RSU_SECRET not in everything and "new-secret" not in everything


def test_settings_and_mapping_changes_are_audited_with_before_and_after(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make(db, ctx, keyring)
    rule = MappingRule(target="gender", sources=["user.gender"],
                       transforms=parse_transforms("gender:M=M,F=F,*=U"))
    service.update_connection(db, ctx, keyring=keyring, connection_id=connection.id,
                              data=ConnectionUpdate(name="RSU", event_ids=["661702"],
                                                    field_mapping=[rule]))
    [update] = audit_entries(db, "connection.update")
    assert update.before == {"name": "RunSignUp main", "eventIds": [], "fieldMapping": []}
    assert update.after == {"name": "RSU", "eventIds": ["661702"], "fieldMapping": ["gender"]}
    assert connection.field_mapping[0]["transforms"][0]["map"] == {"M": "M", "F": "F"}


def test_names_are_unique_per_tenant(db: Session, ctx: TenantContext, keyring: Keyring) -> None:
    make(db, ctx, keyring)
    with pytest.raises(ConnectionNameTaken):
        make(db, ctx, keyring)
    other = system_ctx(make_tenant(db))
    make(db, other, keyring)  # another tenant may use the same name


def test_another_tenants_connection_is_not_found(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    theirs = make(db, system_ctx(make_tenant(db)), keyring)
    assert service.list_connections(db, ctx) == []
    for call in (
        lambda: service.get_connection_or_raise(db, ctx, connection_id=theirs.id),
        lambda: service.update_connection(db, ctx, keyring=keyring, connection_id=theirs.id,
                                          data=ConnectionUpdate(name="mine")),
        lambda: service.delete_connection(db, ctx, connection_id=theirs.id),
        lambda: service.check_connection(db, ctx, keyring=keyring, connection_id=theirs.id,
                                         adapter_factory=fake_factory()),
    ):
        with pytest.raises(ConnectionNotFound):
            call()
    assert theirs.name == "RunSignUp main"


def test_delete_removes_the_credentials_and_is_audited(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make(db, ctx, keyring)
    service.delete_connection(db, ctx, connection_id=connection.id)
    assert db.scalar(select(ProviderConnection).where(ProviderConnection.id == connection.id)) \
        is None
    [entry] = audit_entries(db, "connection.delete")
    assert entry.before["name"] == "RunSignUp main"
    assert entry.after == {"credentials": "deleted", "links": [], "categoryLinks": 0,
                           "webhookDeliveries": 0, "runsKept": 0, "recordsKept": 0}


def test_a_failed_check_is_stored_scrubbed_of_every_secret(
    db: Session, ctx: TenantContext, keyring: Keyring, log_output: io.StringIO
) -> None:
    connection = make(db, ctx, keyring)
    result = service.check_connection(db, ctx, keyring=keyring, connection_id=connection.id,
                                      adapter_factory=fake_factory(accept=False))
    assert not result.ok and result.status == ConnectionStatus.FAILED
    assert "key authentication failed for *** *** (code 6)" in result.message
    assert connection.status == ConnectionStatus.FAILED and connection.last_checked_at
    [entry] = audit_entries(db, "connection.test")
    assert entry.after["ok"] is False
    logged = log_output.getvalue()
    assert "connection.tested" in logged
    for secret in (RSU_KEY, RSU_SECRET):
        assert secret not in logged and secret not in entry.after["message"]


def test_a_passing_check_marks_the_connection_ok(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make(db, ctx, keyring)
    factory = fake_factory()
    result = service.check_connection(db, ctx, keyring=keyring, connection_id=connection.id,
                                      adapter_factory=factory)
    assert result.ok and result.message == "credentials accepted"
    assert connection.status == ConnectionStatus.OK
    assert factory.made[0].credentials == {"api_key": RSU_KEY, "api_secret": RSU_SECRET}


def test_credentials_no_key_opens_fail_the_check_with_a_clear_message(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make(db, ctx, keyring)
    stranger = Keyring([Fernet.generate_key()])
    result = service.check_connection(db, ctx, keyring=stranger, connection_id=connection.id,
                                      adapter_factory=fake_factory())
    assert not result.ok and "RACEHUB_SECRET_KEYS" in result.message
    assert service.to_read(stranger, connection).credentials["api_key"].set  # still "set"


def test_rotation_reencrypts_every_tenants_credentials_and_the_old_key_can_go(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    other_tenant = make_tenant(db)
    mine = make(db, ctx, keyring)
    theirs = make(db, system_ctx(other_tenant), keyring)
    old_tokens = {c.id: c.credentials_encrypted for c in (mine, theirs)}
    new_key = Fernet.generate_key()
    rotated_ring = keyring.with_new_primary(new_key)

    report = service.rotate_credentials(db, keyring=rotated_ring)

    assert report.rotated >= 2 and report.failed == []
    only_new = Keyring([new_key])
    for connection in (mine, theirs):
        assert connection.credentials_encrypted != old_tokens[connection.id]
        assert connection.credentials_key_id == rotated_ring.primary_id
        assert service.read_credentials(only_new, connection)["api_secret"] == RSU_SECRET
        with pytest.raises(DecryptError):
            service.read_credentials(keyring, connection)  # the old key alone no longer opens
    per_tenant = {e.tenant_id for e in audit_entries(db, "connection.credentials_rotate")}
    assert {ctx.tenant_id, other_tenant.id} <= per_tenant
    [summary] = audit_entries(db, "keys.rotate")
    assert summary.tenant_id is None and summary.after["primaryKeyId"] == only_new.primary_id
    assert new_key.decode() not in json.dumps(summary.after)


def test_rotation_reports_rows_no_key_opens_and_leaves_them(
    db: Session, tenant: Tenant, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make(db, ctx, keyring)
    token = connection.credentials_encrypted
    report = service.rotate_credentials(db, keyring=Keyring([Fernet.generate_key()]))
    assert any(str(connection.id) in f for f in report.failed)
    assert connection.credentials_encrypted == token


def test_the_preview_runs_the_typed_mapping_on_a_live_sample(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make(db, ctx, keyring, event_ids=["661702"])
    records = [{"registration_id": 1, "user": {"first_name": " ada ", "gender": "F",
                                               "dob": "1815-12-10"}},
               {"registration_id": 2, "user": {"first_name": "alan", "gender": "Q"}}]
    factory = fake_factory(records=records)
    sample = service.fetch_sample(db, ctx, keyring=keyring, connection_id=connection.id,
                                  event_id=None, adapter_factory=factory)
    assert factory.made[0].calls == ["participants:661702"]  # the connection's first event
    rules = [MappingRule(target="first_name", sources=["user.first_name"],
                         transforms=parse_transforms("trim | title")),
             MappingRule(target="gender", sources=["user.gender"],
                         transforms=parse_transforms("gender:F=F,M=M"))]
    preview = service.preview_mapping(rules, sample, origin="provider")
    assert [r.values["first_name"] for r in preview.rows] == ["Ada", "Alan"]
    assert preview.rows[1].errors == {
        "gender": "gender: gender: gender code 'Q' is not in the map (add it, or set a default)"}
    assert "user.dob" in preview.source_paths


def test_a_sample_needs_an_event(db: Session, ctx: TenantContext, keyring: Keyring) -> None:
    connection = make(db, ctx, keyring)
    with pytest.raises(SampleUnavailable) as info:
        service.fetch_sample(db, ctx, keyring=keyring, connection_id=connection.id,
                             event_id=None, adapter_factory=fake_factory())
    assert info.value.field == "eventId"
    with pytest.raises(SampleUnavailable, match="has no participants"):
        service.fetch_sample(db, ctx, keyring=keyring, connection_id=connection.id,
                             event_id="42", adapter_factory=fake_factory())


def test_a_check_overtaken_by_a_credential_change_leaves_the_new_ones_untested(
    db: Session, ctx: TenantContext, keyring: Keyring
) -> None:
    connection = make(db, ctx, keyring)
    inner = fake_factory()

    def factory(conn: ProviderConnection, credentials: dict[str, str]):  # type: ignore[no-untyped-def]
        # Someone saves new credentials while the provider is being asked.
        db.execute(text("UPDATE provider_connections SET credentials_encrypted = :t "
                        "WHERE id = :id"), {"t": keyring.encrypt('{"api_key": "other-key-1",'
                                                                 ' "api_secret": "other-2"}'),
                                            "id": conn.id})
        return inner(conn, credentials)

    result = service.check_connection(db, ctx, keyring=keyring, connection_id=connection.id,
                                      adapter_factory=factory)
    assert result.ok and "changed meanwhile" in result.message
    assert connection.status == ConnectionStatus.UNTESTED
    assert audit_entries(db, "connection.test") == []


def test_a_wrong_password_is_scrubbed_in_every_form_a_library_may_quote_it(
    db: Session, ctx: TenantContext, keyring: Keyring, log_output: io.StringIO
) -> None:
    import base64
    import hashlib

    connection = service.create_connection(db, ctx, keyring=keyring, data=ConnectionCreate(
        provider="CHRONOTRACK", name="CT", credentials={
            "client_id": SecretStr("ct-client-0001"), "user_id": SecretStr("ops@timing.test"),
            "user_pass": SecretStr(ROSTER_PASSWORD)}))
    sha1 = hashlib.sha1(ROSTER_PASSWORD.encode()).hexdigest()
    basic = base64.b64encode(f"ops@timing.test:{ROSTER_PASSWORD}".encode()).decode()

    class Leaky:
        def __enter__(self) -> Leaky:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def check_credentials(self) -> None:
            raise RuntimeError(f"GET /api/event?user_pass={sha1} -> 401; Authorization: Basic "
                               f"{basic}; tried {ROSTER_PASSWORD!r}")

    result = service.check_connection(db, ctx, keyring=keyring, connection_id=connection.id,
                                      adapter_factory=lambda conn, creds: Leaky())
    assert not result.ok and "unexpected error (RuntimeError)" in result.message
    logged = log_output.getvalue()
    assert "connection.check_crashed" in logged
    for leak in (ROSTER_PASSWORD, sha1, basic):
        assert leak not in result.message and leak not in logged
        assert leak not in (connection.last_check_message or "")
