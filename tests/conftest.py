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

from airline_local.local_stack import SYNTH_CACHE_ENV

if SYNTH_CACHE_ENV not in os.environ:
    _cache = tempfile.mkdtemp(prefix="airline-synth-cache-")
    os.environ[SYNTH_CACHE_ENV] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    """Modules with a `slow` test (a whole local pipeline) first, each module's tests kept together
    and in order: `make test` runs modules on two workers (pytest-xdist, --dist loadfile), and a
    long module handed out last would run alone at the end while the other worker sits idle."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)
