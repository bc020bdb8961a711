"""bench.spark_conf_ab on the ETL tests' session: settings alternate run by run in one JVM."""

from __future__ import annotations

import argparse

import pytest

from airline_local.generator import write_csv
from bench import spark_conf_ab

AQE = "spark.sql.adaptive.enabled"


def test_settings_alternate_run_by_run_and_only_runs_past_the_warm_up_count(spark, tmp_path):
    source = tmp_path / "small.csv"
    write_csv(source, 25, seed=5, bad_ratio=0.1)
    settings = [{AQE: "true"}, {}]
    records = spark_conf_ab.measure(spark, source, settings, runs=3, warm_up=1, work=tmp_path / "work")

    assert [r["setting"] for r in records] == [0, 1, 0]
    assert [r["counted"] for r in records] == [False, True, True]
    assert len({r["rows"] for r in records}) == 1 and records[0]["rows"][0] >= 25
    assert all(sum(r["jvm_cpu_seconds"].values()) > 0 and r["wall_seconds"] > 0 for r in records)
    # AQE splits a query into a job per stage: the runs with it on run more Spark jobs
    assert min(r["spark_jobs"] for r in records if r["setting"] == 0) > max(r["spark_jobs"] for r in records if r["setting"] == 1) > 0
    assert spark.conf.get(AQE) == "false"  # each run's setting stayed in its own session

    summary = spark_conf_ab.summarize(records, settings)
    assert [(s["setting"], s["runs"]) for s in summary] == [({AQE: "true"}, 1), ("session default", 1)]
    assert summary[0]["jvm_cpu_seconds_mean"] == pytest.approx(sum(records[2]["jvm_cpu_seconds"].values()), abs=1e-3)


def test_a_setting_is_key_value_pairs_or_a_dash():
    assert spark_conf_ab.parse_setting("a=1, b = x=y") == {"a": "1", "b": "x=y"}
    assert spark_conf_ab.parse_setting("-") == {}
    with pytest.raises(argparse.ArgumentTypeError):
        spark_conf_ab.parse_setting("no-equals-sign")
