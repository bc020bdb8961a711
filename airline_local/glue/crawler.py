"""The local Glue crawler: infers CSV headers under the crawler's S3 targets into catalog tables.

What it does, as an AWS Glue crawler with the built-in CSV classifier would for our input:
- lists the objects under each S3 target path (recursively), honouring the target's exclusion globs;
- reads the first line of each `.csv` / `.csv.gz` object (BOM stripped, csv-module parsing);
- creates or updates one table per target in the crawler's database, named after the target's
  last folder (`s3://b/raw/bookings/` -> `bookings`, with the crawler's table prefix), columns in
  header order, lower-cased like the Glue catalog stores them, typed `string`, classification csv,
  OpenCSVSerde, location = the target path.

Recrawl policy (the definition's `RecrawlPolicy`), as the Glue guide describes it
(docs/aws-notes.md, "Crawler: S3 event mode"):
- CRAWL_EVERYTHING: every crawl lists each target and reads every object's header;
- CRAWL_EVENT_MODE (a target with an `EventQueueArn`): the first crawl (none has succeeded yet)
  lists the target as above; every later one consumes the S3 event notifications waiting in the
  queue (at most 100,000 a crawl) and reads only the objects they name (a HEAD, then the header),
  merging their headers into the existing table. No event: nothing is read. (AWS also lists the
  folder an event names, 1,000 keys a request: see docs/scaling-and-cost.md.)
  Messages are deleted once the table is written; a failed crawl hands them back (visibility 0)
  for the next crawl, and the queue's redrive policy moves one that keeps failing to its DLQ.

Differences from AWS (listed in docs/local-mode.md): no type inference (every column is `string`), the
first line is always the header (AWS guesses; an all-string file gets col0..colN there), no
partitions (sub-folders are folded into the one table), files with different headers are merged
into one column list rather than split into several tables.

Anything that goes wrong raises `CrawlError` with a message naming the object; the emulator turns
that into `LastCrawl.Status = FAILED` with the message as `ErrorMessage`.
"""

from __future__ import annotations

import csv
import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

CSV_SUFFIXES = (".csv", ".csv.gz")
HEADER_READ_LIMIT = 1 << 20  # a header line longer than 1 MiB is not a header

CRAWL_EVERYTHING = "CRAWL_EVERYTHING"
CRAWL_EVENT_MODE = "CRAWL_EVENT_MODE"
# "The maximum number of messages to consume is 100,000 messages per crawl" (Glue guide).
MAX_EVENTS_PER_CRAWL = 100_000

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
    event_queue_arn: str | None = None  # the S3 event notifications' queue (event mode)


@dataclass(frozen=True)
class CrawlerDefinition:
    name: str
    database: str
    s3_targets: tuple[S3Target, ...]
    table_prefix: str = ""
    update_behavior: str = "UPDATE_IN_DATABASE"  # or LOG: leave existing tables alone
    recrawl_behavior: str = CRAWL_EVERYTHING  # or CRAWL_EVENT_MODE

    @classmethod
    def from_api(cls, crawler: dict[str, Any]) -> CrawlerDefinition:
        """From the `Crawler` of a GetCrawler response (or the same keys of CreateCrawler)."""
        targets = tuple(
            S3Target(path=t["Path"], exclusions=tuple(t.get("Exclusions") or ()),
                     event_queue_arn=t.get("EventQueueArn") or None)
            for t in (crawler.get("Targets") or {}).get("S3Targets") or []
        )
        policy = crawler.get("SchemaChangePolicy") or {}
        return cls(
            name=crawler["Name"],
            database=crawler.get("DatabaseName") or "",
            s3_targets=targets,
            table_prefix=crawler.get("TablePrefix") or "",
            update_behavior=policy.get("UpdateBehavior") or "UPDATE_IN_DATABASE",
            recrawl_behavior=(crawler.get("RecrawlPolicy") or {}).get("RecrawlBehavior") or CRAWL_EVERYTHING,
        )

    @property
    def event_mode(self) -> bool:
        return self.recrawl_behavior == CRAWL_EVENT_MODE


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
    mode: str = "list"  # list: the targets were listed | event: only what the S3 events named
    objects_listed: int = 0  # keys the crawl's S3 listings returned
    objects_read: int = 0  # objects whose header the crawl read (S3 GetObject)
    events_consumed: int = 0  # queue messages taken (and deleted) by this crawl


