"""Build local Spark's class archive (airline_local.glue.spark_conf): `make install` runs
``python -m airline_local.glue.class_archive``, which does nothing when the archive exists.

A training run makes it: a fresh JVM started as the job runner starts one, with
``-XX:ArchiveClassesAtExit``, runs the bookings job's stage phase and the warm workers' warm-up on
small generated files, so the classes a job run loads are the ones archived; the JVM writes the
archive as it exits. It is written under a temporary name and renamed into place only when the run
succeeded: a JVM given a truncated archive crashes, so none may ever sit at the final path. If the
training fails, local mode runs as before (without it) and this says why.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from airline_local.glue.spark_conf import (
    CLASS_ARCHIVE_VARIABLE,
    SPARK_JAVA_OPTIONS_VARIABLE,
    class_archive_path,
    local_spark_conf,
)

GLUE_SCRIPTS = Path(__file__).resolve().parents[2] / "glue_scripts"
TRAINING_ROWS = 300
# (the partial archive's path) -> the training run's argv and environment (None: this process's)
TrainingCommand = Callable[[Path], tuple[list[str], "dict[str, str] | None"]]


def training_command(archive: Path) -> tuple[list[str], dict[str, str] | None]:
    """The training run: this module with --train, its JVM writing ``archive`` at exit."""
    env = dict(os.environ)
    env[CLASS_ARCHIVE_VARIABLE] = "off"  # nothing to map yet: an older archive must not be the base
    env[SPARK_JAVA_OPTIONS_VARIABLE] = f"{env.get(SPARK_JAVA_OPTIONS_VARIABLE, '')} -XX:ArchiveClassesAtExit={archive}"
    return [sys.executable, "-m", "airline_local.glue.class_archive", "--train"], env


def build(path: Path | None = None, make_command: TrainingCommand | None = None, timeout: float = 900) -> tuple[Path | None, str]:
    """Build the archive at ``path`` (default: this environment's) unless it exists, with the
    training run ``make_command(partial path)`` gives (default: training_command). Returns (the
    archive, or None if none could be built, and what happened, in one line)."""
    path = path or class_archive_path()
    if path is None:
        return None, "no Java: no class archive for local Spark"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two builds at once: the second finds the first's archive
        if path.is_file():
            return path, f"local Spark's class archive: {path}"
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        command, env = (make_command or training_command)(partial)
        started = time.monotonic()
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
            if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                return None, (f"local Spark's class archive was not built (training exited {done.returncode}: "
                              f"{tail[0]}); local mode runs without it, its JVMs start slower")
            os.replace(partial, path)
        except subprocess.TimeoutExpired:
            return None, f"local Spark's class archive was not built (training ran over {timeout:.0f} s)"
        finally:
            partial.unlink(missing_ok=True)
        for older in path.parent.glob("spark-classes-*.jsa"):  # another Java or PySpark's
            if older != path:
                older.unlink(missing_ok=True)
        return path, (f"built local Spark's class archive in {time.monotonic() - started:.0f} s: {path} "
                      f"({path.stat().st_size / 2**20:.0f} MiB)")


def train() -> None:
    """In the training JVM's process: the stage phase (a good file and a gzip one with bad rows)
    and the warm workers' warm-up, on a local[2] session with the job runner's settings."""
    from datetime import datetime, timezone

    from pyspark.sql import SparkSession

    from airline_local.aws.cfn import ACCOUNT_ID
    from airline_local.generator import write_csv
    from airline_local.glue.spark_worker import warm_up

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    sys.path.insert(0, str(GLUE_SCRIPTS))
    import bookings_load
    import ingest_bookings

    builder = SparkSession.builder.master("local[2]").config("spark.driver.memory", "1g")
    for key, value in local_spark_conf().items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    ingest_bookings.configure(spark)
    with tempfile.TemporaryDirectory(prefix="airline-class-archive-") as work:
        root = Path(work)
        for name in ("bookings.csv", "bookings.csv.gz"):
            source = root / name
            write_csv(source, TRAINING_ROWS, seed=11, bad_ratio=0.05)
            job = ingest_bookings.JobArguments(
                source_uri=source.as_uri(), execution_id="class-archive", data_root_uri=(root / "out").as_uri(),
                target=bookings_load.RedshiftTarget("dev", workgroup="local"),
                copy_role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/local", max_reject_ratio=1.0)
            summary = ingest_bookings.RunSummary(execution_id="class-archive", source_file=job.source_uri,
                                                 started_at=datetime.now(timezone.utc))
            ingest_bookings.stage(spark, job, summary)
        warm_up(spark, str(root / "warm-up"))
    spark.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airline_local.glue.class_archive",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train:
        train()
        return 0
    path = class_archive_path()
    if path is not None and path.is_file():
        return 0  # built before: `make install` says nothing
    _, message = build(path)
    print(message)
    return 0


if __name__ == "__main__":
    sys.exit(main())
