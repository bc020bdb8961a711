"""Peak resident memory and CPU time of process groups, sampled from /proc (Linux).

RUSAGE_CHILDREN would only report the largest single child that was waited for; the Glue job is
a Python driver plus Spark's JVM (and the database is a postmaster plus one backend per
connection), so the benchmark sums RSS over each group, sampled every `interval` seconds, and
keeps the peak of each sum. CPU seconds are summed the same way (each process's last sampled
CPU time, minus what it had used when sampling began): on a shared machine, wall seconds depend
on the other work on the cores, CPU seconds much less.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    sid: int
    rss_bytes: int
    cpu_seconds: float = 0.0


def split_stat(stat: str) -> tuple[str, list[str]]:
    """A /proc/<pid>/stat (or task/<tid>/stat) line as (command name, the fields after it: state,
    ppid, ...). The name may hold spaces and parentheses: the fields start after its last ')'."""
    return stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()


def stat_cpu_seconds(fields: list[str]) -> float:
    """User + system CPU seconds from split_stat's fields (utime and stime)."""
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def read_process(pid: int) -> ProcessInfo | None:
    """One process's parent, session and RSS; None if it has gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        statm = (PROC / str(pid) / "statm").read_text().split()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    _, fields = split_stat(stat)
    return ProcessInfo(pid=pid, ppid=int(fields[1]), sid=int(fields[3]), rss_bytes=int(statm[1]) * PAGE_SIZE,
                       cpu_seconds=stat_cpu_seconds(fields))


def all_processes() -> Iterator[ProcessInfo]:
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            info = read_process(int(entry.name))
            if info is not None:
                yield info


def job_sessions_of(parent_pid: int, processes: list[ProcessInfo]) -> set[int]:
    """Sessions led by direct children of `parent_pid`: the job runner starts each Glue job in
    its own session (start_new_session), and Spark's JVM stays in it."""
    return {p.pid for p in processes if p.ppid == parent_pid and p.sid == p.pid}


def descendants_of(root_pid: int, processes: list[ProcessInfo]) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in processes:
        children.setdefault(p.ppid, []).append(p.pid)
    found, stack = {root_pid}, [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def job_tree(processes: list[ProcessInfo], parent_pid: int | None = None) -> list[ProcessInfo]:
    """Every process in the sessions of this process's job subprocesses."""
    sessions = job_sessions_of(parent_pid or os.getpid(), processes)
    return [p for p in processes if p.sid in sessions]


def job_tree_rss(processes: list[ProcessInfo], parent_pid: int | None = None) -> int:
    return sum(p.rss_bytes for p in job_tree(processes, parent_pid))


def postmaster_pid(data_dir: Path) -> int | None:
    """The postmaster's pid, from the first line of its postmaster.pid file."""
    try:
        return int((Path(data_dir) / "postmaster.pid").read_text().split("\n", 1)[0])
    except (FileNotFoundError, PermissionError, ValueError):
        return None


def tree(root_pid: int | None, processes: list[ProcessInfo]) -> list[ProcessInfo]:
    """A process and its descendants (PostgreSQL: the postmaster and its backends)."""
    if root_pid is None:
        return []
    members = descendants_of(root_pid, processes)
    return [p for p in processes if p.pid in members]


def tree_rss(root_pid: int | None, processes: list[ProcessInfo]) -> int:
    """RSS summed over a process tree. Shared buffers touched by several PostgreSQL backends
    count once per backend, as RSS does."""
    return sum(p.rss_bytes for p in tree(root_pid, processes))


class PeakSampler:
    """Samples named process groups in a background thread: `peaks` holds each group's peak
    summed RSS (bytes), `cpu_seconds` the CPU time its processes used while sampled.

        with PeakSampler({"job": memory.job_tree, "db": lambda ps: memory.tree(pid, ps)}) as s:
            work()
        s.peaks["job"], s.cpu_seconds["job"]
    """

    def __init__(self, groups: dict[str, Callable[[list[ProcessInfo]], list[ProcessInfo]]],
                 interval: float = 0.1):
        self.groups = groups
        self.interval = interval
        self.peaks: dict[str, int] = {name: 0 for name in groups}
        self.samples = 0
        self._first_cpu: dict[str, dict[int, float]] = {name: {} for name in groups}
        self._last_cpu: dict[str, dict[int, float]] = {name: {} for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    @property
    def cpu_seconds(self) -> dict[str, float]:
        return {name: round(sum(last - self._first_cpu[name][pid] for pid, last in self._last_cpu[name].items()), 2)
                for name in self.groups}

    def sample(self, *, baseline: bool = False) -> None:
        processes = list(all_processes())
        for name, select in self.groups.items():
            members = select(processes)
            self.peaks[name] = max(self.peaks[name], sum(p.rss_bytes for p in members))
            for p in members:
                # A process already running when sampling began counts from then; a new one from 0.
                self._first_cpu[name].setdefault(p.pid, p.cpu_seconds if baseline else 0.0)
                self._last_cpu[name][p.pid] = p.cpu_seconds
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self) -> PeakSampler:
        self.sample(baseline=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()  # one last look, so that even a very short run has a sample