@dataclass
class _Counts:
    listed: int = 0
    read: int = 0


def run_crawl(definition: CrawlerDefinition, s3: Any, glue: Any, *, skip_unreadable: bool = False,
              sqs: Any = None, first_crawl: bool = True) -> CrawlResult:
    """Crawl every S3 target of the crawler and write its tables. `s3`, `glue` (and `sqs` for a
    crawler in event mode): boto3 clients.

    `skip_unreadable`: an object whose header cannot be read (not UTF-8, not gzip, duplicate
    names) is left out of the table and the crawl goes on, as an AWS crawler classifies such a
    file UNKNOWN rather than failing; the emulator crawls so, or one bad upload under the prefix
    would fail every later crawl (and so every later run). Without it, CrawlError names the object.

    `first_crawl`: no crawl of this crawler has succeeded yet; in event mode that crawl lists the
    targets (and drops the events already queued: the listing sees their objects).
    """
    if not definition.database:
        raise CrawlError(f"Crawler {definition.name} has no database")
    try:
        glue.get_database(Name=definition.database)
    except glue.exceptions.EntityNotFoundException:
        raise CrawlError(f"Database {definition.database} not found") from None
    queues = _event_queues(definition, sqs)

    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    skipped: list[str] = []
    counts = _Counts()
    consumed: list[tuple[EventQueue, list[str]]] = []
    mode = "event" if queues and not first_crawl else "list"
    try:
        for target in definition.s3_targets:
            queue = queues.get(target.path)
            if queue is not None and first_crawl:
                consumed.append((queue, queue.drain()))  # before the listing: it covers their objects
            if queue is not None and not first_crawl:
                messages = queue.receive()
                consumed.append((queue, [m["ReceiptHandle"] for m in messages]))
                table = crawl_events(target, definition, messages, s3, glue, counts,
                                     skipped if skip_unreadable else None)
            else:
                table = crawl_target(target, definition.table_prefix, s3, skipped if skip_unreadable else None, counts)
            if table is None:  # nothing to classify: AWS finishes the crawl without a table
                continue
            outcome = write_table(glue, definition, table)
            {"created": created, "updated": updated, "unchanged": unchanged}[outcome].append(table.name)
    except BaseException:
        for queue, handles in consumed:  # the next crawl takes them again
            queue.release(handles)
        raise
    events = 0
    for queue, handles in consumed:
        queue.delete(handles)
        events += len(handles)
    return CrawlResult(tuple(created), tuple(updated), tuple(unchanged), tuple(skipped), mode,
                       counts.listed, counts.read, events)


def crawl_target(target: S3Target, table_prefix: str, s3: Any,
                 skipped: list[str] | None = None, counts: _Counts | None = None) -> CrawledTable | None:
    """The table of one target; with a `skipped` list, unreadable objects go there (with the
    reason) instead of raising CrawlError."""
    counts = counts if counts is not None else _Counts()
    bucket, prefix = parse_s3_path(target.path)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    table = CrawledTable(
        name=table_name_for_path(target.path, table_prefix),
        location=f"s3://{bucket}/{prefix}",
    )
    compressions: set[str] = set()
    objects = list_objects(target.path, s3, bucket, prefix)
    counts.listed += len(objects)
    for obj in sorted(objects, key=lambda o: o["Key"]):
        _add_object(table, compressions, obj, bucket, prefix, target, s3, skipped, counts)
    if table.object_count == 0:
        return None
    table.compression = "gzip" if compressions == {"gzip"} else "none"
    return table


