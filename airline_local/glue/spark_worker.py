"""A warm Glue worker: one Python process with a running SparkSession that runs job scripts, one
after another, as fresh `python script.py ...` processes would.

Why: a cold job run spends ~2 s starting the JVM and ~6 s more on class loading, JIT and code
generation before the same work takes ~2.5 s in a warm JVM. The local job runner keeps a few of
these processes ready (airline_local.glue.worker_pool) so a small file goes from upload to email in
seconds. AWS Glue starts a fresh environment per run; nothing the script can observe differs
except the time it takes:
- every run gets its own SparkSession (``newSession``: its own SQL conf, temporary views and
  functions) over the shared SparkContext, and the cache is cleared after it;
- its own argv, working directory, sys.path (its --extra-py-files) and stdout/stderr files; the
  modules it imported from its run directory are forgotten afterwards;
- its own AWS identity: the run request's ``environment`` (the job role's credentials) is set for
  the run and restored after, and boto3's default session is dropped before and after, since it
  keeps the credentials it first resolved (run N's identity would otherwise serve run N+1);
- an exit code as the process would have had: 0, the SystemExit code, or 1 with the traceback
  on stderr for an uncaught exception.

Two differences a script could notice: the JVM's own log lines go to the worker's log, not the
run's stderr (the run's stderr names that file), and Spark's Python workers (Python UDFs) keep
the worker's sys.path, so a UDF importing a module of --extra-py-files would not find it. The
bookings job has no Python UDF; a job that needs one runs with ``--warm-workers 0``.

Before it says it is ready, a worker warms its JVM up on a throwaway file (:func:`warm_up`),
unless a run request is already waiting: the runner writes its request without waiting for
the ready line, and the warm-up gives way to it.

Protocol (started by the runner as ``python -m airline_local.glue.spark_worker``): one JSON line on
stdout once the SparkSession is up, ``{"ready": true}``; then for each request line on stdin
``{"script", "args", "cwd", "python_path", "stdout", "stderr", "run_dir", "environment"}`` one reply line
``{"exit_code": n, "healthy": bool}`` (unhealthy: the SparkContext is gone, the worker exits).
End of stdin stops the worker. Everything else the process (and its JVM)
prints goes to the worker's stderr, the runner's worker log.
"""

from __future__ import annotations

import json
import os
import runpy
import select
import sys
import threading
import time
import traceback
import zipimport
from typing import Any, TextIO

# Where the worker runs its warm-up job (unset: no warm-up).
WARM_UP_DIR_VARIABLE = "AIRLINE_WORKER_WARM_UP_DIR"


def _exit_code(exit: SystemExit) -> int:
    if exit.code is None:
        return 0
    if isinstance(exit.code, int):
        return exit.code
    print(exit.code, file=sys.stderr)  # what the interpreter does for sys.exit("message")
    return 1


def _fresh_session(base: Any) -> Any:
    """A new SparkSession over the running SparkContext, made the one getOrCreate() returns."""
    from pyspark.sql import SparkSession

    session = base.newSession()
    SparkSession._instantiatedSession = session
    SparkSession._activeSession = session
    jvm_session = session._jvm.org.apache.spark.sql.SparkSession
    jvm_session.setDefaultSession(session._jsparkSession)
    jvm_session.setActiveSession(session._jsparkSession)
    return session


# Classes PySpark looks up by simple name through the JVM view, hundreds of times a run (every
# pyspark.sql.functions call asks for `functions`). py4j resolves a simple name against each of the
# view's star imports in turn, and each miss searches every Spark jar: imported by their full names
# they are found at once. The same classes either way; a 25-row stage's driver CPU 2.3 -> 2.0 s.
HOT_JVM_CLASSES = ("org.apache.spark.sql.functions", "org.apache.spark.api.python.PythonUtils",
                   "org.apache.spark.sql.SparkSession")


def import_hot_classes(spark: Any) -> None:
    """Import HOT_JVM_CLASSES into the JVM view that every session of ``spark``'s context shares."""
    from py4j.java_gateway import java_import

    for name in HOT_JVM_CLASSES:
        java_import(spark.sparkContext._jvm, name)


