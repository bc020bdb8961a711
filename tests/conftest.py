"""Suite-wide settings.

Every local pipeline a test starts (a dozen, some in CLI subprocesses) synthesizes the same CDK app
with the same local context: they share one synthesis per input fingerprint through a cache
directory that lives as long as the test session (airline_local.local_stack.SYNTH_CACHE_ENV);
pytest-xdist's workers inherit it from the controller, which imports this file first.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Before airline_local is imported: its pipelines' default, for every test and CLI subprocess.
os.environ.setdefault("AIRLINE_LOCAL_WARM_WORKERS", "1")
# Local Spark's JVMs with the C1 JIT compiler only (airline_local.glue.job_runner
# SPARK_JAVA_OPTIONS_VARIABLE): the tests' files are small, and C2's compilations never pay back
# on them. `python -m bench.stage FILE --modes stage --masters 'local[2]'` on a 25-row file with and
# without it: the JVM's CPU for the stage 4.3-4.7 -> 2.2-2.4 s (the JIT's 2.4-2.6 -> 0.3). Same
# results: the JIT level changes speed, not behaviour.
os.environ.setdefault("AIRLINE_LOCAL_SPARK_JAVA_OPTIONS", "-XX:TieredStopAtLevel=1")

from airline_local.local_stack import SYNTH_CACHE_ENV  # noqa: E402

if SYNTH_CACHE_ENV not in os.environ:
    _cache = tempfile.mkdtemp(prefix="airline-synth-cache-")
    os.environ[SYNTH_CACHE_ENV] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


# Packages whose conftest holds a session- or package-scoped fixture (a SparkSession, a synthesized
# app, a PostgreSQL server, the reliability tests' local pipeline): each runs whole on one worker,
# so the fixture is made once, not once per worker that gets one of its modules.
SHARED_FIXTURE_PACKAGES = frozenset({"etl", "infra", "reliability", "warehouse"})


def pytest_collection_modifyitems(config, items):
    """Modules with a `slow` test (a whole local pipeline) first, each module's tests kept together
    and in order: a long module handed out last would run alone at the end of `make test` while the
    other worker sits idle."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)


def worker_unit(nodeid: str) -> str:
    """What one pytest-xdist worker runs whole: the package for SHARED_FIXTURE_PACKAGES, else the
    module (`tests/etl/test_x.py::test_y` -> `etl`; `tests/e2e/test_cli.py::t` -> that file)."""
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[1] in SHARED_FIXTURE_PACKAGES else path


def pytest_xdist_make_scheduler(config, log):
    """`make test` runs pytest-xdist with --dist loadfile: here refined to worker_unit (xdist's
    --dist loadgroup would do it with marks, but pytest 9.2 ignores the node ids it rewrites)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByTestUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_unit(nodeid)

    return ByTestUnit(config, log)
