"""The local Glue crawler: CSV headers under the S3 targets become catalog tables."""

from __future__ import annotations

import gzip
import json
import logging
import uuid
from urllib.parse import unquote_plus

import pytest
from emulator_helpers import ROLE_ARN, wait_for

from airline_local.aws.patches.runtime import CrawlerSettings
from airline_local.glue.crawler import (
    CRAWL_EVENT_MODE,
    OPEN_CSV_SERDE,
    CrawlError,
    CrawlerDefinition,
    S3Target,
    glob_to_regex,
    is_excluded,
    run_crawl,
    table_name_for_path,
)


@pytest.fixture()
def store(emulator):
    """A fresh bucket and Glue database in the emulator."""
    suffix = uuid.uuid4().hex[:8]
    bucket, database = f"crawl-{suffix}", f"crawl_{suffix}"
    s3, glue = emulator.client("s3"), emulator.client("glue")
    s3.create_bucket(Bucket=bucket)
    glue.create_database(DatabaseInput={"Name": database})
    return s3, glue, bucket, database


def definition(bucket: str, database: str, path: str = "raw/bookings/", **kwargs) -> CrawlerDefinition:
    exclusions = tuple(kwargs.pop("exclusions", ()))
    return CrawlerDefinition(
        name="bookings-crawler", database=database,
        s3_targets=(S3Target(f"s3://{bucket}/{path}", exclusions),), **kwargs,
    )


def columns(glue, database: str, table: str) -> list[str]:
    descriptor = glue.get_table(DatabaseName=database, Name=table)["Table"]["StorageDescriptor"]
    return [c["Name"] for c in descriptor["Columns"]]


def test_csv_header_becomes_a_string_table_named_after_the_folder(store):
    s3, glue, bucket, database = store
    s3.put_object(Bucket=bucket, Key="raw/bookings/a.csv", Body=b'\xef\xbb\xbfBooking_ID,"Route, Code",Fare\r\n1,"A,B",3\r\n')
    result = run_crawl(definition(bucket, database), s3, glue)

    assert result.tables_created == ("bookings",)
    table = glue.get_table(DatabaseName=database, Name="bookings")["Table"]
    descriptor = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == [
        ("booking_id", "string"), ("route, code", "string"), ("fare", "string")
    ]
    assert descriptor["Location"] == f"s3://{bucket}/raw/bookings/"
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == OPEN_CSV_SERDE
    assert table["Parameters"]["classification"] == "csv"
    assert table["Parameters"]["compressionType"] == "none"
    assert table["Parameters"]["skip.header.line.count"] == "1"


def test_gzip_header_is_read_and_a_second_crawl_adds_new_columns(store):
    s3, glue, bucket, database = store
    s3.put_object(Bucket=bucket, Key="raw/bookings/a.csv.gz", Body=gzip.compress(b"id,route\n1,AB\n" * 1000))
    run_crawl(definition(bucket, database), s3, glue)
    assert columns(glue, database, "bookings") == ["id", "route"]
    table = glue.get_table(DatabaseName=database, Name="bookings")["Table"]
    assert table["Parameters"]["compressionType"] == "gzip"

    unchanged = run_crawl(definition(bucket, database), s3, glue)
    assert unchanged.tables_unchanged == ("bookings",)

    s3.put_object(Bucket=bucket, Key="raw/bookings/b.csv", Body=b"id,route,fare\n1,AB,3\n")
    updated = run_crawl(definition(bucket, database), s3, glue)
    assert updated.tables_updated == ("bookings",)
    assert columns(glue, database, "bookings") == ["id", "route", "fare"]


def test_update_behavior_log_leaves_an_existing_table_alone(store):
    s3, glue, bucket, database = store
    s3.put_object(Bucket=bucket, Key="raw/bookings/a.csv", Body=b"id\n1\n")
    run_crawl(definition(bucket, database), s3, glue)
    s3.put_object(Bucket=bucket, Key="raw/bookings/b.csv", Body=b"id,extra\n1,2\n")
    result = run_crawl(definition(bucket, database, update_behavior="LOG"), s3, glue)
    assert result.tables_unchanged == ("bookings",)
    assert columns(glue, database, "bookings") == ["id"]


def test_exclusions_and_non_csv_objects_are_skipped(store):
    s3, glue, bucket, database = store
    s3.put_object(Bucket=bucket, Key="raw/bookings/a.csv", Body=b"id,route\n1,AB\n")
    s3.put_object(Bucket=bucket, Key="raw/bookings/tmp/b.csv", Body=b"secret,other\n1,2\n")
    s3.put_object(Bucket=bucket, Key="raw/bookings/readme.md", Body=b"not,a,csv\n")
    run_crawl(definition(bucket, database, exclusions=["tmp/**"]), s3, glue)
    assert columns(glue, database, "bookings") == ["id", "route"]


