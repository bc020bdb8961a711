"""Bursts and long sequences: every file loaded once, and the local stack's resources stay flat.

- A burst of 10 uploads at once: twice the job's MaxConcurrentRuns (5), so the job's run limit
  and the crawler hand-over are exercised for real, and the test asserts from the execution
  histories that they were: a Run ETL job refused with Glue.ConcurrentRunsExceededException and
  retried (or, with Glue's job run queuing, a run seen WAITING), and a Start crawler refused with
  Glue.CrawlerRunningException that went on to wait for the other's crawl
  (`make soak` bursts 20: RELIABILITY_BURST_FILES).
- Small files in sequence: all loaded; RSS and open file descriptors of this process (moto,
  Data API, pollers), its children (the warm Spark workers) and the PostgreSQL server tree,
  sampled after every run, may grow by at most RSS_SLOPE_BOUND (1.5 MiB) and FD_SLOPE_BOUND
  (0.25 fd) a run. 8 files in `make test` (about 35 s);
  `make soak` runs 100 (RELIABILITY_SEQUENCE_FILES), past a warm worker's replacement at 50 runs.

  "Not growing" is a least-squares slope over every sample after the warm-up, bounded per run
  (RSS_SLOPE_BOUND, FD_SLOPE_BOUND), not a comparison of a first and a last sample: the slope uses
  all samples, and its standard error (from the scatter around the line) says what the run could
  see. A true leak of `bound + 2 standard errors` per run or more fails ~97.7% of the time; the
  test prints (and its assertion message gives) the slope, the standard error, the bound and that
  detectable rate for the length it ran. With 8 files there are 6 samples after the warm-up, so
  the standard error is the residual spread / sqrt(17.5) (~ spread / 4.2): at the measured spread
  (0.3 MiB) a leak of ~1.64 MiB/run or more fails (12 files: / 9, ~1.56); 100 files: / 240.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bench.burst import run_burst

from .checks import assert_accounted_in_warehouse, fit_trend, leak_verdict, rows_with_prefix, run_keyed, stack_resources
from .corpus import rows, to_csv


BURST_FILES = int(os.environ.get("RELIABILITY_BURST_FILES", "10"))
SEQUENCE_FILES = int(os.environ.get("RELIABILITY_SEQUENCE_FILES", "8"))
ROWS_PER_FILE = 25
WORKER_RSS_LIMIT = 2 * 2**30
WORKER_FD_LIMIT = 2000  # a warm worker's JVM holds ~300-600 (jars, sockets, shuffle files)
MIB = 2**20
# State names of stacks/orchestration.py (not imported: that would load the CDK into this process);
# the burst test checks every execution entered them.
RUN_ETL_JOB, START_CRAWLER, WAIT_FOR_CRAWLER = "Run ETL job", "Start crawler", "Wait for crawler"
# Growth per run allowed to the stack (without its warm workers). moto keeps every object and
# execution history in memory (AWS would expire staging/ by lifecycle), and that share is linear.
# Measured (12 files, 2026-12-02, a loaded machine; MEASURED_RSS_MIB below): the stack grows
# 1.02 MiB/run, standard error 0.03, residual sd 0.28 MiB, very steadily. Not yet attributed:
# more than the bytes moto keeps per run (~0.1-0.2 MiB of objects and history), so it may be a
# slow leak; the bound sits above it so that it does not fail every run, and catches anything
# more: at 12 files an extra ~0.6 MiB/run (total >= bound + 2 se = ~1.56 MiB/run) fails, at 8
# (make test's, since 2026-12-07) ~0.65 (1.64 MiB/run): its first 8 samples give +1.07 MiB/run.
RSS_SLOPE_BOUND = 1.5 * MIB
FD_SLOPE_BOUND = 0.25  # measured: 54 fds after every run (se 0): 3 fds leaked over 12 runs fail
# The stack's RSS (MiB) after each of the 12 runs of that measurement.
MEASURED_RSS_MIB = [476.7, 482.6, 486.1, 486.4, 488.0, 489.2, 490.1, 491.1, 492.0, 493.4, 494.0, 494.8]


def _files(folder, tag: str, count: int):
    made = []
    for index in range(count):
        path = folder / f"rl-{tag.lower()}-{index:03d}.csv"
        path.write_text(to_csv(rows(f"{tag}{index:03d}", ROWS_PER_FILE)), encoding="utf-8")
        made.append((path, f"raw/bookings/{path.name}"))
    return made


@pytest.mark.slow
@pytest.mark.reliability
def test_a_burst_of_uploads_all_succeed_and_load_every_row_once(pipeline, tmp_path):
    files = _files(tmp_path, "BURST", BURST_FILES)
    with job_run_states(pipeline) as seen_states:
        burst = run_burst(pipeline, files)  # all uploaded at once: `python -m bench.burst`'s measurement
    results = burst.results
    print(f"\n{burst.summary(ROWS_PER_FILE)}")
    assert re.fullmatch(rf"burst of {len(files)} files x {ROWS_PER_FILE} rows: {len(files)} succeeded, "
                        r"[\d.]+ s wall, [\d.]+ CPU-s in the emulator's process \(load average now [\d.]+\)",
                        burst.summary(ROWS_PER_FILE))
    assert burst.wall_seconds > 0 and burst.cpu_seconds > 0

    assert [r.status for r in results] == ["SUCCEEDED"] * len(files), [(r.key, r.error) for r in results if r.error]
    for result in results:
        assert assert_accounted_in_warehouse(pipeline, result)["rows_inserted"] == ROWS_PER_FILE
    assert rows_with_prefix(pipeline, "RL-BURST") == ROWS_PER_FILE * len(files)

    # What the burst claims to exercise, from the execution histories (and the job's runs).
    histories = {r.execution_name: execution_history(pipeline, r.execution_name) for r in results}
    for events in histories.values():
        entered = {e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e}
        assert {START_CRAWLER, RUN_ETL_JOB} <= entered, sorted(entered)
    retried = [name for name, events in histories.items()
               if refused_then_rescheduled(events, RUN_ETL_JOB, "Glue.ConcurrentRunsExceededException")]
    handed_over = [name for name, events in histories.items()
                   if refused_then_entered(events, START_CRAWLER, "Glue.CrawlerRunningException", WAIT_FOR_CRAWLER)]
    print(f"  job run refused and retried: {len(retried)}; job run states seen: {sorted(seen_states)}; "
          f"crawler handed over: {len(handed_over)}")
    # Over MaxConcurrentRuns a run is refused and the state machine retries it; with Glue's job run
    # queuing (JobRunQueuingEnabled) the run waits, WAITING, instead. One of the two must happen.
    assert retried or "WAITING" in seen_states, (sorted(seen_states), "no run was refused and retried, none waited")
    assert handed_over, "no execution found the crawler busy and waited for the other's crawl"


@contextmanager
def job_run_states(pipeline) -> Iterator[set[str]]:
    """The states the Glue job's runs were seen in, sampled every 0.2 s while the block runs."""
    glue = pipeline.emulator.client("glue")
    (job,) = pipeline.stack.job_names
    seen: set[str] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            for page in glue.get_paginator("get_job_runs").paginate(JobName=job):
                seen.update(run["JobRunState"] for run in page["JobRuns"])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        done.set()
        sampler.join(timeout=30)


