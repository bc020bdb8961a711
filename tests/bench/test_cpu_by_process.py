"""bench.cpu_by_process: a real child process's CPU is found and put under its kind."""

from __future__ import annotations

import sys

from bench.cpu_by_process import kind_of, measure

BURN = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.8:\n    pass\n"


def test_kinds_come_from_the_command_line():
    assert kind_of(["/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "-cp", "x", "SparkSubmit"]) == "java (Spark JVMs)"
    assert kind_of(["/w/.venv/bin/python", "-m", "airline_local.glue.spark_worker"]) == "warm Spark workers (Python)"
    assert kind_of(["/w/.venv/bin/python", "-m", "pyspark.daemon"]) == "PySpark Python workers"
    assert kind_of(["/w/.venv/bin/python", "-u", "-c", "import sys;exec(eval(sys.stdin.readline()))"]) == \
        "pytest-xdist workers (tests, moto, emulator)"
    assert kind_of(["/usr/lib/postgresql/15/bin/postgres", "-D", "x"]) == "PostgreSQL"
    assert kind_of(["/usr/bin/node", "--max-old-space-size=4069", "program.js"]) == "node (CDK synth)"
    assert kind_of([]) == kind_of([""]) == "other"


def test_a_child_burning_cpu_is_counted_under_its_kind():
    result = measure([sys.executable, "-c", BURN], interval=0.1)
    assert result["exit_code"] == 0
    seconds, processes = result["by_kind"]["python (other)"]
    assert 0.6 <= seconds <= 1.5 and processes >= 1, result
    assert result["busy_cpu_seconds"] >= 0.6
