"""One local pipeline (synthesized stack in moto, PostgreSQL, local Spark) for every reliability test.

Package scope (this directory is a package for that reason): the corpus, the fault tests and the
burst share one start-up. Each case uses its own booking ids (``RL-<TAG>-``), and every check asks
the warehouse about one execution or one tag, so the tests do not depend on one another's rows.
Fault tests leave the pipeline as they found it (PostgreSQL restarted, hooks removed).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airline_local.pipeline import LocalPipeline, temporary_state_dir


@pytest.fixture(scope="package")
def pipeline() -> Iterator[LocalPipeline]:
    # Two warm Spark workers (the suite's default is one): the corpus's 37 small executions are
    # bound by their job runs, and two take turns on the cores while the other runs crawl or load.
    with temporary_state_dir("airline-reliability-") as state_dir, \
            LocalPipeline(state_dir, warm_workers=2) as running:
        yield running
