"""`airline-ingest local up` / `down`: the local stack kept running in the background, one per
state directory, so that a re-run pays for the upload and the job only.

The stack's process holds the LocalPipeline: the emulator is moto running inside that process,
and so are what a run is followed with besides its HTTP API (the IAM check's denials that explain
a run that never started, the mailbox, the Glue job runner). So `local run` and `local backfill`
do not re-implement the watching against the emulator's ports: they ask the stack's process, over
a small control API on 127.0.0.1 (POST /run, POST /backfill; progress and the result as JSON
lines), to run the very LocalPipeline code they run in-process without `up`. `local sql` and
`local status` reach PostgreSQL and the emulator on their own ports, as they always did.

`<state dir>/stack.json` (the endpoint file) names the process (PID and start time, so a reused
PID is never taken for it), the control API, the emulator, PostgreSQL, and a token every process
the stack starts inherits in its environment: a stack whose process was killed (the file
stays, the PID is gone) is cleaned up by stopping its PostgreSQL and killing every process that
carries its token.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from airline_local.pipeline import RAW_PREFIX, LocalPipeline, PipelineError

STACK_FILE = "stack.json"
STACK_LOG = "stack.log"
TOKEN_VARIABLE = "AIRLINE_LOCAL_STACK_TOKEN"
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 600.0
STOP_TIMEOUT_SECONDS = 60.0
KEEPALIVE_SECONDS = 1.0  # a line at least this often: a client gone (Ctrl-C) is noticed by the write


@dataclass(frozen=True)
class StackInfo:
    """What `<state dir>/stack.json` says about a background stack."""

    pid: int
    start_time: int  # the process's start time (/proc/<pid>/stat), against PID reuse
    token: str
    log: str
    ready: bool = False  # written once at the start (a crash then is cleaned up too), again when ready
    control_url: str = ""
    aws_endpoint: str = ""
    warehouse_port: int = 0
    postgres_pid: int | None = None
    postgres_start_time: int | None = None

    @property
    def alive(self) -> bool:
        return process_start_time(self.pid) == self.start_time


def process_start_time(pid: int) -> int | None:
    """The start time of a live process (clock ticks since boot), None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has ended
        return None
    return int(fields[19])


def stack_file(state_dir: Path) -> Path:
    return Path(state_dir) / STACK_FILE


def read_stack(state_dir: Path) -> StackInfo | None:
    try:
        return StackInfo(**json.loads(stack_file(state_dir).read_text(encoding="utf-8")))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def running_stack(state_dir: Path) -> StackInfo | None:
    """The stack running on this state directory, after cleaning up one left behind by a killed process."""
    clean_stale(state_dir)
    info = read_stack(state_dir)
    return info if info is not None and info.alive else None


def clean_stale(state_dir: Path) -> list[str]:
    """If the endpoint file names a process that is gone, stop what that stack left running
    (PostgreSQL, Spark workers and their JVMs) and remove the file. Returns what was done."""
    info = read_stack(state_dir)
    path = stack_file(state_dir)
    if info is None:
        if path.exists() and time.time() - path.stat().st_mtime > 5:  # an unreadable, old file
            path.unlink(missing_ok=True)
        return []
    if info.alive:
        return []
    done = [f"the stack process {info.pid} of {state_dir} is gone: cleaning up after it"]
    done += _end_leftovers(info, Path(state_dir))
    path.unlink(missing_ok=True)
    (Path(state_dir) / "emulator" / "endpoint").unlink(missing_ok=True)
    return done


def _end_leftovers(info: StackInfo, state_dir: Path) -> list[str]:
    done = []
    carrying = processes_with_token(info.token)
    postgres = info.postgres_pid if info.postgres_pid and process_start_time(info.postgres_pid) == info.postgres_start_time \
        else _postmaster_of(Path(state_dir) / "postgres", carrying)
    if postgres:
        os.kill(postgres, signal.SIGINT)  # PostgreSQL's fast shutdown: the next start needs no recovery
        if _wait_gone(postgres, 30):
            done.append(f"stopped PostgreSQL (PID {postgres})")
        else:
            os.kill(postgres, signal.SIGKILL)
            done.append(f"killed PostgreSQL (PID {postgres}): it did not stop in 30 s")
    left = processes_with_token(info.token)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in left:
        _wait_gone(pid, 10)
    if left:
        done.append(f"killed {len(left)} process(es) the stack had started (PIDs {', '.join(map(str, left))})")
    return done


