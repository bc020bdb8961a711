"""Reading the file: RFC 4180 details, encodings, compression, and file-level failures."""

from __future__ import annotations

import pytest
from etl_helpers import GOOD_ROW, HEADER, csv_line, rows_csv

import bookings_contract as contract
import bookings_io
import bookings_transform as transform
from bookings_contract import FileRejected

GOOD_LINE = csv_line(list(GOOD_ROW.values()))


def _with_id(booking_id: str) -> str:
    return csv_line([booking_id, *list(GOOD_ROW.values())[1:]])


def test_bom_crlf_quoted_commas_quotes_and_newlines(write_file, validate_file):
    header = "\ufeff" + HEADER + ",notes"
    lines = [header, _with_id("B1") + ',"a, b"', _with_id("B2") + ',"say ""hi""\r\nsecond line"',
             _with_id("B3") + ",plain"]
    rows = validate_file(write_file("\r\n".join(lines) + "\r\n"))
    assert [r["booking_id"] for r in rows] == ["B1", "B2", "B3"]
    assert [r["record_number"] for r in rows] == [1, 2, 3]
    assert all(r["reasons"] == [] for r in rows)
    assert rows[2]["sales_channel"] == "web"  # no stray \r at the end of a CRLF line


def test_quoted_newline_is_kept_in_the_quarantined_values(write_file, validate_file):
    text = HEADER + ",notes\n" + _with_id("") + ',"line one\nline two"\n'
    (row,) = validate_file(write_file(text))
    assert row["reasons"] == ["booking_id: required"]
    assert row[transform.QUARANTINE_VALUES]["notes"] == "line one\nline two"


def test_gzip_is_decompressed_by_extension(write_file, validate_file):
    path = write_file(rows_csv([GOOD_ROW, {**GOOD_ROW, "booking_id": "B2"}]), "bookings.csv.gz")
    assert [r["booking_id"] for r in validate_file(path)] == ["B1", "B2"]


def test_header_only_file_has_no_rows(write_file, validate_file):
    assert validate_file(write_file(HEADER + "\n")) == []
    assert validate_file(write_file(HEADER)) == []


def test_malformed_record_is_quarantined_with_its_raw_text(write_file, validate_file):
    text = HEADER + "\n" + GOOD_LINE + ",extra\n" + "B2,2025-03-01T10:00:00Z\n" + _with_id("B3") + "\n"
    rows = validate_file(write_file(text))
    assert rows[0]["reasons"] == ["row: malformed CSV record (expected 15 fields)"]
    assert rows[0][transform.CORRUPT_RECORD] == GOOD_LINE + ",extra"
    assert rows[1]["reasons"][0] == "row: malformed CSV record (expected 15 fields)"
    assert "passenger_id: required" in rows[1]["reasons"]
    assert rows[2]["reasons"] == [] and rows[2]["record_number"] == 3


def test_columns_in_another_order_with_optional_ones_absent(write_file, validate_file):
    columns = tuple(reversed(contract.REQUIRED_COLUMNS))
    header = ",".join(f" {c.upper()} " for c in columns)
    line = csv_line([GOOD_ROW[c] for c in columns])
    (row,) = validate_file(write_file(header + "\n" + line + "\n"))
    assert row["reasons"] == []
    assert row["updated_at"] == row["booking_time"] and row["sales_channel"] is None


def test_invalid_utf8_in_a_row_is_a_row_error(write_file, validate_file):
    data = (HEADER + "\n").encode() + _with_id("B\xff").encode("latin-1") + b"\n"
    (row,) = validate_file(write_file(data))
    assert row["reasons"] == ["booking_id: contains control characters or invalid UTF-8"]


