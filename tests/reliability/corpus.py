"""The bad-input corpus: one entry per case, each a small builder of the file's bytes, the object
key it is uploaded under, and what must come out of it.

Pure Python (no pipeline): tests/reliability/test_corpus.py runs the cases through one local
pipeline and checks every expectation. Booking ids start with ``RL-<TAG>-`` (the case's tag), so
the warehouse can be asked about each case's rows alone.

Expected outcomes:
- ``status``: the execution's status, or ``NOT_STARTED`` for keys the EventBridge rule ignores;
- ``reason``: a substring of the failure notification (and of the run summary's error), or of
  the success notification;
- ``counts``: the run summary's row counts (only the ones given are compared);
- ``reasons_by_record``: for row-level cases, the exact reasons of each quarantined record;
- ``stored``: values that must be in the warehouse exactly as written (booking_id -> column -> value).
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HEADER = (
    "booking_id", "booking_time", "updated_at", "passenger_id", "carrier_code", "flight_number",
    "origin", "destination", "departure_time", "cabin_class", "fare_amount", "currency",
    "num_passengers", "booking_status", "sales_channel",
)
ONE_MB = 1 << 20


def row(tag: str, number: int, **values: str) -> dict[str, str]:
    """A valid booking (LHR -> JFK, booked well before departure), with ``values`` overriding."""
    base = {
        "booking_id": f"RL-{tag}-{number:04d}",
        "booking_time": "2025-03-01T10:00:00Z",
        "updated_at": "",
        "passenger_id": f"P{number:06d}",
        "carrier_code": "BA",
        "flight_number": "117",
        "origin": "LHR",
        "destination": "JFK",
        "departure_time": "2025-06-01T09:30:00",
        "cabin_class": "economy",
        "fare_amount": "420.50",
        "currency": "GBP",
        "num_passengers": "1",
        "booking_status": "confirmed",
        "sales_channel": "web",
    }
    base.update(values)
    return base


def rows(tag: str, count: int, start: int = 1) -> list[dict[str, str]]:
    return [row(tag, n) for n in range(start, start + count)]


def to_csv(records: list[dict[str, str]], header: tuple[str, ...] | list[str] = HEADER, *,
           line_end: str = "\n", delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end, delimiter=delimiter)
    writer.writerow(header)
    for record in records:
        writer.writerow([record.get(name.strip().lower(), "") for name in header])
    return out.getvalue()


def utf8(text: str) -> bytes:
    return text.encode("utf-8")


# --------------------------------------------------------------------------------------------
# builders of the less regular files
# --------------------------------------------------------------------------------------------


# Each row breaks exactly one rule; (values, the one reason the quarantine must give).
RULE_BREAKERS: tuple[tuple[dict[str, str], str], ...] = (
    ({"booking_id": ""}, "booking_id: required"),
    ({"booking_id": "RL-RULES-" + "x" * 60}, "booking_id: longer than 64 bytes"),
    ({"booking_id": "RL-RULES-\x07bell"}, "booking_id: contains control characters or invalid UTF-8"),
    ({"booking_time": ""}, "booking_time: required"),
    ({"booking_time": "01/03/2025 10:00"}, "booking_time: not an ISO 8601 timestamp"),
    ({"updated_at": "yesterday"}, "updated_at: not an ISO 8601 timestamp"),
    ({"passenger_id": ""}, "passenger_id: required"),
    ({"passenger_id": "é" * 33}, "passenger_id: longer than 64 bytes"),  # 33 characters, 66 bytes
    ({"passenger_id": "P\x00NUL"}, "passenger_id: contains control characters or invalid UTF-8"),
    ({"carrier_code": ""}, "carrier_code: required"),
    ({"carrier_code": "BAW"}, "carrier_code: not 2 characters [A-Z0-9]"),
    ({"flight_number": ""}, "flight_number: required"),
    ({"flight_number": "11a"}, "flight_number: not an integer"),
    ({"flight_number": "0"}, "flight_number: out of range 1-9999"),
    ({"flight_number": "10000"}, "flight_number: out of range 1-9999"),
    ({"origin": ""}, "origin: required"),
    ({"origin": "QQQ"}, "origin: unknown IATA airport code"),
    ({"destination": ""}, "destination: required"),
    ({"destination": "ZZZ"}, "destination: unknown IATA airport code"),
    ({"destination": "lhr"}, "destination: same as origin"),
    ({"departure_time": ""}, "departure_time: required"),
    ({"departure_time": "2025-06-01T09:30:00Z"}, "departure_time: has a UTC offset (must be local time at the origin)"),
    ({"departure_time": "2025-06-01"}, "departure_time: not an ISO 8601 timestamp"),
    ({"departure_time": "2025-02-01T09:30:00"}, "departure_time: before booking_time"),
    ({"cabin_class": ""}, "cabin_class: required"),
    ({"cabin_class": "coach"}, "cabin_class: not one of economy, premium_economy, business, first"),
    ({"fare_amount": ""}, "fare_amount: required"),
    ({"fare_amount": "1e3"}, "fare_amount: not a decimal number"),
    ({"fare_amount": "-0.01"}, "fare_amount: negative"),
    ({"fare_amount": "12345678901.00"}, "fare_amount: does not fit decimal(12,2) (at most 10 digits and 2 decimals)"),
    ({"fare_amount": "1.234"}, "fare_amount: does not fit decimal(12,2) (at most 10 digits and 2 decimals)"),
    ({"currency": ""}, "currency: required"),
    ({"currency": "US"}, "currency: not 3 letters [A-Z]"),
    ({"num_passengers": ""}, "num_passengers: required"),
    ({"num_passengers": "two"}, "num_passengers: not an integer"),
    ({"num_passengers": "0"}, "num_passengers: out of range 1-9"),
    ({"num_passengers": "10"}, "num_passengers: out of range 1-9"),
    ({"booking_status": ""}, "booking_status: required"),
    ({"booking_status": "pending"}, "booking_status: not one of confirmed, cancelled, checked_in"),
    ({"sales_channel": "fax"}, "sales_channel: not one of web, mobile, agency, call_center"),
)
EXTRA_FIELD_REASON = "row: malformed CSV record (expected 15 fields)"
RULES_GOOD_ROWS = 400  # 41 bad rows of 441: under the 10% reject ratio


def every_rule_broken_alone() -> tuple[bytes, dict[int, list[str]]]:
    """Good rows, with one row per rule of the contract breaking that rule alone, spread out."""
    lines = [",".join(HEADER)]
    expected: dict[int, list[str]] = {}
    bad = [(values, [reason]) for values, reason in RULE_BREAKERS]
    bad.append(({"__extra_field__": "1"}, [EXTRA_FIELD_REASON]))
    record = 0
    good = 0
    for index, (values, reasons) in enumerate(bad):
        for _ in range(RULES_GOOD_ROWS // len(bad) + (1 if index < RULES_GOOD_ROWS % len(bad) else 0)):
            good += 1
            record += 1
            lines.append(_csv_line(row("RULES", good)))
        record += 1
        number = 10_000 + index
        values = dict(values)
        extra = values.pop("__extra_field__", None)
        line = _csv_line(row("RULES", number, **values))
        lines.append(line + ",surplus" if extra else line)
        expected[record] = reasons
    return utf8("\n".join(lines) + "\n"), expected


def _csv_line(record: dict[str, str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([record[name] for name in HEADER])
    return out.getvalue()


def reject_ratio(tag: str, total: int, bad: int) -> bytes:
    records = rows(tag, total)
    for index in range(bad):  # spread the bad rows over the file
        records[index * total // bad]["currency"] = "EURO"
    return utf8(to_csv(records))


def quoted_fields() -> bytes:
    header = (*HEADER, "remarks")
    records = rows("QUOT", 12)
    records[0].update(booking_id="RL-QUOT-0001,with comma", remarks='she said "hi", then left')
    records[1].update(passenger_id='P"2"', remarks='""')
    records[2].update(remarks="line one\nline two\r\nline three")
    records[3].update(remarks=",,,")
    records[4].update(passenger_id="P5\nsecond line")  # a line break in an id: rejected
    return utf8(to_csv(records, header))


def unbalanced_quote() -> bytes:
    """A quote opened and never closed: by RFC 4180 the field runs to the end of the file."""
    good = to_csv(rows("UNBQ", 20))
    tail = to_csv(rows("UNBQ", 3, start=22)).split("\n", 1)[1]
    broken = _csv_line(row("UNBQ", 21)).replace("RL-UNBQ-0021", '"RL-UNBQ-0021', 1)
    return utf8(good + broken + "\n" + tail)


def ragged_rows() -> bytes:
    lines = to_csv(rows("RAGG", 20)).splitlines()
    lines[5] = lines[5].rsplit(",", 2)[0]  # record 5: the last two fields missing
    lines[10] = lines[10] + ",one too many"  # record 10: one field too many
    return utf8("\n".join(lines) + "\n")


def blank_lines() -> bytes:
    lines = to_csv(rows("BLNK", 6)).splitlines()
    return utf8("\n".join([lines[0], lines[1], "", lines[2], "", "", *lines[3:], "", ""]) + "\n")


def non_utf8_rows() -> bytes:
    text = to_csv(rows("LAT1", 20, start=3))
    good = utf8(text)
    header, body = good.split(b"\n", 1)
    bad_id = _csv_line(row("LAT1", 1, passenger_id="P@@")).encode().replace(b"P@@", b"P\xe9\xff")
    unknown_column = _csv_line(row("LAT1", 2, origin="L@R")).encode().replace(b"L@R", b"L\xc8R")
    return header + b"\n" + bad_id + b"\n" + unknown_column + b"\n" + body


def non_utf8_header() -> bytes:
    text = to_csv(rows("LATH", 5), (*HEADER, "remarqué"))
    return text.encode("latin-1")


def one_mb_field() -> bytes:
    header = (*HEADER, "notes")
    records = rows("1MB", 20)
    records[3]["notes"] = "n" * ONE_MB  # an unknown column: ignored, the row loads
    records[7]["booking_id"] = "RL-1MB-" + "b" * ONE_MB  # an id: rejected
    return utf8(to_csv(records, header))


def header_over_1mb() -> bytes:
    return utf8(to_csv(rows("HDR1", 3), (*HEADER, "h" * (ONE_MB + 10))))


def binary_garbage() -> bytes:
    return random.Random(7).randbytes(8192)


def utf16_without_bom() -> bytes:
    """A spreadsheet's "Unicode text" export: every ASCII character followed by a NUL byte."""
    return to_csv(rows("U16", 3)).encode("utf-16-le")