def _postmaster_of(data_dir: Path, candidates: list[int]) -> int | None:
    """The PostgreSQL server of a data directory, if it is one of the candidates (the stack's)."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return pid if pid in candidates else None


def processes_with_token(token: str) -> list[int]:
    """Every live process whose environment carries this stack's token (the stack process and
    everything it started: Spark workers, their JVMs)."""
    marker = f"{TOKEN_VARIABLE}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return sorted(pid for pid in found if process_start_time(pid) is not None)


def _wait_gone(pid: int, seconds: float, start_time: int | None = None) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = process_start_time(pid)
        if now is None or (start_time is not None and now != start_time):
            return True
        time.sleep(0.1)
    return False


# -- up / down (the client side) -------------------------------------------------------------

def start(state_dir: Path, *, warm_workers: int, iam_check: bool = True, aws_port: int | None = None,
          warehouse_port: int | None = None, on_wait: Callable[[], None] | None = None) -> StackInfo:
    """Start the stack's process and return once it serves (its endpoint file is written)."""
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / STACK_LOG
    command = [sys.executable, "-m", "airline_local.background", "--state-dir", str(state_dir),
               "--warm-workers", str(warm_workers)]
    command += [] if iam_check else ["--no-iam-check"]
    command += ["--aws-port", str(aws_port)] if aws_port else []
    command += ["--warehouse-port", str(warehouse_port)] if warehouse_port else []
    env = {**os.environ, TOKEN_VARIABLE: secrets.token_hex(8)}
    with open(log, "ab") as output:
        # Its own session: a Ctrl-C in the terminal that ran `up` is not the stack's.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            info = read_stack(state_dir)
            if info is not None and info.pid == process.pid and info.ready:
                return info
            if process.poll() is not None:
                raise PipelineError(f"the local stack did not start (exit {process.returncode}); "
                                    f"{_log_tail(log)}")
            if on_wait:
                on_wait()
            time.sleep(0.2)
        raise PipelineError(f"the local stack was not up after {START_TIMEOUT_SECONDS:.0f} s; {_log_tail(log)}")
    except BaseException:  # Ctrl-C, a failed start: nothing stays behind
        _end(process.pid, process_start_time(process.pid), env[TOKEN_VARIABLE], state_dir)
        process.wait()
        raise


def stop(state_dir: Path) -> StackInfo | None:
    """Stop the stack of this state directory (None: none was running)."""
    info = running_stack(state_dir)
    if info is None:
        return None
    _end(info.pid, info.start_time, info.token, Path(state_dir))
    return info


def _end(pid: int, start_time: int | None, token: str, state_dir: Path) -> None:
    """SIGTERM (the stack stops its pipeline), then whatever is left is cleaned up as stale."""
    if start_time is not None:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if not _wait_gone(pid, STOP_TIMEOUT_SECONDS, start_time):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10, start_time)
    info = read_stack(state_dir)
    if info is not None and info.pid == pid:
        clean_stale(state_dir)
    else:
        for left in processes_with_token(token):
            os.kill(left, signal.SIGKILL)


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"no log at {log}"
    return f"last lines of {log}:\n" + "\n".join(tail)


def request(info: StackInfo, path: str, body: dict[str, Any],
            on_event: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Ask the running stack to run something; progress events go to on_event; returns the
    final event ({"event": "result", ...}) or raises PipelineError with the stack's error."""
    host, port = info.control_url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port))
    try:
        connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        for line in response:
            event = json.loads(line)
            if event["event"] == "result":
                return event
            if event["event"] == "error":
                raise PipelineError(event["message"])
            on_event(event)
    except (ConnectionError, http.client.HTTPException) as error:
        raise PipelineError(f"lost the local stack at {info.control_url} ({error}); see {info.log}") from None
    finally:
        connection.close()
    raise PipelineError(f"the local stack stopped during the run; see {info.log}")


# -- the stack's process ---------------------------------------------------------------------

class _Subscribers:
    """The event queues of the requests in progress (an email goes to each)."""

    def __init__(self) -> None:
        self._queues: set[queue.Queue] = set()
        self._lock = threading.Lock()

    def add(self, events: queue.Queue) -> None:
        with self._lock:
            self._queues.add(events)

    def remove(self, events: queue.Queue) -> None:
        with self._lock:
            self._queues.discard(events)

    def publish(self, event: dict[str, Any]) -> None:
        with self._lock:
            for events in self._queues:
                events.put(event)


