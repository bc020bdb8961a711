"""Reading and writing through Spark and the Hadoop FileSystem API only.

The same calls work on s3:// in Glue and on file:// locally: the job never needs to know
which one it has.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from bookings_contract import FileRejected
from bookings_transform import CORRUPT_RECORD, RECORD_NUMBER

HEADER_PROBE_BYTES = 1 << 20  # the header must end within the first MiB (after decompression)
GLOB_CHARACTERS = re.compile(r"([\\{}\[\]*?])")  # Spark's reader expands these in a path


def check_object_key(uri: str) -> None:
    """Refuse a key that Hadoop's Path would normalize into another object's name: an empty,
    '.' or '..' segment (`raw/bookings/../x.csv` would read `raw/x.csv`)."""
    segments = uri.split("://", 1)[-1].split("/")[1:]  # after the bucket (or the empty host)
    if any(segment in ("", ".", "..") for segment in segments):
        raise FileRejected("the object key has an empty, '.' or '..' path segment, "
                           "which Spark would resolve to another object")


def resolve_source_uri(spark: SparkSession, uri: str) -> tuple[str, bool]:
    """The object to read, and whether it is the URL-decoded form of the key given.

    AWS's docs do not say whether EventBridge's "Object Created" event names the key as stored
    or URL-encoded (as S3's own notifications do: `+` for a space, `%XX`); docs/aws-notes.md.
    Right under both readings: the key as given when that object exists, else its URL-decoded
    form when that one exists (and is a key the job accepts), else the key as given (whose read
    then fails naming it)."""
    check_object_key(uri)
    if _exists(spark, uri):
        return uri, False
    scheme, separator, rest = uri.partition("://")
    authority, _, key = rest.partition("/")
    decoded = f"{scheme}{separator}{authority}/{unquote_plus(key)}"
    if decoded == uri:
        return uri, False
    try:
        check_object_key(decoded)
    except FileRejected:
        return uri, False
    return (decoded, True) if _exists(spark, decoded) else (uri, False)


def _exists(spark: SparkSession, uri: str) -> bool:
    path, fs = _hadoop_path(spark, uri)
    return bool(fs.exists(path)) and bool(fs.getFileStatus(path).isFile())


def literal_path(uri: str) -> str:
    """The URI as a pattern that matches only itself: DataFrameReader.csv expands glob
    characters, so a key such as `raw/bookings/*.csv` would read every file beside it."""
    return GLOB_CHARACTERS.sub(r"\\\1", uri)


def _hadoop_path(spark: SparkSession, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def root_cause(error: Exception) -> str:
    """The innermost JVM exception of a py4j error, on one line (else the Python message)."""
    cause = getattr(error, "java_exception", None)
    if cause is None:
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    while cause.getCause() is not None:
        cause = cause.getCause()
    return " ".join(cause.toString().split())


def _read_prefix(spark: SparkSession, uri: str, limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of the file, decompressed when its name says so (.gz ...);
    and whether that is the whole file."""
    jvm = spark.sparkContext._jvm
    check_object_key(uri)
    path, fs = _hadoop_path(spark, uri)
    if not fs.exists(path):
        raise FileRejected("file not found")
    status = fs.getFileStatus(path)
    if status.isDirectory():
        raise FileRejected("is a directory, not a file")
    if status.getLen() == 0:
        raise FileRejected("empty file (no header row)")
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
        spark.sparkContext._jsc.hadoopConfiguration()).getCodec(path)
    stream = fs.open(path)
    try:
        if codec is not None:
            stream = codec.createInputStream(stream)
        data = bytes(stream.readNBytes(limit + 1))  # py4j returns a byte[] as Python bytes
    except Exception as error:  # py4j wraps the JVM's IOException (e.g. a corrupt gzip stream)
        if isinstance(error, FileRejected):
            raise
        raise FileRejected(f"cannot read the file: {root_cause(error)}") from error
    finally:
        stream.close()
    return data[:limit], len(data) <= limit


