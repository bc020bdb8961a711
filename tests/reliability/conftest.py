"""One local pipeline (synthesized stack in moto, PostgreSQL, local Spark) for every reliability test.

Package scope (this directory is a package for that reason): the corpus, the fault tests and the
burst share one start-up. Each case uses its own booking ids (``RL-<TAG>-``), and every check asks
the warehouse about one execution or one tag, so the tests do not depend on one another's rows.
Fault tests leave the pipeline as they found it (PostgreSQL restarted, hooks removed).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from airline_local.pipeline import LocalPipeline


@pytest.fixture(scope="package")
def pipeline() -> Iterator[LocalPipeline]:
    # Not pytest's tmp_path: its 0700 parents keep out the unprivileged PostgreSQL user (as root).
    state_dir = Path(tempfile.mkdtemp(prefix="airline-reliability-"))
    state_dir.chmod(0o711)
    try:
        with LocalPipeline(state_dir) as running:
            yield running
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
