"""Local Spark's settings, for every JVM local mode starts (the job runs' fresh processes and warm
workers, the ETL tests' session, the benchmarks): the job runner's Spark conf, the driver JVM options
of $AIRLINE_LOCAL_SPARK_JAVA_OPTIONS, and this environment's class archive when it has one.

The class archive (built by ``python -m airline_local.glue.class_archive``, which `make install`
runs) holds Spark's classes as a fresh JVM loads them for the bookings job (JDK dynamic class-data
sharing): mapped instead of read, parsed and verified one by one, a cold JVM starts on a third less
CPU. An archive that does not match the JVM or its class path is ignored by the JVM; the logging
options keep its warning out of the jobs' stderr. Speed only: nothing a job computes changes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import sys
from pathlib import Path

from airline_local.glue.java import JavaNotFoundError, check_java

DEFAULT_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.session.timeZone": "UTC",
    # Adaptive query execution off: it re-plans every query at each stage boundary, which for the
    # small files local mode sees is pure driver work: a warm stage of a 25-row file runs 12 -> 6
    # Spark jobs, 2.11 -> 1.76 JVM CPU-s (`python -m bench.spark_conf_ab`, docs/performance.md,
    # "Adaptive query execution off locally"); 300,000 rows: the same either way. Speed only:
    # tests/etl/test_etl_stage_equivalence.py stages the same rows with AQE on, as Glue runs it.
    "spark.sql.adaptive.enabled": "false",
}
# JVM options for local Spark's driver (the job runs' JVMs, and the ETL tests' session): the test
# suite sets "-XX:TieredStopAtLevel=1" (tests/conftest.py). Unset: the JVM's defaults.
SPARK_JAVA_OPTIONS_VARIABLE = "AIRLINE_LOCAL_SPARK_JAVA_OPTIONS"
# "off": start local Spark's JVMs without the class archive (to measure what it saves).
CLASS_ARCHIVE_VARIABLE = "AIRLINE_LOCAL_SPARK_CLASS_ARCHIVE"
# Where this environment keeps its archive: beside the PySpark whose jars it holds.
CLASS_ARCHIVE_DIR = Path(sys.prefix) / "share" / "airline-local"
QUIET_CLASS_ARCHIVE = ("-Xlog:cds=off", "-Xlog:cds+dynamic=off")
# For JVMs that will only see small files (a one-off `local run` of a few MB): the C1 JIT compiler
# only. C2's compilations cost a fresh JVM ~10 CPU-s, which a file of 100,000 rows (14 MB) does not
# win back: its first stage 12.7 -> 9.8 s with C1 (docs/performance.md).
SMALL_INPUTS_JAVA_OPTIONS = ("-XX:TieredStopAtLevel=1",)


def class_archive_name(java_version: str, pyspark_version: str, spark_jars: str) -> str:
    """The archive's file name: one per JVM build, PySpark release and jar directory, since a JVM
    only maps an archive made by the same build from the same class path."""
    digest = hashlib.sha256("\n".join((java_version, pyspark_version, spark_jars)).encode()).hexdigest()
    return f"spark-classes-{digest[:16]}.jsa"


@functools.lru_cache(maxsize=4)
def _class_archive_for(java: str) -> Path:
    import pyspark

    version = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False).stderr
    jars = Path(pyspark.__file__).resolve().parent / "jars"
    return CLASS_ARCHIVE_DIR / class_archive_name(version.strip(), pyspark.__version__, str(jars))


def class_archive_path() -> Path | None:
    """Where this environment's class archive is (or would be built); None without Java."""
    try:
        return _class_archive_for(check_java())
    except JavaNotFoundError:
        return None


def class_archive_options() -> list[str]:
    """The JVM options that map the class archive: none if it is not built or is turned off."""
    if os.environ.get(CLASS_ARCHIVE_VARIABLE, "").lower() == "off":
        return []
    path = class_archive_path()
    if path is None or not path.is_file():
        return []
    option = f"-XX:SharedArchiveFile={path}"
    # Spark splits the driver's JVM options at spaces, except inside double quotes.
    return [f'"{option}"' if any(c.isspace() for c in option) else option, *QUIET_CLASS_ARCHIVE]


def local_spark_conf(small_inputs: bool = False) -> dict[str, str]:
    """DEFAULT_SPARK_CONF plus the driver JVM options: the class archive's, SMALL_INPUTS_JAVA_OPTIONS
    for a JVM that will only see small files, and those of $AIRLINE_LOCAL_SPARK_JAVA_OPTIONS."""
    options = " ".join([*class_archive_options(), *(SMALL_INPUTS_JAVA_OPTIONS if small_inputs else ()),
                        os.environ.get(SPARK_JAVA_OPTIONS_VARIABLE, "").strip()]).strip()
    return {**DEFAULT_SPARK_CONF, **({"spark.driver.extraJavaOptions": options} if options else {})}