def serve(state_dir: Path, *, warm_workers: int, iam_check: bool, aws_port: int | None,
          warehouse_port: int | None) -> None:
    stopping, ready = threading.Event(), threading.Event()

    def on_signal(*_: object) -> None:
        if not stopping.is_set() and not ready.is_set():  # still starting: abandon the start
            stopping.set()
            raise KeyboardInterrupt
        stopping.set()

    subscribers = _Subscribers()
    pipeline = LocalPipeline(state_dir, warm_workers=warm_workers, iam_check=iam_check, aws_port=aws_port,
                             warehouse_port=warehouse_port,
                             on_email=lambda path: subscribers.publish({"event": "email", "path": str(path)}))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    _write_stack(state_dir, StackInfo(pid=os.getpid(), start_time=process_start_time(os.getpid()) or 0,
                                      token=os.environ[TOKEN_VARIABLE], log=str(Path(state_dir).resolve() / STACK_LOG)))
    try:
        try:
            pipeline.start()
            # Ready means warm: the first run on the stack does not wait for a JVM's start and warm-up.
            pipeline.emulator.job_runner.wait_for_workers(START_TIMEOUT_SECONDS)
        except KeyboardInterrupt:
            return
        handler = type("Handler", (_ControlHandler,), {"pipeline": pipeline, "subscribers": subscribers})
        server = ThreadingHTTPServer((HOST, 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        postgres_pid = _postmaster_pid(pipeline)
        info = replace(
            read_stack(state_dir), ready=True, control_url=f"http://{HOST}:{server.server_address[1]}",
            aws_endpoint=pipeline.emulator.endpoint_url, warehouse_port=pipeline.postgres.port,
            postgres_pid=postgres_pid, postgres_start_time=process_start_time(postgres_pid) if postgres_pid else None)
        _write_stack(state_dir, info)
        ready.set()
        print(f"local stack up: control {info.control_url}, AWS emulator {info.aws_endpoint}, "
              f"PostgreSQL port {info.warehouse_port}", flush=True)
        while not stopping.wait(0.5):
            pass
        server.shutdown()
    finally:
        pipeline.stop()
        info_now = read_stack(state_dir)
        if info_now is not None and info_now.pid == os.getpid():
            stack_file(state_dir).unlink(missing_ok=True)
        print("local stack stopped", flush=True)


def _write_stack(state_dir: Path, info: StackInfo) -> None:
    written = stack_file(state_dir).with_suffix(".tmp")
    written.write_text(json.dumps(asdict(info), indent=1), encoding="utf-8")
    written.replace(stack_file(state_dir))  # whole or absent


def _postmaster_pid(pipeline: LocalPipeline) -> int | None:
    try:
        return int((pipeline.postgres.data_dir / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, IndexError, ValueError, AttributeError):
        return None


class _ControlHandler(BaseHTTPRequestHandler):
    """POST /run {"files", "concurrent", "timeout"} and POST /backfill {"files", "timeout"}."""

    pipeline: LocalPipeline
    subscribers: _Subscribers
    deploy_lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        files = [Path(f) for f in body.get("files", [])]
        events: queue.Queue = queue.Queue()
        cancelled = threading.Event()
        work = {"/run": self._run, "/backfill": self._backfill}.get(self.path)
        if work is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        self.subscribers.add(events)

        def job() -> None:
            try:
                with self.deploy_lock:  # the loop: a changed Glue script is deployed before the run
                    updated = self.pipeline.update_job_files()
                if updated:
                    events.put({"event": "note", "message": f"deployed the changed Glue job files of {', '.join(updated)}"})
                events.put(work(files, body, events, cancelled))
            except Exception as error:  # the client prints it, as the in-process command would
                events.put({"event": "error", "message": str(error) or type(error).__name__})
            finally:
                events.put(None)

        threading.Thread(target=job, daemon=True).start()
        try:
            while True:
                try:
                    event = events.get(timeout=KEEPALIVE_SECONDS)
                except queue.Empty:
                    event = {"event": "alive"}
                if event is None:
                    break
                self.wfile.write(json.dumps(event, default=str).encode() + b"\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client is gone (Ctrl-C): what it started stops too.
            cancelled.set()
            self._stop_executions({RAW_PREFIX + f.name for f in files})
        finally:
            self.subscribers.remove(events)

    def _run(self, files: list[Path], body: dict[str, Any], events: queue.Queue,
             cancelled: threading.Event) -> dict[str, Any]:
        def on_state(upload: Any, _event: str, state: str) -> None:
            events.put({"event": "state", "key": upload.key, "file": str(upload.file), "state": state})

        options = {"timeout": float(body.get("timeout", 600)), "on_state": on_state}
        self.pipeline.check_rule_matches(files)
        if body.get("concurrent"):
            results = self.pipeline.run(files, concurrent=True, **options)
        else:
            results = []
            for file in files:
                if cancelled.is_set():
                    break
                results += self.pipeline.run([file], **options)
        return {"event": "result", "runs": [asdict(r) for r in results]}

    def _backfill(self, files: list[Path], body: dict[str, Any], _events: queue.Queue,
                  _cancelled: threading.Event) -> dict[str, Any]:
        from airline_local.backfill import run_backfill

        result = run_backfill(self.pipeline, files, timeout=float(body.get("timeout", 3600)))
        return {"event": "result", "backfill": result.as_json()}

    def _stop_executions(self, keys: set[str]) -> None:
        sfn = self.pipeline.emulator.client("stepfunctions")
        machine = self.pipeline.stack.state_machine_arn
        for execution in sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]:
            arn = execution["executionArn"]
            event = json.loads(sfn.describe_execution(executionArn=arn).get("input") or "{}")
            if event.get("detail", {}).get("object", {}).get("key") in keys:
                sfn.stop_execution(executionArn=arn, error="Interrupted", cause="the `local run` that started it was stopped")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the log is for the stack
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description="The local stack's background process (airline-ingest local up).")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--warm-workers", type=int, required=True)
    parser.add_argument("--no-iam-check", action="store_true")
    parser.add_argument("--aws-port", type=int)
    parser.add_argument("--warehouse-port", type=int)
    options = parser.parse_args()
    serve(options.state_dir, warm_workers=options.warm_workers, iam_check=not options.no_iam_check,
          aws_port=options.aws_port, warehouse_port=options.warehouse_port)


if __name__ == "__main__":
    main()