def _first_record(text: str) -> str | None:
    """The text of the first CSV record (RFC 4180: a line end inside quotes does not end it),
    or None if the record does not end within ``text``."""
    in_quotes = False
    for index, char in enumerate(text):
        if char == '"':
            in_quotes = not in_quotes
        elif char in "\r\n" and not in_quotes:
            return text[:index]
    return None


def read_header(spark: SparkSession, uri: str) -> list[str]:
    """The header row's names, from a cheap read of the file's first bytes.

    Raises FileRejected when there is no file, no header, or the header is not UTF-8 CSV text.
    """
    data, whole_file = _read_prefix(spark, uri, HEADER_PROBE_BYTES)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        # Invalid bytes after the header are a matter for the rows, not for the file.
        text = data[:error.start].decode("utf-8")
        whole_file = False
    record = _first_record(text)
    if record is None:
        if not whole_file:
            raise FileRejected("no header row: the first line is not UTF-8 CSV text "
                               f"ending within {HEADER_PROBE_BYTES} bytes")
        record = text
    if "\x00" in record:
        raise FileRejected("not a CSV text file (the first line holds NUL bytes)")
    if not record.strip():
        raise FileRejected("no header row (the first line is empty)")
    try:
        return next(csv.reader(io.StringIO(record, newline=""), strict=True))
    except csv.Error as error:
        raise FileRejected(f"the header row is not valid CSV: {error}") from error


# A file smaller than this is read as one stream (multiLine) without the line scan: it would be
# one partition anyway, and the scan's extra pass costs more than it saves.
SPLIT_MIN_BYTES = 32 << 20
# The bits of monotonically_increasing_id below the partition index (Spark: index << 33).
PARTITION_SHIFT = 33


@dataclass(frozen=True)
class LineScan:
    """What one pass over the file as text lines found, per input split (by start offset)."""

    records_per_split: dict[int, int]  # lines the CSV reader parses (not blank), header included
    quoted_line_breaks: bool  # a line with an odd number of '"': a quoted field spans lines
    blank_lines: bool  # a line of only white space: a record for multiLine, skipped line by line
    one_split_per_partition: bool  # else Spark packed splits together: no per-split numbering


def scan_lines(spark: SparkSession, uri: str) -> LineScan:
    """The file's lines counted per split in one splittable text pass (no CSV parsing).

    The text and the CSV sources split a file alike (same byte ranges, a line belongs to the
    split where it starts), and both CSV modes skip empty lines, so the counts here number the
    CSV reader's records. With an even number of '"' on every line no quoted field holds a line
    break (RFC 4180 escapes a quote as ""), and reading line by line gives the same records as
    multiLine, except for lines of only white space (the line reader drops them as blank,
    multiLine keeps them as malformed records): those are flagged here too.
    """
    lines = spark.read.text(literal_path(uri))
    value = F.col("value")
    quotes = F.length(value) - F.length(F.regexp_replace(value, '"', ""))
    per_split = (lines
                 .select(F.input_file_block_start().alias("start"),
                         F.spark_partition_id().alias("partition"),
                         (value != "").cast("long").alias("record"),
                         (quotes % 2 == 1).alias("odd"),
                         value.rlike(r"^[\x00-\x20]+$").alias("blank"))
                 .groupBy("start", "partition")
                 .agg(F.sum("record").alias("records"), F.max("odd").alias("odd"),
                      F.max("blank").alias("blank"))
                 .collect())
    partitions = {row["partition"] for row in per_split}
    return LineScan(
        records_per_split={int(row["start"]): int(row["records"]) for row in per_split},
        quoted_line_breaks=any(row["odd"] for row in per_split),
        blank_lines=any(row["blank"] for row in per_split),
        one_split_per_partition=len(partitions) == len(per_split),
    )


def _csv_reader(spark: SparkSession, schema: T.StructType, multi_line: bool):
    return (spark.read
            .option("header", "true")
            .option("enforceSchema", "true")  # the header was matched by name already
            .option("multiLine", "true" if multi_line else "false")
            .option("quote", '"')
            .option("escape", '"')
            .option("encoding", "UTF-8")
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
            .schema(schema))