def png_named_csv() -> bytes:
    return b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(8).randbytes(4096)


def gzipped(tag: str, count: int) -> bytes:
    return gzip.compress(utf8(to_csv(rows(tag, count))), mtime=0)


def truncated_gzip() -> bytes:
    whole = gzipped("TGZ", 200)
    return whole[: len(whole) // 2]


def time_zones() -> bytes:
    """Offsets in every form the contract accepts; every booking_time is 2025-03-01 10:00 UTC."""
    records = [
        row("TZ", 1, booking_time="2025-03-01T10:00:00Z"),
        row("TZ", 2, booking_time="2025-03-01T15:30:00+05:30"),
        row("TZ", 3, booking_time="2025-03-01T02:00:00-0800"),
        row("TZ", 4, booking_time="2025-03-01T12:00:00+02"),
        row("TZ", 5, booking_time="2025-03-01 10:00:00.123456789Z"),
        row("TZ", 6, booking_time="2025-03-01T10:00"),
        row("TZ", 7, updated_at="2025-03-02T00:00:00+14:00"),
        # Local departure in summer time at the origin: 09:30 in London is 08:30 UTC.
        row("TZ", 8, departure_time="2025-06-01 09:30"),
    ]
    return utf8(to_csv(records))


def date_line() -> bytes:
    """Local dates that mislead across the date line; only the UTC instants count."""
    records = rows("DATE", 10, start=10)
    records += [
        # Booked on 2 June (Kiribati, UTC+14) = 1 June 20:00 UTC; departs Honolulu 1 June 20:00
        # local = 2 June 06:00 UTC: after the booking, although its local date is earlier.
        row("DATE", 1, booking_time="2025-06-02T10:00:00+14:00", origin="HNL", destination="LAX",
            departure_time="2025-06-01T20:00:00", currency="USD"),
        # Booked on 1 June (UTC-10) = 2 June 08:00 UTC; departs Auckland 2 June 08:00 local =
        # 1 June 20:00 UTC: before the booking, although its local date is later.
        row("DATE", 2, booking_time="2025-06-01T22:00:00-10:00", origin="AKL", destination="SYD",
            departure_time="2025-06-02T08:00:00", currency="NZD"),
        # Departure at the very instant of booking: allowed (not before).
        row("DATE", 3, booking_time="2025-06-01T08:30:00Z", departure_time="2025-06-01T09:30:00"),
    ]
    return utf8(to_csv(records))


SQL_INJECTION_IDS = (
    "RL-INJ-1'); DROP TABLE airline.bookings; --",
    'RL-INJ-2"; TRUNCATE airline.ingestion_runs; --',
    "RL-INJ-3\\'; DELETE FROM airline.bookings; --",
    "RL-INJ-4$$; DROP SCHEMA airline CASCADE; $$",
)
FORMULA_VALUES = ("=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0")


def injection_strings() -> bytes:
    """SQL and spreadsheet-formula payloads as values: stored as text, never executed."""
    header = (*HEADER, "remarks")
    records = rows("INJ", 12, start=10)
    for index, booking_id in enumerate(SQL_INJECTION_IDS):
        records.append(row("INJ", 0, booking_id=booking_id, passenger_id="x' OR '1'='1",
                           remarks="'; DELETE FROM airline.bookings; --"))
        records[-1]["updated_at"] = f"2025-03-0{index + 1}T10:00:00Z"
    for index, formula in enumerate(FORMULA_VALUES):
        records.append(row("INJ", 100 + index, passenger_id=formula))
    records.append(row("INJ", 200, fare_amount="=1+1"))  # not a number: quarantined as text
    return utf8(to_csv(records, header))


def duplicate_columns() -> bytes:
    header = (*HEADER[:6], "origin", " ORIGIN ", *HEADER[7:])
    return utf8(to_csv(rows("DUPC", 3), header))


def missing_columns(tag: str, *dropped: str) -> Callable[[], bytes]:
    def build() -> bytes:
        return utf8(to_csv(rows(tag, 5), tuple(name for name in HEADER if name not in dropped)))
    return build


def unknown_columns() -> bytes:
    header = (*HEADER, "loyalty_tier", "")
    records = [dict(r, loyalty_tier="gold") for r in rows("UNKC", 5)]
    return utf8(to_csv(records, header))


def reordered_header() -> bytes:
    header = [f" {name.upper()} " for name in reversed(HEADER)]
    records = rows("ORDR", 5)
    records[0].update(origin="lhr", destination=" jfk ", cabin_class="Business", currency="gbp",
                      booking_status="CHECKED_IN", sales_channel="Call_Center", carrier_code="ba")
    return utf8(to_csv(records, header))


# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[], bytes]
    status: str  # SUCCEEDED | FAILED | NOT_STARTED
    reason: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    key: str | None = None  # default raw/bookings/rl-<id>.csv
    tag: str | None = None  # the RL-<TAG>- prefix of the case's booking ids
    unknown_columns: tuple[str, ...] | None = None
    reasons_by_record: dict[int, list[str]] | None = None
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def object_key(self) -> str:
        return self.key or f"raw/bookings/rl-{self.id}.csv"

    def body(self) -> bytes:
        return self.build()


def ok(read: int, quarantined: int = 0, duplicate: int = 0) -> dict[str, int]:
    """Counts of a file whose valid rows are all new to the warehouse."""
    return {"rows_read": read, "rows_quarantined": quarantined, "rows_duplicate": duplicate,
            "rows_inserted": read - quarantined - duplicate, "rows_updated": 0, "rows_unchanged": 0,
            "rows_stale": 0}


ZERO = ok(0)
_RULES_BODY, _RULES_REASONS = every_rule_broken_alone()
VALID = to_csv(rows("IGN", 2))

CASES: tuple[Case, ...] = (
    # -- the shape of the file -------------------------------------------------------------
    Case("zero_byte", lambda: b"", "FAILED", "empty file (no header row)", ZERO),
    Case("header_only", lambda: utf8(",".join(HEADER) + "\n"), "SUCCEEDED", "rows_read=0", ZERO),
    Case("blank_first_line", lambda: utf8("\n" + to_csv(rows("BLFL", 3))), "FAILED",
         "no header row (the first line is empty)", ZERO, tag="BLFL"),
    Case("utf8_bom", lambda: b"\xef\xbb\xbf" + utf8(to_csv(rows("BOM", 4))), "SUCCEEDED", None, ok(4),
         tag="BOM"),
    Case("crlf_line_ends", lambda: utf8(to_csv(rows("CRLF", 4), line_end="\r\n")), "SUCCEEDED", None,
         ok(4), tag="CRLF", stored={"RL-CRLF-0004": {"sales_channel": "web"}}),
    Case("blank_lines", blank_lines, "SUCCEEDED", None, ok(6), tag="BLNK"),
    Case("quoted_commas_quotes_newlines", quoted_fields, "SUCCEEDED", None, ok(12, 1), tag="QUOT",
         unknown_columns=("remarks",),
         reasons_by_record={5: ["passenger_id: contains control characters or invalid UTF-8"]},
         stored={"RL-QUOT-0001,with comma": {"passenger_id": "P000001"},
                 "RL-QUOT-0002": {"passenger_id": 'P"2"'}}),
    Case("unbalanced_quote", unbalanced_quote, "SUCCEEDED", None, ok(21, 1), tag="UNBQ",
         # The rest of the file is inside the open quote: one record of one field, kept whole.
         reasons_by_record={21: [EXTRA_FIELD_REASON, "booking_id: longer than 64 bytes",
                                 *(f"{c}: required" for c in HEADER[1:-1] if c != "updated_at")]}),
    Case("ragged_rows", ragged_rows, "SUCCEEDED", None, ok(20, 2), tag="RAGG",
         reasons_by_record={5: [EXTRA_FIELD_REASON, "booking_status: required"],
                            10: [EXTRA_FIELD_REASON]}),
    Case("wrong_delimiter", lambda: utf8(to_csv(rows("SEMI", 3), delimiter=";")), "FAILED",
         "missing required column(s): booking_id, booking_time", ZERO, tag="SEMI"),
    Case("binary_garbage", binary_garbage, "FAILED", "no header row: the first line is not UTF-8", ZERO),
    Case("utf16_without_bom", utf16_without_bom, "FAILED", "not a CSV text file (the first line holds NUL bytes)",
         ZERO, tag="U16"),
    Case("png_named_csv", png_named_csv, "FAILED", "no header row: the first line is not UTF-8", ZERO),
    Case("gzip_valid", lambda: gzipped("GZ", 30), "SUCCEEDED", None, ok(30), key="raw/bookings/rl-gzip_valid.csv.gz",
         tag="GZ"),
    Case("gzip_truncated", truncated_gzip, "FAILED", "Unexpected end of input stream", ZERO,
         key="raw/bookings/rl-gzip_truncated.csv.gz", tag="TGZ"),
    Case("gzip_corrupt", lambda: b"this is not gzip at all\n" * 10, "FAILED", "not a gzip file", ZERO,
         key="raw/bookings/rl-gzip_corrupt.csv.gz"),
    Case("non_utf8_bytes_in_rows", non_utf8_rows, "SUCCEEDED", None, ok(22, 2), tag="LAT1",
         reasons_by_record={1: ["passenger_id: contains control characters or invalid UTF-8"],
                            2: ["origin: unknown IATA airport code"]}),
    Case("non_utf8_header", non_utf8_header, "FAILED", "no header row: the first line is not UTF-8", ZERO,
         tag="LATH"),
    Case("one_mb_field", one_mb_field, "SUCCEEDED", None, ok(20, 1), tag="1MB", unknown_columns=("notes",),
         reasons_by_record={8: ["booking_id: longer than 64 bytes"]}),
    Case("header_over_1mb", header_over_1mb, "FAILED",
         "no header row: the first line is not UTF-8 CSV text ending within 1048576 bytes", ZERO, tag="HDR1"),
    # -- the columns --------------------------------------------------------------------------
    Case("missing_required_columns", missing_columns("MISS", "cabin_class", "currency"), "FAILED",
         "missing required column(s): cabin_class, currency", ZERO, tag="MISS"),
    Case("missing_optional_columns", missing_columns("OPTC", "updated_at", "sales_channel"), "SUCCEEDED", None, ok(5),
         tag="OPTC", stored={"RL-OPTC-0001": {"sales_channel": None}}),
    Case("duplicate_column_names", duplicate_columns, "FAILED", "duplicate column names: 'origin' and 'ORIGIN'",
         ZERO, tag="DUPC"),
    Case("unknown_extra_columns", unknown_columns, "SUCCEEDED", None, ok(5), tag="UNKC",
         unknown_columns=("loyalty_tier", "_unnamed_column_17")),
    Case("reordered_cased_header", reordered_header, "SUCCEEDED", None, ok(5), tag="ORDR",
         stored={"RL-ORDR-0001": {"origin": "LHR", "destination": "JFK", "cabin_class": "business",
                                  "currency": "GBP", "booking_status": "checked_in",
                                  "sales_channel": "call_center", "carrier_code": "BA"}}),
    # -- the rows -------------------------------------------------------------------------------
    Case("every_rule_broken_alone", lambda: _RULES_BODY, "SUCCEEDED", None,
         ok(RULES_GOOD_ROWS + len(RULE_BREAKERS) + 1, len(RULE_BREAKERS) + 1), tag="RULES",
         reasons_by_record=_RULES_REASONS),
    Case("reject_ratio_at_limit", lambda: reject_ratio("RAT10", 100, 10), "SUCCEEDED", None, ok(100, 10),
         tag="RAT10"),
    Case("reject_ratio_just_over", lambda: reject_ratio("RAT11", 100, 11), "FAILED",
         "11 of 100 rows rejected (11.0%), more than max_reject_ratio 0.1",
         {"rows_read": 100, "rows_quarantined": 11, "rows_inserted": 0}, tag="RAT11"),
    Case("time_zone_offsets", time_zones, "SUCCEEDED", None, ok(8), tag="TZ"),
    Case("departure_before_booking_across_date_line", date_line, "SUCCEEDED", None, ok(13, 1), tag="DATE",
         reasons_by_record={12: ["departure_time: before booking_time"]}),
    Case("sql_and_formula_injection_values", injection_strings, "SUCCEEDED", None, ok(21, 1), tag="INJ",
         unknown_columns=("remarks",),
         reasons_by_record={21: ["fare_amount: not a decimal number"]}),
    # -- the object key -------------------------------------------------------------------------
    # A space and a '+': classic S3 notifications would carry "May+2026%2Bextra"; the EventBridge
    # event's key is used as it comes (docs/aws-notes.md, "Object key in the EventBridge event").
    Case("key_with_spaces", lambda: utf8(to_csv(rows("KSP", 3))), "SUCCEEDED", None, ok(3),
         key="raw/bookings/rl May 2026+extra  key.csv", tag="KSP"),
    Case("key_with_quotes_and_sql", lambda: utf8(to_csv(rows("KQT", 3))), "SUCCEEDED", None, ok(3),
         key="raw/bookings/rl-it's \"quoted\"; DROP TABLE airline.bookings; --.csv", tag="KQT"),
    Case("key_with_unicode", lambda: utf8(to_csv(rows("KUNI", 3))), "SUCCEEDED", None, ok(3),
         key="raw/bookings/rl-réservations-東京-✈.csv", tag="KUNI"),
    Case("key_with_percent_hash", lambda: utf8(to_csv(rows("KPCT", 3))), "SUCCEEDED", None, ok(3),
         key="raw/bookings/rl-100%20off #1.csv", tag="KPCT"),
    Case("key_with_glob_characters", lambda: utf8(to_csv(rows("KGLB", 3))), "SUCCEEDED", None, ok(3),
         key="raw/bookings/rl-*[ab]{c}?.csv", tag="KGLB"),
    Case("key_with_dot_dot", lambda: utf8(to_csv(rows("KDOT", 3))), "FAILED", "'..'", ZERO,
         key="raw/bookings/../../../../../../../../../../tmp/rl-dotdot-escape.csv", tag="KDOT"),
    # -- keys the rule ignores: no execution starts ----------------------------------------------
    Case("outside_prefix", lambda: utf8(VALID), "NOT_STARTED", key="raw/other/rl-ignored.csv"),
    Case("prefix_lookalike", lambda: utf8(VALID), "NOT_STARTED", key="raw/bookings-old/rl-ignored.csv"),
    Case("bucket_root", lambda: utf8(VALID), "NOT_STARTED", key="rl-ignored.csv"),
    Case("prefix_not_at_start", lambda: utf8(VALID), "NOT_STARTED", key="staging/raw/bookings/rl-ignored.csv"),
    Case("suffix_txt", lambda: utf8(VALID), "NOT_STARTED", key="raw/bookings/rl-ignored.txt"),
    Case("suffix_csv_bak", lambda: utf8(VALID), "NOT_STARTED", key="raw/bookings/rl-ignored.csv.bak"),
    Case("suffix_upper_case", lambda: utf8(VALID), "NOT_STARTED", key="raw/bookings/rl-ignored.CSV"),
    Case("suffix_zip", lambda: utf8(VALID), "NOT_STARTED", key="raw/bookings/rl-ignored.csv.zip"),
    Case("suffix_gz_only", lambda: gzip.compress(utf8(VALID)), "NOT_STARTED", key="raw/bookings/rl-ignored.gz"),
)

PIPELINE_CASES = tuple(c for c in CASES if c.status != "NOT_STARTED")
IGNORED_CASES = tuple(c for c in CASES if c.status == "NOT_STARTED")
