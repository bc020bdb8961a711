"""S3 PutObject as AWS does it (airline_local/aws/patches/s3.py), against the real moto server:
create-only writes racing for one key let exactly one through, and a lost reply is injectable."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from airline_local.aws.patches.s3 import S3_FAULTS


@pytest.fixture
def bucket(emulator) -> str:
    name = f"writes-{uuid.uuid4().hex[:8]}"
    emulator.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def slow_storage(monkeypatch):
    """Storing an object takes 0.2 s (S3 is not instantaneous either): every racing request has
    made its precondition check before the first one has written, unless the check and the
    write are one step."""
    from moto.s3.models import S3Backend

    original = S3Backend.put_object

    def put_object(self, *args, **kwargs):
        time.sleep(0.2)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(S3Backend, "put_object", put_object)


def _race(emulator, bucket: str, key: str, writers: int, **extra) -> list[str]:
    """`writers` PutObject requests of one key at once; each one's outcome (200 or the error code)."""
    clients = [emulator.client("s3") for _ in range(writers)]
    outcomes: list[str] = [""] * writers
    start = threading.Barrier(writers)

    def write(index: int) -> None:
        start.wait()
        try:
            clients[index].put_object(Bucket=bucket, Key=key, Body=f"writer {index}".encode(), **extra)
            outcomes[index] = "200"
        except ClientError as error:
            outcomes[index] = error.response["Error"]["Code"]

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_concurrent_create_only_writes_of_one_key_let_exactly_one_through(emulator, bucket, slow_storage):
    outcomes = _race(emulator, bucket, "deliveries/abc", 6, IfNoneMatch="*")
    assert sorted(outcomes) == ["200"] + ["PreconditionFailed"] * 5, outcomes
    # The stored object is the winner's.
    body = emulator.client("s3").get_object(Bucket=bucket, Key="deliveries/abc")["Body"].read().decode()
    assert body == f"writer {outcomes.index('200')}"


def test_unconditional_writes_still_all_succeed(emulator, bucket, slow_storage):
    assert _race(emulator, bucket, "raw/bookings/a.csv", 3) == ["200"] * 3


def test_a_lost_reply_stores_the_object_and_answers_500_once(emulator, bucket):
    s3 = emulator.client("s3", config=Config(retries={"total_max_attempts": 1}))  # no SDK retry
    S3_FAULTS.lose_reply_of_next_put("deliveries/")
    try:
        s3.put_object(Bucket=bucket, Key="raw/other", Body=b"not under the prefix")  # untouched
        with pytest.raises(ClientError) as lost:
            s3.put_object(Bucket=bucket, Key="deliveries/x", Body=b"mine", IfNoneMatch="*")
        assert lost.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        assert lost.value.response["Error"]["Code"] == "InternalError"
        assert S3_FAULTS.lost == ["deliveries/x"]
        assert s3.get_object(Bucket=bucket, Key="deliveries/x")["Body"].read() == b"mine"  # stored
        # The retry finds its own write: 412, as S3 answers it.
        with pytest.raises(ClientError) as retried:
            s3.put_object(Bucket=bucket, Key="deliveries/x", Body=b"mine", IfNoneMatch="*")
        assert retried.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        s3.put_object(Bucket=bucket, Key="deliveries/y", Body=b"once only")  # the fault was used up
    finally:
        S3_FAULTS.clear()


def test_a_refused_put_stores_nothing_and_answers_503(emulator, bucket):
    s3 = emulator.client("s3", config=Config(retries={"total_max_attempts": 1}))
    S3_FAULTS.refuse_next_puts("deliveries/", 2)
    try:
        for _ in range(2):
            with pytest.raises(ClientError) as refused:
                s3.put_object(Bucket=bucket, Key="deliveries/z", Body=b"x", IfNoneMatch="*")
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert S3_FAULTS.refused == ["deliveries/z", "deliveries/z"]
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="deliveries/")
        s3.put_object(Bucket=bucket, Key="deliveries/z", Body=b"x", IfNoneMatch="*")  # the third goes through
    finally:
        S3_FAULTS.clear()
