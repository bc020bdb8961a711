"""Warm Glue workers (airline_local.glue.spark_worker processes) for the local job runner.

A pool per registered job keeps up to ``size`` workers whose SparkSession is already up; a run
takes an idle one (or waits for one, when all are busy) and hands it back afterwards. A worker is retired after ``max_runs`` runs, or when it died or lost its
SparkContext, and replaced in the background, so that memory held by a long-lived JVM stays
bounded and a broken worker never serves a second run.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOG = logging.getLogger(__name__)


class WarmWorker:
    """One `python -m airline_local.glue.spark_worker` process in its own process group."""

    def __init__(self, python: Path, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.log_path = log_path
        cwd.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(python), "-m", "airline_local.glue.spark_worker"], cwd=cwd, env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, bufsize=0,
                start_new_session=True,  # own group: its JVM goes with it when it is killed
            )
        self.runs = 0
        self.healthy = True
        self._ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, request: dict[str, Any], timeout: float) -> int | None:
        """Run one script; its exit code (negative: killed by that signal), None on timeout
        (the worker is then killed)."""
        deadline = time.monotonic() + timeout
        try:
            # Sent before the worker is ready: one still warming up abandons its warm-up for it.
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            if not self._wait_ready(deadline):
                return self._exit_status()
            reply = self._reply(deadline)
        except TimeoutError:
            self.kill()
            return None
        except (BrokenPipeError, ConnectionResetError):
            return self._exit_status()
        if reply is None:
            return self._exit_status()
        self.runs += 1
        self.healthy = bool(reply.get("healthy", True))
        return int(reply["exit_code"])

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the worker's SparkSession is up (False: it died, or not within timeout)."""
        try:
            return self._wait_ready(time.monotonic() + timeout)
        except TimeoutError:
            return False

    def _wait_ready(self, deadline: float) -> bool:
        if not self._ready:
            self._ready = self._reply(deadline) is not None
        return self._ready

    def _reply(self, deadline: float) -> dict[str, Any] | None:
        """The next reply line; None at end of file (the worker is gone)."""
        assert self.process.stdout is not None
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.process.stdout], [], [], remaining)[0]:
                raise TimeoutError
            chunk = self.process.stdout.read(4096)  # unbuffered pipe: what is there, b"" at EOF
            if not chunk:
                return None
            line += chunk
        return json.loads(line)

    def _exit_status(self) -> int:
        returncode = self.process.wait()
        return returncode if returncode != 0 else 1  # it ended without replying: a failure

    def stop(self, grace_seconds: float = 15.0) -> None:
        """End of input: the worker stops its SparkSession and exits; killed if it does not."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            self.kill()
        self._end_group()
        if self.process.stdout is not None:
            self.process.stdout.close()

    def _end_group(self, grace_seconds: float = 5.0) -> None:
        """The worker reaps its JVM before it exits (spark_worker._end_jvm); what is left of the
        group (a JVM that did not exit) gets until ``grace_seconds`` to, then SIGKILL."""
        deadline = time.monotonic() + grace_seconds
        while group_running(self.process.pid):
            if time.monotonic() >= deadline:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                return
            time.sleep(0.1)

    def kill(self) -> None:
        kill_process_group(self.process)
        self._end_group(grace_seconds=0)


def group_running(pgid: int) -> bool:
    """Whether a process of the group is still running. Zombies do not count: an orphan's
    (the spark-submit shell's) waits for init, which in some containers reaps only every
    couple of seconds, and a zombie holds nothing."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if not Path("/proc").is_dir():  # no procfs (macOS): the group's zombies count
        return True
    return any(state != "Z" for state in group_states(pgid).values())


def group_states(pgid: int) -> dict[int, str]:
    """The processes of a process group and their states ("R", "S", "Z", ...), from /proc."""
    states = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        state, _parent, group = text[text.rindex(")") + 2:].split()[:3]
        if int(group) == pgid:
            states[int(stat.parent.name)] = state
    return states


def kill_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process's group (it leads its own session), SIGKILL if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


class WorkerPool:
    """The warm workers of one job: at most ``size`` at once, busy or idle. A run that finds
    them all busy waits for one (a local machine gains nothing from more JVMs than cores)."""

    def __init__(self, start_worker: Callable[[], WarmWorker], size: int, max_runs: int) -> None:
        if size < 1:
            raise ValueError(f"a worker pool needs a size of at least 1, got {size}")
        self._start_worker = start_worker
        self.size = size
        self.max_runs = max_runs
        self._idle: list[WarmWorker] = []
        self._busy = 0
        self._in_use: set[WarmWorker] = set()
        self._retiring: list[threading.Thread] = []
        self._changed = threading.Condition()
        self._closed = False

    def prewarm(self) -> None:
        """Start workers up to ``size`` (their JVMs come up in the background)."""
        with self._changed:
            while not self._closed and len(self._idle) + self._busy < self.size:
                self._idle.append(self._start_worker())
            self._changed.notify_all()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the pool is settled: retired workers gone, idle ones ready to run
        (False: not within timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            idle, retiring = list(self._idle), list(self._retiring)
        for thread in retiring:
            thread.join(max(0.0, deadline - time.monotonic()))
        return (not any(thread.is_alive() for thread in retiring)
                and all(worker.wait_ready(max(0.0, deadline - time.monotonic())) for worker in idle))

    def acquire(self, timeout: float) -> WarmWorker:
        """The last idle worker released (its JVM has compiled the job's code), else a new one
        if the pool has room, else the next one released. TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError("the worker pool is closed")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        self._busy += 1
                        self._in_use.add(worker)
                        return worker
                    self._retire(worker)
                if self._busy < self.size:
                    self._busy += 1
                    worker = self._start_worker()
                    self._in_use.add(worker)
                    return worker
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self._changed.wait(remaining)

    def release(self, worker: WarmWorker) -> None:
        with self._changed:
            self._busy -= 1
            self._in_use.discard(worker)
            keep = (not self._closed and worker.alive() and worker.healthy
                    and worker.runs < self.max_runs)
            if keep:
                self._idle.append(worker)
            else:
                self._retire(worker)
            self._changed.notify_all()
        if not keep:
            self.prewarm()  # its replacement

    def _retire(self, worker: WarmWorker) -> None:
        """Stop a worker without making the caller wait for its SparkSession to end (call
        with the lock held)."""
        self._retiring = [thread for thread in self._retiring if thread.is_alive()]
        thread = threading.Thread(target=worker.stop, name=f"stop-worker-{worker.pid}", daemon=True)
        thread.start()
        self._retiring.append(thread)

    def close(self) -> None:
        """Stop every idle worker and wait for them; kill the busy ones: the pipeline stops (its
        run ends as failed), and a worker must not outlive the process that started it."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._in_use)
            retiring = list(self._retiring)
            self._changed.notify_all()
        for worker in busy:
            worker.kill()
        for worker in idle:
            worker.stop()
        for thread in retiring:
            thread.join()
