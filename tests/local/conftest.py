"""Fixtures for the local-runtime tests: a real moto server (with the local patches) per module."""

from __future__ import annotations

import pytest

from airline_local.aws.emulator import Emulator
from airline_local.aws.moto_patches import RUNTIME, CrawlerSettings


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
