"""The local Glue crawler: infers CSV headers under the crawler's S3 targets into catalog tables.

What it does, as an AWS Glue crawler with the built-in CSV classifier would for our input:
- lists the objects under each S3 target path (recursively), honouring the target's exclusion globs;
- reads the first line of each `.csv` / `.csv.gz` object (BOM stripped, csv-module parsing);
- creates or updates one table per target in the crawler's database, named after the target's
  last folder (`s3://b/raw/bookings/` -> `bookings`, with the crawler's table prefix), columns in
  header order, lower-cased like the Glue catalog stores them, typed `string`, classification csv,
  OpenCSVSerde, location = the target path.

Differences from AWS (listed in the README): no type inference (every column is `string`), the
first line is always the header (AWS guesses; an all-string file gets col0..colN there), no
partitions (sub-folders are folded into the one table), files with different headers are merged
into one column list rather than split into several tables.

Anything that goes wrong raises `CrawlError` with a message naming the object; the emulator turns
that into `LastCrawl.Status = FAILED` with the message as `ErrorMessage`.
"""

from __future__ import annotations

import csv
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

CSV_SUFFIXES = (".csv", ".csv.gz")
HEADER_READ_LIMIT = 1 << 20  # a header line longer than 1 MiB is not a header

OPEN_CSV_SERDE = "org.apache.hadoop.hive.serde2.OpenCSVSerde"
TEXT_INPUT_FORMAT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"


class CrawlError(Exception):
    """The crawl failed; the message becomes the crawler's LastCrawl.ErrorMessage."""


class CrawlAccessDeniedError(CrawlError):
    """The crawler's role may not list or read what it crawls: the crawl fails naming the denial,
    even where an unreadable file would only be skipped."""


@dataclass(frozen=True)
class S3Target:
    path: str  # s3://bucket/prefix/
    exclusions: tuple[str, ...] = ()


@dataclass(frozen=True)
class CrawlerDefinition:
    name: str
    database: str
    s3_targets: tuple[S3Target, ...]
    table_prefix: str = ""
    update_behavior: str = "UPDATE_IN_DATABASE"  # or LOG: leave existing tables alone

    @classmethod
    def from_api(cls, crawler: dict[str, Any]) -> CrawlerDefinition:
        """From the `Crawler` of a GetCrawler response (or the same keys of CreateCrawler)."""
        targets = tuple(
            S3Target(path=t["Path"], exclusions=tuple(t.get("Exclusions") or ()))
            for t in (crawler.get("Targets") or {}).get("S3Targets") or []
        )
        policy = crawler.get("SchemaChangePolicy") or {}
        return cls(
            name=crawler["Name"],
            database=crawler.get("DatabaseName") or "",
            s3_targets=targets,
            table_prefix=crawler.get("TablePrefix") or "",
            update_behavior=policy.get("UpdateBehavior") or "UPDATE_IN_DATABASE",
        )


@dataclass
class CrawledTable:
    name: str
    location: str
    columns: list[str] = field(default_factory=list)
    compression: str = "none"
    object_count: int = 0
    total_size: int = 0


@dataclass(frozen=True)
class CrawlResult:
    tables_created: tuple[str, ...]
    tables_updated: tuple[str, ...]
    tables_unchanged: tuple[str, ...]
    objects_skipped: tuple[str, ...] = ()  # unreadable objects left out (skip_unreadable)


def run_crawl(definition: CrawlerDefinition, s3: Any, glue: Any, *, skip_unreadable: bool = False) -> CrawlResult:
    """Crawl every S3 target of the crawler and write its tables. `s3`, `glue`: boto3 clients.

    `skip_unreadable`: an object whose header cannot be read (not UTF-8, not gzip, duplicate
    names) is left out of the table and the crawl goes on, as an AWS crawler classifies such a
    file UNKNOWN rather than failing; the emulator crawls so, or one bad upload under the prefix
    would fail every later crawl (and so every later run). Without it, CrawlError names the object.
    """
    if not definition.database:
        raise CrawlError(f"Crawler {definition.name} has no database")
    try:
        glue.get_database(Name=definition.database)
    except glue.exceptions.EntityNotFoundException:
        raise CrawlError(f"Database {definition.database} not found") from None

    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    skipped: list[str] = []
    for target in definition.s3_targets:
        table = crawl_target(target, definition.table_prefix, s3, skipped if skip_unreadable else None)
        if table is None:  # nothing to classify: AWS finishes the crawl without a table
            continue
        outcome = write_table(glue, definition, table)
        {"created": created, "updated": updated, "unchanged": unchanged}[outcome].append(table.name)
    return CrawlResult(tuple(created), tuple(updated), tuple(unchanged), tuple(skipped))


