"""Warm Spark workers (airline_local.glue.spark_worker, worker_pool): a job run in a reused JVM must look
to the script and to Glue exactly like a run in a fresh process, only faster."""

from __future__ import annotations

import json
import os
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from airline_local.glue.java import check_java
from airline_local.glue.job_runner import JobRunner, JobSpec
from airline_local.glue.worker_pool import group_running, group_states
from airline_local.glue.spark_conf import SPARK_JAVA_OPTIONS_VARIABLE, class_archive_path

# One script, its behaviour chosen by --case: what it saw is printed as one JSON line.
PROBE = """
import json, os, signal, sys, time
from pyspark.sql import SparkSession
import helper_module  # from --extra-py-files

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
spark = SparkSession.builder.getOrCreate()
print(json.dumps({
    "pid": os.getpid(), "cwd": os.getcwd(), "argv": sys.argv[1:], "helper": helper_module.__file__,
    "marker_before": spark.conf.get("airline.test.marker", None),
    "tables_before": [table.name for table in spark.catalog.listTables()],
    "rows": spark.range(5).count(),
    "jvm_arguments": list(spark.sparkContext._jvm.java.lang.management.ManagementFactory
                          .getRuntimeMXBean().getInputArguments()),
    # the class archives the JVM mapped (it ignores one that does not match it, silently)
    "jvm_archives": sorted({line.split()[-1] for line in open(
        f"/proc/{spark.sparkContext._jvm.ProcessHandle.current().pid()}/maps") if line.rstrip().endswith(".jsa")}),
}), flush=True)
spark.conf.set("airline.test.marker", args["--JOB_RUN_ID"])
spark.range(3).createOrReplaceTempView("leftover")
spark.range(3).cache().count()
case = args["--case"]
if case == "raise":
    raise ValueError("boom in " + args["--JOB_RUN_ID"])
if case == "exit":
    print("fatal: bad input", file=sys.stderr)
    sys.exit(2)
if case == "sleep":
    time.sleep(120)
if case == "pause":
    began = time.time()
    time.sleep(4)
    print(json.dumps({"began": began, "ended": time.time()}), flush=True)
if case == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
if case == "stop":
    spark.stop()
print("done", case)
"""


@pytest.fixture(scope="module")
def runner(emulator, tmp_path_factory):
    check_java()
    folder = tmp_path_factory.mktemp("warm")
    (folder / "lib").mkdir()
    (folder / "lib" / "helper_module.py").write_text("VALUE = 1\n")
    (folder / "probe.py").write_text(textwrap.dedent(PROBE))
    # No warm-up: these tests are about the protocol, not speed (the pipeline tests warm up).
    runner = JobRunner(folder / "runs", emulator.endpoint_url, emulator.region, warm_workers=1,
                       worker_max_runs=50, warm_up_workers=False)
    runner.register_job("probe", JobSpec(script=folder / "probe.py",
                                         extra_py_files=[folder / "lib" / "helper_module.py"]))
    yield runner
    runner.close()


def run(runner: JobRunner, case: str, timeout: float = 180):
    run_id = f"jr_{case}_{uuid.uuid4().hex[:6]}"
    outcome = runner.run("probe", run_id, {"--case": case}, timeout_seconds=timeout)
    stdout = outcome.stdout_path.read_text()
    seen = json.loads(stdout.splitlines()[0]) if stdout.startswith("{") else None
    return outcome, seen, stdout


def test_runs_reuse_one_worker_and_each_sees_a_fresh_process_and_session(runner):
    first, seen_first, _ = run(runner, "ok")
    second, seen_second, stdout_second = run(runner, "ok")

    assert first.state == second.state == "SUCCEEDED", second.stderr_path.read_text()[-2000:]
    assert seen_first["pid"] == seen_second["pid"], "the second run did not reuse the warm worker"
    for outcome, seen in ((first, seen_first), (second, seen_second)):
        run_dir = outcome.stdout_path.parent
        assert seen["cwd"] == str(run_dir / "work")
        assert seen["helper"].startswith(str(run_dir)), "a module of an earlier run was reused"
        assert seen["argv"][:2] == ["--JOB_NAME", "probe"]
        assert seen["rows"] == 5
    # Nothing of the first run's session reaches the second: conf, temporary views, output.
    assert seen_second["marker_before"] is None
    assert seen_second["tables_before"] == []
    assert stdout_second.count("done ok") == 1
    assert f"warm worker {seen_second['pid']}" in second.stderr_path.read_text()


def test_the_worker_jvm_gets_the_local_spark_java_options_and_maps_the_class_archive(runner):
    # tests/conftest.py sets them for the whole suite: C1-only JIT
    options = os.environ[SPARK_JAVA_OPTIONS_VARIABLE]
    _, seen, _ = run(runner, "ok")
    assert options and options in seen["jvm_arguments"], seen["jvm_arguments"]
    archive = class_archive_path()
    assert archive is not None and archive.is_file(), \
        "no class archive: `make install` builds it (python -m airline_local.glue.class_archive)"
    assert f"-XX:SharedArchiveFile={archive}" in seen["jvm_arguments"], seen["jvm_arguments"]
    assert str(archive) in seen["jvm_archives"], seen["jvm_archives"]  # beside the JDK's own base archive


