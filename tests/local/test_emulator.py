"""The emulator's own contract: 127.0.0.1, a free port, clear errors, one per process."""

from __future__ import annotations

import os
import socket

import pytest

from airline_local.aws.emulator import Emulator, EmulatorError


@pytest.fixture(autouse=True)
def no_other_emulator():
    # These tests start and stop emulators themselves: they need the process to hold none.
    if Emulator.running() is not None:
        pytest.skip("another test suite's emulator is running in this process (one per process)")


def test_starts_on_a_free_local_port_and_cleans_up(tmp_path):
    before = os.environ.get("MOTO_PORT")
    with Emulator(tmp_path) as aws:
        assert aws.endpoint_url == f"http://127.0.0.1:{aws.port}"
        assert os.environ["MOTO_PORT"] == str(aws.port)
        assert aws.client("s3").list_buckets()["Buckets"] == []
        assert aws.mailbox.directory == tmp_path / "mailbox"
        assert aws.job_runner.endpoint_url == aws.endpoint_url
        with pytest.raises(EmulatorError, match="already running"):
            Emulator(tmp_path / "second")
    assert os.environ.get("MOTO_PORT") == before
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", aws.port), timeout=1)


def test_a_taken_port_is_a_clear_error(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(EmulatorError, match=f"127.0.0.1:{port}: the port is already in use"):
            Emulator(tmp_path, port=port)
    # the failed start left nothing behind: a new emulator starts
    with Emulator(tmp_path) as aws:
        assert aws.port != 0
