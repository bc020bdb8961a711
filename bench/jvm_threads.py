"""CPU seconds of a JVM's threads by role, from /proc/<pid>/task (Linux).

Spark's `local[N]` bounds the task threads, not the JVM: the JIT compilers, the garbage collector
and the driver's own threads run beside them. Comparing a run at `local[1]` with one at `local[2]`
by role shows how much of the second core the one-task run already used, which is what bounds the
cores speedup on a 2-core machine. HotSpot names its threads (the kernel keeps 15 characters):
"Executor task l" (Spark's task threads), "C2 CompilerThre", "C1 CompilerThre", "GC Thread#0",
"G1 Conc#0", "G1 Refine#0", "VM Thread"...
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.memory import PROC, split_stat, stat_cpu_seconds

ROLES = (  # (role, thread-name prefixes), first match wins
    ("spark tasks", ("Executor task",)),
    ("JIT compiler", ("C1 Compiler", "C2 Compiler")),
    ("garbage collector", ("GC Thread", "G1 ", "VM Periodic")),
)
OTHER = "driver and other"


def role_of(thread_name: str) -> str:
    for role, prefixes in ROLES:
        if thread_name.startswith(prefixes):
            return role
    return OTHER


def thread_cpu_by_role(pid: int, proc: Path = PROC) -> Counter[str]:
    """CPU seconds each role's threads of process ``pid`` have used so far (threads that have
    ended are not counted: sample before and after a phase and subtract)."""
    totals: Counter[str] = Counter()
    for task in (proc / str(pid) / "task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended
        name, fields = split_stat(stat)
        totals[role_of(name)] += stat_cpu_seconds(fields)
    return totals


def difference(after: Counter[str], before: Counter[str]) -> dict[str, float]:
    """Per role, the CPU seconds used between two samples (never negative: a thread that ended
    took its seconds with it)."""
    return {role: round(max(0.0, after[role] - before[role]), 2)
            for role in [r for r, _ in ROLES] + [OTHER]}
