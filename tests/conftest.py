"""Suite-wide settings.

Every local pipeline a test starts (a dozen, some in CLI subprocesses) synthesizes the same CDK app
with the same local context: they share one synthesis per input fingerprint through a cache
directory that lives as long as the test session (airline_local.local_stack.SYNTH_CACHE_ENV).
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