def _forget_modules_under(directory: str) -> None:
    """Drop what the run imported from its own directory, so the next run imports its own copy."""
    prefix = os.path.join(os.path.realpath(directory), "")
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path and os.path.realpath(path).startswith(prefix):
            del sys.modules[name]
    for path in list(sys.path_importer_cache):
        if path.startswith(prefix):
            del sys.path_importer_cache[path]
    zip_cache = getattr(zipimport, "_zip_directory_cache", {})
    for path in list(zip_cache):
        if path.startswith(prefix):
            del zip_cache[path]


def _set_environment(values: dict[str, str | None]) -> dict[str, str | None]:
    """Set (None: unset) environment variables; returns their previous values."""
    previous = {name: os.environ.get(name) for name in values}
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return previous


def _forget_default_aws_session() -> None:
    boto3 = sys.modules.get("boto3")
    if boto3 is not None:
        boto3.DEFAULT_SESSION = None


def run_script(request: dict[str, Any]) -> int:
    """Run one job script as `python script args...` would, in this process; its exit code."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved_environment = _set_environment(request.get("environment") or {})
    _forget_default_aws_session()
    saved_fds = os.dup(1), os.dup(2)
    saved_cwd, saved_path, saved_argv = os.getcwd(), list(sys.path), list(sys.argv)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    out = os.open(request["stdout"], flags, 0o644)
    err = os.open(request["stderr"], flags, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.close(out)
    os.close(err)
    try:
        os.chdir(request["cwd"])
        sys.path[:0] = request["python_path"]
        sys.argv = [request["script"], *request["args"]]
        runpy.run_path(request["script"], run_name="__main__")
        code = 0
    except SystemExit as exit:
        code = _exit_code(exit)
    except BaseException:  # noqa: BLE001 - the interpreter would print any of them and exit 1
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(saved_fds[0], 1)
        os.dup2(saved_fds[1], 2)
        for fd in saved_fds:
            os.close(fd)
        os.chdir(saved_cwd)
        sys.path[:], sys.argv = saved_path, saved_argv
        _forget_modules_under(request["run_dir"])
        _set_environment(saved_environment)
        _forget_default_aws_session()
    return code


def warm_up(spark: Any, directory: str) -> None:
    """A few seconds of the operators an ETL job uses (CSV read, regex and timestamp parsing, a
    broadcast join, a window, an aggregate, Parquet and JSON writes) on a throwaway file, so the
    first real run finds their classes loaded and compiled. Nothing outside ``directory``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    os.makedirs(directory, exist_ok=True)
    source = os.path.join(directory, "warm-up.csv")
    with open(source, "w", encoding="utf-8") as out:
        out.write("id,at,code,amount\n")
        for n in range(500):
            out.write(f'{n % 97},2026-01-{n % 28 + 1:02d}T{n % 24:02d}:30:00,"C{n % 7}",{n}.25\n')
    frame = (spark.read.option("header", "true").option("multiLine", "true")
             .option("mode", "PERMISSIVE").schema("id string, at string, code string, amount string")
             .csv(source))
    codes = spark.createDataFrame([(f"C{n}", "UTC", float(n)) for n in range(7)],
                                  "code string, tz string, lat double")
    parsed = (frame.withColumn("n", F.monotonically_increasing_id()).repartition(2, "n")
              .withColumn("ts", F.expr("try_cast(at AS TIMESTAMP)"))
              .withColumn("amt", F.expr("try_cast(amount AS DECIMAL(12,2))"))
              .join(F.broadcast(codes), "code", "left")
              .withColumn("utc", F.to_utc_timestamp("ts", F.col("tz")))
              .withColumn("bad", F.array_except(F.array(
                  F.when(~F.col("amount").rlike(r"^[0-9]+(\.[0-9]+)?$"), F.lit("amount")),
                  F.when(F.trim(F.upper("code")) == "", F.lit("code"))),
                  F.array(F.lit(None).cast("string"))))
              .withColumn("km", F.asin(F.sqrt(F.pow(F.sin(F.radians("lat")), 2)))))
    parsed.cache().agg(F.count(F.lit(1)), F.sum(F.size("bad"))).first()
    latest = Window.partitionBy("id").orderBy(F.col("ts").desc(), F.col("n").desc())
    (parsed.withColumn("rank", F.row_number().over(latest)).where("rank = 1")
     .write.mode("overwrite").parquet(os.path.join(directory, "parquet")))
    parsed.coalesce(1).write.mode("overwrite").json(os.path.join(directory, "json"))
    parsed.unpersist()