def crawl_target(target: S3Target, table_prefix: str, s3: Any,
                 skipped: list[str] | None = None) -> CrawledTable | None:
    """The table of one target; with a `skipped` list, unreadable objects go there (with the
    reason) instead of raising CrawlError."""
    bucket, prefix = parse_s3_path(target.path)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    table = CrawledTable(
        name=table_name_for_path(target.path, table_prefix),
        location=f"s3://{bucket}/{prefix}",
    )
    compressions: set[str] = set()
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        objects = [obj for page in pages for obj in page.get("Contents", [])]
    except s3.exceptions.NoSuchBucket:
        raise CrawlError(f"{target.path}: bucket {bucket} does not exist") from None
    except Exception as error:
        if access_denied(error):
            raise CrawlAccessDeniedError(f"{target.path}: the crawler's role may not list the prefix: {error}") from error
        raise

    for obj in sorted(objects, key=lambda o: o["Key"]):
        key = obj["Key"]
        relative = key[len(prefix):]
        if not key.lower().endswith(CSV_SUFFIXES) or obj.get("Size", 0) == 0:
            continue
        if is_excluded(relative, target.exclusions):
            continue
        try:
            header = read_header(s3, bucket, key)
            columns = normalise_columns(header, f"s3://{bucket}/{key}") if header else []
        except CrawlError as error:
            if skipped is None or isinstance(error, CrawlAccessDeniedError):  # a denial is never a skip
                raise
            skipped.append(str(error))
            continue
        if not columns:
            continue
        for column in columns:
            if column not in table.columns:
                table.columns.append(column)
        compressions.add("gzip" if key.lower().endswith(".gz") else "none")
        table.object_count += 1
        table.total_size += int(obj.get("Size", 0))

    if table.object_count == 0:
        return None
    table.compression = "gzip" if compressions == {"gzip"} else "none"
    return table


# What S3 answers a caller its policies refuse (and the authentication failures of its key).
_ACCESS_DENIED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "InvalidToken", "403"})


def access_denied(error: BaseException) -> bool:
    code = str((getattr(error, "response", None) or {}).get("Error", {}).get("Code", ""))
    return code in _ACCESS_DENIED_CODES


def read_header(s3: Any, bucket: str, key: str) -> list[str]:
    """The first CSV record of an object, read without downloading the whole file."""
    uri = f"s3://{bucket}/{key}"
    try:
        if key.lower().endswith(".gz"):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            first_line = _first_line_of_gzip(body, uri)
        else:
            body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEADER_READ_LIMIT - 1}")["Body"]
            first_line = body.read().split(b"\n", 1)[0]
    except CrawlError:
        raise
    except Exception as error:  # network, missing object, ...: the crawl fails naming the object
        if access_denied(error):
            raise CrawlAccessDeniedError(f"{uri}: the crawler's role may not read the object: {error}") from error
        raise CrawlError(f"{uri}: cannot read the object ({error})") from error
    return parse_header_line(first_line, uri)


def parse_header_line(first_line: bytes, uri: str) -> list[str]:
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CrawlError(f"{uri}: the header line is not UTF-8 ({error})") from None
    text = text.rstrip("\r\n")
    if not text.strip():
        return []
    try:
        return next(csv.reader([text]))
    except csv.Error as error:
        raise CrawlError(f"{uri}: cannot parse the header line ({error})") from None


def normalise_columns(header: list[str], uri: str) -> list[str]:
    """Column names as the Glue catalog stores them: trimmed, lower-case; blank -> col<i>."""
    columns = [name.strip().lower() or f"col{index}" for index, name in enumerate(header)]
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise CrawlError(f"{uri}: duplicate column name {column!r} in the header")
        seen.add(column)
    return columns


