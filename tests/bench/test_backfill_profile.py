"""The backfill benchmark's profile (bench/backfill.py) on fixed inputs, where a wrong formula
cannot hide; the benchmark itself runs in `make bench` (200 files) and by hand."""

from __future__ import annotations

import json

from bench import backfill


def summary(seconds: float, **timings: float) -> dict:
    return {"duration_seconds": seconds, "timings": timings}


def test_profile_splits_wall_time_into_job_time_and_the_rest():
    # Three files on two workers in 10 s: jobs of 4, 4 and 2 s; one file failed before its job ran.
    files = [(0.0, 5.0, summary(4.0, stage=3.0, load=0.5)), (0.0, 6.0, summary(4.0, stage=3.5, load=0.5)),
             (6.0, 9.0, summary(2.0, stage=1.0, load=1.0)), (1.0, 2.0, None)]
    profile = backfill.profile(files, seconds=10.0, workers=2)
    assert profile["job_runs"] == 3
    assert profile["job_seconds_total"] == 10.0
    assert profile["job_seconds_median"] == 4.0
    assert profile["job_phase_seconds_median"] == {"load": 0.5, "stage": 3.0}
    assert profile["worker_busy_ratio"] == 0.5  # 10 job seconds of 2 workers x 10 s
    assert profile["file_seconds_median"] == 4.0  # of 5, 6, 3 and 1 s
    assert profile["file_seconds_outside_job_median"] == 1.0  # of 1, 2 and 1 s


def test_result_entry_times_are_read_as_epoch_seconds():
    assert backfill._time("2026-12-02T07:00:01.500Z") - backfill._time("2026-12-02T07:00:00.000Z") == 1.5


def test_write_results_keeps_the_other_results(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"throughput": [1], "backfill": {"files": 1}}))
    backfill.write_results({"files": 200}, path, "python -m bench.backfill --write-results")
    document = json.loads(path.read_text())
    assert document["throughput"] == [1]
    assert document["backfill"]["files"] == 200
    assert document["backfill"]["command"] == "python -m bench.backfill --write-results"