def test_an_empty_target_creates_no_table(store):
    s3, glue, bucket, database = store
    result = run_crawl(definition(bucket, database), s3, glue)
    assert result.tables_created == ()
    assert glue.get_tables(DatabaseName=database)["TableList"] == []


def test_missing_database_fails_the_crawl(store):
    s3, glue, bucket, _ = store
    with pytest.raises(CrawlError, match="Database nope not found"):
        run_crawl(definition(bucket, "nope"), s3, glue)


def test_table_names_and_globs():
    assert table_name_for_path("s3://b/raw/bookings/") == "bookings"
    assert table_name_for_path("s3://b/raw/Booking-Files", "t_") == "t_booking_files"
    assert table_name_for_path("s3://only-bucket") == "only_bucket"
    assert is_excluded("tmp/x.csv", ["tmp/**"])
    assert is_excluded("x.tmp", ["*.{tmp,bak}"])
    assert not is_excluded("sub/x.tmp", ["*.tmp"])  # * stays within a folder
    assert glob_to_regex("a?[!b]") == "a[^/][^b]"


# --- recrawl policy: CRAWL_EVENT_MODE (S3 event notifications -> SQS -> the crawler) -----------


@pytest.fixture()
def event_store(store, emulator):
    """`store` with the bucket's raw/bookings/ events delivered to an SQS queue, as the stack
    configures the raw bucket (S3 sends a test event when the configuration is put)."""
    s3, glue, bucket, database = store
    sqs = emulator.client("sqs")
    url = sqs.create_queue(QueueName=f"{bucket}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "EventBridgeConfiguration": {},
        "QueueConfigurations": [
            {"QueueArn": arn, "Events": [event],
             "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "raw/bookings/"}]}}}
            for event in ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
        ],
    })
    event_definition = CrawlerDefinition(
        name="bookings-crawler", database=database, recrawl_behavior=CRAWL_EVENT_MODE,
        s3_targets=(S3Target(f"s3://{bucket}/raw/bookings/", event_queue_arn=arn),),
    )
    return s3, glue, sqs, url, bucket, database, event_definition


