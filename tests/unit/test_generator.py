"""The deterministic booking generator (plain Python; the ETL tests check its rows on Spark)."""

from __future__ import annotations

import csv
import gzip
import hashlib
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import airportsdata
import pytest

from airline_local.generator import BAD_ROW_RULES, COLUMNS, MAJOR_AIRPORTS, generate_bookings, write_csv

REPO_ROOT = Path(__file__).resolve().parents[2]


def _kinds(rows):
    return Counter(row["_kind"].split(":")[0] for row in rows)


def test_same_seed_same_rows_other_seed_other_rows():
    first = list(generate_bookings(300, seed=5))
    assert first == list(generate_bookings(300, seed=5))
    assert first != list(generate_bookings(300, seed=6))
    assert all(list(row) == list(COLUMNS) for row in first)


def test_kinds_follow_the_ratios_and_bad_rows_cycle_through_the_rules():
    rows = list(generate_bookings(4000, seed=1, bad_ratio=0.05, duplicate_ratio=0.02,
                                  update_ratio=0.03, include_kind=True))
    kinds = _kinds(rows)
    assert abs(kinds["bad"] - 200) <= 1 and abs(kinds["duplicate"] - 80) <= 1
    assert abs(kinds["update"] - 120) <= 1 and sum(kinds.values()) == 4000
    rules = Counter(row["_kind"].split(":")[1] for row in rows if row["_kind"].startswith("bad:"))
    assert set(rules) == {rule for rule, _, _ in BAD_ROW_RULES}
    assert max(rules.values()) - min(rules.values()) <= 1


def test_duplicates_and_updates_refer_to_earlier_valid_bookings():
    rows = list(generate_bookings(3000, seed=3, bad_ratio=0.02, include_kind=True))
    latest: dict[str, dict] = {}
    for row in rows:
        kind = row.pop("_kind")
        if kind == "new":
            assert row["booking_id"] not in latest
            latest[row["booking_id"]] = row
        elif kind == "duplicate":
            assert row == latest[row["booking_id"]]
        elif kind == "update":
            before = latest[row["booking_id"]]
            assert _utc(row["updated_at"]) > _utc(before["updated_at"] or before["booking_time"])
            assert row["booking_status"] != before["booking_status"]
            latest[row["booking_id"]] = row
        else:
            assert row["booking_id"] not in latest  # a bad row never shares a valid booking's id


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def test_valid_rows_are_plausible():
    reference = airportsdata.load("IATA")
    rows = [r for r in generate_bookings(2000, seed=9, include_kind=True) if r["_kind"] == "new"]
    for row in rows:
        assert row["origin"] in reference and row["destination"] in reference
        assert row["origin"] != row["destination"]
        assert 1 <= int(row["flight_number"]) <= 9999 and 1 <= int(row["num_passengers"]) <= 9
        assert float(row["fare_amount"]) > 0 and len(row["currency"]) == 3
        departure = datetime.fromisoformat(row["departure_time"])
        assert departure.tzinfo is None and departure.minute % 5 == 0
    assert len({r["origin"] for r in rows}) > 100
    assert len(MAJOR_AIRPORTS) >= 200 and all(code in reference for code in MAJOR_AIRPORTS)


@pytest.mark.parametrize("name", ["bookings.csv", "bookings.csv.gz"])
def test_write_csv_writes_a_header_and_every_row(tmp_path, name):
    path = tmp_path / name
    kinds = write_csv(path, 500, seed=2, bad_ratio=0.04)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(COLUMNS) and len(rows) == 501
    assert sum(kinds.values()) == 500
    assert abs(sum(v for k, v in kinds.items() if k.startswith("bad:")) - 20) <= 1


def test_the_committed_sample_is_the_documented_generator_output(tmp_path):
    regenerated = tmp_path / "sample.csv"
    kinds = write_csv(regenerated, 1000, seed=42, bad_ratio=0.0205)
    sample = REPO_ROOT / "data" / "sample" / "bookings_sample.csv"
    assert hashlib.sha256(regenerated.read_bytes()).hexdigest() == hashlib.sha256(sample.read_bytes()).hexdigest()
    assert sum(v for k, v in kinds.items() if k.startswith("bad:")) == len(BAD_ROW_RULES)


def test_invalid_ratios_are_refused():
    with pytest.raises(ValueError, match="must not exceed 1"):
        list(generate_bookings(10, bad_ratio=0.5, duplicate_ratio=0.4, update_ratio=0.2))
    with pytest.raises(ValueError, match="bad_ratio must be between 0 and 1"):
        list(generate_bookings(10, bad_ratio=-0.1))
