"""The local developer loop (issue 24) with real processes: `local up` keeps a stack running in the
background, `local run` and `local status` use it, Ctrl-C stops what a command started, `local
down` stops everything (checked by PID), the run history outlives the stack, and a stack whose
process was killed is cleaned up.

One background stack serves the module's tests, in order (make test's time budget); the last test
starts one in-process run and interrupts it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airline_local import background
from airline_local.generator import write_csv

CLI = [sys.executable, "-m", "airline_local.cli"]

pytestmark = pytest.mark.slow


WIDE = {**os.environ, "COLUMNS": "200"}  # wide enough that the status table's words are not cut


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False, env=WIDE)


def alive(pid: int | None) -> bool:
    return pid is not None and background.process_start_time(pid) is not None


def descendants(root: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, grew = {root}, True
    while grew:
        grew = False
        for child, parent in parents.items():
            if parent in found and child not in found:
                found.add(child)
                grew = True
    return found - {root}


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds:.0f} s: {what}"
        time.sleep(0.2)


def postmaster_pid(state_dir: Path) -> int | None:
    try:
        pid = int((state_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return pid if pid > 0 else None  # negative: initdb's single-user backend


def wait_for_line(stderr: Path, text: str, process: subprocess.Popen, seconds: float = 300) -> None:
    wait_until(lambda: text in stderr.read_text() or process.poll() is not None, seconds, f"{text!r} in {stderr}")
    assert text in stderr.read_text(), stderr.read_text()[-3000:]


@pytest.fixture(scope="module")
def state_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="airline-loop-"))
    directory.chmod(0o711)  # PostgreSQL runs as an unprivileged user when the tests run as root
    state = directory / "state"
    try:
        yield state
    finally:  # whatever a failed test left running
        info = background.read_stack(state)
        cli("local", "down", "--state-dir", str(state))
        if info is not None:
            for pid in background.processes_with_token(info.token):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("loop-files")
    made = {"good": directory / "loop good.csv", "medium": directory / "loop medium.csv",
            "slow": directory / "loop slow.csv"}
    write_csv(made["good"], 40, seed=2401, bad_ratio=0.0)
    write_csv(made["medium"], 3000, seed=2403, bad_ratio=0.0)
    write_csv(made["slow"], 20000, seed=2402, bad_ratio=0.0)  # a job of several seconds: interrupted in it
    made["headless"] = directory / "loop-headless.csv"
    made["headless"].write_text("booking_id\nBK-1\n", encoding="utf-8")
    return made


def test_up_starts_the_stack_in_the_background_and_up_again_says_so(state_dir):
    done = cli("local", "up", "--state-dir", str(state_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    info = background.read_stack(state_dir)
    assert info is not None and info.ready
    assert f"PID {info.pid}" in done.stderr and "local down" in done.stderr and info.aws_endpoint in done.stderr
    assert alive(info.pid) and alive(info.postgres_pid)
    # Its Spark worker (and JVM) carry the stack's token: what `down` and the stale cleanup find.
    assert len(background.processes_with_token(info.token)) >= 3, background.processes_with_token(info.token)

    again = cli("local", "up", "--state-dir", str(state_dir))
    assert again.returncode == 0 and "already up" in again.stderr, again.stderr
    assert background.read_stack(state_dir) == info


def test_run_uses_the_running_stack(state_dir, files):
    info = background.read_stack(state_dir)
    done = cli("local", "run", str(files["good"]), str(files["headless"]), "--state-dir", str(state_dir), "--json")
    assert done.returncode == 1, done.stderr[-3000:]  # one of the two fails
    good, headless = json.loads(done.stdout)["runs"]
    assert good["status"] == "SUCCEEDED" and good["summary"]["rows_read"] == 40
    assert good["execution_name"] in good["notification"]["message"]
    assert headless["status"] == "FAILED" and "missing required column(s)" in headless["error"]
    assert "Starting the local stack" not in done.stderr  # no start: the stack's process ran them
    assert background.read_stack(state_dir) == info and alive(info.pid)


def test_status_on_the_running_stack_is_live(state_dir, files):
    done = cli("local", "status", "--state-dir", str(state_dir), "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["live"] is True
    assert {(Path(r["file"]).name, r["status"]) for r in document["runs"]} >= {
        (files["good"].name, "SUCCEEDED"), (files["headless"].name, "FAILED")}


def test_ctrl_c_on_a_run_stops_its_execution_and_the_stack_stays_up(state_dir, files, tmp_path):
    info = background.read_stack(state_dir)
    stderr = tmp_path / "stderr"
    with stderr.open("w") as sink:
        run = subprocess.Popen([*CLI, "local", "run", str(files["medium"]), "--state-dir", str(state_dir)],
                               stdout=subprocess.DEVNULL, stderr=sink, env=WIDE)
    wait_for_line(stderr, "Run ETL job", run)
    run.send_signal(signal.SIGINT)
    assert run.wait(60) == 130
    assert "interrupted" in stderr.read_text()

    def aborted() -> bool:
        runs = json.loads(cli("local", "status", "--state-dir", str(state_dir), "--json").stdout)["runs"]
        return any(Path(r["file"]).name == files["medium"].name and r["status"] == "ABORTED" for r in runs)

    wait_until(aborted, 60, "the interrupted run's execution ABORTED")
    assert background.read_stack(state_dir) == info and alive(info.pid)


def test_down_stops_every_process_and_the_history_stays(state_dir, files):
    info = background.read_stack(state_dir)
    started = [info.pid, info.postgres_pid, *background.processes_with_token(info.token)]
    assert all(alive(pid) for pid in started)

    done = cli("local", "down", "--state-dir", str(state_dir))
    assert done.returncode == 0 and "stopped" in done.stderr, done.stderr
    assert [pid for pid in started if alive(pid)] == []
    assert background.read_stack(state_dir) is None and not background.stack_file(state_dir).exists()
    again = cli("local", "down", "--state-dir", str(state_dir))
    assert again.returncode == 0 and "no local stack is running" in again.stderr, again.stderr

    # The history (not only the committed loads) after the stack is gone.
    document = json.loads(cli("local", "status", "--state-dir", str(state_dir), "--json").stdout)
    assert document["live"] is False
    by_file = {Path(r["file"]).name: r for r in document["runs"]}
    assert by_file[files["good"].name]["status"] == "SUCCEEDED"
    assert by_file[files["good"].name]["rows"]["rows_read"] == 40 and by_file[files["good"].name]["seconds"] > 0
    assert by_file[files["headless"].name]["status"] == "FAILED"
    assert "missing required column(s)" in by_file[files["headless"].name]["error"]
    assert by_file[files["medium"].name]["status"] == "ABORTED"
    table = cli("local", "status", "--state-dir", str(state_dir), "--no-watch")
    assert "FAILED" in table.stdout and "SUCCEEDED" in table.stdout, table.stdout


def test_a_killed_stack_is_cleaned_up_and_ctrl_c_stops_an_in_process_run(state_dir, files, tmp_path):
    # A stack whose processes were killed with SIGKILL (the terminal that ran `up` too) while starting.
    up = subprocess.Popen([*CLI, "local", "up", "--state-dir", str(state_dir)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: background.read_stack(state_dir) is not None, 120, "the stack file")
    info = background.read_stack(state_dir)
    workers = lambda: [p for p in background.processes_with_token(info.token) if p != info.pid]  # noqa: E731
    wait_until(lambda: postmaster_pid(state_dir) in workers(), 300, "its PostgreSQL")
    left = [postmaster_pid(state_dir), *workers()]  # PostgreSQL, and what else had started
    up.kill()
    os.kill(info.pid, signal.SIGKILL)
    up.wait()
    wait_until(lambda: not alive(info.pid), 10, "the killed stack process gone")
    # What the killed stack leaves running: its PostgreSQL (an idle Spark worker may notice and exit).
    assert alive(left[0])

    # `local run` notices, cleans up after it, and runs in its own process; Ctrl-C stops that one.
    stderr = tmp_path / "stderr"
    with stderr.open("w") as sink:
        run = subprocess.Popen([*CLI, "local", "run", str(files["slow"]), "--state-dir", str(state_dir)],
                               stdout=subprocess.DEVNULL, stderr=sink, env=WIDE)
    wait_for_line(stderr, "is gone: cleaning up", run)
    wait_until(lambda: not any(alive(pid) for pid in left), 60, "the killed stack's processes gone")
    assert not background.stack_file(state_dir).exists()
    wait_for_line(stderr, "Run ETL job", run)
    time.sleep(2)  # the job running in its Spark worker
    started = [*descendants(run.pid), postmaster_pid(state_dir)]
    assert len(started) >= 3, started  # its PostgreSQL, a Spark worker and its JVM
    run.send_signal(signal.SIGINT)
    assert run.wait(120) == 130, stderr.read_text()[-3000:]
    # Stopped before the command exits, not when the job would have ended (or noticed it was orphaned).
    assert [pid for pid in started if alive(pid)] == []