def write_table(glue: Any, definition: CrawlerDefinition, table: CrawledTable) -> str:
    """Create the table, or update it if its definition changed. Returns created|updated|unchanged."""
    table_input = build_table_input(definition.name, table)
    try:
        existing = glue.get_table(DatabaseName=definition.database, Name=table.name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        glue.create_table(DatabaseName=definition.database, TableInput=table_input)
        return "created"
    if definition.update_behavior == "LOG":
        return "unchanged"
    if _same_definition(existing, table_input):
        return "unchanged"
    glue.update_table(DatabaseName=definition.database, TableInput=table_input)
    return "updated"


def build_table_input(crawler_name: str, table: CrawledTable) -> dict[str, Any]:
    return {
        "Name": table.name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {
            "classification": "csv",
            "compressionType": table.compression,
            "delimiter": ",",
            "skip.header.line.count": "1",
            "columnsOrdered": "true",
            "areColumnsQuoted": "false",
            "typeOfData": "file",
            "objectCount": str(table.object_count),
            "sizeKey": str(table.total_size),
            "UPDATED_BY_CRAWLER": crawler_name,
        },
        "StorageDescriptor": {
            "Columns": [{"Name": column, "Type": "string"} for column in table.columns],
            "Location": table.location,
            "InputFormat": TEXT_INPUT_FORMAT,
            "OutputFormat": TEXT_OUTPUT_FORMAT,
            "Compressed": table.compression != "none",
            "SerdeInfo": {
                "SerializationLibrary": OPEN_CSV_SERDE,
                "Parameters": {"separatorChar": ",", "quoteChar": '"'},
            },
        },
    }


def table_name_for_path(path: str, table_prefix: str = "") -> str:
    """`s3://b/raw/bookings/` -> `bookings`: the last folder, in the catalog's name alphabet."""
    bucket, prefix = parse_s3_path(path)
    last = [part for part in prefix.split("/") if part][-1:] or [bucket]
    name = re.sub(r"[^a-z0-9_]", "_", (table_prefix + last[0]).lower())
    return name


def parse_s3_path(path: str) -> tuple[str, str]:
    match = re.fullmatch(r"s3a?://([^/]+)/?(.*)", path)
    if not match:
        raise CrawlError(f"{path}: not an S3 path (expected s3://bucket/prefix/)")
    return match.group(1), match.group(2)


def is_excluded(relative_key: str, exclusions: tuple[str, ...] | list[str]) -> bool:
    """Glue exclusion globs, relative to the include path: `*` within a folder, `**` across."""
    return any(re.fullmatch(glob_to_regex(pattern), relative_key) for pattern in exclusions)


def glob_to_regex(pattern: str) -> str:
    regex = ""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            regex += ".*"
            index += 2
            continue
        if char == "*":
            regex += "[^/]*"
        elif char == "?":
            regex += "[^/]"
        elif char == "{":
            end = pattern.find("}", index)
            if end == -1:
                regex += re.escape(char)
            else:
                choices = pattern[index + 1:end].split(",")
                regex += "(?:" + "|".join(re.escape(c) for c in choices) + ")"
                index = end + 1
                continue
        elif char == "[":
            end = pattern.find("]", index)
            if end == -1:
                regex += re.escape(char)
            else:
                regex += pattern[index:end + 1].replace("[!", "[^")
                index = end + 1
                continue
        else:
            regex += re.escape(char)
        index += 1
    return regex


def _first_line_of_gzip(body: Any, uri: str) -> bytes:
    decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    text = b""
    try:
        for chunk in iter(lambda: body.read(64 * 1024), b""):
            text += decompressor.decompress(chunk, HEADER_READ_LIMIT - len(text))
            if b"\n" in text or len(text) >= HEADER_READ_LIMIT:
                break
        else:
            text += decompressor.flush()
    except zlib.error as error:
        raise CrawlError(f"{uri}: not a valid gzip file ({error})") from None
    finally:
        body.close()
    return text.split(b"\n", 1)[0]


def _same_definition(existing: dict[str, Any], table_input: dict[str, Any]) -> bool:
    old = existing.get("StorageDescriptor", {})
    new = table_input["StorageDescriptor"]
    old_columns = [(c["Name"], c.get("Type")) for c in old.get("Columns", [])]
    new_columns = [(c["Name"], c["Type"]) for c in new["Columns"]]
    return (
        old_columns == new_columns
        and old.get("Location") == new["Location"]
        and (existing.get("Parameters") or {}).get("compressionType")
        == table_input["Parameters"]["compressionType"]
    )