def _healthy(base: Any) -> bool:
    """Whether the SparkContext survived the run (a script may stop it; an OOM may kill it)."""
    try:
        return base.sparkContext._jsc is not None and not base.sparkContext._jsc.sc().isStopped()
    except Exception:  # noqa: BLE001 - py4j: the JVM is gone
        return False


def _warm_up_unless_asked(base: Any, directory: str, requests: TextIO) -> None:
    """The warm-up, abandoned as soon as a run request is waiting on ``requests`` (the runner
    may send one before this worker said it is ready): a run never waits for a throwaway job,
    e.g. a one-file `local run`, whose worker starts moments before its only run."""
    warming, gave_way = threading.Event(), threading.Event()
    warming.set()

    def give_way() -> None:
        while warming.is_set():
            if select.select([requests], [], [], 0.05)[0]:
                # Not read here: serve() reads it. Cancel until warm_up() is out (a cancel
                # between two of its jobs would miss the next one).
                gave_way.set()
                base.sparkContext.cancelAllJobs()
                time.sleep(0.05)

    watcher = threading.Thread(target=give_way, name="warm-up-gives-way", daemon=True)
    watcher.start()
    try:
        warm_up(_fresh_session(base), directory)
    except Exception:  # noqa: BLE001 - only a missed speed-up: say so in the worker log
        if not gave_way.is_set():
            traceback.print_exc()
    finally:
        warming.clear()
        watcher.join()  # no cancel can reach the run's jobs
    if gave_way.is_set():
        print("[spark worker] warm-up abandoned: a run was waiting", file=sys.stderr, flush=True)


def serve(requests: TextIO, replies: TextIO, warm_up_dir: str | None = None) -> None:
    from pyspark.sql import SparkSession

    base = SparkSession.builder.getOrCreate()
    import_hot_classes(base)
    if warm_up_dir:
        _warm_up_unless_asked(base, warm_up_dir, requests)
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in requests:
        if not line.strip():
            continue
        session = _fresh_session(base)
        code = run_script(json.loads(line))
        healthy = _healthy(base)
        if healthy:
            session.catalog.clearCache()
        replies.write(json.dumps({"exit_code": code, "healthy": healthy}) + "\n")
        replies.flush()
        if not healthy:
            return  # the runner retires this worker
    # The JVM's shutdown hook stops the SparkContext, as base.stop() would, in less time.
    _end_jvm(getattr(base.sparkContext._gateway, "proc", None))  # the JVM PySpark started (a Popen)


def _end_jvm(jvm: Any) -> None:
    """Close the JVM's input (it exits, running its shutdown hooks) and reap it here. Left to
    notice this process's exit, it would outlive it as an orphan, and on a machine whose init
    reaps orphans slowly the runner waited ~2 s for its zombie to go."""
    if jvm is None:
        return
    try:
        if jvm.stdin is not None:
            jvm.stdin.close()
        jvm.wait(timeout=10)
    except Exception:  # noqa: BLE001 - still running, or gone already: the runner ends the group
        jvm.terminate()


def main() -> None:
    # Replies get a private copy of stdout; fd 1 then joins stderr (the worker log), so that
    # the JVM started below and any stray print cannot corrupt the reply stream.
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    serve(sys.stdin, replies, os.environ.get(WARM_UP_DIR_VARIABLE))


if __name__ == "__main__":
    main()
