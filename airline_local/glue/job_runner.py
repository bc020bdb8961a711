"""A Glue job run, locally: the unmodified job script run by this venv's Python and local Spark.

What Glue does and how it is reproduced here:
- the script runs with Glue-style arguments: `--JOB_NAME <name> --JOB_RUN_ID <id>` followed by the
  job's default arguments overridden by the run's arguments;
- `--extra-files` are copied into the script's working directory, `--extra-py-files` are importable;
- the script talks to AWS through boto3, which `AWS_ENDPOINT_URL` points at the emulator;
- the run's state comes from the process: exit 0 -> SUCCEEDED, otherwise FAILED with the last
  exception line of stderr as ErrorMessage (what Glue reports for an uncaught Python exception),
  a run that outlives its timeout -> TIMEOUT.

The one real difference: local Spark has no S3 connector (no hadoop-aws jar offline), so every
argument value `s3://bucket/key` is rewritten to `file://<run dir>/s3/bucket/key`. The object an
argument points at is downloaded there before the run; whatever the job wrote under that mirror is
uploaded back to the emulated S3 under the same key after the run (never into the protected
prefixes such as raw/, where an upload would start the pipeline again). In uploaded text files
(.json, .jsonl, .txt, .csv) the mirror's file:// URIs are turned back into s3:// URIs, so a run
summary names `s3://bucket/raw/...` as it does on AWS; binary files (Parquet) are uploaded as written.

Identity: on AWS the job's S3 access and the script's own AWS calls run as the job's role (the
IAM check, docs/iam-check.md). ``run(..., credentials=...)`` takes that role's credentials: the
mirror's downloads and uploads are signed with them, a fresh process gets them in its environment,
a warm worker gets them in the run request and sets them for that run only. Without credentials
(the IAM check off) every call signs with the emulator's dummy key, as before.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import boto3
from botocore.config import Config

from airline_local.glue.java import JavaNotFoundError, check_java
from airline_local.glue.java import java_home as find_java_home
from airline_local.glue.spark_conf import local_spark_conf
from airline_local.glue.spark_worker import WARM_UP_DIR_VARIABLE
from airline_local.glue.worker_pool import WarmWorker, WorkerPool, kill_process_group

LOG = logging.getLogger(__name__)

TEXT_OUTPUT_SUFFIXES = {".json", ".jsonl", ".ndjson", ".txt", ".csv"}
SKIPPED_OUTPUT_NAMES = re.compile(r"(^_SUCCESS$|\.crc$|^_temporary$|^\.)")
S3_URI = re.compile(r"^s3a?://([^/]+)(?:/(.*))?$", re.DOTALL)
# The last line of a Python traceback: `package.module.SomeError: message` (or just the name).
# The emulator's dummy key (any key passes while the IAM check is off).
DUMMY_CREDENTIALS: dict[str, str | None] = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# A warm worker's own environment: a key the emulator never issued, so a call made outside a run's
# credentials fails (the IAM check refuses it) instead of running as whoever ran last.
WORKER_START_CREDENTIALS: dict[str, str | None] = {"AWS_ACCESS_KEY_ID": "LOCALWORKERNOKEY0000",
                            "AWS_SECRET_ACCESS_KEY": "a-warm-worker-has-no-credentials-of-its-own"}
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure)?(?::\s.*)?$")


@dataclass(frozen=True)
class JobSpec:
    """What the emulator needs to run a Glue job: the deployed script and its Glue settings."""

    script: Path
    extra_py_files: list[Path] = field(default_factory=list)
    extra_files: list[Path] = field(default_factory=list)
    default_arguments: dict[str, str] = field(default_factory=dict)
    spark_conf: dict[str, str] = field(default_factory=dict)
    driver_memory: str = "1g"
    needs_java: bool = True  # False only for plain-Python test scripts


@dataclass(frozen=True)
class JobOutcome:
    state: str  # SUCCEEDED | FAILED | TIMEOUT (Glue's JobRunState words)
    error_message: str | None
    stdout_path: Path
    stderr_path: Path


class JobRunner:
    """Runs registered Glue jobs in subprocesses; one run directory (and its logs) per run."""

    def __init__(
        self,
        work_dir: Path,
        endpoint_url: str,
        region: str,
        *,
        python: Path | None = None,
        default_timeout_seconds: float = 1800.0,
        protected_prefixes: tuple[str, ...] = ("raw/",),
        warm_workers: int = 0,
        worker_max_runs: int = 50,
        warm_up_workers: bool = True,
        small_inputs: bool = False,
    ) -> None:
        """``warm_workers``: warm Spark workers per job (airline_local.glue.worker_pool), which is
        also how many of its runs execute at once (more wait for a free worker); 0 runs every
        job in a fresh process, as Glue does: no limit, each run pays the JVM's start-up.
        ``warm_up_workers``: run the worker's warm-up job before its first run (a few seconds
        of CPU that halve the first run's Spark time). ``small_inputs``: the runs will read small
        files only: their JVMs run the C1 JIT only (spark_conf.SMALL_INPUTS_JAVA_OPTIONS)."""
        self.work_dir = Path(work_dir)
        self.endpoint_url = endpoint_url
        self.region = region
        self.python = Path(python or sys.executable)
        self.default_timeout_seconds = default_timeout_seconds
        self.protected_prefixes = protected_prefixes
        self.warm_workers = warm_workers
        self.worker_max_runs = worker_max_runs
        self.warm_up_workers = warm_up_workers
        self.small_inputs = small_inputs
        self._jobs: dict[str, JobSpec] = {}
        self._pools: dict[str, WorkerPool] = {}
        # Running runs by mirror directory: (S3 client as the job's role, files already in S3).
        self._running: dict[Path, tuple[Any, set[Path]]] = {}
        self._lock = threading.Lock()
        # One boto3 session makes every run's S3 client: it parses S3's service model once, not
        # per run (a tenth of the emulator's CPU per run). Sessions are not thread-safe: one at a time.
        self._boto_session = boto3.session.Session()
        self._boto_session_lock = threading.Lock()

    @property
    def mirror_uri_pattern(self) -> tuple[str, str]:
        """(regex, replacement) turning a file:// URI into any run's S3 mirror back into s3://."""
        root = re.escape(str(self.work_dir.resolve()))
        return rf"^file:(?://)?{root}/[^/]+/[^/]+/s3/", "s3://"

    def register_job(self, name: str, spec: JobSpec) -> None:
        if not Path(spec.script).is_file():
            raise FileNotFoundError(f"Glue job {name}: script {spec.script} does not exist")
        with self._lock:
            unchanged = self._jobs.get(name) == spec and name in self._pools
            self._jobs[name] = spec
        if not unchanged:  # the same job again (the deploy after an early start): its warm workers stay
            self._replace_pool(name, spec)

    def use_warm_workers(self, count: int) -> None:
        """Change the number of warm workers per job (0: a fresh process per run) from now on."""
        self.warm_workers = count
        with self._lock:
            jobs = dict(self._jobs)
        for name, spec in jobs.items():
            self._replace_pool(name, spec)

    def _replace_pool(self, name: str, spec: JobSpec) -> None:
        pool = None
        if self.warm_workers > 0 and spec.needs_java:
            pool = WorkerPool(lambda: self._start_worker(name, spec), self.warm_workers,
                              self.worker_max_runs)
        with self._lock:
            previous = self._pools.pop(name, None)
            if pool is not None:
                self._pools[name] = pool
        if previous is not None:
            previous.close()
        if pool is not None:
            pool.prewarm()

    def wait_for_workers(self, timeout: float = 120.0) -> bool:
        """Wait until every idle warm worker is ready (False: not all within ``timeout``)."""
        with self._lock:
            pools = list(self._pools.values())
        deadline = time.monotonic() + timeout
        return all(pool.wait_ready(max(0.0, deadline - time.monotonic())) for pool in pools)

    def close(self) -> None:
        """Stop the warm workers (a run in progress is killed with its worker)."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def _start_worker(self, job_name: str, spec: JobSpec) -> WarmWorker:
        worker_dir = self.work_dir / "_workers" / job_name / f"{time.time_ns():x}"
        worker_dir.mkdir(parents=True, exist_ok=True)
        env = self._environment(spec, [], worker_dir / "spark-tmp", WORKER_START_CREDENTIALS)
        if self.warm_up_workers:
            env[WARM_UP_DIR_VARIABLE] = str(worker_dir / "warm-up")
        return WarmWorker(self.python, env, worker_dir, worker_dir / "worker.log")

    def registered_jobs(self) -> list[str]:
        with self._lock:
            return sorted(self._jobs)

    def run(
        self,
        job_name: str,
        run_id: str,
        arguments: dict[str, str],
        timeout_seconds: float | None = None,
        credentials: Any = None,
    ) -> JobOutcome:
        """Run the job to completion (blocking) and return its Glue outcome. ``credentials``
        (access_key_id, secret_access_key, session_token: the job role's session) sign the
        mirror's S3 calls and the script's; None: the emulator's dummy key."""
        run_dir = self.work_dir / job_name / _run_dir_name(run_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        stdout_path, stderr_path = run_dir / "stdout.log", run_dir / "stderr.log"

        def failed(message: str) -> JobOutcome:
            with stderr_path.open("a", encoding="utf-8") as stderr:
                stderr.write(f"[local job runner] {message}\n")
            stdout_path.touch()
            return JobOutcome("FAILED", message, stdout_path, stderr_path)

        with self._lock:
            spec = self._jobs.get(job_name)
        if spec is None:
            return failed(f"no local script is registered for Glue job {job_name}")
        if spec.needs_java:
            try:
                check_java()
            except JavaNotFoundError as error:
                return failed(str(error))

        aws_env = credentials_environment(credentials)
        s3 = self._s3_client(aws_env)
        mirror = run_dir / "s3"
        try:
            working_dir = prepare_working_dir(run_dir, spec)
            merged = {**spec.default_arguments, **arguments}
            local_arguments, inputs = mirror_s3_arguments(merged, mirror, s3)
        except Exception as error:
            return failed(f"could not prepare the run: {type(error).__name__}: {error}")

        with self._lock:
            self._running[mirror.resolve()] = (s3, inputs)
        try:
            return self._run_script(job_name, run_id, spec, working_dir, local_arguments, timeout_seconds,
                                    run_dir, mirror, inputs, s3, aws_env, failed)
        finally:
            with self._lock:
                self._running.pop(mirror.resolve(), None)

    def stage_to_s3(self, uri: str) -> str | None:
        """A file:// URI into a running job's mirror: upload what the job wrote under it (as the
        job's role, once) and return its s3:// URI; None for any other URI. What a Spark write to
        S3 does during the run on AWS, so that a COPY of the job's staging reads it from S3."""
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            return None
        path = Path(unquote(parsed.path)).resolve()
        with self._lock:
            running = list(self._running.items())
        for mirror, (s3, done) in running:
            if path != mirror and mirror in path.parents:
                relative = path.relative_to(mirror)
                uploaded = upload_outputs(mirror, done, s3, self.protected_prefixes, under=path)
                done.update(mirror / u.removeprefix("s3://") for u in uploaded)
                suffix = "/" if uri.endswith("/") else ""
                bucket, key = relative.parts[0], "/".join(relative.parts[1:])
                return f"s3://{bucket}/{key}{suffix}" if key else f"s3://{bucket}/"
        return None

    def _run_script(self, job_name: str, run_id: str, spec: JobSpec, working_dir: Path,
                    local_arguments: dict[str, str], timeout_seconds: float | None, run_dir: Path,
                    mirror: Path, inputs: set[Path], s3: Any, aws_env: dict[str, str | None],
                    failed: Any) -> JobOutcome:
        stdout_path, stderr_path = run_dir / "stdout.log", run_dir / "stderr.log"
        script = working_dir / Path(spec.script).name
        arguments_list = ["--JOB_NAME", job_name, "--JOB_RUN_ID", run_id]
        for key, value in local_arguments.items():
            if key in ("--JOB_NAME", "--JOB_RUN_ID"):
                continue
            arguments_list += [key, value]
        timeout = timeout_seconds or self.default_timeout_seconds
        python_path = [str(working_dir), *_extra_python_path(run_dir, spec)]

        started = time.monotonic()
        with self._lock:
            pool = self._pools.get(job_name)
        if pool is not None:
            returncode = self._run_in_worker(pool, script, arguments_list, python_path, run_dir,
                                             timeout, aws_env)
        else:
            returncode = self._run_in_new_process(spec, script, arguments_list, python_path,
                                                  run_dir, timeout, aws_env)
        timed_out = returncode is None
        LOG.info("job %s run %s exited %s after %.1fs", job_name, run_id, returncode,
                 time.monotonic() - started)

        # The job writes its run summary on failure too: upload whatever it produced.
        try:
            upload_outputs(mirror, inputs, s3, self.protected_prefixes)
        except Exception as error:
            return failed(f"could not upload the job's output to S3: {type(error).__name__}: {error}")

        if timed_out:
            message = f"Job run timed out after {timeout:g} seconds"
            return JobOutcome("TIMEOUT", message, stdout_path, stderr_path)
        if returncode == 0:
            return JobOutcome("SUCCEEDED", None, stdout_path, stderr_path)
        stderr_text = stderr_path.read_text(encoding="utf-8", errors="replace")
        message = error_message_from_stderr(stderr_text, returncode)
        return JobOutcome("FAILED", unmirror_uris(message, mirror), stdout_path, stderr_path)

    def _run_in_new_process(self, spec: JobSpec, script: Path, arguments: list[str],
                            python_path: list[str], run_dir: Path, timeout: float,
                            aws_env: dict[str, str | None]) -> int | None:
        """`python script args...` in a fresh process (and JVM); exit code, None on timeout."""
        # python_path[0] is the script's directory, which `python script.py` puts first itself.
        env = self._environment(spec, python_path[1:], run_dir / "spark-tmp", aws_env)
        with (run_dir / "stdout.log").open("wb") as stdout, \
                (run_dir / "stderr.log").open("wb") as stderr:
            process = subprocess.Popen(
                [str(self.python), str(script), *arguments], cwd=script.parent, env=env,
                stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                start_new_session=True,  # own group: Spark's JVM dies with it
            )
            try:
                return process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_process_group(process)
                return None

    def _run_in_worker(self, pool: WorkerPool, script: Path, arguments: list[str],
                       python_path: list[str], run_dir: Path, timeout: float,
                       aws_env: dict[str, str | None]) -> int | None:
        """The script in a warm worker (airline_local.glue.spark_worker); exit code, None on timeout
        (the time spent waiting for a free worker counts)."""
        deadline = time.monotonic() + timeout
        stdout_path, stderr_path = run_dir / "stdout.log", run_dir / "stderr.log"
        stdout_path.write_bytes(b"")
        try:
            worker = pool.acquire(timeout)
        except TimeoutError:
            stderr_path.write_text("[local job runner] no warm worker became free in time\n",
                                   encoding="utf-8")
            return None
        stderr_path.write_text(f"[local job runner] warm worker {worker.pid} (run {worker.runs + 1});"
                               f" its JVM logs to {worker.log_path}\n", encoding="utf-8")
        try:
            return worker.run({
                "script": str(script), "args": arguments, "cwd": str(script.parent),
                "python_path": python_path, "stdout": str(stdout_path),
                "stderr": str(stderr_path), "run_dir": str(run_dir),
                # This run's identity, set for the run only (the worker's own key is invalid).
                "environment": aws_env,
            }, max(0.0, deadline - time.monotonic()))
        finally:
            pool.release(worker)

    def _s3_client(self, aws_env: dict[str, str | None]) -> Any:
        with self._boto_session_lock:
            return self._boto_session.client(
                "s3", endpoint_url=self.endpoint_url, region_name=self.region,
                aws_access_key_id=aws_env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=aws_env["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=aws_env.get("AWS_SESSION_TOKEN"),
                config=Config(retries={"max_attempts": 2}),
            )

    def _environment(self, spec: JobSpec, python_path: list[str], local_dir: Path,
                     aws_env: dict[str, str | None]) -> dict[str, str]:
        # Start from this process's environment minus any AWS settings: the job must reach the
        # emulator, never a real account.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.pop("MOTO_PORT", None)
        python_path = list(python_path)
        if env.get("PYTHONPATH"):
            python_path.append(env["PYTHONPATH"])
        conf = {**local_spark_conf(self.small_inputs), **spec.spark_conf,
                "spark.local.dir": str(local_dir)}
        submit_args = ["--master", "local[2]", "--driver-memory", spec.driver_memory]
        for key, value in conf.items():
            submit_args += ["--conf", f"{key}={value}"]
        submit_args.append("pyspark-shell")
        env.update(
            AWS_ENDPOINT_URL=self.endpoint_url,
            AWS_DEFAULT_REGION=self.region,
            AWS_REGION=self.region,
            AWS_EC2_METADATA_DISABLED="true",
            PYTHONPATH=os.pathsep.join(python_path),
            PYTHONUNBUFFERED="1",
            PYSPARK_PYTHON=str(self.python),
            PYSPARK_DRIVER_PYTHON=str(self.python),
            PYSPARK_SUBMIT_ARGS=" ".join(shlex.quote(a) for a in submit_args),
            SPARK_LOCAL_IP="127.0.0.1",
        )
        env.update({k: v for k, v in aws_env.items() if v is not None})
        java_home = find_java_home()
        if java_home:
            env["JAVA_HOME"] = java_home
        return env


def credentials_environment(credentials: Any) -> dict[str, str | None]:
    """The AWS_* variables of a run's credentials (the dummy key when None). A session without a
    token maps AWS_SESSION_TOKEN to None: unset for the run."""
    if credentials is None:
        return dict(DUMMY_CREDENTIALS)
    return {"AWS_ACCESS_KEY_ID": credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
            "AWS_SESSION_TOKEN": credentials.session_token}


def _extra_python_path(run_dir: Path, spec: JobSpec) -> list[str]:
    """Where a run's --extra-py-files are importable from: the directory, and each archive."""
    py_dir = run_dir / "extra-py"
    return [str(py_dir)] + [str(py_dir / Path(p).name) for p in spec.extra_py_files
                            if str(p).endswith((".zip", ".whl", ".egg"))]


def prepare_working_dir(run_dir: Path, spec: JobSpec) -> Path:
    """Glue's layout: script and --extra-files side by side in the working directory."""
    working_dir = run_dir / "work"
    working_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(spec.script, working_dir / Path(spec.script).name)
    for extra in spec.extra_files:
        shutil.copy2(extra, working_dir / Path(extra).name)
    py_dir = run_dir / "extra-py"
    py_dir.mkdir(exist_ok=True)
    for extra in spec.extra_py_files:
        extra = Path(extra)
        if extra.is_dir():  # a package directory
            shutil.copytree(extra, py_dir / extra.name, dirs_exist_ok=True)
        else:
            shutil.copy2(extra, py_dir / extra.name)
    return working_dir


def mirror_s3_arguments(
    arguments: dict[str, str], mirror: Path, s3: Any
) -> tuple[dict[str, str], set[Path]]:
    """Rewrite s3:// values to file:// URIs into the mirror; download the objects they name.

    Returns the rewritten arguments and the set of downloaded files (inputs, never uploaded back).
    """
    rewritten: dict[str, str] = {}
    inputs: set[Path] = set()
    for name, value in arguments.items():
        match = S3_URI.match(value or "")
        if not match:
            rewritten[name] = value
            continue
        bucket, key = match.group(1), match.group(2) or ""
        local = mirror / bucket / key
        (mirror / bucket).mkdir(parents=True, exist_ok=True)
        if not _maps_to_itself(key):
            # An empty, '.' or '..' segment: the file would land elsewhere (even outside the
            # mirror). Download nothing; hand the key over as written, for the job to refuse.
            rewritten[name] = f"file://{(mirror / bucket).resolve()}/{key}"
            continue
        if key and not key.endswith("/") and _object_exists(s3, bucket, key):
            local.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(local))
            inputs.add(local.resolve())
        # Not Path.as_uri(): Hadoop reads `file://` paths literally, without percent-decoding,
        # so a key with a space, a quote or `%20` must be passed as it is.
        rewritten[name] = f"file://{local.resolve()}" + ("/" if key.endswith("/") else "")
    return rewritten, inputs


def upload_outputs(
    mirror: Path, inputs: set[Path], s3: Any, protected_prefixes: tuple[str, ...], under: Path | None = None
) -> list[str]:
    """Upload what the job wrote under the mirror (only under ``under``, when given); returns the
    s3:// URIs uploaded. Files in ``inputs`` (downloaded, or uploaded already) are skipped."""
    uploaded: list[str] = []
    if not mirror.is_dir():
        return uploaded
    for bucket_dir in sorted(p for p in mirror.iterdir() if p.is_dir()):
        root = bucket_dir
        if under is not None:
            if under != bucket_dir and bucket_dir not in under.parents:
                continue
            root = under
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.resolve() in inputs:
                continue
            relative = path.relative_to(bucket_dir)
            if any(SKIPPED_OUTPUT_NAMES.search(part) for part in relative.parts):
                continue
            key = relative.as_posix()
            if key.startswith(protected_prefixes):
                LOG.warning("not uploading s3://%s/%s: protected prefix", bucket_dir.name, key)
                continue
            if path.suffix.lower() in TEXT_OUTPUT_SUFFIXES:
                # JSON written by the job quotes its (local) arguments: give back the S3 URIs.
                text = unmirror_uris(path.read_text(encoding="utf-8", errors="surrogateescape"), mirror)
                s3.put_object(Bucket=bucket_dir.name, Key=key, Body=text.encode("utf-8", errors="surrogateescape"))
            else:
                s3.upload_file(str(path), bucket_dir.name, key)
            uploaded.append(f"s3://{bucket_dir.name}/{key}")
    return uploaded


def error_message_from_stderr(stderr: str, returncode: int) -> str:
    """Glue's ErrorMessage for a failed script: the exception line, else the last line, else the code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"The job's process was killed by {name}"
    lines = [line.rstrip() for line in stderr.splitlines()]
    last_traceback = max((i for i, line in enumerate(lines) if line.startswith("Traceback (")), default=None)
    if last_traceback is not None:
        for line in lines[last_traceback + 1:]:
            if line and not line[0].isspace() and EXCEPTION_LINE.match(line):
                return line
    non_empty = [line for line in lines if line.strip()]
    if non_empty:
        return non_empty[-1].strip()
    return f"exit code {returncode}"


def unmirror_uris(text: str, mirror: Path) -> str:
    """file://<run dir>/s3/bucket/key -> s3://bucket/key, so messages read as they would on AWS."""
    resolved = str(mirror.resolve())
    for prefix in (Path(resolved).as_uri() + "/", "file:" + resolved + "/", resolved + "/"):
        text = text.replace(prefix, "s3://")
    return text


def _maps_to_itself(key: str) -> bool:
    """Whether the key is a plain relative path (no empty, '.' or '..' segment but a trailing
    slash), so that mirror/bucket/key names exactly that object, inside the mirror."""
    segments = key.split("/")
    if segments and segments[-1] == "":
        segments = segments[:-1]
    return not any(segment in ("", ".", "..") for segment in segments)


def _object_exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except s3.exceptions.ClientError as error:
        # Not there (or a bucket that was never created locally, e.g. Glue's asset buckets), or
        # not readable by the job's role (an output URI need not be): the argument is still
        # rewritten, nothing is downloaded; a script that reads it fails on the missing file.
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound", "NoSuchBucket") or status in (403, 404):
            return False
        raise


def _run_dir_name(run_id: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{re.sub(r'[^A-Za-z0-9_-]', '_', run_id)[:40]}"
