"""The Java that local Spark runs on: found as PySpark finds it (JAVA_HOME, else `java` on PATH),
or a JavaNotFoundError that says how to install it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

INSTALL_JAVA_HINT = (
    "Java was not found (no `java` on PATH and no usable JAVA_HOME). Local Spark needs a JDK 17, "
    "the Java of AWS Glue 5: install one, e.g. `apt-get install -y openjdk-17-jre-headless`."
)


class JavaNotFoundError(RuntimeError):
    pass


def check_java() -> str:
    """The java executable local Spark will use; JavaNotFoundError with install advice if none."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found:
        return found
    raise JavaNotFoundError(INSTALL_JAVA_HINT)


def java_home() -> str | None:
    """The JAVA_HOME of check_java's java (None without one)."""
    try:
        java = Path(check_java()).resolve()
    except JavaNotFoundError:
        return None
    return str(java.parent.parent)