def waiting(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_the_moto_server_delivers_s3_events_to_the_queue_beside_eventbridge(event_store):
    s3, _, sqs, url, bucket, _, _ = event_store
    s3.put_object(Bucket=bucket, Key="raw/bookings/a b.csv", Body=b"id\n1\n")
    s3.put_object(Bucket=bucket, Key="raw/backfill/x.csv", Body=b"id\n1\n")  # outside the prefix
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert [b["Event"] for b in bodies if "Event" in b] == ["s3:TestEvent"]
    (record,) = [r for b in bodies for r in b.get("Records", [])]
    # URL-encoded as in AWS ("a b" -> "a+b"); moto also encodes "/" (%2F), which AWS leaves:
    # the crawler decodes either.
    assert record["eventName"].startswith("ObjectCreated")
    assert unquote_plus(record["s3"]["object"]["key"]) == "raw/bookings/a b.csv"


def test_event_mode_lists_on_the_first_crawl_then_reads_only_the_new_object(event_store):
    s3, glue, sqs, url, bucket, database, event_definition = event_store
    for index in range(5):
        s3.put_object(Bucket=bucket, Key=f"raw/bookings/old_{index}.csv", Body=b"id,route\n1,AB\n")
    first = run_crawl(event_definition, s3, glue, sqs=sqs, first_crawl=True)
    assert (first.mode, first.objects_read, first.tables_created) == ("list", 5, ("bookings",))
    assert first.events_consumed == 6 and waiting(sqs, url) == 0  # the test event and 5 uploads

    s3.put_object(Bucket=bucket, Key="raw/bookings/new file.csv", Body=b"id,route,fare\n1,AB,3\n")
    second = run_crawl(event_definition, s3, glue, sqs=sqs, first_crawl=False)
    # One object read, the new one: the history is neither listed nor read again.
    assert (second.mode, second.objects_read, second.events_consumed, second.objects_listed) == ("event", 1, 1, 0)
    assert second.tables_updated == ("bookings",) and waiting(sqs, url) == 0
    assert columns(glue, database, "bookings") == ["id", "route", "fare"]
    parameters = glue.get_table(DatabaseName=database, Name="bookings")["Table"]["Parameters"]
    assert parameters["objectCount"] == "6"

    idle = run_crawl(event_definition, s3, glue, sqs=sqs, first_crawl=False)
    assert (idle.objects_read, idle.objects_listed, idle.events_consumed) == (0, 0, 0)

    s3.delete_object(Bucket=bucket, Key="raw/bookings/old_0.csv")
    removed = run_crawl(event_definition, s3, glue, sqs=sqs, first_crawl=False)
    assert (removed.objects_read, removed.events_consumed, removed.tables_unchanged) == (0, 1, ("bookings",))


UNREADABLE = {
    "raw/bookings/broken.csv.gz": (b"this is not gzip", "not a valid gzip file"),
    "raw/bookings/dupes.csv": (b"id,ID\n1,2\n", "duplicate column name 'id'"),
    "raw/bookings/latin1.csv": ("café,x\n".encode("latin-1"), "not UTF-8"),
}


def test_the_emulator_crawl_skips_unreadable_new_objects_naming_each_one(event_store, emulator, caplog):
    """The runtime's mode: the emulator's StartCrawler on a CRAWL_EVENT_MODE crawler (as the stack's),
    a later crawl reading only the objects its S3 events name, with skip_unreadable (AWS classifies
    such a file UNKNOWN). The crawl SUCCEEDS, logs each unreadable object with its reason, and the
    table takes the readable new object's columns only."""
    s3, glue, _, url, bucket, database, event_definition = event_store
    emulator.crawler_settings = CrawlerSettings(running_seconds=0.1, stopping_seconds=0.1)
    target = {"Path": event_definition.s3_targets[0].path, "EventQueueArn": event_definition.s3_targets[0].event_queue_arn}
    glue.create_crawler(Name=event_definition.name + database, Role=ROLE_ARN, DatabaseName=database,
                        Targets={"S3Targets": [target]}, RecrawlPolicy={"RecrawlBehavior": CRAWL_EVENT_MODE})
    name = event_definition.name + database

    def crawl() -> dict:
        glue.start_crawler(Name=name)  # RUNNING from here on: READY below is this crawl's end
        return wait_for(lambda: (c := glue.get_crawler(Name=name)["Crawler"])["State"] == "READY"
                        and "LastCrawl" in c and c, what="READY")["LastCrawl"]

    s3.put_object(Bucket=bucket, Key="raw/bookings/a.csv", Body=b"id\n1\n")
    assert crawl()["Status"] == "SUCCEEDED"  # the first crawl lists the target
    for key, (body, _) in UNREADABLE.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_object(Bucket=bucket, Key="raw/bookings/b.csv", Body=b"id,fare\n1,3\n")
    with caplog.at_level(logging.INFO, logger="airline_local.aws.patches.glue_crawler"):
        last = crawl()
    assert last["Status"] == "SUCCEEDED", last
    assert any("mode='event'" in r.getMessage() for r in caplog.records)  # read from the events, not a listing
    assert columns(glue, database, "bookings") == ["id", "fare"]
    assert waiting(emulator.client("sqs"), url) == 0  # the events were consumed, the skipped ones too
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    for key, (_, message) in UNREADABLE.items():
        assert any(f"s3://{bucket}/{key}" in line and message in line for line in skipped), (key, skipped)


def test_a_failed_event_crawl_hands_its_events_back_to_the_next_crawl(event_store):
    s3, glue, sqs, url, bucket, database, event_definition = event_store
    s3.put_object(Bucket=bucket, Key="raw/bookings/a.csv", Body=b"id\n1\n")
    run_crawl(event_definition, s3, glue, sqs=sqs, first_crawl=True)
    s3.put_object(Bucket=bucket, Key="raw/bookings/b.csv", Body=b"id,extra\n1,2\n")

    class CatalogDown:
        exceptions = glue.exceptions

        def __getattr__(self, name):
            return getattr(glue, name)

        def update_table(self, **_kwargs):
            raise RuntimeError("catalog unavailable")

    with pytest.raises(RuntimeError, match="catalog unavailable"):
        run_crawl(event_definition, s3, CatalogDown(), sqs=sqs, first_crawl=False)
    assert waiting(sqs, url) == 1  # visible again at once, not after the visibility timeout
    retried = run_crawl(event_definition, s3, glue, sqs=sqs, first_crawl=False)
    assert (retried.objects_read, retried.tables_updated) == (1, ("bookings",))
    assert columns(glue, database, "bookings") == ["id", "extra"]


def test_event_mode_needs_one_target_with_a_queue(store):
    s3, glue, bucket, database = store
    no_queue = definition(bucket, database, recrawl_behavior=CRAWL_EVENT_MODE)
    with pytest.raises(CrawlError, match="needs an S3 target with an EventQueueArn"):
        run_crawl(no_queue, s3, glue, sqs=object())
    api = CrawlerDefinition.from_api({"Name": "c", "RecrawlPolicy": {"RecrawlBehavior": "CRAWL_EVENT_MODE"},
                                      "Targets": {"S3Targets": [{"Path": "s3://b/p/", "EventQueueArn": "arn:aws:sqs:r:1:q"}]}})
    assert api.event_mode and api.s3_targets[0].event_queue_arn == "arn:aws:sqs:r:1:q"
