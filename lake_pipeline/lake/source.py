"""Where Crypto Lake partitions come from: an S3 bucket (paid, public sample, any S3-compatible endpoint) or a local
directory, both in the lake layout `{prefix}/{table}/exchange=E/symbol=S/dt=D/<any name>.parquet`.

A partition directory is LISTED (file names are never assumed, research cryptolake.md §2.1); `contents.json.gz`
(lakeapi's listing cache) and other non-parquet names are ignored. Credentials come from boto3's standard chain
(environment, profile, instance role) and are never logged; `anonymous=True` sends unsigned requests for public
buckets such as `s3://sample.crypto.lake`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from lake_pipeline.instrument import Partition
from lake_pipeline.lake.retry import RetryPolicy, call_with_retries, is_transient

READ_BLOCK = 1 << 20
IGNORED_NAMES = frozenset({"contents.json.gz"})


class SourceAccessError(RuntimeError):
    """The source refused or could not serve a request for a non-transient reason (no such bucket, access denied…)."""


class CorruptTransferError(ConnectionError):
    """The response failed its transport checksum (x-amz-checksum-*): the range is fetched again from its start."""


class ObjectChangedError(RuntimeError):
    """The remote object changed (ETag differs) while we were downloading it; the partial download is discarded."""


@dataclass(frozen=True)
class SourceObject:
    """One file of a source partition. `version` identifies its content (S3 ETag, or size+mtime for local files)."""

    name: str
    key: str
    url: str
    size: int
    version: str
    etag: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "url": self.url, "bytes": self.size, "version": self.version, "etag": self.etag}


class ObjectSource(Protocol):
    url: str

    def list_partition(self, part: Partition, table: str) -> list[SourceObject]: ...

    def read_range(self, obj: SourceObject, start: int, end: int, sink: Callable[[bytes], None]) -> None: ...

    def part_size(self, obj: SourceObject) -> int | None: ...


def partition_suffix(part: Partition, table: str) -> str:
    return f"{table}/{part.hive}"


def _keep(name: str) -> bool:
    return name.endswith(".parquet") and name not in IGNORED_NAMES and not name.startswith(".")


class LocalSource:
    """A local directory in lake layout (e.g. a mounted bucket or files saved by another tool)."""

    def __init__(self, url: str):
        self.url = url
        self.root = Path(urlparse(url).path if url.startswith("file://") else url).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"lake source {self.root} is a file, not a directory: pass the folder that "
                                     "holds {table}/exchange=E/symbol=S/dt=D/ (or an s3:// URL)")
        if not self.root.is_dir():
            raise FileNotFoundError(f"lake source directory {self.root} does not exist")

    def list_partition(self, part: Partition, table: str) -> list[SourceObject]:
        folder = self.root / partition_suffix(part, table)
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(p for p in folder.iterdir() if p.is_file() and _keep(p.name)):
            st = path.stat()
            out.append(SourceObject(path.name, str(path), str(path), st.st_size, f"{st.st_size}:{st.st_mtime_ns}"))
        return out

    def read_range(self, obj: SourceObject, start: int, end: int, sink: Callable[[bytes], None]) -> None:
        with open(obj.key, "rb") as fh:
            fh.seek(start)
            remaining = end - start
            while remaining > 0:
                block = fh.read(min(READ_BLOCK, remaining))
                if not block:
                    raise SourceAccessError(f"{obj.url}: file shrank while reading (expected {obj.size} bytes)")
                sink(block)
                remaining -= len(block)

    def part_size(self, obj: SourceObject) -> int | None:
        return None


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix/` -> ("bucket", "some/prefix") (prefix may be empty)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"not an s3 URL: {url!r} (expected s3://bucket[/prefix])")
    return parsed.netloc, parsed.path.strip("/")


class S3Source:
    """A bucket (and optional prefix) in Crypto Lake layout, read with boto3 ranged GETs."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        anonymous: bool = False,
        max_connections: int = 10,
        retry: RetryPolicy = RetryPolicy(),
    ):
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        self.url = url.rstrip("/")
        self.bucket, self.prefix = parse_s3_url(url)
        self.retry = retry
        config = Config(
            signature_version=UNSIGNED if anonymous else None,
            retries={"mode": "standard", "total_max_attempts": 1},  # retry.py is the single retry layer
            max_pool_connections=max(10, max_connections),
            connect_timeout=10,
            read_timeout=60,
        )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "eu-west-1"
        self.client = boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, region_name=region,
                                                     config=config)
        self.anonymous = anonymous

    def _key_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @staticmethod
    def _translate(exc: Exception, what: str) -> Exception:
        """A non-transient botocore error as a clear domain error naming `what` (never includes credentials)."""
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            return SourceAccessError(
                f"{what}: no AWS credentials found (environment, ~/.aws profile or instance role); "
                "pass --anonymous for a public bucket such as s3://sample.crypto.lake"
            )
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code, status = err.get("Code", "?"), exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "PreconditionFailed" or status == 412:
                return ObjectChangedError(f"{what}: the object changed at the source during the download")
            hint = " (check credentials, or use --anonymous for a public bucket)" if status in (401, 403) else ""
            return SourceAccessError(f"{what}: {code} (HTTP {status}): {err.get('Message', '')}{hint}")
        return SourceAccessError(f"{what}: {type(exc).__name__}: {exc}")

    def _call(self, fn: Callable, what: str):
        """`fn` with retries on transient errors; anything else becomes a SourceAccessError / ObjectChangedError."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call_with_retries(fn, what=what, policy=self.retry)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, what) from exc

    def list_partition(self, part: Partition, table: str) -> list[SourceObject]:
        folder = "/".join(p for p in (self.prefix, partition_suffix(part, table)) if p) + "/"

        def listing() -> list[dict]:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=folder, Delimiter="/"
            )
            return [item for page in pages for item in page.get("Contents", [])]

        items = self._call(listing, f"list {self._key_url(folder)}")
        out = []
        for item in sorted(items, key=lambda i: i["Key"]):
            name = item["Key"][len(folder):]
            if not _keep(name):
                continue
            etag = item["ETag"].strip('"')
            out.append(SourceObject(name, item["Key"], self._key_url(item["Key"]), int(item["Size"]), etag, etag))
        return out

    def read_range(self, obj: SourceObject, start: int, end: int, sink: Callable[[bytes], None]) -> None:
        """Stream bytes [start, end) into `sink`. Not retried here: the caller retries from the byte it reached."""
        from botocore.exceptions import BotoCoreError, ClientError, FlexibleChecksumError

        try:
            resp = self.client.get_object(
                Bucket=self.bucket, Key=obj.key, Range=f"bytes={start}-{end - 1}", IfMatch=f'"{obj.etag}"'
            )
        except (BotoCoreError, ClientError) as exc:
            if is_transient(exc):
                raise
            raise self._translate(exc, f"GET {obj.url}") from exc
        body = resp["Body"]
        try:
            for block in body.iter_chunks(READ_BLOCK):
                sink(block)
        except FlexibleChecksumError as exc:
            raise CorruptTransferError(f"GET {obj.url} bytes {start}-{end - 1}: {exc}") from exc
        finally:
            body.close()

    def part_size(self, obj: SourceObject) -> int | None:
        """Size of part 1 of a multipart upload (HEAD ?partNumber=1), so the `…-N` ETag can be recomputed."""
        if not obj.etag or "-" not in obj.etag:
            return None
        try:
            head = self._call(
                lambda: self.client.head_object(Bucket=self.bucket, Key=obj.key, PartNumber=1), f"HEAD {obj.url}"
            )
        except (SourceAccessError, ObjectChangedError):
            return None
        return int(head["ContentLength"])


def open_source(
    url: str, *, endpoint_url: str | None = None, anonymous: bool = False, max_connections: int = 10,
    retry: RetryPolicy = RetryPolicy(),
) -> ObjectSource:
    """An `S3Source` for `s3://…`, a `LocalSource` for a path or `file://…` URL."""
    if url.startswith("s3://"):
        return S3Source(url, endpoint_url=endpoint_url, anonymous=anonymous, max_connections=max_connections,
                        retry=retry)
    if "://" in url and not url.startswith("file://"):
        raise ValueError(f"unsupported lake source {url!r}: use s3://bucket/prefix or a local directory")
    return LocalSource(url)
