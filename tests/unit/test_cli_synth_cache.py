"""`airline-ingest local run` / `demo` reuse the synthesized app across state directories: a new
state directory does not pay for a synth (~20 s of CPU) that this checkout already made."""

from __future__ import annotations

import os

from airline_local import cli
from airline_local.local_stack import SYNTH_CACHE_ENV


def test_the_cli_caches_synthesized_apps_per_user_unless_told_where(tmp_path, monkeypatch):
    monkeypatch.delenv(SYNTH_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cli._started(tmp_path / "state", show_emails=False, warm_workers=0)
    cache = tmp_path / "cache" / "airline-local" / "synth"
    assert os.environ[SYNTH_CACHE_ENV] == str(cache)
    assert cache.is_dir() and cache.stat().st_mode & 0o777 == 0o700

    monkeypatch.setenv(SYNTH_CACHE_ENV, str(tmp_path / "chosen"))  # e.g. the test suite's own
    cli._started(tmp_path / "state", show_emails=False, warm_workers=0)
    assert os.environ[SYNTH_CACHE_ENV] == str(tmp_path / "chosen")