def execution_history(pipeline, execution_name: str) -> list[dict]:
    arn = pipeline.stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{execution_name}"
    sfn = pipeline.emulator.client("stepfunctions")
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
    return [event for page in pages for event in page["events"]]


def _error(event: dict) -> str | None:
    return next((details["error"] for key, details in event.items()
                 if key.endswith("EventDetails") and isinstance(details, dict) and "error" in details), None)


def _states_and_errors(events: list[dict]) -> list[tuple[str, str]]:
    """("entered", state) and ("error", error name) in the order they happened."""
    out = []
    for event in events:
        if "stateEnteredEventDetails" in event:
            out.append(("entered", event["stateEnteredEventDetails"]["name"]))
        elif _error(event) is not None:
            out.append(("error", _error(event)))
    return out


def refused_then_rescheduled(events: list[dict], state: str, error: str) -> bool:
    """The task `state` failed with `error` and was scheduled again (a Retry) before leaving it."""
    scheduled_after_error = False
    in_state = failed = False
    for event in events:
        if "stateEnteredEventDetails" in event:
            in_state, failed = event["stateEnteredEventDetails"]["name"] == state, False
        elif in_state and _error(event) == error:
            failed = True
        elif in_state and failed and event["type"] == "TaskScheduled":
            scheduled_after_error = True
    return scheduled_after_error


