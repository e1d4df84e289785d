"""A real S3 endpoint on loopback for acquisition tests: moto in server mode, plus a recording HTTP proxy in front of
it that counts body bytes per request, records headers (was the request signed?), throttles, and injects faults
(HTTP 503, a connection reset mid-body). Import the fixtures into a test module to use them.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int = 0
    body_bytes: int = 0


@dataclass
class Faults:
    """Faults consumed by the next object GETs, in order: "503", ("reset", after_n_body_bytes) or ("flip", offset):
    XOR one body byte at `offset` (corruption in transit)."""

    queue: list = field(default_factory=list)
    rate_bps: float | None = None


class RecordingProxy:
    """HTTP/1.1 reverse proxy to `upstream` on 127.0.0.1:<free port>; `url` is what clients use as endpoint."""

    def __init__(self, upstream: str):
        self.upstream = urlparse(upstream)
        self.seen: list[Seen] = []
        self.faults = Faults()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                proxy._forward(self)

            do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def gets(self, key_part: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method == "GET" and key_part in s.path and "list-type" not in s.path]

    def body_bytes(self, key_part: str = "") -> int:
        return sum(s.body_bytes for s in self.gets(key_part))

    def _next_fault(self, method: str):
        with self.lock:
            if method == "GET" and self.faults.queue:
                return self.faults.queue.pop(0)
        return None

    def _forward(self, h: BaseHTTPRequestHandler) -> None:
        seen = Seen(h.command, h.path, {k.lower(): v for k, v in h.headers.items()})
        with self.lock:
            self.seen.append(seen)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        fault = self._next_fault(h.command) if "list-type" not in h.path else None
        if fault == "503":
            payload = b"<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>"
            seen.status = 503
            h.send_response(503)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_HEADERS}
        conn.request(h.command, h.path, body=body, headers=headers)
        resp = conn.getresponse()
        seen.status = resp.status
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_HEADERS:
                h.send_header(k, v)
        h.end_headers()
        reset_after = fault[1] if isinstance(fault, tuple) and fault[0] == "reset" else None
        flip_at = fault[1] if isinstance(fault, tuple) and fault[0] == "flip" else None
        while h.command != "HEAD" and (block := resp.read(64 * 1024)):
            if flip_at is not None and seen.body_bytes <= flip_at < seen.body_bytes + len(block):
                i = flip_at - seen.body_bytes
                block = block[:i] + bytes([block[i] ^ 0xFF]) + block[i + 1:]
            if reset_after is not None and seen.body_bytes + len(block) > reset_after:
                part = block[: reset_after - seen.body_bytes]
                h.wfile.write(part)
                seen.body_bytes += len(part)
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)
                h.close_connection = True
                conn.close()
                return
            h.wfile.write(block)
            seen.body_bytes += len(block)
            if self.faults.rate_bps:
                time.sleep(len(block) / self.faults.rate_bps)
        conn.close()


@pytest.fixture(scope="session")
def moto_endpoint() -> str:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Fake credentials in the environment (moto accepts any); nothing from the user's ~/.aws is read."""
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for k, v in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    return dict(FAKE_CREDENTIALS)


@pytest.fixture
def proxy(moto_endpoint: str) -> RecordingProxy:
    p = RecordingProxy(moto_endpoint)
    yield p
    p.close()


@pytest.fixture
def bucket(moto_endpoint: str, aws_env: dict) -> str:
    """A fresh, empty bucket for one test."""
    name = f"lake-{uuid.uuid4().hex[:12]}"
    s3_client(moto_endpoint).create_bucket(Bucket=name)
    return name


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def put_object(endpoint: str, bucket: str, key: str, data: bytes, part_size: int | None = None) -> str:
    """Upload `data`; with `part_size` as a multipart upload (ETag `…-N`). Returns the ETag without quotes."""
    client = s3_client(endpoint)
    if part_size is None:
        return client.put_object(Bucket=bucket, Key=key, Body=data)["ETag"].strip('"')
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)
    parts = []
    for n, start in enumerate(range(0, len(data), part_size), start=1):
        resp = client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=n,
                                  Body=data[start:start + part_size])
        parts.append({"PartNumber": n, "ETag": resp["ETag"]})
    done = client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"],
                                            MultipartUpload={"Parts": parts})
    return done["ETag"].strip('"')