@pytest.mark.parametrize(("content", "name", "reason"), [
    (b"", "empty.csv", "empty file (no header row)"),
    (b"\n" + GOOD_LINE.encode(), "blank.csv", "no header row (the first line is empty)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.csv", "no header row: the first line is not UTF-8"),
    (b"booking_id\x00,x\n", "nul.csv", "not a CSV text file (the first line holds NUL bytes)"),
    (b'"booking_id,booking_time\n', "quote.csv", "the header row is not valid CSV"),
])
def test_files_without_a_readable_header_are_rejected(write_file, spark, content, name, reason):
    path = write_file(content, name)
    with pytest.raises(FileRejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        bookings_io.read_header(spark, path.as_uri())


def test_a_file_that_is_not_gzip_despite_its_name_is_rejected(spark, tmp_path):
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(b"booking_id,booking_time\n")
    with pytest.raises(FileRejected, match="cannot read the file: .*not a gzip file"):
        bookings_io.read_header(spark, path.as_uri())


def test_a_missing_file_and_a_directory_are_rejected(spark, tmp_path):
    with pytest.raises(FileRejected, match="file not found"):
        bookings_io.read_header(spark, (tmp_path / "nope.csv").as_uri())
    with pytest.raises(FileRejected, match="is a directory"):
        bookings_io.read_header(spark, tmp_path.as_uri())


@pytest.mark.parametrize("segment", ["", ".", ".."])
def test_a_key_with_an_empty_dot_or_dot_dot_segment_is_refused(write_file, spark, tmp_path, segment):
    """docs/reliability.md: such a key is refused, although Hadoop's Path would normalize it onto a file that
    exists (here the very file beside it) and read that one."""
    (tmp_path / "raw").mkdir()
    write_file(HEADER + "\n" + GOOD_LINE + "\n", "raw/bookings.csv")
    write_file(HEADER + "\n" + GOOD_LINE + "\n", "bookings.csv")
    target = {"": "raw//bookings.csv", ".": "raw/./bookings.csv", "..": "raw/../bookings.csv"}[segment]
    uri = f"file://{tmp_path}/{target}"
    with pytest.raises(FileRejected, match=r"the object key has an empty, '\.' or '\.\.' path segment"):
        bookings_io.read_header(spark, uri)


def test_header_with_quoted_names_and_a_bom(write_file, spark):
    path = write_file('\ufeff"booking_id","departure, local"\r\nB1,x\r\n')
    assert bookings_io.read_header(spark, path.as_uri()) == ["booking_id", "departure, local"]


def _read_numbered(spark, path, split_min_bytes):
    uri = path.as_uri()
    mapping = contract.map_header(bookings_io.read_header(spark, uri))
    raw = bookings_io.read_bookings_csv(spark, uri, transform.raw_schema(mapping),
                                        split_min_bytes=split_min_bytes)
    return raw.rdd.getNumPartitions(), sorted(
        (r[transform.RECORD_NUMBER], r["_c0"], r[transform.CORRUPT_RECORD]) for r in raw.collect())


@pytest.fixture
def small_splits(spark):
    """Splits of 4 KiB, so that a small file is read by several tasks."""
    keys = ("spark.sql.files.maxPartitionBytes", "spark.sql.files.openCostInBytes")
    before = {key: spark.conf.get(key) for key in keys}
    for key in keys:
        spark.conf.set(key, "4096")
    yield
    for key, value in before.items():
        spark.conf.set(key, value)


def test_a_split_read_numbers_records_as_the_single_stream_read(write_file, spark, small_splits):
    # Empty lines (skipped, no record), CRLF, quoted commas and quotes, malformed records:
    # across splits, every record gets the number the multiLine read gives.
    lines = [HEADER]
    for n in range(1, 301):
        lines.append(_with_id(f"B{n}") if n % 7 else _with_id(f'"B{n}, ""q"""'))
        if n % 50 == 0:
            lines.append("")
        if n % 90 == 0:
            lines.append("B-short,2025-03-01T10:00:00Z")
    path = write_file("\r\n".join(lines) + "\r\n")
    partitions, split = _read_numbered(spark, path, split_min_bytes=0)
    single_partitions, single = _read_numbered(spark, path, split_min_bytes=1 << 40)
    assert partitions > 2 and single_partitions == 1
    assert split == single
    assert [number for number, _, _ in split] == list(range(1, 304))


@pytest.mark.parametrize(("odd_line", "found"), [
    (_with_id("B-notes")[:-3] + '"web\nmore"', "quoted_line_breaks"),
    (" \t ", "blank_lines"),  # a (malformed) record for multiLine, skipped line by line
])
def test_a_line_read_otherwise_line_by_line_falls_back_to_the_single_stream_read(
        write_file, spark, small_splits, odd_line, found):
    lines = [HEADER] + [_with_id(f"B{n}") for n in range(1, 200)]
    lines.insert(150, odd_line)
    path = write_file("\n".join(lines) + "\n")
    assert getattr(bookings_io.scan_lines(spark, path.as_uri()), found)
    partitions, rows = _read_numbered(spark, path, split_min_bytes=0)
    assert partitions == 1 and [number for number, _, _ in rows] == list(range(1, 201))
    assert rows[149][1] in ("B-notes", " \t ")
