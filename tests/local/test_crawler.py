"""The local Glue crawler: CSV headers under the S3 targets become catalog tables."""

from __future__ import annotations

import gzip
import uuid

import pytest

from airline_local.glue.crawler import (
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


@pytest.mark.parametrize(
    ("key", "body", "message"),
    [
        ("raw/bookings/broken.csv.gz", b"this is not gzip", "not a valid gzip file"),
        ("raw/bookings/dupes.csv", b"id,ID\n1,2\n", "duplicate column name 'id'"),
        ("raw/bookings/latin1.csv", "café,x\n".encode("latin-1"), "not UTF-8"),
    ],
)
def test_unreadable_files_fail_the_crawl_naming_the_object(store, key, body, message):
    s3, glue, bucket, database = store
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    with pytest.raises(CrawlError, match=message) as failure:
        run_crawl(definition(bucket, database), s3, glue)
    assert f"s3://{bucket}/{key}" in str(failure.value)


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
