"""Bursts and long sequences: every file loaded once, and the local stack's resources stay flat.

- A burst of 20 uploads at once: more runs than the job's MaxConcurrentRuns (5), so the state
  machine's retry on Glue.ConcurrentRunsExceededException and the crawler hand-over are exercised
  for real.
- Small files in sequence: all loaded; RSS and open file descriptors of this process (moto,
  Data API, pollers), its children (the warm Spark workers) and the PostgreSQL server tree,
  sampled after every run, must not keep growing. 12 files in `make test` (about 45 s);
  `make soak` runs 100 (RELIABILITY_SEQUENCE_FILES), past a warm worker's replacement at 50 runs.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest

from .checks import assert_accounted_in_warehouse, rows_with_prefix, run_keyed, stack_resources
from .corpus import rows, to_csv

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

BURST_FILES = int(os.environ.get("RELIABILITY_BURST_FILES", "20"))
SEQUENCE_FILES = int(os.environ.get("RELIABILITY_SEQUENCE_FILES", "12"))
ROWS_PER_FILE = 25
WORKER_RSS_LIMIT = 2 * 2**30
WORKER_FD_LIMIT = 2000  # a warm worker's JVM holds ~300-600 (jars, sockets, shuffle files)


def _files(folder, tag: str, count: int):
    made = []
    for index in range(count):
        path = folder / f"rl-{tag.lower()}-{index:03d}.csv"
        path.write_text(to_csv(rows(f"{tag}{index:03d}", ROWS_PER_FILE)), encoding="utf-8")
        made.append((path, f"raw/bookings/{path.name}"))
    return made


def test_a_burst_of_uploads_all_succeed_and_load_every_row_once(pipeline, tmp_path):
    files = _files(tmp_path, "BURST", BURST_FILES)
    started = time.monotonic()
    results = run_keyed(pipeline, files, window=len(files), timeout=1800)  # all uploaded at once
    seconds = time.monotonic() - started
    print(f"\nburst: {len(files)} files in {seconds:.0f} s")

    assert [r.status for r in results] == ["SUCCEEDED"] * len(files), [(r.key, r.error) for r in results if r.error]
    for result in results:
        assert assert_accounted_in_warehouse(pipeline, result)["rows_inserted"] == ROWS_PER_FILE
    assert rows_with_prefix(pipeline, "RL-BURST") == ROWS_PER_FILE * len(files)


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

    # After a warm-up (JIT, caches, connection pools), compare the first and last tenth.
    warm = samples[len(samples) // 10:]
    tenth = max(1, len(warm) // 10)
    early, late = warm[:tenth], warm[-tenth:]
    rss_growth = max(s.rss_bytes for s in late) - max(s.rss_bytes for s in early)
    # Open files: the median of each tenth, so that a process that happens to be starting or
    # ending when a sample is taken is not called a leak; a leak raises every later sample.
    fd_growth = statistics.median(s.open_fds for s in late) - statistics.median(s.open_fds for s in early)
    print(f"\nsequence: {len(files)} runs in {seconds:.0f} s; first {samples[0]}; "
          f"after warm-up {warm[0]}; last {samples[-1]}; RSS growth {rss_growth / 2**20:.1f} MiB, "
          f"fd growth {fd_growth}")
    if fd_growth > 10:  # name the holders: pytest cuts a long assertion message short
        print("most fds, first sample:", *samples[0].top_fds, "last sample:", *samples[-1].top_fds, sep="\n  ")
    assert fd_growth <= 10, [s.open_fds for s in samples]
    # A warm worker's JVM stays within its heap limit (1 GiB driver memory) plus the JVM's own
    # overhead, however many runs it served; it is replaced after 50.
    worker_peak = max((rss for s in samples for rss in s.worker_rss_bytes), default=0)
    assert 0 < worker_peak <= WORKER_RSS_LIMIT, worker_peak
    worker_fds = max((fds for s in samples for fds in s.worker_fds), default=0)
    assert 0 < worker_fds <= WORKER_FD_LIMIT, worker_fds
    # moto keeps every object and execution history in memory (AWS would expire staging/ by
    # lifecycle): allow that linear share, not a leak per run of the order of a job's footprint.
    assert rss_growth <= 2 * 2**20 * len(warm), [s.rss_bytes for s in samples]