def crawl_events(target: S3Target, definition: CrawlerDefinition, messages: list[dict[str, Any]], s3: Any,
                 glue: Any, counts: _Counts, skipped: list[str] | None = None) -> CrawledTable | None:
    """Event mode: the existing table of the target, with the headers of the objects the S3
    events name merged in ("The crawler will list only the objects from those events instead of
    listing all objects"); no other object is read. No event: the table stays as it is (None);
    no table yet: the target is crawled in full."""
    bucket, prefix = parse_s3_path(target.path)
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    created, removed = s3_event_keys(messages, bucket, prefix)
    if not created and not removed:
        return None
    name = table_name_for_path(target.path, definition.table_prefix)
    try:
        existing = glue.get_table(DatabaseName=definition.database, Name=name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return crawl_target(target, definition.table_prefix, s3, skipped, counts)
    descriptor = existing.get("StorageDescriptor") or {}
    parameters = existing.get("Parameters") or {}
    table = CrawledTable(
        name=name,
        location=f"s3://{bucket}/{prefix}",
        columns=[c["Name"] for c in descriptor.get("Columns", [])],
        object_count=int(parameters.get("objectCount", 0) or 0),
        total_size=int(parameters.get("sizeKey", 0) or 0),
    )
    compressions = {parameters.get("compressionType") or "none"}
    for key in sorted(created):
        found = head_object(target.path, s3, bucket, key)
        if found is not None:  # an object deleted since its event has nothing to read
            _add_object(table, compressions, found, bucket, prefix, target, s3, skipped, counts)
    for key in sorted(removed):
        if head_object(target.path, s3, bucket, key) is None:
            table.object_count = max(0, table.object_count - 1)
    table.compression = "none" if "none" in compressions else "gzip"
    return table


def head_object(path: str, s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The object as a listing would show it (Key, Size), or None if it is gone. The local crawler
    asks S3 about each object an event names rather than listing its folder: the read set is the
    same, and moto's listing costs ~1.5 ms per key of the bucket (AWS lists 1,000 keys a request)."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as error:
        if access_denied(error):
            raise CrawlAccessDeniedError(
                f"{path}: the crawler's role may not read s3://{bucket}/{key}: {_denial_text(s3, bucket, key, error)}"
            ) from error
        code = str((getattr(error, "response", None) or {}).get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            return None
        raise CrawlError(f"s3://{bucket}/{key}: cannot read the object ({error})") from error
    return {"Key": key, "Size": int(head.get("ContentLength", 0))}


def _denial_text(s3: Any, bucket: str, key: str, head_error: BaseException) -> BaseException:
    """A HEAD 403 has no body, so no message; a one-byte GET of the same object is refused with
    the denial's text (who, which action, which resource), which the crawl's error then names."""
    try:
        s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-0")
    except Exception as error:
        if access_denied(error):
            return error
    return head_error


def s3_event_keys(messages: list[dict[str, Any]], bucket: str, prefix: str) -> tuple[set[str], set[str]]:
    """(created, removed) object keys under bucket/prefix named by S3 event notification
    messages (delivered to the queue directly, or through SNS); test events name none."""
    created: set[str] = set()
    removed: set[str] = set()
    for message in messages:
        try:
            body = json.loads(message.get("Body") or "{}")
            if body.get("Type") == "Notification" and "Message" in body:  # S3 -> SNS -> SQS
                body = json.loads(body["Message"])
        except (TypeError, ValueError):
            continue  # not an S3 event: nothing to crawl (the message is consumed all the same)
        for record in body.get("Records") or []:
            s3_part = record.get("s3") or {}
            key = unquote_plus(str((s3_part.get("object") or {}).get("key", "")))  # keys come URL-encoded
            if (s3_part.get("bucket") or {}).get("name") != bucket or not key.startswith(prefix):
                continue
            event = str(record.get("eventName", ""))
            if event.startswith("ObjectCreated"):
                created.add(key)
                removed.discard(key)
            elif event.startswith("ObjectRemoved"):
                removed.add(key)
                created.discard(key)
    return created, removed


def list_objects(path: str, s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj for page in pages for obj in page.get("Contents", [])]
    except s3.exceptions.NoSuchBucket:
        raise CrawlError(f"{path}: bucket {bucket} does not exist") from None
    except Exception as error:
        if access_denied(error):
            raise CrawlAccessDeniedError(f"{path}: the crawler's role may not list the prefix: {error}") from error
        raise


def _add_object(table: CrawledTable, compressions: set[str], obj: dict[str, Any], bucket: str, prefix: str,
                target: S3Target, s3: Any, skipped: list[str] | None, counts: _Counts) -> None:
    """Read one listed object's header into the table (a CSV object not excluded, not empty)."""
    key = obj["Key"]
    if not key.lower().endswith(CSV_SUFFIXES) or obj.get("Size", 0) == 0:
        return
    if is_excluded(key[len(prefix):], target.exclusions):
        return
    counts.read += 1
    try:
        header = read_header(s3, bucket, key)
        columns = normalise_columns(header, f"s3://{bucket}/{key}") if header else []
    except CrawlError as error:
        if skipped is None or isinstance(error, CrawlAccessDeniedError):  # a denial is never a skip
            raise
        skipped.append(str(error))
        return
    if not columns:
        return
    for column in columns:
        if column not in table.columns:
            table.columns.append(column)
    compressions.add("gzip" if key.lower().endswith(".gz") else "none")
    table.object_count += 1
    table.total_size += int(obj.get("Size", 0))


class EventQueue:
    """The SQS queue of a target's S3 events, as the crawler's role reaches it."""

    def __init__(self, arn: str, sqs: Any) -> None:
        parts = arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            raise CrawlError(f"{arn}: not an SQS queue ARN (EventQueueArn)")
        self.arn, self.sqs = arn, sqs
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            account, name = self.arn.split(":")[4:6]
            self._url = self._call("read", self.sqs.get_queue_url, QueueName=name,
                                   QueueOwnerAWSAccountId=account)["QueueUrl"]
        return self._url

    def receive(self, limit: int = MAX_EVENTS_PER_CRAWL) -> list[dict[str, Any]]:
        """The messages waiting now (at most `limit`), hidden from others until deleted or released."""
        messages: list[dict[str, Any]] = []
        while len(messages) < limit:
            batch = self._call("read", self.sqs.receive_message, QueueUrl=self.url,
                               MaxNumberOfMessages=min(10, limit - len(messages)), WaitTimeSeconds=0).get("Messages", [])
            if not batch:
                return messages
            messages.extend(batch)
        return messages

    def drain(self) -> list[str]:
        return [m["ReceiptHandle"] for m in self.receive()]

    def delete(self, handles: list[str]) -> None:
        for start in range(0, len(handles), 10):
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles[start:start + 10])]
            self._call("delete", self.sqs.delete_message_batch, QueueUrl=self.url, Entries=entries)

    def release(self, handles: list[str]) -> None:
        try:
            for start in range(0, len(handles), 10):
                entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                           for i, h in enumerate(handles[start:start + 10])]
                self.sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)
        except Exception:  # best effort: they come back after the queue's visibility timeout anyway
            pass

    def _call(self, what: str, operation: Any, **params: Any) -> Any:
        try:
            return operation(**params)
        except Exception as error:
            if access_denied(error):
                raise CrawlAccessDeniedError(
                    f"{self.arn}: the crawler's role may not {what} the S3 events queue: {error}") from error
            raise CrawlError(f"{self.arn}: cannot {what} the S3 events queue ({error})") from error


def _event_queues(definition: CrawlerDefinition, sqs: Any) -> dict[str, EventQueue]:
    """Target path -> its event queue, for a crawler in event mode."""
    if not definition.event_mode:
        return {}
    targets = [t for t in definition.s3_targets if t.event_queue_arn]
    if not targets:
        raise CrawlError(f"Crawler {definition.name}: CRAWL_EVENT_MODE needs an S3 target with an EventQueueArn")
    if len(definition.s3_targets) != 1:  # "Only single target is supported" (Glue guide)
        raise CrawlError(f"Crawler {definition.name}: CRAWL_EVENT_MODE supports a single target")
    if sqs is None:
        raise CrawlError(f"Crawler {definition.name}: event mode without an SQS client")
    return {t.path: EventQueue(str(t.event_queue_arn), sqs) for t in targets}


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
