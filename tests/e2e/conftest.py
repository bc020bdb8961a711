"""One local pipeline (synthesized stack in moto, PostgreSQL, local Spark) shared by the e2e tests.

Starting it costs a synth (cached in .airline-local/), a PostgreSQL start and a moto start, so the
tests of a module share it; each test uses its own generated files (booking ids carry the seed), so
the tests do not depend on one another's rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airline_local.generator import write_csv
from airline_local.pipeline import LocalPipeline, temporary_state_dir


@pytest.fixture(scope="module")
def pipeline() -> Iterator[LocalPipeline]:
    with temporary_state_dir("airline-e2e-") as state_dir, LocalPipeline(state_dir) as running:
        yield running


@pytest.fixture
def make_file(tmp_path: Path):
    """make_file(name, rows, seed, bad_ratio=0.0) -> Path of a generated booking file."""

    def make(name: str, rows: int, seed: int, bad_ratio: float = 0.0, **kwargs) -> Path:
        path = tmp_path / name
        write_csv(path, rows, seed=seed, bad_ratio=bad_ratio, **kwargs)
        return path

    return make
