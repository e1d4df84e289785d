"""Unit tests of the acquisition helpers: retry policy, date ranges, schema matching, ETag arithmetic."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from lake_pipeline.lake.acquire import date_range
from lake_pipeline.lake.retry import RetryPolicy, TransientSourceError, call_with_retries, is_transient
from lake_pipeline.lake.source import SourceObject
from lake_pipeline.lake.validate import etag_check, file_digests, match_schema
from lake_pipeline.schemas import LAKE_LOADED, LAKE_STORED


def test_date_range_is_inclusive_and_rejects_bad_input():
    assert date_range("2024-02-28..2024-03-01") == ["2024-02-28", "2024-02-29", "2024-03-01"]
    assert date_range("2024-03-05") == ["2024-03-05"]
    with pytest.raises(ValueError, match="bad --date '2024-3-5x'"):
        date_range("2024-3-5x")
    with pytest.raises(ValueError, match="ends before it starts"):
        date_range("2024-03-05..2024-03-01")


def _client_error(status: int, code: str):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


def test_transient_classification():
    from botocore.exceptions import ConnectionClosedError, NoCredentialsError

    assert is_transient(_client_error(503, "SlowDown")) and is_transient(_client_error(500, "InternalError"))
    assert is_transient(_client_error(400, "RequestTimeout")) and is_transient(ConnectionResetError())
    assert is_transient(ConnectionClosedError(endpoint_url="http://x"))
    assert not is_transient(_client_error(403, "AccessDenied")) and not is_transient(_client_error(404, "NoSuchKey"))
    assert not is_transient(NoCredentialsError()) and not is_transient(ValueError())


def test_call_with_retries_backs_off_with_jitter_then_gives_up():
    waits: list[float] = []
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionResetError("reset")
        return "ok"

    policy = RetryPolicy(attempts=5, base_s=1.0, cap_s=3.0)
    assert call_with_retries(flaky, what="x", policy=policy, sleep=waits.append) == "ok"
    assert calls["n"] == 3 and len(waits) == 2 and 0 <= waits[0] <= 1.0 and 0 <= waits[1] <= 2.0
    waits.clear()
    with pytest.raises(TransientSourceError, match="GET a: still failing after 5 attempts: ConnectionResetError"):
        call_with_retries(lambda: (_ for _ in ()).throw(ConnectionResetError()), what="GET a", policy=policy,
                          sleep=waits.append)
    assert len(waits) == 4 and max(waits) <= 3.0  # capped
    with pytest.raises(KeyError):  # not transient: no retry, no wait
        call_with_retries(lambda: {}["k"], what="x", policy=policy, sleep=waits.append)
    assert len(waits) == 4


def test_match_schema_variants_and_reasons():
    assert match_schema("trades", LAKE_STORED["trades"]) == ("stored", "")
    assert match_schema("book", LAKE_LOADED["book"]) == ("loaded", "")
    without_partition_cols = pa.schema(list(LAKE_LOADED["book_delta_v2"])[:-2])  # lakeapi drop_partition_cols=True
    assert match_schema("book_delta_v2", without_partition_cols)[0] == "loaded"
    us_times = pa.schema([f.with_type(pa.timestamp("us", tz="UTC")) if f.name.endswith("_time") else f
                          for f in LAKE_LOADED["trades"]])
    assert match_schema("trades", us_times)[0] == "loaded"
    wrong = pa.schema([f.with_type(pa.string()) if f.name == "id" else f for f in LAKE_STORED["trades"]])
    variant, why = match_schema("trades", wrong)
    assert variant is None and "stored: wrong types id: string (expected int64)" in why
    reordered = pa.schema(list(LAKE_STORED["book_delta_v2"])[::-1])
    assert "columns in a different order" in match_schema("book_delta_v2", reordered)[1]
    with pytest.raises(ValueError, match="unknown lake table 'quotes'"):
        match_schema("quotes", LAKE_STORED["trades"])


def test_multipart_etag_arithmetic(tmp_path):
    data = bytes(range(256)) * 5000  # 1.28 MB
    path = tmp_path / "f"
    path.write_bytes(data)
    part = 500_000
    parts = [hashlib.md5(data[i:i + part]).digest() for i in range(0, len(data), part)]
    expected = f"{hashlib.md5(b''.join(parts)).hexdigest()}-{len(parts)}"
    d = file_digests(path, part)
    assert d.multipart_etag == expected and d.sha256 == hashlib.sha256(data).hexdigest()
    assert d.md5 == hashlib.md5(data).hexdigest()
    obj = SourceObject("f", "k", "s3://b/k", len(data), expected, expected)
    assert etag_check(obj, d, part) == ("multipart", None)
    assert etag_check(obj, d, None) == ("unverifiable-multipart", None)
    status, err = etag_check(obj, file_digests(path, 400_000), 400_000)
    assert status == "multipart" and err.startswith("ETag mismatch")
