"""Where finished export files are kept, behind one small interface.

``LocalStorage`` (default) keeps them in a folder; ``S3Storage`` in an S3-compatible
bucket (AWS, MinIO, Ceph; tested against moto). A save either stores the whole file or
raises ``StorageError`` with a reason an operator can act on, leaving no partial object.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from racehub.settings import Settings

CHUNK = 1 << 20


class StorageError(Exception):
    """The storage refused or could not be reached; the message says why."""


class Storage(Protocol):
    name: str

    def save(self, key: str, source: Path) -> int:
        """Store ``source`` under ``key``; returns its size. All or nothing."""

    def read(self, key: str) -> Iterator[bytes]:
        """The stored bytes, in chunks."""

    def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens if it is not there."""

    def exists(self, key: str) -> bool: ...


class LocalStorage:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"storage key {key!r} leaves the export folder")
        return path

    def save(self, key: str, source: Path) -> int:
        target = self._path(key)
        partial = target.with_name(target.name + ".partial")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with source.open("rb") as src, partial.open("wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)  # readers see the whole file or none
        except OSError as exc:
            with contextlib.suppress(OSError):  # the folder may be what failed
                partial.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageError(f"the export folder {self.root} is full "
                                   f"({exc.strerror})") from exc
            raise StorageError(f"cannot write to the export folder {self.root}: "
                               f"{exc.strerror or exc}") from exc
        return target.stat().st_size

    def read(self, key: str) -> Iterator[bytes]:
        with self._path(key).open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".partial").unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3Storage:
    name = "s3"

    def __init__(self, *, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 region: str = "us-east-1", access_key_id: str | None = None,
                 secret_access_key: str | None = None, connect_timeout: float = 5,
                 read_timeout: float = 60, max_attempts: int = 3) -> None:
        import boto3
        from botocore.config import Config

        if not bucket:
            raise StorageError("RACEHUB_EXPORT_S3_BUCKET is not set")
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
            config=Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                          retries={"max_attempts": max_attempts, "mode": "standard"}))

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _where(self) -> str:
        return f"s3://{self.bucket}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def _error(self, action: str, exc: Exception) -> StorageError:
        from botocore.exceptions import ClientError, EndpointConnectionError

        if isinstance(exc, EndpointConnectionError):
            return StorageError(f"cannot reach the export storage {self._where()}: {exc}")
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code, message = error.get("Code", "?"), error.get("Message", "")
            if code in ("EntityTooLarge", "QuotaExceeded", "InsufficientStorage"):
                return StorageError(f"the export storage {self._where()} is full: "
                                    f"{code} {message}".rstrip())
            return StorageError(f"the export storage {self._where()} refused to {action}: "
                                f"{code} {message}".rstrip())
        return StorageError(f"the export storage {self._where()} failed to {action}: {exc}")

    def save(self, key: str, source: Path) -> int:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            # Multipart for big files; a failed multipart upload is aborted by boto3, and a
            # plain PUT stores nothing unless it completes.
            self.client.upload_file(str(source), self.bucket, self._key(key))
        except S3UploadFailedError as exc:
            self._forget(key)
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, BotoCoreError | ClientError):
                raise self._error("store the file", cause) from exc
            raise StorageError(f"the export storage {self._where()} failed to store the "
                               f"file: {exc}") from exc
        except (BotoCoreError, ClientError, OSError) as exc:
            # (A socket error in a part can come through s3transfer as itself.)
            self._forget(key)
            raise self._error("store the file", exc) from exc
        return source.stat().st_size

    def _forget(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        # Unreachable: nothing was stored there either.
        with contextlib.suppress(BotoCoreError, ClientError):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def read(self, key: str) -> Iterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except (BotoCoreError, ClientError) as exc:
            raise self._error("read the file", exc) from exc
        return body.iter_chunks(CHUNK)  # type: ignore[no-any-return]

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise self._error("delete the file", exc) from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error("look up the file", exc) from exc
        except BotoCoreError as exc:
            raise self._error("look up the file", exc) from exc
        return True


def export_dir(settings: Settings) -> Path:
    return settings.export_dir or settings.data_dir / "exports"


def get_storage(settings: Settings, backend: str | None = None) -> Storage:
    """The storage of ``backend`` (an export's own), default the configured one."""
    backend = backend or settings.export_storage
    if backend == "local":
        return LocalStorage(export_dir(settings))
    if backend == "s3":
        secret = settings.export_s3_secret_access_key
        return S3Storage(
            bucket=settings.export_s3_bucket, prefix=settings.export_s3_prefix,
            endpoint_url=settings.export_s3_endpoint_url, region=settings.export_s3_region,
            access_key_id=settings.export_s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None)
    raise StorageError(f"unknown export storage {backend!r}; use local or s3")
