"""The stage phase gives what it gave before issue 25's speed-ups (bench/stage_diff.py).

The frozen pre-change modules (tests/etl/reference_stage/) and the current ones run on the same
generated file with every kind of bad row and the hand-written edge rows (quoted line breaks,
malformed records, control characters, invalid UTF-8, timestamp forms, DST gaps and overlaps,
numbers at their limits): quarantine records, staged rows and counts must be identical. One small
file here (make test's budget); `python -m bench.stage_diff` runs 100k rows, gzip and the split read.
"""

from __future__ import annotations

import pytest

from bench import stage_diff


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return stage_diff.write_files(tmp_path_factory.mktemp("equivalence"), 1500, bad_ratio=0.05)


def test_the_stage_quarantines_and_stages_exactly_what_the_reference_did(spark, files, tmp_path):
    new, found = stage_diff.compare(spark, files["plain"], tmp_path)
    assert found == []
    # the file exercised what it should: every kind of reason, rows staged and duplicates dropped
    reasons = {reason.split(":")[0] for record in new.quarantine for reason in record["reasons"]}
    assert reasons >= {"row", "booking_id", "booking_time", "updated_at", "passenger_id",
                       "carrier_code", "flight_number", "origin", "destination", "departure_time",
                       "cabin_class", "fare_amount", "currency", "num_passengers",
                       "booking_status", "sales_channel"}
    assert new.counts["rows_staged"] > 1000 and new.counts["rows_duplicate"] > 0
