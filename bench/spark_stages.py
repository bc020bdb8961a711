"""Where a Spark run's time goes, per Spark stage, from its event log (spark.eventLog.enabled).

For each stage of the jobs in one job group (the measured part of a run, set with
``SparkContext.setJobGroup``): its wall seconds, number of tasks, the tasks' summed run, CPU and
GC seconds. Stages with one task, or run time far above CPU time, are where cores sit idle.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def stage_breakdown(events: Iterable[dict[str, Any]], job_group: str) -> list[dict[str, Any]]:
    """The stages of ``job_group``'s jobs, in submission order (times relative to the first)."""
    wanted: set[int] = set()
    stages: dict[int, dict[str, Any]] = {}
    for event in events:
        kind = event.get("Event")
        if kind == "SparkListenerJobStart":
            if (event.get("Properties") or {}).get("spark.jobGroup.id") == job_group:
                wanted.update(event.get("Stage IDs", []))
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            stage = stages.setdefault(info["Stage ID"], _empty())
            stage.update(name=info["Stage Name"], tasks=info["Number of Tasks"],
                         submitted=info.get("Submission Time"), completed=info.get("Completion Time"))
        elif kind == "SparkListenerTaskEnd":
            metrics = event.get("Task Metrics") or {}
            stage = stages.setdefault(event["Stage ID"], _empty())
            stage["run_s"] += metrics.get("Executor Run Time", 0) / 1e3
            stage["cpu_s"] += metrics.get("Executor CPU Time", 0) / 1e9
            stage["gc_s"] += metrics.get("JVM GC Time", 0) / 1e3
    measured = [dict(stage, id=sid) for sid, stage in stages.items()
                if sid in wanted and stage.get("submitted") and stage.get("completed")]
    measured.sort(key=lambda s: s["submitted"])
    start = measured[0]["submitted"] if measured else 0
    return [{"id": s["id"], "name": s["name"], "tasks": s["tasks"],
             "start_s": round((s["submitted"] - start) / 1e3, 2),
             "wall_s": round((s["completed"] - s["submitted"]) / 1e3, 2),
             "run_s": round(s["run_s"], 2), "cpu_s": round(s["cpu_s"], 2), "gc_s": round(s["gc_s"], 2)}
            for s in measured]


def _empty() -> dict[str, Any]:
    return {"run_s": 0.0, "cpu_s": 0.0, "gc_s": 0.0}


def read_event_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def format_breakdown(stages: list[dict[str, Any]]) -> str:
    lines = [f"{'stage':>5} {'start s':>8} {'wall s':>7} {'tasks':>5} {'run s':>7} {'CPU s':>7} {'GC s':>6}  name"]
    lines += [f"{s['id']:>5} {s['start_s']:>8.2f} {s['wall_s']:>7.2f} {s['tasks']:>5} {s['run_s']:>7.2f} "
              f"{s['cpu_s']:>7.2f} {s['gc_s']:>6.2f}  {s['name'][:60]}" for s in stages]
    return "\n".join(lines)