def refused_then_entered(events: list[dict], state: str, error: str, next_state: str) -> bool:
    """The task `state` failed with `error` and the execution then entered `next_state` (a Catch)."""
    flow = _states_and_errors(events)
    for index, (kind, value) in enumerate(flow):
        if kind == "entered" and value == state:
            rest = flow[index + 1:]
            if rest[:1] == [("error", error)] and ("entered", next_state) in rest[1:2]:
                return True
    return False


@pytest.mark.slow
@pytest.mark.reliability
def test_a_long_sequence_loads_every_file_and_resources_stay_flat(pipeline, tmp_path):
    files = _files(tmp_path, "SEQ", SEQUENCE_FILES)
    samples = []
    started = time.monotonic()
    for path, key in files:
        [result] = run_keyed(pipeline, [(path, key)])
        assert result.status == "SUCCEEDED", (key, result.error)
        assert assert_accounted_in_warehouse(pipeline, result)["rows_inserted"] == ROWS_PER_FILE
        # Sampled with the warm Spark workers settled (a retired one gone, its successor up),
        # after a checkpoint (see stack_resources).
        assert pipeline.emulator.job_runner.wait_for_workers(timeout=300)
        samples.append(stack_resources(pipeline))
    seconds = time.monotonic() - started
    assert rows_with_prefix(pipeline, "RL-SEQ") == ROWS_PER_FILE * len(files)

    # After a warm-up (JIT, caches, connection pools), a least-squares slope over every sample.
    warm = samples[max(2, len(samples) // 10):]
    rss_ok, rss_report = leak_verdict([s.rss_bytes for s in warm], RSS_SLOPE_BOUND, "stack RSS", MIB, "MiB")
    fd_ok, fd_report = leak_verdict([s.open_fds for s in warm], FD_SLOPE_BOUND, "stack open fds", 1, "fds")
    print(f"\nsequence: {len(files)} runs in {seconds:.0f} s; first {samples[0]}; "
          f"after warm-up {warm[0]}; last {samples[-1]}\n  {rss_report}\n  {fd_report}"
          f"\n  RSS MiB per run: {[round(s.rss_bytes / MIB, 1) for s in samples]}"
          f"\n  open fds per run: {[s.open_fds for s in samples]}")
    if not fd_ok:  # name the holders: pytest cuts a long assertion message short
        print("most fds, first sample:", *samples[0].top_fds, "last sample:", *samples[-1].top_fds, sep="\n  ")
    assert fd_ok, fd_report
    assert rss_ok, rss_report
    # A warm worker's JVM stays within its heap limit (1 GiB driver memory) plus the JVM's own
    # overhead, however many runs it served; it is replaced after 50.
    worker_peak = max((rss for s in samples for rss in s.worker_rss_bytes), default=0)
    assert 0 < worker_peak <= WORKER_RSS_LIMIT, worker_peak
    worker_fds = max((fds for s in samples for fds in s.worker_fds), default=0)
    assert 0 < worker_fds <= WORKER_FD_LIMIT, worker_fds


# -- the slope check itself, on synthetic series (fast; no pipeline) --------------------------


def _series(runs: int, leak_per_run: float, noise_sd: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [400 * MIB + leak_per_run * i + rng.gauss(0, noise_sd) for i in range(runs)]


@pytest.mark.parametrize("seed", range(5))
def test_the_slope_check_passes_a_flat_noisy_series(seed):
    ok, report = leak_verdict(_series(10, 0, 1 * MIB, seed), RSS_SLOPE_BOUND, "flat", MIB, "MiB")
    assert ok, report


@pytest.mark.parametrize("seed", range(5))
def test_the_slope_check_fails_a_leak_of_one_mib_per_run_over_the_measured_growth(seed):
    # the stack's own measured growth (~1 MiB/run) plus a leak of 1 MiB/run, with that run's noise
    ok, report = leak_verdict(_series(10, 2 * MIB, 0.3 * MIB, seed), RSS_SLOPE_BOUND, "leaky", MIB, "MiB")
    assert not ok, report
    assert "LEAK" in report and "standard error" in report


def test_the_measured_run_passes_and_fails_with_one_mib_per_run_more():
    warm = [v * MIB for v in MEASURED_RSS_MIB[2:]]  # the warm-up the test drops
    ok, report = leak_verdict(warm, RSS_SLOPE_BOUND, "measured", MIB, "MiB")
    assert ok, report
    trend = fit_trend(warm)  # the run printed +1.022 ± 0.031 from unrounded samples
    assert trend.slope / MIB == pytest.approx(1.02, abs=0.01) and trend.stderr / MIB == pytest.approx(0.03, abs=0.005)
    leaky = [v + i * MIB for i, v in enumerate(warm)]
    assert not leak_verdict(leaky, RSS_SLOPE_BOUND, "measured + 1 MiB/run")[0]
    # make test's 8 files: the first 8 samples of that run pass too, and fail with 1 MiB/run more
    assert leak_verdict(warm[:6], RSS_SLOPE_BOUND, "measured, 8 files")[0]
    assert not leak_verdict(leaky[:6], RSS_SLOPE_BOUND, "measured, 8 files + 1 MiB/run")[0]


def test_a_one_mib_per_run_leak_on_a_flat_stack_is_reported_with_what_the_bound_misses():
    # on a flat stack a 1 MiB/run leak stays under RSS_SLOPE_BOUND (set above the measured
    # growth): the report says so, which is what the bound trades for not failing every run
    ok, report = leak_verdict(_series(10, 1 * MIB, 0.3 * MIB, 0), RSS_SLOPE_BOUND, "leaky", MIB, "MiB")
    assert ok and "detects a leak of 1.55" in report, report
    assert not leak_verdict(_series(10, 1 * MIB, 0.3 * MIB, 0), 0.5 * MIB, "leaky")[0]


def test_the_slope_check_fails_one_fd_leaked_per_run_over_jitter():
    rng = random.Random(7)
    flat = [600 + rng.choice((-2, 0, 0, 1, 3)) for _ in range(10)]
    leaky = [v + i for i, v in enumerate(flat)]
    assert leak_verdict(flat, FD_SLOPE_BOUND, "flat fds")[0]
    assert not leak_verdict(leaky, FD_SLOPE_BOUND, "leaky fds")[0]


def test_fit_trend_is_least_squares_with_its_standard_error():
    trend = fit_trend([1.0, 3.0, 2.0, 5.0, 4.0])  # slope 0.8, residuals -0.4 0.8 -1.0 1.2 -0.6
    assert trend.slope == pytest.approx(0.8)
    assert trend.residual_sd == pytest.approx((3.6 / 3) ** 0.5)
    assert trend.stderr == pytest.approx((3.6 / 3 / 10) ** 0.5)
    assert trend.detectable(0.5) == pytest.approx(0.5 + 2 * trend.stderr)
    with pytest.raises(ValueError):
        fit_trend([1.0, 2.0])


def test_the_reliability_page_states_the_bounds_this_test_applies():
    """docs/reliability.md's Load paragraph and these bounds are one: changing either alone fails here."""
    from pathlib import Path

    page = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
    text = " ".join(page.read_text(encoding="utf-8").split())
    assert f"RSS may grow by at most {RSS_SLOPE_BOUND / MIB:g} MiB a run" in text
    assert f"open files by {FD_SLOPE_BOUND:g} a run" in text
    assert f"{RSS_SLOPE_BOUND / MIB:g} MiB a run is allowed" in text
