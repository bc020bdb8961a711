"""Fixtures for the local-runtime tests: a real moto server (with the local patches) per module."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from airline_local.aws.emulator import Emulator
from airline_local.aws.patches.runtime import RUNTIME, CrawlerSettings
from airline_local.warehouse.postgres import PostgresServer
from airline_local.warehouse.redshift_data import DataApiEmulator
from airline_local.warehouse.statements import Warehouse


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory):
    """The module's emulator. moto allows one per process: if another suite's fixture still holds
    one (a package-scoped fixture outside a Python package lives for the whole session), share it;
    every test here uses its own uniquely named resources."""
    shared = Emulator.running()
    if shared is not None:
        yield shared
        return
    with Emulator(tmp_path_factory.mktemp("emulator")) as running:
        yield running


@pytest.fixture(autouse=True)
def default_local_runtime(request: pytest.FixtureRequest):
    """Each test starts with the default crawl timing, no injected failure and unscaled waits, and
    leaves the runtime's stand-ins as it found them."""
    if "emulator" not in request.fixturenames:
        yield
        return
    saved = (RUNTIME.crawler_settings, RUNTIME.wait_time_scale, RUNTIME.data_api, RUNTIME.mailbox)
    RUNTIME.crawler_settings, RUNTIME.wait_time_scale = CrawlerSettings(), 1.0
    yield
    RUNTIME.crawler_settings, RUNTIME.wait_time_scale, RUNTIME.data_api, RUNTIME.mailbox = saved


@pytest.fixture(scope="module")
def warehouse() -> Iterator[Warehouse]:
    """A PostgreSQL of the module's own (the IAM tests of the Data API and the schema resource)."""
    # Not pytest's tmp_path: its 0700 root-owned parents would keep the `postgres` user out.
    root = Path(tempfile.mkdtemp(prefix="airline-local-warehouse-"))
    root.chmod(0o711)
    server = PostgresServer(root / "pg").start()
    try:
        yield Warehouse(server.dsn)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def data_api(stack, warehouse) -> Iterator[DataApiEmulator]:
    """The Data API on the module's warehouse, for the module's deployed `stack`."""
    api = DataApiEmulator(warehouse)
    RUNTIME.data_api = api  # restored by default_local_runtime
    yield api
    api.close()
