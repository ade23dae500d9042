"""Export storage: the local folder and S3 (a real moto server on 127.0.0.1), and an export
that cannot reach its storage."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer
from pydantic import SecretStr
from sqlalchemy.orm import Session

from racehub.core.context import TenantContext
from racehub.events.models import Event
from racehub.exports import service
from racehub.exports.schemas import ExportCreate
from racehub.exports.storage import LocalStorage, S3Storage, StorageError, get_storage
from racehub.jobs.models import JobStatus
from racehub.settings import Settings
from tests.exports.conftest import RunExport, csv_rows
from tests.factories import make_participant

BUCKET = "racehub-exports"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_settings(settings: Settings, moto_url: str) -> Iterator[Settings]:
    s3 = settings.model_copy(update={
        "export_storage": "s3", "export_s3_bucket": BUCKET, "export_s3_prefix": "test/",
        "export_s3_endpoint_url": moto_url, "export_s3_access_key_id": "testing",
        "export_s3_secret_access_key": SecretStr("testing")})
    client = get_storage(s3).client  # type: ignore[attr-defined]
    client.create_bucket(Bucket=BUCKET)
    yield s3
    import httpx

    httpx.post(f"{moto_url}/moto-api/reset", timeout=10)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_local_storage_saves_reads_and_deletes(tmp_path: Path) -> None:
    source = tmp_path / "file.csv"
    source.write_bytes(b"a,b\r\n" * 1000)
    local = LocalStorage(tmp_path / "exports")

    assert local.save("t/1/file.csv", source) == 5000
    assert b"".join(local.read("t/1/file.csv")) == source.read_bytes()
    local.delete("t/1/file.csv")
    local.delete("t/1/file.csv")  # already gone: fine
    assert not local.exists("t/1/file.csv")
    with pytest.raises(ValueError, match="leaves the export folder"):
        local.save("../escape.csv", source)


def test_s3_storage_saves_reads_and_deletes_on_a_moto_server(
    s3_settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "file.csv"
    source.write_bytes(b"x" * 100_000)
    s3 = get_storage(s3_settings)
    assert isinstance(s3, S3Storage)

    assert s3.save("t/1/file.csv", source) == 100_000
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == ["test/t/1/file.csv"]  # under the configured prefix
    assert b"".join(s3.read("t/1/file.csv")) == source.read_bytes()
    s3.delete("t/1/file.csv")
    assert not s3.exists("t/1/file.csv")


def test_a_multipart_upload_failing_midway_leaves_no_parts_behind(
    s3_settings: Settings, tmp_path: Path
) -> None:
    """A big file goes up in parts (above 8 MiB); when one part fails, the upload is
    aborted: no half object, and no stored parts the bucket would keep paying for."""
    source = tmp_path / "big.csv"
    source.write_bytes(b"x" * (17 * 1024 * 1024))  # three parts of 8 MiB
    s3 = get_storage(s3_settings)
    assert isinstance(s3, S3Storage)
    parts_sent: list[int] = []

    def fail_the_second_part(params: dict[str, object], **_: object) -> None:
        parts_sent.append(int(params["PartNumber"]))  # type: ignore[call-overload]
        if params["PartNumber"] == 2:
            raise ConnectionResetError("connection reset while sending part 2")

    s3.client.meta.events.register("before-parameter-build.s3.UploadPart",
                                   fail_the_second_part)
    with pytest.raises(StorageError, match="failed to store the file"):
        s3.save("t/1/big.csv", source)

    assert 2 in parts_sent  # it was a multipart upload, and it failed midway
    assert s3.client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert not s3.exists("t/1/big.csv")


def test_an_export_to_s3_completes_downloads_and_expires(
    db: Session, ctx: TenantContext, s3_settings: Settings, event: Event, run_export: RunExport
) -> None:
    make_participant(db, event, first_name="Grace", last_name="Hopper", bib="7")
    exp = service.create_export(db, ctx, settings=s3_settings, data=ExportCreate(
        view="participants", filters={"eventId": str(event.id)}, columns=["bib", "last_name"]))
    assert exp.storage_backend == "s3"

    exp = run_export(exp, with_settings=s3_settings)

    assert exp.job_run.status == JobStatus.COMPLETED, exp.job_run.message
    _, chunks = service.open_download(db, ctx, settings=s3_settings, export_id=exp.id)
    assert csv_rows(b"".join(chunks)) == [["Bib", "Last name"], ["7", "Hopper"]]
    exp.expires_at = exp.completed_at
    db.flush()
    assert service.expire_exports(db, s3_settings) == 1
    assert not get_storage(s3_settings).exists(exp.storage_key)  # type: ignore[arg-type]


def test_unreachable_s3_fails_the_export_with_the_reason_and_no_partial_file(
    db: Session, ctx: TenantContext, settings: Settings, event: Event, run_export: RunExport
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    down = settings.model_copy(update={
        "export_storage": "s3", "export_s3_bucket": BUCKET, "export_s3_endpoint_url": endpoint,
        "export_s3_access_key_id": "testing", "export_s3_secret_access_key": SecretStr("testing")})
    make_participant(db, event, last_name="Lovelace")
    exp = service.create_export(db, ctx, settings=down, data=ExportCreate(
        view="participants", filters={"eventId": str(event.id)}))

    exp = run_export(exp, with_settings=down)

    assert exp.job_run.status == JobStatus.FAILED
    assert exp.job_run.message.startswith(
        f"cannot reach the export storage s3://{BUCKET} at {endpoint}: "
        f'Could not connect to the endpoint URL: "{endpoint}/{BUCKET}/')
    assert not service.temp_path(down, exp).exists()
    assert exp.size_bytes is None and exp.expires_at is None


def test_s3_without_a_bucket_is_refused_clearly(settings: Settings) -> None:
    with pytest.raises(StorageError, match="RACEHUB_EXPORT_S3_BUCKET is not set"):
        get_storage(settings.model_copy(update={"export_storage": "s3"}))
