"""worker_pool.group_running: a warm worker's process group counts as ended when only zombies are
left in it (an orphaned zombie waits for init, which in some containers reaps every few seconds)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from airline_local.glue.worker_pool import group_running

# A group leader that starts a child which exits at once and is never waited for: a zombie.
LEADER = "import subprocess, time; subprocess.Popen(['true']); print('ok', flush=True); time.sleep(60)"


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="zombies are told apart through /proc")
def test_a_group_of_zombies_is_not_running_a_group_with_a_live_process_is():
    leader = subprocess.Popen([sys.executable, "-c", LEADER], start_new_session=True,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert leader.stdout.readline() == "ok\n"
        assert group_running(leader.pid)  # the leader sleeps beside its zombie child
        os.kill(leader.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while group_running(leader.pid):  # the leader a zombie too (not yet waited for): none running
            assert time.monotonic() < deadline, "a group of zombies still counted as running"
            time.sleep(0.05)
    finally:
        leader.kill()
        leader.wait()
        leader.stdout.close()
    assert not group_running(leader.pid)


def test_a_group_that_is_gone_is_not_running():
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], start_new_session=True,
                          capture_output=True, text=True, check=True)
    assert not group_running(int(done.stdout))
