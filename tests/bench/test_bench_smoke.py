"""The benchmark, small: one tiny file through the real job, PostgreSQL and the COPY floor.

Checks the shape of the results JSON, that every measured number is positive, and that the
ratios are the ones computed from the measured rows/s. Also the pure parts (phase breakdown,
statement labels, process-tree RSS) on fixed inputs, where a wrong formula cannot hide.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from bench import latency, memory, report, run_bench, throughput

SIZES = (500,)  # one job run keeps this under a minute; scaling is checked on fixed input below


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench-results")
    # The stage-phase and COPY-path comparisons start their own processes and server: their
    # figures are checked on fixed input below (test_issue_14_targets_are_derived_...).
    argv = ["--sizes", ",".join(map(str, SIZES)), "--latency-runs", "0", "--no-warm-up",
            "--stage-repeat", "0", "--copy-repeat", "0", "--backfill-files", "0", "--crawler-uploads", "0", "--iam-overhead-runs", "0", "--loop-runs", "0",
            "--results-dir", str(out), "--name", "smoke", "--cache-dir", str(out / "data")]
    assert run_bench.main(argv) == 0
    assert (out / "smoke.png").stat().st_size > 0
    return json.loads((out / "smoke.json").read_text())


@pytest.mark.slow
def test_smoke_run_writes_the_table_json_with_positive_numbers_and_computed_ratios(smoke_results):
    doc = smoke_results
    assert [e["rows"] for e in doc["throughput"]] == list(SIZES)
    for entry in doc["throughput"]:
        job, copy = entry["pipeline"], entry["copy"]
        assert job["state"] == "SUCCEEDED"
        assert copy["rows"] == entry["rows"] == job["rows"] == job["summary"]["rows_read"]
        for key in ("seconds", "rows_per_second", "mb_per_second", "job_peak_rss_mb", "db_peak_rss_mb",
                    "job_cpu_seconds"):
            assert job[key] > 0, key
        assert job["job_cpu_seconds"] < job["seconds"] * (os.cpu_count() or 1) + 1
        for key in ("seconds", "rows_per_second", "mb_per_second", "db_peak_rss_mb"):
            assert copy[key] > 0, key
        assert job["rows_per_second"] == pytest.approx(job["rows"] / job["seconds"], rel=1e-3)
        assert job["mb_per_second"] == pytest.approx(job["input_bytes"] / 1e6 / job["seconds"], rel=1e-3)
        assert entry["pipeline_to_copy_ratio"] == pytest.approx(
            job["rows_per_second"] / copy["rows_per_second"], rel=1e-3)
        assert set(job["job_phases"]) == {"spark_session", "stage", "load"}
        assert all(seconds > 0 for seconds in job["job_phases"].values())
        assert any(label.startswith("MERGE") for label in job["warehouse_seconds"])
    scaling = doc["scaling"]
    assert scaling["job_peak_rss_mb_by_rows"] == {str(e["rows"]): e["pipeline"]["job_peak_rss_mb"]
                                                  for e in doc["throughput"]}
    assert doc["machine"]["cpus"] >= 1 and "targets" in doc


def test_phases_add_up_from_the_history_and_the_summary():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    history = [
        {"timestamp": datetime.fromtimestamp(t0 + 1.0, timezone.utc), "stateEnteredEventDetails": {"name": "Start crawler"}},
        {"timestamp": datetime.fromtimestamp(t0 + 3.0, timezone.utc), "stateEnteredEventDetails": {"name": "Run ETL job"}},
        {"timestamp": datetime.fromtimestamp(t0 + 13.0, timezone.utc), "stateExitedEventDetails": {"name": "Run ETL job"}},
    ]
    summary = {"started_at": datetime.fromtimestamp(t0 + 6.0, timezone.utc).isoformat().replace("+00:00", "Z"),
               "timings": {"spark_session": 2.5, "stage": 4.0, "load": 1.5}}
    phases = latency.phases_from_history(t0 + 0.5, t0 + 1.0, history, summary, emailed_at=t0 + 13.25)
    assert phases == {"event": 0.5, "crawler": 2.0, "job_start": 0.5, "spark_start": 2.5, "spark": 4.0,
                      "load": 1.5, "job_end": 1.5, "notification": 0.25}
    assert sum(phases.values()) == pytest.approx(13.25 - 0.5)


def test_issue_14_targets_are_derived_from_the_stage_and_copy_figures():
    from bench import stage

    runs = [{"master": "local[2]", "bare_seconds": 4.0, "stage_seconds": 7.0, "rows": 1000},
            {"master": "local[2]", "bare_seconds": 5.0, "stage_seconds": 6.0, "rows": 1000},
            {"master": "local[1]", "stage_seconds": 12.0, "rows": 1000, "stage_jvm_cpu_seconds": {"spark tasks": 9.0}},
            {"master": "local[1]", "stage_seconds": 11.0, "rows": 1000, "stage_jvm_cpu_seconds": {"spark tasks": 8.0}}]
    summary = stage.summarize(runs, 1000)
    assert summary["seconds"] == {"local[2]": {"bare": 4.0, "stage": 6.0}, "local[1]": {"stage": 11.0}}
    assert summary["stage_jvm_cpu_seconds"] == {"local[1]": {"spark tasks": 8.0}}  # the best run's
    assert summary["stage_to_bare_ratio"] == pytest.approx(4.0 / 6.0, rel=1e-3)
    assert summary["cores_speedup"] == pytest.approx(11.0 / 6.0, rel=1e-3)
    document = {"throughput": [], "stage": summary,
                "copy_path": {"emulated_to_plain_ratio": 0.45},
                "scaling": {"largest_rows": 5, "reference_rows": 1,
                            "job_peak_rss_mb_by_rows": {"1": 1000.0, "5": 1100.0}}}
    found = report.targets(document)
    assert found["stage_vs_bare_spark"]["met"] and found["stage_local1_vs_local2"]["met"]
    assert not found["emulated_copy_vs_plain_copy"]["met"]
    assert found["job_peak_rss_largest_vs_reference"] == {"goal": "<= 1.25", "measured": 1.1, "met": True}


def test_issue_25_fresh_jvm_ratio_is_kept_apart_from_the_warm_one():
    from bench import stage

    runs = [{"master": "local[2]", "bare_seconds": 2.0, "stage_seconds": 3.0, "rows": 1000},
            {"master": "local[2]", "jvm": "fresh", "bare_seconds": 6.0},
            {"master": "local[2]", "jvm": "fresh", "stage_seconds": 15.0, "rows": 1000},
            {"master": "local[2]", "jvm": "fresh", "stage_seconds": 12.0, "rows": 1000}]
    summary = stage.summarize(runs, 1000)
    assert summary["seconds"] == {"local[2]": {"bare": 2.0, "stage": 3.0}}  # fresh runs not mixed in
    assert summary["fresh_jvm_seconds"] == {"bare": 6.0, "stage": 12.0}
    assert summary["fresh_stage_to_bare_ratio"] == 0.5
    found = report.targets({"throughput": [], "stage": summary})
    assert found["stage_vs_bare_spark_fresh_jvm"] == {"goal": ">= 0.5", "measured": 0.5, "met": True}
    assert "fresh JVM 0.5" in report.format_table({"machine": {}, "throughput": [], "stage": summary})


def test_latency_summary_takes_medians():
    runs = [latency.LatencyRun(10, "SUCCEEDED", s, {"spark": s / 2}) for s in (9.0, 12.0, 10.0)]
    summary = latency.summarize(runs)
    assert summary["median_seconds"] == 10.0 and summary["median_phases"] == {"spark": 5.0}


def test_targets_and_table_use_the_1m_row_reference():
    def entry(rows, rps, copy_rps, rss):
        job = {"rows": rows, "input_bytes": rows * 136, "seconds": rows / rps, "rows_per_second": rps,
               "mb_per_second": 1.0, "job_peak_rss_mb": rss, "db_peak_rss_mb": 100.0}
        copy = {"rows": rows, "seconds": rows / copy_rps, "rows_per_second": copy_rps, "mb_per_second": 9.0}
        return report.throughput_entry(job, copy)

    doc = {"throughput": [entry(100_000, 20_000, 100_000, 900), entry(1_000_000, 30_000, 100_000, 1000),
                          entry(5_000_000, 27_000, 100_000, 1000)]}
    doc["scaling"] = report.scaling(doc["throughput"])
    assert doc["scaling"]["reference_rows"] == 1_000_000
    assert doc["scaling"]["rows_per_second_ratio"] == pytest.approx(0.9)
    found = report.targets(doc)
    assert found["pipeline_to_copy_ratio_at_1m"] == {"goal": ">= 0.15", "measured": 0.3, "met": True}
    assert found["rows_per_second_largest_vs_reference"]["met"] is True
    table = report.format_table(doc)
    assert "5,000,000" in table and "0.300" in table


def test_statement_labels_name_the_load_steps():
    assert throughput.statement_label("COPY stage_bookings FROM 'x' FORMAT AS PARQUET") == "COPY stage_bookings"
    assert throughput.statement_label("MERGE INTO airline.bookings USING s ON ...") == "MERGE airline.bookings"
    assert throughput.statement_label("CREATE TEMP TABLE stage_run (x INT)") == "CREATE stage_run"
    assert throughput.statement_label("DELETE FROM stage_bookings USING t") == "DELETE stage_bookings"


def test_job_tree_rss_sums_the_sessions_started_by_this_process():
    # A child in its own session with a grandchild holding memory: both count, this process not.
    child = subprocess.Popen(
        [sys.executable, "-c", "import subprocess,sys; b=bytearray(64<<20); "
         "subprocess.run([sys.executable,'-c','import time; b=bytearray(32<<20); time.sleep(30)'])"],
        start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            processes = list(memory.all_processes())
            rss = memory.job_tree_rss(processes)
            if rss >= 96 << 20 and len([p for p in processes if p.sid == child.pid]) == 2:
                break
            time.sleep(0.1)
        assert rss >= 96 << 20
        assert memory.job_tree_rss(processes, parent_pid=child.pid) == 0  # its child shares its session
        assert memory.tree_rss(child.pid, processes) == sum(p.rss_bytes for p in processes if p.sid == child.pid)
        assert memory.tree_rss(os.getpid(), processes) > rss
    finally:
        os.killpg(child.pid, 9)
        child.wait()


@pytest.mark.slow
def test_the_email_clock_finds_an_execution_name_that_quoted_printable_split(tmp_path):
    """The mailbox writes quoted-printable bodies with soft line breaks every 76 characters: the
    latency benchmark must read the decoded body, not the file's text."""
    from airline_local.aws.cfn import ACCOUNT_ID
    from airline_local.aws.mailbox import Mailbox

    clock = latency.EmailClock()
    mailbox = Mailbox(tmp_path, on_message=lambda _message, path: clock(path))
    execution = "b441cb51-5b0a-4692-8241-bc106b05ed55"
    body = f"Ingestion of s3://bucket/raw/bookings/b.csv succeeded (execution {execution}): rows_read=1000"
    path = mailbox.deliver(f"arn:aws:sns:us-east-1:{ACCOUNT_ID}:t", "Airline booking ingestion succeeded", body)
    assert execution not in path.read_text()  # split by a soft line break
    assert clock.sent_at(execution) == clock.sent[0][0]
    assert clock.sent_at("some-other-execution") is None


