"""The stage phase gives what it gave before issue 25's speed-ups (bench/stage_diff.py).

The frozen pre-change modules (tests/etl/reference_stage/) and the current ones run on the same
generated file with every kind of bad row and the hand-written edge rows (quoted line breaks,
malformed records, control characters, invalid UTF-8, timestamp forms, DST gaps and overlaps,
numbers at their limits): quarantine records, staged rows and counts must be identical. One small
file here (make test's budget); `python -m bench.stage_diff` runs 100k rows, gzip and the split read.

Local Spark runs with adaptive query execution off (airline_local/glue/spark_conf.py: a speed
setting); Glue runs Spark's default, on. The same file staged both ways must give the same result.
"""

from __future__ import annotations

import shutil

import pytest

from bench import stage_diff

AQE = "spark.sql.adaptive.enabled"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return stage_diff.write_files(tmp_path_factory.mktemp("equivalence"), 1500, bad_ratio=0.05)


@pytest.fixture(scope="module")
def staged(spark, files, tmp_path_factory) -> dict[str, stage_diff.StageResult]:
    """The file staged by the reference, by the current modules with local Spark's settings, and
    by the current modules with adaptive query execution on: one data root for all three (its
    URI is in the summary and the run row), emptied between."""
    assert spark.conf.get(AQE) == "false" and not _adaptive(spark)  # local mode's, as in the other tests
    root, results = tmp_path_factory.mktemp("stage") / "root", {}
    for name, module, aqe in (("reference", stage_diff.load_reference(), "false"),
                              ("current", stage_diff.current_stage(), "false"),
                              ("current, AQE on", stage_diff.current_stage(), "true")):
        spark.conf.set(AQE, aqe)
        try:
            assert _adaptive(spark) == (aqe == "true")  # the setting reaches the next queries' planner
            results[name] = stage_diff.run_stage(module, spark, files["plain"], root)
        finally:
            spark.conf.set(AQE, "false")
        shutil.rmtree(root)
    return results


def test_the_stage_quarantines_and_stages_exactly_what_the_reference_did(staged):
    new = staged["current"]
    assert stage_diff.differences(staged["reference"], new) == []
    # the file exercised what it should: every kind of reason, rows staged and duplicates dropped
    reasons = {reason.split(":")[0] for record in new.quarantine for reason in record["reasons"]}
    assert reasons >= {"row", "booking_id", "booking_time", "updated_at", "passenger_id",
                       "carrier_code", "flight_number", "origin", "destination", "departure_time",
                       "cabin_class", "fare_amount", "currency", "num_passengers",
                       "booking_status", "sales_channel"}
    assert new.counts["rows_staged"] > 1000 and new.counts["rows_duplicate"] > 0


def test_the_stage_stages_the_same_with_adaptive_query_execution_on_as_glue_runs_it(staged):
    assert stage_diff.differences(staged["current"], staged["current, AQE on"]) == []


def _adaptive(spark) -> bool:
    plan = spark.range(10).repartition(2).groupBy("id").count()
    return "AdaptiveSparkPlan" in plan._jdf.queryExecution().executedPlan().toString()