def test_a_failing_script_fails_its_run_like_a_process_and_the_worker_serves_on(runner):
    raised, seen_raised, _ = run(runner, "raise")
    exited, _, _ = run(runner, "exit")
    after, seen_after, _ = run(runner, "ok")

    assert raised.state == "FAILED"
    assert raised.error_message.startswith("ValueError: boom in jr_raise_")
    assert "Traceback (most recent call last)" in raised.stderr_path.read_text()
    assert (exited.state, exited.error_message) == ("FAILED", "fatal: bad input")
    assert after.state == "SUCCEEDED"
    assert seen_after["pid"] == seen_raised["pid"]


def test_a_killed_worker_fails_the_run_and_the_next_run_gets_a_new_one(runner):
    killed, seen_killed, _ = run(runner, "kill")
    after, seen_after, _ = run(runner, "ok")

    assert (killed.state, killed.error_message) == ("FAILED", "The job's process was killed by SIGKILL")
    assert after.state == "SUCCEEDED"
    assert seen_after["pid"] != seen_killed["pid"]


def test_a_run_past_its_timeout_is_stopped_and_its_worker_replaced(runner):
    timed_out, seen_slow, _ = run(runner, "sleep", timeout=5)
    after, seen_after, _ = run(runner, "ok")

    assert (timed_out.state, timed_out.error_message) == ("TIMEOUT", "Job run timed out after 5 seconds")
    assert group_states(seen_slow["pid"]) == {}, "the timed-out worker or its JVM is still running"
    assert after.state == "SUCCEEDED" and seen_after["pid"] != seen_slow["pid"]


def test_a_script_that_stops_spark_succeeds_and_retires_its_worker(runner):
    stopped, seen_stopped, _ = run(runner, "stop")
    after, seen_after, _ = run(runner, "ok")

    assert stopped.state == "SUCCEEDED", stopped.stderr_path.read_text()[-2000:]
    assert after.state == "SUCCEEDED" and seen_after["pid"] != seen_stopped["pid"]


def test_runs_beyond_the_pool_wait_for_a_free_worker(runner):
    """A pool of one: two runs at once execute one after the other, in the same worker, and a
    run that cannot get a worker within its timeout times out."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(run, runner, "pause")
        second = pool.submit(run, runner, "pause")
        time.sleep(1)  # the pauses hold the worker for 4 s each
        starved = pool.submit(run, runner, "ok", timeout=1)
        results = [first.result(), second.result()]
        starved_outcome, _, _ = starved.result()

    spans = sorted((span["began"], span["ended"]) for span in
                   (json.loads(stdout.splitlines()[1]) for _, _, stdout in results))
    assert [outcome.state for outcome, _, _ in results] == ["SUCCEEDED", "SUCCEEDED"]
    assert spans[0][1] <= spans[1][0], f"the runs overlapped: {spans}"
    assert results[0][1]["pid"] == results[1][1]["pid"]
    assert (starved_outcome.state, starved_outcome.error_message) == ("TIMEOUT", "Job run timed out after 1 seconds")
    assert "no warm worker became free" in starved_outcome.stderr_path.read_text()


def test_a_run_sent_while_the_worker_warms_up_takes_the_warm_ups_place_and_close_stops_the_worker(emulator, tmp_path):
    """A worker started for a run (a one-file `local run`) must not make it wait for its warm-up
    on a throwaway file: the request, sent at once, stops the warm-up and the run goes ahead.
    Then close() stops the idle worker and its JVM (one JVM for both checks: make test's budget)."""
    (tmp_path / "count.py").write_text(
        "from pyspark.sql import SparkSession\n"
        "print('rows', SparkSession.builder.getOrCreate().range(7).count())\n")
    runner = JobRunner(tmp_path / "runs", emulator.endpoint_url, emulator.region, warm_workers=1,
                       warm_up_workers=True)
    try:
        runner.register_job("count", JobSpec(script=tmp_path / "count.py"))
        outcome = runner.run("count", "jr_during_warm_up", {}, timeout_seconds=300)
        assert outcome.state == "SUCCEEDED", outcome.stderr_path.read_text()[-2000:]
        assert "rows 7" in outcome.stdout_path.read_text()
        [log] = (tmp_path / "runs" / "_workers" / "count").glob("*/worker.log")
        assert "warm-up abandoned: a run was waiting" in log.read_text()
        # The same worker serves the next run (cancelling the warm-up did not harm it).
        again = runner.run("count", "jr_after_warm_up", {}, timeout_seconds=300)
        assert again.state == "SUCCEEDED" and "run 2" in again.stderr_path.read_text()

        workers = list(runner._pools["count"]._idle)
        assert len(workers) == 1 and all(worker.alive() for worker in workers)
        groups = {worker.pid for worker in workers}
        assert any(pid != group for group in groups for pid in group_states(group)), "no JVM started"
    finally:
        runner.close()

    assert not any(worker.alive() for worker in workers)
    # (a zombie left for init to reap has exited: it does not count, as for close() itself)
    assert not any(group_running(group) for group in groups), "a worker's JVM outlived close()"