def test_the_iam_overhead_summary_gives_each_groups_median_cpu_per_mode():
    from bench import iam_overhead

    result = {"rows": 1000, "runs_per_mode": 4, "rounds": 2, "median_seconds_on": 4.4, "median_seconds_off": 4.0,
              "ratio": 1.1, "target_ratio": 1.10, "met": True,
              "cpu_seconds_per_run": {"on": [{"emulator": 0.7, "glue_workers": 4.0}, {"emulator": 0.9, "glue_workers": 5.0}],
                                      "off": [{"emulator": 0.5, "glue_workers": 3.0}, {"emulator": 0.6, "glue_workers": 3.2}]}}
    text = iam_overhead.format_summary(result)
    assert "on 4.40 s, off 4.00 s (medians), ratio 1.100, target <= 1.1: met" in text
    assert "CPU s per run, emulator: on 0.80, off 0.55" in text
    assert "CPU s per run, glue_workers: on 4.50, off 3.10" in text


def test_the_spark_stage_breakdown_keeps_the_measured_job_groups_stages_with_their_task_sums():
    from bench import spark_stages

    def stage_done(sid, name, tasks, submitted, completed):
        return {"Event": "SparkListenerStageCompleted", "Stage Info": {
            "Stage ID": sid, "Stage Name": name, "Number of Tasks": tasks,
            "Submission Time": submitted, "Completion Time": completed}}

    def task_end(sid, run_ms, cpu_ns, gc_ms):
        return {"Event": "SparkListenerTaskEnd", "Stage ID": sid,
                "Task Metrics": {"Executor Run Time": run_ms, "Executor CPU Time": cpu_ns, "JVM GC Time": gc_ms}}

    events = [
        {"Event": "SparkListenerJobStart", "Stage IDs": [0], "Properties": {}},  # the warm-up
        task_end(0, 5000, 4e9, 0), stage_done(0, "warm-up", 1, 1_000, 6_000),
        {"Event": "SparkListenerJobStart", "Stage IDs": [1, 2], "Properties": {"spark.jobGroup.id": "m"}},
        task_end(2, 1500, 1.0e9, 100), task_end(2, 2500, 2.0e9, 200),
        stage_done(2, "count at x.py:1", 2, 12_000, 14_600),
        task_end(1, 800, 0.5e9, 0), stage_done(1, "csv at x.py:1", 1, 10_000, 11_000),
    ]
    stages = spark_stages.stage_breakdown(events, "m")
    assert stages == [
        {"id": 1, "name": "csv at x.py:1", "tasks": 1, "start_s": 0.0, "wall_s": 1.0, "run_s": 0.8, "cpu_s": 0.5, "gc_s": 0.0},
        {"id": 2, "name": "count at x.py:1", "tasks": 2, "start_s": 2.0, "wall_s": 2.6, "run_s": 4.0, "cpu_s": 3.0, "gc_s": 0.3},
    ]
    table = spark_stages.format_breakdown(stages)
    assert table.splitlines()[2].split()[:7] == ["2", "2.00", "2.60", "2", "4.00", "3.00", "0.30"]