def read_bookings_csv(spark: SparkSession, uri: str, schema: T.StructType,
                      split_min_bytes: int = SPLIT_MIN_BYTES) -> DataFrame:
    """The file as all-string columns by position (``schema`` from the header), plus
    ``record_number``: the 1-based data record in file order.

    A large uncompressed file whose lines all close their quotes is read line by line, which
    Spark splits across tasks (Glue workers); record numbers then come from a count of each
    split's records (:func:`scan_lines`, one cheap pass without CSV parsing). Otherwise the file is read with multiLine (quoted
    fields may hold line ends, RFC 4180), as one stream in one partition. gzip is always one
    stream: it cannot be split. PERMISSIVE plus the corrupt-record column keeps rows with the
    wrong number of fields instead of failing or dropping them. gzip is decompressed by
    extension.
    """
    path = literal_path(uri)
    scan = None
    if not _is_compressed(spark, uri) and file_size(spark, uri) >= split_min_bytes:
        scan = scan_lines(spark, uri)
    if (scan is None or scan.quoted_line_breaks or scan.blank_lines
            or not scan.one_split_per_partition):
        raw = _csv_reader(spark, schema, multi_line=True).csv(path)
        return raw.withColumn(RECORD_NUMBER, F.monotonically_increasing_id() + 1)
    first_record, offsets = 1, {}
    for start in sorted(scan.records_per_split):
        offsets[start] = first_record
        # the header line is split 0's first line, and no record
        first_record += scan.records_per_split[start] - (1 if start == 0 else 0)
    first_of_split = F.create_map(*[F.lit(v).cast("long") for item in offsets.items() for v in item])
    index_in_partition = (F.monotonically_increasing_id()
                          - F.shiftleft(F.spark_partition_id().cast("long"), PARTITION_SHIFT))
    raw = _csv_reader(spark, schema, multi_line=False).csv(path)
    return raw.withColumn(RECORD_NUMBER,
                          first_of_split[F.input_file_block_start()] + index_in_partition)


def _is_compressed(spark: SparkSession, uri: str) -> bool:
    path, _ = _hadoop_path(spark, uri)
    factory = spark.sparkContext._jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
        spark.sparkContext._jsc.hadoopConfiguration())
    return factory.getCodec(path) is not None


def write_json_lines(frame: DataFrame, uri: str) -> None:
    """JSON Lines, nulls kept (a null value is an empty field in the source)."""
    frame.write.mode("overwrite").option("ignoreNullFields", "false").json(uri)


def for_redshift_copy(frame: DataFrame) -> DataFrame:
    """The frame with every TIMESTAMP column as TIMESTAMP_NTZ, same column order.

    Spark writes a TimestampType column as Parquet INT64 TIMESTAMP(isAdjustedToUTC=true), the
    form AWS maps to Redshift TIMESTAMPTZ; the warehouse columns are TIMESTAMP (without time
    zone), which AWS maps to TIMESTAMP(isAdjustedToUTC=false), what Spark writes for
    TimestampNTZType. The cast keeps the wall-clock value in the session time zone (UTC, see
    ingest_bookings.configure). https://docs.aws.amazon.com/glue/latest/dg/data-mapping-rs-iceberg.html
    """
    return frame.select(*[
        F.col(f"`{field.name}`").cast(T.TimestampNTZType()).alias(field.name)
        if isinstance(field.dataType, T.TimestampType) else F.col(f"`{field.name}`")
        for field in frame.schema.fields])


def write_parquet(frame: DataFrame, uri: str) -> None:
    """Staging Parquet for Redshift COPY (column types as tests/etl/test_etl_parquet_types.py
    checks them against the warehouse tables)."""
    for_redshift_copy(frame).write.mode("overwrite").parquet(uri)


def file_size(spark: SparkSession, uri: str) -> int:
    """The file's size in bytes, as stored (compressed for .gz)."""
    path, fs = _hadoop_path(spark, uri)
    return int(fs.getFileStatus(path).getLen())


def count_parquet(spark: SparkSession, uri: str) -> int:
    """Row count of written Parquet (from the files' footers: no data is read)."""
    return spark.read.parquet(uri).count()


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """One small object (the run summary), replacing any earlier one."""
    path, fs = _hadoop_path(spark, uri)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()

