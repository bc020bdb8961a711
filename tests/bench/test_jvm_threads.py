"""bench.jvm_threads: a JVM's CPU seconds by thread role, read from /proc."""

from __future__ import annotations

import os
from collections import Counter
import threading
import time
from pathlib import Path

import pytest

from bench import jvm_threads
from bench.memory import CLOCK_TICKS


def fake_task(proc: Path, pid: int, tid: int, name: str, utime: int, stime: int) -> None:
    task = proc / str(pid) / "task" / str(tid)
    task.mkdir(parents=True)
    # /proc/<pid>/task/<tid>/stat: "tid (comm) state ppid ..." with utime and stime as fields 14 and 15
    fields = ["S", "1"] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 10
    (task / "stat").write_text(f"{tid} ({name}) " + " ".join(fields) + "\n")


def test_threads_are_summed_by_role_and_odd_names_parse(tmp_path):
    fake_task(tmp_path, 7, 8, "Executor task l", 100, 50)
    fake_task(tmp_path, 7, 9, "Executor task l", 200, 0)
    fake_task(tmp_path, 7, 10, "C2 CompilerThre", 30, 0)
    fake_task(tmp_path, 7, 11, "GC Thread#1", 10, 10)
    fake_task(tmp_path, 7, 12, "a (b) c", 5, 5)  # a name with spaces and parentheses
    totals = jvm_threads.thread_cpu_by_role(7, proc=tmp_path)
    assert totals == {"spark tasks": 350 / CLOCK_TICKS, "JIT compiler": 30 / CLOCK_TICKS,
                      "garbage collector": 20 / CLOCK_TICKS, "driver and other": 10 / CLOCK_TICKS}


def test_difference_lists_every_role_and_never_goes_negative():
    before = Counter({"spark tasks": 2.0, "JIT compiler": 5.0})
    after = Counter({"spark tasks": 3.5, "JIT compiler": 4.0, "driver and other": 0.25})
    assert jvm_threads.difference(after, before) == {
        "spark tasks": 1.5, "JIT compiler": 0.0, "garbage collector": 0.0, "driver and other": 0.25}


def test_a_live_threads_cpu_time_is_counted_between_two_samples():
    used, done, release = [], threading.Event(), threading.Event()

    def work() -> None:
        started = time.thread_time()
        sum(i * i for i in range(3_000_000))
        used.append(time.thread_time() - started)
        done.set()
        release.wait(10)  # alive while sampled: an ended thread's seconds are gone from /proc

    before = jvm_threads.thread_cpu_by_role(os.getpid())
    thread = threading.Thread(target=work)
    thread.start()
    done.wait(30)
    after = jvm_threads.thread_cpu_by_role(os.getpid())
    release.set()
    thread.join()
    counted = jvm_threads.difference(after, before)["driver and other"]
    assert used[0] > 0.05 and counted == pytest.approx(used[0], abs=0.05)
